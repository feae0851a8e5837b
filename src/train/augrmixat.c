/* augrmixat.c: AugRmixAT ("AugRmixAT: A Data Processing and Training Method for Improving
 * Multiple Robustness and Generalization Performance", arXiv 2022). No code was published: a
 * reconstruction from the abstract (the entry's section 18.3: AugMix + random mixing + AT). Per
 * example, from the clean image x:
 *   x_aug  one AugMix image of x (data/augmix.c, AugMix's presets);
 *   x_adv  PGD on x in the eps-ball (the library attack, as pgd-at: PGD-10, step eps/4, batch
 *          norm in train mode);
 *   x_mix  a random mixing of the two: lambda x_aug + (1 - lambda) x_adv with lambda ~
 *          Beta(a, a) per example (convex), or x_adv inside a CutMix box of area share
 *          1 - lambda and x_aug outside (mask); then projected onto the eps-ball around x and
 *          [0,1], so that the L-inf (or L2) budget of the threat model still holds;
 *   L = CE(f(x), y) + w CE(f(x_mix), y) + lambda_JS JS(p(x), p(x_aug), p(x_mix)),  lambda_JS 12,
 * the three forwarded as one concatenated batch in train mode, as AugMix's code does.
 * Reconstruction choices, each an option at the entry's value: the attack starts from x (not
 * x_aug: attack-input), the mixing weight's Beta(1, 1) (rmix-alpha), which image fills the box,
 * the projection (no-rmix-project turns it off), the mixed branch's CE weight 1 (mixed-weight),
 * the JS weight 12 (AugMix's), the concatenated batch-norm batch, and the training accuracy
 * counted on the mixed images. */
#include "train/method.h"

#include "attack/attack.h"

#include <math.h>
#include <string.h>

enum { AUGMIX, JSD_WEIGHT = AUGMIX + 4, MIXED_WEIGHT, MODE, ALPHA, NO_PROJECT, ATTACK_INPUT };
static const at_option_info augrmixat_options[] = {
    AT_AUGMIX_OPTIONS,
    [JSD_WEIGHT] = {"jsd-weight", AT_OPTION_FLOAT, 0, 1e6, NULL, "12",
                    "weight lambda of JS(p(x), p(x_aug), p(x_mix)) [reconstruction]"},
    [MIXED_WEIGHT] = {"mixed-weight", AT_OPTION_FLOAT, 0, 1e6, NULL, "1",
                      "weight of the mixed images' CE beside the clean CE [reconstruction]"},
    [MODE] = {"rmix-mode", AT_OPTION_CHOICE, 0, 0, "convex|mask", "convex",
              "mix x_aug and x_adv with a random weight, or paste x_adv into a random box "
              "[reconstruction]"},
    [ALPHA] = {"rmix-alpha", AT_OPTION_FLOAT, 0.01, 100, NULL, "1",
               "the share of x_aug ~ Beta(alpha, alpha) per example [reconstruction]"},
    [NO_PROJECT] = {"no-rmix-project", AT_OPTION_FLAG, 0, 1, NULL, "false",
                    "leave the mixed image unprojected (outside the eps-ball) [reconstruction]"},
    [ATTACK_INPUT] = {"attack-input", AT_OPTION_CHOICE, 0, 0, "clean|augmix", "clean",
                      "the image PGD starts from and whose eps-ball it keeps to [reconstruction]"},
};

void at_rmix_example(const float *x, const float *x_aug, const float *x_adv, float *out, int c,
                     int h, int w, bool mask, double alpha, at_norm norm, float eps, at_rng *rng)
{
    const size_t plane = (size_t)h * w, image = (size_t)c * plane;
    const double lambda = at_rng_beta(rng, alpha, alpha);
    if (!mask) {
        const float l = (float)lambda;
        for (size_t j = 0; j < image; j++)
            out[j] = l * x_aug[j] + (1.0f - l) * x_adv[j];
    } else {
        /* CutMix's box (Yun et al., 2019): sides sqrt(1 - lambda) of the image's, centre uniform,
         * clipped to the image */
        const double r = sqrt(1.0 - lambda);
        const int bh = (int)(h * r), bw = (int)(w * r);
        const int cy = (int)at_rng_below(rng, (uint32_t)h), cx = (int)at_rng_below(rng, (uint32_t)w);
        const int y0 = cy - bh / 2 < 0 ? 0 : cy - bh / 2, y1 = cy + bh / 2 > h ? h : cy + bh / 2;
        const int x0 = cx - bw / 2 < 0 ? 0 : cx - bw / 2, x1 = cx + bw / 2 > w ? w : cx + bw / 2;
        memcpy(out, x_aug, image * sizeof(float));
        for (int ch = 0; ch < c; ch++)
            for (int y = y0; y < y1; y++)
                for (int xx = x0; xx < x1; xx++) {
                    const size_t j = ch * plane + (size_t)y * w + xx;
                    out[j] = x_adv[j];
                }
    }
    if (!(eps >= 0.0f))
        return;
    /* onto the eps-ball around x, then [0,1] (which only moves a pixel towards x's value) */
    if (norm == AT_NORM_L2) {
        double sq = 0.0;
        for (size_t j = 0; j < image; j++)
            sq += ((double)out[j] - x[j]) * ((double)out[j] - x[j]);
        const double scale = sqrt(sq) > eps ? eps / sqrt(sq) : 1.0;
        for (size_t j = 0; j < image; j++)
            out[j] = x[j] + (float)(scale * ((double)out[j] - x[j]));
    } else {
        for (size_t j = 0; j < image; j++)
            out[j] = fminf(fmaxf(out[j], x[j] - eps), x[j] + eps);
    }
    for (size_t j = 0; j < image; j++)
        out[j] = fminf(fmaxf(out[j], 0.0f), 1.0f);
}

