/* cmd_attack.c: `advtrain attack`: run one attack (or a cascade) on the first N points of a split
 * and write the adversarial examples: a safetensors file with the clean inputs "x", the
 * adversarial ones "x_adv", the labels "y", the model's predictions on both and the internal
 * Wasserstein distance "iwd" of each output to its input (at_iwd_distance), and optionally a
 * PNG grid of clean / adversarial / perturbation for the first few. */
#include "attack_args.h"
#include "eval_report.h"
#include "plots.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

typedef struct attack_opts {
    const char *data, *data_dir, *model, *checkpoint, *split, *out, *png;
    int n, grid, threads;
    cli_attack_args attack;
} attack_opts;

static attack_opts opts = {.data = "fashion-mnist", .split = "test", .n = 100, .grid = 8};

static const cli_option options[] = {
    {"checkpoint", CLI_STRING, &opts.checkpoint, 0, 0, NULL, "FILE", "model to attack (required)"},
    {"model", CLI_STRING, &opts.model, 0, 0, NULL, "ARCH", "architecture of a weights-only FILE"},
    {"data", CLI_STRING, &opts.data, 0, 0, NULL, "NAME", "data set; default fashion-mnist"},
    {"data-dir", CLI_STRING, &opts.data_dir, 0, 0, NULL, "DIR", "read the data set from DIR"},
    {"split", CLI_CHOICE, &opts.split, 0, 0, "test|train", NULL, "which split; default test"},
    {"n", CLI_INT, &opts.n, 1, 1000000, NULL, "N", "attack the first N examples; default 100"},
    CLI_ATTACK_OPTIONS(opts.attack),
    {"out", CLI_STRING, &opts.out, 0, 0, NULL, "FILE", "adversarial examples (safetensors; required)"},
    {"png", CLI_STRING, &opts.png, 0, 0, NULL, "FILE", "PNG grid of clean, adversarial and perturbation"},
    {"grid", CLI_INT, &opts.grid, 1, 64, NULL, "N", "rows of the PNG grid; default 8"},
    {"threads", CLI_INT, &opts.threads, 1, 1024, NULL, "N", "threads (default: all cores)"},
};

static const cli_command command = {
    "attack",
    "Write adversarial examples for the first N points. Example:\n"
    "  advtrain attack --checkpoint M --attack pgd --eps 0.1 --steps 20 --out adv.safetensors --png adv.png",
    "advtrain attack --checkpoint FILE --attack NAME --eps EPS --out FILE [options]", options,
    sizeof options / sizeof options[0]};

