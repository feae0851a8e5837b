/* iat.c: interpolated adversarial training (Lamb, Verma, Kannala and Bengio, "Interpolated
 * Adversarial Training: Achieving Robust Neural Networks without Sacrificing Too Much Accuracy",
 * AISec 2019, Algorithm 1): the loss is the mean of a mixup loss on the clean batch and a mixup
 * loss on its PGD adversarial batch (the attack itself unmixed, plain CE against the current
 * model, BN in train mode as in the reimplementation we follow),
 *   L = w L_mix(x) + (1 - w) L_mix(x'),   L_mix(x) = CE(f(mix_lambda(x, x_pi)), lambda y + (1 - lambda) y_pi)
 * with a fresh lambda ~ Beta(alpha, alpha) and pairing pi per branch (w = 1/2 in the paper).
 * Input mixup (Zhang et al. 2018) mixes the images; manifold mixup (Verma et al., ICML 2019)
 * mixes the activations of a node drawn per branch from the input and the first block ends
 * (the output of a pooling or residual-add node that every later node depends on through it),
 * through a node hook: the forward mixes the rows, the backward sends each row's gradient back
 * to both rows it came from. Defaults from the reimplementation: PGD-7, step eps/4 (2/255 at
 * 8/255), alpha 1 for input mixup; alpha 2 is manifold mixup's usual value [recall]. With
 * alpha = 0 (lambda = 1) and w = 0 the step is exactly pgd-at's. */
#include "train/method.h"

#include "graph/graph.h"

#include <string.h>

enum { MIX, ALPHA, CLEAN_WEIGHT, BLOCKS };
static const at_option_info iat_options[] = {
    [MIX] = {"mix", AT_OPTION_CHOICE, 0, 0, "input|manifold", "input",
             "mix the images, or the activations of a node drawn per batch"},
    [ALPHA] = {"mix-alpha", AT_OPTION_FLOAT, 0, 100, NULL, NULL,
               "lambda ~ Beta(alpha, alpha); 0 means lambda = 1 (no mixing); preset 1 for input "
               "mixup, 2 for manifold mixup"},
    [CLEAN_WEIGHT] = {"clean-weight", AT_OPTION_FLOAT, 0, 1, NULL, "0.5",
                      "share of the clean branch in the loss (the adversarial branch has the rest)"},
    [BLOCKS] = {"mix-blocks", AT_OPTION_INT, 1, 16, NULL, "2",
                "manifold: block ends eligible besides the input (input, block 1, block 2 [recall])"},
};

#define MAX_ELIGIBLE 17

/* One mixing: lambda and the pairing, with the scratch its hook needs. */
typedef struct iat_mix {
    float lambda;
    const int32_t *partner;
    int32_t *inverse;
    float *scratch;
} iat_mix;

typedef struct iat_state {
    int eligible[MAX_ELIGIBLE], n_eligible;
    int32_t *partner, *inverse;
    float *mixed_x, *soft, *weight, *scratch;
    int32_t *y;
    iat_mix mix;
} iat_state;

static void iat_defaults(at_train_config *c) { at_attack_presets(c, 7, AT_BN_TRAIN); }

/* Rows mixed in place: out_i = lambda out_i + (1 - lambda) out_partner(i). */
static void mix_rows(float *out, int n, size_t per, float lambda, const int32_t *partner,
                     float *scratch)
{
    memcpy(scratch, out, (size_t)n * per * sizeof(float));
    for (int i = 0; i < n; i++) {
        float *o = out + (size_t)i * per;
        const float *a = scratch + (size_t)i * per, *b = scratch + (size_t)partner[i] * per;
        for (size_t j = 0; j < per; j++)
            o[j] = lambda * a[j] + (1.0f - lambda) * b[j];
    }
}

static void hook_forward(void *user, float *out, int n, size_t per)
{
    iat_mix *m = user;
    mix_rows(out, n, per, m->lambda, m->partner, m->scratch);
}

/* The transpose of the mixing: row j's gradient is lambda g_j + (1 - lambda) g_i for the row i
 * whose partner j is (a pairing is a permutation, so exactly one). */
static void hook_backward(void *user, float *grad, int n, size_t per)
{
    iat_mix *m = user;
    mix_rows(grad, n, per, m->lambda, m->inverse, m->scratch);
}

static void free_state(void *p)
{
    iat_state *s = p;
    if (!s)
        return;
    at_free(s->partner);
    at_free(s->inverse);
    at_free(s->mixed_x);
    at_free(s->soft);
    at_free(s->weight);
    at_free(s->scratch);
    at_free(s->y);
    at_free(s);
}

static int iat_setup(at_method_ctx *c, at_error *err)
{
    const bool manifold = c->opt[MIX] == 1;
    if (!c->opt_given[ALPHA])
        c->opt[ALPHA] = manifold ? 2.0 : 1.0;
    if (!manifold && c->opt_given[BLOCKS])
        return at_fail(err, AT_ERR_ARG, "mix-blocks needs --mix manifold");
    iat_state *s = at_alloc(sizeof *s);
    if (!s)
        return at_fail(err, AT_ERR_NOMEM, "out of memory");
    c->state = s;
    c->free_state = free_state;
    const at_model *m = c->model;
    size_t widest = c->image;
    s->eligible[s->n_eligible++] = 0;
    for (int k = 1; manifold && k < m->n_nodes - 1 && s->n_eligible <= (int)c->opt[BLOCKS]; k++)
        if (at_graph_is_block_end(m, k)) {
            s->eligible[s->n_eligible++] = k;
            size_t per = at_shape_numel(m->nodes[k].out);
            widest = per > widest ? per : widest;
        }
    const size_t n = (size_t)c->batch, k = (size_t)c->num_classes;
    s->partner = at_alloc(n * sizeof(int32_t));
    s->inverse = at_alloc(n * sizeof(int32_t));
    s->y = at_alloc(n * sizeof(int32_t));
    s->mixed_x = at_alloc(n * c->image * sizeof(float));
    s->soft = at_alloc(n * k * sizeof(float));
    s->weight = at_alloc(n * sizeof(float));
    s->scratch = at_alloc(n * widest * sizeof(float));
    if (!s->partner || !s->inverse || !s->y || !s->mixed_x || !s->soft || !s->weight || !s->scratch)
        return at_fail(err, AT_ERR_NOMEM, "out of memory for mixup buffers");
    if (!manifold)
        return AT_OK;
    /* hooks at hidden nodes need their outputs and gradients kept */
    at_pass_free(c->train);
    at_pass_free(c->clean);
    c->train = c->clean = NULL;
    int status = at_pass_create(&c->train, c->model, c->batch, AT_PASS_KEEP_ALL, err);
    return status ? status : at_pass_create(&c->clean, c->model, c->batch, AT_PASS_KEEP_ALL, err);
}

