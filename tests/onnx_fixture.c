/* onnx_fixture.c: writes the ONNX files of the CLI test (onnx_cli_test.sh) into DIR:
 *   tiny.onnx    a classifier of 1x28x28 images into 10 classes (Fashion-MNIST's shape): Sub of a
 *                mean, Conv 5x5 stride 3 (1 -> 4), Relu, Flatten, Gemm (256 -> 10), fixed weights
 *   einsum.onnx  the same with its classifier node's operator renamed Einsum (unsupported) */
#include "util/onnx_builder.h"

#include <stdio.h>

enum { OC = 4, K = 5, FEATURES = OC * 8 * 8, CLASSES = 10 };

static float mean[1] = {0.25f}, conv_w[OC * K * K], conv_b[OC], fc_w[CLASSES * FEATURES],
             fc_b[CLASSES];

static void fill(float *v, int n, unsigned seed, float scale)
{
    for (int i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        v[i] = scale * (float)((seed >> 8) / 16777216.0 - 0.5);
    }
}

static void tiny(onnx_builder *b)
{
    onnx_begin(b, 1, 28, 28, CLASSES);
    onnx_initializer(b, "mean", 4, (int64_t[]){1, 1, 1, 1}, mean);
    onnx_initializer(b, "conv.weight", 4, (int64_t[]){OC, 1, K, K}, conv_w);
    onnx_initializer(b, "conv.bias", 1, (int64_t[]){OC}, conv_b);
    onnx_initializer(b, "fc.weight", 2, (int64_t[]){CLASSES, FEATURES}, fc_w);
    onnx_initializer(b, "fc.bias", 1, (int64_t[]){CLASSES}, fc_b);
    onnx_node(b, "Sub", "centre", "x", "mean", NULL, "xc");
    Onnx__NodeProto *conv = onnx_node(b, "Conv", "conv", "xc", "conv.weight", "conv.bias", "c");
    onnx_attr_ints(b, conv, "kernel_shape", 2, K);
    onnx_attr_ints(b, conv, "strides", 2, 3);
    onnx_node(b, "Relu", "act", "c", NULL, NULL, "a");
    onnx_node(b, "Flatten", "flat", "a", NULL, NULL, "f");
    Onnx__NodeProto *gemm = onnx_node(b, "Gemm", "fc", "f", "fc.weight", "fc.bias", "logits");
    onnx_attr_int(b, gemm, "transB", 1);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: onnx_fixture DIR\n");
        return 2;
    }
    fill(conv_w, OC * K * K, 1, 0.8f);
    fill(conv_b, OC, 2, 0.2f);
    fill(fc_w, CLASSES * FEATURES, 3, 0.3f);
    fill(fc_b, CLASSES, 4, 0.2f);
    static onnx_builder b;
    char path[4096];
    tiny(&b);
    snprintf(path, sizeof path, "%s/tiny.onnx", argv[1]);
    onnx_write_model(&b, path);
    b.nodes[4].op_type = "Einsum";
    snprintf(path, sizeof path, "%s/einsum.onnx", argv[1]);
    onnx_write_model(&b, path);
    return 0;
}
