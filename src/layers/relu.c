/* relu.c: y = max(x, 0); dx += dy where y > 0 (equivalently x > 0; PyTorch's convention at 0: no
 * gradient). Backward reads the output rather than the input, so the input (usually a batch-norm
 * output nobody else needs in backward) does not have to be kept. */
#include "graph/graph.h"
#include "kernels/kernels.h"

/* Elements per unit of work: big enough to amortise the call, small enough to balance. */
#define BLOCK 16384

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
    const size_t count = at_shape_numel(c->in_shape[0]) * (size_t)c->n;
    const long blocks = (long)((count + BLOCK - 1) / BLOCK);
#pragma omp parallel for schedule(static) num_threads(at_team(c->workers))
    for (long b = 0; b < blocks; b++) {
        size_t first = (size_t)b * BLOCK, n = count - first < BLOCK ? count - first : BLOCK;
        at_relu_forward_kernel(c->x[0] + first, c->y + first, n);
    }
}

static void relu_backward(const at_layer_ctx *c)
{
    if (!c->dx[0])
        return;
    const size_t count = at_shape_numel(c->in_shape[0]) * (size_t)c->n;
    const long blocks = (long)((count + BLOCK - 1) / BLOCK);
#pragma omp parallel for schedule(static) num_threads(at_team(c->workers))
    for (long b = 0; b < blocks; b++) {
        size_t first = (size_t)b * BLOCK, n = count - first < BLOCK ? count - first : BLOCK;
        at_relu_backward_kernel(c->y + first, c->dy + first, c->dx[0] + first, n);
    }
}

const at_layer_ops at_layer_relu = {
    .name = "relu",
    .backward_reads = AT_READS_OUTPUT,
    .forward = relu_forward,
    .backward = relu_backward,
};
