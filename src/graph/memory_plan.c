/* memory_plan.c: which node outputs and gradients need their own memory, and which can share.
 *
 * Node j's output is read by forward from j until its last consumer c(j), and by backward only if
 * a consumer's backward reads its input (conv, batch norm, linear) or j's own backward reads its
 * output (ReLU). An output nobody reads in backward lives only over [j, c(j)] during forward. Its
 * gradient is written by the consumers' backward and read by j's own, so it lives over [j, c(j)]
 * during backward. Buffers whose intervals do not overlap share a slot (greedy interval colouring,
 * slot size = the largest buffer placed in it). The input, the logits and, with AT_PASS_KEEP_ALL,
 * every node keep their own memory.
 *
 * A layer that can fuse a ReLU (conv2d) does so when the ReLU is the next node and the only
 * consumer of its output, unless every output is kept (AT_PASS_KEEP_ALL, for inspection): its
 * backward then reads the ReLU's output gradient, which must stay live one node longer. */
#include "graph/graph.h"

#include <stdint.h>

typedef struct slot {
    size_t size;
    int busy_until; /* last node index of the interval placed last */
} slot;

/* Places intervals [i, end[i]] of the given sizes (0 = dedicated, skipped) into slots; writes
 * each one's slot index. Returns the number of slots, or -1 when out of memory. */
static int colour(const size_t *size, const int *start, const int *end, const bool *dedicated,
                  int n, int *slot_of, slot *slots)
{
    int n_slots = 0;
    for (int i = 0; i < n; i++) {
        slot_of[i] = -1;
        if (dedicated[i] || size[i] == 0)
            continue;
        /* best fit among free slots: the smallest one large enough, else the largest one */
        int best = -1;
        for (int s = 0; s < n_slots; s++) {
            if (slots[s].busy_until >= start[i])
                continue;
            bool fits = slots[s].size >= size[i];
            bool best_fits = best >= 0 && slots[best].size >= size[i];
            if (best < 0 || (fits && (!best_fits || slots[s].size < slots[best].size)) ||
                (!fits && !best_fits && slots[s].size > slots[best].size))
                best = s;
        }
        if (best < 0) {
            best = n_slots++;
            slots[best].size = 0;
        }
        if (slots[best].size < size[i])
            slots[best].size = size[i];
        slots[best].busy_until = end[i];
        slot_of[i] = best;
    }
    return n_slots;
}

void at_memory_plan_free(at_memory_plan *p)
{
    at_free(p->out_offset);
    at_free(p->grad_offset);
    at_free(p->out_kept);
    at_free(p->grad_kept);
    at_free(p->last_consumer);
    at_free(p->fusable);
}

/* Lays out dedicated buffers then slots; fills offsets. */
static size_t lay_out(const size_t *size, const bool *dedicated, const int *slot_of,
                      const slot *slots, int n_slots, int n, size_t *offset, size_t start)
{
    size_t cursor = start;
    for (int i = 0; i < n; i++)
        if (dedicated[i]) {
            offset[i] = cursor;
            cursor += size[i];
        }
    for (int s = 0; s < n_slots; s++) {
        for (int i = 0; i < n; i++)
            if (!dedicated[i] && slot_of[i] == s)
                offset[i] = cursor;
        cursor += slots[s].size;
    }
    return cursor;
}

int at_memory_plan_build(at_memory_plan *p, const at_model *m, int max_batch, unsigned flags)
{
    const int n = m->n_nodes, last = n - 1;
    const bool grads = !(flags & AT_PASS_FORWARD_ONLY), keep_all = flags & AT_PASS_KEEP_ALL;
    const bool weights = !(flags & AT_PASS_NO_WEIGHT_GRADS);
    p->out_offset = at_alloc((size_t)n * sizeof(size_t));
    p->grad_offset = at_alloc((size_t)n * sizeof(size_t));
    p->out_kept = at_alloc((size_t)n * sizeof(bool));
    p->grad_kept = at_alloc((size_t)n * sizeof(bool));
    p->last_consumer = at_alloc((size_t)n * sizeof(int));
    p->fusable = at_alloc((size_t)n * sizeof(bool));
    size_t *size = at_alloc((size_t)n * sizeof(size_t));
    int *start = at_alloc((size_t)n * sizeof(int));
    int *slot_of = at_alloc((size_t)n * sizeof(int));
    slot *slots = at_alloc((size_t)n * sizeof(slot));
    if (!p->out_offset || !p->grad_offset || !p->out_kept || !p->grad_kept || !p->last_consumer ||
        !p->fusable || !size || !start || !slot_of || !slots) {
        at_free(size);
        at_free(start);
        at_free(slot_of);
        at_free(slots);
        at_memory_plan_free(p);
        return AT_ERR_NOMEM;
    }
    for (int j = 0; j < n; j++) {
        size[j] = at_round_floats(at_shape_numel(m->nodes[j].out) * (size_t)max_batch);
        p->last_consumer[j] = j;
        start[j] = j;
        p->out_kept[j] = keep_all || j == 0 || j == last;
        p->grad_kept[j] = keep_all || j == 0 || j == last;
    }
    for (int i = 1; i < n; i++) {
        const at_node *node = &m->nodes[i];
        unsigned reads = at_layer_ops_of(node->kind)->backward_reads;
        if (grads && (reads & AT_READS_OUTPUT))
            p->out_kept[i] = true;
        for (int k = 0; k < node->n_inputs; k++) {
            int j = node->inputs[k];
            if (i > p->last_consumer[j])
                p->last_consumer[j] = i;
            if (grads && ((reads & AT_READS_INPUT) || (weights && (reads & AT_READS_INPUT_FOR_WEIGHTS))))
                p->out_kept[j] = true;
        }
    }
    for (int i = 0; i < n; i++) {
        int consumers = 0;
        for (int j = i + 1; j < n; j++)
            for (int k = 0; k < m->nodes[j].n_inputs; k++)
                consumers += m->nodes[j].inputs[k] == i;
        p->fusable[i] = i > 0 && i + 1 < n && !keep_all && consumers == 1 &&
                        at_layer_ops_of(m->nodes[i].kind)->fuses_relu &&
                        m->nodes[i + 1].kind == AT_LAYER_relu && m->nodes[i + 1].inputs[0] == i;
        if (p->fusable[i])
            start[i + 1] = i; /* written by node i's forward, its gradient read by its backward */
    }
    int n_slots = colour(size, start, p->last_consumer, p->out_kept, n, slot_of, slots);
    size_t end = lay_out(size, p->out_kept, slot_of, slots, n_slots, n, p->out_offset, 0);
    if (grads) {
        n_slots = colour(size, start, p->last_consumer, p->grad_kept, n, slot_of, slots);
        end = lay_out(size, p->grad_kept, slot_of, slots, n_slots, n, p->grad_offset, end);
    } else {
        for (int j = 0; j < n; j++)
            p->grad_offset[j] = SIZE_MAX;
    }
    p->total_floats = end;
    at_free(size);
    at_free(start);
    at_free(slot_of);
    at_free(slots);
    return AT_OK;
}
