/* softplus.c: y = log(1 + exp(x)) (nn.Softplus with beta 1, ONNX Softplus), computed as
 * max(x, 0) + log1p(exp(-|x|)) so that neither branch overflows; dx += dy * sigmoid(x).
 * PyTorch switches to y = x above its threshold 20, where the two differ by less than
 * exp(-20) ~ 2e-9, below float resolution of y. Backward reads the input. */
#include "graph/graph.h"

#include <math.h>

int at_add_softplus(at_model *m, int input)
{
    at_node *node = at_graph_append(m, AT_LAYER_softplus, &input, 1, "");
    if (!node)
        return m->build_status;
    node->out = at_graph_shape(m, input);
    return at_graph_index(m, node);
}

static void softplus_forward_block(const at_layer_ctx *c, size_t first, size_t count)
{
    for (size_t j = first; j < first + count; j++) {
        const float x = c->x[0][j];
        c->y[j] = (x > 0.0f ? x : 0.0f) + log1pf(expf(-fabsf(x)));
    }
}

static void softplus_forward(const at_layer_ctx *c) { at_each_block(c, softplus_forward_block); }

static void softplus_backward_block(const at_layer_ctx *c, size_t first, size_t count)
{
    for (size_t j = first; j < first + count; j++)
        c->dx[0][j] += c->dy[j] / (1.0f + expf(-c->x[0][j]));
}

static void softplus_backward(const at_layer_ctx *c)
{
    if (c->dx[0])
        at_each_block(c, softplus_backward_block);
}

const at_layer_ops at_layer_softplus = {
    .name = "softplus",
    .backward_reads = AT_READS_INPUT,
    .forward = softplus_forward,
    .backward = softplus_backward,
};
