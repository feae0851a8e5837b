/* cmd_corrupt.c: `advtrain corrupt`: the first N images of a split under one common corruption of
 * CIFAR-10-C (Hendrycks and Dietterich, ICLR 2019) at one severity, written as a safetensors file
 * ("images" float32 [N, C, H, W] in [0, 1], "labels" int32 [N], and the corruption, severity,
 * seed, data set and split as metadata) and optionally a PNG grid of clean, corrupted and their
 * difference. `--corruption all` writes every corruption at that severity into one file
 * ("images_<name>"), and its PNG shows the first image under each corruption, one per row. */
#include "cli.h"
#include "plots.h"

#include <stdlib.h>
#include <string.h>

typedef struct corrupt_opts {
    const char *data, *data_dir, *split, *corruption, *out, *png;
    int n, severity, seed, grid;
} corrupt_opts;

static corrupt_opts opts = {.data = "fashion-mnist", .split = "test", .n = 100, .grid = 8};

static const cli_option options[] = {
    {"data", CLI_STRING, &opts.data, 0, 0, NULL, "NAME", "data set; default fashion-mnist"},
    {"data-dir", CLI_STRING, &opts.data_dir, 0, 0, NULL, "DIR", "read the data set from DIR"},
    {"split", CLI_CHOICE, &opts.split, 0, 0, "test|train", NULL, "which split; default test"},
    {"n", CLI_INT, &opts.n, 1, 1000000, NULL, "N", "corrupt the first N examples; default 100"},
    {"corruption", CLI_STRING, &opts.corruption, 0, 0, NULL, "NAME",
     "one of advtrain list corruptions, or all (required)"},
    {"severity", CLI_INT, &opts.severity, 1, 5, NULL, "S", "severity 1..5 (required)"},
    {"seed", CLI_INT, &opts.seed, 0, 2147483647, NULL, "K", "seed of the random corruptions; default 0"},
    {"out", CLI_STRING, &opts.out, 0, 0, NULL, "FILE", "corrupted images (safetensors; required)"},
    {"png", CLI_STRING, &opts.png, 0, 0, NULL, "FILE", "PNG grid of clean, corrupted and difference"},
    {"grid", CLI_INT, &opts.grid, 1, 64, NULL, "N", "rows of the PNG grid; default 8"},
};

static const cli_command command = {
    "corrupt",
    "Write the first N images of a split under a common corruption (CIFAR-10-C's 15, at\n"
    "severity 1..5; advtrain list corruptions). Example:\n"
    "  advtrain corrupt --corruption fog --severity 3 --n 1000 --out fog3.safetensors --png fog3.png",
    "advtrain corrupt --corruption NAME --severity S --out FILE [options]", options,
    sizeof options / sizeof options[0]};

enum { MAX_CORRUPTIONS = 32 };

static int unknown_corruption(const char *name)
{
    fprintf(stderr, "advtrain corrupt: unknown corruption '%s'; one of:", name);
    for (int i = 0; i < at_corruption_count(); i++)
        fprintf(stderr, " %s", at_corruption_name(i));
    fprintf(stderr, " or all\n");
    return EXIT_USAGE;
}

