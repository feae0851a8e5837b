/* cmd_gradients.c: `advtrain gradients`: how a model's input gradients look. For the first N
 * points it takes grad_x CE(f(x), y) (batch norm in eval mode), the gradient's magnitude per
 * pixel (summed over channels), and reports how concentrated it is: the Gini coefficient of the
 * magnitudes (0: spread evenly over the pixels, towards 1: on a few) and the share of their sum
 * on the top 10% of pixels, each averaged over the points; with --png, a grid of images beside
 * their gradient maps. Input-gradient regularisers (J-SIGR) claim sparser, more interpretable
 * maps: this is where that is seen and measured. */
#include "cli.h"
#include "plots.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

typedef struct gradients_opts {
    const char *data, *data_dir, *model, *checkpoint, *split, *png, *json;
    int n, grid, threads;
} gradients_opts;

static gradients_opts opts = {.data = "fashion-mnist", .split = "test", .n = 1000, .grid = 8};

static const cli_option options[] = {
    {"checkpoint", CLI_STRING, &opts.checkpoint, 0, 0, NULL, "FILE", "model (required)"},
    {"model", CLI_STRING, &opts.model, 0, 0, NULL, "ARCH", "architecture of a weights-only FILE"},
    {"data", CLI_STRING, &opts.data, 0, 0, NULL, "NAME", "data set; default fashion-mnist"},
    {"data-dir", CLI_STRING, &opts.data_dir, 0, 0, NULL, "DIR", "read the data set from DIR"},
    {"split", CLI_CHOICE, &opts.split, 0, 0, "test|train", NULL, "which split; default test"},
    {"n", CLI_INT, &opts.n, 1, 1000000, NULL, "N", "the first N examples; default 1000"},
    {"png", CLI_STRING, &opts.png, 0, 0, NULL, "FILE", "PNG grid of images and gradient maps"},
    {"grid", CLI_INT, &opts.grid, 1, 64, NULL, "N", "rows of the PNG grid; default 8"},
    {"json", CLI_STRING, &opts.json, 0, 0, NULL, "FILE", "also write the measures to FILE"},
    {"threads", CLI_INT, &opts.threads, 1, 1024, NULL, "N", "threads (default: all cores)"},
};

static const cli_command command = {
    "gradients",
    "Input-gradient maps of a model and how concentrated they are (Gini coefficient, share on\n"
    "the top 10% of pixels). Example:\n"
    "  advtrain gradients --checkpoint runs/jsigr/last.safetensors --n 1000 --png maps.png",
    "advtrain gradients --checkpoint FILE [options]", options, sizeof options / sizeof options[0]};

enum { CHUNK = 250 };

