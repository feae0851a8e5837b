/* tanh.c: y = tanh(x) (nn.Tanh; the last layer of a perturbation generator, whose output is then
 * scaled into the budget); dx += dy * (1 - y^2), PyTorch's tanh_backward. Backward reads the
 * output rather than the input, as ReLU does, so the input need not be kept for it. Every element
 * is computed alone, so blocks of the flat array split the work with no effect on the result. */
#include "graph/graph.h"

#include <math.h>

/* Elements per unit of work: big enough to amortise the call, small enough to balance. */
#define BLOCK 16384

int at_add_tanh(at_model *m, int input)
{
    at_node *node = at_graph_append(m, AT_LAYER_tanh, &input, 1, "");
    if (!node)
        return m->build_status;
    node->out = at_graph_shape(m, input);
    return at_graph_index(m, node);
}

static void tanh_forward(const at_layer_ctx *c)
{
    const size_t count = at_shape_numel(c->in_shape[0]) * (size_t)c->n;
    const long blocks = (long)((count + BLOCK - 1) / BLOCK);
#pragma omp parallel for schedule(static) num_threads(at_team(c->workers))
    for (long b = 0; b < blocks; b++) {
        size_t first = (size_t)b * BLOCK, last = count - first < BLOCK ? count : first + BLOCK;
        for (size_t j = first; j < last; j++)
            c->y[j] = tanhf(c->x[0][j]);
    }
}

static void tanh_backward(const at_layer_ctx *c)
{
    if (!c->dx[0])
        return;
    const size_t count = at_shape_numel(c->in_shape[0]) * (size_t)c->n;
    const long blocks = (long)((count + BLOCK - 1) / BLOCK);
#pragma omp parallel for schedule(static) num_threads(at_team(c->workers))
    for (long b = 0; b < blocks; b++) {
        size_t first = (size_t)b * BLOCK, last = count - first < BLOCK ? count : first + BLOCK;
        for (size_t j = first; j < last; j++)
            c->dx[0][j] += c->dy[j] * (1.0f - c->y[j] * c->y[j]);
    }
}

const at_layer_ops at_layer_tanh = {
    .name = "tanh",
    .backward_reads = AT_READS_OUTPUT,
    .forward = tanh_forward,
    .backward = tanh_backward,
};
