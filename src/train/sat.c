/* sat.c: stylized max-margin adversarial training (Naseer, Khan, Hayat, Khan and Porikli,
 * "Stylized Adversarial Defense", arXiv 2007.14672 / TPAMI 2022). No code was published; this is
 * the reconstruction of the entry's section 3.3, each unchecked detail an option:
 *
 * Adversary: for each example x_s (label y_s) a target x_t of another class (the next example
 * of another class in the batch, which is in random order), and within the eps-ball
 *   max_delta  L_cls - beta_s sum_l ||G(phi_l(x_s + delta)) - G(phi_l(x_t))||_F^2 / C_l^2
 *                    - beta_c sum_l ||phi_l(x_s + delta) - phi_l(x_t)||^2 / (C_l HW_l)
 * with L_cls = CE(f(x'), y_s) (away), -CE(f(x'), y_t) (toward) or both, G the Gram matrix
 * (feature_loss.c) and phi_l the classifier's own features at its first block ends ("deeply
 * supervised, multi-scale"); each layer's term is divided by its size so that depths weigh
 * alike. The feature gradients enter the network at those nodes. Batch norm in eval mode
 * during the attack; PGD-10 with step eps/4 from a uniform start.
 * Training loss (max-margin), with h the logits:
 *   L = CE(f(x'), y_s) + gamma max(0, ||h(x') - h(x_s)|| - ||h(x') - h(x_t)|| + m)
 * pulling the adversary towards its source and away from its target; the gradient flows through
 * all three (h(x_t) is the clean forward of the target's row). With beta_s = beta_c = 0, the
 * toward class term and no random start, the adversary is a targeted PGD to y_t. */
#include "train/method.h"

#include "attack/attack.h"
#include "graph/graph.h"

#include <math.h>
#include <string.h>

enum { STYLE, CONTENT, CLASS_TERM, MARGIN_WEIGHT, MARGIN, BLOCKS, START };
enum { AWAY, TOWARD, BOTH };
enum { MAX_DEPTHS = 8 };
static const at_option_info sat_options[] = {
    [STYLE] = {"style-weight", AT_OPTION_FLOAT, 0, 1e6, NULL, "1",
               "beta_s: Gram-matrix (style) pull towards the target [reconstruction]"},
    [CONTENT] = {"content-weight", AT_OPTION_FLOAT, 0, 1e6, NULL, "1",
                 "beta_c: feature (content) pull towards the target [reconstruction]"},
    [CLASS_TERM] = {"class-term", AT_OPTION_CHOICE, 0, 0, "away|toward|both", "both",
                    "the adversary's class term: leave y_s, approach y_t, or both [reconstruction]"},
    [MARGIN_WEIGHT] = {"margin-weight", AT_OPTION_FLOAT, 0, 1e6, NULL, "1",
                       "gamma: weight of the max-margin (triplet) term [reconstruction]"},
    [MARGIN] = {"margin", AT_OPTION_FLOAT, 0, 1e6, NULL, "1",
                "m: margin between the logit distances to source and target [reconstruction]"},
    [BLOCKS] = {"feature-blocks", AT_OPTION_INT, 1, MAX_DEPTHS, NULL, "2",
                "depths phi_l: the first N block ends of the classifier [reconstruction]"},
    [START] = {"random-start", AT_OPTION_FLAG, 0, 1, NULL, "true",
               "start the adversary uniformly in the eps-ball (else at x)"},
};

typedef struct sat_state {
    int depth[MAX_DEPTHS], n_depths;
    int channels[MAX_DEPTHS], positions[MAX_DEPTHS];
    float *gram[MAX_DEPTHS];    /* [batch, C, C]: the targets' Gram matrices */
    float *content[MAX_DEPTHS]; /* [batch, C, HW]: the targets' features */
    int32_t *partner;           /* [batch]: the target row of each example */
    int32_t *target_y;          /* [batch] */
    at_rng *rngs;               /* [batch]: random starts */
} sat_state;

static void free_state(void *p)
{
    sat_state *s = p;
    if (!s)
        return;
    for (int l = 0; l < s->n_depths; l++) {
        at_free(s->gram[l]);
        at_free(s->content[l]);
    }
    at_free(s->partner);
    at_free(s->target_y);
    at_free(s->rngs);
    at_free(s);
}

static void sat_defaults(at_train_config *c) { at_attack_presets(c, 10, AT_BN_EVAL); }

