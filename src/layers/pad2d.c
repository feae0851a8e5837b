/* pad2d.c: constant padding of each image plane (nn.ConstantPad2d, ONNX Pad in constant mode):
 * `top` rows above, `bottom` below, `left` columns before, `right` after, all set to `value`.
 * It carries the padding a convolution or pooling layer cannot: asymmetric zero padding (a
 * "same" convolution with stride 2), a max-pool's padding (value -FLT_MAX, which a window's max
 * never picks over a real element: PyTorch's implicit -inf padding), an average pool's counted
 * zeros (count_include_pad). Backward passes the gradient of the inner elements through. */
#include "graph/graph.h"

#include <math.h>

int at_add_pad2d(at_model *m, int input, int top, int left, int bottom, int right, float value)
{
    at_node *node = at_graph_append(m, AT_LAYER_pad2d, &input, 1, "");
    if (!node)
        return m->build_status;
    at_shape in = at_graph_shape(m, input);
    if (top < 0 || left < 0 || bottom < 0 || right < 0 || top > 65536 || left > 65536 ||
        bottom > 65536 || right > 65536 || isnan(value))
        return at_graph_error(m, AT_ERR_ARG);
    node->p.pad.top = top;
    node->p.pad.left = left;
    node->p.pad.bottom = bottom;
    node->p.pad.right = right;
    node->p.pad.value = value;
    node->out = (at_shape){in.c, in.h + top + bottom, in.w + left + right};
    return at_graph_index(m, node);
}

static void pad2d_forward(const at_layer_ctx *c)
{
    const at_shape in = c->in_shape[0], out = c->node->out;
    const int top = c->node->p.pad.top, left = c->node->p.pad.left;
    const float value = c->node->p.pad.value;
    const long planes = (long)c->n * in.c;
#pragma omp parallel for schedule(static) num_threads(at_team(c->workers))
    for (long p = 0; p < planes; p++) {
        const float *x = c->x[0] + (size_t)p * in.h * in.w;
        float *y = c->y + (size_t)p * out.h * out.w;
        for (int i = 0; i < out.h; i++)
            for (int j = 0; j < out.w; j++) {
                const int si = i - top, sj = j - left;
                y[(size_t)i * out.w + j] = si >= 0 && si < in.h && sj >= 0 && sj < in.w
                                               ? x[(size_t)si * in.w + sj]
                                               : value;
            }
    }
}

static void pad2d_backward(const at_layer_ctx *c)
{
    if (!c->dx[0])
        return;
    const at_shape in = c->in_shape[0], out = c->node->out;
    const int top = c->node->p.pad.top, left = c->node->p.pad.left;
    const long planes = (long)c->n * in.c;
#pragma omp parallel for schedule(static) num_threads(at_team(c->workers))
    for (long p = 0; p < planes; p++) {
        const float *dy = c->dy + (size_t)p * out.h * out.w;
        float *dx = c->dx[0] + (size_t)p * in.h * in.w;
        for (int i = 0; i < in.h; i++)
            for (int j = 0; j < in.w; j++)
                dx[(size_t)i * in.w + j] += dy[(size_t)(i + top) * out.w + j + left];
    }
}

const at_layer_ops at_layer_pad2d = {
    .name = "pad2d",
    .forward = pad2d_forward,
    .backward = pad2d_backward,
};
