/* prelu.c: a ReLU with a learnable slope on the negative side (He et al., 2015), as nn.PReLU:
 *
 *   y = x if x > 0, else a * x
 *   dx += dy if x > 0, else a * dy
 *   da += sum of dy * x over the elements with x <= 0 that share the slope
 *
 * One slope for the whole layer (num_parameters 1) or one per channel (dim 1 of NCHW, or of
 * [n, features] after a flatten), PyTorch's weight "<name>.weight" of shape [num_parameters],
 * initialised to 0.25. At exactly x = 0 PyTorch takes the negative branch in backward (dx = a * dy,
 * and a term 0 * dy in da), and so does this layer.
 *
 * Work is split by plane (one channel of one example): forward and the input gradient are
 * elementwise. For the slope gradient each plane's sum runs in one fixed order (in double) into a
 * shared workspace, and the planes' sums are then added in plane order, so the result does not
 * depend on the number of threads.
 *
 * With a frozen pattern (at_pass_freeze_pattern) which side each element is on is given, one byte
 * each (the captured pass's x > 0), in forward and in both gradients. */
#include "graph/graph.h"

int at_add_prelu(at_model *m, int input, const char *name, int num_parameters)
{
    at_node *node = at_graph_append(m, AT_LAYER_prelu, &input, 1, name);
    if (!node)
        return m->build_status;
    node->out = at_graph_shape(m, input);
    if (num_parameters != 1 && num_parameters != node->out.c)
        return at_graph_error(m, AT_ERR_ARG);
    node->p.prelu.slopes = num_parameters;
    int64_t shape[1] = {num_parameters};
    int status = at_graph_declare(m, node, "weight", true, AT_F32, 1, shape);
    return status ? status : at_graph_index(m, node);
}

/* one double per plane of the batch, for the slope gradient's partial sums */
static size_t prelu_shared(const at_node *node, const at_shape *in, int max_batch,
                           bool weight_grads)
{
    return weight_grads ? 2 * (size_t)max_batch * (size_t)in[0].c : 0;
}

/* PyTorch's default: every slope 0.25 */
static void prelu_init(const at_node *node, const at_shape *in, float *w, float *buf, at_rng *rng)
{
    for (int k = 0; k < node->p.prelu.slopes; k++)
        w[k] = 0.25f;
}

static void prelu_forward(const at_layer_ctx *c)
{
    const int ch = c->in_shape[0].c;
    const size_t plane = (size_t)c->in_shape[0].h * c->in_shape[0].w;
    const long planes = (long)c->n * ch;
    const bool shared_slope = c->node->p.prelu.slopes == 1;
#pragma omp parallel for schedule(static) num_threads(at_team(c->workers))
    for (long q = 0; q < planes; q++) {
        const float a = c->w[shared_slope ? 0 : q % ch];
        const float *x = c->x[0] + (size_t)q * plane;
        float *y = c->y + (size_t)q * plane;
        const uint8_t *given = c->pattern ? (const uint8_t *)c->pattern + (size_t)q * plane : NULL;
        if (given)
            for (size_t j = 0; j < plane; j++)
                y[j] = given[j] ? x[j] : a * x[j];
        else
            for (size_t j = 0; j < plane; j++)
                y[j] = x[j] > 0.0f ? x[j] : a * x[j];
    }
}

static void prelu_backward(const at_layer_ctx *c)
{
    const int ch = c->in_shape[0].c, slopes = c->node->p.prelu.slopes;
    const size_t plane = (size_t)c->in_shape[0].h * c->in_shape[0].w;
    const long planes = (long)c->n * ch;
    double *partial = c->weight_grads ? (double *)(void *)c->shared : NULL;
    if (!c->dx[0] && !partial)
        return;
#pragma omp parallel for schedule(static) num_threads(at_team(c->workers))
    for (long q = 0; q < planes; q++) {
        const float a = c->w[slopes == 1 ? 0 : q % ch];
        const float *x = c->x[0] + (size_t)q * plane, *dy = c->dy + (size_t)q * plane;
        const uint8_t *given = c->pattern ? (const uint8_t *)c->pattern + (size_t)q * plane : NULL;
        if (c->dx[0]) {
            float *dx = c->dx[0] + (size_t)q * plane;
            for (size_t j = 0; j < plane; j++)
                dx[j] += (given ? given[j] : x[j] > 0.0f) ? dy[j] : a * dy[j];
        }
        if (partial) {
            double s = 0.0;
            for (size_t j = 0; j < plane; j++)
                if (!(given ? given[j] : x[j] > 0.0f))
                    s += (double)x[j] * dy[j];
            partial[q] = s;
        }
    }
    if (!partial)
        return;
    /* the rows of the whole batch (other processes' too, shard.c); planes in order: q = i * ch + k */
    int rows;
    const double *parts = at_layer_gather(c, partial, at_layer_row_units(c),
                                          (size_t)ch * sizeof(double), true, &rows);
    if (!parts)
        return;
    if (slopes == 1) {
        double s = 0.0;
        for (long q = 0; q < (long)rows * ch; q++)
            s += parts[q];
        c->dw[0] += (float)s;
    } else {
        for (int k = 0; k < ch; k++) {
            double s = 0.0;
            for (int i = 0; i < rows; i++)
                s += parts[(size_t)i * ch + k];
            c->dw[k] += (float)s;
        }
    }
}

static size_t prelu_pattern_bytes(const at_node *node, const at_shape *in, int max_batch)
{
    return at_shape_numel(in[0]) * (size_t)max_batch;
}

/* the positive side, from the input (which backward keeps) */
static void prelu_capture(const at_layer_ctx *c, void *pattern)
{
    const size_t count = at_shape_numel(c->in_shape[0]) * (size_t)c->n;
    uint8_t *side = pattern;
    for (size_t j = 0; j < count; j++)
        side[j] = c->x[0][j] > 0.0f;
}

const at_layer_ops at_layer_prelu = {
    .name = "prelu",
    .backward_reads = AT_READS_INPUT,
    .shared_floats = prelu_shared,
    .forward = prelu_forward,
    .backward = prelu_backward,
    .init = prelu_init,
    .pattern_bytes = prelu_pattern_bytes,
    .capture_pattern = prelu_capture,
};
