/* quantize.c: y = round(x * (L - 1)) / (L - 1), bit-depth reduction (Xu et al., "Feature
 * Squeezing", NDSS 2018). Its derivative is zero almost everywhere, so gradient attacks see no
 * signal: the textbook case of gradient masking, which an honest evaluation must expose (zero
 * gradients, black-box attacks beating white-box ones). Backward passes the true derivative, 0.
 * A frozen activation pattern (at_pass_freeze_pattern) does not fix its steps: a pass following
 * one still rounds its own input, so it is not linear across a step. */
#include "graph/graph.h"

#include <math.h>

int at_add_quantize(at_model *m, int input, int levels)
{
    at_node *node = at_graph_append(m, AT_LAYER_quantize, &input, 1, "");
    if (!node)
        return m->build_status;
    if (levels < 2 || levels > 65536)
        return at_graph_error(m, AT_ERR_ARG);
    node->p.quantize.levels = levels;
    node->out = at_graph_shape(m, input);
    return at_graph_index(m, node);
}

static void quantize_forward(const at_layer_ctx *c)
{
    const size_t count = at_shape_numel(c->in_shape[0]) * (size_t)c->n;
    const float steps = (float)(c->node->p.quantize.levels - 1);
    for (size_t i = 0; i < count; i++)
        c->y[i] = nearbyintf(c->x[0][i] * steps) / steps;
}

static void quantize_backward(const at_layer_ctx *c) { (void)c; /* d round / dx = 0 */ }

const at_layer_ops at_layer_quantize = {
    .name = "quantize",
    .forward = quantize_forward,
    .backward = quantize_backward,
};
