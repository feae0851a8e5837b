/* input.c: node 0, the batch itself. The pass copies the input into its output; there is nothing
 * to compute in either direction. */
#include "graph/graph.h"

static void input_forward(const at_layer_ctx *c) { (void)c; }
static void input_backward(const at_layer_ctx *c) { (void)c; }

const at_layer_ops at_layer_input = {
    .name = "input",
    .forward = input_forward,
    .backward = input_backward,
};