int cmd_attack(int argc, char **argv)
{
    int status = cli_parse(&command, argc, argv, NULL);
    if (status)
        return status < 0 ? 0 : status;
    if (!opts.checkpoint || !opts.out || !cli_attack_requested(&opts.attack) || !(opts.attack.eps > 0))
        return cli_error("attack", EXIT_USAGE, "--checkpoint, --attack (or --suite), --eps and --out are "
                                               "required\nusage: %s", command.usage);
    if (opts.threads)
        omp_set_num_threads(opts.threads);
    at_dataset ds = {0};
    at_model *model = NULL;
    at_error err;
    at_eval_plan plan;
    float *x = NULL, *adv = NULL;
    int32_t *y = NULL, *pred = NULL, *pred_adv = NULL;
    uint64_t *seeds = NULL;
    uint8_t *fooled = NULL;
    at_attack *atk[AT_EVAL_MAX_ATTACKS] = {NULL};
    if ((status = cli_open_dataset("attack", opts.data, opts.data_dir, opts.split, &ds)))
        return status;
    const int n = opts.n < ds.n ? opts.n : ds.n;
    opts.attack.batch = n;
    if ((status = cli_attack_plan("attack", &opts.attack, opts.attack.eps, &plan)))
        goto done;
    if ((status = cli_load_model("attack", opts.checkpoint, opts.model, &ds, &model)))
        goto done;
    const size_t image = (size_t)ds.c * ds.h * ds.w;
    x = malloc((size_t)n * image * sizeof(float));
    adv = malloc((size_t)n * image * sizeof(float));
    y = malloc((size_t)n * sizeof(int32_t));
    pred = malloc((size_t)n * sizeof(int32_t));
    pred_adv = malloc((size_t)n * sizeof(int32_t));
    seeds = malloc((size_t)n * sizeof(uint64_t));
    fooled = malloc((size_t)n);
    if (!x || !adv || !y || !pred || !pred_adv || !seeds || !fooled) {
        status = cli_error("attack", EXIT_WORK_FAILED, "out of memory");
        goto done;
    }
    for (int i = 0; i < n; i++)
        pred[i] = i;
    at_dataset_batch(&ds, pred, n, x, y, NULL, NULL);
    memcpy(adv, x, (size_t)n * image * sizeof(float));
    /* a cascade: every attack starts from the clean point; a point keeps the output of the first
     * attack that fools it (or of the last attack when none does) */
    if ((status = cli_predict("attack", model, x, n, pred)))
        goto done;
    for (int i = 0; i < n; i++)
        fooled[i] = 0;
    uint8_t *settled = (uint8_t *)pred_adv; /* reused as a flag array until the final predictions */
    for (int i = 0; i < n; i++)
        settled[i] = pred[i] != y[i];
    float *tmp = malloc((size_t)n * image * sizeof(float));
    if (!tmp) {
        status = cli_error("attack", EXIT_WORK_FAILED, "out of memory");
        goto done;
    }
    for (int a = 0; a < plan.n_attacks && !status; a++) {
        if (at_attack_create(&atk[a], plan.attacks[a], model, n, &plan.options[a], &err)) {
            status = cli_error("attack", EXIT_USAGE, "%s", err.message);
            break;
        }
        at_attack_seeds(plan.seed + 0x9e3779b97f4a7c15ull * (uint64_t)(a + 1), 0, n, seeds);
        if (at_attack_run(atk[a], x, y, NULL, n, seeds, tmp, fooled)) {
            status = cli_error("attack", EXIT_WORK_FAILED, "%s failed", plan.attacks[a]);
            break;
        }
        for (int i = 0; i < n; i++)
            if (!settled[i]) {
                memcpy(adv + i * image, tmp + i * image, image * sizeof(float));
                settled[i] = fooled[i];
            }
    }
    free(tmp);
    if (status)
        goto done;
    if ((status = cli_predict("attack", model, adv, n, pred_adv)))
        goto done;
    long clean_ok = 0, adv_ok = 0;
    for (int i = 0; i < n; i++) {
        clean_ok += pred[i] == y[i];
        adv_ok += pred_adv[i] == y[i];
    }
    /* the internal Wasserstein distance of each output, with the IWD attack's settings when it
     * ran (its presets otherwise) and patch positions from seed 0 */
    at_iwd_options iwd_options = {0};
    for (int a = 0; a < plan.n_attacks; a++)
        if (!strcmp(plan.attacks[a], "iwd"))
            iwd_options = at_attack_get_options(atk[a])->iwd;
    at_iwd *iwd = NULL;
    float *iwd_each = malloc((size_t)n * sizeof(float));
    if (!iwd_each || at_iwd_create(&iwd, &iwd_options, ds.c, ds.h, ds.w, &err)) {
        free(iwd_each);
        status = cli_error("attack", EXIT_WORK_FAILED, "%s", iwd_each ? err.message : "out of memory");
        goto done;
    }
    double iwd_sum = 0.0;
    for (int i = 0; i < n; i++) {
        iwd_each[i] = (float)at_iwd_distance(iwd, x + i * image, adv + i * image, 0, NULL);
        iwd_sum += iwd_each[i];
    }
    at_iwd_free(iwd);
    at_st_writer *w = NULL;
    int64_t xshape[4] = {n, ds.c, ds.h, ds.w}, yshape[1] = {n};
    char eps_text[32];
    snprintf(eps_text, sizeof eps_text, "%g", opts.attack.eps);
    if (at_st_writer_create(&w, &err) ||
        at_st_writer_add(w, "x", "F32", 4, xshape, x, (size_t)n * image * 4, &err) ||
        at_st_writer_add(w, "x_adv", "F32", 4, xshape, adv, (size_t)n * image * 4, &err) ||
        at_st_writer_add(w, "y", "I32", 1, yshape, y, (size_t)n * 4, &err) ||
        at_st_writer_add(w, "pred_clean", "I32", 1, yshape, pred, (size_t)n * 4, &err) ||
        at_st_writer_add(w, "pred_adv", "I32", 1, yshape, pred_adv, (size_t)n * 4, &err) ||
        at_st_writer_add(w, "iwd", "F32", 1, yshape, iwd_each, (size_t)n * 4, &err) ||
        at_st_writer_meta(w, "attack", opts.attack.attack ? opts.attack.attack : opts.attack.suite, &err) ||
        at_st_writer_meta(w, "norm", at_norm_name(plan.options[0].norm), &err) ||
        at_st_writer_meta(w, "eps", eps_text, &err) ||
        at_st_writer_meta(w, "checkpoint", opts.checkpoint, &err) ||
        at_st_writer_save(w, opts.out, &err)) {
        at_st_writer_free(w);
        free(iwd_each);
        status = cli_error("attack", EXIT_WORK_FAILED, "%s", err.message);
        goto done;
    }
    at_st_writer_free(w);
    free(iwd_each);
    if (opts.png) {
        int rows = opts.grid < n ? opts.grid : n;
        if (plot_png_grid(opts.png, x, adv, rows, ds.c, ds.h, ds.w, ds.h < 64 ? 4 : 2, &err)) {
            status = cli_error("attack", EXIT_WORK_FAILED, "%s", err.message);
            goto done;
        }
    }
    printf("%d points: clean accuracy %.2f%%, under the attack %.2f%%, mean IWD %.4g; wrote "
           "%s%s%s\n", n, 100.0 * clean_ok / n, 100.0 * adv_ok / n, iwd_sum / n, opts.out,
           opts.png ? " and " : "", opts.png ? opts.png : "");
    status = 0;
done:
    for (int a = 0; a < AT_EVAL_MAX_ATTACKS; a++)
        at_attack_free(atk[a]);
    free(x);
    free(adv);
    free(y);
    free(pred);
    free(pred_adv);
    free(seeds);
    free(fooled);
    at_model_free(model);
    at_dataset_free(&ds);
    return status;
}
