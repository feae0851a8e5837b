/* smoothmix.c: SmoothMix (Jeong, Park, Kim, Lee, Kim and Shin, "SmoothMix: Training
 * Confidence-calibrated Smoothed Classifiers for Certified Robustness", NeurIPS 2021, section 3,
 * eq. (6)-(8), and their code): training of the base classifier of a Gaussian-smoothed classifier
 * (certified by `advtrain certify`) that penalises over-confidence along the adversarial
 * direction of the smoothed classifier.
 *
 * Per batch, m noises delta_k ~ sigma N(0, I) per example, shared by every pass below:
 *  1. adversary (network frozen, batch norm in eval mode): from x^0 = x, T steps of
 *     x^{t+1} = clip(x^t + alpha g / ||g||_2, 0, 1) with g the input gradient of
 *     sum_i -log F_y(x^t_i), F(x) = (1/m) sum_k softmax(f(x + delta_k)) the soft smoothed
 *     classifier (F_y clamped at 1e-20); optionally projected onto the L2 ball of radius
 *     --smoothmix-max-norm around x (0: unbounded, the paper's default). x^ = x^T. The clean side
 *     x_c is x^{mix_step}: x itself for the default mix_step 0, the one-step adversary for 1
 *     (projected onto the ball of radius alpha mix_step w);
 *  2. training (train mode): L_ce = CE of the m noisy copies x_c + delta_k, averaged over the
 *     m n rows; F(x_c) their mean softmax. Per example lambda ~ U[0, 1/2],
 *     x_mix = (1 - lambda) x_c + lambda x^, y_mix = (1 - lambda) F(x_c) + lambda / K (towards the
 *     uniform distribution), L_mix = KL(y_mix || softmax(f(x_mix + delta_k))) per copy, kept only
 *     where arg max F(x_c) = y;
 *     L = L_ce + eta w mean(mask L_mix), w = min(1, (epoch + 1) / warm-up epochs).
 * y_mix is a constant target (stop-gradient), as the paper treats it; the reference code lets a
 * gradient flow through F(x_c) in it. The reference splits each loaded batch of 256 into m chunks
 * with an optimiser step each; here a batch is one chunk (--batch-size 64 with m = 4 is the
 * MNIST recipe). */
#include "train/method.h"

#include <math.h>
#include <string.h>

enum { SIGMA, NOISES, STEPS, ALPHA, ETA, MIX_STEP, WARMUP, MAX_NORM };
static const at_option_info smoothmix_options[] = {
    [SIGMA] = {"smooth-sigma", AT_OPTION_FLOAT, 1e-6, 100, NULL, "0.5",
               "sigma of the Gaussian noise of the smoothed classifier"},
    [NOISES] = {"num-noise", AT_OPTION_INT, 1, 64, NULL, "4", "m: noise draws per example"},
    [STEPS] = {"smoothmix-steps", AT_OPTION_INT, 0, 1000, NULL, NULL,
               "T: adversary steps; preset 2, 4, 8 for sigma 0.25, 0.5, 1 (the paper's MNIST "
               "runs), else 4"},
    [ALPHA] = {"smoothmix-alpha", AT_OPTION_FLOAT, 0, 100, NULL, "1",
               "alpha: the adversary's L2 step (1.0 on MNIST)"},
    [ETA] = {"smoothmix-eta", AT_OPTION_FLOAT, 0, 1e6, NULL, "5", "eta: weight of the mix loss"},
    [MIX_STEP] = {"mix-step", AT_OPTION_INT, 0, 1000, NULL, "0",
                  "clean side of the mixup: the adversary's iterate t (1: the one-step adversary)"},
    [WARMUP] = {"smoothmix-warmup", AT_OPTION_INT, 0, 100000, NULL, "10",
                "epochs of the linear warm-up of eta and the one-step radius (0: none)"},
    [MAX_NORM] = {"smoothmix-max-norm", AT_OPTION_FLOAT, 0, 1e6, NULL, "0",
                  "L2 cap of the adversary around x (0: unbounded, the paper's default)"},
};

typedef struct smoothmix_state {
    int m;
    at_pass *attack, *clean, *mixed; /* [m n] rows each */
    float *noise;     /* [n, m, image] */
    float *noisy;     /* [n m, image] */
    float *x_adv;     /* [n, image]: the iterate */
    float *x_clean;   /* [n, image]: the clean side */
    float *x_mix;     /* [n, image] */
    float *dlogits;   /* [n m, classes] */
    float *probs;     /* [n m, classes] */
    float *smoothed;  /* [n, classes]: F */
    float *target;    /* [n, classes]: y_mix */
    float *grad;      /* [n, image] */
} smoothmix_state;

