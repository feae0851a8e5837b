/* wide_resnet.c: WideResNet-D-W (Zagoruyko and Komodakis, "Wide Residual Networks", BMVC 2016) as
 * in RobustBench's model_zoo/architectures/wide_resnet.py (itself from the TRADES code): conv3x3
 * 3->16, three groups of n = (D-4)/6 pre-activation basic blocks of widths 16W, 32W, 64W (stride 1,
 * 2, 2), BN, ReLU, global average pool (8x8 on 32x32 inputs), linear. Names: conv1,
 * block1.layer.0.bn1 ... .convShortcut, bn1, fc. */
#include "models/archs.h"

#include <stdio.h>
#include <stdlib.h>

static bool parse_wrn(const char *arch, int *depth, int *width)
{
    char tail;
    if (sscanf(arch, "wrn-%d-%d%c", depth, width, &tail) != 2)
        return false;
    return *depth >= 10 && *depth <= 1000 && (*depth - 4) % 6 == 0 && *width >= 1 && *width <= 64;
}

static bool wrn_matches(const char *arch)
{
    int d, w;
    return parse_wrn(arch, &d, &w);
}

/* When the block changes width, the reference applies relu(bn1(.)) to x itself, so the shortcut
 * convolution sees the activated input; otherwise the shortcut is x untouched. */
static int wrn_block(at_model *m, int x, const char *prefix, int out_planes, int stride)
{
    char name[96];
    if (x < 0)
        return x;
    bool equal = at_graph_shape(m, x).c == out_planes;
    snprintf(name, sizeof name, "%s.bn1", prefix);
    int act = at_add_relu(m, at_add_batchnorm2d(m, x, name));
    snprintf(name, sizeof name, "%s.conv1", prefix);
    int y = at_add_conv2d(m, act, name, out_planes, 3, stride, 1, false);
    snprintf(name, sizeof name, "%s.bn2", prefix);
    y = at_add_relu(m, at_add_batchnorm2d(m, y, name));
    snprintf(name, sizeof name, "%s.conv2", prefix);
    y = at_add_conv2d(m, y, name, out_planes, 3, 1, 1, false);
    int shortcut = x;
    if (!equal) {
        snprintf(name, sizeof name, "%s.convShortcut", prefix);
        shortcut = at_add_conv2d(m, act, name, out_planes, 1, stride, 0, false);
    }
    return at_add_add(m, shortcut, y);
}

static int wrn_build(at_model *m, int x, const char *arch, int num_classes)
{
    int depth, width;
    if (!parse_wrn(arch, &depth, &width))
        return AT_ERR_ARG;
    int n = (depth - 4) / 6;
    int planes[3] = {16 * width, 32 * width, 64 * width};
    x = at_add_conv2d(m, x, "conv1", 16, 3, 1, 1, false);
    for (int g = 0; g < 3; g++)
        for (int b = 0; b < n; b++) {
            char prefix[48];
            snprintf(prefix, sizeof prefix, "block%d.layer.%d", g + 1, b);
            x = wrn_block(m, x, prefix, planes[g], (g > 0 && b == 0) ? 2 : 1);
            if (x < 0)
                return x;
        }
    x = at_add_relu(m, at_add_batchnorm2d(m, x, "bn1"));
    x = at_add_global_avgpool(m, x);
    x = at_add_flatten(m, x);
    return at_add_linear(m, x, "fc", num_classes, true);
}

/* As in the reference: conv weights N(0, 2/(k*k*out_channels)), BN (1, 0) (the layer default),
 * linear bias zero. */
static void wrn_init(at_model *m, at_rng *rng)
{
    at_init_conv_normal(m, rng, true);
    at_init_fill(m, "fc.bias", 0.0f);
}

const at_arch at_arch_wide_resnet = {
    .name = "wrn-D-W",
    .description = "WideResNet as in RobustBench, depth D = 6n+4, width W (e.g. wrn-34-10, wrn-16-4)",
    .default_channels = 3,
    .default_size = 32,
    .matches = wrn_matches,
    .build = wrn_build,
    .init = wrn_init,
};
