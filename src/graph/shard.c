/* shard.c: sums over a batch shared by several processes (data parallelism).
 *
 * One process sums a layer's reduction (a weight gradient, a batch-norm statistic) over the
 * fixed units of at_reduce_units and adds the units' partial sums in unit order, which makes the
 * result independent of the thread count. With P processes holding even shards of a batch of N
 * rows, the units of the whole batch are found as one process would find them for N rows; when P
 * divides their number and each holds a whole number of rows, every process computes the partial
 * sums of its own units, all partials are gathered in batch order (rank order is batch order),
 * and each process adds them exactly as one process would: the same bits on every process and
 * for every P. Otherwise (uneven shards, or units that straddle a shard boundary) each process
 * sums its own units and the P sums are added in rank order: still the same on every process,
 * so the replicas of the model stay equal, but not equal to one process's bits. With
 * at_shard_use_allreduce each process sums its own units and the collective's allreduce adds the
 * processes' sums: one slab per layer crosses the network instead of the units.
 */
#include "graph/graph.h"

#include <string.h>

struct at_shard {
    at_collective collective;
    bool sync_bn, even, allreduce;
    int status;
    unsigned char *send, *recv;
    size_t send_cap, recv_cap;
};

int at_shard_create(at_shard **out, const at_collective *collective, bool sync_bn, at_error *err)
{
    *out = NULL;
    if (!collective || !collective->allgather || collective->ranks < 1 || collective->rank < 0 ||
        collective->rank >= collective->ranks)
        return at_fail(err, AT_ERR_ARG, "a shard needs an allgather, a rank and ranks > rank");
    at_shard *s = at_alloc(sizeof *s);
    if (!s)
        return at_fail(err, AT_ERR_NOMEM, "out of memory creating a shard");
    memset(s, 0, sizeof *s);
    s->collective = *collective;
    s->sync_bn = sync_bn;
    s->even = true;
    *out = s;
    return AT_OK;
}

void at_shard_free(at_shard *s)
{
    if (!s)
        return;
    at_free(s->send);
    at_free(s->recv);
    at_free(s);
}

void at_shard_set_even(at_shard *s, bool even) { s->even = even; }

int at_shard_use_allreduce(at_shard *s, bool on)
{
    if (on && !s->collective.allreduce)
        return AT_ERR_ARG;
    s->allreduce = on;
    return AT_OK;
}

void at_model_set_shard(at_model *m, at_shard *s) { m->shard = s; }

int at_shard_status(const at_shard *s) { return s ? s->status : AT_OK; }
int at_shard_rank(const at_shard *s) { return s->collective.rank; }
int at_shard_ranks(const at_shard *s) { return s->collective.ranks; }
bool at_shard_sync_bn(const at_shard *s) { return s->sync_bn; }

bool at_layer_sync_bn(const at_layer_ctx *c) { return c->shard && c->shard->sync_bn; }

static bool grow(unsigned char **buf, size_t *cap, size_t bytes)
{
    if (bytes <= *cap)
        return true;
    unsigned char *b = at_alloc(bytes);
    if (!b)
        return false;
    at_free(*buf);
    *buf = b;
    *cap = bytes;
    return true;
}

int at_shard_allgather(at_shard *s, const void *mine, void *all, size_t bytes)
{
    if (s->status)
        return s->status;
    if (s->collective.allgather(s->collective.user, mine, all, bytes))
        s->status = AT_ERR_IO;
    return s->status;
}

at_units at_layer_units(const at_layer_ctx *c, size_t partial_floats)
{
    const int local = at_reduce_units(c->n, partial_floats);
    at_units u = {local, (c->n + local - 1) / local, true};
    const at_shard *s = c->shard;
    if (!s || s->collective.ranks == 1)
        return u;
    const int ranks = s->collective.ranks;
    const long rows = (long)c->n * ranks;
    const int whole = rows > (1 << 30) ? 0 : at_reduce_units((int)rows, partial_floats);
    if (s->even && whole % ranks == 0 && rows % whole == 0 &&
        whole / ranks <= at_reduce_units(c->max_batch, partial_floats))
        return (at_units){whole / ranks, (int)(rows / whole), true};
    u.whole = false;
    return u;
}

int at_layer_first_row(const at_layer_ctx *c)
{
    const at_shard *s = c->shard;
    return s && s->even ? s->collective.rank * c->n : 0;
}

at_units at_layer_row_units(const at_layer_ctx *c)
{
    return (at_units){c->n, 1, !c->shard || c->shard->even};
}

/* Adds `count` units of `unit_bytes` (floats or doubles) into the first, in order. */
static void merge_units(unsigned char *units, int count, size_t unit_bytes, bool doubles)
{
    if (doubles) {
        double *d = (double *)(void *)units;
        const size_t len = unit_bytes / sizeof(double);
        for (int u = 1; u < count; u++)
            for (size_t j = 0; j < len; j++)
                d[j] += d[(size_t)u * len + j];
    } else {
        float *f = (float *)(void *)units;
        const size_t len = unit_bytes / sizeof(float);
        for (int u = 1; u < count; u++)
            for (size_t j = 0; j < len; j++)
                f[j] += f[(size_t)u * len + j];
    }
}

const void *at_layer_gather(const at_layer_ctx *c, const void *partials, at_units u,
                            size_t unit_bytes, bool doubles, int *total)
{
    at_shard *s = c->shard;
    *total = u.count;
    if (!s || s->collective.ranks == 1)
        return partials;
    if (s->status)
        return NULL;
    const int ranks = s->collective.ranks;
    if (s->allreduce) {
        /* this process's units summed, then the sum over the processes */
        if (!grow(&s->send, &s->send_cap, (size_t)u.count * unit_bytes)) {
            s->status = AT_ERR_NOMEM;
            return NULL;
        }
        memcpy(s->send, partials, (size_t)u.count * unit_bytes);
        merge_units(s->send, u.count, unit_bytes, doubles);
        const size_t count = unit_bytes / (doubles ? sizeof(double) : sizeof(float));
        if (!s->status && s->collective.allreduce(s->collective.user, s->send, count, doubles))
            s->status = AT_ERR_IO;
        *total = 1;
        return s->status ? NULL : s->send;
    }
    const size_t mine = u.whole ? (size_t)u.count * unit_bytes : unit_bytes;
    if (!grow(&s->send, &s->send_cap, (size_t)u.count * unit_bytes) ||
        !grow(&s->recv, &s->recv_cap, mine * ranks)) {
        s->status = AT_ERR_NOMEM;
        return NULL;
    }
    memcpy(s->send, partials, (size_t)u.count * unit_bytes);
    if (!u.whole)
        merge_units(s->send, u.count, unit_bytes, doubles);
    if (at_shard_allgather(s, s->send, s->recv, mine))
        return NULL;
    *total = u.whole ? u.count * ranks : ranks;
    return s->recv;
}

void at_layer_add_units(const at_layer_ctx *c, at_units u, size_t stride, size_t count)
{
    int units;
    const float *parts = at_layer_gather(c, c->shared, u, stride * sizeof(float), false, &units);
    if (!parts)
        return;
#pragma omp parallel for schedule(static) num_threads(at_team(c->workers))
    for (size_t j = 0; j < count; j++) {
        float s = c->dw[j];
        for (int k = 0; k < units; k++)
            s += parts[(size_t)k * stride + j];
        c->dw[j] = s;
    }
}
