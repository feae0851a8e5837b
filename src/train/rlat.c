/* rlat.c: Relaxed LPIPS Adversarial Training (Kireev, Andriushchenko and Flammarion, "On the
 * effectiveness of adversarial training against common corruptions", UAI 2022, section 4, and
 * their code's `rlat` attack).
 *
 * LPIPS(x, x + delta) is a weighted sum of squared differences of normalised features at several
 * depths; RLAT relaxes "an input perturbation small in LPIPS" into independent small
 * perturbations delta_i added to the classifier's own activations at those depths, found in one
 * step from zero:
 *   1. forward at delta = 0 (batch norm in the attack's mode, train as in the paper's code),
 *      cross-entropy, backward to the gradient g_i at each point (no weight gradients);
 *   2. delta_i = eps_i g_i / (||g_i||_2 + c) per example (L2), or eps_i sign(g_i) capped at eps
 *      (Linf, where the code clips every point to [-eps, eps]);
 *   3. forward with the delta_i fixed, cross-entropy, backward to the weights.
 * The input's perturbation is applied as clip(x + delta_0, 0, 1). Radii (policy "scaling" with
 * "descending", the paper's default): eps_i = eps (n_i / n_0) / (i + 1), n_i the size of point
 * i's activation per example and n_0 the input's (3072 for CIFAR-10, which the code writes as a
 * constant). Points: the input, the first convolution's output and the output of each stage
 * (the last block end, a pooling or residual add that every later node depends on, at each
 * spatial resolution): for PreAct ResNet-18 the paper's six (input, conv1, layer1..layer4); for
 * SmallCNN the input, conv1 and its two pooling outputs. The first (1 - part) n rows of a batch
 * stay clean (the code's `batch_part`). */
#include "train/method.h"

#include "graph/graph.h"

#include <math.h>
#include <string.h>

enum { PART, NORMREG, EPS_POLICY, GROW, WITHOUT_INPUT };
enum { SCALING, CONSTANT };
enum { DESCENDING, ASCENDING, FLAT };
static const at_option_info rlat_options[] = {
    [PART] = {"rlat-part", AT_OPTION_FLOAT, 0, 1, NULL, "1",
              "share of each batch that is perturbed (the rest stays clean)"},
    [NORMREG] = {"rlat-normreg", AT_OPTION_FLOAT, 0, 1e6, NULL, "0",
                 "c in delta_i = eps_i g_i / (||g_i|| + c) (L2)"},
    [EPS_POLICY] = {"rlat-eps-policy", AT_OPTION_CHOICE, 0, 0, "scaling|constant", "scaling",
                    "eps_i = eps n_i / n_0 (activation size over input size), or eps"},
    [GROW] = {"rlat-grow", AT_OPTION_CHOICE, 0, 0, "descending|ascending|flat", "descending",
              "then divide eps_i by i + 1, multiply it by i + 1, or neither"},
    [WITHOUT_INPUT] = {"rlat-without-input", AT_OPTION_FLAG, 0, 1, NULL, "false",
                       "perturb the activations only, not the input"},
};

typedef struct rlat_state {
    int node[AT_RLAT_MAX_POINTS];
    float radius[AT_RLAT_MAX_POINTS]; /* eps_i / eps */
    size_t size[AT_RLAT_MAX_POINTS];  /* n_i */
    float *delta[AT_RLAT_MAX_POINTS]; /* [batch, n_i]; delta[0] unused (the input is x_adv) */
    int n_points;
    at_pass *grad_pass;               /* step 1: gradients at every point, none for weights */
} rlat_state;

int at_rlat_points(const at_model *m, int *nodes, int cap)
{
    int n = 0;
    if (n < cap)
        nodes[n++] = 0;
    int first_conv = 0;
    for (int k = 1; k < m->n_nodes - 1 && !first_conv; k++)
        if (m->nodes[k].kind == AT_LAYER_conv2d)
            first_conv = k;
    if (first_conv && n < cap)
        nodes[n++] = first_conv;
    for (int k = first_conv + 1; k < m->n_nodes - 1 && n < cap; k++) {
        const at_shape s = m->nodes[k].out;
        if (!at_graph_is_block_end(m, k) || s.h * s.w <= 1)
            continue;
        bool last_at_resolution = true;
        for (int j = k + 1; j < m->n_nodes - 1 && last_at_resolution; j++)
            if (at_graph_is_block_end(m, j) && m->nodes[j].out.h == s.h && m->nodes[j].out.w == s.w)
                last_at_resolution = false;
        if (last_at_resolution)
            nodes[n++] = k;
    }
    return n;
}

static void free_state(void *p)
{
    rlat_state *s = p;
    if (!s)
        return;
    for (int i = 0; i < s->n_points; i++)
        at_free(s->delta[i]);
    at_pass_free(s->grad_pass);
    at_free(s);
}

static void rlat_defaults(at_train_config *c)
{
    if (!c->attack_bn_given)
        c->attack_bn_mode = AT_BN_TRAIN;
}

