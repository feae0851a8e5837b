/* preemptive.c: preemptively robust training (Moon, An and Song, "Preemptive Image
 * Robustification for Protecting Users against Man-in-the-Middle Adversarial Attacks", AAAI 2022,
 * the preemptively robust classifier; the authors' train.py with configs/cifar10_*_model.yaml): a
 * classifier trained for images that are robustified before the attacker sees them. Per batch,
 * with the network in eval BN mode for both inner steps:
 *   1. one robustification step: from x + U(-delta, delta) (L2: a uniform radius along a random
 *      direction), a step of size delta DOWN the cross-entropy to the label (sign of the gradient
 *      for Linf, the normalised gradient for L2), projected onto the delta-ball around x and
 *      [0,1];
 *   2. PGD-10 (step eps/4, random start) in the eps-ball around that robustified point;
 *   3. cross-entropy on the adversarial outputs in train BN mode.
 * The published train.py builds step 1 from its PGD class without the flag that reverses the
 * gradient, so as written it ASCENDS the loss; the paper describes a robustification, a descent.
 * We follow the paper (descent) by default; --preempt-direction ascent reproduces the code. */
#include "train/method.h"

#include "attack/attack.h"

#include <string.h>

enum { DELTA, DIRECTION };
static const at_option_info preemptive_options[] = {
    [DELTA] = {"preempt-delta", AT_OPTION_FLOAT, 0, 1e6, NULL, NULL,
               "robustification budget of the training step; preset eps (the authors' 8/255 for "
               "both)"},
    [DIRECTION] = {"preempt-direction", AT_OPTION_CHOICE, 0, 0, "descent|ascent", "descent",
                   "the robustification step descends the loss (the paper), or ascends it (the "
                   "published train.py as written)"},
};

typedef struct preemptive_state {
    float *x_def; /* [batch, image]: the robustified batch */
} preemptive_state;

static void free_state(void *p)
{
    preemptive_state *s = p;
    if (s)
        at_free(s->x_def);
    at_free(s);
}

static void preemptive_defaults(at_train_config *c) { at_attack_presets(c, 10, AT_BN_EVAL); }

static int preemptive_setup(at_method_ctx *c, at_error *err)
{
    if (!c->opt_given[DELTA])
        c->opt[DELTA] = c->config->eps;
    if (!(c->opt[DELTA] > 0.0))
        return at_fail(err, AT_ERR_ARG, "preemptive: --preempt-delta must be > 0 (got %g)",
                       c->opt[DELTA]);
    if (c->config->norm == AT_NORM_L1)
        return at_fail(err, AT_ERR_ARG, "preemptive: the norm must be linf or l2");
    preemptive_state *s = at_alloc(sizeof *s);
    if (s)
        s->x_def = at_alloc((size_t)c->batch * c->image * sizeof(float));
    if (!s || !s->x_def) {
        free_state(s);
        return at_fail(err, AT_ERR_NOMEM, "out of memory for preemptive training");
    }
    c->state = s;
    c->free_state = free_state;
    return AT_OK;
}

/* x_def = a random start in the delta-ball, then one step of size delta along -+ the gradient of
 * the cross-entropy, projected onto the delta-ball around b->x and [0,1]. */
static int robustify_step(at_method_ctx *c, const at_batch *b, float *x_def)
{
    const at_train_config *cfg = c->config;
    const int n = b->n, k = c->num_classes;
    const size_t image = c->image;
    const float delta = (float)c->opt[DELTA];
    for (int i = 0; i < n; i++) {
        at_rng *rng = i < b->scored ? c->rng : c->rng_unscored;
        const float *xi = b->x + (size_t)i * image;
        float *di = x_def + (size_t)i * image;
        if (cfg->norm == AT_NORM_LINF) {
            for (size_t j = 0; j < image; j++)
                di[j] = xi[j] + delta * (float)(2.0 * at_rng_uniform(rng) - 1.0);
        } else {
            at_rng_normals(rng, di, image);
            double norm = at_norm_of(AT_NORM_L2, di, image);
            float r = (float)(delta * at_rng_uniform(rng) / (norm > 0.0 ? norm : 1.0));
            for (size_t j = 0; j < image; j++)
                di[j] = xi[j] + r * di[j];
        }
        for (size_t j = 0; j < image; j++)
            di[j] = di[j] < 0.0f ? 0.0f : (di[j] > 1.0f ? 1.0f : di[j]);
    }
    int status = at_forward(c->attack_pass, x_def, n, AT_BN_EVAL);
    if (status)
        return status;
    at_ce_target t = {.labels = b->soft ? NULL : b->y, .soft_targets = b->soft,
                      .total = b->total};
    at_loss_cross_entropy(at_pass_logits(c->attack_pass), n, k, &t, NULL, c->dlogits2);
    if ((status = at_backward(c->attack_pass, c->dlogits2, AT_GRAD_INPUT)))
        return status;
    at_attack_direction(cfg->norm, at_pass_input_grad(c->attack_pass), c->dir, n, image);
    const float step = c->opt[DIRECTION] == 0.0 ? -delta : delta;
    for (size_t j = 0; j < (size_t)n * image; j++)
        x_def[j] += step * c->dir[j];
    at_attack_project(cfg->norm, delta, NULL, b->x, x_def, n, image, c->scratch);
    return AT_OK;
}

static int preemptive_step(at_method_ctx *c, const at_batch *b, double *loss)
{
    preemptive_state *s = c->state;
    int status = robustify_step(c, b, s->x_def);
    if (status)
        return status;
    at_batch robustified = *b;
    robustified.x = s->x_def; /* the man in the middle attacks the robustified images */
    if ((status = at_method_attack(c, &robustified, c->x_adv)))
        return status;
    if ((status = at_forward(c->train, c->x_adv, b->n, AT_BN_TRAIN)))
        return status;
    *loss = at_method_ce(c, b, at_pass_logits(c->train), c->dlogits);
    return at_backward(c->train, c->dlogits, AT_GRAD_WEIGHTS);
}

const at_method at_method_preemptive = {
    .name = "preemptive",
    .description = "preemptively robust training: one robustification step (descent), then PGD-10 "
                   "around it (Moon et al., 2022)",
    .uses = AT_USES_EPS | AT_USES_ATTACK_STEPS | AT_USES_STEP_SIZE | AT_USES_ATTACK_BN,
    .needs = AT_NEEDS_PGD | AT_NEEDS_ATTACK_PASS,
    .options = preemptive_options,
    .n_options = AT_OPTION_LEN(preemptive_options),
    .defaults = preemptive_defaults,
    .setup = preemptive_setup,
    .step = preemptive_step,
};