static void free_state(void *p)
{
    smoothmix_state *s = p;
    if (!s)
        return;
    at_pass_free(s->attack);
    at_pass_free(s->clean);
    at_pass_free(s->mixed);
    float *buffers[] = {s->noise,    s->noisy,    s->x_adv,  s->x_clean, s->x_mix, s->dlogits,
                        s->probs,    s->smoothed, s->target, s->grad};
    for (size_t i = 0; i < sizeof buffers / sizeof buffers[0]; i++)
        at_free(buffers[i]);
    at_free(s);
}

static void smoothmix_defaults(at_train_config *c)
{
    if (!c->attack_bn_given)
        c->attack_bn_mode = AT_BN_EVAL;
}

static int smoothmix_setup(at_method_ctx *c, at_error *err)
{
    if (!c->opt_given[STEPS]) {
        const double sigma = c->opt[SIGMA];
        c->opt[STEPS] = sigma == 0.25 ? 2 : sigma == 1.0 ? 8 : 4;
    }
    if (c->opt[MIX_STEP] > c->opt[STEPS])
        return at_fail(err, AT_ERR_ARG, "option mix-step (%g) is past the adversary's last step "
                                        "(smoothmix-steps %g)", c->opt[MIX_STEP], c->opt[STEPS]);
    smoothmix_state *s = at_alloc(sizeof *s);
    if (!s)
        return at_fail(err, AT_ERR_NOMEM, "out of memory");
    memset(s, 0, sizeof *s);
    c->state = s;
    c->free_state = free_state;
    s->m = (int)c->opt[NOISES];
    const size_t n = (size_t)c->batch, rows = n * (size_t)s->m, k = (size_t)c->num_classes;
    s->noise = at_alloc(rows * c->image * sizeof(float));
    s->noisy = at_alloc(rows * c->image * sizeof(float));
    s->x_adv = at_alloc(n * c->image * sizeof(float));
    s->x_clean = at_alloc(n * c->image * sizeof(float));
    s->x_mix = at_alloc(n * c->image * sizeof(float));
    s->grad = at_alloc(n * c->image * sizeof(float));
    s->dlogits = at_alloc(rows * k * sizeof(float));
    s->probs = at_alloc(rows * k * sizeof(float));
    s->smoothed = at_alloc(n * k * sizeof(float));
    s->target = at_alloc(n * k * sizeof(float));
    if (!s->noise || !s->noisy || !s->x_adv || !s->x_clean || !s->x_mix || !s->grad ||
        !s->dlogits || !s->probs || !s->smoothed || !s->target)
        return at_fail(err, AT_ERR_NOMEM, "out of memory for SmoothMix's %zu noisy rows", rows);
    int status = at_pass_create(&s->attack, c->model, (int)rows, AT_PASS_NO_WEIGHT_GRADS, err);
    if (!status)
        status = at_pass_create(&s->clean, c->model, (int)rows, 0, err);
    if (!status)
        status = at_pass_create(&s->mixed, c->model, (int)rows, 0, err);
    return status;
}

/* The m noisy copies of each of the n images: row i m + k is x_i + delta_ik. */
static void add_noise(const smoothmix_state *s, const float *x, int n, size_t image)
{
    for (int i = 0; i < n; i++)
        for (int k = 0; k < s->m; k++) {
            const size_t row = (size_t)i * s->m + k;
            const float *xi = x + (size_t)i * image, *d = s->noise + row * image;
            float *out = s->noisy + row * image;
            for (size_t j = 0; j < image; j++)
                out[j] = xi[j] + d[j];
        }
}

/* F: the mean softmax of each example's m rows of probs. */
static void smooth(const smoothmix_state *s, int n, int k)
{
    for (int i = 0; i < n; i++) {
        float *f = s->smoothed + (size_t)i * k;
        for (int c = 0; c < k; c++) {
            double sum = 0;
            for (int r = 0; r < s->m; r++)
                sum += s->probs[((size_t)i * s->m + r) * k + c];
            f[c] = (float)(sum / s->m);
        }
    }
}

