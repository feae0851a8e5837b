/* mul.c: y = a * b elementwise for two nodes of one shape (SiLU as x * sigmoid(x), a gate);
 * da += dy * b, db += dy * a. Backward reads both inputs. When both inputs are one node (x * x)
 * both terms add into its gradient, as they should. */
#include "graph/graph.h"

int at_add_mul(at_model *m, int input_a, int input_b)
{
    int inputs[2] = {input_a, input_b};
    at_node *node = at_graph_append(m, AT_LAYER_mul, inputs, 2, "");
    if (!node)
        return m->build_status;
    at_shape a = at_graph_shape(m, input_a), b = at_graph_shape(m, input_b);
    if (a.c != b.c || a.h != b.h || a.w != b.w)
        return at_graph_error(m, AT_ERR_SHAPE);
    node->out = a;
    return at_graph_index(m, node);
}

static void mul_forward_block(const at_layer_ctx *c, size_t first, size_t count)
{
    for (size_t j = first; j < first + count; j++)
        c->y[j] = c->x[0][j] * c->x[1][j];
}

static void mul_backward_block(const at_layer_ctx *c, size_t first, size_t count)
{
    for (int k = 0; k < 2; k++) {
        if (!c->dx[k])
            continue;
        const float *other = c->x[1 - k];
        for (size_t j = first; j < first + count; j++)
            c->dx[k][j] += c->dy[j] * other[j];
    }
}

static void mul_forward(const at_layer_ctx *c) { at_each_block(c, mul_forward_block); }

static void mul_backward(const at_layer_ctx *c) { at_each_block(c, mul_backward_block); }

const at_layer_ops at_layer_mul = {
    .name = "mul",
    .backward_reads = AT_READS_INPUT,
    .forward = mul_forward,
    .backward = mul_backward,
};
