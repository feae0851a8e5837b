/* ijsat.c: interpolated joint-space adversarial training (Lau, Liu, Souri, Lin, Feizi and
 * Chellappa, "Interpolated Joint Space Adversarial Training for Robust and Generalizable
 * Defenses", IEEE TPAMI 2023, arXiv 2112.06323), a reconstruction from the abstract: the
 * paper's equations were not available, so every detail below is an option.
 *   1. Robust mixup: a pairing pi and lambda ~ Beta(alpha, alpha) per batch; the interpolated
 *      sample in the flow's latent space, x_mix = clamp(F^-1(lambda F(x) + (1 - lambda)
 *      F(x_pi))) (--ijsat-mix latent, our reading: the flow makes it natural), or in pixels
 *      (--ijsat-mix pixel), or none; soft label y_mix = lambda y + (1 - lambda) y_pi.
 *   2. The joint-space attack (attack jsa) on the interpolated sample, maximising
 *      softCE(f(.), y_mix): signed steps on a latent perturbation (budget eps-z, decoded by the
 *      flow's inverse) and a pixel one (budget eps), `attack steps` steps, BN in the attack
 *      mode (eval by default, as the seed notes suggest).
 *   3. The loss softCE(f(x_adv), y_mix); with --trades (stacked on TRADES, eq. 5 of Zhang et al.,
 *      2019) softCE(f(x_mix), y_mix) + beta KL(f(x_mix) || f(x_adv)), the attack unchanged.
 * The latent budget follows the eps warm-up (eps-z eps_now / eps) and per-example budgets. */
#include "train/method.h"

#include "attack/attack.h"

#include <math.h>
#include <string.h>

enum { MIX, ALPHA, EPS_Z, STEP_Z, TRADES, BETA };
static const at_option_info ijsat_options[] = {
    [MIX] = {"ijsat-mix", AT_OPTION_CHOICE, 0, 0, "latent|pixel|none", "latent",
             "where the pairs are interpolated: the flow's latent space, pixels, or no mixup "
             "(reconstruction)"},
    [ALPHA] = {"ijsat-alpha", AT_OPTION_FLOAT, 0, 100, NULL, "1",
               "lambda ~ Beta(alpha, alpha); 0 means lambda = 1 (reconstruction)"},
    [EPS_Z] = {"eps-z", AT_OPTION_FLOAT, 0, 100, NULL, "0.1",
               "Linf budget of the latent perturbation (reconstruction)"},
    [STEP_Z] = {"step-size-z", AT_OPTION_FLOAT, 0, 100, NULL, "0",
                "latent step; 0 = eps-z / 4, the pixel step's ratio (reconstruction)"},
    [TRADES] = {"trades", AT_OPTION_FLAG, 0, 1, NULL, "false",
                "stack on TRADES: softCE(x_mix) + beta KL(f(x_mix) || f(x_adv))"},
    [BETA] = {"beta", AT_OPTION_FLOAT, 0, 1e6, NULL, "6", "TRADES: weight of the KL term"},
};

typedef struct ijsat_state {
    at_flow *flow;
    int32_t *partner, *y;
    float *x_mix, *soft, *z, *zp;
} ijsat_state;

static void ijsat_defaults(at_train_config *c) { at_attack_presets(c, 10, AT_BN_EVAL); }

static void free_state(void *p)
{
    ijsat_state *s = p;
    if (!s)
        return;
    at_flow_free(s->flow);
    at_free(s->partner);
    at_free(s->y);
    at_free(s->x_mix);
    at_free(s->soft);
    at_free(s->z);
    at_free(s->zp);
    at_free(s);
}

static int ijsat_setup(at_method_ctx *c, at_error *err)
{
    if (!c->opt_given[TRADES] && c->opt_given[BETA])
        return at_fail(err, AT_ERR_ARG, "beta needs --trades");
    if (c->config->norm != AT_NORM_LINF)
        return at_fail(err, AT_ERR_ARG, "method ijsat: the joint-space attack is Linf only");
    const char *path = c->config->flow;
    if (!path)
        return at_fail(err, AT_ERR_ARG, "method ijsat needs a flow file (written by advtrain "
                       "train-flow)");
    ijsat_state *s = at_alloc(sizeof *s);
    if (!s)
        return at_fail(err, AT_ERR_NOMEM, "out of memory");
    c->state = s;
    c->free_state = free_state;
    int status = at_flow_load(&s->flow, path, c->batch, err);
    if (status)
        return status;
    const size_t n = (size_t)c->batch, k = (size_t)c->num_classes;
    s->partner = at_alloc(n * sizeof(int32_t));
    s->y = at_alloc(n * sizeof(int32_t));
    s->x_mix = at_alloc(n * c->image * sizeof(float));
    s->soft = at_alloc(n * k * sizeof(float));
    s->z = at_alloc(n * c->image * sizeof(float));
    s->zp = at_alloc(n * c->image * sizeof(float));
    if (!s->partner || !s->y || !s->x_mix || !s->soft || !s->z || !s->zp)
        return at_fail(err, AT_ERR_NOMEM, "out of memory for IJSAT's buffers");
    const at_train_config *cfg = c->config;
    const float eps_z = (float)c->opt[EPS_Z];
    at_attack_options o = {.norm = AT_NORM_LINF, .eps = cfg->eps, .steps = cfg->attack_steps,
                           .step_size = cfg->attack_step_size, .bn_mode = cfg->attack_bn_mode,
                           .loss = AT_ATTACK_LOSS_CE, .flow = s->flow, .eps_z = eps_z,
                           .step_size_z = c->opt[STEP_Z] > 0 ? (float)c->opt[STEP_Z] : eps_z / 4};
    if ((status = at_attack_create(&c->attack, "jsa", c->model, c->batch, &o, err))) {
        if (status == AT_ERR_SHAPE) {
            char why[sizeof err->message];
            memcpy(why, err->message, sizeof why);
            return at_fail(err, AT_ERR_SHAPE, "%s: %s", path, why);
        }
        return status;
    }
    return AT_OK;
}

