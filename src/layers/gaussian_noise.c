/* gaussian_noise.c: y = x + sigma * N(0, 1) with fresh noise at every forward, drawn in order from
 * the pass's random stream (so a seed fixes it, whatever the thread count). A randomised model:
 * the gradient of one forward is a poor guide to the expected loss, which is what EOT (averaging
 * gradients over several forwards) is for. dx = dy. A frozen activation pattern
 * (at_pass_freeze_pattern) does not fix the noise: each pass draws from its own stream. */
#include "graph/graph.h"
#include "kernels/kernels.h"

#include <math.h>

int at_add_gaussian_noise(at_model *m, int input, float sigma)
{
    at_node *node = at_graph_append(m, AT_LAYER_gaussian_noise, &input, 1, "");
    if (!node)
        return m->build_status;
    if (!(sigma >= 0.0f && isfinite(sigma)))
        return at_graph_error(m, AT_ERR_ARG);
    node->p.noise.sigma = sigma;
    node->out = at_graph_shape(m, input);
    return at_graph_index(m, node);
}

static void noise_forward(const at_layer_ctx *c)
{
    const size_t count = at_shape_numel(c->in_shape[0]) * (size_t)c->n;
    const float sigma = c->node->p.noise.sigma;
    for (size_t i = 0; i < count; i++)
        c->y[i] = c->x[0][i] + sigma * (float)at_rng_normal(c->rng);
}

static void noise_backward(const at_layer_ctx *c)
{
    if (c->dx[0])
        at_accumulate_kernel(c->dy, c->dx[0], at_shape_numel(c->in_shape[0]) * (size_t)c->n);
}

const at_layer_ops at_layer_gaussian_noise = {
    .name = "gaussian_noise",
    .forward = noise_forward,
    .backward = noise_backward,
};
