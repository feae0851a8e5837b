/* fgsm_sdi.c: FGSM-SDI, fast adversarial training from a learnable, sample-dependent
 * initialisation (Jia, Zhang, Wu, Wang and Cao, "Boosting Fast Adversarial Training with
 * Learnable Adversarial Initialization", IEEE TIP 31, 2022; the entry's section 4.3, from the
 * authors' code). A generator g sees the image and the sign of its input gradient g0 and
 * proposes the start eta0 = eps tanh(g(x, sign g0)); one FGSM step from there is the example:
 *
 *   x1 = x + eta0,  eta = clip(eta0 + alpha sign(grad_x CE(f(x1), y)), -eps, eps),  x' = x + eta.
 *
 * The classifier minimises the label-smoothed cross-entropy LS-CE(f(x'), y) every batch; every
 * `sdi-period` batches first the generator maximises the same loss, by Adam on its weights: the
 * classifier's input gradient at x' flows back through the clip (where it does not saturate;
 * the sign is a constant, no second derivative) into the generator's output and weights.
 *
 * Differences from the code, each on purpose: x1 and x' are clipped to [0,1] (our threat model
 * keeps images valid; the code normalises and does not clip); the generator learns after every
 * `period` batches, not at batch 0, so that with a period longer than the run it never changes
 * (the zero generator is then FGSM from a zero start); its learning rate is constant (the code
 * decays it at the classifier's milestones). The generator checkpoints beside the classifier as
 * "generator.*". */
#include "train/method.h"

#include <math.h>
#include <string.h>

enum { PERIOD, SMOOTHING, GEN_LR, GEN_DECAY, FEATURES, GEN_OPTIMIZER, GEN_INIT };
static const at_option_info sdi_options[] = {
    [PERIOD] = {"sdi-period", AT_OPTION_INT, 1, 1e9, NULL, "20",
                "the generator learns after every N classifier batches (the code's att_num)"},
    [SMOOTHING] = {"smoothing-factor", AT_OPTION_FLOAT, 0, 1, NULL, "0.9",
                   "label smoothing of both losses: the share of the true class (1: plain CE)"},
    [GEN_LR] = {"generator-lr", AT_OPTION_FLOAT, 0, 10, NULL, "1e-3",
                "the generator's learning rate (constant)"},
    [GEN_DECAY] = {"generator-weight-decay", AT_OPTION_FLOAT, 0, 1, NULL, "5e-4",
                   "the generator's weight decay (L2 in the gradient, as torch.optim.Adam)"},
    [FEATURES] = {"generator-width", AT_OPTION_INT, 1, 1024, NULL, "64",
                  "feature maps of the generator's convolutions"},
    [GEN_OPTIMIZER] = {"generator-optimizer", AT_OPTION_CHOICE, 0, 1, "adam|sgd", "adam",
                       "the generator's optimiser (sgd: plain gradient steps)"},
    [GEN_INIT] = {"generator-init", AT_OPTION_CHOICE, 0, 1, "random|zero", "random",
                  "the generator's last convolution: PyTorch's initialisation, or 0 (start "
                  "from plain FGSM)"},
};

typedef struct sdi_state {
    at_aux_net *generator;
    float *input;    /* [batch, 2 x channels, h, w]: x, then sign(g0) */
    float *eta0;     /* [batch, image]: the generator's start */
    float *x1;       /* [batch, image]: x + eta0 in [0,1] */
    float *passes;   /* [batch, image]: 1 where d x' / d eta0 is 1 (neither clip saturates) */
    float *dout;     /* [batch, image]: gradient at the generator's output */
} sdi_state;

static void free_state(void *state)
{
    sdi_state *s = state;
    if (!s)
        return;
    at_free(s->input);
    at_free(s->eta0);
    at_free(s->x1);
    at_free(s->passes);
    at_free(s->dout);
    at_free(s);
}

int at_sdi_generator(at_model **out, int channels, int height, int width, int features,
                     bool zero_last, uint64_t seed, at_error *err)
{
    at_model *g;
    int status = at_model_begin(&g, 2 * channels, height, width, err);
    if (status)
        return status;
    /* conv-BN-ReLU, a residual block of (BN, PReLU, conv) twice on BN without affine
     * parameters, BN, conv to the image's channels, tanh (entry 4.3) */
    int x = at_add_conv2d(g, 0, "conv1", features, 3, 1, 1, false);
    x = at_add_batchnorm2d(g, x, "bn1");
    x = at_add_relu(g, x);
    int h = at_add_batchnorm2d_affine(g, x, "block.bn1", false);
    h = at_add_prelu(g, h, "block.prelu1", 1);
    h = at_add_conv2d(g, h, "block.conv1", features, 3, 1, 1, false);
    h = at_add_batchnorm2d_affine(g, h, "block.bn2", false);
    h = at_add_prelu(g, h, "block.prelu2", 1);
    h = at_add_conv2d(g, h, "block.conv2", features, 3, 1, 1, false);
    x = at_add_add(g, x, h);
    x = at_add_batchnorm2d_affine(g, x, "bn2", false);
    x = at_add_conv2d(g, x, "conv2", channels, 3, 1, 1, true);
    x = at_add_tanh(g, x);
    at_add_flatten(g, x); /* a model's output is a vector: the image's pixels in NCHW order */
    if ((status = at_model_finish(g, seed, err))) {
        at_model_free(g);
        return status;
    }
    for (int i = 0; zero_last && i < at_model_tensor_count(g); i++) {
        at_tensor_info t = at_model_tensor(g, i);
        if (!strncmp(t.name, "conv2.", 6))
            memset(t.data, 0, t.numel * sizeof(float));
    }
    *out = g;
    return AT_OK;
}

