/* smallcnn.c: the SmallCNN of the TRADES code (Zhang et al., "Theoretically Principled Trade-off
 * between Robustness and Accuracy", ICML 2019; models/small_cnn.py), without its dropout:
 *   conv3x3 1->32, ReLU, conv3x3 32->32, ReLU, maxpool 2,
 *   conv3x3 32->64, ReLU, conv3x3 64->64, ReLU, maxpool 2, flatten (64*4*4 on 28x28 inputs),
 *   linear ->200, ReLU, linear 200->200, ReLU, linear 200->classes. No padding.
 * Parameter names follow its two nn.Sequential blocks: feature_extractor.convK, classifier.fcK. */
#include "models/archs.h"

#include <string.h>

static bool smallcnn_matches(const char *arch) { return strcmp(arch, "smallcnn") == 0; }

int at_smallcnn_build(at_model *m, int x, int num_classes)
{
    x = at_add_conv2d(m, x, "feature_extractor.conv1", 32, 3, 1, 0, true);
    x = at_add_relu(m, x);
    x = at_add_conv2d(m, x, "feature_extractor.conv2", 32, 3, 1, 0, true);
    x = at_add_relu(m, x);
    x = at_add_maxpool2d(m, x, 2, 2);
    x = at_add_conv2d(m, x, "feature_extractor.conv3", 64, 3, 1, 0, true);
    x = at_add_relu(m, x);
    x = at_add_conv2d(m, x, "feature_extractor.conv4", 64, 3, 1, 0, true);
    x = at_add_relu(m, x);
    x = at_add_maxpool2d(m, x, 2, 2);
    x = at_add_flatten(m, x);
    x = at_add_linear(m, x, "classifier.fc1", 200, true);
    x = at_add_relu(m, x);
    x = at_add_linear(m, x, "classifier.fc2", 200, true);
    x = at_add_relu(m, x);
    return at_add_linear(m, x, "classifier.fc3", num_classes, true);
}

/* One channel, as the reference (num_channels = 1): a clip's frames stacked as channels would
 * otherwise be taken for one image (smallcnn-clip runs it on each frame). */
static int smallcnn_build(at_model *m, int x, const char *arch, int num_classes)
{
    if (at_graph_shape(m, x).c != 1)
        return AT_ERR_SHAPE;
    return at_smallcnn_build(m, x, num_classes);
}

/* As in the TRADES code: convolutions kaiming_normal_ (fan-in, gain sqrt 2) with zero bias, the
 * first two linear layers PyTorch's default, the last one all zeros. */
static void smallcnn_init(at_model *m, at_rng *rng)
{
    at_init_conv_normal(m, rng, false);
    at_init_fill(m, "classifier.fc3.weight", 0.0f);
    at_init_fill(m, "classifier.fc3.bias", 0.0f);
}

const at_arch at_arch_smallcnn = {
    .name = "smallcnn",
    .description = "TRADES SmallCNN: 4 conv3x3 (32,32,64,64), 2 maxpools, fc 200-200 (1x28x28 inputs)",
    .default_channels = 1,
    .default_size = 28,
    .matches = smallcnn_matches,
    .build = smallcnn_build,
    .init = smallcnn_init,
};
