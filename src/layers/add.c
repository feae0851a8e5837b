/* add.c: y = a + b, the join of a residual connection; both inputs receive dy. */
#include "graph/graph.h"
#include "kernels/kernels.h"

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

static void add_forward_block(const at_layer_ctx *c, size_t first, size_t count)
{
    at_add_kernel(c->x[0] + first, c->x[1] + first, c->y + first, count);
}

static void add_backward_block(const at_layer_ctx *c, size_t first, size_t count)
{
    for (int k = 0; k < 2; k++)
        if (c->dx[k])
            at_accumulate_kernel(c->dy + first, c->dx[k] + first, count);
}

static void add_forward(const at_layer_ctx *c) { at_each_block(c, add_forward_block); }

static void add_backward(const at_layer_ctx *c) { at_each_block(c, add_backward_block); }

const at_layer_ops at_layer_add = {
    .name = "add",
    .forward = add_forward,
    .backward = add_backward,
};