int cmd_corrupt(int argc, char **argv)
{
    int status = cli_parse(&command, argc, argv, NULL);
    if (status)
        return status < 0 ? 0 : status;
    if (!opts.corruption || !opts.severity || !opts.out)
        return cli_error("corrupt", EXIT_USAGE, "--corruption, --severity and --out are required\n"
                                                "usage: %s", command.usage);
    const bool all = strcmp(opts.corruption, "all") == 0;
    const int one = all ? 0 : at_corruption_find(opts.corruption);
    if (one < 0)
        return unknown_corruption(opts.corruption);
    const int first = all ? 0 : one, count = all ? at_corruption_count() : 1;
    if (count > MAX_CORRUPTIONS)
        return cli_error("corrupt", EXIT_WORK_FAILED, "%d corruptions, at most %d", count,
                         MAX_CORRUPTIONS);
    at_dataset ds = {0};
    if ((status = cli_open_dataset("corrupt", opts.data, opts.data_dir, opts.split, &ds)))
        return status;
    at_error err;
    at_st_writer *w = NULL;
    float *clean = NULL, *images = NULL;
    int32_t *labels = NULL, *index = NULL;
    const int n = opts.n;
    if (n > ds.n) {
        status = cli_error("corrupt", EXIT_USAGE, "--n %d is beyond the %s split of %s (%d images)",
                           n, opts.split, ds.name, ds.n);
        goto done;
    }
    const size_t image = (size_t)ds.c * ds.h * ds.w, batch = (size_t)n * image;
    clean = malloc(batch * sizeof(float));
    images = malloc(batch * count * sizeof(float));
    labels = malloc((size_t)n * sizeof(int32_t));
    index = malloc((size_t)n * sizeof(int32_t));
    if (!clean || !images || !labels || !index) {
        status = cli_error("corrupt", EXIT_WORK_FAILED, "out of memory for %d x %d images", count, n);
        goto done;
    }
    for (int i = 0; i < n; i++)
        index[i] = i;
    at_dataset_batch(&ds, index, n, clean, labels, NULL, NULL);
    char names[MAX_CORRUPTIONS][64]; /* the writer keeps pointers until it saves */
    int64_t shape[4] = {n, ds.c, ds.h, ds.w}, lshape[1] = {n};
    char severity[16], seed[16];
    snprintf(severity, sizeof severity, "%d", opts.severity);
    snprintf(seed, sizeof seed, "%d", opts.seed);
    if (at_st_writer_create(&w, &err))
        goto failed;
    for (int k = 0; k < count; k++) {
        float *x = images + (size_t)k * batch;
        memcpy(x, clean, batch * sizeof(float));
        if (at_corrupt_images(first + k, opts.severity, x, n, ds.c, ds.h, ds.w,
                              (uint64_t)opts.seed, 0, &err))
            goto failed;
        snprintf(names[k], sizeof names[k], all ? "images_%s" : "images",
                 at_corruption_name(first + k));
        if (at_st_writer_add(w, names[k], "F32", 4, shape, x, batch * sizeof(float), &err))
            goto failed;
    }
    if (at_st_writer_add(w, "labels", "I32", 1, lshape, labels, (size_t)n * sizeof(int32_t), &err) ||
        at_st_writer_meta(w, "corruption", opts.corruption, &err) ||
        at_st_writer_meta(w, "severity", severity, &err) ||
        at_st_writer_meta(w, "seed", seed, &err) ||
        at_st_writer_meta(w, "data", ds.name, &err) ||
        at_st_writer_meta(w, "split", opts.split, &err) ||
        at_st_writer_save(w, opts.out, &err))
        goto failed;
    if (opts.png) {
        /* one corruption: the first rows of the batch; all: the first image under each */
        const int rows = all ? count : opts.grid < n ? opts.grid : n;
        float *left = clean, *right = images;
        if (all) {
            left = malloc((size_t)count * image * sizeof(float));
            right = malloc((size_t)count * image * sizeof(float));
            if (!left || !right) {
                free(left);
                free(right);
                status = cli_error("corrupt", EXIT_WORK_FAILED, "out of memory");
                goto done;
            }
            for (int k = 0; k < count; k++) {
                memcpy(left + k * image, clean, image * sizeof(float));
                memcpy(right + k * image, images + (size_t)k * batch, image * sizeof(float));
            }
        }
        int failed = plot_png_grid(opts.png, left, right, rows, ds.c, ds.h, ds.w,
                                   ds.h < 64 ? 4 : 2, &err);
        if (all) {
            free(left);
            free(right);
        }
        if (failed)
            goto failed;
    }
    printf("%d images of %s (%s) under %s at severity %d; wrote %s%s%s\n", n, ds.name, opts.split,
           opts.corruption, opts.severity, opts.out, opts.png ? " and " : "",
           opts.png ? opts.png : "");
    status = 0;
    goto done;
failed:
    status = cli_error("corrupt", EXIT_WORK_FAILED, "%s", err.message);
done:
    at_st_writer_free(w);
    free(clean);
    free(images);
    free(labels);
    free(index);
    at_dataset_free(&ds);
    return status;
}
