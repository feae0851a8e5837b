/* infoat.c: InfoAT, adversarial training guided by the information bottleneck (Xu, Zhang, Li and
 * Zhang, "InfoAT: Improving Adversarial Training Using the Information Bottleneck Principle",
 * arXiv 2206.12292). No code was published: a reconstruction from the abstract (the entry's
 * section 17.3); every unchecked detail is an option. The claim: examples whose representation
 * z = h(x) carries much information about x are easier to attack, so they should weigh more.
 *
 * - A critic T(x, z), a small MLP on (x average-pooled, z = the input of the classifier's last
 *   layer, detached), learns the Jensen-Shannon bound of Deep InfoMax (Hjelm et al., ICLR 2019,
 *   eq. 4): it maximises E_pos[-softplus(-T)] - E_neg[softplus(T)], positives (x_i, z_i) and
 *   negatives (x_i, z_pi(i)) under a random cyclic shuffle pi of the batch; Adam, lr 1e-4.
 * - Each example's pointwise score s_i = T(x_i, z_i) - T(x_i, z_pi(i)) gives its weight
 *   w_i = n softmax(s / tau)_i (no gradient through w), computed before the critic's update.
 * - The base method's loss (pgd-at: CE of the PGD point; trades: CE + beta KL) with those
 *   per-example weights: L = (1/n) sum_i w_i L_AT(x_i, x'_i, y_i). With uniform weights
 *   (temperature infinite, or --uniform-weights) a step is the base's step.
 * The critic checkpoints beside the classifier as "critic.*". */
#include "train/method.h"

#include "graph/graph.h"

#include <math.h>
#include <string.h>

enum { BASE, BETA, TEMPERATURE, CRITIC_LR, CRITIC_WIDTH, POOL, UNIFORM };
static const at_option_info infoat_options[] = {
    [BASE] = {"base", AT_OPTION_CHOICE, 0, 1, "pgd-at|trades", "pgd-at",
              "the adversarial loss the weights apply to"},
    [BETA] = {"beta", AT_OPTION_FLOAT, 0, 1e6, NULL, "6", "base trades: weight of the KL term"},
    [TEMPERATURE] = {"temperature", AT_OPTION_FLOAT, 1e-6, 1e6, NULL, "1",
                     "tau of the weights n softmax(score / tau) [reconstruction]"},
    [CRITIC_LR] = {"critic-lr", AT_OPTION_FLOAT, 0, 10, NULL, "1e-4",
                   "the critic's Adam learning rate (constant) [reconstruction]"},
    [CRITIC_WIDTH] = {"critic-width", AT_OPTION_INT, 1, 4096, NULL, "64",
                      "hidden units of the critic's MLP [reconstruction]"},
    [POOL] = {"critic-pool", AT_OPTION_INT, 1, 1024, NULL, "4",
              "the critic sees x average-pooled over POOL x POOL windows [reconstruction]"},
    [UNIFORM] = {"uniform-weights", AT_OPTION_FLAG, 0, 1, NULL, "false",
                 "weights 1 (the critic still learns): the base method, for comparison"},
};

enum { MAX_BASE_OPTIONS = 8, CRITIC_STREAM = 17 };

typedef struct infoat_state {
    const at_method *base;
    double base_opt[MAX_BASE_OPTIONS];
    bool base_given[MAX_BASE_OPTIONS];
    at_aux_net *critic;
    at_pass *features;   /* forward-only pass at x for z (batch statistics, nothing updated) */
    int feature_node, x_dims, z_dims, pooled_h, pooled_w;
    float *pairs;        /* [2 batch, x_dims + z_dims]: positives, then negatives */
    float *dscore;       /* [2 batch]: the critic's loss gradient */
    float *weight;       /* [batch] */
    int *shuffle;        /* [batch] */
} infoat_state;

static void free_state(void *state)
{
    infoat_state *s = state;
    if (!s)
        return;
    at_pass_free(s->features);
    at_free(s->pairs);
    at_free(s->dscore);
    at_free(s->weight);
    at_free(s->shuffle);
    at_free(s);
}

/* The method option `name` as given in the configuration, or NULL. */
static const char *given_option(const at_train_config *c, const char *name)
{
    for (int i = 0; i < c->n_method_options; i++)
        if (!strcmp(c->method_options[i].name, name))
            return c->method_options[i].value;
    return NULL;
}

static void infoat_defaults(at_train_config *c)
{
    const char *base = given_option(c, "base");
    const bool trades = base && !strcmp(base, "trades");
    at_attack_presets(c, 10, trades ? AT_BN_EVAL : AT_BN_TRAIN); /* as the base */
}

