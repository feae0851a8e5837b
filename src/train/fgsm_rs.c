/* fgsm_rs.c: fast adversarial training with FGSM from a random start (Wong, Rice and Kolter,
 * "Fast is better than free", ICLR 2020, Algorithm 3): delta ~ U(-eps, eps), one signed-gradient
 * step of 1.25 eps, projection to the eps-ball and [0,1], then cross-entropy on x + delta; batch
 * norm in train mode throughout. The trainer checks every epoch for catastrophic overfitting (PGD
 * accuracy collapsing while FGSM accuracy rises) and rolls back when it happens; the tool
 * defaults this method to the cyclic learning rate of the paper. */
#include "train/method.h"

#include "attack/attack.h"

enum { NO_OVERFIT_CHECK };
static const at_option_info fgsm_rs_options[] = {
    [NO_OVERFIT_CHECK] = {"no-overfit-check", AT_OPTION_FLAG, 0, 1, NULL, "false",
                          "no catastrophic-overfitting check (and roll-back) after each epoch"},
};

static int fgsm_rs_setup(at_method_ctx *c, at_error *err)
{
    c->overfit_check = c->opt[NO_OVERFIT_CHECK] == 0.0;
    return AT_OK;
}

static void fgsm_rs_defaults(at_train_config *c)
{
    if (c->attack_step_size == 0.0f)
        c->attack_step_size = 1.25f * c->eps;
    c->attack_steps = 1;
    if (!c->attack_bn_given)
        c->attack_bn_mode = AT_BN_TRAIN;
}

static int fgsm_rs_step(at_method_ctx *c, const at_batch *b, double *loss)
{
    int status = at_method_attack(c, b, c->x_adv);
    if (!status)
        status = at_forward(c->train, c->x_adv, b->n, AT_BN_TRAIN);
    if (status)
        return status;
    *loss = at_method_ce(c, b, at_pass_logits(c->train), c->dlogits);
    return at_backward(c->train, c->dlogits, AT_GRAD_WEIGHTS);
}

const at_method at_method_fgsm_rs = {
    .name = "fgsm-rs",
    .row_draws = true,
    .description = "fast AT: FGSM from a random start, step 1.25 eps (Wong et al., 2020), with "
                   "catastrophic-overfitting detection",
    .uses = AT_USES_EPS | AT_USES_STEP_SIZE | AT_USES_ATTACK_BN,
    .needs = AT_NEEDS_PGD,
    .options = fgsm_rs_options,
    .n_options = AT_OPTION_LEN(fgsm_rs_options),
    .defaults = fgsm_rs_defaults,
    .setup = fgsm_rs_setup,
    .step = fgsm_rs_step,
};
