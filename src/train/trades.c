/* trades.c: TRADES (Zhang et al., "Theoretically Principled Trade-off between Robustness and
 * Accuracy", ICML 2019, eq. 5): minimise CE(f(x), y) + beta KL(f(x) || f(x')), where x' maximises
 * that KL in the eps-ball (at_train_attack: from x + 0.001 N(0,1), batch norm in eval mode,
 * 10 steps of eps/4 by default; beta = 6). The clean and adversarial forwards run in train mode
 * and the loss's gradient flows through both, as in the authors' code (which forwards x twice;
 * one clean forward gives the same gradient). With AWP (Wu et al., TRADES-AWP): gamma 0.005, the
 * proxy ascends the same loss with the main learning rate, from epoch 10. */
#include "train/method.h"

#include <string.h>

enum { BETA, AWP };
static const at_option_info trades_options[] = {
    [BETA] = {"beta", AT_OPTION_FLOAT, 0, 1e6, NULL, "6", "weight of the KL term"},
    AT_AWP_OPTIONS("0.005", "10"),
};

static void trades_defaults(at_train_config *c) { at_attack_presets(c, 10, AT_BN_EVAL); }

/* TRADES-AWP's proxy steps with the main learning rate */
static int trades_setup(at_method_ctx *c, at_error *err)
{
    return at_awp_setup(c, AWP, c->config->lr.base, err);
}

/* Loss and gradients on one pair of passes (the model's, or the AWP proxy's). */
/* Loss and gradients on one pair of passes (the model's, or the AWP proxy's). The batch's
 * targets (soft with CutMix or OOD rows) and weights enter both terms. */
static int trades_loss(at_method_ctx *c, at_pass *clean, at_pass *adv, const at_batch *b,
                       double *loss)
{
    const int n = b->n, k = c->num_classes;
    const float beta = (float)c->opt[BETA];
    int status = at_forward(clean, b->x, n, AT_BN_TRAIN);
    if (!status)
        status = at_forward(adv, c->x_adv, n, AT_BN_TRAIN);
    if (status)
        return status;
    const float *zc = at_pass_logits(clean), *za = at_pass_logits(adv);
    /* clean: dCE + beta dKL/dp; adversarial: beta dKL/dq (both batch means) */
    double ce = at_method_ce(c, b, zc, c->dlogits);
    double kl = at_loss_kl_shard(zc, za, n, b->total, k, b->weight, NULL, c->probs, c->dlogits2);
    for (size_t j = 0; j < (size_t)n * k; j++) {
        c->dlogits[j] += beta * c->probs[j];
        c->dlogits2[j] *= beta;
    }
    *loss = ce + beta * kl;
    at_count_correct(za, n, k, b->y, c->correct);
    status = at_backward(clean, c->dlogits, AT_GRAD_WEIGHTS);
    return status ? status : at_backward(adv, c->dlogits2, AT_GRAD_WEIGHTS);
}

static int trades_step(at_method_ctx *c, const at_batch *b, double *loss)
{
    /* the attack's fixed target: the clean distribution in the attack's BN mode */
    int status = at_forward(c->attack_pass, b->x, b->n, c->config->attack_bn_mode);
    if (status)
        return status;
    at_softmax_rows(at_pass_logits(c->attack_pass), b->n, c->num_classes, c->target);
    if ((status = at_train_attack(c, b, c->target, c->x_adv)))
        return status;
    if (at_awp_now(c, AWP)) {
        double proxy_loss;
        if ((status = at_awp_begin(c->awp, c->model)) ||
            (status = trades_loss(c, at_awp_pass(c->awp, 0), at_awp_pass(c->awp, 1), b,
                                  &proxy_loss)))
            return status;
        at_awp_perturb(c->awp, c->model);
    }
    return trades_loss(c, c->clean, c->train, b, loss);
}

static void trades_after_step(at_method_ctx *c)
{
    if (at_awp_active(c->awp))
        at_awp_restore(c->awp, c->model);
}

const at_method at_method_trades = {
    .name = "trades",
    .row_draws = true,
    .description = "TRADES: CE(x) + beta KL(f(x) || f(x')) (Zhang et al., 2019), optional AWP",
    .uses = AT_USES_EPS | AT_USES_ATTACK_STEPS | AT_USES_STEP_SIZE | AT_USES_ATTACK_BN,
    .needs = AT_NEEDS_CLEAN_PASS | AT_NEEDS_ATTACK_PASS,
    .options = trades_options,
    .n_options = AT_OPTION_LEN(trades_options),
    .defaults = trades_defaults,
    .setup = trades_setup,
    .step = trades_step,
    .after_step = trades_after_step,
};
