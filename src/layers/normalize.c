/* normalize.c: y[c] = (x[c] - mean[c]) / std[c]. Putting the input normalisation inside the model
 * keeps every perturbation budget on [0,1] pixels, whatever the model was trained with. */
#include "graph/graph.h"

#include <math.h>

int at_add_normalize(at_model *m, int input, const float *mean, const float *std)
{
    at_node *node = at_graph_append(m, AT_LAYER_normalize, &input, 1, "");
    if (!node)
        return m->build_status;
    at_shape in = at_graph_shape(m, input);
    if (in.c > 4)
        return at_graph_error(m, AT_ERR_SHAPE);
    for (int ch = 0; ch < in.c; ch++) {
        if (!isfinite(mean[ch]) || !isfinite(std[ch]) || !(std[ch] > 0.0f))
            return at_graph_error(m, AT_ERR_ARG);
        node->p.norm.mean[ch] = mean[ch];
        node->p.norm.std[ch] = std[ch];
    }
    node->out = in;
    return at_graph_index(m, node);
}

static void normalize_forward(const at_layer_ctx *c)
{
    const at_shape s = c->in_shape[0];
    const size_t plane = (size_t)s.h * s.w;
    for (int i = 0; i < c->n; i++)
        for (int ch = 0; ch < s.c; ch++) {
            const float *x = c->x[0] + ((size_t)i * s.c + ch) * plane;
            float *y = c->y + ((size_t)i * s.c + ch) * plane;
            const float mean = c->node->p.norm.mean[ch], std = c->node->p.norm.std[ch];
            for (size_t j = 0; j < plane; j++)
                y[j] = (x[j] - mean) / std;
        }
}

static void normalize_backward(const at_layer_ctx *c)
{
    if (!c->dx[0])
        return;
    const at_shape s = c->in_shape[0];
    const size_t plane = (size_t)s.h * s.w;
    for (int i = 0; i < c->n; i++)
        for (int ch = 0; ch < s.c; ch++) {
            const float *dy = c->dy + ((size_t)i * s.c + ch) * plane;
            float *dx = c->dx[0] + ((size_t)i * s.c + ch) * plane;
            const float std = c->node->p.norm.std[ch];
            for (size_t j = 0; j < plane; j++)
                dx[j] += dy[j] / std;
        }
}

const at_layer_ops at_layer_normalize = {
    .name = "normalize",
    .forward = normalize_forward,
    .backward = normalize_backward,
};