static int by_value(const void *a, const void *b)
{
    const float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* Gini coefficient and top-10% share of one map of `count` magnitudes (sorted here); false for a
 * map that is all zero. */
static bool concentration(float *m, int count, double *gini, double *top)
{
    qsort(m, (size_t)count, sizeof *m, by_value);
    double total = 0.0, weighted = 0.0, head = 0.0;
    const int first_top = count - (count + 9) / 10;
    for (int i = 0; i < count; i++) {
        total += m[i];
        weighted += (2.0 * (i + 1) - count - 1) * m[i];
        if (i >= first_top)
            head += m[i];
    }
    if (total <= 0.0)
        return false;
    *gini = weighted / (count * total);
    *top = head / total;
    return true;
}

int cmd_gradients(int argc, char **argv)
{
    int status = cli_parse(&command, argc, argv, NULL);
    if (status)
        return status < 0 ? 0 : status;
    if (!opts.checkpoint)
        return cli_error("gradients", EXIT_USAGE, "--checkpoint is required\nusage: %s",
                         command.usage);
    if (opts.threads)
        omp_set_num_threads(opts.threads);
    at_dataset ds = {0};
    at_model *model = NULL;
    at_pass *pass = NULL;
    at_error err;
    float *x = NULL, *maps = NULL, *sorted = NULL, *dlogits = NULL;
    int32_t *y = NULL, *index = NULL;
    if ((status = cli_open_dataset("gradients", opts.data, opts.data_dir, opts.split, &ds)) ||
        (status = cli_load_model("gradients", opts.checkpoint, opts.model, &ds, &model)))
        goto done;
    const int n = opts.n < ds.n ? opts.n : ds.n, k = at_model_num_classes(model);
    const size_t image = (size_t)ds.c * ds.h * ds.w, plane = (size_t)ds.h * ds.w;
    x = malloc((size_t)n * image * sizeof(float));
    maps = malloc((size_t)n * plane * sizeof(float));
    sorted = malloc(plane * sizeof(float));
    dlogits = malloc((size_t)CHUNK * k * sizeof(float));
    y = malloc((size_t)n * sizeof(int32_t));
    index = malloc((size_t)n * sizeof(int32_t));
    if (!x || !maps || !sorted || !dlogits || !y || !index) {
        status = cli_error("gradients", EXIT_WORK_FAILED, "out of memory");
        goto done;
    }
    for (int i = 0; i < n; i++)
        index[i] = i;
    at_dataset_batch(&ds, index, n, x, y, NULL, NULL);
    if (at_pass_create(&pass, model, CHUNK, AT_PASS_NO_WEIGHT_GRADS, &err)) {
        status = cli_error("gradients", EXIT_WORK_FAILED, "%s", err.message);
        goto done;
    }
    double gini_sum = 0.0, top_sum = 0.0;
    int measured = 0;
    for (int first = 0; first < n; first += CHUNK) {
        const int m = n - first < CHUNK ? n - first : CHUNK;
        at_forward(pass, x + (size_t)first * image, m, AT_BN_EVAL);
        at_loss_cross_entropy(at_pass_logits(pass), m, k,
                              &(at_ce_target){.labels = y + first}, NULL, dlogits);
        at_backward(pass, dlogits, AT_GRAD_INPUT);
        const float *g = at_pass_input_grad(pass);
        for (int i = 0; i < m; i++) {
            float *map = maps + (size_t)(first + i) * plane;
            for (size_t p = 0; p < plane; p++) {
                double sum = 0.0;
                for (int ch = 0; ch < ds.c; ch++)
                    sum += fabsf(g[(size_t)i * image + (size_t)ch * plane + p]);
                map[p] = (float)sum;
            }
            memcpy(sorted, map, plane * sizeof(float));
            double gini, top;
            if (concentration(sorted, (int)plane, &gini, &top)) {
                gini_sum += gini;
                top_sum += top;
                measured++;
            }
        }
    }
    const double gini = measured ? gini_sum / measured : NAN, top = measured ? top_sum / measured : NAN;
    printf("input gradients of %d points (%d non-zero): Gini coefficient %.3f, top 10%% of pixels "
           "hold %.1f%% of the magnitude\n", n, measured, gini, 100.0 * top);
    if (opts.png) {
        const int rows = opts.grid < n ? opts.grid : n;
        if (plot_png_maps(opts.png, x, maps, rows, ds.c, ds.h, ds.w, ds.h < 64 ? 4 : 2, &err)) {
            status = cli_error("gradients", EXIT_WORK_FAILED, "%s", err.message);
            goto done;
        }
    }
    if (opts.json) {
        json_t *doc = json_pack("{s:s, s:s, s:s, s:i, s:i, s:f, s:f}", "checkpoint",
                                opts.checkpoint, "data", ds.name, "split", opts.split, "n", n,
                                "nonzero", measured, "gini", measured ? gini : 0.0,
                                "top10_share", measured ? top : 0.0);
        int failed = !doc || cli_write_json(opts.json, doc, &err);
        json_decref(doc);
        if (failed) {
            status = cli_error("gradients", EXIT_WORK_FAILED, "%s", doc ? err.message : "out of memory");
            goto done;
        }
    }
done:
    at_pass_free(pass);
    free(x);
    free(maps);
    free(sorted);
    free(dlogits);
    free(y);
    free(index);
    at_model_free(model);
    at_dataset_free(&ds);
    return status;
}
