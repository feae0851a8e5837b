/* pattern.c: a pass that follows another pass's activation pattern (at_pass_freeze_pattern).
 *
 * A network of ReLUs and max-pools is piecewise linear in its input: which piece x lies on is
 * fixed by each ReLU's active units and each max-pool's winners. Copying those decisions from a
 * pass at x into a second pass makes the second one compute the network on x's piece, extended
 * linearly past its edges, at whatever input it is given. Differences of its gradients along a
 * direction are then derivatives of that one smooth function, which is what double
 * backpropagation (PyTorch's create_graph=True, where a ReLU's mask and a max-pool's indices are
 * constants) differentiates; without the pattern a finite difference that crosses a kink picks
 * up the jump.
 *
 * Each kinked layer says how many bytes its decisions take and copies them
 * (at_layer_ops.pattern_bytes, capture_pattern); the storage is one allocation per pass, made at
 * its first freeze and sized for its max_batch, so following a pattern allocates nothing after. */
#include "graph/pass.h"

#include <string.h>

static at_shape input_shape(const at_model *m, const at_node *node, int k)
{
    return k < node->n_inputs ? m->nodes[node->inputs[k]].out : (at_shape){0, 0, 0};
}

/* Per-node offsets, then the decisions of every kinked node for max_batch examples. */
static int allocate(at_pass *p)
{
    const at_model *m = p->model;
    size_t *offset = at_alloc((size_t)m->n_nodes * sizeof *offset);
    if (!offset)
        return AT_ERR_NOMEM;
    size_t total = 0;
    for (int i = 0; i < m->n_nodes; i++) {
        const at_node *node = &m->nodes[i];
        const at_layer_ops *ops = i > 0 ? at_layer_ops_of(node->kind) : NULL;
        offset[i] = SIZE_MAX;
        if (!ops || !ops->pattern_bytes)
            continue;
        const at_shape in[2] = {input_shape(m, node, 0), input_shape(m, node, 1)};
        offset[i] = total;
        total += (ops->pattern_bytes(node, in, p->max_batch) + 63) & ~(size_t)63;
    }
    unsigned char *pattern = total ? at_alloc(total) : NULL;
    if (total && !pattern) {
        at_free(offset);
        return AT_ERR_NOMEM;
    }
    p->pattern_offset = offset;
    p->pattern = pattern;
    return AT_OK;
}

int at_pass_freeze_pattern(at_pass *dst, const at_pass *src)
{
    if (!dst)
        return AT_ERR_ARG;
    if (!src) {
        dst->pattern_n = 0;
        return AT_OK;
    }
    if (src->model != dst->model || src->n > dst->max_batch)
        return AT_ERR_ARG;
    /* a forward-only pass lets later nodes overwrite a ReLU's output: its decisions are gone */
    if (src->n == 0 || (src->flags & AT_PASS_FORWARD_ONLY))
        return AT_ERR_STATE;
    if (!dst->pattern_offset) {
        int status = allocate(dst);
        if (status)
            return status;
    }
    const at_model *m = src->model;
    for (int i = 1; i < m->n_nodes; i++) {
        const at_layer_ops *ops = at_layer_ops_of(m->nodes[i].kind);
        if (!ops->capture_pattern)
            continue;
        at_layer_ctx c = at_pass_node_ctx(src, i);
        if (src->hooks[i].forward)
            c.y = src->saved[i]; /* what the layer produced, as its backward sees it */
        ops->capture_pattern(&c, dst->pattern + dst->pattern_offset[i]);
    }
    dst->pattern_n = src->n;
    return AT_OK;
}
