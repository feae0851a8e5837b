/* maxpool2d.c: max over k x k windows with stride s, no padding (nn.MaxPool2d(k, s)).
 * The first maximum of a window wins, and a NaN wins over any number, as in PyTorch; the winner's
 * index is cached so backward routes dy to it.
 *
 * With a frozen pattern (at_pass_freeze_pattern) the winners are given: the captured pass's
 * indices, which this pass takes as its own, so y is the input at them and backward is as ever. */
#include "graph/graph.h"
#include "kernels/kernels.h"

#include <stdint.h>
#include <string.h>

int at_add_maxpool2d(at_model *m, int input, int kernel, int stride)
{
    at_node *node = at_graph_append(m, AT_LAYER_maxpool2d, &input, 1, "");
    if (!node)
        return m->build_status;
    at_shape in = at_graph_shape(m, input);
    if (kernel < 1 || stride < 1)
        return at_graph_error(m, AT_ERR_ARG);
    if (kernel > in.h || kernel > in.w)
        return at_graph_error(m, AT_ERR_SHAPE);
    node->p.pool.kernel_h = node->p.pool.kernel_w = kernel;
    node->p.pool.stride = stride;
    node->out = (at_shape){in.c, (in.h - kernel) / stride + 1, (in.w - kernel) / stride + 1};
    return at_graph_index(m, node);
}

static size_t maxpool_cache(const at_node *node, const at_shape *in, int max_batch)
{
    return at_shape_numel(node->out) * (size_t)max_batch * sizeof(int32_t);
}

static void maxpool_forward(const at_layer_ctx *c)
{
    const at_shape in = c->in_shape[0], out = c->node->out;
    const int k = c->node->p.pool.kernel_h, s = c->node->p.pool.stride;
    const long planes = (long)c->n * in.c;
    int32_t *argmax = c->cache;
#pragma omp parallel for schedule(static) num_threads(at_team(c->workers))
    for (long p = 0; p < planes; p++) {
        const float *x = c->x[0] + (size_t)p * in.h * in.w;
        float *y = c->y + (size_t)p * out.h * out.w;
        int32_t *arg = argmax + (size_t)p * out.h * out.w;
        if (c->pattern) {
            const int32_t *given = (const int32_t *)c->pattern + (size_t)p * out.h * out.w;
            for (int j = 0; j < out.h * out.w; j++) {
                arg[j] = given[j];
                y[j] = x[given[j]];
            }
            continue;
        }
        if (k == 2 && s == 2) {
            at_maxpool2x2_kernel(x, in.h, in.w, y, arg); /* the common case, vectorised */
            continue;
        }
        for (int oy = 0; oy < out.h; oy++)
            for (int ox = 0; ox < out.w; ox++) {
                int best = (oy * s) * in.w + ox * s;
                float best_value = x[best];
                for (int ky = 0; ky < k; ky++)
                    for (int kx = 0; kx < k; kx++) {
                        int idx = (oy * s + ky) * in.w + ox * s + kx;
                        float v = x[idx];
                        if (v > best_value || (v != v && best_value == best_value)) {
                            best = idx;
                            best_value = v;
                        }
                    }
                y[oy * out.w + ox] = best_value;
                arg[oy * out.w + ox] = best;
            }
    }
}

static void maxpool_backward(const at_layer_ctx *c)
{
    if (!c->dx[0])
        return;
    const at_shape in = c->in_shape[0], out = c->node->out;
    const long planes = (long)c->n * in.c;
    const int32_t *argmax = c->cache;
#pragma omp parallel for schedule(static) num_threads(at_team(c->workers))
    for (long p = 0; p < planes; p++) {
        float *dx = c->dx[0] + (size_t)p * in.h * in.w;
        const float *dy = c->dy + (size_t)p * out.h * out.w;
        const int32_t *arg = argmax + (size_t)p * out.h * out.w;
        for (int j = 0; j < out.h * out.w; j++)
            dx[arg[j]] += dy[j];
    }
}

static void maxpool_capture(const at_layer_ctx *c, void *pattern)
{
    memcpy(pattern, c->cache, at_shape_numel(c->node->out) * (size_t)c->n * sizeof(int32_t));
}

const at_layer_ops at_layer_maxpool2d = {
    .name = "maxpool2d",
    .cache_bytes = maxpool_cache,
    .forward = maxpool_forward,
    .backward = maxpool_backward,
    .pattern_bytes = maxpool_cache, /* the winners' indices, as the cache */
    .capture_pattern = maxpool_capture,
};