/* The input gradient of sum_i -log F_y(x_i) at the iterate, summed over each example's copies. */
static int adversary_gradient(at_method_ctx *c, smoothmix_state *s, const at_batch *b)
{
    const int n = b->n, k = c->num_classes, rows = n * s->m;
    add_noise(s, s->x_adv, n, c->image);
    int status = at_forward(s->attack, s->noisy, rows, c->config->attack_bn_mode);
    if (status)
        return status;
    at_softmax_rows(at_pass_logits(s->attack), rows, k, s->probs);
    smooth(s, n, k);
    for (int i = 0; i < n; i++) {
        const int y = b->y[i];
        const float fy = s->smoothed[(size_t)i * k + y];
        /* d(-log F_y)/dz_kj = -(1/m) p_ky (1[j = y] - p_kj) / F_y; none where F_y is clamped */
        const double scale = fy > 1e-20f ? -1.0 / (s->m * (double)fy) : 0.0;
        for (int r = 0; r < s->m; r++) {
            const size_t row = (size_t)i * s->m + r;
            const float *p = s->probs + row * k;
            float *d = s->dlogits + row * k;
            for (int j = 0; j < k; j++)
                d[j] = (float)(scale * p[y] * ((j == y) - p[j]));
        }
    }
    if ((status = at_backward(s->attack, s->dlogits, AT_GRAD_INPUT)))
        return status;
    const float *g = at_pass_input_grad(s->attack);
    memset(s->grad, 0, (size_t)n * c->image * sizeof(float));
    for (int row = 0; row < rows; row++) {
        float *gi = s->grad + (size_t)(row / s->m) * c->image;
        for (size_t j = 0; j < c->image; j++)
            gi[j] += g[(size_t)row * c->image + j];
    }
    return AT_OK;
}

/* Projects x' onto the L2 ball of `radius` around x (radius 0: no projection). */
static void project_l2(float *xp, const float *x, size_t image, double radius)
{
    if (radius <= 0)
        return;
    double sq = 0;
    for (size_t j = 0; j < image; j++)
        sq += (double)(xp[j] - x[j]) * (xp[j] - x[j]);
    if (sq <= radius * radius)
        return;
    const float scale = (float)(radius / sqrt(sq));
    for (size_t j = 0; j < image; j++)
        xp[j] = x[j] + scale * (xp[j] - x[j]);
}

static int adversary(at_method_ctx *c, smoothmix_state *s, const at_batch *b, double w)
{
    const size_t size = (size_t)b->n * c->image;
    const int steps = (int)c->opt[STEPS], mix_step = (int)c->opt[MIX_STEP];
    const double alpha = c->opt[ALPHA];
    memcpy(s->x_adv, b->x, size * sizeof(float));
    memcpy(s->x_clean, b->x, size * sizeof(float));
    for (int t = 0; t < steps; t++) {
        int status = adversary_gradient(c, s, b);
        if (status)
            return status;
        for (int i = 0; i < b->n; i++) {
            float *xi = s->x_adv + (size_t)i * c->image;
            const float *gi = s->grad + (size_t)i * c->image, *x0 = b->x + (size_t)i * c->image;
            double sq = 0;
            for (size_t j = 0; j < c->image; j++)
                sq += (double)gi[j] * gi[j];
            const float step = sq > 0 ? (float)(alpha / sqrt(sq)) : 0.0f;
            for (size_t j = 0; j < c->image; j++)
                xi[j] += step * gi[j];
            project_l2(xi, x0, c->image, c->opt[MAX_NORM]);
            for (size_t j = 0; j < c->image; j++)
                xi[j] = fminf(fmaxf(xi[j], 0.0f), 1.0f);
        }
        if (t + 1 == mix_step) {
            memcpy(s->x_clean, s->x_adv, size * sizeof(float));
            for (int i = 0; i < b->n; i++)
                project_l2(s->x_clean + (size_t)i * c->image, b->x + (size_t)i * c->image,
                           c->image, alpha * mix_step * w);
        }
    }
    return AT_OK;
}

