/* jsigr.c: J-SIGR, Jacobian norm plus selective input-gradient regularisation (Liu, Wu, Zhao,
 * Boussaid, Bennamoun and Xie, "Jacobian Norm with Selective Input Gradient Regularization for
 * Improved and Interpretable Adversarial Defense", arXiv 2207.13036). A reconstruction from the
 * abstract (the entry's section 10.3); every unchecked detail is an option:
 *
 *   L = CE(f(x), y) + lambda_J ||J_f(x)||_F^2 + lambda_S ||M(x) . grad_x CE(f(x), y)||^2
 *
 * - ||J||_F^2 by random projections (Hoffman, Roberts and Yaida, "Robust Learning with Jacobian
 *   Regularization", 2019, eq. 7): with v uniform on the unit sphere of the K logits,
 *   ||J||_F^2 = K E_v ||v^T J||^2, and v^T J is one backward pass of v . logits.
 * - M(x) is 1 on the pixels judged irrelevant by a perturbation saliency map: each patch of the
 *   image is occluded (set to 0) in turn, and the patches whose occlusion changes the example's
 *   loss least (a share --mask-fraction of them) form M. The penalty keeps the input gradient off
 *   them, as "right for the right reasons" (Ross and Doshi-Velez, 2017) does with given masks.
 *
 * Both penalties are squared norms of input gradients u = grad_x phi (phi = the batch's summed
 * loss, or v . logits); their weight gradient needs double backpropagation. We use the
 * finite-difference form (Finlay and Oberman, 2019): with a fixed direction D (u weighted per
 * example, times M),
 *   grad_theta (D . u) = grad_theta d/dt phi(x + t D) ~ (||D|| / h) [grad_theta phi(x + h D/||D||)
 *                                                                  - grad_theta phi(x)],
 * two extra passes per penalty. The shifted pass follows x's activation pattern
 * (at_pass_freeze_pattern: x's ReLU masks and max-pool winners): double backpropagation treats
 * those as constants, and a shifted pass with its own pattern would cross kinks, whose jumps the
 * quotient divides by h (relative errors of 1 to 400 on SmallCNN). Following the pattern,
 * ReLUs and max-pools act linearly, so the difference is exact up to the curvature of the smooth
 * parts (the softmax of the cross-entropy, batch norm), an O(h) error (none for the Jacobian
 * term of a network without batch norm: v . logits is then linear in x), plus float rounding,
 * which grows as 1/h; docs/RESULTS.md measures both against PyTorch's double backpropagation,
 * and the preset step sits between them. The direction spans the whole batch,
 * so the identity holds even when batch norm couples the examples. The grad_theta phi(x) terms
 * join the cross-entropy's gradient in one backward pass at x. With both weights 0 the step is
 * standard training's. */
#include "train/method.h"

#include <math.h>
#include <string.h>

enum { JACOBIAN, SELECTIVE, PROJECTIONS, FD_STEP, MASK_FRACTION, PATCH };
static const at_option_info jsigr_options[] = {
    [JACOBIAN] = {"jacobian-weight", AT_OPTION_FLOAT, 0, 1e6, NULL, "0.01",
                  "weight of ||J||_F^2 (Hoffman et al.'s MNIST value) [reconstruction]"},
    [SELECTIVE] = {"selective-weight", AT_OPTION_FLOAT, 0, 1e6, NULL, "1",
                   "weight of the masked input-gradient penalty [reconstruction]"},
    [PROJECTIONS] = {"projections", AT_OPTION_INT, 1, 64, NULL, "1",
                     "random projections per batch for ||J||_F^2 (Hoffman et al.: 1)"},
    [FD_STEP] = {"fd-step", AT_OPTION_FLOAT, 1e-7, 1, NULL, "1e-3",
                 "finite-difference step of double backprop, per example (root mean square); "
                 "docs/RESULTS.md measures its error"},
    [MASK_FRACTION] = {"mask-fraction", AT_OPTION_FLOAT, 0, 1, NULL, "0.5",
                       "share of occlusion patches judged irrelevant and penalised (1: every "
                       "pixel, no saliency passes) [reconstruction]"},
    [PATCH] = {"occlusion-patch", AT_OPTION_INT, 1, 1024, NULL, "7",
               "side of the occluded square patches of the saliency map [reconstruction]"},
};

