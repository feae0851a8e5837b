/* leaky_relu.c: nn.LeakyReLU(negative_slope) (Maas et al., 2013), ONNX LeakyRelu(alpha):
 *
 *   y = x if x > 0, else slope * x
 *   dx += dy if x > 0, else slope * dy
 *
 * At exactly x = 0 PyTorch's leaky_relu_backward takes the negative branch (its test is x > 0),
 * and so does this layer. The slope is fixed, not learned (that is prelu.c). */
#include "graph/graph.h"

#include <math.h>

int at_add_leaky_relu(at_model *m, int input, float negative_slope)
{
    at_node *node = at_graph_append(m, AT_LAYER_leaky_relu, &input, 1, "");
    if (!node)
        return m->build_status;
    if (!isfinite(negative_slope))
        return at_graph_error(m, AT_ERR_ARG);
    node->p.leaky.slope = negative_slope;
    node->out = at_graph_shape(m, input);
    return at_graph_index(m, node);
}

static void leaky_relu_forward_block(const at_layer_ctx *c, size_t first, size_t count)
{
    const float slope = c->node->p.leaky.slope;
    for (size_t j = first; j < first + count; j++) {
        const float x = c->x[0][j];
        c->y[j] = x > 0.0f ? x : slope * x;
    }
}

static void leaky_relu_backward_block(const at_layer_ctx *c, size_t first, size_t count)
{
    const float slope = c->node->p.leaky.slope;
    for (size_t j = first; j < first + count; j++)
        c->dx[0][j] += c->x[0][j] > 0.0f ? c->dy[j] : slope * c->dy[j];
}

static void leaky_relu_forward(const at_layer_ctx *c)
{
    at_each_block(c, leaky_relu_forward_block);
}

static void leaky_relu_backward(const at_layer_ctx *c)
{
    if (c->dx[0])
        at_each_block(c, leaky_relu_backward_block);
}

const at_layer_ops at_layer_leaky_relu = {
    .name = "leaky_relu",
    .backward_reads = AT_READS_INPUT,
    .forward = leaky_relu_forward,
    .backward = leaky_relu_backward,
};