static int sdi_setup(at_method_ctx *c, at_error *err)
{
    if (c->config->norm != AT_NORM_LINF)
        return at_fail(err, AT_ERR_ARG, "method fgsm-sdi is an L-inf method (--norm linf)");
    sdi_state *s = at_alloc(sizeof *s);
    if (!s)
        return at_fail(err, AT_ERR_NOMEM, "out of memory");
    c->state = s;
    c->free_state = free_state;
    const size_t images = (size_t)c->batch * c->image;
    s->input = at_alloc(2 * images * sizeof(float));
    s->eta0 = at_alloc(images * sizeof(float));
    s->x1 = at_alloc(images * sizeof(float));
    s->passes = at_alloc(images * sizeof(float));
    s->dout = at_alloc(images * sizeof(float));
    if (!s->input || !s->eta0 || !s->x1 || !s->passes || !s->dout)
        return at_fail(err, AT_ERR_NOMEM, "out of memory for FGSM-SDI's buffers");
    int channels, height, width;
    at_model_input_shape(c->model, &channels, &height, &width);
    at_model *g;
    int status = at_sdi_generator(&g, channels, height, width, (int)c->opt[FEATURES],
                                  c->opt[GEN_INIT] == 1.0, c->config->seed + 0x5d1u, err);
    if (status)
        return status;
    const bool adam = c->opt[GEN_OPTIMIZER] == 0.0;
    at_optimizer_options o = at_optimizer_defaults(adam ? AT_OPTIMIZER_ADAM : AT_OPTIMIZER_SGD);
    o.weight_decay = c->opt[GEN_DECAY];
    if (!adam)
        o.momentum = 0.0;
    return at_method_add_aux(c, "generator", g, &o, c->batch, &s->generator, err);
}

static float budget(const at_method_ctx *c, const at_batch *b, int i)
{
    return b->eps ? b->eps[i] : c->eps;
}

/* LS-CE of the batch's targets: the true class keeps `factor`, the rest share 1 - factor. */
static double smoothed_ce(at_method_ctx *c, const at_batch *b, const float *logits, float *dlogits)
{
    const int k = c->num_classes;
    const float factor = (float)c->opt[SMOOTHING];
    at_ce_target t = {.labels = b->soft ? NULL : b->y, .soft_targets = b->soft,
                      .weights = b->weight, .total = b->total,
                      .label_smoothing = k > 1 ? (1.0f - factor) * k / (k - 1) : 0.0f};
    return at_loss_cross_entropy(logits, b->n, k, &t, NULL, dlogits);
}

/* Input gradient of the plain cross-entropy at x (attack pass, attack BN mode). */
static int input_gradient(at_method_ctx *c, const at_batch *b, const float *x)
{
    int status = at_forward(c->attack_pass, x, b->n, c->config->attack_bn_mode);
    if (status)
        return status;
    at_ce_target t = {.labels = b->soft ? NULL : b->y, .soft_targets = b->soft,
                      .total = b->total};
    at_loss_cross_entropy(at_pass_logits(c->attack_pass), b->n, c->num_classes, &t, NULL,
                          c->dlogits2);
    return at_backward(c->attack_pass, c->dlogits2, AT_GRAD_INPUT);
}

/* The generator's start and the FGSM step from it: eta0, x1 and x' (c->x_adv), and where the
 * clips let x' follow eta0. The generator's batch norm learns (train) or not (eval). */
