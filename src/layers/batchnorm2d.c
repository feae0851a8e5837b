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
 * Work is split by channel, and each channel's sums run in one fixed order (in double).
 */
#include "graph/graph.h"
#include "kernels/kernels.h"

#include <math.h>

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

static void bn_forward(const at_layer_ctx *c)
{
    const at_shape s = c->node->out;
    const int ch = s.c;
    const size_t plane = (size_t)s.h * s.w;
    const double count = (double)plane * c->n;
    const float eps = c->node->p.bn.eps, momentum = c->node->p.bn.momentum;
    float *mean_cache = c->cache, *rstd_cache = (float *)c->cache + ch;
    const bool affine = c->node->p.bn.affine;
    const float *gamma = affine ? c->w : NULL, *beta = affine ? c->w + ch : NULL;
    float *running_mean = c->buf, *running_var = c->buf + ch;
    const bool batch_stats = c->bn_mode != AT_BN_EVAL;
#pragma omp parallel for schedule(static) num_threads(at_team(c->workers))
    for (int k = 0; k < ch; k++) {
        float mean, rstd;
        if (batch_stats) {
            double sum = 0.0;
            for (int i = 0; i < c->n; i++) {
                const float *x = c->x[0] + ((size_t)i * ch + k) * plane;
                for (size_t j = 0; j < plane; j++)
                    sum += x[j];
            }
            double mu = sum / count, sq = 0.0;
            for (int i = 0; i < c->n; i++) {
                const float *x = c->x[0] + ((size_t)i * ch + k) * plane;
                for (size_t j = 0; j < plane; j++)
                    sq += (x[j] - mu) * (x[j] - mu);
            }
            double var = sq / count;
            mean = (float)mu;
            rstd = (float)(1.0 / sqrt(var + eps));
            if (c->bn_mode == AT_BN_TRAIN) {
                double unbiased = count > 1 ? sq / (count - 1) : var;
                running_mean[k] = (1.0f - momentum) * running_mean[k] + momentum * (float)mu;
                running_var[k] = (1.0f - momentum) * running_var[k] + momentum * (float)unbiased;
            }
        } else {
            mean = running_mean[k];
            rstd = (float)(1.0 / sqrt((double)running_var[k] + eps));
        }
        mean_cache[k] = mean;
        rstd_cache[k] = rstd;
        const float scale = affine ? gamma[k] * rstd : rstd;
        const float shift = (affine ? beta[k] : 0.0f) - mean * scale;
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
    const size_t plane = (size_t)s.h * s.w;
    const double count = (double)plane * c->n;
    const float *mean_cache = c->cache, *rstd_cache = (const float *)c->cache + ch;
    const float *gamma = c->w;
    const bool batch_stats = c->bn_mode != AT_BN_EVAL;
#pragma omp parallel for schedule(static) num_threads(at_team(c->workers))
    for (int k = 0; k < ch; k++) {
        const float mean = mean_cache[k], rstd = rstd_cache[k];
        double sum_dy = 0.0, sum_dy_xhat = 0.0;
        for (int i = 0; i < c->n; i++) {
            const float *x = c->x[0] + ((size_t)i * ch + k) * plane;
            const float *dy = c->dy + ((size_t)i * ch + k) * plane;
            for (size_t j = 0; j < plane; j++) {
                sum_dy += dy[j];
                sum_dy_xhat += (double)dy[j] * ((x[j] - mean) * rstd);
            }
        }
        if (c->weight_grads && c->node->p.bn.affine) {
            c->dw[k] += (float)sum_dy_xhat;
            c->dw[ch + k] += (float)sum_dy;
        }
        if (!c->dx[0])
            continue;
        const float g = c->node->p.bn.affine ? gamma[k] * rstd : rstd;
        const float mean_dy = (float)(sum_dy / count), mean_dy_xhat = (float)(sum_dy_xhat / count);
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
    .forward = bn_forward,
    .backward = bn_backward,
    .init = bn_init,
};
