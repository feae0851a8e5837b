/* add.c: y = a + b, the join of a residual connection; both inputs receive dy. */
#include "graph/graph.h"
#include "kernels/kernels.h"

#define BLOCK 16384

int at_add_add(at_model *m, int input_a, int input_b)
{
    int inputs[2] = {input_a, input_b};
    at_node *node = at_graph_append(m, AT_LAYER_add, inputs, 2, "");
    if (!node)
        return m->build_status;
    at_shape a = at_graph_shape(m, input_a), b = at_graph_shape(m, input_b);
    if (a.c != b.c || a.h != b.h || a.w != b.w)
        return at_graph_error(m, AT_ERR_SHAPE);
    node->out = a;
    return at_graph_index(m, node);
}

static void add_forward(const at_layer_ctx *c)
{
    const size_t count = at_shape_numel(c->in_shape[0]) * (size_t)c->n;
    const long blocks = (long)((count + BLOCK - 1) / BLOCK);
#pragma omp parallel for schedule(static) num_threads(at_team(c->workers))
    for (long b = 0; b < blocks; b++) {
        size_t first = (size_t)b * BLOCK, n = count - first < BLOCK ? count - first : BLOCK;
        at_add_kernel(c->x[0] + first, c->x[1] + first, c->y + first, n);
    }
}

static void add_backward(const at_layer_ctx *c)
{
    const size_t count = at_shape_numel(c->in_shape[0]) * (size_t)c->n;
    const long blocks = (long)((count + BLOCK - 1) / BLOCK);
    for (int k = 0; k < 2; k++) {
        if (!c->dx[k])
            continue;
#pragma omp parallel for schedule(static) num_threads(at_team(c->workers))
        for (long b = 0; b < blocks; b++) {
            size_t first = (size_t)b * BLOCK, n = count - first < BLOCK ? count - first : BLOCK;
            at_accumulate_kernel(c->dy + first, c->dx[k] + first, n);
        }
    }
}

const at_layer_ops at_layer_add = {
    .name = "add",
    .forward = add_forward,
    .backward = add_backward,
};
