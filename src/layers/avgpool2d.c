/* avgpool2d.c: mean over k x k windows with stride s, no padding (F.avg_pool2d(x, k, s)); the
 * global variant averages the whole image (nn.AdaptiveAvgPool2d(1)). */
#include "graph/graph.h"

static int add_avgpool(at_model *m, int input, int kernel_h, int kernel_w, int stride)
{
    at_node *node = at_graph_append(m, AT_LAYER_avgpool2d, &input, 1, "");
    if (!node)
        return m->build_status;
    at_shape in = at_graph_shape(m, input);
    if (kernel_h < 1 || kernel_w < 1 || stride < 1)
        return at_graph_error(m, AT_ERR_ARG);
    if (kernel_h > in.h || kernel_w > in.w)
        return at_graph_error(m, AT_ERR_SHAPE);
    node->p.pool.kernel_h = kernel_h;
    node->p.pool.kernel_w = kernel_w;
    node->p.pool.stride = stride;
    node->out = (at_shape){in.c, (in.h - kernel_h) / stride + 1, (in.w - kernel_w) / stride + 1};
    return at_graph_index(m, node);
}

int at_add_avgpool2d(at_model *m, int input, int kernel, int stride)
{
    return add_avgpool(m, input, kernel, kernel, stride);
}

int at_add_global_avgpool(at_model *m, int input)
{
    if (input < 0 || input >= m->n_nodes)
        return at_graph_error(m, AT_ERR_ARG);
    at_shape in = at_graph_shape(m, input);
    return add_avgpool(m, input, in.h, in.w, 1);
}

static void avgpool_forward(const at_layer_ctx *c)
{
    const at_shape in = c->in_shape[0], out = c->node->out;
    const int kh = c->node->p.pool.kernel_h, kw = c->node->p.pool.kernel_w;
    const int s = c->node->p.pool.stride;
    const float inv = 1.0f / (float)(kh * kw);
    const long planes = (long)c->n * in.c;
#pragma omp parallel for schedule(static) num_threads(at_team(c->workers))
    for (long p = 0; p < planes; p++) {
        const float *x = c->x[0] + (size_t)p * in.h * in.w;
        float *y = c->y + (size_t)p * out.h * out.w;
        for (int oy = 0; oy < out.h; oy++)
            for (int ox = 0; ox < out.w; ox++) {
                float sum = 0.0f;
                for (int ky = 0; ky < kh; ky++)
                    for (int kx = 0; kx < kw; kx++)
                        sum += x[(oy * s + ky) * in.w + ox * s + kx];
                y[oy * out.w + ox] = sum * inv;
            }
    }
}

static void avgpool_backward(const at_layer_ctx *c)
{
    if (!c->dx[0])
        return;
    const at_shape in = c->in_shape[0], out = c->node->out;
    const int kh = c->node->p.pool.kernel_h, kw = c->node->p.pool.kernel_w;
    const int s = c->node->p.pool.stride;
    const float inv = 1.0f / (float)(kh * kw);
    const long planes = (long)c->n * in.c;
#pragma omp parallel for schedule(static) num_threads(at_team(c->workers))
    for (long p = 0; p < planes; p++) {
        float *dx = c->dx[0] + (size_t)p * in.h * in.w;
        const float *dy = c->dy + (size_t)p * out.h * out.w;
        for (int oy = 0; oy < out.h; oy++)
            for (int ox = 0; ox < out.w; ox++) {
                float g = dy[oy * out.w + ox] * inv;
                for (int ky = 0; ky < kh; ky++)
                    for (int kx = 0; kx < kw; kx++)
                        dx[(oy * s + ky) * in.w + ox * s + kx] += g;
            }
    }
}

const at_layer_ops at_layer_avgpool2d = {
    .name = "avgpool2d",
    .forward = avgpool_forward,
    .backward = avgpool_backward,
};