typedef struct jsigr_state {
    float *grad;      /* [batch, image]: an input gradient u */
    float *mask;      /* [batch, image]: M, 0 or 1 */
    float *v;         /* [batch, classes]: a projection per example */
    float *base_loss; /* [batch] and occluded losses [batch] */
    float *patch_loss;
    float *saliency;  /* [batch, patches] */
    int patches_x, patches_y;
} jsigr_state;

static void free_state(void *state)
{
    jsigr_state *s = state;
    if (!s)
        return;
    at_free(s->grad);
    at_free(s->mask);
    at_free(s->v);
    at_free(s->base_loss);
    at_free(s->patch_loss);
    at_free(s->saliency);
    at_free(s);
}

static int jsigr_setup(at_method_ctx *c, at_error *err)
{
    jsigr_state *s = at_alloc(sizeof *s);
    if (!s)
        return at_fail(err, AT_ERR_NOMEM, "out of memory");
    c->state = s;
    c->free_state = free_state;
    int channels, height, width;
    at_model_input_shape(c->model, &channels, &height, &width);
    const int patch = (int)c->opt[PATCH];
    if (patch > height || patch > width)
        return at_fail(err, AT_ERR_ARG, "occlusion-patch %d is larger than the %dx%d image",
                       patch, height, width);
    s->patches_y = (height + patch - 1) / patch;
    s->patches_x = (width + patch - 1) / patch;
    const size_t n = (size_t)c->batch;
    s->grad = at_alloc(n * c->image * sizeof(float));
    s->mask = at_alloc(n * c->image * sizeof(float));
    s->v = at_alloc(n * (size_t)c->num_classes * sizeof(float));
    s->base_loss = at_alloc(n * sizeof(float));
    s->patch_loss = at_alloc(n * sizeof(float));
    s->saliency = at_alloc(n * (size_t)(s->patches_x * s->patches_y) * sizeof(float));
    if (!s->grad || !s->mask || !s->v || !s->base_loss || !s->patch_loss || !s->saliency)
        return at_fail(err, AT_ERR_NOMEM, "out of memory for J-SIGR buffers");
    return AT_OK;
}

/* Per-example cross-entropy of the batch's targets, unweighted (for the saliency map). */
static int example_losses(at_method_ctx *c, const at_batch *b, const float *x, float *out)
{
    int status = at_forward(c->attack_pass, x, b->n, AT_BN_BATCH_STATS);
    if (status)
        return status;
    at_ce_target t = {.labels = b->soft ? NULL : b->y, .soft_targets = b->soft};
    at_loss_cross_entropy(at_pass_logits(c->attack_pass), b->n, c->num_classes, &t, out, NULL);
    return AT_OK;
}

/* M: per example, the share `fraction` of patches whose occlusion moves the loss least. */
static int saliency_mask(at_method_ctx *c, const at_batch *b, float fraction)
{
    jsigr_state *s = c->state;
    const int n = b->n, patches = s->patches_x * s->patches_y, patch = (int)c->opt[PATCH];
    if (fraction >= 1.0f) {
        for (size_t j = 0; j < (size_t)n * c->image; j++)
            s->mask[j] = 1.0f;
        return AT_OK;
    }
    int channels, height, width;
    at_model_input_shape(c->model, &channels, &height, &width);
    int status = example_losses(c, b, b->x, s->base_loss);
    for (int q = 0; q < patches && !status; q++) {
        const int y0 = (q / s->patches_x) * patch, x0 = (q % s->patches_x) * patch;
        memcpy(c->x_adv, b->x, (size_t)n * c->image * sizeof(float));
        for (int i = 0; i < n; i++)
            for (int ch = 0; ch < channels; ch++)
                for (int y = y0; y < y0 + patch && y < height; y++)
                    for (int x = x0; x < x0 + patch && x < width; x++)
                        c->x_adv[(size_t)i * c->image + ((size_t)ch * height + y) * width + x] = 0;
        status = example_losses(c, b, c->x_adv, s->patch_loss);
        for (int i = 0; i < n; i++)
            s->saliency[(size_t)i * patches + q] = fabsf(s->patch_loss[i] - s->base_loss[i]);
    }
    if (status)
        return status;
    const int masked = (int)lroundf(fraction * (float)patches);
    for (int i = 0; i < n; i++) {
        float *mask = s->mask + (size_t)i * c->image;
        const float *sal = s->saliency + (size_t)i * patches;
        memset(mask, 0, c->image * sizeof(float));
        /* patch q is masked when fewer than `masked` patches are less salient (ties by index) */
        for (int q = 0; q < patches; q++) {
            int below = 0;
            for (int r = 0; r < patches; r++)
                below += sal[r] < sal[q] || (sal[r] == sal[q] && r < q);
            if (below >= masked)
                continue;
            const int y0 = (q / s->patches_x) * patch, x0 = (q % s->patches_x) * patch;
            for (int ch = 0; ch < channels; ch++)
                for (int y = y0; y < y0 + patch && y < height; y++)
                    for (int x = x0; x < x0 + patch && x < width; x++)
                        mask[((size_t)ch * height + y) * width + x] = 1.0f;
        }
    }
    return AT_OK;
}