static int sat_setup(at_method_ctx *c, at_error *err)
{
    sat_state *s = at_alloc(sizeof *s);
    if (!s)
        return at_fail(err, AT_ERR_NOMEM, "out of memory");
    c->state = s;
    c->free_state = free_state;
    const at_model *m = c->model;
    const size_t n = (size_t)c->batch;
    const bool features = c->opt[STYLE] > 0 || c->opt[CONTENT] > 0;
    for (int k = 1; features && k < m->n_nodes - 1 && s->n_depths < (int)c->opt[BLOCKS]; k++) {
        if (!at_graph_is_block_end(m, k))
            continue;
        const at_shape sh = m->nodes[k].out;
        const int l = s->n_depths++;
        s->depth[l] = k;
        s->channels[l] = sh.c;
        s->positions[l] = (int)(at_shape_numel(sh) / (size_t)sh.c);
        s->gram[l] = at_alloc(n * (size_t)sh.c * sh.c * sizeof(float));
        s->content[l] = at_alloc(n * at_shape_numel(sh) * sizeof(float));
        if (!s->gram[l] || !s->content[l])
            return at_fail(err, AT_ERR_NOMEM, "out of memory for SAT's target features");
    }
    if (features && s->n_depths == 0)
        return at_fail(err, AT_ERR_ARG, "sat: the model has no block end (pooling or residual "
                                        "add) to take style and content features at");
    s->partner = at_alloc(n * sizeof(int32_t));
    s->target_y = at_alloc(n * sizeof(int32_t));
    s->rngs = at_alloc(n * sizeof(at_rng));
    if (!s->partner || !s->target_y || !s->rngs)
        return at_fail(err, AT_ERR_NOMEM, "out of memory");
    /* the attack reads and injects at hidden nodes: its pass keeps them */
    at_pass_free(c->attack_pass);
    c->attack_pass = NULL;
    return at_pass_create(&c->attack_pass, c->model, c->batch,
                          AT_PASS_KEEP_ALL | AT_PASS_NO_WEIGHT_GRADS, err);
}

/* Each example's target: the next row (cyclically) of another class; itself when the batch has
 * one class only. */
static void choose_targets(sat_state *s, const at_batch *b)
{
    for (int i = 0; i < b->n; i++) {
        int t = i;
        for (int step = 1; step < b->n; step++) {
            int j = (i + step) % b->n;
            if (b->y[j] != b->y[i]) {
                t = j;
                break;
            }
        }
        s->partner[i] = t;
        s->target_y[i] = b->y[t];
    }
}

/* The targets' features at every depth: rows of the clean batch's features, permuted. */
static int target_features(at_method_ctx *c, const at_batch *b)
{
    sat_state *s = c->state;
    if (s->n_depths == 0)
        return AT_OK;
    int status = at_forward(c->attack_pass, b->x, b->n, c->config->attack_bn_mode);
    for (int l = 0; l < s->n_depths && !status; l++) {
        const float *phi = at_pass_activation(c->attack_pass, s->depth[l]);
        const size_t per = (size_t)s->channels[l] * s->positions[l];
        for (int i = 0; i < b->n; i++)
            memcpy(s->content[l] + (size_t)i * per, phi + (size_t)s->partner[i] * per,
                   per * sizeof(float));
        status = at_gram_matrices(s->content[l], b->n, s->channels[l], s->positions[l],
                                  s->gram[l]);
    }
    return status;
}

static int sat_attack(at_method_ctx *c, const at_batch *b, float *x_adv)
{
    sat_state *s = c->state;
    const at_train_config *cfg = c->config;
    const int n = b->n, k = c->num_classes, term = (int)c->opt[CLASS_TERM];
    const float beta_s = (float)c->opt[STYLE], beta_c = (float)c->opt[CONTENT];
    if (c->opt[START] != 0.0) {
        for (int i = 0; i < n; i++)
            at_rng_seed(&s->rngs[i], at_rng_next(i < b->scored ? c->rng : c->rng_unscored));
        at_attack_random_start(cfg->norm, c->eps, b->eps, b->x, x_adv, n, c->image, s->rngs,
                               c->scratch);
    } else {
        memcpy(x_adv, b->x, (size_t)n * c->image * sizeof(float));
    }
    at_error err;
    for (int step = 0; step < cfg->attack_steps; step++) {
        int status = at_forward(c->attack_pass, x_adv, n, cfg->attack_bn_mode);
        if (status)
            return status;
        const float *z = at_pass_logits(c->attack_pass);
        at_backward_begin(c->attack_pass);
        float *dz = at_pass_grad(c->attack_pass, c->model->n_nodes - 1);
        memset(dz, 0, (size_t)n * k * sizeof(float));
        if (term != TOWARD) { /* + CE(f(x'), y_s) */
            at_loss_cross_entropy(z, n, k, &(at_ce_target){.labels = b->y, .total = b->total},
                                  NULL, c->dlogits2);
            for (size_t j = 0; j < (size_t)n * k; j++)
                dz[j] += c->dlogits2[j];
        }
        if (term != AWAY) { /* - CE(f(x'), y_t) */
            at_loss_cross_entropy(z, n, k,
                                  &(at_ce_target){.labels = s->target_y, .total = b->total}, NULL,
                                  c->dlogits2);
            for (size_t j = 0; j < (size_t)n * k; j++)
                dz[j] -= c->dlogits2[j];
        }
        for (int l = 0; l < s->n_depths; l++) {
            const int node = s->depth[l], ch = s->channels[l], hw = s->positions[l];
            const float *phi = at_pass_activation(c->attack_pass, node);
            float *dphi = at_pass_grad(c->attack_pass, node);
            float value;
            if (beta_s > 0 &&
                (status = at_loss_gram_shard(phi, s->gram[l], n, b->total, ch, hw,
                                             -beta_s / ((float)ch * ch), &value, NULL, dphi,
                                             &err)))
                return status;
            if (beta_c > 0)
                at_loss_feature_distance_shard(phi, s->content[l], n, b->total, (size_t)ch * hw,
                                               -beta_c / ((float)ch * hw), NULL, dphi);
        }
        if ((status = at_backward_run(c->attack_pass, AT_GRAD_INPUT)))
            return status;
        at_train_attack_ascend(c, b, at_pass_input_grad(c->attack_pass), x_adv);
    }
    return AT_OK;
}

