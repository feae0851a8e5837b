/* smallcnn_clip.c: a per-frame video classifier for clips stored with their frames as channels
 * (at_dataset_make_clips): the TRADES SmallCNN applied to each of the T frames with the same
 * weights, its T logit vectors averaged (a late-fusion baseline of video classification).
 * Frame 0 builds SmallCNN's nodes under their reference names; every other frame is a chain of
 * shared nodes mirroring them, so the state_dict is exactly SmallCNN's and a smallcnn checkpoint
 * loads into it. The average is a pairwise tree of additions and one scaling by 1/T: for T a power
 * of two, T equal frames give exactly the logits of one. */
#include "models/archs.h"

#include <string.h>

#define MAX_FRAMES 64

static bool clip_matches(const char *arch) { return strcmp(arch, "smallcnn-clip") == 0; }

static int clip_build(at_model *m, int x, const char *arch, int num_classes)
{
    const int frames = at_graph_shape(m, x).c;
    if (frames > MAX_FRAMES)
        return AT_ERR_SHAPE;
    int logits[MAX_FRAMES];
    const int first = at_add_slice(m, x, 0, 1);
    logits[0] = at_smallcnn_build(m, first, num_classes);
    if (logits[0] < 0)
        return logits[0];
    for (int t = 1; t < frames; t++) {
        /* SmallCNN is a chain: node j's input is node j - 1, the first one's is the slice */
        int y = at_add_slice(m, x, t, 1);
        for (int j = first + 1; j <= logits[0] && y >= 0; j++)
            y = at_add_shared(m, y, j);
        if (y < 0)
            return y;
        logits[t] = y;
    }
    for (int count = frames; count > 1; count = (count + 1) / 2)
        for (int k = 0; k < count; k += 2)
            logits[k / 2] = k + 1 < count ? at_add_add(m, logits[k], logits[k + 1]) : logits[k];
    return at_add_scale(m, logits[0], 1.0f / (float)frames);
}

/* SmallCNN's initialisation (its shared nodes draw nothing). */
static void clip_init(at_model *m, at_rng *rng) { at_arch_smallcnn.init(m, rng); }

const at_arch at_arch_smallcnn_clip = {
    .name = "smallcnn-clip",
    .description = "SmallCNN applied to each frame of a T-frame clip (T input channels), logits "
                   "averaged over frames",
    .default_channels = 8,
    .default_size = 28,
    .matches = clip_matches,
    .build = clip_build,
    .init = clip_init,
};
