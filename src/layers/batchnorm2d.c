/* batchnorm2d.c: batch normalisation over (n, h, w) per channel (Ioffe and Szegedy, 2015), with
 * PyTorch's nn.BatchNorm2d conventions: eps 1e-5, momentum 0.1, running variance updated with the
 * unbiased batch variance, normalisation with the biased one.
 *
 *   y = gamma * xhat + beta,  xhat = (x - mu) * rstd,  rstd = 1 / sqrt(var + eps)
 *
 * The mode comes from the forward call: AT_BN_TRAIN and AT_BN_BATCH_STATS use the batch's mu and
 * var (only TRAIN updates the running statistics); AT_BN_EVAL uses the running ones. Backward in a
 * batch mode differentiates through mu and var (M = n*h*w values per channel):
 *   dx = gamma * rstd / M * (M * dy - sum(dy) - xhat * sum(dy * xhat))
 * and in eval mode the layer is affine: dx = gamma * rstd * dy.
 * Without the affine part (nn.BatchNorm2d(affine=False): y = xhat) the layer has no weight and
 * bias tensors and computes as if gamma were 1 and beta 0; its running statistics, its counter
 * and its modes are those of the affine layer.
 * Work is split by channel, and each channel's sums run in one fixed order (in double): per unit
 * of rows, then the units in order (see batch_sums below).
 */
#include "graph/graph.h"
#include "kernels/kernels.h"

#include <math.h>
#include <string.h>

int at_add_batchnorm2d_affine(at_model *m, int input, const char *name, bool affine)
{
    at_node *node = at_graph_append(m, AT_LAYER_batchnorm2d, &input, 1, name);
    if (!node)
        return m->build_status;
    node->out = at_graph_shape(m, input);
    node->p.bn.eps = 1e-5f;
    node->p.bn.momentum = 0.1f;
    node->p.bn.affine = affine;
    int64_t shape[1] = {node->out.c};
    int status = AT_OK;
    if (affine)
        status = at_graph_declare(m, node, "weight", true, AT_F32, 1, shape);
    if (!status && affine)
        status = at_graph_declare(m, node, "bias", true, AT_F32, 1, shape);
    if (!status)
        status = at_graph_declare(m, node, "running_mean", false, AT_F32, 1, shape);
    if (!status)
        status = at_graph_declare(m, node, "running_var", false, AT_F32, 1, shape);
    if (!status)
        status = at_graph_declare(m, node, "num_batches_tracked", false, AT_I64, 0, NULL);
    return status ? status : at_graph_index(m, node);
}

int at_add_batchnorm2d(at_model *m, int input, const char *name)
{
    return at_add_batchnorm2d_affine(m, input, name, true);
}

/* Cache: the mean and rstd used by the last forward, per channel. */
static size_t bn_cache(const at_node *node, const at_shape *in, int max_batch)
{
    return 2 * (size_t)node->out.c * sizeof(float);
}

static void bn_init(const at_node *node, const at_shape *in, float *w, float *buf, at_rng *rng)
{
    int ch = node->out.c;
    for (int i = 0; i < ch; i++) {
        if (node->p.bn.affine) {
            w[i] = 1.0f;      /* gamma */
            w[ch + i] = 0.0f; /* beta */
        }
        buf[i] = 0.0f;    /* running_mean */
        buf[ch + i] = 1.0f; /* running_var */
    }
}

/* The sums over the batch run per unit of rows (at_layer_units) and per channel, in double, and
 * the units' sums are added in unit order: with synchronised batch norm the units of every
 * process sharing the batch (shard.c), so each gets the statistics one process would. A unit's
 * sums are `width` doubles: one or two per channel, then its row count. */
static size_t sums_width(int ch, int per_channel) { return (size_t)per_channel * ch + 1; }

static size_t bn_shared(const at_node *node, const at_shape *in, int max_batch, bool weight_grads)
{
    const size_t width = sums_width(node->out.c, 2);
    return ((size_t)at_reduce_units(max_batch, width) + 3) * width * (sizeof(double) / sizeof(float));
}

/* After the units' sums in the shared workspace: three rows of `width` doubles for totals. */
static double *totals(const at_layer_ctx *c, int row)
{
    const size_t width = sums_width(c->node->out.c, 2);
    return (double *)(void *)c->shared + ((size_t)at_reduce_units(c->max_batch, width) + row) * width;
}

