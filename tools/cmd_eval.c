/* cmd_eval.c: `advtrain eval`: load a checkpoint (an advtrain checkpoint, or a weights-only
 * safetensors file with PyTorch names plus --model) and measure it on a data split. Reports give
 * every accuracy with its 95% confidence interval and the batch-norm mode used. */
#include "cli.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

typedef struct eval_opts {
    const char *data, *data_dir, *model, *checkpoint, *split, *json;
    int batch_size, n, threads;
    cli_float_list mean, std;
} eval_opts;

static eval_opts opts = {.data = "fashion-mnist", .split = "test", .batch_size = 500};

static const cli_option options[] = {
    {"checkpoint", CLI_STRING, &opts.checkpoint, 0, 0, NULL, "FILE", "safetensors file to evaluate (required)"},
    {"model", CLI_STRING, &opts.model, 0, 0, NULL, "ARCH", "architecture; needed when FILE holds weights only"},
    {"data", CLI_STRING, &opts.data, 0, 0, NULL, "NAME", "data set; default fashion-mnist"},
    {"data-dir", CLI_STRING, &opts.data_dir, 0, 0, NULL, "DIR", "read the data set from DIR instead of its default directory"},
    {"split", CLI_CHOICE, &opts.split, 0, 0, "test|train", NULL, "which split; default test"},
    {"n", CLI_INT, &opts.n, 1, 100000000, NULL, "N", "evaluate the first N examples only"},
    {"batch-size", CLI_INT, &opts.batch_size, 1, 65536, NULL, "N", "batch size; default 500"},
    {"mean", CLI_FLOAT_LIST, &opts.mean, -1000, 1000, NULL, "M1,..", "weights-only files: input normalisation mean (with --std)"},
    {"std", CLI_FLOAT_LIST, &opts.std, 1e-6, 1000, NULL, "S1,..", "weights-only files: input normalisation std"},
    {"json", CLI_STRING, &opts.json, 0, 0, NULL, "FILE", "write the report to FILE"},
    {"threads", CLI_INT, &opts.threads, 1, 1024, NULL, "N", "threads (default: all cores)"},
};

static const cli_command command = {
    "eval",
    "Evaluate a checkpoint on a data split. Example:\n"
    "  advtrain eval --checkpoint runs/clean/last.safetensors --data fashion-mnist --json r.json",
    "advtrain eval --checkpoint FILE [options]", options, sizeof options / sizeof options[0]};

/* The model a file describes, or the one named by --model for weights-only files. */
static int build_model(const at_dataset *ds, at_model **model)
{
    at_error err;
    at_safetensors *st = NULL;
    if (at_st_open(&st, opts.checkpoint, &err))
        return cli_error("eval", EXIT_WORK_FAILED, "%s", err.message);
    const char *spec = at_st_meta(st, "model");
    int status = 0;
    if (spec && !opts.model && !opts.mean.count) {
        if (at_model_create_from_spec(model, spec, &err))
            status = cli_error("eval", EXIT_WORK_FAILED, "%s: %s", opts.checkpoint, err.message);
    } else if (!opts.model) {
        status = cli_error("eval", EXIT_USAGE,
                           "%s holds weights only; name its architecture with --model",
                           opts.checkpoint);
    } else {
        at_model_options mo = {.num_classes = ds->num_classes, .in_channels = ds->c,
                               .in_height = ds->h, .in_width = ds->w};
        if (opts.mean.count || opts.std.count) {
            if (opts.mean.count != ds->c || opts.std.count != ds->c)
                status = cli_error("eval", EXIT_USAGE, "--mean and --std need %d value(s) each", ds->c);
            mo.normalize = 1;
            for (int i = 0; i < ds->c && i < 4; i++) {
                mo.mean[i] = (float)opts.mean.values[i];
                mo.std[i] = (float)opts.std.values[i];
            }
        }
        if (!status && at_model_create(model, opts.model, &mo, &err))
            status = cli_error("eval", EXIT_USAGE, "%s", err.message);
    }
    at_st_free(st);
    return status;
}

int cmd_eval(int argc, char **argv)
{
    int status = cli_parse(&command, argc, argv, NULL);
    if (status)
        return status < 0 ? 0 : status;
    if (!opts.checkpoint)
        return cli_error("eval", EXIT_USAGE, "--checkpoint FILE is required\nusage: %s", command.usage);
    if (opts.threads)
        omp_set_num_threads(opts.threads);

    at_dataset ds = {0};
    at_model *model = NULL;
    json_t *report = NULL;
    at_error err;
    status = cli_open_dataset("eval", opts.data, opts.data_dir, opts.split, &ds);
    if (status)
        return status;
    if (opts.n && opts.n < ds.n) {
        at_dataset sub = {0};
        if (at_dataset_slice(&sub, &ds, 0, opts.n, &err)) {
            status = cli_error("eval", EXIT_WORK_FAILED, "%s", err.message);
            goto done;
        }
        at_dataset_free(&ds);
        ds = sub;
    }
    status = build_model(&ds, &model);
    if (status)
        goto done;
    if (at_checkpoint_load(opts.checkpoint, model, NULL, NULL, &err)) {
        status = cli_error("eval", EXIT_WORK_FAILED, "%s", err.message);
        goto done;
    }
    int c, h, w;
    at_model_input_shape(model, &c, &h, &w);
    if (c != ds.c || h != ds.h || w != ds.w || at_model_num_classes(model) < ds.num_classes) {
        status = cli_error("eval", EXIT_WORK_FAILED,
                           "%s: the model takes %dx%dx%d inputs with %d classes, %s has %dx%dx%d with %d",
                           opts.checkpoint, c, h, w, at_model_num_classes(model), ds.name, ds.c,
                           ds.h, ds.w, ds.num_classes);
        goto done;
    }
    double start = cli_now();
    long correct;
    double loss, lo, hi;
    if (at_evaluate_clean(model, &ds, opts.batch_size, &correct, &loss, &err)) {
        status = cli_error("eval", EXIT_WORK_FAILED, "%s", err.message);
        goto done;
    }
    double seconds = cli_now() - start, acc = (double)correct / ds.n;
    cli_wilson(correct, ds.n, &lo, &hi);
    printf("%s on %s/%s (%d examples): clean accuracy %.2f%% (95%% CI %.2f-%.2f%%), loss %.4f, "
           "BN eval mode, %.1f s\n",
           opts.checkpoint, ds.name, opts.split, ds.n, 100 * acc, 100 * lo, 100 * hi, loss, seconds);
    if (opts.json) {
        char *spec = at_model_spec(model);
        report = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:i, s:{s:I, s:f, s:[f,f], s:f, s:s}, s:f}",
                           "command", "eval", "advtrain_version", AT_VERSION_STRING, "checkpoint",
                           opts.checkpoint, "model_spec", spec ? spec : "", "data", ds.name, "split",
                           opts.split, "n", ds.n, "clean", "correct", (json_int_t)correct,
                           "accuracy", acc, "ci95", lo, hi, "loss", loss, "bn_mode", "eval",
                           "seconds", seconds);
        free(spec);
        if (cli_write_json(opts.json, report, &err)) {
            status = cli_error("eval", EXIT_WORK_FAILED, "%s", err.message);
            goto done;
        }
    }
    status = 0;
done:
    json_decref(report);
    at_model_free(model);
    at_dataset_free(&ds);
    return status;
}
