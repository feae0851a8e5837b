/* sigmoid.c: y = 1 / (1 + exp(-x)) (nn.Sigmoid; the last layer of an autoencoder, whose output
 * is an image in [0,1]); dx += dy * y * (1 - y), PyTorch's sigmoid_backward. Backward reads the
 * output, as tanh does. */
#include "graph/graph.h"

#include <math.h>

int at_add_sigmoid(at_model *m, int input)
{
    at_node *node = at_graph_append(m, AT_LAYER_sigmoid, &input, 1, "");
    if (!node)
        return m->build_status;
    node->out = at_graph_shape(m, input);
    return at_graph_index(m, node);
}

static void sigmoid_forward_block(const at_layer_ctx *c, size_t first, size_t count)
{
    for (size_t j = first; j < first + count; j++)
        c->y[j] = 1.0f / (1.0f + expf(-c->x[0][j]));
}

static void sigmoid_backward_block(const at_layer_ctx *c, size_t first, size_t count)
{
    for (size_t j = first; j < first + count; j++)
        c->dx[0][j] += c->dy[j] * c->y[j] * (1.0f - c->y[j]);
}

static void sigmoid_forward(const at_layer_ctx *c) { at_each_block(c, sigmoid_forward_block); }

static void sigmoid_backward(const at_layer_ctx *c)
{
    if (c->dx[0])
        at_each_block(c, sigmoid_backward_block);
}

const at_layer_ops at_layer_sigmoid = {
    .name = "sigmoid",
    .backward_reads = AT_READS_OUTPUT,
    .forward = sigmoid_forward,
    .backward = sigmoid_backward,
};