static int smoothmix_step(at_method_ctx *c, const at_batch *b, double *loss)
{
    smoothmix_state *s = c->state;
    const int n = b->n, k = c->num_classes, rows = n * s->m;
    const int mean_rows = b->total * s->m; /* the divisor of the means: the global batch's */
    const float sigma = (float)c->opt[SIGMA];
    const double warmup = c->opt[WARMUP];
    const double w = warmup > 0 ? fmin(1.0, (c->epoch + 1) / warmup) : 1.0;
    const double eta = c->opt[ETA] * w;

    for (int i = 0; i < n; i++) {
        at_rng *rng = i < b->scored ? c->rng : c->rng_unscored;
        float *d = s->noise + (size_t)i * s->m * c->image;
        for (size_t j = 0; j < (size_t)s->m * c->image; j++)
            d[j] = sigma * (float)at_rng_normal(rng);
    }
    int status = adversary(c, s, b, w);
    if (status)
        return status;

    /* the clean side's noisy copies: cross-entropy, and the smoothed prediction F(x_c) */
    add_noise(s, s->x_clean, n, c->image);
    if ((status = at_forward(s->clean, s->noisy, rows, AT_BN_TRAIN)))
        return status;
    const float *zc = at_pass_logits(s->clean);
    at_softmax_rows(zc, rows, k, s->probs);
    smooth(s, n, k);
    double ce = 0.0;
    for (int i = 0; i < n; i++) {
        const double weight = b->weight ? b->weight[i] : 1.0;
        for (int r = 0; r < s->m; r++) {
            const size_t row = (size_t)i * s->m + r;
            const float *p = s->probs + row * k;
            float *d = s->dlogits + row * k;
            ce -= weight * log(fmax(p[b->y[i]], 1e-30));
            for (int j = 0; j < k; j++)
                d[j] = (float)(weight * (p[j] - (j == b->y[i])) / mean_rows);
        }
    }
    if ((status = at_backward(s->clean, s->dlogits, AT_GRAD_WEIGHTS)))
        return status;

    /* the mixed points, their targets and the mask of examples the smoothed model gets right */
    for (int i = 0; i < n; i++) {
        at_rng *rng = i < b->scored ? c->rng : c->rng_unscored;
        const float lambda = 0.5f * (float)at_rng_uniform(rng);
        const float *xc = s->x_clean + (size_t)i * c->image, *xa = s->x_adv + (size_t)i * c->image;
        float *xm = s->x_mix + (size_t)i * c->image;
        for (size_t j = 0; j < c->image; j++)
            xm[j] = (1.0f - lambda) * xc[j] + lambda * xa[j];
        const float *f = s->smoothed + (size_t)i * k;
        float *t = s->target + (size_t)i * k;
        int top = 0;
        for (int j = 0; j < k; j++) {
            t[j] = (1.0f - lambda) * f[j] + lambda / (float)k;
            if (f[j] > f[top])
                top = j;
        }
        c->correct[i] = top == b->y[i];
    }
    add_noise(s, s->x_mix, n, c->image);
    if ((status = at_forward(s->mixed, s->noisy, rows, AT_BN_TRAIN)))
        return status;
    at_softmax_rows(at_pass_logits(s->mixed), rows, k, s->probs);
    double mix = 0.0;
    for (int i = 0; i < n; i++) {
        const double weight = (b->weight ? b->weight[i] : 1.0) * c->correct[i];
        const float *t = s->target + (size_t)i * k;
        for (int r = 0; r < s->m; r++) {
            const size_t row = (size_t)i * s->m + r;
            const float *q = s->probs + row * k;
            float *d = s->dlogits + row * k;
            for (int j = 0; j < k; j++) {
                if (t[j] > 0)
                    mix += weight * t[j] * (log(t[j]) - log(fmax(q[j], 1e-30)));
                /* d KL(t || softmax(z)) / dz = softmax(z) - t */
                d[j] = (float)(eta * weight * (q[j] - t[j]) / mean_rows);
            }
        }
    }
    if ((status = at_backward(s->mixed, s->dlogits, AT_GRAD_WEIGHTS)))
        return status;
    *loss = (ce + eta * mix) / mean_rows;
    return AT_OK;
}

const at_method at_method_smoothmix = {
    .name = "smoothmix",
    .description = "SmoothMix: Gaussian-noise training with a mixup along the smoothed "
                   "classifier's adversarial direction towards uniform confidence (Jeong et al., "
                   "2021); certify with advtrain certify",
    .uses = AT_USES_ATTACK_BN,
    .options = smoothmix_options,
    .n_options = AT_OPTION_LEN(smoothmix_options),
    .defaults = smoothmix_defaults,
    .setup = smoothmix_setup,
    .hard_labels_only = true,
    .step = smoothmix_step,
};
