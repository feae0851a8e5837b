/* upsample2d.c: nearest-neighbour upsampling by an integer factor s (nn.Upsample(scale_factor=s,
 * mode="nearest")): y[c, oy, ox] = x[c, oy / s, ox / s]. Backward sums the gradient of each
 * s x s block into its source pixel. The decoder of a small autoencoder grows its feature maps
 * back this way (upsample, then convolve) rather than with transposed convolutions, which avoids
 * their checkerboard artefacts (Odena, Dumoulin and Olah, Distill 2016). Each plane is computed
 * alone, so splitting planes across threads does not change the result. */
#include "graph/graph.h"

int at_add_upsample2d(at_model *m, int input, int factor)
{
    at_node *node = at_graph_append(m, AT_LAYER_upsample2d, &input, 1, "");
    if (!node)
        return m->build_status;
    at_shape in = at_graph_shape(m, input);
    if (factor < 1 || factor > 64)
        return at_graph_error(m, AT_ERR_ARG);
    if ((long)in.h * factor > 1 << 16 || (long)in.w * factor > 1 << 16)
        return at_graph_error(m, AT_ERR_SHAPE);
    node->p.upsample.factor = factor;
    node->out = (at_shape){in.c, in.h * factor, in.w * factor};
    return at_graph_index(m, node);
}

static void upsample_forward(const at_layer_ctx *c)
{
    const at_shape in = c->in_shape[0], out = c->node->out;
    const int s = c->node->p.upsample.factor;
    const long planes = (long)c->n * in.c;
#pragma omp parallel for schedule(static) num_threads(at_team(c->workers))
    for (long p = 0; p < planes; p++) {
        const float *x = c->x[0] + (size_t)p * in.h * in.w;
        float *y = c->y + (size_t)p * out.h * out.w;
        for (int oy = 0; oy < out.h; oy++)
            for (int ox = 0; ox < out.w; ox++)
                y[oy * out.w + ox] = x[(oy / s) * in.w + ox / s];
    }
}

static void upsample_backward(const at_layer_ctx *c)
{
    if (!c->dx[0])
        return;
    const at_shape in = c->in_shape[0], out = c->node->out;
    const int s = c->node->p.upsample.factor;
    const long planes = (long)c->n * in.c;
#pragma omp parallel for schedule(static) num_threads(at_team(c->workers))
    for (long p = 0; p < planes; p++) {
        float *dx = c->dx[0] + (size_t)p * in.h * in.w;
        const float *dy = c->dy + (size_t)p * out.h * out.w;
        for (int iy = 0; iy < in.h; iy++)
            for (int ix = 0; ix < in.w; ix++) {
                float sum = 0.0f;
                for (int ky = 0; ky < s; ky++)
                    for (int kx = 0; kx < s; kx++)
                        sum += dy[(iy * s + ky) * out.w + ix * s + kx];
                dx[iy * in.w + ix] += sum;
            }
    }
}

const at_layer_ops at_layer_upsample2d = {
    .name = "upsample2d",
    .forward = upsample_forward,
    .backward = upsample_backward,
};
