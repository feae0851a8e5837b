/* cmd_train_flow.c: `advtrain train-flow`: trains the normalizing flow of the joint-space attack
 * (attack jsa, method ijsat; src/flow/) by maximum likelihood on a data set's training images
 * (uniform dequantisation, Adam), prints the test bits per dimension after every epoch, and
 * writes after every epoch DIR/flow.safetensors (atomically; its metadata describes the network
 * so `--flow FILE` rebuilds it), DIR/optimizer.safetensors (Adam's state, for --resume;
 * train_flow_state.h) and DIR/samples.png, a mosaic of samples at a temperature. A run is
 * determined by its seed (initialisation, data order, dequantisation noise, samples). */
#include "cli.h"
#include "plots.h"
#include "train_flow_state.h"

#include <math.h>
#include <omp.h>
#include <string.h>

typedef struct flow_opts {
    const char *data, *data_dir, *out;
    int epochs, scales, steps, hidden, batch, seed, train_size, test_size, threads, samples;
    double lr, alpha, temperature;
    bool reverse, resume, quiet;
} flow_opts;

static flow_opts opts = {.data = "fashion-mnist", .epochs = 2, .scales = 2, .steps = 4,
                         .hidden = 32, .batch = 64, .lr = 1e-3, .alpha = 0.05, .samples = 64,
                         .temperature = 0.7};

static const cli_option options[] = {
    {"data", CLI_STRING, &opts.data, 0, 0, NULL, "NAME", "data set (see 'advtrain list datasets'); default fashion-mnist"},
    {"data-dir", CLI_STRING, &opts.data_dir, 0, 0, NULL, "DIR", "read the data set from DIR instead of its default directory"},
    {"out", CLI_STRING, &opts.out, 0, 0, NULL, "DIR", "writes DIR/flow.safetensors and DIR/samples.png (required)"},
    {"epochs", CLI_INT, &opts.epochs, 1, 100000, NULL, "N", "epochs; default 2"},
    {"scales", CLI_INT, &opts.scales, 1, 4, NULL, "N", "scales (squeeze, steps, factor out half); default 2"},
    {"steps", CLI_INT, &opts.steps, 1, 16, NULL, "N", "steps (1x1 convolution and affine coupling) per scale; default 4"},
    {"hidden", CLI_INT, &opts.hidden, 1, 1024, NULL, "F", "feature maps of each coupling network; default 32"},
    {"reverse", CLI_FLAG, &opts.reverse, 0, 0, NULL, NULL, "fixed channel reversal (RealNVP) instead of learned 1x1 convolutions (Glow)"},
    {"alpha", CLI_FLOAT, &opts.alpha, 1e-6, 0.49, NULL, "X", "logit pre-transform logit(alpha + (1 - 2 alpha) x); default 0.05"},
    {"lr", CLI_FLOAT, &opts.lr, 1e-8, 10, NULL, "X", "Adam's learning rate (constant); default 1e-3"},
    {"batch", CLI_INT, &opts.batch, 1, 65536, NULL, "N", "batch size; default 64"},
    {"seed", CLI_INT, &opts.seed, 0, 2147483647, NULL, "N", "seed of initialisation, data order and noise; default 0"},
    {"train-size", CLI_INT, &opts.train_size, 0, 100000000, NULL, "N", "train on the first N training images only (0 = all)"},
    {"test-size", CLI_INT, &opts.test_size, 0, 100000000, NULL, "N", "measure bits/dim on the first N test images only (0 = all)"},
    {"samples", CLI_INT, &opts.samples, 1, 1024, NULL, "N", "samples drawn into samples.png; default 64"},
    {"temperature", CLI_FLOAT, &opts.temperature, 0, 10, NULL, "T", "samples are F^-1(T N(0, I)); default 0.7"},
    {"threads", CLI_INT, &opts.threads, 1, 1024, NULL, "N", "threads (default: all cores); results do not depend on it"},
    {"resume", CLI_FLAG, &opts.resume, 0, 0, NULL, NULL, "continue the run in --out after its last whole epoch (--epochs: the total)"},
    {"quiet", CLI_FLAG, &opts.quiet, 0, 0, NULL, NULL, "no per-epoch lines"},
};

static const cli_command command = {
    "train-flow",
    "Train the normalizing flow of the joint-space attack (maximum likelihood). Example:\n"
    "  advtrain train-flow --data fashion-mnist --epochs 2 --out runs/flow\n"
    "  advtrain eval --checkpoint runs/pgd/best.safetensors --attack jsa \\\n"
    "      --flow runs/flow/flow.safetensors --eps 0.1 --eps-z 0.05",
    "advtrain train-flow --out DIR [options]", options, sizeof options / sizeof options[0]};

