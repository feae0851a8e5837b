/* cmd_list.c: `advtrain list [models|datasets|methods|attacks|corruptions]`: what this build
 * contains. */
#include "cli.h"

#include <string.h>

static void list_models(void)
{
    const char *name, *description;
    printf("models:\n");
    for (int i = 0; at_arch_info(i, &name, &description); i++)
        printf("  %-18s %s\n", name, description);
}

static void list_datasets(void)
{
    const char *name, *dir, *description;
    printf("datasets:\n");
    for (int i = 0; at_dataset_info(i, &name, &dir, &description); i++)
        if (dir)
            printf("  %-20s %s (default directory %s)\n", name, description, dir);
        else
            printf("  %-20s %s\n", name, description);
}

static void list_attacks(void)
{
    const char *name, *description;
    printf("attacks:\n");
    for (int i = 0; at_attack_info(i, &name, &description); i++)
        printf("  %-18s %s\n", name, description);
}

static void list_corruptions(void)
{
    printf("corruptions (advtrain corrupt --corruption NAME --severity 1..5):\n");
    for (int i = 0; i < at_corruption_count(); i++) {
        const char *note = at_corruption_note(i);
        if (note)
            printf("  %-18s %-8s %s\n", at_corruption_name(i), at_corruption_family(i), note);
        else
            printf("  %-18s %s\n", at_corruption_name(i), at_corruption_family(i));
    }
}

static void list_methods(void)
{
    const char *name, *description;
    printf("methods:\n");
    for (int i = 0; at_method_info(i, &name, &description); i++) {
        printf("  %-18s %s\n", name, description);
        const at_option_info *o;
        for (int k = 0; (o = at_method_option(name, k)); k++)
            printf(k ? ", --%s" : "  %-18s options: --%s", k ? o->name : "", o->name);
        if (at_method_option(name, 0))
            printf(" (advtrain train --method %s --help)\n", name);
    }
    static const char *const common[][2] = {
        {"--eps-schedule S, --eval-eps EPS", "budget schedules (Kinfu and Vidal, 2022)"},
        {"--cutmix, --repeat K, --ema TAU", "CutMix, batch repetition, weight averaging (Rebuffi et al., 2021)"},
        {"--extra-data FILE", "generated data in every batch (Gowal et al., 2021; advtrain generate)"},
        {"--ood SOURCE", "out-of-distribution rows with uniform targets (OAT, Lee et al., 2021)"},
        {"--coreset FRACTION", "train on a CRAIG coreset (Dolatabadi et al., 2022)"},
    };
    printf("  with any method where it applies (advtrain train --help):\n");
    for (size_t i = 0; i < sizeof common / sizeof common[0]; i++)
        printf("    %-34s %s\n", common[i][0], common[i][1]);
}

int cmd_list(int argc, char **argv)
{
    static const cli_command cmd = {"list", "List what this build of advtrain contains.",
                                    "advtrain list [models|datasets|methods|attacks|corruptions]", NULL, 0};
    if (argc > 2 || (argc == 2 && argv[1][0] == '-')) {
        if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
            cli_help(&cmd, stdout);
            return 0;
        }
        fprintf(stderr, "advtrain list: unexpected argument '%s'\nusage: %s\n", argv[argc - 1],
                cmd.usage);
        return EXIT_USAGE;
    }
    const char *what = argc == 2 ? argv[1] : "all";
    bool all = strcmp(what, "all") == 0;
    if (!all && strcmp(what, "models") && strcmp(what, "datasets") && strcmp(what, "methods") &&
        strcmp(what, "attacks") && strcmp(what, "corruptions")) {
        fprintf(stderr, "advtrain list: unknown category '%s'\nusage: %s\n", what, cmd.usage);
        return EXIT_USAGE;
    }
    if (all || !strcmp(what, "models"))
        list_models();
    if (all || !strcmp(what, "datasets"))
        list_datasets();
    if (all || !strcmp(what, "methods"))
        list_methods();
    if (all || !strcmp(what, "attacks"))
        list_attacks();
    if (all || !strcmp(what, "corruptions"))
        list_corruptions();
    return 0;
}
