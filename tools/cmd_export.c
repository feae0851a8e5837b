/* cmd_export.c: `advtrain export`: an advtrain checkpoint as a plain PyTorch state_dict in
 * safetensors (model tensors only, PyTorch names, no optimiser state), or with --onnx as an ONNX
 * file for any ONNX runtime (at_model_export_onnx). With
 * --wrap-normalization a model with input normalisation is written as a normalisation wrapper
 * would hold it: every name under "model." plus "mean" and "std" buffers of shape [1, C, 1, 1]. */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

typedef struct export_opts {
    const char *checkpoint, *out, *onnx;
    bool wrap;
} export_opts;

static export_opts opts;

static const cli_option options[] = {
    {"checkpoint", CLI_STRING, &opts.checkpoint, 0, 0, NULL, "FILE", "advtrain checkpoint (required; with --onnx also a .onnx file)"},
    {"out", CLI_STRING, &opts.out, 0, 0, NULL, "FILE", "safetensors state_dict to write"},
    {"onnx", CLI_STRING, &opts.onnx, 0, 0, NULL, "FILE", "ONNX model to write instead (opset 13)"},
    {"wrap-normalization", CLI_FLAG, &opts.wrap, 0, 0, NULL, NULL, "names under model. with mean/std buffers"},
};

static const cli_command command = {
    "export",
    "Write a checkpoint's weights as a PyTorch state_dict in safetensors, or the model as an ONNX\n"
    "file to run in any ONNX runtime. Examples:\n"
    "  advtrain export --checkpoint runs/at/best.safetensors --out state_dict.safetensors\n"
    "  advtrain export --checkpoint runs/at/best.safetensors --onnx model.onnx",
    "advtrain export --checkpoint FILE (--out FILE [--wrap-normalization] | --onnx FILE)", options,
    sizeof options / sizeof options[0]};

/* The loaded model as an ONNX file. */
static int export_onnx(const at_model *model)
{
    at_error err;
    if (at_model_export_onnx(model, opts.onnx, &err))
        return cli_error("export", EXIT_WORK_FAILED, "%s", err.message);
    printf("exported %s (%d layers, %d classes) to %s\n", opts.checkpoint,
           at_model_node_count(model), at_model_num_classes(model), opts.onnx);
    return 0;
}

int cmd_export(int argc, char **argv)
{
    int status = cli_parse(&command, argc, argv, NULL);
    if (status)
        return status < 0 ? 0 : status;
    if (!opts.checkpoint || !opts.out == !opts.onnx || (opts.onnx && opts.wrap))
        return cli_error("export", EXIT_USAGE,
                         "--checkpoint and one of --out or --onnx are required (--wrap-normalization "
                         "goes with --out); usage: %s",
                         command.usage);
    at_error err;
    at_safetensors *st = NULL;
    at_model *model = NULL;
    at_st_writer *w = NULL;
    char (*names)[256] = NULL;
    if (opts.onnx && at_is_onnx_path(opts.checkpoint)) { /* an ONNX file, written anew */
        status = at_model_import_onnx(&model, opts.checkpoint, &err)
                     ? cli_error("export", EXIT_WORK_FAILED, "%s", err.message)
                     : export_onnx(model);
        at_model_free(model);
        return status;
    }
    if (at_st_open(&st, opts.checkpoint, &err))
        return cli_error("export", EXIT_WORK_FAILED, "%s", err.message);
    const char *spec = at_st_meta(st, "model");
    if (!spec) {
        status = cli_error("export", EXIT_WORK_FAILED, "%s does not describe its model (not an "
                           "advtrain checkpoint?)", opts.checkpoint);
        goto done;
    }
    if (at_model_create_from_spec(&model, spec, &err) ||
        at_checkpoint_load(opts.checkpoint, model, NULL, NULL, &err) ||
        (!opts.onnx && at_st_writer_create(&w, &err))) {
        status = cli_error("export", EXIT_WORK_FAILED, "%s", err.message);
        goto done;
    }
    if (opts.onnx) {
        status = export_onnx(model);
        goto done;
    }
    const at_model_options *o = at_model_get_options(model);
    if (opts.wrap && !o->normalize) {
        status = cli_error("export", EXIT_USAGE, "--wrap-normalization: %s has no input normalisation",
                           opts.checkpoint);
        goto done;
    }
    const int n = at_model_tensor_count(model);
    names = calloc((size_t)n, sizeof *names);
    if (!names) {
        status = cli_error("export", EXIT_WORK_FAILED, "out of memory");
        goto done;
    }
    for (int i = 0; i < n && !status; i++) {
        at_tensor_info t = at_model_tensor(model, i);
        snprintf(names[i], sizeof names[i], "%s%s", opts.wrap ? "model." : "", t.name);
        const void *data = t.dtype == AT_F32 ? (const void *)t.data : (const void *)t.data_i64;
        size_t bytes = t.numel * (t.dtype == AT_F32 ? 4 : 8);
        if (at_st_writer_add(w, names[i], t.dtype == AT_F32 ? "F32" : "I64", t.ndim, t.shape, data,
                             bytes, &err))
            status = cli_error("export", EXIT_WORK_FAILED, "%s", err.message);
    }
    int c;
    at_model_input_shape(model, &c, NULL, NULL);
    int64_t shape[4] = {1, c, 1, 1};
    if (!status && opts.wrap &&
        (at_st_writer_add(w, "mean", "F32", 4, shape, o->mean, (size_t)c * 4, &err) ||
         at_st_writer_add(w, "std", "F32", 4, shape, o->std, (size_t)c * 4, &err)))
        status = cli_error("export", EXIT_WORK_FAILED, "%s", err.message);
    if (!status && (at_st_writer_meta(w, "format", "pt", &err) ||
                    at_st_writer_meta(w, "model", spec, &err) ||
                    at_st_writer_save(w, opts.out, &err)))
        status = cli_error("export", EXIT_WORK_FAILED, "%s", err.message);
    if (!status)
        printf("exported %s (%d tensors%s) to %s\n", opts.checkpoint, n,
               opts.wrap ? ", wrapped with mean/std" : "", opts.out);
done:
    free(names);
    at_st_writer_free(w);
    at_model_free(model);
    at_st_free(st);
    return status;
}