static int subset(at_dataset *ds, int size, at_error *err)
{
    if (size <= 0 || size >= ds->n)
        return AT_OK;
    at_dataset sub = {0};
    int status = at_dataset_slice(&sub, ds, 0, size, err);
    if (status)
        return status;
    at_dataset_free(ds);
    *ds = sub;
    return AT_OK;
}

/* What a resumed run must share with the run it continues: the data, the network, and every
 * option that changes the weights (the test set and the samples only change what is reported). */
static json_t *run_settings(const at_dataset *train)
{
    char sha[65];
    at_dataset_sha256(train, sha);
    return json_pack("{s:s, s:s, s:i, s:i, s:i, s:i, s:b, s:f, s:f, s:i, s:i}", "--data", opts.data,
                     "training images (SHA-256)", sha, "--train-size", train->n, "--scales",
                     opts.scales, "--steps", opts.steps, "--hidden", opts.hidden, "--reverse",
                     opts.reverse, "--alpha", opts.alpha, "--lr", opts.lr, "--batch", opts.batch,
                     "--seed", opts.seed);
}

/* The samples as one mosaic image, about square, 2 white pixels between tiles. */
static int write_samples(at_flow *flow, const char *path, at_error *err)
{
    const at_flow_options *o = at_flow_get_options(flow);
    const int n = opts.samples, c = o->channels, h = o->height, w = o->width;
    const int batch = at_flow_max_batch(flow);
    int cols = (int)ceil(sqrt((double)n)), rows = (n + cols - 1) / cols;
    const int mh = rows * (h + 2) - 2, mw = cols * (w + 2) - 2;
    const size_t image = (size_t)c * h * w;
    float *x = malloc((size_t)n * image * sizeof(float));
    float *mosaic = malloc((size_t)c * mh * mw * sizeof(float));
    if (!x || !mosaic) {
        free(x), free(mosaic);
        return plot_error(err, AT_ERR_NOMEM, "out of memory");
    }
    at_rng rng;
    at_rng_stream(&rng, (uint64_t)opts.seed, 0, 0x73616d706c65ull /* "sample" */);
    int status = AT_OK;
    for (int first = 0; !status && first < n; first += batch)
        status = at_flow_sample(flow, n - first < batch ? n - first : batch,
                                (float)opts.temperature, &rng, x + (size_t)first * image, err);
    for (size_t j = 0; j < (size_t)c * mh * mw; j++)
        mosaic[j] = 1.0f;
    for (int i = 0; !status && i < n; i++)
        for (int ch = 0; ch < c; ch++)
            for (int y = 0; y < h; y++)
                memcpy(mosaic + ((size_t)ch * mh + (size_t)(i / cols) * (h + 2) + y) * mw +
                           (size_t)(i % cols) * (w + 2),
                       x + (size_t)i * image + ((size_t)ch * h + y) * w, (size_t)w * sizeof(float));
    if (!status)
        status = plot_png_images(path, mosaic, 1, c, mh, mw, h < 64 ? 3 : 1, err);
    free(x), free(mosaic);
    return status;
}

