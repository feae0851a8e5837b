/* preact_resnet.c: PreAct ResNet-18 (He et al., "Identity Mappings in Deep Residual Networks",
 * ECCV 2016) laid out as in Rice, Wong and Kolter's robust_overfitting/preactresnet.py:
 * conv3x3 3->64, four stages of two pre-activation blocks (64, 128, 256, 512; stride 2 from the
 * second stage on; 1x1 projection shortcuts where the shape changes), BN, ReLU, 4x4 average pool,
 * linear. PyTorch's default initialisation, as in that code. */
#include "models/archs.h"

#include <stdio.h>
#include <string.h>

static bool preact_matches(const char *arch) { return strcmp(arch, "preact-resnet18") == 0; }

/* out = relu(bn1(x)); shortcut = x or conv1x1(out); y = conv2(relu(bn2(conv1(out)))) + shortcut.
 * Nodes are created in the module order of the reference (bn1, conv1, bn2, conv2, shortcut) so
 * the tensor table follows its state_dict. */
static int preact_block(at_model *m, int x, const char *prefix, int planes, int stride)
{
    char name[96];
    if (x < 0)
        return x;
    int in_planes = at_graph_shape(m, x).c;
    snprintf(name, sizeof name, "%s.bn1", prefix);
    int out = at_add_relu(m, at_add_batchnorm2d(m, x, name));
    snprintf(name, sizeof name, "%s.conv1", prefix);
    int y = at_add_conv2d(m, out, name, planes, 3, stride, 1, false);
    snprintf(name, sizeof name, "%s.bn2", prefix);
    y = at_add_relu(m, at_add_batchnorm2d(m, y, name));
    snprintf(name, sizeof name, "%s.conv2", prefix);
    y = at_add_conv2d(m, y, name, planes, 3, 1, 1, false);
    int shortcut = x;
    if (stride != 1 || in_planes != planes) {
        snprintf(name, sizeof name, "%s.shortcut.0", prefix);
        shortcut = at_add_conv2d(m, out, name, planes, 1, stride, 0, false);
    }
    return at_add_add(m, y, shortcut);
}

int at_preact_resnet_build(at_model *m, int x, const int planes[4], int num_classes)
{
    x = at_add_conv2d(m, x, "conv1", planes[0], 3, 1, 1, false);
    for (int stage = 0; stage < 4; stage++)
        for (int b = 0; b < 2; b++) {
            char prefix[32];
            snprintf(prefix, sizeof prefix, "layer%d.%d", stage + 1, b);
            x = preact_block(m, x, prefix, planes[stage], (stage > 0 && b == 0) ? 2 : 1);
            if (x < 0)
                return x;
        }
    x = at_add_relu(m, at_add_batchnorm2d(m, x, "bn"));
    x = at_add_avgpool2d(m, x, 4, 4);
    x = at_add_flatten(m, x);
    return at_add_linear(m, x, "linear", num_classes, true);
}

static int preact_build(at_model *m, int x, const char *arch, int num_classes)
{
    static const int planes[4] = {64, 128, 256, 512};
    return at_preact_resnet_build(m, x, planes, num_classes);
}

const at_arch at_arch_preact_resnet18 = {
    .name = "preact-resnet18",
    .description = "PreAct ResNet-18 as in Rice et al. (64-128-256-512, 32x32 inputs)",
    .default_channels = 3,
    .default_size = 32,
    .matches = preact_matches,
    .build = preact_build,
};