/* x_mix and y_mix of the batch into s->x_mix, s->soft, s->y. */
static int interpolate(at_method_ctx *c, const at_batch *b)
{
    ijsat_state *s = c->state;
    const int n = b->n, k = c->num_classes, mix = (int)c->opt[MIX];
    const double alpha = c->opt[ALPHA];
    const float lambda = mix != 2 && alpha > 0.0 ? (float)at_rng_beta(c->rng, alpha, alpha) : 1.0f;
    for (int i = 0; i < n; i++)
        s->partner[i] = i;
    if (lambda != 1.0f)
        at_rng_shuffle(c->rng, s->partner, (size_t)n);
    const size_t image = c->image, count = (size_t)n * image;
    if (lambda == 1.0f) {
        memcpy(s->x_mix, b->x, count * sizeof(float));
    } else if (mix == 1) {
        for (int i = 0; i < n; i++)
            for (size_t j = 0; j < image; j++)
                s->x_mix[(size_t)i * image + j] =
                    lambda * b->x[(size_t)i * image + j] +
                    (1.0f - lambda) * b->x[(size_t)s->partner[i] * image + j];
    } else {
        int status = at_flow_forward(s->flow, b->x, n, s->z, NULL);
        if (status)
            return status;
        for (int i = 0; i < n; i++)
            for (size_t j = 0; j < image; j++)
                s->zp[(size_t)i * image + j] =
                    lambda * s->z[(size_t)i * image + j] +
                    (1.0f - lambda) * s->z[(size_t)s->partner[i] * image + j];
        if ((status = at_flow_inverse(s->flow, s->zp, n, s->x_mix)))
            return status;
        for (size_t j = 0; j < count; j++)
            s->x_mix[j] = s->x_mix[j] < 0.0f ? 0.0f : s->x_mix[j] > 1.0f ? 1.0f : s->x_mix[j];
    }
    for (int i = 0; i < n; i++) {
        float *t = s->soft + (size_t)i * k;
        const int p = s->partner[i];
        for (int j = 0; j < k; j++) {
            const float a = b->soft ? b->soft[(size_t)i * k + j] : (float)(b->y[i] == j);
            const float bb = b->soft ? b->soft[(size_t)p * k + j] : (float)(b->y[p] == j);
            t[j] = lambda * a + (1.0f - lambda) * bb;
        }
        s->y[i] = lambda >= 0.5f ? b->y[i] : b->y[p];
    }
    return AT_OK;
}

static int ijsat_step(at_method_ctx *c, const at_batch *b, double *loss)
{
    ijsat_state *s = c->state;
    int status = interpolate(c, b);
    if (status)
        return status;
    at_batch mixed = *b;
    mixed.x = s->x_mix;
    mixed.soft = s->soft;
    mixed.y = s->y;
    /* the latent budget follows the eps warm-up (per-example budgets scale it in the attack) */
    const float scale = b->eps ? 1.0f : c->eps / c->config->eps;
    const float eps_z = (float)c->opt[EPS_Z];
    c->attack->o.eps_z = eps_z * scale;
    c->attack->o.step_size_z = (c->opt[STEP_Z] > 0 ? (float)c->opt[STEP_Z] : eps_z / 4) * scale;
    if ((status = at_method_attack(c, &mixed, c->x_adv)))
        return status;
    const int n = b->n, k = c->num_classes;
    if ((status = at_forward(c->train, c->x_adv, n, AT_BN_TRAIN)))
        return status;
    const float *za = at_pass_logits(c->train);
    if (!c->opt[TRADES]) {
        *loss = at_method_ce(c, &mixed, za, c->dlogits);
        return at_backward(c->train, c->dlogits, AT_GRAD_WEIGHTS);
    }
    /* TRADES stacked: softCE on the interpolated sample, beta KL to the adversarial one */
    const float beta = (float)c->opt[BETA];
    if ((status = at_forward(c->clean, s->x_mix, n, AT_BN_TRAIN)))
        return status;
    const float *zc = at_pass_logits(c->clean);
    uint8_t *correct = c->correct;
    double ce = at_method_ce(c, &mixed, zc, c->dlogits);
    double kl = at_loss_kl_shard(zc, za, n, b->total, k, b->weight, NULL, c->probs, c->dlogits2);
    for (size_t j = 0; j < (size_t)n * k; j++) {
        c->dlogits[j] += beta * c->probs[j];
        c->dlogits2[j] *= beta;
    }
    *loss = ce + beta * kl;
    at_count_correct(za, n, k, s->y, correct);
    status = at_backward(c->clean, c->dlogits, AT_GRAD_WEIGHTS);
    return status ? status : at_backward(c->train, c->dlogits2, AT_GRAD_WEIGHTS);
}

const at_method at_method_ijsat = {
    .name = "ijsat",
    .description = "IJSAT: latent-space robust mixup, then the joint-space attack (latent via a "
                   "flow and pixels), soft-label CE, optional TRADES (Lau et al., 2023; "
                   "reconstruction)",
    .uses = AT_USES_EPS | AT_USES_ATTACK_STEPS | AT_USES_STEP_SIZE | AT_USES_ATTACK_BN |
            AT_USES_FLOW,
    .needs = AT_NEEDS_CLEAN_PASS,
    .options = ijsat_options,
    .n_options = AT_OPTION_LEN(ijsat_options),
    .defaults = ijsat_defaults,
    .setup = ijsat_setup,
    .step = ijsat_step,
};
