/* slice.c: channels [first, first + count) of the input, y = x[:, first:first + count]. A clip
 * stored as an image whose channels are its frames is cut into frames this way. Backward adds dy
 * into those channels of dx, so slices of one input, overlapping or not, sum their gradients. */
#include "graph/graph.h"
#include "kernels/kernels.h"

#include <string.h>

int at_add_slice(at_model *m, int input, int first_channel, int channels)
{
    at_node *node = at_graph_append(m, AT_LAYER_slice, &input, 1, "");
    if (!node)
        return m->build_status;
    at_shape in = at_graph_shape(m, input);
    if (first_channel < 0 || channels < 1 || first_channel > in.c - channels)
        return at_graph_error(m, AT_ERR_ARG);
    node->p.slice.first = first_channel;
    node->out = (at_shape){channels, in.h, in.w};
    return at_graph_index(m, node);
}

static void slice_forward(const at_layer_ctx *c)
{
    const size_t in_size = at_shape_numel(c->in_shape[0]), out_size = at_shape_numel(c->node->out);
    const size_t offset = (size_t)c->node->p.slice.first * c->in_shape[0].h * c->in_shape[0].w;
    for (int i = 0; i < c->n; i++)
        memcpy(c->y + (size_t)i * out_size, c->x[0] + (size_t)i * in_size + offset,
               out_size * sizeof(float));
}

static void slice_backward(const at_layer_ctx *c)
{
    if (!c->dx[0])
        return;
    const size_t in_size = at_shape_numel(c->in_shape[0]), out_size = at_shape_numel(c->node->out);
    const size_t offset = (size_t)c->node->p.slice.first * c->in_shape[0].h * c->in_shape[0].w;
    for (int i = 0; i < c->n; i++)
        at_accumulate_kernel(c->dy + (size_t)i * out_size, c->dx[0] + (size_t)i * in_size + offset,
                             out_size);
}

const at_layer_ops at_layer_slice = {
    .name = "slice",
    .forward = slice_forward,
    .backward = slice_backward,
};
