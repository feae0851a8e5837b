/* ada.c: AdA, AdversarialAugment (Calian, Stimberg, Wiles, Rebuffi, Gyorgy, Mann and Gowal,
 * "Defending Against Image Corruptions Through Adversarial Augmentations", ICLR 2022). The
 * adversary perturbs the WEIGHTS phi of an image-to-image network c_phi, inside a relative ball
 * per layer, ||delta_l||_2 <= nu ||phi_l||_2, and the augmented image is c_{phi+delta}(x). The
 * paper's network is a pretrained EDSR or compressive autoencoder; here it is the small
 * autoencoder of advtrain train-autoencoder (models/autoencoder.c), trained on the classifier's
 * own training set. Its weights phi stay fixed: only delta changes, and only within a batch.
 *
 * No code is public, so this is a reconstruction (the entry's section 5.3); nu, the number of
 * steps and the step size were not retrieved and are options (ada-nu, ada-steps, ada-step-size)
 * with presets of our choosing. Per batch:
 *   1. delta starts uniformly at random in the ball of each layer (one delta for the whole
 *      batch; one per example, the other choice, would need a network per example);
 *   2. K times: x_hat = c_{phi+delta}(x), L = CE(f(x_hat), y) with f's batch norm in the attack
 *      mode (eval by default); L's input gradient at x_hat flows back through c into its
 *      weights, dL/d delta_l = dL/d(phi+delta)_l; each layer ascends by a normalised step,
 *      delta_l += step nu ||phi_l|| g_l / ||g_l||, and is projected back, delta_l <- delta_l
 *      min(1, nu ||phi_l|| / ||delta_l||);
 *   3. f trains (batch norm in train mode) on the batch whose first ada-clean-part share of rows
 *      is clean and the rest is c_{phi+delta}(x) (the paper trains on augmented images mixed
 *      with clean ones; the share is ours, 1/2 as in other augmentation baselines).
 * A "layer" is each parameter tensor of c: a convolution's weight and its bias have a ball each.
 * The preset nu = 0.005 is ours: on Fashion-MNIST, with autoencoder-32 after 3 epochs on 2,000
 * images (reconstruction rms error 0.11), 5 steps at nu = 0.005 move the output by an rms 0.18
 * from c_phi(x), at 0.002 by 0.07, while at nu = 0.02 and above they wipe the image out (0.42).
 * The paper's optional perceptual check on x_hat is not done.
 *
 * The autoencoder is a plain model and pass owned by this method, not an auxiliary network:
 * nothing of it is trained or checkpointed; the run records the file and its SHA-256 instead. */
#include "train/method.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct at_ada {
    at_model *ae;
    at_pass *pass;
    float *phi;        /* the autoencoder's own weights (fixed) */
    float *delta;      /* the perturbation, laid out like the parameter slab */
    size_t count;
    int n_layers;
    size_t *first, *size; /* each parameter tensor's place in the slab */
    double *norm;      /* ||phi_l|| */
};

void at_ada_free(at_ada *a)
{
    if (!a)
        return;
    at_pass_free(a->pass);
    at_model_free(a->ae);
    at_free(a->phi);
    at_free(a->delta);
    at_free(a->first);
    at_free(a->size);
    at_free(a->norm);
    at_free(a);
}

static double l2(const float *v, size_t n)
{
    double s = 0.0;
    for (size_t j = 0; j < n; j++)
        s += (double)v[j] * v[j];
    return sqrt(s);
}

int at_ada_create(at_ada **out, at_model *autoencoder, int max_batch, at_error *err)
{
    *out = NULL;
    at_ada *a = at_alloc(sizeof *a);
    if (!a) {
        at_model_free(autoencoder);
        return at_fail(err, AT_ERR_NOMEM, "out of memory");
    }
    a->ae = autoencoder;
    float *params = at_model_params(autoencoder, &a->count);
    const int tensors = at_model_tensor_count(autoencoder);
    a->phi = at_alloc(a->count * sizeof(float));
    a->delta = at_alloc(a->count * sizeof(float));
    a->first = at_alloc((size_t)tensors * sizeof(size_t));
    a->size = at_alloc((size_t)tensors * sizeof(size_t));
    a->norm = at_alloc((size_t)tensors * sizeof(double));
    if (!a->phi || !a->delta || !a->first || !a->size || !a->norm) {
        at_ada_free(a);
        return at_fail(err, AT_ERR_NOMEM, "out of memory for AdA's perturbation");
    }
    memcpy(a->phi, params, a->count * sizeof(float));
    for (int i = 0; i < tensors; i++) {
        const at_tensor_info t = at_model_tensor(autoencoder, i);
        if (!t.is_param)
            continue;
        a->first[a->n_layers] = (size_t)(t.data - params);
        a->size[a->n_layers] = t.numel;
        a->norm[a->n_layers] = l2(t.data, t.numel);
        a->n_layers++;
    }
    int status = at_pass_create(&a->pass, autoencoder, max_batch, 0, err);
    if (status) {
        at_ada_free(a);
        return status;
    }
    *out = a;
    return AT_OK;
}

