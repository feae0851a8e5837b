/* pgd_at.c: PGD adversarial training (Madry et al., "Towards Deep Learning Models Resistant to
 * Adversarial Attacks", ICLR 2018, eq. 2.1: min_theta E max_{||delta|| <= eps} L(theta, x +
 * delta, y)), as in Rice, Wong and Kolter's code (ICML 2020): PGD-10 with step eps/4 from a
 * uniform random start, batch norm in train mode during the attack (as their training loop; set
 * the attack's mode to eval for the TRADES convention), then cross-entropy on the adversarial
 * batch. With AWP (Wu et al., NeurIPS 2020) the step runs at adversarially perturbed weights:
 * the proxy ascends CE(proxy(x'), y), gamma 0.01, proxy learning rate 0.01. The paper's code
 * starts AWP at epoch 0 for CIFAR-10 (and delays it, awp_warmup, for harder starts); here it
 * starts at the second epoch by default, and not before an epoch whose training accuracy is
 * above chance (at_awp_now): from the first step, or after a warm-up too short for the network
 * to start learning, SmallCNN without batch norm can stay at chance for the whole run
 * (docs/RESULTS.md, "pgd-at-awp's fragility"). --awp-warmup 0 gives the paper's schedule. */
#include "train/method.h"

#include "attack/attack.h"

enum { AWP };
static const at_option_info pgd_at_options[] = {AT_AWP_OPTIONS("0.01", "1")};

static void pgd_at_defaults(at_train_config *c) { at_attack_presets(c, 10, AT_BN_TRAIN); }

static int pgd_at_setup(at_method_ctx *c, at_error *err) { return at_awp_setup(c, AWP, 0.01f, err); }

/* Cross-entropy of the adversarial batch (on the model, or on AWP's proxy). */
static int ce_step(at_pass *pass, at_method_ctx *c, const at_batch *b, double *loss)
{
    int status = at_forward(pass, c->x_adv, b->n, AT_BN_TRAIN);
    if (status)
        return status;
    *loss = at_method_ce(c, b, at_pass_logits(pass), c->dlogits);
    return at_backward(pass, c->dlogits, AT_GRAD_WEIGHTS);
}

static int pgd_at_step(at_method_ctx *c, const at_batch *b, double *loss)
{
    int status = at_method_attack(c, b, c->x_adv);
    if (status)
        return status;
    if (at_awp_now(c, AWP)) {
        double proxy_loss;
        if ((status = at_awp_begin(c->awp, c->model)))
            return status;
        if ((status = ce_step(at_awp_pass(c->awp, 0), c, b, &proxy_loss)))
            return status;
        at_awp_perturb(c->awp, c->model);
    }
    return ce_step(c->train, c, b, loss);
}

static void pgd_at_after_step(at_method_ctx *c)
{
    if (at_awp_active(c->awp))
        at_awp_restore(c->awp, c->model);
}

const at_method at_method_pgd_at = {
    .name = "pgd-at",
    .row_draws = true,
    .description = "PGD adversarial training (Madry et al., 2018; Rice et al. recipe), optional AWP "
                   "(from the 2nd epoch and an epoch above chance: earlier, a network can stall)",
    .uses = AT_USES_EPS | AT_USES_ATTACK_STEPS | AT_USES_STEP_SIZE | AT_USES_ATTACK_BN,
    .needs = AT_NEEDS_PGD,
    .options = pgd_at_options,
    .n_options = AT_OPTION_LEN(pgd_at_options),
    .defaults = pgd_at_defaults,
    .setup = pgd_at_setup,
    .step = pgd_at_step,
    .after_step = pgd_at_after_step,
};