/* One branch: mixes x (images or, through a hook the caller clears after its backward, a node's
 * activations) and the batch's targets with a fresh lambda and pairing, runs the forward and
 * leaves dL/dlogits (scaled by `share`) in dlogits. */
static int branch(at_method_ctx *c, at_pass *pass, const at_batch *b, const float *x, float share,
                  float *dlogits, double *loss)
{
    iat_state *s = c->state;
    const int n = b->n, k = c->num_classes;
    const double alpha = c->opt[ALPHA];
    const float lambda = alpha > 0.0 ? (float)at_rng_beta(c->rng, alpha, alpha) : 1.0f;
    at_batch mixed = *b;
    int node = -1;
    if (lambda != 1.0f) {
        for (int i = 0; i < n; i++)
            s->partner[i] = i;
        at_rng_shuffle(c->rng, s->partner, (size_t)n);
        for (int i = 0; i < n; i++)
            s->inverse[s->partner[i]] = i;
        node = s->eligible[at_rng_below(c->rng, (uint32_t)s->n_eligible)];
        s->mix = (iat_mix){lambda, s->partner, s->inverse, s->scratch};
        if (node == 0) {
            memcpy(s->mixed_x, x, (size_t)n * c->image * sizeof(float));
            mix_rows(s->mixed_x, n, c->image, lambda, s->partner, s->scratch);
            x = s->mixed_x;
        } else {
            int status = at_pass_set_hook(pass, node, &(at_node_hook){hook_forward, hook_backward, &s->mix});
            if (status)
                return status;
        }
        /* targets: lambda t_i + (1 - lambda) t_partner; weights likewise */
        for (int i = 0; i < n; i++) {
            const int p = s->partner[i];
            for (int j = 0; j < k; j++) {
                float ti = b->soft ? b->soft[(size_t)i * k + j] : (float)(j == b->y[i]);
                float tp = b->soft ? b->soft[(size_t)p * k + j] : (float)(j == b->y[p]);
                s->soft[(size_t)i * k + j] = lambda * ti + (1.0f - lambda) * tp;
            }
            if (b->weight)
                s->weight[i] = lambda * b->weight[i] + (1.0f - lambda) * b->weight[p];
            s->y[i] = lambda >= 0.5f ? b->y[i] : b->y[p];
        }
        mixed.soft = s->soft;
        mixed.weight = b->weight ? s->weight : NULL;
        mixed.y = s->y;
    }
    int status = at_forward(pass, x, n, AT_BN_TRAIN);
    if (status)
        return status;
    *loss = at_method_ce(c, &mixed, at_pass_logits(pass), dlogits);
    for (size_t j = 0; j < (size_t)n * k; j++)
        dlogits[j] *= share;
    return AT_OK;
}

static void clear_hooks(at_method_ctx *c, at_pass *pass)
{
    iat_state *s = c->state;
    for (int i = 1; i < s->n_eligible; i++)
        at_pass_set_hook(pass, s->eligible[i], NULL);
}

static int iat_step(at_method_ctx *c, const at_batch *b, double *loss)
{
    const float w = (float)c->opt[CLEAN_WEIGHT];
    int status = at_method_attack(c, b, c->x_adv);
    if (status)
        return status;
    double clean_loss = 0.0, adv_loss = 0.0;
    if (w > 0.0f) {
        /* the two branches share the mixing state: this backward runs before the next mix */
        status = branch(c, c->clean, b, b->x, w, c->dlogits2, &clean_loss);
        if (!status)
            status = at_backward(c->clean, c->dlogits2, AT_GRAD_WEIGHTS);
        clear_hooks(c, c->clean);
        if (status)
            return status;
    }
    status = branch(c, c->train, b, c->x_adv, 1.0f - w, c->dlogits, &adv_loss);
    if (!status)
        status = at_backward(c->train, c->dlogits, AT_GRAD_WEIGHTS);
    clear_hooks(c, c->train);
    *loss = w * clean_loss + (1.0f - w) * adv_loss;
    return status;
}

const at_method at_method_iat = {
    .name = "iat",
    .description = "interpolated AT: mixup (input or manifold) of the clean and the PGD batch, "
                   "loss averaged (Lamb et al., 2019)",
    .uses = AT_USES_EPS | AT_USES_ATTACK_STEPS | AT_USES_STEP_SIZE | AT_USES_ATTACK_BN,
    .needs = AT_NEEDS_CLEAN_PASS | AT_NEEDS_PGD,
    .options = iat_options,
    .n_options = AT_OPTION_LEN(iat_options),
    .defaults = iat_defaults,
    .setup = iat_setup,
    .step = iat_step,
};
