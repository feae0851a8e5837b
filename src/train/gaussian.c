/* gaussian.c: training on Gaussian-noise-augmented images.
 *
 * Two uses of one method:
 *  - the corruption-robustness baseline of Kireev, Andriushchenko and Flammarion ("On the
 *    effectiveness of adversarial training against common corruptions", UAI 2022, section 5 and
 *    their code's `random_gs` attack with `batch_part`): x + sigma N(0, I), clipped to [0, 1], on a
 *    share of each batch (sigma 0.1 on half the batch, their fix for overfitting to one sigma);
 *  - the base classifier of randomized smoothing (Cohen, Rosenfeld and Kolter, "Certified
 *    Adversarial Robustness via Randomized Smoothing", ICML 2019, section 4): noise on every
 *    image and no clipping (`--gauss-part 1 --no-gauss-clip`), sigma the one certified at.
 * The clean rows are the first (1 - part) n of the batch (rounded down, as the reference code),
 * the rest are noisy; batch norm in train mode on the whole batch. */
#include "train/method.h"

#include <math.h>
#include <string.h>

enum { SIGMA, PART, NO_CLIP };
static const at_option_info gaussian_options[] = {
    [SIGMA] = {"gauss-sigma", AT_OPTION_FLOAT, 0, 100, NULL, "0.1",
               "standard deviation of the noise (pixels in [0,1])"},
    [PART] = {"gauss-part", AT_OPTION_FLOAT, 0, 1, NULL, "0.5",
              "share of each batch that gets noise (the rest stays clean)"},
    [NO_CLIP] = {"no-gauss-clip", AT_OPTION_FLAG, 0, 1, NULL, "false",
                 "leave noisy images unclipped (randomized smoothing's training); else clip to [0,1]"},
};

static int gaussian_step(at_method_ctx *c, const at_batch *b, double *loss)
{
    const float sigma = (float)c->opt[SIGMA];
    const bool clip = c->opt[NO_CLIP] == 0.0;
    const int clean = at_clean_rows(b->n, c->opt[PART]);
    memcpy(c->x_adv, b->x, (size_t)b->n * c->image * sizeof(float));
    for (int i = clean; i < b->n; i++) {
        at_rng *rng = i < b->scored ? c->rng : c->rng_unscored;
        float *x = c->x_adv + (size_t)i * c->image;
        for (size_t j = 0; j < c->image; j++) {
            float v = x[j] + sigma * (float)at_rng_normal(rng);
            x[j] = clip ? fminf(fmaxf(v, 0.0f), 1.0f) : v;
        }
    }
    int status = at_forward(c->train, c->x_adv, b->n, AT_BN_TRAIN);
    if (status)
        return status;
    *loss = at_method_ce(c, b, at_pass_logits(c->train), c->dlogits);
    return at_backward(c->train, c->dlogits, AT_GRAD_WEIGHTS);
}

const at_method at_method_gaussian = {
    .name = "gaussian",
    .description = "Gaussian-noise augmentation on part of each batch (Kireev et al., 2022's "
                   "corruption baseline; with --gauss-part 1 --no-gauss-clip the base classifier "
                   "of randomized smoothing, Cohen et al., 2019)",
    .options = gaussian_options,
    .n_options = AT_OPTION_LEN(gaussian_options),
    .step = gaussian_step,
};