at_model *at_ada_autoencoder(const at_ada *a) { return a->ae; }
float *at_ada_delta(at_ada *a, size_t *count)
{
    *count = a->count;
    return a->delta;
}
int at_ada_layers(const at_ada *a) { return a->n_layers; }
void at_ada_layer(const at_ada *a, int l, size_t *first, size_t *size, double *norm)
{
    *first = a->first[l];
    *size = a->size[l];
    *norm = a->norm[l];
}

void at_ada_project(at_ada *a, double nu)
{
    for (int l = 0; l < a->n_layers; l++) {
        float *d = a->delta + a->first[l];
        const double radius = nu * a->norm[l], length = l2(d, a->size[l]);
        if (length <= radius)
            continue;
        const float scale = length > 0.0 ? (float)(radius / length) : 0.0f;
        for (size_t j = 0; j < a->size[l]; j++)
            d[j] *= scale;
    }
}

void at_ada_init(at_ada *a, double nu, at_rng *rng)
{
    /* uniform in each layer's ball: a Gaussian direction and a radius R u^(1/d) */
    for (int l = 0; l < a->n_layers; l++) {
        float *d = a->delta + a->first[l];
        for (size_t j = 0; j < a->size[l]; j++)
            d[j] = (float)at_rng_normal(rng);
        const double length = l2(d, a->size[l]);
        const double radius = nu * a->norm[l] * pow(at_rng_uniform(rng), 1.0 / (double)a->size[l]);
        const float scale = length > 0.0 ? (float)(radius / length) : 0.0f;
        for (size_t j = 0; j < a->size[l]; j++)
            d[j] *= scale;
    }
    at_ada_project(a, nu); /* rounding must not leave the ball */
}

int at_ada_augment(at_ada *a, const float *x, int n, float *x_hat)
{
    float *params = at_model_params(a->ae, &a->count);
    for (size_t j = 0; j < a->count; j++)
        params[j] = a->phi[j] + a->delta[j];
    int status = at_forward(a->pass, x, n, AT_BN_EVAL);
    memcpy(params, a->phi, a->count * sizeof(float)); /* the model holds phi between uses */
    if (status)
        return status;
    int c, h, w;
    at_model_input_shape(a->ae, &c, &h, &w);
    memcpy(x_hat, at_pass_logits(a->pass), (size_t)n * c * h * w * sizeof(float));
    return AT_OK;
}

int at_ada_gradient(at_ada *a, at_pass *classifier, at_bn_mode mode, const float *x,
                    const at_ce_target *target, int n, float *x_hat, float *dlogits, double *loss)
{
    float *params = at_model_params(a->ae, &a->count);
    for (size_t j = 0; j < a->count; j++)
        params[j] = a->phi[j] + a->delta[j];
    int status = at_forward(a->pass, x, n, AT_BN_EVAL);
    int c, h, w;
    at_model_input_shape(a->ae, &c, &h, &w);
    const size_t pixels = (size_t)n * c * h * w;
    if (!status) {
        memcpy(x_hat, at_pass_logits(a->pass), pixels * sizeof(float));
        status = at_forward(classifier, x_hat, n, mode);
    }
    if (!status) {
        const int k = at_model_num_classes(at_pass_model(classifier));
        *loss = at_loss_cross_entropy(at_pass_logits(classifier), n, k, target, NULL, dlogits);
        status = at_backward(classifier, dlogits, AT_GRAD_INPUT);
    }
    if (!status) {
        /* d L / d (phi + delta) = d L / d delta, through c's backward from f's input gradient */
        at_model_zero_grad(a->ae);
        status = at_backward(a->pass, at_pass_input_grad(classifier), AT_GRAD_WEIGHTS);
    }
    memcpy(params, a->phi, a->count * sizeof(float));
    return status;
}

void at_ada_ascend(at_ada *a, double nu, double step)
{
    size_t count;
    const float *g = at_model_grads(a->ae, &count);
    for (int l = 0; l < a->n_layers; l++) {
        const double length = l2(g + a->first[l], a->size[l]);
        if (!(length > 0.0))
            continue; /* a layer the loss does not see (a dead unit's weights) stays */
        const float scale = (float)(step * nu * a->norm[l] / length);
        float *d = a->delta + a->first[l];
        for (size_t j = 0; j < a->size[l]; j++)
            d[j] += scale * g[a->first[l] + j];
    }
    at_ada_project(a, nu);
}

