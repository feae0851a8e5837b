/* cmd_generate.c: `advtrain generate`: synthetic training images for adversarial training with
 * generated data (Gowal et al., "Improving Robustness using Generated Data", NeurIPS 2021). A
 * sampler is fitted to the training split, draws N images with the class each was drawn for,
 * and, with --labeller, a classifier relabels them by its prediction (the paper's pseudo-labels).
 * The file is safetensors (images U8 [N,C,H,W], labels I64 [N], provenance in the metadata) or,
 * for a name ending in .npz, a NumPy archive laid out as the paper's released sets (image
 * (N,H,W,C) uint8, label int64); at_dataset_load_file reads both. */
#include "cli.h"
#include "npz.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

typedef struct generate_opts {
    const char *sampler, *out, *data, *data_dir, *labeller;
    int n, train_size, dims, components, iterations, seed, batch_size;
    bool quiet;
} generate_opts;

static generate_opts opts = {.sampler = "gmm", .data = "fashion-mnist", .batch_size = 500};

static const cli_option options[] = {
    {"sampler", CLI_STRING, &opts.sampler, 0, 0, NULL, "NAME", "the generator (gmm: a Gaussian mixture per class in PCA space); default gmm"},
    {"n", CLI_INT, &opts.n, 1, 100000000, NULL, "N", "images to generate (required)"},
    {"out", CLI_STRING, &opts.out, 0, 0, NULL, "FILE", "output, FILE.safetensors or FILE.npz (required)"},
    {"data", CLI_STRING, &opts.data, 0, 0, NULL, "NAME", "data set whose training split the sampler is fitted to; default fashion-mnist"},
    {"data-dir", CLI_STRING, &opts.data_dir, 0, 0, NULL, "DIR", "read the data set from DIR instead of its default directory"},
    {"train-size", CLI_INT, &opts.train_size, 0, 100000000, NULL, "N", "fit to the first N training images only (0 = all)"},
    {"dims", CLI_INT, &opts.dims, 1, 1000000, NULL, "K", "gmm: PCA dimensions; default 64"},
    {"components", CLI_INT, &opts.components, 1, 1000, NULL, "M", "gmm: mixture components per class; default 5"},
    {"iterations", CLI_INT, &opts.iterations, 1, 100000, NULL, "I", "gmm: EM iterations; default 50"},
    {"labeller", CLI_STRING, &opts.labeller, 0, 0, NULL, "CHECKPOINT", "label the images by this classifier's prediction instead of their drawn class"},
    {"seed", CLI_INT, &opts.seed, 0, 2147483647, NULL, "S", "seed of the fit and the samples; default 0"},
    {"batch-size", CLI_INT, &opts.batch_size, 1, 65536, NULL, "B", "the labeller's batch size; default 500"},
    {"quiet", CLI_FLAG, &opts.quiet, 0, 0, NULL, NULL, "no progress line"},
};

static const cli_command command = {
    "generate",
    "Generate synthetic training images: fit a sampler to the training split, draw N images and\n"
    "label them with their drawn class or a classifier's prediction. Example:\n"
    "  advtrain generate --sampler gmm --n 50000 --out gen.safetensors --labeller runs/clean/last.safetensors",
    "advtrain generate --n N --out FILE [options]", options, sizeof options / sizeof options[0]};

/* Provenance: a string per key, written as the safetensors metadata (or the .npz's metadata
 * array, as JSON). */
