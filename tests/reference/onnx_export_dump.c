/* onnx_export_dump.c: models exported as ONNX files with advtrain's own logits beside them, for
 * the export reference tier (onnx_export_reference.py), which runs each file in other runtimes.
 *
 *   onnx_export_dump DIR
 *
 * For each case NAME it writes DIR/NAME.onnx, DIR/NAME.x.f32 (N random images in [0, 1], float32
 * NCHW) and DIR/NAME.logits.f32 (advtrain's logits [N, K], batch norm on running statistics),
 * and one line "NAME N C H W K" per case to DIR/cases.txt. Every float tensor is random (running
 * variances positive), so that no bias or statistic goes unchecked. */
#include "advtrain.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { N = 4 };

static float uniform(unsigned *seed)
{
    *seed = *seed * 1664525u + 1013904223u;
    return (float)((*seed >> 8) / 16777216.0);
}

static void randomise(at_model *m, unsigned seed)
{
    for (int i = 0; i < at_model_tensor_count(m); i++) {
        at_tensor_info t = at_model_tensor(m, i);
        if (t.dtype != AT_F32)
            continue;
        const bool variance = strstr(t.name, "running_var") != NULL;
        const float spread = strstr(t.name, "weight") ? 2.0f / sqrtf((float)(t.numel / t.shape[0]))
                                                      : 0.2f;
        for (size_t j = 0; j < t.numel; j++)
            t.data[j] = variance ? 0.5f + uniform(&seed) : spread * (uniform(&seed) - 0.5f);
    }
}

/* The layers no architecture uses: PReLU (shared and per channel), uneven padding, average
 * pooling, nearest upsampling, a channel slice, sigmoid and tanh joined by a product, a
 * constant factor, softplus, leaky ReLU, a residual sum, batch norm without affine parameters and
 * of a vector, and the input quantised to 16 levels. */
static int layers_model(at_model **out, at_error *err)
{
    int status = at_model_begin(out, 3, 12, 12, err);
    if (status)
        return status;
    at_model *m = *out;
    int x = at_add_quantize(m, 0, 16);
    x = at_add_conv2d(m, x, "stem", 6, 3, 1, 1, true);
    x = at_add_prelu(m, x, "act1", 6);
    x = at_add_pad2d(m, x, 1, 0, 0, 1, 0.5f);
    x = at_add_avgpool2d(m, x, 2, 2);
    x = at_add_upsample2d(m, x, 2);
    x = at_add_slice(m, x, 1, 4);
    int s = at_add_sigmoid(m, x), t = at_add_tanh(m, x);
    x = at_add_mul(m, s, t);
    x = at_add_scale(m, x, 1.5f);
    int y = at_add_softplus(m, at_add_conv2d(m, x, "body", 4, 3, 2, 1, false));
    y = at_add_leaky_relu(m, y, 0.1f);
    x = at_add_add(m, at_add_maxpool2d(m, x, 2, 2), y);
    x = at_add_batchnorm2d_affine(m, x, "plain_bn", false);
    x = at_add_flatten(m, x);
    x = at_add_linear(m, x, "fc1", 16, true);
    x = at_add_batchnorm2d(m, x, "fc1_bn");
    x = at_add_prelu(m, x, "act2", 1);
    x = at_add_linear(m, x, "fc2", 7, true);
    (void)x; /* a failed step is reported by at_model_finish */
    return at_model_finish(m, 1, err);
}

static int write_floats(const char *dir, const char *name, const char *what, const float *v,
                        size_t n)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s.%s.f32", dir, name, what);
    FILE *f = fopen(path, "wb");
    size_t wrote = f ? fwrite(v, sizeof *v, n, f) : 0;
    if (f)
        fclose(f);
    return wrote == n ? 0 : -1;
}

static int dump_case(const char *dir, const char *name, at_model *m, FILE *list)
{
    at_error err;
    char path[512];
    snprintf(path, sizeof path, "%s/%s.onnx", dir, name);
    if (at_model_export_onnx(m, path, &err)) {
        fprintf(stderr, "onnx_export_dump: %s\n", err.message);
        return 1;
    }
    int c, h, w;
    at_model_input_shape(m, &c, &h, &w);
    const int k = at_model_num_classes(m);
    const size_t count = (size_t)N * c * h * w;
    float *x = malloc(count * sizeof *x);
    unsigned seed = 99;
    for (size_t i = 0; x && i < count; i++)
        x[i] = uniform(&seed);
    at_pass *p = NULL;
    if (!x || at_pass_create(&p, m, N, AT_PASS_FORWARD_ONLY, &err)) {
        fprintf(stderr, "onnx_export_dump: %s: cannot run the model\n", name);
        free(x);
        return 1;
    }
    at_forward(p, x, N, AT_BN_EVAL);
    int status = write_floats(dir, name, "x", x, count) ||
        write_floats(dir, name, "logits", at_pass_logits(p), (size_t)N * k);
    fprintf(list, "%s %d %d %d %d %d\n", name, N, c, h, w, k);
    at_pass_free(p);
    free(x);
    return status;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: onnx_export_dump DIR\n");
        return 2;
    }
    static const struct {
        const char *name, *arch;
        at_model_options options;
    } cases[] = {
        {"smallcnn", "smallcnn", {0}},
        {"preact-resnet18", "preact-resnet18", {0}},
        {"normalised-smallcnn", "smallcnn", {.normalize = 1, .mean = {0.2860f}, .std = {0.3530f}}},
        {"normalised-mlp", "mlp-64",
         {.in_channels = 3, .in_height = 8, .in_width = 8, .normalize = 1,
          .mean = {0.4914f, 0.4822f, 0.4465f}, .std = {0.2471f, 0.2435f, 0.2616f}}},
        {"normalised-wrn-10-2", "wrn-10-2",
         {.in_height = 16, .in_width = 16, .normalize = 1, .mean = {0.5f, 0.4f, 0.3f},
          .std = {0.2f, 0.25f, 0.3f}}},
        /* frames sliced from the channels, one SmallCNN shared by all, logits averaged */
        {"smallcnn-clip", "smallcnn-clip", {.in_channels = 4}},
    };
    char path[512];
    snprintf(path, sizeof path, "%s/cases.txt", argv[1]);
    FILE *list = fopen(path, "w");
    if (!list) {
        fprintf(stderr, "onnx_export_dump: cannot write %s\n", path);
        return 1;
    }
    int failures = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        at_model *m = NULL;
        at_error err;
        if (at_model_create(&m, cases[i].arch, &cases[i].options, &err)) {
            fprintf(stderr, "onnx_export_dump: %s: %s\n", cases[i].name, err.message);
            failures++;
            continue;
        }
        randomise(m, 11 + (unsigned)i);
        failures += dump_case(argv[1], cases[i].name, m, list);
        at_model_free(m);
    }
    at_model *m = NULL;
    at_error err;
    if (layers_model(&m, &err)) {
        fprintf(stderr, "onnx_export_dump: layers: %s\n", err.message);
        failures++;
    } else {
        randomise(m, 3);
        failures += dump_case(argv[1], "layers", m, list);
    }
    at_model_free(m);
    fclose(list);
    return failures ? 1 : 0;
}
