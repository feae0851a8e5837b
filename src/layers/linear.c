/* linear.c: y = x W^T + b (nn.Linear) on vectors: x [n, I], W [O, I], b [O] -> y [n, O].
 *   dx += dy W,  dW += dy^T x,  db += sum_n dy.
 * Rows of y and dx are computed in blocks of ROW_BLOCK examples, always through a full block
 * (padded with zeros), so every matrix product has the same shape: an example's output then
 * does not depend on how many examples share its batch, nor on the thread count. The matrix
 * product may round a row differently at another position in its block, so a row keeps its
 * position: that of its index in the batch (in the whole batch, when processes share it).
 * dW and db are summed over the batch in the units of at_reduce_units: each unit's partial sums
 * come from one matrix product over its rows, and the partials are added in unit order, so the
 * result depends neither on the thread count nor on how processes share the batch (shard.c). */
#include "graph/graph.h"
#include "kernels/kernels.h"

#include <math.h>
#include <string.h>

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

/* per worker: one padded block of inputs and one of outputs */
static size_t linear_scratch(const at_node *node, const at_shape *in, int max_batch)
{
    return (size_t)ROW_BLOCK * ((size_t)in[0].c + (size_t)node->p.linear.out_features);
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

/* Blocks of rows: row r sits at position (first + r) % ROW_BLOCK of its block, `first` the
 * global index of row 0 when processes share the batch (at_layer_first_row), so a row meets the
 * same product in any batch and on any process. Block b's rows: [*r0, *r0 + count), the first
 * at position *pos; the rest of the block is zeros. */
static int block_count(const at_layer_ctx *c)
{
    return (c->n + at_layer_first_row(c) % ROW_BLOCK + ROW_BLOCK - 1) / ROW_BLOCK;
}

static int block_rows(const at_layer_ctx *c, int b, int *r0, int *pos)
{
    const int start = b * ROW_BLOCK - at_layer_first_row(c) % ROW_BLOCK;
    const int end = start + ROW_BLOCK < c->n ? start + ROW_BLOCK : c->n;
    *r0 = start < 0 ? 0 : start;
    *pos = *r0 - start;
    return end - *r0;
}

/* Fills a padded block of `width` floats per row with `rows` rows of src at position pos. */
static void fill_block(float *block, const float *src, int rows, int pos, int width)
{
    memset(block, 0, (size_t)pos * width * sizeof(float));
    memcpy(block + (size_t)pos * width, src, (size_t)rows * width * sizeof(float));
    memset(block + (size_t)(pos + rows) * width, 0,
           (size_t)(ROW_BLOCK - pos - rows) * width * sizeof(float));
}

static void linear_forward(const at_layer_ctx *c)
{
    const int in = c->in_shape[0].c, out = c->node->p.linear.out_features;
    const float *bias = c->node->p.linear.bias ? c->w + (size_t)in * out : NULL;
    const int blocks = block_count(c);
#pragma omp parallel for schedule(static) num_threads(at_team(c->workers))
    for (int b = 0; b < blocks; b++) {
        int r0, pos, rows = block_rows(c, b, &r0, &pos);
        float *xb = c->scratch + (size_t)at_thread_id() * c->scratch_floats;
        float *yb = xb + (size_t)ROW_BLOCK * in;
        fill_block(xb, c->x[0] + (size_t)r0 * in, rows, pos, in);
        at_gemm(false, true, ROW_BLOCK, out, in, 1.0f, xb, in, c->w, in, 0.0f, yb, out);
        float *y = c->y + (size_t)r0 * out;
        const float *yr = yb + (size_t)pos * out;
        for (int r = 0; r < rows; r++)
            for (int o = 0; o < out; o++)
                y[(size_t)r * out + o] = yr[(size_t)r * out + o] + (bias ? bias[o] : 0.0f);
    }
}

static size_t partial_floats(const at_node *node, const at_shape *in)
{
    const size_t out = (size_t)node->p.linear.out_features;
    return (size_t)in[0].c * out + (node->p.linear.bias ? out : 0);
}

static size_t linear_shared(const at_node *node, const at_shape *in, int max_batch,
                            bool weight_grads)
{
    const size_t partial = partial_floats(node, in);
    return weight_grads ? (size_t)at_reduce_units(max_batch, partial) * partial : 0;
}

static void linear_backward_weights(const at_layer_ctx *c)
{
    const int in = c->in_shape[0].c, out = c->node->p.linear.out_features;
    const bool bias = c->node->p.linear.bias;
    const size_t stride = partial_floats(c->node, c->in_shape), count = stride;
    const at_units split = at_layer_units(c, stride);
#pragma omp parallel for schedule(static) num_threads(at_team(c->workers))
    for (int u = 0; u < split.count; u++) {
        float *partial = c->shared + (size_t)u * stride;
        const int first = u * split.per_unit;
        const int rows = first >= c->n ? 0 : (c->n - first < split.per_unit ? c->n - first : split.per_unit);
        if (rows == 0) {
            memset(partial, 0, count * sizeof(float));
            continue;
        }
        at_gemm(true, false, out, in, rows, 1.0f, c->dy + (size_t)first * out, out,
                c->x[0] + (size_t)first * in, in, 0.0f, partial, in);
        if (bias)
            for (int o = 0; o < out; o++) {
                float s = 0.0f;
                for (int i = first; i < first + rows; i++)
                    s += c->dy[(size_t)i * out + o];
                partial[(size_t)in * out + o] = s;
            }
    }
    at_layer_add_units(c, split, stride, count);
}

static void linear_backward(const at_layer_ctx *c)
{
    const int in = c->in_shape[0].c, out = c->node->p.linear.out_features;
    if (c->dx[0]) {
        const int blocks = block_count(c);
#pragma omp parallel for schedule(static) num_threads(at_team(c->workers))
        for (int b = 0; b < blocks; b++) {
            int r0, pos, rows = block_rows(c, b, &r0, &pos);
            float *dxb = c->scratch + (size_t)at_thread_id() * c->scratch_floats;
            float *dyb = dxb + (size_t)ROW_BLOCK * in;
            fill_block(dyb, c->dy + (size_t)r0 * out, rows, pos, out);
            at_gemm(false, false, ROW_BLOCK, in, out, 1.0f, dyb, out, c->w, in, 0.0f, dxb, in);
            at_accumulate_kernel(dxb + (size_t)pos * in, c->dx[0] + (size_t)r0 * in, (size_t)rows * in);
        }
    }
    if (c->weight_grads)
        linear_backward_weights(c);
}

const at_layer_ops at_layer_linear = {
    .name = "linear",
    .backward_reads = AT_READS_INPUT_FOR_WEIGHTS,
    .scratch_floats = linear_scratch,
    .shared_floats = linear_shared,
    .forward = linear_forward,
    .backward = linear_backward,
    .init = linear_init,
};