/* T(x, z): flatten, linear, ReLU, linear to one score. */
static int build_critic(at_model **out, int inputs, int width, uint64_t seed, at_error *err)
{
    at_model *m;
    int status = at_model_begin(&m, inputs, 1, 1, err);
    if (status)
        return status;
    int x = at_add_linear(m, at_add_flatten(m, 0), "fc1", width, true);
    at_add_linear(m, at_add_relu(m, x), "fc2", 1, true);
    if ((status = at_model_finish(m, seed, err))) {
        at_model_free(m);
        return status;
    }
    *out = m;
    return AT_OK;
}

/* The base's options: its presets, and beta from ours where it has one. */
static int base_options(at_method_ctx *c, infoat_state *s, at_error *err)
{
    s->base = at_method_find(c->opt[BASE] == 0.0 ? "pgd-at" : "trades");
    if (!s->base || s->base->n_options > MAX_BASE_OPTIONS)
        return at_fail(err, AT_ERR_STATE, "infoat: no base method");
    at_train_config presets = *c->config;
    presets.n_method_options = 0;
    int status = at_method_resolve_options(s->base, &presets, s->base_opt, s->base_given, err);
    if (status)
        return status;
    bool has_beta = false;
    for (int i = 0; i < s->base->n_options; i++)
        if (!strcmp(s->base->options[i].name, "beta")) {
            s->base_opt[i] = c->opt[BETA];
            has_beta = true;
        }
    if (!has_beta && c->opt_given[BETA])
        return at_fail(err, AT_ERR_ARG, "infoat: --beta applies to --base trades only");
    return AT_OK;
}

static int infoat_setup(at_method_ctx *c, at_error *err)
{
    infoat_state *s = at_alloc(sizeof *s);
    if (!s)
        return at_fail(err, AT_ERR_NOMEM, "out of memory");
    c->state = s;
    c->free_state = free_state;
    int status = base_options(c, s, err);
    if (status)
        return status;
    const at_model *m = c->model;
    s->feature_node = m->nodes[m->n_nodes - 1].inputs[0]; /* what the last layer reads */
    int fc, fh, fw, ch, h, w;
    at_model_node_shape(m, s->feature_node, &fc, &fh, &fw);
    at_model_input_shape(m, &ch, &h, &w);
    const int pool = (int)c->opt[POOL];
    if (pool > h || pool > w)
        return at_fail(err, AT_ERR_ARG, "critic-pool %d is larger than the %dx%d image", pool, h, w);
    s->pooled_h = h / pool;
    s->pooled_w = w / pool;
    s->x_dims = ch * s->pooled_h * s->pooled_w;
    s->z_dims = fc * fh * fw;
    const size_t rows = 2 * (size_t)c->batch, dims = (size_t)(s->x_dims + s->z_dims);
    s->pairs = at_alloc(rows * dims * sizeof(float));
    s->dscore = at_alloc(rows * sizeof(float));
    s->weight = at_alloc((size_t)c->batch * sizeof(float));
    s->shuffle = at_alloc((size_t)c->batch * sizeof(int));
    if (!s->pairs || !s->dscore || !s->weight || !s->shuffle)
        return at_fail(err, AT_ERR_NOMEM, "out of memory for InfoAT's buffers");
    if ((status = at_pass_create(&s->features, c->model, c->batch,
                                 AT_PASS_FORWARD_ONLY | AT_PASS_KEEP_ALL, err)))
        return status;
    at_model *critic;
    if ((status = build_critic(&critic, (int)dims, (int)c->opt[CRITIC_WIDTH],
                               c->config->seed + 0x17u, err)))
        return status;
    at_optimizer_options o = at_optimizer_defaults(AT_OPTIMIZER_ADAM);
    o.weight_decay = 0.0;
    /* the critic's batch holds the positives and the negatives */
    return at_method_add_aux(c, "critic", critic, &o, 2 * c->batch, &s->critic, err);
}

/* Row i of the critic's input: x_i average-pooled, then z_j. */
static void pair_row(const at_method_ctx *c, const infoat_state *s, const float *x, int i,
                     const float *z, int j, float *row)
{
    int ch, h, w;
    at_model_input_shape(c->model, &ch, &h, &w);
    const int pool = (int)c->opt[POOL];
    const float *xi = x + (size_t)i * c->image;
    for (int k = 0; k < ch; k++)
        for (int py = 0; py < s->pooled_h; py++)
            for (int px = 0; px < s->pooled_w; px++) {
                double sum = 0.0;
                for (int dy = 0; dy < pool; dy++)
                    for (int dx = 0; dx < pool; dx++)
                        sum += xi[((size_t)k * h + py * pool + dy) * w + px * pool + dx];
                *row++ = (float)(sum / (pool * pool));
            }
    memcpy(row, z + (size_t)j * s->z_dims, (size_t)s->z_dims * sizeof(float));
}

