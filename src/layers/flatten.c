/* flatten.c: [n, c, h, w] -> [n, c*h*w] in NCHW order (torch.flatten(x, 1)). */
#include "graph/graph.h"
#include "kernels/kernels.h"

#include <string.h>

int at_add_flatten(at_model *m, int input)
{
    at_node *node = at_graph_append(m, AT_LAYER_flatten, &input, 1, "");
    if (!node)
        return m->build_status;
    node->out = (at_shape){(int)at_shape_numel(at_graph_shape(m, input)), 1, 1};
    return at_graph_index(m, node);
}

static void flatten_forward(const at_layer_ctx *c)
{
    memcpy(c->y, c->x[0], at_shape_numel(c->in_shape[0]) * (size_t)c->n * sizeof(float));
}

static void flatten_backward(const at_layer_ctx *c)
{
    if (!c->dx[0])
        return;
    at_accumulate_kernel(c->dy, c->dx[0], at_shape_numel(c->in_shape[0]) * (size_t)c->n);
}

const at_layer_ops at_layer_flatten = {
    .name = "flatten",
    .forward = flatten_forward,
    .backward = flatten_backward,
};