static int sat_step(at_method_ctx *c, const at_batch *b, double *loss)
{
    sat_state *s = c->state;
    const int n = b->n, k = c->num_classes;
    choose_targets(s, b);
    int status = target_features(c, b);
    if (!status)
        status = sat_attack(c, b, c->x_adv);
    if (!status)
        status = at_forward(c->train, c->x_adv, n, AT_BN_TRAIN);
    if (!status)
        status = at_forward(c->clean, b->x, n, AT_BN_TRAIN);
    if (status)
        return status;
    const float *za = at_pass_logits(c->train), *zc = at_pass_logits(c->clean);
    *loss = at_method_ce(c, b, za, c->dlogits);
    memset(c->dlogits2, 0, (size_t)n * k * sizeof(float));
    const double gamma = c->opt[MARGIN_WEIGHT], margin = c->opt[MARGIN];
    double hinge_sum = 0.0;
    for (int i = 0; gamma > 0 && i < n; i++) {
        const int t = s->partner[i];
        const float *ha = za + (size_t)i * k, *hs = zc + (size_t)i * k, *ht = zc + (size_t)t * k;
        double ds = 0.0, dt = 0.0;
        for (int j = 0; j < k; j++) {
            ds += ((double)ha[j] - hs[j]) * ((double)ha[j] - hs[j]);
            dt += ((double)ha[j] - ht[j]) * ((double)ha[j] - ht[j]);
        }
        ds = sqrt(ds);
        dt = sqrt(dt);
        const double w = b->weight ? b->weight[i] : 1.0, hinge = ds - dt + margin;
        if (hinge <= 0.0)
            continue;
        hinge_sum += w * hinge;
        /* d||a - s||/da = (a - s)/||a - s|| (0 where a = s) */
        const double g = gamma * w / b->total, gs = ds > 0 ? g / ds : 0.0, gt = dt > 0 ? g / dt : 0.0;
        for (int j = 0; j < k; j++) {
            const double to_s = (double)ha[j] - hs[j], to_t = (double)ha[j] - ht[j];
            c->dlogits[(size_t)i * k + j] += (float)(gs * to_s - gt * to_t);
            c->dlogits2[(size_t)i * k + j] -= (float)(gs * to_s);
            c->dlogits2[(size_t)t * k + j] += (float)(gt * to_t);
        }
    }
    *loss += gamma * hinge_sum / b->total;
    if ((status = at_backward(c->train, c->dlogits, AT_GRAD_WEIGHTS)))
        return status;
    return gamma > 0 ? at_backward(c->clean, c->dlogits2, AT_GRAD_WEIGHTS) : AT_OK;
}

const at_method at_method_sat = {
    .name = "sat",
    .description = "stylized max-margin AT: an adversary pulled to another class's style and "
                   "content features, CE + triplet margin on logits (Naseer et al., 2020; "
                   "reconstruction)",
    .uses = AT_USES_EPS | AT_USES_ATTACK_STEPS | AT_USES_STEP_SIZE | AT_USES_ATTACK_BN,
    .needs = AT_NEEDS_CLEAN_PASS | AT_NEEDS_ATTACK_PASS,
    .options = sat_options,
    .n_options = AT_OPTION_LEN(sat_options),
    .defaults = sat_defaults,
    .setup = sat_setup,
    .step = sat_step,
    .hard_labels_only = true,
};