static int unit_rows(const at_layer_ctx *c, at_units u, int unit, int *first)
{
    *first = unit * u.per_unit;
    if (*first >= c->n)
        return 0;
    return c->n - *first < u.per_unit ? c->n - *first : u.per_unit;
}

/* Adds the units' sums (width doubles each) in order into total (width doubles). */
static void add_units(const double *sums, int units, size_t width, double *total)
{
    for (size_t j = 0; j < width; j++)
        total[j] = 0.0;
    for (int u = 0; u < units; u++)
        for (size_t j = 0; j < width; j++)
            total[j] += sums[(size_t)u * width + j];
}

/* The whole batch's sums when `whole` (every process's units, shard.c), else this process's.
 * False when the exchange failed. */
static bool batch_sums(const at_layer_ctx *c, at_units u, const double *sums, size_t width,
                       bool whole, double *total)
{
    int units = u.count;
    if (whole)
        sums = at_layer_gather(c, sums, u, width * sizeof(double), true, &units);
    if (!sums)
        return false;
    add_units(sums, units, width, total);
    return true;
}

/* Per channel: sum over the batch of x (mean == NULL) or of (x - mean)^2. */
static bool channel_sums(const at_layer_ctx *c, at_units u, const double *mean, double *total)
{
    const int ch = c->node->out.c;
    const size_t plane = (size_t)c->node->out.h * c->node->out.w, width = sums_width(ch, 1);
    double *sums = (double *)(void *)c->shared;
#pragma omp parallel for schedule(static) num_threads(at_team(c->workers))
    for (int k = 0; k < ch; k++)
        for (int unit = 0; unit < u.count; unit++) {
            int first, rows = unit_rows(c, u, unit, &first);
            double s = 0.0;
            for (int i = first; i < first + rows; i++) {
                const float *x = c->x[0] + ((size_t)i * ch + k) * plane;
                if (mean)
                    for (size_t j = 0; j < plane; j++)
                        s += (x[j] - mean[k]) * (x[j] - mean[k]);
                else
                    for (size_t j = 0; j < plane; j++)
                        s += x[j];
            }
            sums[(size_t)unit * width + k] = s;
        }
    for (int unit = 0; unit < u.count; unit++) {
        int first;
        sums[(size_t)unit * width + ch] = (double)unit_rows(c, u, unit, &first);
    }
    return batch_sums(c, u, sums, width, at_layer_sync_bn(c), total);
}

static void bn_forward(const at_layer_ctx *c)
{
    const at_shape s = c->node->out;
    const int ch = s.c;
    const size_t plane = (size_t)s.h * s.w;
    const float eps = c->node->p.bn.eps, momentum = c->node->p.bn.momentum;
    float *mean_cache = c->cache, *rstd_cache = (float *)c->cache + ch;
    const bool affine = c->node->p.bn.affine;
    const float *gamma = affine ? c->w : NULL, *beta = affine ? c->w + ch : NULL;
    float *running_mean = c->buf, *running_var = c->buf + ch;
    if (c->bn_mode != AT_BN_EVAL) {
        const at_units u = at_layer_units(c, sums_width(ch, 2));
        double *sum = totals(c, 0), *mu = totals(c, 1), *sq = totals(c, 2);
        if (!channel_sums(c, u, NULL, sum))
            return;
        const double count = (double)plane * sum[ch];
        for (int k = 0; k < ch; k++)
            mu[k] = sum[k] / count;
        if (!channel_sums(c, u, mu, sq))
            return;
        for (int k = 0; k < ch; k++) {
            double var = sq[k] / count;
            mean_cache[k] = (float)mu[k];
            rstd_cache[k] = (float)(1.0 / sqrt(var + eps));
            if (c->bn_mode == AT_BN_TRAIN) {
                double unbiased = count > 1 ? sq[k] / (count - 1) : var;
                running_mean[k] = (1.0f - momentum) * running_mean[k] + momentum * (float)mu[k];
                running_var[k] = (1.0f - momentum) * running_var[k] + momentum * (float)unbiased;
            }
        }
    } else {
        for (int k = 0; k < ch; k++) {
            mean_cache[k] = running_mean[k];
            rstd_cache[k] = (float)(1.0 / sqrt((double)running_var[k] + eps));
        }
    }
#pragma omp parallel for schedule(static) num_threads(at_team(c->workers))
    for (int k = 0; k < ch; k++) {
        const float scale = affine ? gamma[k] * rstd_cache[k] : rstd_cache[k];
        const float shift = (affine ? beta[k] : 0.0f) - mean_cache[k] * scale;
        for (int i = 0; i < c->n; i++)
            at_scale_shift_kernel(c->x[0] + ((size_t)i * ch + k) * plane, scale, shift,
                                  c->y + ((size_t)i * ch + k) * plane, plane);
    }
    if (c->bn_mode == AT_BN_TRAIN && c->counter)
        *c->counter += 1;
}

