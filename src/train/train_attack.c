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

int at_train_attack(at_method_ctx *c, const float *x, const int32_t *y, const float *target, int n,
                    float *x_adv)
{
    const at_train_config *cfg = c->config;
    const size_t count = (size_t)n * c->image;
    const int k = c->num_classes;
    for (size_t j = 0; j < count; j++) {
        float v = x[j] + 0.001f * (float)at_rng_normal(c->rng);
        x_adv[j] = v < 0.0f ? 0.0f : (v > 1.0f ? 1.0f : v);
    }
    float *dir = c->dir;
    for (int s = 0; s < cfg->attack_steps; s++) {
        int status = at_forward(c->attack_pass, x_adv, n, cfg->attack_bn_mode);
        if (status)
            return status;
        at_softmax_rows(at_pass_logits(c->attack_pass), n, k, c->probs);
        /* d/dz' of CE(z', y) is p' - onehot(y); of KL(t || p') it is p' - t */
        for (int i = 0; i < n; i++)
            for (int j = 0; j < k; j++) {
                float t = target ? target[(size_t)i * k + j] : (j == y[i] ? 1.0f : 0.0f);
                c->dlogits2[(size_t)i * k + j] = c->probs[(size_t)i * k + j] - t;
            }
        status = at_backward(c->attack_pass, c->dlogits2, AT_GRAD_INPUT);
        if (status)
            return status;
        at_attack_direction(cfg->norm, at_pass_input_grad(c->attack_pass), dir, n, c->image);
        for (size_t j = 0; j < count; j++)
            x_adv[j] += cfg->attack_step_size * dir[j];
        at_attack_project(cfg->norm, c->eps, x, x_adv, n, c->image, c->scratch);
    }
    return AT_OK;
}