int cmd_train_flow(int argc, char **argv)
{
    int status = cli_parse(&command, argc, argv, NULL);
    if (status)
        return status < 0 ? 0 : status;
    if (!opts.out)
        return cli_error("train-flow", EXIT_USAGE, "--out DIR is required\nusage: %s", command.usage);
    if (opts.threads)
        omp_set_num_threads(opts.threads);
    at_error err;
    at_dataset train = {0}, test = {0};
    at_flow *flow = NULL;
    at_optimizer **adam = NULL;
    json_t *settings = NULL;
    if ((status = cli_open_dataset("train-flow", opts.data, opts.data_dir, "train", &train)))
        return status;
    const bool have_test = at_dataset_open(&test, opts.data, opts.data_dir, "test", &err) == AT_OK;
    if (have_test)
        cli_report_skipped("train-flow", &test, opts.data_dir ? opts.data_dir : opts.data, "test");
    else
        fprintf(stderr, "advtrain train-flow: no test split, bits/dim are measured on the "
                        "training images: %s\n", err.message);
    if (subset(&train, opts.train_size, &err) || (have_test && subset(&test, opts.test_size, &err))) {
        status = cli_error("train-flow", EXIT_WORK_FAILED, "%s", err.message);
        goto done;
    }
    char path[4096], png[4096], state_path[4096];
    snprintf(path, sizeof path, "%s/flow.safetensors", opts.out);
    snprintf(png, sizeof png, "%s/samples.png", opts.out);
    snprintf(state_path, sizeof state_path, "%s/optimizer.safetensors", opts.out);
    const at_flow_options fo = {.channels = train.c, .height = train.h, .width = train.w,
                                .scales = opts.scales, .steps = opts.steps, .hidden = opts.hidden,
                                .reverse = opts.reverse, .alpha = (float)opts.alpha,
                                .seed = (uint64_t)opts.seed};
    if (opts.resume ? at_flow_load(&flow, path, opts.batch, &err)
                    : at_flow_create(&flow, &fo, opts.batch, &err)) {
        status = cli_error("train-flow", opts.resume ? EXIT_WORK_FAILED : EXIT_USAGE, "%s: %s",
                           opts.resume ? "--resume" : opts.data, err.message);
        goto done;
    }
    const int n_models = at_flow_model_count(flow);
    adam = calloc((size_t)n_models, sizeof *adam);
    const at_optimizer_options ao = at_optimizer_defaults(AT_OPTIMIZER_ADAM);
    status = adam ? AT_OK : plot_error(&err, AT_ERR_NOMEM, "out of memory");
    for (int m = 0; !status && m < n_models; m++)
        status = at_optimizer_create(&adam[m], at_flow_model(flow, m), &ao, &err);
    if (status || cli_mkdirs(opts.out, &err)) {
        status = cli_error("train-flow", EXIT_WORK_FAILED, "%s", err.message);
        goto done;
    }
    int first_epoch = 0;
    if (!(settings = run_settings(&train))) {
        status = cli_error("train-flow", EXIT_WORK_FAILED, "out of memory");
        goto done;
    }
    if (opts.resume &&
        (status = flow_state_load(state_path, adam, n_models, settings, path, &first_epoch)))
        goto done;
    if (first_epoch >= opts.epochs) {
        printf("%s: already trained %d epochs (--epochs %d)\n", opts.out, first_epoch,
               opts.epochs);
        goto done;
    }
    const at_dataset *judged = have_test ? &test : &train;
    if (!opts.quiet)
        fprintf(stderr, "training a flow (%d scales x %d steps, %d hidden, %s) on %s (%d images), "
                "epochs %d to %d, %d threads\n", opts.scales, opts.steps, opts.hidden,
                opts.reverse ? "channel reversal" : "1x1 convolutions", opts.data, train.n,
                first_epoch + 1, opts.epochs, omp_get_max_threads());
    double bpd = NAN;
    for (int epoch = first_epoch; epoch < opts.epochs; epoch++) {
        at_rng rng;
        at_rng_stream(&rng, (uint64_t)opts.seed, (uint64_t)epoch, 0x666c6f77ull);
        double start = cli_now(), train_bpd;
        if (at_flow_train_epoch(flow, adam, &train, opts.batch, (float)opts.lr, &rng, &train_bpd,
                                &err) ||
            at_flow_test_bpd(flow, judged, (uint64_t)opts.seed, &bpd, &err)) {
            status = cli_error("train-flow", EXIT_WORK_FAILED, "%s", err.message);
            goto done;
        }
        if (!opts.quiet)
            printf("epoch %d/%d  train bits/dim %.4f  %s bits/dim %.4f  %.1f s\n", epoch + 1,
                   opts.epochs, train_bpd, have_test ? "test" : "train", bpd, cli_now() - start);
        /* after every epoch, so a long run stopped early leaves its last whole epoch */
        if (at_flow_save(path, flow, &err) || write_samples(flow, png, &err)) {
            status = cli_error("train-flow", EXIT_WORK_FAILED, "%s", err.message);
            goto done;
        }
        if ((status = flow_state_save(state_path, adam, n_models, epoch + 1, settings, path)))
            goto done;
        fflush(stdout);
    }
    printf("%s bits/dim %.4f\nwrote %s\nwrote %s\nwrote %s\n", have_test ? "test" : "train", bpd,
           path, state_path, png);
done:
    json_decref(settings);
    for (int m = 0; adam && m < at_flow_model_count(flow); m++)
        at_optimizer_free(adam[m]);
    free(adam);
    at_flow_free(flow);
    at_dataset_free(&train);
    at_dataset_free(&test);
    return status;
}
