/* mart.c: MART, misclassification-aware adversarial training (Wang et al., "Improving
 * Adversarial Robustness Requires Revisiting Misclassified Examples", ICLR 2020, eq. 8, as in
 * the authors' code): with q = softmax(f(x')), p = softmax(f(x)) and m the most likely wrong
 * class under q,
 *   L = mean_i [ -log q_y - log(1.0001 - q_m + 1e-12) ]                      (boosted CE, BCE)
 *     + beta mean_i [ KL(p || q) (1.0000001 - p_y) ]                         (weighted by
 *                                                                            misclassification)
 * with x' from PGD on the cross-entropy starting at x + 0.001 N(0,1), batch norm in eval mode
 * (at_train_attack), beta = 6, 10 steps of eps/4 by default; both forwards in train mode. */
#include "train/method.h"

#include <math.h>

enum { BETA };
static const at_option_info mart_options[] = {
    [BETA] = {"beta", AT_OPTION_FLOAT, 0, 1e6, NULL, "6", "weight of the misclassification-aware KL term"},
};

static void mart_defaults(at_train_config *c) { at_attack_presets(c, 10, AT_BN_EVAL); }

/* Loss of one example and its gradients w.r.t. the adversarial logits (da) and the clean
 * logits (dc), unscaled by the batch size. q, p: the two softmaxes. */
double at_mart_example(const float *q, const float *p, int k, int y, double beta, float *da,
                           float *dc)
{
    int m = -1;
    for (int j = 0; j < k; j++)
        if (j != y && (m < 0 || q[j] > q[m]))
            m = j;
    const double denom = 1.0001 - q[m] + 1e-12;
    double kl = 0.0, r_sum = 0.0, s_mean = 0.0;
    for (int j = 0; j < k; j++) {
        double s = log((double)p[j]) - log((double)q[j] + 1e-12);
        kl += p[j] * s;
        s_mean += p[j] * s;
        r_sum += (double)p[j] * q[j] / ((double)q[j] + 1e-12);
    }
    const double w = 1.0000001 - p[y];
    for (int j = 0; j < k; j++) {
        double onehot_y = j == y, onehot_m = j == m;
        /* -log q_y and -log(1.0001 - q_m + 1e-12), m held fixed */
        double g = q[j] - onehot_y + q[m] * (onehot_m - q[j]) / denom;
        /* w KL(p || q) through log(q + 1e-12): -w (r_j - q_j sum r) */
        double r_j = (double)p[j] * q[j] / ((double)q[j] + 1e-12);
        g += beta * (-w * (r_j - q[j] * r_sum));
        da[j] = (float)g;
        /* through p: w dKL/dz = w p_j (s_j - sum p s); and KL dw/dz = -KL p_y ([j==y] - p_j) */
        double s_j = log((double)p[j]) - log((double)q[j] + 1e-12);
        dc[j] = (float)(beta * (w * p[j] * (s_j - s_mean) - kl * p[y] * (onehot_y - p[j])));
    }
    return -log((double)q[y]) - log(denom) + beta * w * kl;
}

static int mart_step(at_method_ctx *c, const at_batch *b, double *loss)
{
    const int k = c->num_classes, n = b->n;
    const int32_t *y = b->y;
    int status = at_train_attack(c, b, NULL, c->x_adv);
    if (!status)
        status = at_forward(c->clean, b->x, n, AT_BN_TRAIN);
    if (!status)
        status = at_forward(c->train, c->x_adv, n, AT_BN_TRAIN);
    if (status)
        return status;
    const float *zc = at_pass_logits(c->clean), *za = at_pass_logits(c->train);
    at_softmax_rows(za, n, k, c->probs);
    at_softmax_rows(zc, n, k, c->target);
    double sum = 0.0;
    const float rows = (float)b->total; /* the batch mean's divisor */
    for (int i = 0; i < n; i++) {
        const float w = b->weight ? b->weight[i] : 1.0f;
        sum += w * at_mart_example(c->probs + (size_t)i * k, c->target + (size_t)i * k, k, y[i],
                                     c->opt[BETA], c->dlogits2 + (size_t)i * k,
                                     c->dlogits + (size_t)i * k);
        for (int j = 0; j < k; j++) {
            c->dlogits[(size_t)i * k + j] = c->dlogits[(size_t)i * k + j] * w / rows;
            c->dlogits2[(size_t)i * k + j] = c->dlogits2[(size_t)i * k + j] * w / rows;
        }
    }
    *loss = sum / b->total;
    at_count_correct(za, n, k, y, c->correct);
    status = at_backward(c->clean, c->dlogits, AT_GRAD_WEIGHTS);
    return status ? status : at_backward(c->train, c->dlogits2, AT_GRAD_WEIGHTS);
}

const at_method at_method_mart = {
    .name = "mart",
    .row_draws = true,
    .description = "MART: boosted CE + misclassification-weighted KL (Wang et al., 2020)",
    .uses = AT_USES_EPS | AT_USES_ATTACK_STEPS | AT_USES_STEP_SIZE | AT_USES_ATTACK_BN,
    .needs = AT_NEEDS_CLEAN_PASS | AT_NEEDS_ATTACK_PASS,
    .hard_labels_only = true,
    .options = mart_options,
    .n_options = AT_OPTION_LEN(mart_options),
    .defaults = mart_defaults,
    .step = mart_step,
};
