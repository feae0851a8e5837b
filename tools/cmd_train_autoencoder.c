/* cmd_train_autoencoder.c: `advtrain train-autoencoder`: trains the small convolutional
 * autoencoder of method ada (models/autoencoder.c) to reconstruct a data set's training images
 * (mean squared error, Adam), prints the reconstruction error and PSNR on the test split after
 * every epoch, and writes DIR/autoencoder.safetensors (atomically), whose metadata describes the
 * network so `advtrain train --method ada --autoencoder FILE` rebuilds it. A run is determined by
 * its seed (initialisation and data order). */
#include "cli.h"

#include <math.h>
#include <omp.h>
#include <string.h>

typedef struct ae_opts {
    const char *data, *data_dir, *out;
    int epochs, width, batch, seed, train_size, test_size, threads;
    double lr;
    bool quiet;
} ae_opts;

static ae_opts opts = {.data = "fashion-mnist", .epochs = 5, .width = 32, .batch = 64,
                       .lr = 1e-3};

static const cli_option options[] = {
    {"data", CLI_STRING, &opts.data, 0, 0, NULL, "NAME", "data set (see 'advtrain list datasets'); default fashion-mnist"},
    {"data-dir", CLI_STRING, &opts.data_dir, 0, 0, NULL, "DIR", "read the data set from DIR instead of its default directory"},
    {"out", CLI_STRING, &opts.out, 0, 0, NULL, "DIR", "writes DIR/autoencoder.safetensors (required)"},
    {"epochs", CLI_INT, &opts.epochs, 1, 100000, NULL, "N", "epochs; default 5"},
    {"width", CLI_INT, &opts.width, 1, 1024, NULL, "F", "feature maps of the first layer (F, 2F, 2F, 2F, F); default 32"},
    {"lr", CLI_FLOAT, &opts.lr, 1e-8, 10, NULL, "X", "Adam's learning rate (constant); default 1e-3"},
    {"batch", CLI_INT, &opts.batch, 1, 65536, NULL, "N", "batch size; default 64"},
    {"seed", CLI_INT, &opts.seed, 0, 2147483647, NULL, "N", "seed of initialisation and data order; default 0"},
    {"train-size", CLI_INT, &opts.train_size, 0, 100000000, NULL, "N", "train on the first N training images only (0 = all)"},
    {"test-size", CLI_INT, &opts.test_size, 0, 100000000, NULL, "N", "measure the error on the first N test images only (0 = all)"},
    {"threads", CLI_INT, &opts.threads, 1, 1024, NULL, "N", "threads (default: all cores); results do not depend on it"},
    {"quiet", CLI_FLAG, &opts.quiet, 0, 0, NULL, NULL, "no per-epoch lines"},
};

static const cli_command command = {
    "train-autoencoder",
    "Train the autoencoder whose weights method ada perturbs. Example:\n"
    "  advtrain train-autoencoder --data fashion-mnist --epochs 3 --out runs/ae\n"
    "  advtrain train --method ada --autoencoder runs/ae/autoencoder.safetensors --out runs/ada",
    "advtrain train-autoencoder --out DIR [options]", options,
    sizeof options / sizeof options[0]};

/* Peak signal-to-noise ratio of a mean squared error on [0,1] pixels. */
static double psnr(double mse) { return mse > 0.0 ? 10.0 * log10(1.0 / mse) : INFINITY; }

int cmd_train_autoencoder(int argc, char **argv)
{
    int status = cli_parse(&command, argc, argv, NULL);
    if (status)
        return status < 0 ? 0 : status;
    if (!opts.out)
        return cli_error("train-autoencoder", EXIT_USAGE, "--out DIR is required\nusage: %s",
                         command.usage);
    if (opts.threads)
        omp_set_num_threads(opts.threads);
    at_error err;
    at_dataset train = {0}, test = {0};
    at_model *ae = NULL;
    at_pass *pass = NULL;
    at_optimizer *adam = NULL;
    if ((status = cli_open_dataset("train-autoencoder", opts.data, opts.data_dir, "train", &train)))
        return status;
    if (opts.train_size > 0 && opts.train_size < train.n) {
        at_dataset sub = {0};
        if (at_dataset_slice(&sub, &train, 0, opts.train_size, &err)) {
            status = cli_error("train-autoencoder", EXIT_WORK_FAILED, "%s", err.message);
            goto done;
        }
        at_dataset_free(&train);
        train = sub;
    }
    const bool have_test = at_dataset_open(&test, opts.data, opts.data_dir, "test", &err) == AT_OK;
    if (have_test)
        cli_report_skipped("train-autoencoder", &test, opts.data_dir ? opts.data_dir : opts.data,
                           "test");
    if (have_test && opts.test_size > 0 && opts.test_size < test.n) {
        at_dataset sub = {0};
        if (at_dataset_slice(&sub, &test, 0, opts.test_size, &err)) {
            status = cli_error("train-autoencoder", EXIT_WORK_FAILED, "%s", err.message);
            goto done;
        }
        at_dataset_free(&test);
        test = sub;
    }
    if (!have_test)
        fprintf(stderr, "advtrain train-autoencoder: no test split, the error is measured on the "
                        "training images: %s\n", err.message);
    const at_optimizer_options o = at_optimizer_defaults(AT_OPTIMIZER_ADAM);
    if (at_autoencoder_create(&ae, train.c, train.h, train.w, opts.width, (uint64_t)opts.seed,
                              &err)) {
        status = cli_error("train-autoencoder", EXIT_USAGE, "%s: %s", opts.data, err.message);
        goto done;
    }
    if (at_pass_create(&pass, ae, opts.batch, 0, &err) ||
        at_optimizer_create(&adam, ae, &o, &err) || cli_mkdirs(opts.out, &err)) {
        status = cli_error("train-autoencoder", EXIT_WORK_FAILED, "%s", err.message);
        goto done;
    }
    const at_dataset *judged = have_test ? &test : &train;
    if (!opts.quiet)
        fprintf(stderr, "training autoencoder-%d on %s (%d images), %d epochs, %d threads\n",
                opts.width, opts.data, train.n, opts.epochs, omp_get_max_threads());
    for (int epoch = 0; epoch < opts.epochs; epoch++) {
        at_rng rng;
        at_rng_stream(&rng, (uint64_t)opts.seed, (uint64_t)epoch, 1);
        double start = cli_now(), train_mse, mse;
        if (at_autoencoder_train_epoch(pass, adam, &train, opts.batch, (float)opts.lr, &rng,
                                       &train_mse, &err) ||
            at_autoencoder_mse(ae, judged, 500, &mse, &err)) {
            status = cli_error("train-autoencoder", EXIT_WORK_FAILED, "%s", err.message);
            goto done;
        }
        if (!opts.quiet)
            printf("epoch %d/%d  train mse %.6f  %s mse %.6f  psnr %.2f dB  %.1f s\n", epoch + 1,
                   opts.epochs, train_mse, have_test ? "test" : "train", mse, psnr(mse),
                   cli_now() - start);
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/autoencoder.safetensors", opts.out);
    if (at_autoencoder_save(path, ae, &err)) {
        status = cli_error("train-autoencoder", EXIT_WORK_FAILED, "%s", err.message);
        goto done;
    }
    if (!opts.quiet)
        printf("wrote %s\n", path);
done:
    at_optimizer_free(adam);
    at_pass_free(pass);
    at_model_free(ae);
    at_dataset_free(&train);
    at_dataset_free(&test);
    return status;
}
