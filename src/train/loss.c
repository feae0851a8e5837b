/* loss.c: softmax cross-entropy (hard, soft and smoothed targets, per-example weights) and the KL
 * divergence between two softmax outputs; both averaged over the batch (or over the whole batch
 * of which the rows given are a shard), with their gradients w.r.t. the logits computed
 * alongside in one pass. Log-softmax is computed with the row maximum subtracted (log-sum-exp),
 * in double, so large logits neither overflow nor lose the small probabilities. */
#include "train/loss.h"

#include <math.h>

/* log_softmax of one row into out (double); returns nothing, the row is fully written. */
static void log_softmax_row(const float *z, int k, double *out)
{
    double max = z[0];
    for (int j = 1; j < k; j++)
        if (z[j] > max)
            max = z[j];
    double sum = 0.0;
    for (int j = 0; j < k; j++)
        sum += exp((double)z[j] - max);
    double lse = max + log(sum);
    for (int j = 0; j < k; j++)
        out[j] = (double)z[j] - lse;
}

/* Rows are short (the number of classes); a fixed stack buffer keeps the loss allocation-free. */
#define MAX_CLASSES_STACK 1024

float at_loss_cross_entropy(const float *logits, int n, int k, const at_ce_target *target,
                            float *per_example, float *dlogits)
{
    double total = 0.0;
    double logp_stack[MAX_CLASSES_STACK];
    /* the divisor of the mean: the whole batch's rows, of which these n are a part */
    const int rows = target->total ? target->total : n;
    if (k > MAX_CLASSES_STACK || n < 1 || rows < n)
        return NAN;
    const float s = target->label_smoothing;
    for (int i = 0; i < n; i++) {
        const float *z = logits + (size_t)i * k;
        double *logp = logp_stack;
        log_softmax_row(z, k, logp);
        /* t_j = (1 - s) * target_j + s / k; loss = -sum_j t_j log p_j; dloss/dz_j = p_j - t_j
         * (sum_j t_j = 1). */
        double loss = 0.0;
        for (int j = 0; j < k; j++) {
            double t = target->labels ? (j == target->labels[i] ? 1.0 : 0.0)
                                      : (double)target->soft_targets[(size_t)i * k + j];
            t = (1.0 - s) * t + s / k;
            loss -= t * logp[j];
            if (dlogits)
                dlogits[(size_t)i * k + j] = (float)(exp(logp[j]) - t);
        }
        double w = target->weights ? target->weights[i] : 1.0;
        if (dlogits)
            for (int j = 0; j < k; j++)
                dlogits[(size_t)i * k + j] = (float)(dlogits[(size_t)i * k + j] * w / rows);
        if (per_example)
            per_example[i] = (float)loss;
        total += w * loss;
    }
    return (float)(total / rows);
}

float at_loss_kl(const float *logits_p, const float *logits_q, int n, int k, const float *weights,
                 float *per_example, float *dlogits_p, float *dlogits_q)
{
    return at_loss_kl_shard(logits_p, logits_q, n, n, k, weights, per_example, dlogits_p,
                            dlogits_q);
}

float at_loss_kl_shard(const float *logits_p, const float *logits_q, int n, int rows, int k,
                       const float *weights, float *per_example, float *dlogits_p,
                       float *dlogits_q)
{
    double total = 0.0;
    double logp[MAX_CLASSES_STACK], logq[MAX_CLASSES_STACK];
    if (k > MAX_CLASSES_STACK || n < 1 || rows < n)
        return NAN;
    for (int i = 0; i < n; i++) {
        log_softmax_row(logits_p + (size_t)i * k, k, logp);
        log_softmax_row(logits_q + (size_t)i * k, k, logq);
        double kl = 0.0;
        for (int j = 0; j < k; j++)
            kl += exp(logp[j]) * (logp[j] - logq[j]);
        double w = (weights ? weights[i] : 1.0) / rows;
        /* d KL / d q_j = softmax(q)_j - p_j;
         * d KL / d p_j = p_j * ((log p_j - log q_j) - KL). */
        for (int j = 0; j < k; j++) {
            double pj = exp(logp[j]);
            if (dlogits_q)
                dlogits_q[(size_t)i * k + j] = (float)(w * (exp(logq[j]) - pj));
            if (dlogits_p)
                dlogits_p[(size_t)i * k + j] = (float)(w * pj * ((logp[j] - logq[j]) - kl));
        }
        if (per_example)
            per_example[i] = (float)kl;
        total += (weights ? weights[i] : 1.0) * kl;
    }
    return (float)(total / rows);
}

int at_count_correct(const float *logits, int n, int k, const int32_t *labels, uint8_t *correct)
{
    int count = 0;
    for (int i = 0; i < n; i++) {
        const float *z = logits + (size_t)i * k;
        int best = 0;
        for (int j = 1; j < k; j++)
            if (z[j] > z[best])
                best = j;
        int ok = best == labels[i];
        if (correct)
            correct[i] = (uint8_t)ok;
        count += ok;
    }
    return count;
}
