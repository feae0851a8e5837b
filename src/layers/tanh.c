/* tanh.c: y = tanh(x) (nn.Tanh; the last layer of a perturbation generator, whose output is then
 * scaled into the budget); dx += dy * (1 - y^2), PyTorch's tanh_backward. Backward reads the
 * output rather than the input, as ReLU does, so the input need not be kept for it. */
#include "graph/graph.h"

#include <math.h>

int at_add_tanh(at_model *m, int input)
{
    at_node *node = at_graph_append(m, AT_LAYER_tanh, &input, 1, "");
    if (!node)
        return m->build_status;
    node->out = at_graph_shape(m, input);
    return at_graph_index(m, node);
}

static void tanh_forward_block(const at_layer_ctx *c, size_t first, size_t count)
{
    for (size_t j = first; j < first + count; j++)
        c->y[j] = tanhf(c->x[0][j]);
}

static void tanh_backward_block(const at_layer_ctx *c, size_t first, size_t count)
{
    for (size_t j = first; j < first + count; j++)
        c->dx[0][j] += c->dy[j] * (1.0f - c->y[j] * c->y[j]);
}

static void tanh_forward(const at_layer_ctx *c) { at_each_block(c, tanh_forward_block); }

static void tanh_backward(const at_layer_ctx *c)
{
    if (c->dx[0])
        at_each_block(c, tanh_backward_block);
}

const at_layer_ops at_layer_tanh = {
    .name = "tanh",
    .backward_reads = AT_READS_OUTPUT,
    .forward = tanh_forward,
    .backward = tanh_backward,
};
