/* scale.c: y = factor * x, dx += factor * dy. With a tree of add nodes it averages logits (a
 * factor 1/T); for T a power of two the average of T equal vectors is then exactly that vector. */
#include "graph/graph.h"

#include <math.h>

int at_add_scale(at_model *m, int input, float factor)
{
    at_node *node = at_graph_append(m, AT_LAYER_scale, &input, 1, "");
    if (!node)
        return m->build_status;
    if (!isfinite(factor))
        return at_graph_error(m, AT_ERR_ARG);
    node->p.scale.factor = factor;
    node->out = at_graph_shape(m, input);
    return at_graph_index(m, node);
}

static void scale_forward_block(const at_layer_ctx *c, size_t first, size_t count)
{
    const float factor = c->node->p.scale.factor;
    for (size_t j = first; j < first + count; j++)
        c->y[j] = factor * c->x[0][j];
}

static void scale_backward_block(const at_layer_ctx *c, size_t first, size_t count)
{
    const float factor = c->node->p.scale.factor;
    for (size_t j = first; j < first + count; j++)
        c->dx[0][j] += factor * c->dy[j];
}

static void scale_forward(const at_layer_ctx *c) { at_each_block(c, scale_forward_block); }

static void scale_backward(const at_layer_ctx *c)
{
    if (c->dx[0])
        at_each_block(c, scale_backward_block);
}

const at_layer_ops at_layer_scale = {
    .name = "scale",
    .forward = scale_forward,
    .backward = scale_backward,
};
