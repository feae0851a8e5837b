/* softplus.c: y = log(1 + exp(x)) (nn.Softplus with beta 1, ONNX Softplus), computed as
 * max(x, 0) + log1p(exp(-|x|)) so that neither branch overflows; dx += dy * sigmoid(x).
 * PyTorch switches to y = x above its threshold 20, where the two differ by less than
 * exp(-20) ~ 2e-9, below float resolution of y. Backward reads the input. Every element is
 * computed alone, so blocks of the flat array split the work with no effect on the result. */
#include "graph/graph.h"

#include <math.h>

#define BLOCK 16384

int at_add_softplus(at_model *m, int input)
{
    at_node *node = at_graph_append(m, AT_LAYER_softplus, &input, 1, "");
    if (!node)
        return m->build_status;
    node->out = at_graph_shape(m, input);
    return at_graph_index(m, node);
}

static void softplus_forward(const at_layer_ctx *c)
{
    const size_t count = at_shape_numel(c->in_shape[0]) * (size_t)c->n;
    const long blocks = (long)((count + BLOCK - 1) / BLOCK);
#pragma omp parallel for schedule(static) num_threads(at_team(c->workers))
    for (long b = 0; b < blocks; b++) {
        size_t first = (size_t)b * BLOCK, last = count - first < BLOCK ? count : first + BLOCK;
        for (size_t j = first; j < last; j++) {
            const float x = c->x[0][j];
            c->y[j] = (x > 0.0f ? x : 0.0f) + log1pf(expf(-fabsf(x)));
        }
    }
}

static void softplus_backward(const at_layer_ctx *c)
{
    if (!c->dx[0])
        return;
    const size_t count = at_shape_numel(c->in_shape[0]) * (size_t)c->n;
    const long blocks = (long)((count + BLOCK - 1) / BLOCK);
#pragma omp parallel for schedule(static) num_threads(at_team(c->workers))
    for (long b = 0; b < blocks; b++) {
        size_t first = (size_t)b * BLOCK, last = count - first < BLOCK ? count : first + BLOCK;
        for (size_t j = first; j < last; j++)
            c->dx[0][j] += c->dy[j] / (1.0f + expf(-c->x[0][j]));
    }
}

const at_layer_ops at_layer_softplus = {
    .name = "softplus",
    .backward_reads = AT_READS_INPUT,
    .forward = softplus_forward,
    .backward = softplus_backward,
};
