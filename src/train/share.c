/* share.c: a trainer's part in data-parallel training (see share.h and at_trainer_share).
 *
 * Rows are split as evenly as they go: with r = rows % ranks, ranks 0..r-1 hold one row more.
 * When every process holds as many rows the layers' sums are bit-identical to one process's
 * (shard.c), so training with synchronised batch norm gives the same weights on any number of
 * processes that divides the batch. */
#include "train/share.h"

#include <string.h>

struct at_share {
    at_shard *shard;
    int rank, ranks, slot;   /* slot: the most rows a process holds */
    uint8_t *send, *recv;    /* [slot], [ranks x slot] correct flags */
    float *buffers;          /* running statistics: [count], then [ranks x count] */
    size_t buffer_cap;
};

int at_share_create(at_share **out, at_shard *shard, int max_rows, at_error *err)
{
    *out = NULL;
    at_share *s = at_alloc(sizeof *s);
    if (!s)
        return at_fail(err, AT_ERR_NOMEM, "out of memory");
    memset(s, 0, sizeof *s);
    s->shard = shard;
    s->rank = at_shard_rank(shard);
    s->ranks = at_shard_ranks(shard);
    s->slot = (max_rows + s->ranks - 1) / s->ranks;
    s->send = at_alloc((size_t)s->slot);
    s->recv = at_alloc((size_t)s->slot * s->ranks);
    if (!s->send || !s->recv) {
        at_share_free(s);
        return at_fail(err, AT_ERR_NOMEM, "out of memory");
    }
    *out = s;
    return AT_OK;
}

void at_share_free(at_share *s)
{
    if (!s)
        return;
    at_free(s->send);
    at_free(s->recv);
    at_free(s->buffers);
    at_free(s);
}

int at_share_rank(const at_share *s) { return s->rank; }
int at_share_ranks(const at_share *s) { return s->ranks; }
bool at_share_sync_bn(const at_share *s) { return at_shard_sync_bn(s->shard); }

/* Rank r's first row and row count in a batch of n rows. */
static int rows_of(int n, int ranks, int r, int *first)
{
    const int base = n / ranks, extra = n % ranks;
    *first = r * base + (r < extra ? r : extra);
    return base + (r < extra ? 1 : 0);
}

bool at_share_rows(at_share *s, const at_batch *whole, size_t image, int classes, at_batch *mine)
{
    if (whole->n < s->ranks)
        return false;
    int first;
    const int n = rows_of(whole->n, s->ranks, s->rank, &first);
    at_shard_set_even(s->shard, whole->n % s->ranks == 0);
    *mine = *whole;
    mine->x = whole->x + (size_t)first * image;
    mine->y = whole->y + first;
    mine->soft = whole->soft ? whole->soft + (size_t)first * classes : NULL;
    mine->weight = whole->weight ? whole->weight + first : NULL;
    mine->eps = whole->eps ? whole->eps + first : NULL;
    mine->n = n;
    mine->first = first;
    mine->total = whole->n;
    mine->total_scored = whole->scored;
    mine->scored = whole->scored <= first ? 0 : (whole->scored - first < n ? whole->scored - first : n);
    return true;
}

static void attach_model(at_model *m, at_shard *shard)
{
    if (m)
        at_model_set_shard(m, shard);
}

void at_share_attach(at_share *s, at_method_ctx *ctx, bool on)
{
    at_shard *shard = on ? s->shard : NULL;
    attach_model(ctx->model, shard);
    if (ctx->awp)
        attach_model(at_awp_proxy(ctx->awp), shard);
    for (int i = 0; i < ctx->n_aux; i++)
        attach_model(at_aux_net_model(ctx->aux[i]), shard);
}

int at_share_results(at_share *s, const at_batch *whole, const at_batch *mine, uint8_t *correct,
                     double *loss)
{
    memset(s->send, 0, (size_t)s->slot);
    memcpy(s->send, correct, (size_t)mine->n);
    int status = at_shard_allgather(s->shard, s->send, s->recv, (size_t)s->slot);
    for (int r = 0; !status && r < s->ranks; r++) {
        int first;
        const int n = rows_of(whole->n, s->ranks, r, &first);
        memcpy(correct + first, s->recv + (size_t)r * s->slot, (size_t)n);
    }
    double parts[64], *all = s->ranks <= 64 ? parts : at_alloc((size_t)s->ranks * sizeof(double));
    if (!all)
        return AT_ERR_NOMEM;
    if (!status)
        status = at_shard_allgather(s->shard, loss, all, sizeof(double));
    if (!status) {
        double sum = 0.0;
        for (int r = 0; r < s->ranks; r++)
            sum += all[r];
        *loss = sum;
    }
    if (all != parts)
        at_free(all);
    return status;
}

int at_share_buffers(at_share *s, at_model *model)
{
    size_t count = 0;
    for (int i = 0; i < at_model_tensor_count(model); i++) {
        at_tensor_info t = at_model_tensor(model, i);
        if (!t.is_param && t.dtype == AT_F32)
            count += t.numel;
    }
    if (count == 0)
        return AT_OK;
    const size_t need = count * (1 + (size_t)s->ranks);
    if (need > s->buffer_cap) {
        at_free(s->buffers);
        if (!(s->buffers = at_alloc(need * sizeof(float))))
            return AT_ERR_NOMEM;
        s->buffer_cap = need;
    }
    float *mine = s->buffers, *all = s->buffers + count;
    size_t at = 0;
    for (int i = 0; i < at_model_tensor_count(model); i++) {
        at_tensor_info t = at_model_tensor(model, i);
        if (!t.is_param && t.dtype == AT_F32) {
            memcpy(mine + at, t.data, t.numel * sizeof(float));
            at += t.numel;
        }
    }
    int status = at_shard_allgather(s->shard, mine, all, count * sizeof(float));
    if (status)
        return status;
    at = 0; /* rank 0's are the first count */
    for (int i = 0; i < at_model_tensor_count(model); i++) {
        at_tensor_info t = at_model_tensor(model, i);
        if (!t.is_param && t.dtype == AT_F32) {
            memcpy(t.data, all + at, t.numel * sizeof(float));
            at += t.numel;
        }
    }
    return AT_OK;
}
