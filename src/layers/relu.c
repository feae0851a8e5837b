/* relu.c: y = max(x, 0); dx += dy where y > 0 (equivalently x > 0; PyTorch's convention at 0: no
 * gradient). Backward reads the output rather than the input, so the input (usually a batch-norm
 * output nobody else needs in backward) does not have to be kept.
 *
 * With a frozen pattern (at_pass_freeze_pattern) the active units are given, one byte each (the
 * captured pass's y > 0): y = x on them and 0 elsewhere, and backward routes dy through them. */
#include "graph/graph.h"
#include "kernels/kernels.h"

int at_add_relu(at_model *m, int input)
{
    at_node *node = at_graph_append(m, AT_LAYER_relu, &input, 1, "");
    if (!node)
        return m->build_status;
    node->out = at_graph_shape(m, input);
    return at_graph_index(m, node);
}

static void relu_forward_block(const at_layer_ctx *c, size_t first, size_t count)
{
    if (c->pattern)
        at_relu_pattern_forward_kernel(c->x[0] + first, (const uint8_t *)c->pattern + first,
                                       c->y + first, count);
    else
        at_relu_forward_kernel(c->x[0] + first, c->y + first, count);
}

static void relu_backward_block(const at_layer_ctx *c, size_t first, size_t count)
{
    if (c->pattern)
        at_relu_pattern_backward_kernel((const uint8_t *)c->pattern + first, c->dy + first,
                                        c->dx[0] + first, count);
    else
        at_relu_backward_kernel(c->y + first, c->dy + first, c->dx[0] + first, count);
}

static void relu_forward(const at_layer_ctx *c) { at_each_block(c, relu_forward_block); }

static void relu_backward(const at_layer_ctx *c)
{
    if (c->dx[0])
        at_each_block(c, relu_backward_block);
}

static size_t relu_pattern_bytes(const at_node *node, const at_shape *in, int max_batch)
{
    return at_shape_numel(in[0]) * (size_t)max_batch;
}

/* Elements per unit of work of the capture, the size of at_each_block's. */
#define CAPTURE_BLOCK 16384

/* The units its backward treats as active (the output of a fused one lives at this node too). */
static void relu_capture(const at_layer_ctx *c, void *pattern)
{
    const size_t count = at_shape_numel(c->in_shape[0]) * (size_t)c->n;
    const long blocks = (long)((count + CAPTURE_BLOCK - 1) / CAPTURE_BLOCK);
#pragma omp parallel for schedule(static) num_threads(at_team(c->workers))
    for (long b = 0; b < blocks; b++) {
        size_t first = (size_t)b * CAPTURE_BLOCK;
        size_t n = count - first < CAPTURE_BLOCK ? count - first : CAPTURE_BLOCK;
        at_relu_mask_kernel(c->y + first, (uint8_t *)pattern + first, n);
    }
}

const at_layer_ops at_layer_relu = {
    .name = "relu",
    .backward_reads = AT_READS_OUTPUT,
    .forward = relu_forward,
    .backward = relu_backward,
    .pattern_bytes = relu_pattern_bytes,
    .capture_pattern = relu_capture,
};
