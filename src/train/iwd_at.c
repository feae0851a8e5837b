/* iwd_at.c: adversarial training against the internal Wasserstein distance attack (Wang et al.,
 * "Internal Wasserstein Distance for Adversarial Attack and Defense", arXiv 2103.07598, the IWD
 * defence). No code was published; this is a reconstruction whose details are options: per batch
 * the IWD attack (iwd.c: ascent on CE(f(x'), y) - lambda IWD(x, x'), a few signed steps inside an
 * optional pixel bound) crafts x'_IWD on the model with its weights fixed, and the PGD attack of
 * pgd-at crafts x'_PGD in the eps-ball (both with batch norm in the attack's mode); then
 *     L = (w_clean CE(x) + CE(x'_IWD) + CE(x'_PGD)) / (w_clean + 2)
 * (w_clean is iwd-clean-weight; iwd-no-pgd leaves out the last term and the denominator's 1),
 * each term the batch mean of its own forward pass in train mode, their weight gradients summed.
 * A weighted mean, not the sum: the sum is a single CE's step taken three times over, and at
 * pgd-at's learning rate (0.05) SmallCNN on 20,000 Fashion-MNIST images stayed at chance for two
 * epochs with it (docs/RESULTS.md, the IWD section). */
#include "train/method.h"

#include "attack/attack.h"

enum { LAMBDA, STEPS, STEP, PIXEL, PATCH, STRIDE, SAMPLES, REG, ITERS, CLEAN, NO_PGD };
static const at_option_info iwd_at_options[] = {
    [LAMBDA] = {"iwd-lambda", AT_OPTION_FLOAT, 1e-9, 1e9, NULL, "10",
                "lambda: weight of the IWD in the training attack's objective [reconstruction]"},
    [STEPS] = {"iwd-steps", AT_OPTION_INT, 1, 1000, NULL, "5",
               "steps of the training IWD attack [reconstruction]"},
    [STEP] = {"iwd-step-size", AT_OPTION_FLOAT, 1e-9, 1, NULL, "0.1",
              "signed step of the training IWD attack [reconstruction]"},
    [PIXEL] = {"iwd-pixel-eps", AT_OPTION_FLOAT, 1e-9, 1, NULL, "0.3",
               "Linf pixel bound of the training IWD attack (1: none) [reconstruction]"},
    [PATCH] = {"iwd-patch", AT_OPTION_INT, 1, 64, NULL, "3",
               "side of the IWD's patches [reconstruction]"},
    [STRIDE] = {"iwd-stride", AT_OPTION_INT, 1, 64, NULL, "2",
                "stride between patch positions [reconstruction]"},
    [SAMPLES] = {"iwd-samples", AT_OPTION_INT, 2, 4096, NULL, "64",
                 "patch positions kept per image, a random subset when there are more "
                 "[reconstruction]"},
    [REG] = {"iwd-reg", AT_OPTION_FLOAT, 1e-6, 100, NULL, "0.01",
             "Sinkhorn's eps on the per-pixel squared patch cost [reconstruction]"},
    [ITERS] = {"iwd-iters", AT_OPTION_INT, 1, 100000, NULL, "20",
               "Sinkhorn iterations [reconstruction]"},
    [CLEAN] = {"iwd-clean-weight", AT_OPTION_FLOAT, 0, 1e6, NULL, "1",
               "weight of the clean cross-entropy (0: none) [reconstruction]"},
    [NO_PGD] = {"iwd-no-pgd", AT_OPTION_FLAG, 0, 1, NULL, "false",
                "leave out the cross-entropy of the PGD example in the eps-ball [reconstruction]"},
};

typedef struct iwd_at_state {
    at_attack *attack;
    float *x_iwd; /* [batch, image] */
} iwd_at_state;

static void free_state(void *p)
{
    iwd_at_state *s = p;
    if (!s)
        return;
    at_attack_free(s->attack);
    at_free(s->x_iwd);
    at_free(s);
}