static void note(json_t *meta, const char *key, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void note(json_t *meta, const char *key, const char *fmt, ...)
{
    char value[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(value, sizeof value, fmt, ap);
    va_end(ap);
    json_object_set_new(meta, key, json_string(value));
}

/* A sampler fits itself to the training set and draws n images with their classes. */
typedef struct sampler {
    const char *name;
    int (*generate)(const at_dataset *train, int n, uint8_t *images, int32_t *labels,
                    json_t *meta, double *seconds, at_error *err);
} sampler;

static int generate_gmm(const at_dataset *train, int n, uint8_t *images, int32_t *labels,
                        json_t *meta, double *seconds, at_error *err)
{
    at_gmm_options o = {.dims = opts.dims, .components = opts.components,
                        .iterations = opts.iterations};
    at_rng rng;
    at_gmm *g = NULL;
    double start = cli_now();
    at_rng_stream(&rng, (uint64_t)opts.seed, 1, 0);
    int status = at_gmm_fit(&g, train, &o, &rng, err);
    seconds[0] = cli_now() - start;
    if (status)
        return status;
    const at_gmm_options *used = at_gmm_get_options(g);
    const int steps = at_gmm_log_likelihood(g, NULL, 0);
    double *ll = malloc((size_t)steps * sizeof(double));
    note(meta, "dims", "%d", used->dims);
    note(meta, "components", "%d", used->components);
    note(meta, "iterations", "%d", used->iterations);
    if (ll && at_gmm_log_likelihood(g, ll, steps) == steps)
        note(meta, "log_likelihood", "%.6g", ll[steps - 1]); /* per training example, in PCA space */
    free(ll);
    note(meta, "class_choice", "uniform over the classes of the data");
    start = cli_now();
    at_rng_stream(&rng, (uint64_t)opts.seed, 2, 0);
    status = at_gmm_sample(g, n, &rng, images, labels, err);
    seconds[1] = cli_now() - start;
    at_gmm_free(g);
    return status;
}

static const sampler samplers[] = {
    {"gmm", generate_gmm},
};

/* A self-describing checkpoint whose inputs and classes are those of the data set. */
static int load_labeller(const char *path, const at_dataset *ds, at_model **model)
{
    at_error err;
    at_safetensors *st = NULL;
    *model = NULL;
    if (at_st_open(&st, path, &err))
        return cli_error("generate", EXIT_WORK_FAILED, "%s", err.message);
    const char *spec = at_st_meta(st, "model");
    int status = 0;
    if (!spec)
        status = cli_error("generate", EXIT_WORK_FAILED, "%s: --labeller holds weights only (no "
                           "model description); make it a checkpoint with advtrain import", path);
    else if (at_model_create_from_spec(model, spec, &err))
        status = cli_error("generate", EXIT_WORK_FAILED, "%s: %s", path, err.message);
    at_st_free(st);
    if (!status && at_checkpoint_load(path, *model, NULL, NULL, &err))
        status = cli_error("generate", EXIT_WORK_FAILED, "%s", err.message);
    int c, h, w;
    if (!status) {
        at_model_input_shape(*model, &c, &h, &w);
        if (c != ds->c || h != ds->h || w != ds->w || at_model_num_classes(*model) != ds->num_classes)
            status = cli_error("generate", EXIT_WORK_FAILED,
                               "%s: the labeller takes %dx%dx%d inputs with %d classes, %s has "
                               "%dx%dx%d with %d", path, c, h, w, at_model_num_classes(*model),
                               ds->name, ds->c, ds->h, ds->w, ds->num_classes);
    }
    if (status) {
        at_model_free(*model);
        *model = NULL;
    }
    return status;
}

/* Replaces each drawn class by the model's arg-max (eval BN mode); *agree counts the images
 * whose prediction was their drawn class. */
static int relabel(at_model *model, const at_dataset *gen, int32_t *labels, long *agree)
{
    at_error err;
    at_pass *pass = NULL;
    const int b = opts.batch_size < gen->n ? opts.batch_size : gen->n, k = gen->num_classes;
    if (at_pass_create(&pass, model, b, AT_PASS_FORWARD_ONLY, &err))
        return cli_error("generate", EXIT_WORK_FAILED, "%s", err.message);
    float *x = malloc((size_t)b * gen->c * gen->h * gen->w * sizeof(float));
    int32_t *idx = malloc((size_t)b * sizeof(int32_t));
    if (!x || !idx) {
        free(x);
        free(idx);
        at_pass_free(pass);
        return cli_error("generate", EXIT_WORK_FAILED, "out of memory");
    }
    cli_progress progress;
    cli_progress_start(&progress, opts.quiet);
    *agree = 0;
    for (int first = 0; first < gen->n; first += b) {
        const int count = gen->n - first < b ? gen->n - first : b;
        for (int i = 0; i < count; i++)
            idx[i] = first + i;
        at_dataset_batch(gen, idx, count, x, NULL, NULL, NULL);
        at_forward(pass, x, count, AT_BN_EVAL);
        const float *z = at_pass_logits(pass);
        for (int i = 0; i < count; i++) {
            int best = 0;
            for (int j = 1; j < k; j++)
                if (z[(size_t)i * k + j] > z[(size_t)i * k + best])
                    best = j;
            *agree += best == labels[first + i];
            labels[first + i] = best;
        }
        cli_progress_update(&progress, "labelling", first + count, gen->n, NULL);
    }
    cli_progress_clear(&progress);
    free(x);
    free(idx);
    at_pass_free(pass);
    return 0;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

static int write_output(const at_dataset *gen, json_t *meta)
{
    at_error err = {0};
    int status = 0;
    if (ends_with(opts.out, ".npz")) {
        char *text = json_dumps(meta, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII);
        status = cli_write_npz(opts.out, gen->images, gen->n, gen->c, gen->h, gen->w, gen->labels,
                               text, &err);
        free(text);
    } else {
        int64_t *labels = malloc((size_t)gen->n * sizeof(int64_t));
        at_st_writer *w = NULL;
        if (!labels)
            return cli_error("generate", EXIT_WORK_FAILED, "out of memory");
        for (int i = 0; i < gen->n; i++)
            labels[i] = gen->labels[i];
        status = at_st_writer_create(&w, &err);
        if (!status)
            status = at_st_writer_add(w, "images", "U8", 4,
                                      (const int64_t[]){gen->n, gen->c, gen->h, gen->w},
                                      gen->images, (size_t)gen->n * gen->c * gen->h * gen->w, &err);
        if (!status)
            status = at_st_writer_add(w, "labels", "I64", 1, (const int64_t[]){gen->n}, labels,
                                      (size_t)gen->n * sizeof(int64_t), &err);
        const char *key;
        json_t *value;
        json_object_foreach(meta, key, value)
            if (!status)
                status = at_st_writer_meta(w, key, json_string_value(value), &err);
        if (!status)
            status = at_st_writer_save(w, opts.out, &err);
        at_st_writer_free(w);
        free(labels);
    }
    return status ? cli_error("generate", EXIT_WORK_FAILED, "%s", err.message) : 0;
}

int cmd_generate(int argc, char **argv)
{
    bool seen[sizeof options / sizeof options[0]];
    int status = cli_parse(&command, argc, argv, seen);
    if (status)
        return status < 0 ? 0 : status;
    if (!opts.n || !opts.out)
        return cli_error("generate", EXIT_USAGE, "--n N and --out FILE are required\nusage: %s",
                         command.usage);
    const sampler *s = NULL;
    for (size_t i = 0; i < sizeof samplers / sizeof samplers[0]; i++)
        if (!strcmp(opts.sampler, samplers[i].name))
            s = &samplers[i];
    if (!s) {
        char known[256] = "";
        for (size_t i = 0; i < sizeof samplers / sizeof samplers[0]; i++)
            snprintf(known + strlen(known), sizeof known - strlen(known), "%s%s", i ? ", " : "",
                     samplers[i].name);
        return cli_error("generate", EXIT_USAGE, "unknown sampler '%s' (known: %s)", opts.sampler,
                         known);
    }
    if (!ends_with(opts.out, ".safetensors") && !ends_with(opts.out, ".npz"))
        return cli_error("generate", EXIT_USAGE, "--out %s: the name must end in .safetensors or .npz",
                         opts.out);
    if (cli_given(&command, seen, "batch-size") && !opts.labeller)
        return cli_error("generate", EXIT_USAGE, "--batch-size sets the labeller's batches: give --labeller too");

    at_dataset train = {0}, gen = {0};
    at_model *labeller = NULL;
    json_t *meta = json_object();
    at_error err;
    if ((status = cli_open_dataset("generate", opts.data, opts.data_dir, "train", &train)))
        goto done;
    if (opts.train_size && opts.train_size < train.n) {
        at_dataset sub;
        if (at_dataset_slice(&sub, &train, 0, opts.train_size, &err)) {
            status = cli_error("generate", EXIT_WORK_FAILED, "%s", err.message);
            goto done;
        }
        at_dataset_free(&train);
        train = sub;
    }
    if (opts.dims > train.c * train.h * train.w) {
        status = cli_error("generate", EXIT_USAGE, "--dims %d: %s images have only %d pixels",
                           opts.dims, train.name, train.c * train.h * train.w);
        goto done;
    }
    if (opts.labeller && (status = load_labeller(opts.labeller, &train, &labeller)))
        goto done;
    gen = (at_dataset){.n = opts.n, .c = train.c, .h = train.h, .w = train.w,
                       .num_classes = train.num_classes};
    gen.images = malloc((size_t)gen.n * gen.c * gen.h * gen.w);
    gen.labels = malloc((size_t)gen.n * sizeof(int32_t));
    if (!gen.images || !gen.labels) {
        status = cli_error("generate", EXIT_WORK_FAILED, "out of memory for %d images", gen.n);
        goto done;
    }
    char hash[65];
    at_dataset_sha256(&train, hash);
    note(meta, "format", "advtrain-generated-1");
    note(meta, "advtrain_version", "%s", cli_version());
    note(meta, "sampler", "%s", s->name);
    note(meta, "n", "%d", gen.n);
    note(meta, "seed", "%d", opts.seed);
    note(meta, "data", "%s", train.name);
    note(meta, "data_split", "train");
    note(meta, "data_size", "%d", train.n);
    note(meta, "data_sha256", "%s", hash);
    double seconds[3] = {0};
    if (s->generate(&train, gen.n, gen.images, gen.labels, meta, seconds, &err)) {
        status = cli_error("generate", EXIT_WORK_FAILED, "%s", err.message);
        goto done;
    }
    long agree = 0;
    if (labeller) {
        const double start = cli_now();
        if (at_file_sha256(opts.labeller, hash, &err)) {
            status = cli_error("generate", EXIT_WORK_FAILED, "%s", err.message);
            goto done;
        }
        if ((status = relabel(labeller, &gen, gen.labels, &agree)))
            goto done;
        seconds[2] = cli_now() - start;
        note(meta, "labels", "labeller");
        note(meta, "labeller", "%s", opts.labeller);
        note(meta, "labeller_sha256", "%s", hash);
        note(meta, "labeller_agreement", "%.6f", (double)agree / gen.n);
    } else {
        note(meta, "labels", "drawn class");
    }
    if ((status = write_output(&gen, meta)))
        goto done;
    printf("wrote %s: %d images %dx%dx%d from %s fitted to %s train (%d images) in %.1f s, "
           "sampled in %.1f s", opts.out, gen.n, gen.c, gen.h, gen.w, s->name, train.name, train.n,
           seconds[0], seconds[1]);
    if (labeller)
        printf("; labelled by %s in %.1f s, agreeing with the drawn class on %.1f%% (%ld/%d)",
               opts.labeller, seconds[2], 100.0 * agree / gen.n, agree, gen.n);
    printf("\n");
    status = 0;
done:
    json_decref(meta);
    at_model_free(labeller);
    at_dataset_free(&train);
    free(gen.images);
    free(gen.labels);
    return status;
}