/* The finite-difference weight gradient of one penalty: D = (weights . mask . u) over the batch;
 * adds scale (||D|| / h) grad_theta phi(x + h D/||D||) (phi's logit gradient times `dphi` at the
 * shifted point, computed by `shifted_dlogits`) and subtracts the same at x from dlogits_x. */
typedef void (*phi_dlogits)(at_method_ctx *c, const at_batch *b, const float *logits, float *out);

static void ce_sum_dlogits(at_method_ctx *c, const at_batch *b, const float *logits, float *out)
{
    /* d/dz of sum_i CE_i (unweighted): softmax - target per row */
    at_ce_target t = {.labels = b->soft ? NULL : b->y, .soft_targets = b->soft};
    at_loss_cross_entropy(logits, b->n, c->num_classes, &t, NULL, out);
    for (size_t j = 0; j < (size_t)b->n * c->num_classes; j++)
        out[j] *= (float)b->n;
}

static void projection_dlogits(at_method_ctx *c, const at_batch *b, const float *logits,
                               float *out)
{
    (void)logits;
    jsigr_state *s = c->state;
    memcpy(out, s->v, (size_t)b->n * c->num_classes * sizeof(float));
}

static int penalty_gradient(at_method_ctx *c, const at_batch *b, const float *u, bool masked,
                            double scale, phi_dlogits dphi, double *value)
{
    jsigr_state *s = c->state;
    const int n = b->n, k = c->num_classes;
    const size_t image = c->image;
    float *direction = c->dir;
    double norm2 = 0.0, penalty = 0.0;
    for (int i = 0; i < n; i++) {
        const double w = b->weight ? b->weight[i] : 1.0;
        double example = 0.0;
        for (size_t j = (size_t)i * image; j < (size_t)(i + 1) * image; j++) {
            const float mu = masked ? s->mask[j] * u[j] : u[j];
            example += (double)mu * mu;
            direction[j] = (float)w * (masked ? s->mask[j] * mu : mu);
            norm2 += (double)direction[j] * direction[j];
        }
        penalty += w * example;
    }
    *value = penalty / b->total;
    if (norm2 == 0.0)
        return AT_OK;
    /* the batch moves by h sqrt(n) along its unit direction: h per example (root mean square),
     * whatever the batch size */
    const double norm = sqrt(norm2), h = c->opt[FD_STEP] * sqrt((double)n);
    for (size_t j = 0; j < (size_t)n * image; j++)
        c->x_adv[j] = b->x[j] + (float)(h / norm) * direction[j];
    int status = at_forward(c->clean, c->x_adv, n, AT_BN_BATCH_STATS);
    if (status)
        return status;
    /* d/dtheta of the batch mean (1/total) sum w |M u|^2 is (2/total) d/dtheta (D . u); the
     * shards' finite differences (each its own D and step h) sum to the whole batch's */
    const float factor = (float)(scale * 2.0 / b->total * norm / h);
    dphi(c, b, at_pass_logits(c->clean), c->dlogits2);
    for (size_t j = 0; j < (size_t)n * k; j++)
        c->dlogits2[j] *= factor;
    if ((status = at_backward(c->clean, c->dlogits2, AT_GRAD_WEIGHTS)))
        return status;
    dphi(c, b, at_pass_logits(c->attack_pass), c->dlogits2);
    for (size_t j = 0; j < (size_t)n * k; j++)
        c->dlogits[j] -= factor * c->dlogits2[j];
    return AT_OK;
}