int at_ada_attack(at_ada *a, at_pass *classifier, at_bn_mode mode, const float *x,
                  const at_ce_target *target, int n, double nu, int steps, double step,
                  at_rng *rng, float *x_hat, float *dlogits)
{
    at_ada_init(a, nu, rng);
    for (int s = 0; s < steps; s++) {
        double loss;
        int status = at_ada_gradient(a, classifier, mode, x, target, n, x_hat, dlogits, &loss);
        if (status)
            return status;
        at_ada_ascend(a, nu, step);
    }
    return at_ada_augment(a, x, n, x_hat);
}

/* ---- the method ---- */

enum { NU, STEPS, STEP_SIZE, CLEAN_PART };
static const at_option_info ada_options[] = {
    [NU] = {"ada-nu", AT_OPTION_FLOAT, 0, 10, NULL, "0.005",
            "relative radius of the weight perturbation: ||delta_l|| <= nu ||phi_l|| per layer "
            "(reconstruction: the paper's value was not retrieved)"},
    [STEPS] = {"ada-steps", AT_OPTION_INT, 0, 1000, NULL, "5",
               "ascent steps on the autoencoder's weights per batch (0: a random perturbation; "
               "reconstruction: not retrieved)"},
    [STEP_SIZE] = {"ada-step-size", AT_OPTION_FLOAT, 0, 10, NULL, "0.5",
                   "each step moves a layer by this fraction of its radius nu ||phi_l|| along "
                   "its normalised gradient (reconstruction: 2.5 / steps, as PGD)"},
    [CLEAN_PART] = {"ada-clean-part", AT_OPTION_FLOAT, 0, 1, NULL, "0.5",
                    "share of each batch trained on clean images; the rest is augmented"},
};

typedef struct ada_state {
    at_ada *ada;
} ada_state;

static void free_state(void *state)
{
    ada_state *s = state;
    if (!s)
        return;
    at_ada_free(s->ada);
    at_free(s);
}

static int ada_setup(at_method_ctx *c, at_error *err)
{
    const char *path = c->config->autoencoder;
    if (!path)
        return at_fail(err, AT_ERR_ARG, "method ada needs an autoencoder file (written by "
                       "advtrain train-autoencoder)");
    ada_state *s = at_alloc(sizeof *s);
    if (!s)
        return at_fail(err, AT_ERR_NOMEM, "out of memory");
    c->state = s;
    c->free_state = free_state;
    at_model *ae = NULL;
    int status = at_autoencoder_load(&ae, path, err);
    if (status)
        return status;
    int ac, ah, aw, mc, mh, mw;
    at_model_input_shape(ae, &ac, &ah, &aw);
    at_model_input_shape(c->model, &mc, &mh, &mw);
    if (ac != mc || ah != mh || aw != mw) {
        at_model_free(ae);
        return at_fail(err, AT_ERR_SHAPE, "%s: the autoencoder takes %dx%dx%d images but the "
                       "model takes %dx%dx%d", path, ac, ah, aw, mc, mh, mw);
    }
    return at_ada_create(&s->ada, ae, c->batch, err);
}

static int ada_step(at_method_ctx *c, const at_batch *b, double *loss)
{
    ada_state *s = c->state;
    const int clean = (int)floor(c->opt[CLEAN_PART] * b->n + 0.5), m = b->n - clean;
    const size_t head = (size_t)clean * c->image;
    memcpy(c->x_adv, b->x, head * sizeof(float));
    if (m > 0) {
        const int k = c->num_classes;
        at_ce_target t = {.labels = b->soft ? NULL : b->y + clean,
                          .soft_targets = b->soft ? b->soft + (size_t)clean * k : NULL,
                          .weights = b->weight ? b->weight + clean : NULL};
        int status = at_ada_attack(s->ada, c->attack_pass, c->config->attack_bn_mode, b->x + head,
                                   &t, m, c->opt[NU], (int)c->opt[STEPS], c->opt[STEP_SIZE],
                                   c->rng, c->x_adv + head, c->dlogits2);
        if (status)
            return status;
    }
    int status = at_forward(c->train, c->x_adv, b->n, AT_BN_TRAIN);
    if (status)
        return status;
    *loss = at_method_ce(c, b, at_pass_logits(c->train), c->dlogits);
    return at_backward(c->train, c->dlogits, AT_GRAD_WEIGHTS);
}

static void ada_defaults(at_train_config *c)
{
    if (!c->attack_bn_given)
        c->attack_bn_mode = AT_BN_EVAL; /* not retrieved; the entry's default */
}

const at_method at_method_ada = {
    .name = "ada",
    .description = "AdversarialAugment: train on images from an autoencoder whose weights are "
                   "perturbed adversarially in a relative ball (Calian et al., 2022; "
                   "reconstruction)",
    .uses = AT_USES_ATTACK_BN | AT_USES_AUTOENCODER,
    .needs = AT_NEEDS_ATTACK_PASS,
    .options = ada_options,
    .n_options = AT_OPTION_LEN(ada_options),
    .defaults = ada_defaults,
    .setup = ada_setup,
    .step = ada_step,
};
