/* fuzz_config.c: `--config FILE` of the advtrain tool (cli_parse in tools/options.c): one
 * "name = value" per line for a command with one option of every kind, as train and eval
 * declare them. */
#include "cli.h"
#include "fuzz_file.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_write_file(data, size, ".cfg");
    int epochs = 1;
    double eps = 0.3;
    const char *config = NULL, *out = NULL, *method = "pgd-at";
    bool quiet = false;
    cli_float_list eps_list = {0};
    const cli_option options[] = {
        {"config", CLI_STRING, &config, 0, 0, NULL, "FILE", "options from FILE"},
        {"epochs", CLI_INT, &epochs, 1, 1000, NULL, "N", "epochs"},
        {"epsilon", CLI_FLOAT, &eps, 0, 1, NULL, "E", "budget"},
        {"out", CLI_STRING, &out, 0, 0, NULL, "DIR", "output"},
        {"method", CLI_CHOICE, &method, 0, 0, "pgd-at|trades|fgsm", "M", "method"},
        {"quiet", CLI_FLAG, &quiet, 0, 0, NULL, NULL, "no progress"},
        {"eps-list", CLI_FLOAT_LIST, &eps_list, 0, 1, NULL, "E,..", "budgets"},
    };
    const cli_command cmd = {"fuzz", "fuzzes the configuration reader", "advtrain fuzz [options]",
                             options, (int)(sizeof options / sizeof options[0])};
    char arg0[] = "fuzz", arg1[] = "--config", arg3[] = "--quiet";
    char arg2[128];
    snprintf(arg2, sizeof arg2, "%s", path);
    char *argv[] = {arg0, arg1, arg2, arg3, NULL};
    bool seen[sizeof options / sizeof options[0]];
    cli_parse(&cmd, 4, argv, seen);
    return 0;
}