static int rlat_setup(at_method_ctx *c, at_error *err)
{
    rlat_state *s = at_alloc(sizeof *s);
    if (!s)
        return at_fail(err, AT_ERR_NOMEM, "out of memory");
    memset(s, 0, sizeof *s);
    c->state = s;
    c->free_state = free_state;
    const at_model *m = c->model;
    s->n_points = at_rlat_points(m, s->node, AT_RLAT_MAX_POINTS);
    const double n0 = (double)at_shape_numel(m->nodes[0].out);
    for (int i = 0; i < s->n_points; i++) {
        s->size[i] = at_shape_numel(m->nodes[s->node[i]].out);
        double r = c->opt[EPS_POLICY] == SCALING ? (double)s->size[i] / n0 : 1.0;
        if (c->opt[GROW] == DESCENDING)
            r /= i + 1;
        else if (c->opt[GROW] == ASCENDING)
            r *= i + 1;
        s->radius[i] = (float)r;
        if (i > 0 && !(s->delta[i] = at_alloc((size_t)c->batch * s->size[i] * sizeof(float))))
            return at_fail(err, AT_ERR_NOMEM, "out of memory for RLAT's perturbations");
    }
    if (c->opt[WITHOUT_INPUT] != 0.0)
        s->radius[0] = 0.0f;
    return at_pass_create(&s->grad_pass, c->model, c->batch,
                          AT_PASS_KEEP_ALL | AT_PASS_NO_WEIGHT_GRADS, err);
}

/* delta = radius g / (||g|| + c) (L2) or min(radius, cap) sign(g) (Linf), one example. */
static void step_from_gradient(const float *g, size_t count, float radius, float linf_cap,
                               at_norm norm, double normreg, float *delta)
{
    if (norm == AT_NORM_LINF) {
        const float r = fminf(radius, linf_cap);
        for (size_t j = 0; j < count; j++)
            delta[j] = g[j] > 0 ? r : g[j] < 0 ? -r : 0.0f;
        return;
    }
    double sq = 0;
    for (size_t j = 0; j < count; j++)
        sq += (double)g[j] * g[j];
    const double denominator = sqrt(sq) + normreg;
    const float scale = denominator > 0 ? (float)(radius / denominator) : 0.0f;
    for (size_t j = 0; j < count; j++)
        delta[j] = scale * g[j];
}

static int rlat_step(at_method_ctx *c, const at_batch *b, double *loss)
{
    rlat_state *s = c->state;
    const at_norm norm = c->config->norm;
    const int clean = at_clean_rows(b->n, c->opt[PART]);

    /* 1. gradients at every point, at delta = 0 */
    int status = at_forward(s->grad_pass, b->x, b->n, c->config->attack_bn_mode);
    if (status)
        return status;
    at_method_ce(c, b, at_pass_logits(s->grad_pass), c->dlogits);
    if ((status = at_backward(s->grad_pass, c->dlogits, AT_GRAD_INPUT)))
        return status;

    /* 2. one step from zero at each point */
    const float *g0 = at_pass_input_grad(s->grad_pass);
    memcpy(c->x_adv, b->x, (size_t)b->n * c->image * sizeof(float));
    for (int i = 0; i < s->n_points; i++) {
        const float *g = i == 0 ? g0 : at_pass_grad(s->grad_pass, s->node[i]);
        const size_t per = s->size[i];
        for (int r = 0; r < b->n; r++) {
            const float eps = b->eps ? b->eps[r] : c->eps;
            if (i == 0) {
                if (r < clean || s->radius[0] == 0.0f)
                    continue;
                float *x = c->x_adv + (size_t)r * per;
                step_from_gradient(g + (size_t)r * per, per, eps * s->radius[0], eps, norm,
                                   c->opt[NORMREG], c->scratch);
                for (size_t j = 0; j < per; j++)
                    x[j] = fminf(fmaxf(x[j] + c->scratch[j], 0.0f), 1.0f);
            } else if (r < clean) {
                memset(s->delta[i] + (size_t)r * per, 0, per * sizeof(float));
            } else {
                step_from_gradient(g + (size_t)r * per, per, eps * s->radius[i], eps, norm,
                                   c->opt[NORMREG], s->delta[i] + (size_t)r * per);
            }
        }
    }

    /* 3. the training pass with the perturbations in place */
    for (int i = 1; i < s->n_points && !status; i++)
        status = at_pass_set_perturbation(c->train, s->node[i], s->delta[i]);
    if (!status)
        status = at_forward(c->train, c->x_adv, b->n, AT_BN_TRAIN);
    if (!status) {
        *loss = at_method_ce(c, b, at_pass_logits(c->train), c->dlogits);
        status = at_backward(c->train, c->dlogits, AT_GRAD_WEIGHTS);
    }
    for (int i = 1; i < s->n_points; i++)
        at_pass_set_perturbation(c->train, s->node[i], NULL);
    return status;
}

const at_method at_method_rlat = {
    .name = "rlat",
    .row_draws = true,
    .description = "RLAT: one-step perturbations of the input and of activations at several "
                   "depths, radii eps (n_i / n_0) / (i + 1) (Kireev et al., 2022)",
    .uses = AT_USES_EPS | AT_USES_ATTACK_BN,
    .options = rlat_options,
    .n_options = AT_OPTION_LEN(rlat_options),
    .defaults = rlat_defaults,
    .setup = rlat_setup,
    .step = rlat_step,
};