static void bn_backward(const at_layer_ctx *c)
{
    const at_shape s = c->node->out;
    const int ch = s.c;
    const size_t plane = (size_t)s.h * s.w, width = sums_width(ch, 2);
    const float *mean_cache = c->cache, *rstd_cache = (const float *)c->cache + ch;
    const float *gamma = c->w;
    const bool batch_stats = c->bn_mode != AT_BN_EVAL;
    const bool weights = c->weight_grads && c->node->p.bn.affine;
    const at_units u = at_layer_units(c, width);
    double *sums = (double *)(void *)c->shared;
    /* per unit: sum(dy) and sum(dy * xhat) per channel, then the unit's rows */
#pragma omp parallel for schedule(static) num_threads(at_team(c->workers))
    for (int k = 0; k < ch; k++)
        for (int unit = 0; unit < u.count; unit++) {
            const float mean = mean_cache[k], rstd = rstd_cache[k];
            int first, rows = unit_rows(c, u, unit, &first);
            double sum_dy = 0.0, sum_dy_xhat = 0.0;
            for (int i = first; i < first + rows; i++) {
                const float *x = c->x[0] + ((size_t)i * ch + k) * plane;
                const float *dy = c->dy + ((size_t)i * ch + k) * plane;
                for (size_t j = 0; j < plane; j++) {
                    sum_dy += dy[j];
                    sum_dy_xhat += (double)dy[j] * ((x[j] - mean) * rstd);
                }
            }
            sums[(size_t)unit * width + k] = sum_dy;
            sums[(size_t)unit * width + ch + k] = sum_dy_xhat;
        }
    for (int unit = 0; unit < u.count; unit++) {
        int first;
        sums[(size_t)unit * width + 2 * ch] = (double)unit_rows(c, u, unit, &first);
    }
    /* this process's sums, and the whole batch's (for the weights, and for the input gradient
     * of synchronised batch norm) */
    double *local = totals(c, 0), *whole = totals(c, 1);
    add_units(sums, u.count, width, local);
    const bool sync = batch_stats && at_layer_sync_bn(c);
    if (c->shard && (weights || sync)) {
        if (!batch_sums(c, u, sums, width, true, whole))
            return;
    } else {
        memcpy(whole, local, width * sizeof(double));
    }
    if (weights)
        for (int k = 0; k < ch; k++) {
            c->dw[k] += (float)whole[ch + k];
            c->dw[ch + k] += (float)whole[k];
        }
    if (!c->dx[0])
        return;
    const double *stats = sync ? whole : local;
    const double count = (double)plane * stats[2 * ch];
#pragma omp parallel for schedule(static) num_threads(at_team(c->workers))
    for (int k = 0; k < ch; k++) {
        const float mean = mean_cache[k], rstd = rstd_cache[k];
        const float g = c->node->p.bn.affine ? gamma[k] * rstd : rstd;
        const float mean_dy = (float)(stats[k] / count), mean_dy_xhat = (float)(stats[ch + k] / count);
        for (int i = 0; i < c->n; i++) {
            const float *x = c->x[0] + ((size_t)i * ch + k) * plane;
            const float *dy = c->dy + ((size_t)i * ch + k) * plane;
            float *dx = c->dx[0] + ((size_t)i * ch + k) * plane;
            if (batch_stats) {
                for (size_t j = 0; j < plane; j++) {
                    float xhat = (x[j] - mean) * rstd;
                    dx[j] += g * (dy[j] - mean_dy - xhat * mean_dy_xhat);
                }
            } else {
                for (size_t j = 0; j < plane; j++)
                    dx[j] += g * dy[j];
            }
        }
    }
}

const at_layer_ops at_layer_batchnorm2d = {
    .name = "batchnorm2d",
    .backward_reads = AT_READS_INPUT,
    .updates_buffers = true,
    .cache_bytes = bn_cache,
    .shared_floats = bn_shared,
    .forward = bn_forward,
    .backward = bn_backward,
    .init = bn_init,
};
