/* relu.c: y = max(x, 0); dx += dy where x > 0 (PyTorch's convention at 0: no gradient). */
#include "graph/graph.h"

int at_add_relu(at_model *m, int input)
{
    at_node *node = at_graph_append(m, AT_LAYER_relu, &input, 1, "");
    if (!node)
        return m->build_status;
    node->out = at_graph_shape(m, input);
    return at_graph_index(m, node);
}

static void relu_forward(const at_layer_ctx *c)
{
    const long count = (long)(at_shape_numel(c->in_shape[0]) * (size_t)c->n);
    const float *x = c->x[0];
    float *y = c->y;
#pragma omp parallel for schedule(static) num_threads(at_team(c->workers))
    for (long i = 0; i < count; i++)
        y[i] = x[i] < 0.0f ? 0.0f : x[i]; /* a NaN fails the test and passes through */
}

static void relu_backward(const at_layer_ctx *c)
{
    if (!c->dx[0])
        return;
    const long count = (long)(at_shape_numel(c->in_shape[0]) * (size_t)c->n);
    const float *x = c->x[0], *dy = c->dy;
    float *dx = c->dx[0];
#pragma omp parallel for schedule(static) num_threads(at_team(c->workers))
    for (long i = 0; i < count; i++)
        dx[i] += x[i] > 0.0f ? dy[i] : 0.0f;
}

const at_layer_ops at_layer_relu = {
    .name = "relu",
    .forward = relu_forward,
    .backward = relu_backward,
};
