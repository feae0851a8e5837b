/* jsd.c: AugMix's Jensen-Shannon consistency loss (Hendrycks et al., ICLR 2020, eq. 1) of m
 * softmax distributions p_1..p_m of one example,
 *   JS = (1/m) sum_j KL(p_j || M),   M = clamp((1/m) sum_j p_j, 1e-7, 1),
 * with the clamp of the authors' cifar.py (torch.clamp(p_mixture, 1e-7, 1).log(), then
 * F.kl_div(log M, p_j) whose gradient reaches both p_j and M), averaged over the batch with
 * per-example weights. Its exact gradient w.r.t. p_jc is
 *   (1/m) (log p_jc + 1 - log M_c - [M_c unclamped] M_c / clamp(M_c))
 * (the clamp passes no gradient where it binds), taken through each softmax. */
#include "train/method.h"

#include <math.h>

#define JSD_CLAMP 1e-7

/* p_jc = exp(z_jc - lse_j) for the m rows of example i, and the mixture's terms at class c. */
static void mixture_at(const float *const *logits, const double *lse, int m, size_t row, int c,
                       double *logp, double *mix, double *mix_clamped)
{
    double sum = 0.0;
    for (int j = 0; j < m; j++) {
        logp[j] = (double)logits[j][row + c] - lse[j];
        sum += exp(logp[j]);
    }
    *mix = sum / m;
    *mix_clamped = *mix < JSD_CLAMP ? JSD_CLAMP : *mix > 1.0 ? 1.0 : *mix;
}

/* d JS / d p_jc for one class */
static double grad_p(double logp, double mix, double clamped, int m)
{
    const bool passes = mix >= JSD_CLAMP && mix <= 1.0;
    return (logp + 1.0 - log(clamped) - (passes ? mix / clamped : 0.0)) / m;
}

double at_loss_jsd(const float *const *logits, int m, int n, int rows, int k,
                   const float *weights, float *per_example, float *const *dlogits)
{
    if (m < 1 || m > AT_JSD_MAX || n < 1 || rows < n || k < 1)
        return NAN;
    double total = 0.0;
    for (int i = 0; i < n; i++) {
        const size_t row = (size_t)i * k;
        double lse[AT_JSD_MAX], logp[AT_JSD_MAX], dot[AT_JSD_MAX] = {0};
        for (int j = 0; j < m; j++) {
            const float *z = logits[j] + row;
            double max = z[0], sum = 0.0;
            for (int c = 1; c < k; c++)
                max = z[c] > max ? z[c] : max;
            for (int c = 0; c < k; c++)
                sum += exp((double)z[c] - max);
            lse[j] = max + log(sum);
        }
        /* the loss, and sum_c p_jc g_jc for the softmax's Jacobian */
        double js = 0.0, mix, clamped;
        for (int c = 0; c < k; c++) {
            mixture_at(logits, lse, m, row, c, logp, &mix, &clamped);
            for (int j = 0; j < m; j++) {
                const double p = exp(logp[j]);
                js += p * (logp[j] - log(clamped));
                dot[j] += p * grad_p(logp[j], mix, clamped, m);
            }
        }
        js /= m;
        const double w = weights ? weights[i] : 1.0;
        total += w * js;
        if (per_example)
            per_example[i] = (float)js;
        if (!dlogits)
            continue;
        /* dJS/dz_jc = p_jc (g_jc - sum_c' p_jc' g_jc'), scaled by w_i / rows */
        const double scale = w / rows;
        for (int c = 0; c < k; c++) {
            mixture_at(logits, lse, m, row, c, logp, &mix, &clamped);
            for (int j = 0; j < m; j++)
                if (dlogits[j]) {
                    const double p = exp(logp[j]);
                    dlogits[j][row + c] =
                        (float)(scale * p * (grad_p(logp[j], mix, clamped, m) - dot[j]));
                }
        }
    }
    return total / rows;
}
