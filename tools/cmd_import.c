/* cmd_import.c: `advtrain import`: a PyTorch state_dict of a reference architecture, saved as
 * safetensors, or an ONNX model (`advtrain import model.onnx --out FILE`, any graph of the
 * operators onnx_import.c supports) becomes a self-describing advtrain checkpoint. For a
 * state_dict the names, shapes and dtypes are checked (a clear error for any mismatch); a
 * wrapper module's prefix ("model.", "module.") is recognised, and so are a normalisation
 * wrapper's "mean"/"std" (or "mu"/"sigma") buffers, which become the model's input
 * normalisation; the number of classes is read from the last layer. */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

typedef struct import_opts {
    const char *model, *weights, *out;
    int classes;
    cli_float_list input, mean, std;
} import_opts;

static import_opts opts;

static const cli_option options[] = {
    {"model", CLI_STRING, &opts.model, 0, 0, NULL, "ARCH", "architecture of the state_dict (required)"},
    {"weights", CLI_STRING, &opts.weights, 0, 0, NULL, "FILE", "safetensors file of a PyTorch state_dict (required)"},
    {"out", CLI_STRING, &opts.out, 0, 0, NULL, "FILE", "advtrain checkpoint to write (required)"},
    {"num-classes", CLI_INT, &opts.classes, 2, 100000, NULL, "K", "classes; default: read from the last layer"},
    {"input", CLI_FLOAT_LIST, &opts.input, 1, 65536, NULL, "C,H,W", "input shape; default: the architecture's"},
    {"mean", CLI_FLOAT_LIST, &opts.mean, -1000, 1000, NULL, "M1,..", "input normalisation mean, when not in the file"},
    {"std", CLI_FLOAT_LIST, &opts.std, 1e-6, 1000, NULL, "S1,..", "input normalisation std, when not in the file"},
};

static const cli_command command = {
    "import",
    "Turn a PyTorch state_dict saved as safetensors, or an ONNX model, into an advtrain\n"
    "checkpoint. Examples:\n"
    "  advtrain import --model preact-resnet18 --weights torch.safetensors --out model.safetensors\n"
    "  advtrain import model.onnx --out model.safetensors",
    "advtrain import --model ARCH --weights FILE --out FILE [options] | import FILE.onnx --out FILE",
    options,
    sizeof options / sizeof options[0]};

/* A normalisation wrapper's per-channel buffer, flattened: [C] or [1, C, 1, 1]. */
static int read_channels(const at_st_tensor *t, float *out, int channels)
{
    size_t n = 1;
    for (int d = 0; d < t->ndim; d++)
        n *= (size_t)t->shape[d];
    if (strcmp(t->dtype, "F32") != 0 || (int)n != channels || channels > 4)
        return -1;
    memcpy(out, t->data, n * sizeof(float));
    return 0;
}

/* The ONNX file's graph and weights, its path and SHA-256 recorded beside its description. */
static int import_onnx(const char *path)
{
    if (opts.model || opts.weights || opts.classes || opts.input.count || opts.mean.count ||
        opts.std.count)
        return cli_error("import", EXIT_USAGE, "an ONNX file describes its model: give only --out");
    if (!opts.out)
        return cli_error("import", EXIT_USAGE, "--out is required\nusage: %s", command.usage);
    at_error err;
    at_model *model = NULL;
    char hash[65];
    if (at_model_import_onnx(&model, path, &err) || at_file_sha256(path, hash, &err))
        return cli_error("import", EXIT_WORK_FAILED, "%s", err.message);
    char *spec = at_model_spec(model);
    at_kv meta[] = {{"model", spec}, {"imported_from", path}, {"imported_sha256", hash},
                    {"advtrain_version", AT_VERSION_STRING}};
    if (!spec) {
        at_model_free(model);
        return cli_error("import", EXIT_WORK_FAILED, "out of memory describing the model");
    }
    int status = at_checkpoint_save(opts.out, model, NULL, meta, 4, &err);
    free(spec);
    if (status == AT_OK)
        printf("imported %s (%d layers, %d classes) into %s\n", path, at_model_node_count(model) - 1,
               at_model_num_classes(model), opts.out);
    at_model_free(model);
    return status ? cli_error("import", EXIT_WORK_FAILED, "%s", err.message) : 0;
}

