/* onnx_dump.c: one pass of a model imported from ONNX (or of the checkpoint `advtrain import`
 * made from it), for the ONNX reference tier, which compares every number with PyTorch's.
 *
 *   onnx_dump MODEL.onnx|CHECKPOINT.safetensors X.f32 Y.i32 N OUT.f32
 *
 * X holds N images (float32, NCHW, the model's input shape), Y their N labels (int32). OUT
 * receives, as float32 in this order: the logits with batch norm in eval mode [N, K], the mean
 * cross-entropy [1], its gradient with respect to the input [N, C, H, W], and the logits with
 * batch norm using the batch's statistics [N, K] (PyTorch's train mode, without the update). */
#include "advtrain.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(const char *what, const char *detail)
{
    fprintf(stderr, "onnx_dump: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
    return 1;
}

static int load(const char *path, at_model **model, at_error *err)
{
    if (at_is_onnx_path(path))
        return at_model_import_onnx(model, path, err);
    at_safetensors *st;
    int status = at_st_open(&st, path, err);
    if (status)
        return status;
    const char *spec = at_st_meta(st, "model");
    status = spec ? at_model_create_from_spec(model, spec, err)
                  : (snprintf(err->message, sizeof err->message, "%s: no model description",
                              path), AT_ERR_FORMAT);
    at_st_free(st);
    return status ? status : at_checkpoint_load(path, *model, NULL, NULL, err);
}

static int read_all(const char *path, void *out, size_t bytes)
{
    FILE *f = fopen(path, "rb");
    size_t got = f ? fread(out, 1, bytes, f) : 0;
    if (f)
        fclose(f);
    return got == bytes ? 0 : -1;
}

int main(int argc, char **argv)
{
    if (argc != 6)
        return fail("usage: onnx_dump MODEL X.f32 Y.i32 N OUT.f32", NULL);
    at_error err;
    at_model *m = NULL;
    if (load(argv[1], &m, &err))
        return fail("loading the model", err.message);
    const int n = atoi(argv[4]);
    int c, h, w;
    at_model_input_shape(m, &c, &h, &w);
    const size_t image = (size_t)c * h * w;
    const int k = at_model_num_classes(m);
    float *x = malloc((size_t)n * image * sizeof(float));
    int32_t *y = malloc((size_t)n * sizeof(int32_t));
    float *dlogits = malloc((size_t)n * k * sizeof(float));
    if (n < 1 || !x || !y || !dlogits || read_all(argv[2], x, (size_t)n * image * sizeof(float)) ||
        read_all(argv[3], y, (size_t)n * sizeof(int32_t)))
        return fail("reading the inputs", argv[2]);
    at_pass *p;
    if (at_pass_create(&p, m, n, AT_PASS_NO_WEIGHT_GRADS, &err))
        return fail("creating a pass", err.message);
    FILE *out = fopen(argv[5], "wb");
    if (!out)
        return fail("cannot write", argv[5]);
    at_forward(p, x, n, AT_BN_EVAL);
    fwrite(at_pass_logits(p), sizeof(float), (size_t)n * k, out);
    float loss = at_loss_cross_entropy(at_pass_logits(p), n, k, &(at_ce_target){.labels = y}, NULL,
                                       dlogits);
    fwrite(&loss, sizeof loss, 1, out);
    at_backward(p, dlogits, AT_GRAD_INPUT);
    fwrite(at_pass_input_grad(p), sizeof(float), (size_t)n * image, out);
    at_forward(p, x, n, AT_BN_BATCH_STATS);
    fwrite(at_pass_logits(p), sizeof(float), (size_t)n * k, out);
    fclose(out);
    at_pass_free(p);
    at_model_free(m);
    free(x);
    free(y);
    free(dlogits);
    return 0;
}
