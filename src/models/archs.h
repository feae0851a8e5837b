/* archs.h: the table of reference architectures that at_model_create builds by name. */
#ifndef AT_ARCHS_H
#define AT_ARCHS_H

#include "graph/graph.h"

typedef struct at_arch {
    const char *name;         /* as listed: "smallcnn", "wrn-D-W" */
    const char *description;
    int default_channels, default_size;
    /* true when `arch` names this architecture (for patterns: with valid numbers) */
    bool (*matches)(const char *arch);
    /* appends the layers after node `input`; returns the last node or a negative status */
    int (*build)(at_model *m, int input, const char *arch, int num_classes);
    /* re-initialises parameters where the reference differs from PyTorch's layer defaults */
    void (*init)(at_model *m, at_rng *rng);
} at_arch;

extern const at_arch at_arch_smallcnn, at_arch_smallcnn_clip, at_arch_preact_resnet18,
    at_arch_wide_resnet, at_arch_linear, at_arch_mlp;

/* SmallCNN's layers after node x (one channel) under the reference names, for smallcnn and for
 * the frames of smallcnn-clip. Returns the logits node. */
int at_smallcnn_build(at_model *m, int x, int num_classes);

/* PreAct ResNet-18 with other stage widths (the reference is 64, 128, 256, 512): tests check
 * gradients on a narrow copy of the same graph. Returns the logits node. */
int at_preact_resnet_build(at_model *m, int x, const int planes[4], int num_classes);

/* Helpers for the init hooks: every conv weight from N(0, std_of(node)), and so on. */
void at_init_conv_normal(at_model *m, at_rng *rng, bool fan_out);
/* Sets every element of the named tensor to `value` (no-op when absent). */
void at_init_fill(at_model *m, const char *name, float value);

#endif