int cmd_import(int argc, char **argv)
{
    /* `import FILE.onnx --out ...`: the file stands before the options */
    const char *onnx = argc > 1 && argv[1][0] != '-' ? argv[1] : NULL;
    if (onnx && !at_is_onnx_path(onnx))
        return cli_error("import", EXIT_USAGE, "%s: only an ONNX file (.onnx) is taken without an "
                         "option; a state_dict takes --model and --weights", onnx);
    if (onnx) {
        argv[1] = argv[0];
        argc--;
        argv++;
    }
    int status = cli_parse(&command, argc, argv, NULL);
    if (status)
        return status < 0 ? 0 : status;
    if (onnx)
        return import_onnx(onnx);
    if (!opts.model || !opts.weights || !opts.out)
        return cli_error("import", EXIT_USAGE, "--model, --weights and --out are required\nusage: %s",
                         command.usage);
    if (opts.input.count && opts.input.count != 3)
        return cli_error("import", EXIT_USAGE, "--input takes C,H,W");
    at_error err;
    at_safetensors *st = NULL;
    at_model *model = NULL;
    if (at_st_open(&st, opts.weights, &err))
        return cli_error("import", EXIT_WORK_FAILED, "%s", err.message);
    at_model_options o = {.num_classes = opts.classes};
    if (opts.input.count) {
        o.in_channels = (int)opts.input.values[0];
        o.in_height = (int)opts.input.values[1];
        o.in_width = (int)opts.input.values[2];
    }
    /* a first model tells the names to look for */
    if (at_model_create(&model, opts.model, &o, &err)) {
        status = cli_error("import", EXIT_USAGE, "%s", err.message);
        goto done;
    }
    static const char *const prefixes[] = {"", "model.", "module."};
    const char *prefix = NULL;
    char name[512];
    const char *first = at_model_tensor(model, 0).name;
    for (int i = 0; i < 3 && !prefix; i++) {
        snprintf(name, sizeof name, "%s%s", prefixes[i], first);
        if (at_st_find(st, name))
            prefix = prefixes[i];
    }
    if (!prefix) {
        status = cli_error("import", EXIT_WORK_FAILED, "%s: no tensor %s (nor with a model. or module. "
                           "prefix): is this a state_dict of %s?", opts.weights, first, opts.model);
        goto done;
    }
    /* the classes, from the last layer's output dimension */
    at_tensor_info last = at_model_tensor(model, at_model_tensor_count(model) - 1);
    snprintf(name, sizeof name, "%s%s", prefix, last.name);
    const at_st_tensor *lt = at_st_find(st, name);
    if (!opts.classes && lt && lt->ndim >= 1)
        o.num_classes = (int)lt->shape[0];
    /* a normalisation wrapper's buffers */
    static const char *const norm_names[2][2] = {{"mean", "std"}, {"mu", "sigma"}};
    const char *ignore[3] = {NULL, NULL, NULL};
    int c;
    at_model_input_shape(model, &c, NULL, NULL);
    for (int i = 0; i < 2; i++) {
        const at_st_tensor *m = at_st_find(st, norm_names[i][0]), *s = at_st_find(st, norm_names[i][1]);
        if (!m || !s)
            continue;
        if (opts.mean.count || opts.std.count) {
            status = cli_error("import", EXIT_USAGE, "%s holds %s/%s already: drop --mean/--std",
                               opts.weights, norm_names[i][0], norm_names[i][1]);
            goto done;
        }
        if (read_channels(m, o.mean, c) || read_channels(s, o.std, c)) {
            status = cli_error("import", EXIT_WORK_FAILED, "%s: %s/%s must be F32 with %d values",
                               opts.weights, norm_names[i][0], norm_names[i][1], c);
            goto done;
        }
        o.normalize = 1;
        ignore[0] = norm_names[i][0];
        ignore[1] = norm_names[i][1];
    }
    if (opts.mean.count || opts.std.count) {
        if (opts.mean.count != c || opts.std.count != c) {
            status = cli_error("import", EXIT_USAGE, "--mean and --std need %d value(s) each", c);
            goto done;
        }
        o.normalize = 1;
        for (int i = 0; i < c; i++) {
            o.mean[i] = (float)opts.mean.values[i];
            o.std[i] = (float)opts.std.values[i];
        }
    }
    at_model_free(model);
    model = NULL;
    if (at_model_create(&model, opts.model, &o, &err) ||
        at_checkpoint_import(opts.weights, model, prefix, ignore, &err)) {
        status = cli_error("import", EXIT_WORK_FAILED, "%s", err.message);
        goto done;
    }
    char hash[65];
    char *spec = at_model_spec(model);
    if (at_file_sha256(opts.weights, hash, &err)) {
        free(spec);
        status = cli_error("import", EXIT_WORK_FAILED, "%s", err.message);
        goto done;
    }
    at_kv meta[] = {{"model", spec}, {"imported_from", opts.weights}, {"imported_sha256", hash},
                    {"advtrain_version", AT_VERSION_STRING}};
    status = at_checkpoint_save(opts.out, model, NULL, meta, 4, &err);
    free(spec);
    if (status) {
        status = cli_error("import", EXIT_WORK_FAILED, "%s", err.message);
        goto done;
    }
    printf("imported %s (%s, %d classes%s%s) into %s\n", opts.weights, opts.model, o.num_classes,
           prefix[0] ? ", prefix " : "", prefix, opts.out);
    status = 0;
done:
    at_model_free(model);
    at_st_free(st);
    return status;
}
