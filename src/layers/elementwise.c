/* elementwise.c: the work split shared by the element-wise layers (graph.h, at_each_block). */
#include "graph/graph.h"

/* Elements per unit of work: big enough to amortise the call, small enough to balance. */
#define BLOCK 16384

void at_each_block(const at_layer_ctx *c, at_block_fn fn)
{
    const size_t total = at_shape_numel(c->in_shape[0]) * (size_t)c->n;
    const long blocks = (long)((total + BLOCK - 1) / BLOCK);
#pragma omp parallel for schedule(static) num_threads(at_team(c->workers))
    for (long b = 0; b < blocks; b++) {
        const size_t first = (size_t)b * BLOCK;
        fn(c, first, total - first < BLOCK ? total - first : BLOCK);
    }
}