static double sigmoid(double v) { return 1.0 / (1.0 + exp(-v)); }

/* Scores, weights, and one step of the critic on the Jensen-Shannon bound. */
static int critic_weights(at_method_ctx *c, const at_batch *b)
{
    infoat_state *s = c->state;
    const int n = b->n;
    for (int i = 0; i < n; i++)
        s->weight[i] = 1.0f;
    if (n < 2)
        return AT_OK; /* no negatives */
    int status = at_forward(s->features, b->x, n, AT_BN_BATCH_STATS);
    if (status)
        return status;
    const float *z = at_pass_activation(s->features, s->feature_node);
    /* a random cyclic shuffle (Sattolo): no example is its own negative. Its stream is the
     * critic's own, so the base's draws (attack starts) are the base's alone. */
    at_rng rng;
    at_rng_stream(&rng, c->config->seed, (uint64_t)c->step, CRITIC_STREAM);
    for (int i = 0; i < n; i++)
        s->shuffle[i] = i;
    for (int i = n - 1; i > 0; i--) {
        const int j = (int)at_rng_below(&rng, (uint32_t)i);
        const int t = s->shuffle[i];
        s->shuffle[i] = s->shuffle[j];
        s->shuffle[j] = t;
    }
    const size_t dims = (size_t)(s->x_dims + s->z_dims);
    for (int i = 0; i < n; i++) {
        pair_row(c, s, b->x, i, z, i, s->pairs + (size_t)i * dims);
        pair_row(c, s, b->x, i, z, s->shuffle[i], s->pairs + (size_t)(n + i) * dims);
    }
    at_pass *cp = at_aux_net_pass(s->critic);
    if ((status = at_forward(cp, s->pairs, 2 * n, AT_BN_TRAIN)))
        return status;
    const float *t = at_pass_logits(cp);
    if (c->opt[UNIFORM] == 0.0) {
        const double tau = c->opt[TEMPERATURE];
        double top = -INFINITY, sum = 0.0;
        for (int i = 0; i < n; i++)
            top = fmax(top, (t[i] - t[n + i]) / tau);
        for (int i = 0; i < n; i++)
            sum += exp((t[i] - t[n + i]) / tau - top);
        for (int i = 0; i < n; i++)
            s->weight[i] = (float)(n * exp((t[i] - t[n + i]) / tau - top) / sum);
    }
    /* minimise E_pos softplus(-T) + E_neg softplus(T), the negated bound */
    for (int i = 0; i < n; i++) {
        s->dscore[i] = (float)(-sigmoid(-t[i]) / b->total);
        s->dscore[n + i] = (float)(sigmoid(t[n + i]) / b->total);
    }
    if ((status = at_backward(cp, s->dscore, AT_GRAD_WEIGHTS)))
        return status;
    at_aux_net_step(s->critic, (float)c->opt[CRITIC_LR]);
    return AT_OK;
}

static int infoat_step(at_method_ctx *c, const at_batch *b, double *loss)
{
    infoat_state *s = c->state;
    int status = critic_weights(c, b);
    if (status)
        return status;
    for (int i = 0; b->weight && i < b->n; i++)
        s->weight[i] *= b->weight[i];
    at_batch weighted = *b;
    weighted.weight = s->weight;
    at_method_ctx base = *c;
    base.opt = s->base_opt;
    base.opt_given = s->base_given;
    base.state = NULL;
    base.free_state = NULL;
    return s->base->step(&base, &weighted, loss);
}

const at_method at_method_infoat = {
    .name = "infoat",
    .description = "InfoAT: pgd-at or trades with per-example weights from a mutual-information "
                   "critic (Jensen-Shannon bound) (Xu et al., 2022; reconstruction)",
    .uses = AT_USES_EPS | AT_USES_ATTACK_STEPS | AT_USES_STEP_SIZE | AT_USES_ATTACK_BN,
    .needs = AT_NEEDS_CLEAN_PASS | AT_NEEDS_ATTACK_PASS | AT_NEEDS_PGD,
    .options = infoat_options,
    .n_options = AT_OPTION_LEN(infoat_options),
    .defaults = infoat_defaults,
    .setup = infoat_setup,
    .step = infoat_step,
};