static void iwd_at_defaults(at_train_config *c) { at_attack_presets(c, 10, AT_BN_TRAIN); }

static int iwd_at_setup(at_method_ctx *c, at_error *err)
{
    iwd_at_state *s = at_alloc(sizeof *s);
    if (!s)
        return at_fail(err, AT_ERR_NOMEM, "out of memory");
    c->state = s;
    c->free_state = free_state;
    const double *v = c->opt;
    at_attack_options o = {
        .norm = AT_NORM_LINF,
        .eps = (float)v[PIXEL],
        .steps = (int)v[STEPS],
        .step_size = (float)v[STEP],
        .loss = AT_ATTACK_LOSS_CE,
        .bn_mode = c->config->attack_bn_mode,
        .iwd = {.patch = (int)v[PATCH], .stride = (int)v[STRIDE], .samples = (int)v[SAMPLES],
                .reg = (float)v[REG], .iters = (int)v[ITERS]},
        .iwd_lambda = (float)v[LAMBDA],
    };
    int status = at_attack_create(&s->attack, "iwd", c->model, c->batch, &o, err);
    if (status)
        return status;
    s->x_iwd = at_alloc((size_t)c->batch * c->image * sizeof(float));
    if (!s->x_iwd)
        return at_fail(err, AT_ERR_NOMEM, "out of memory for iwd-at buffers");
    return AT_OK;
}

/* Adds w CE(f(x)) of the batch to the weight gradients and to *loss. */
static int ce_term(at_method_ctx *c, const at_batch *b, const float *x, double w, double *loss)
{
    int status = at_forward(c->train, x, b->n, AT_BN_TRAIN);
    if (status)
        return status;
    *loss += w * at_method_ce(c, b, at_pass_logits(c->train), c->dlogits);
    if (w != 1.0)
        for (size_t j = 0; j < (size_t)b->n * c->num_classes; j++)
            c->dlogits[j] *= (float)w;
    return at_backward(c->train, c->dlogits, AT_GRAD_WEIGHTS);
}

static int iwd_at_step(at_method_ctx *c, const at_batch *b, double *loss)
{
    iwd_at_state *s = c->state;
    for (int i = 0; i < b->n; i++)
        c->seeds[i] = at_rng_next(i < b->scored ? c->rng : c->rng_unscored);
    s->attack->soft_targets = b->soft;
    int status = at_attack_run(s->attack, b->x, b->y, NULL, b->n, c->seeds, s->x_iwd, NULL);
    s->attack->soft_targets = NULL;
    if (status)
        return status;
    const bool pgd = c->opt[NO_PGD] == 0.0;
    if (pgd && (status = at_method_attack(c, b, c->x_adv)))
        return status;
    const double total = c->opt[CLEAN] + 1.0 + (pgd ? 1.0 : 0.0);
    *loss = 0.0;
    if (c->opt[CLEAN] > 0.0 && (status = ce_term(c, b, b->x, c->opt[CLEAN] / total, loss)))
        return status;
    if (pgd && (status = ce_term(c, b, c->x_adv, 1.0 / total, loss)))
        return status;
    /* last, so that ctx->correct marks the IWD examples */
    return ce_term(c, b, s->x_iwd, 1.0 / total, loss);
}

const at_method at_method_iwd_at = {
    .name = "iwd-at",
    .description = "adversarial training on IWD-attack and PGD examples (Wang et al., 2021; "
                   "reconstruction)",
    .uses = AT_USES_EPS | AT_USES_ATTACK_STEPS | AT_USES_STEP_SIZE | AT_USES_ATTACK_BN,
    .needs = AT_NEEDS_PGD,
    .options = iwd_at_options,
    .n_options = AT_OPTION_LEN(iwd_at_options),
    .defaults = iwd_at_defaults,
    .step = iwd_at_step,
    .setup = iwd_at_setup,
};
