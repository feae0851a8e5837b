/* linear.c: y = x W^T + b (nn.Linear) on vectors: x [n, I], W [O, I], b [O] -> y [n, O].
 *   dx += dy W,  dW += dy^T x,  db += sum_n dy.
 * Rows of y and dx are split into fixed blocks, rows of dW likewise, so each output element is
 * computed by one matrix product of a fixed shape whatever the number of threads. */
#include "graph/graph.h"
#include "kernels/kernels.h"

#include <math.h>

#define ROW_BLOCK 32

int at_add_linear(at_model *m, int input, const char *name, int out_features, bool bias)
{
    at_node *node = at_graph_append(m, AT_LAYER_linear, &input, 1, name);
    if (!node)
        return m->build_status;
    at_shape in = at_graph_shape(m, input);
    if (out_features < 1)
        return at_graph_error(m, AT_ERR_ARG);
    if (in.h != 1 || in.w != 1)
        return at_graph_error(m, AT_ERR_SHAPE); /* flatten first */
    node->p.linear.out_features = out_features;
    node->p.linear.bias = bias;
    node->out = (at_shape){out_features, 1, 1};
    int64_t wshape[2] = {out_features, in.c};
    int status = at_graph_declare(m, node, "weight", true, AT_F32, 2, wshape);
    if (status == AT_OK && bias) {
        int64_t bshape[1] = {out_features};
        status = at_graph_declare(m, node, "bias", true, AT_F32, 1, bshape);
    }
    return status ? status : at_graph_index(m, node);
}

/* PyTorch's default: U(-1/sqrt(in), 1/sqrt(in)) for weight and bias. */
static void linear_init(const at_node *node, const at_shape *in, float *w, float *buf, at_rng *rng)
{
    size_t count = (size_t)in->c * node->p.linear.out_features;
    double bound = 1.0 / sqrt((double)in->c);
    for (size_t i = 0; i < count; i++)
        w[i] = (float)((2.0 * at_rng_uniform(rng) - 1.0) * bound);
    if (node->p.linear.bias)
        for (int o = 0; o < node->p.linear.out_features; o++)
            w[count + o] = (float)((2.0 * at_rng_uniform(rng) - 1.0) * bound);
}

static void linear_forward(const at_layer_ctx *c)
{
    const int in = c->in_shape[0].c, out = c->node->p.linear.out_features;
    const float *bias = c->node->p.linear.bias ? c->w + (size_t)in * out : NULL;
    const int blocks = (c->n + ROW_BLOCK - 1) / ROW_BLOCK;
#pragma omp parallel for schedule(static) num_threads(at_team(c->workers))
    for (int b = 0; b < blocks; b++) {
        int r0 = b * ROW_BLOCK, rows = c->n - r0 < ROW_BLOCK ? c->n - r0 : ROW_BLOCK;
        float *y = c->y + (size_t)r0 * out;
        at_gemm(false, true, rows, out, in, 1.0f, c->x[0] + (size_t)r0 * in, in, c->w, in, 0.0f, y,
                out);
        if (bias)
            for (int r = 0; r < rows; r++)
                for (int o = 0; o < out; o++)
                    y[(size_t)r * out + o] += bias[o];
    }
}

static void linear_backward(const at_layer_ctx *c)
{
    const int in = c->in_shape[0].c, out = c->node->p.linear.out_features;
    if (c->dx[0]) {
        const int blocks = (c->n + ROW_BLOCK - 1) / ROW_BLOCK;
#pragma omp parallel for schedule(static) num_threads(at_team(c->workers))
        for (int b = 0; b < blocks; b++) {
            int r0 = b * ROW_BLOCK, rows = c->n - r0 < ROW_BLOCK ? c->n - r0 : ROW_BLOCK;
            at_gemm(false, false, rows, in, out, 1.0f, c->dy + (size_t)r0 * out, out, c->w, in, 1.0f,
                    c->dx[0] + (size_t)r0 * in, in);
        }
    }
    if (c->weight_grads) {
        const int blocks = (out + ROW_BLOCK - 1) / ROW_BLOCK;
        float *dbias = c->node->p.linear.bias ? c->dw + (size_t)in * out : NULL;
#pragma omp parallel for schedule(static) num_threads(at_team(c->workers))
        for (int b = 0; b < blocks; b++) {
            int o0 = b * ROW_BLOCK, rows = out - o0 < ROW_BLOCK ? out - o0 : ROW_BLOCK;
            at_gemm(true, false, rows, in, c->n, 1.0f, c->dy + o0, out, c->x[0], in, 1.0f,
                    c->dw + (size_t)o0 * in, in);
            if (dbias)
                for (int o = o0; o < o0 + rows; o++) {
                    float s = 0.0f;
                    for (int i = 0; i < c->n; i++)
                        s += c->dy[(size_t)i * out + o];
                    dbias[o] += s;
                }
        }
    }
}

const at_layer_ops at_layer_linear = {
    .name = "linear",
    .forward = linear_forward,
    .backward = linear_backward,
    .init = linear_init,
};