static void augrmixat_defaults(at_train_config *c) { at_attack_presets(c, 10, AT_BN_TRAIN); }

static int augrmixat_setup(at_method_ctx *c, at_error *err)
{
    /* clean, AugMix and mixed views as one batch of 3n rows */
    return at_augmix_views_setup(c, AUGMIX, 3, err);
}

static int augrmixat_step(at_method_ctx *c, const at_batch *b, double *loss)
{
    at_augmix_views *s = c->state;
    const int n = b->n, k = c->num_classes;
    const size_t image = (size_t)n * c->image, logits = (size_t)n * k;
    float *clean = s->x, *aug = s->x + image, *mixed = s->x + 2 * image;
    memcpy(clean, b->x, image * sizeof(float));
    at_augmix_batch(c, b, &s->aug, aug, s->scratch);
    at_batch from = *b;
    if (c->opt[ATTACK_INPUT] == 1)
        from.x = aug;
    int status = at_method_attack(c, &from, c->x_adv);
    if (status)
        return status;
    int ch, h, w;
    at_model_input_shape(c->model, &ch, &h, &w);
    const bool project = c->opt[NO_PROJECT] == 0.0;
    for (int i = 0; i < n; i++) {
        const float eps = project ? (b->eps ? b->eps[i] : c->eps) : -1.0f;
        const size_t at = (size_t)i * c->image;
        at_rmix_example(b->x + at, aug + at, c->x_adv + at, mixed + at, ch, h, w, c->opt[MODE] == 1,
                        c->opt[ALPHA], c->config->norm, eps,
                        i < b->scored ? c->rng : c->rng_unscored);
    }
    if ((status = at_forward(c->train, s->x, 3 * n, AT_BN_TRAIN)))
        return status;
    const float *z = at_pass_logits(c->train);
    const float wm = (float)c->opt[MIXED_WEIGHT], lambda = (float)c->opt[JSD_WEIGHT];
    const double ce = at_method_ce(c, b, z, s->dlogits);
    /* last, so that the training accuracy is the mixed images' */
    const double ce_mixed = at_method_ce(c, b, z + 2 * logits, s->dlogits + 2 * logits);
    const float *const branches[3] = {z, z + logits, z + 2 * logits};
    float *const grads[3] = {c->dlogits, s->dlogits + logits, c->dlogits2};
    const double js = at_loss_jsd(branches, 3, n, b->total, k, b->weight, NULL, grads);
    for (size_t j = 0; j < logits; j++) {
        s->dlogits[j] += lambda * c->dlogits[j];
        s->dlogits[logits + j] *= lambda;
        s->dlogits[2 * logits + j] = wm * s->dlogits[2 * logits + j] + lambda * c->dlogits2[j];
    }
    *loss = ce + wm * ce_mixed + lambda * js;
    return at_backward(c->train, s->dlogits, AT_GRAD_WEIGHTS);
}

const at_method at_method_augrmixat = {
    .name = "augrmixat",
    .description = "AugRmixAT: AugMix + PGD + random mixing, CE(x) + CE(x_mix) + lambda JS "
                   "(reconstruction)",
    .uses = AT_USES_EPS | AT_USES_ATTACK_STEPS | AT_USES_STEP_SIZE | AT_USES_ATTACK_BN,
    .needs = AT_NEEDS_PGD,
    .options = augrmixat_options,
    .n_options = AT_OPTION_LEN(augrmixat_options),
    .defaults = augrmixat_defaults,
    .setup = augrmixat_setup,
    .step = augrmixat_step,
};
