/* sigmoid.c: y = 1 / (1 + exp(-x)) (nn.Sigmoid; the last layer of an autoencoder, whose output
 * is an image in [0,1]); dx += dy * y * (1 - y), PyTorch's sigmoid_backward. Backward reads the
 * output, as tanh does. Every element is computed alone, so blocks of the flat array split the
 * work with no effect on the result. */
#include "graph/graph.h"

#include <math.h>

#define BLOCK 16384

int at_add_sigmoid(at_model *m, int input)
{
    at_node *node = at_graph_append(m, AT_LAYER_sigmoid, &input, 1, "");
    if (!node)
        return m->build_status;
    node->out = at_graph_shape(m, input);
    return at_graph_index(m, node);
}

static void sigmoid_forward(const at_layer_ctx *c)
{
    const size_t count = at_shape_numel(c->in_shape[0]) * (size_t)c->n;
    const long blocks = (long)((count + BLOCK - 1) / BLOCK);
#pragma omp parallel for schedule(static) num_threads(at_team(c->workers))
    for (long b = 0; b < blocks; b++) {
        size_t first = (size_t)b * BLOCK, last = count - first < BLOCK ? count : first + BLOCK;
        for (size_t j = first; j < last; j++)
            c->y[j] = 1.0f / (1.0f + expf(-c->x[0][j]));
    }
}

static void sigmoid_backward(const at_layer_ctx *c)
{
    if (!c->dx[0])
        return;
    const size_t count = at_shape_numel(c->in_shape[0]) * (size_t)c->n;
    const long blocks = (long)((count + BLOCK - 1) / BLOCK);
#pragma omp parallel for schedule(static) num_threads(at_team(c->workers))
    for (long b = 0; b < blocks; b++) {
        size_t first = (size_t)b * BLOCK, last = count - first < BLOCK ? count : first + BLOCK;
        for (size_t j = first; j < last; j++)
            c->dx[0][j] += c->dy[j] * c->y[j] * (1.0f - c->y[j]);
    }
}

const at_layer_ops at_layer_sigmoid = {
    .name = "sigmoid",
    .backward_reads = AT_READS_OUTPUT,
    .forward = sigmoid_forward,
    .backward = sigmoid_backward,
};