/* v uniform on the unit sphere of R^K for each example (a normalised Gaussian) */
static void draw_projections(at_method_ctx *c, int n)
{
    jsigr_state *s = c->state;
    const int k = c->num_classes;
    for (int i = 0; i < n; i++) {
        float *v = s->v + (size_t)i * k;
        double norm2 = 0.0;
        for (int j = 0; j < k; j++) {
            v[j] = (float)at_rng_normal(c->rng);
            norm2 += (double)v[j] * v[j];
        }
        const float inv = (float)(1.0 / sqrt(norm2));
        for (int j = 0; j < k; j++)
            v[j] *= inv;
    }
}

static int penalised_step(at_method_ctx *c, const at_batch *b, double *loss)
{
    jsigr_state *s = c->state;
    const int n = b->n, k = c->num_classes, projections = (int)c->opt[PROJECTIONS];
    const double lambda_j = c->opt[JACOBIAN], lambda_s = c->opt[SELECTIVE];
    int status = at_forward(c->train, b->x, n, AT_BN_TRAIN);
    if (status)
        return status;
    *loss = at_method_ce(c, b, at_pass_logits(c->train), c->dlogits);
    if (lambda_s > 0.0) {
        if ((status = saliency_mask(c, b, (float)c->opt[MASK_FRACTION])))
            return status;
    }
    if (lambda_j > 0.0 || lambda_s > 0.0) {
        /* input gradients at x, in a pass of its own that keeps x's forward for every backward;
         * the shifted passes follow its activation pattern (after the saliency map's forwards) */
        if ((status = at_forward(c->attack_pass, b->x, n, AT_BN_BATCH_STATS)) ||
            (status = at_pass_freeze_pattern(c->clean, c->attack_pass)))
            return status;
    }
    if (lambda_s > 0.0) {
        ce_sum_dlogits(c, b, at_pass_logits(c->attack_pass), c->dlogits2);
        if ((status = at_backward(c->attack_pass, c->dlogits2, AT_GRAD_INPUT)))
            return status;
        memcpy(s->grad, at_pass_input_grad(c->attack_pass), (size_t)n * c->image * sizeof(float));
        double penalty;
        if ((status = penalty_gradient(c, b, s->grad, true, lambda_s, ce_sum_dlogits, &penalty)))
            return status;
        *loss += lambda_s * penalty;
    }
    for (int p = 0; lambda_j > 0.0 && p < projections; p++) {
        draw_projections(c, n);
        if ((status = at_backward(c->attack_pass, s->v, AT_GRAD_INPUT)))
            return status;
        memcpy(s->grad, at_pass_input_grad(c->attack_pass), (size_t)n * c->image * sizeof(float));
        /* ||J||_F^2 ~ (K / P) sum_p ||v_p^T J||^2 */
        const double scale = lambda_j * k / projections;
        double penalty;
        if ((status = penalty_gradient(c, b, s->grad, false, scale, projection_dlogits, &penalty)))
            return status;
        *loss += scale * penalty;
    }
    return at_backward(c->train, c->dlogits, AT_GRAD_WEIGHTS);
}

static int jsigr_step(at_method_ctx *c, const at_batch *b, double *loss)
{
    const int status = penalised_step(c, b, loss);
    at_pass_freeze_pattern(c->clean, NULL); /* c->clean is a plain pass again */
    return status;
}

const at_method at_method_jsigr = {
    .name = "jsigr",
    .description = "J-SIGR: CE + Jacobian norm (random projections) + input gradient penalised "
                   "on occlusion-irrelevant pixels, double backprop by finite differences (Liu "
                   "et al., 2022; reconstruction)",
    .needs = AT_NEEDS_CLEAN_PASS | AT_NEEDS_ATTACK_PASS,
    .options = jsigr_options,
    .n_options = AT_OPTION_LEN(jsigr_options),
    .setup = jsigr_setup,
    .step = jsigr_step,
};
