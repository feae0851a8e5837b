/* train_attack.c: the training-time attack of TRADES (Zhang et al., ICML 2019, Algorithm 1) and
 * MART (Wang et al., ICLR 2020): start at x + 0.001 N(0, 1) (clamped to [0,1]), then steps of
 * the sign of the gradient (Linf) or the normalised gradient (L2), each projected onto the
 * eps-ball around x and onto [0,1]. TRADES ascends KL(p(x) || p(x')) against the fixed clean
 * distribution p(x); MART ascends the cross-entropy. */
#include "train/method.h"

#include "attack/attack.h"

#include <math.h>
#include <string.h>

void at_softmax_rows(const float *logits, int n, int k, float *probs)
{
    for (int i = 0; i < n; i++) {
        const float *z = logits + (size_t)i * k;
        float *p = probs + (size_t)i * k;
        double max = z[0], sum = 0.0;
        for (int j = 1; j < k; j++)
            max = z[j] > max ? z[j] : max;
        for (int j = 0; j < k; j++)
            sum += exp(z[j] - max);
        for (int j = 0; j < k; j++)
            p[j] = (float)(exp(z[j] - max) / sum);
    }
}

int at_train_attack(at_method_ctx *c, const at_batch *b, const float *target, float *x_adv)
{
    const at_train_config *cfg = c->config;
    const int n = b->n, k = c->num_classes;
    /* the noise of every row of the global batch in order, this shard keeping its own rows',
     * so that a row's start is the same however the batch is split */
    for (int g = 0; g < b->total; g++) {
        at_rng *rng = g < b->total_scored ? c->rng : c->rng_unscored;
        if (g < b->first || g >= b->first + n) {
            for (size_t j = 0; j < c->image; j++)
                at_rng_normal(rng);
            continue;
        }
        const float *x = b->x + (size_t)(g - b->first) * c->image;
        float *xa = x_adv + (size_t)(g - b->first) * c->image;
        for (size_t j = 0; j < c->image; j++) {
            float v = x[j] + 0.001f * (float)at_rng_normal(rng);
            xa[j] = v < 0.0f ? 0.0f : (v > 1.0f ? 1.0f : v);
        }
    }
    for (int s = 0; s < cfg->attack_steps; s++) {
        int status = at_forward(c->attack_pass, x_adv, n, cfg->attack_bn_mode);
        if (status)
            return status;
        at_softmax_rows(at_pass_logits(c->attack_pass), n, k, c->probs);
        /* d/dz' of CE(z', y) is p' - onehot(y); of KL(t || p') it is p' - t */
        for (int i = 0; i < n; i++)
            for (int j = 0; j < k; j++) {
                float t = target ? target[(size_t)i * k + j] : (j == b->y[i] ? 1.0f : 0.0f);
                c->dlogits2[(size_t)i * k + j] = c->probs[(size_t)i * k + j] - t;
            }
        status = at_backward(c->attack_pass, c->dlogits2, AT_GRAD_INPUT);
        if (status)
            return status;
        at_train_attack_ascend(c, b, at_pass_input_grad(c->attack_pass), x_adv);
    }
    return AT_OK;
}

void at_train_attack_ascend(at_method_ctx *c, const at_batch *b, const float *grad, float *x_adv)
{
    const at_train_config *cfg = c->config;
    at_attack_direction(cfg->norm, grad, c->dir, b->n, c->image);
    for (int i = 0; i < b->n; i++) {
        /* the step follows the example's budget: alpha proportional to eps */
        const float step = b->eps ? cfg->attack_step_size * (b->eps[i] / cfg->eps)
                                  : cfg->attack_step_size * (c->eps / cfg->eps);
        float *xi = x_adv + (size_t)i * c->image;
        const float *di = c->dir + (size_t)i * c->image;
        for (size_t j = 0; j < c->image; j++)
            xi[j] += step * di[j];
    }
    at_attack_project(cfg->norm, c->eps, b->eps, b->x, x_adv, b->n, c->image, c->scratch);
}

void at_attack_presets(at_train_config *c, int steps, at_bn_mode bn)
{
    if (c->attack_steps == 0)
        c->attack_steps = steps;
    if (c->attack_step_size == 0.0f)
        c->attack_step_size = c->eps / 4;
    if (!c->attack_bn_given)
        c->attack_bn_mode = bn;
}

int at_method_attack(at_method_ctx *c, const at_batch *b, float *x_adv)
{
    at_attack *a = c->attack;
    a->o.eps = c->eps;
    a->o.step_size = c->config->attack_step_size * (c->eps / c->config->eps);
    /* per-example budgets are absolute: the attack scales each step by eps_i / o.eps, so o.eps
     * is the training eps itself here */
    if (b->eps) {
        a->o.eps = c->config->eps;
        a->o.step_size = c->config->attack_step_size;
    }
    a->eps_each = b->eps;
    a->soft_targets = b->soft;
    /* a seed for every row of the global batch in order, this shard keeping its own rows' */
    for (int g = 0; g < b->total; g++) {
        const uint64_t seed = at_rng_next(g < b->total_scored ? c->rng : c->rng_unscored);
        if (g >= b->first && g < b->first + b->n)
            c->seeds[g - b->first] = seed;
    }
    int status = at_attack_run(a, b->x, b->y, NULL, b->n, c->seeds, x_adv, NULL);
    a->eps_each = NULL;
    a->soft_targets = NULL;
    return status;
}

double at_method_ce(at_method_ctx *c, const at_batch *b, const float *logits, float *dlogits)
{
    const int k = c->num_classes;
    at_ce_target t = {.labels = b->soft ? NULL : b->y, .soft_targets = b->soft,
                      .weights = b->weight, .total = b->total};
    double loss = at_loss_cross_entropy(logits, b->n, k, &t, NULL, dlogits);
    at_count_correct(logits, b->n, k, b->y, c->correct);
    return loss;
}