static int sdi_example(at_method_ctx *c, const at_batch *b, bool learning)
{
    sdi_state *s = c->state;
    const size_t image = c->image;
    at_pass *gp = at_aux_net_pass(s->generator);
    int status = at_forward(gp, s->input, b->n, learning ? AT_BN_TRAIN : AT_BN_EVAL);
    if (status)
        return status;
    const float *t = at_pass_logits(gp); /* tanh, flattened: [n, image] */
    for (int i = 0; i < b->n; i++) {
        const float eps = budget(c, b, i);
        for (size_t j = (size_t)i * image; j < (size_t)(i + 1) * image; j++) {
            s->eta0[j] = eps * t[j];
            s->x1[j] = fminf(fmaxf(b->x[j] + s->eta0[j], 0.0f), 1.0f);
        }
    }
    if ((status = input_gradient(c, b, s->x1)))
        return status;
    const float *g1 = at_pass_input_grad(c->attack_pass);
    for (int i = 0; i < b->n; i++) {
        const float eps = budget(c, b, i);
        const float alpha = c->config->attack_step_size * (eps / c->config->eps);
        for (size_t j = (size_t)i * image; j < (size_t)(i + 1) * image; j++) {
            const float step = g1[j] > 0.0f ? alpha : g1[j] < 0.0f ? -alpha : 0.0f;
            const float moved = s->eta0[j] + step;
            const float eta = fminf(fmaxf(moved, -eps), eps);
            const float x = b->x[j] + eta;
            c->x_adv[j] = fminf(fmaxf(x, 0.0f), 1.0f);
            s->passes[j] = (moved > -eps && moved < eps && x > 0.0f && x < 1.0f) ? 1.0f : 0.0f;
        }
    }
    return AT_OK;
}

/* The generator ascends LS-CE(f(x'), y): dL/dx' from the classifier, times d x'/d eta0 (the
 * clips) and eps (d eta0 / d tanh), negated so that its optimiser's descent is an ascent. */
static int learn_generator(at_method_ctx *c, const at_batch *b)
{
    sdi_state *s = c->state;
    int status = sdi_example(c, b, true);
    if (!status)
        status = at_forward(c->attack_pass, c->x_adv, b->n, c->config->attack_bn_mode);
    if (status)
        return status;
    smoothed_ce(c, b, at_pass_logits(c->attack_pass), c->dlogits2);
    if ((status = at_backward(c->attack_pass, c->dlogits2, AT_GRAD_INPUT)))
        return status;
    const float *dx = at_pass_input_grad(c->attack_pass);
    for (int i = 0; i < b->n; i++) {
        const float eps = budget(c, b, i);
        for (size_t j = (size_t)i * c->image; j < (size_t)(i + 1) * c->image; j++)
            s->dout[j] = -eps * s->passes[j] * dx[j];
    }
    at_pass *gp = at_aux_net_pass(s->generator);
    if ((status = at_backward(gp, s->dout, AT_GRAD_WEIGHTS)))
        return status;
    at_aux_net_step(s->generator, (float)c->opt[GEN_LR]);
    return AT_OK;
}

static int sdi_step(at_method_ctx *c, const at_batch *b, double *loss)
{
    sdi_state *s = c->state;
    const size_t image = c->image;
    /* g0 at x, once per batch; the generator's input is (x, sign g0) per example */
    int status = input_gradient(c, b, b->x);
    if (status)
        return status;
    const float *g0 = at_pass_input_grad(c->attack_pass);
    for (int i = 0; i < b->n; i++) {
        float *in = s->input + (size_t)i * 2 * image;
        memcpy(in, b->x + (size_t)i * image, image * sizeof(float));
        for (size_t j = 0; j < image; j++) {
            const float g = g0[(size_t)i * image + j];
            in[image + j] = g > 0.0f ? 1.0f : g < 0.0f ? -1.0f : 0.0f;
        }
    }
    const long period = (long)c->opt[PERIOD];
    if ((c->step + 1) % period == 0 && (status = learn_generator(c, b)))
        return status;
    if ((status = sdi_example(c, b, false)))
        return status;
    if ((status = at_forward(c->train, c->x_adv, b->n, AT_BN_TRAIN)))
        return status;
    const float *logits = at_pass_logits(c->train);
    *loss = smoothed_ce(c, b, logits, c->dlogits);
    at_count_correct(logits, b->n, c->num_classes, b->y, c->correct);
    return at_backward(c->train, c->dlogits, AT_GRAD_WEIGHTS);
}

static void sdi_defaults(at_train_config *c)
{
    if (c->attack_step_size == 0.0f)
        c->attack_step_size = c->eps; /* alpha = eps = 8/255 in the code */
    if (!c->attack_bn_given)
        c->attack_bn_mode = AT_BN_TRAIN; /* the classifier stays in train mode in the code */
}

const at_method at_method_fgsm_sdi = {
    .name = "fgsm-sdi",
    .row_draws = true,
    .description = "fast AT: FGSM from a learnable sample-dependent start, a generator trained "
                   "by ascent every 20 batches (Jia et al., 2022)",
    .uses = AT_USES_EPS | AT_USES_STEP_SIZE | AT_USES_ATTACK_BN,
    .needs = AT_NEEDS_ATTACK_PASS,
    .options = sdi_options,
    .n_options = AT_OPTION_LEN(sdi_options),
    .defaults = sdi_defaults,
    .setup = sdi_setup,
    .step = sdi_step,
};
