/* coreset_epochs.c: the trainer's side of adversarial coreset training (Dolatabadi, Erfani and
 * Leckie, "l-inf Robustness and Beyond: Unleashing Efficient Adversarial Training", ECCV 2022,
 * Sec. 4 and their code): which epochs train on the whole set, which are skipped (the warm
 * start), when to choose a coreset, and the choice itself: PGD points for the whole training set
 * with the current model (batch statistics in its batch-norm layers, the running ones left
 * alone), their softmax outputs and penultimate embeddings, and CRAIG's selection on them
 * (coreset.c). */
#include "train/coreset.h"
#include "train/method.h"

#include "graph/graph.h"

#include <math.h>
#include <string.h>

enum { STREAM_CORESET = 10 };

int at_coreset_check(const at_train_config *c, at_error *err)
{
    if (c->coreset == 0.0f) {
        if (c->coreset_period || c->coreset_bias_only || c->coreset_warmup > 0 || c->coreset_start > 0)
            return at_fail(err, AT_ERR_ARG, "coreset period, warm-up, start and bias-only need a "
                           "coreset fraction");
        return AT_OK;
    }
    if (!(c->coreset > 0.0f && c->coreset <= 1.0f))
        return at_fail(err, AT_ERR_ARG, "coreset fraction %g out of range (0, 1]", c->coreset);
    if (c->coreset_period < 0 || c->coreset_period > 100000)
        return at_fail(err, AT_ERR_ARG, "coreset period %d out of range 1..100000", c->coreset_period);
    if (c->coreset_start < -1 || c->coreset_start >= c->epochs)
        return at_fail(err, AT_ERR_ARG, "coreset start %d must be an epoch of the run (0..%d)",
                       c->coreset_start, c->epochs - 1);
    if (c->coreset_warmup < -1 || (c->coreset_start >= 0 && c->coreset_warmup > c->coreset_start))
        return at_fail(err, AT_ERR_ARG, "coreset warm-up %d must be within 0..start (%d)",
                       c->coreset_warmup, c->coreset_start);
    return AT_OK;
}

void at_coreset_defaults(at_train_config *c)
{
    if (c->coreset == 0.0f)
        return;
    if (c->coreset_period == 0)
        c->coreset_period = 20;
    if (c->coreset_start < 0)
        c->coreset_start = c->epochs / 2;
    if (c->coreset_warmup < 0)
        c->coreset_warmup = (int)lround(c->coreset * c->coreset_start);
    if (c->coreset_warmup > c->coreset_start)
        c->coreset_warmup = c->coreset_start;
}

at_coreset_phase at_coreset_phase_of(const at_train_config *c, int epoch)
{
    if (c->coreset == 0.0f || epoch < c->coreset_warmup)
        return AT_CORESET_FULL;
    if (epoch < c->coreset_start)
        return AT_CORESET_SKIP;
    return (epoch - c->coreset_start) % c->coreset_period == 0 ? AT_CORESET_SELECT
                                                               : AT_CORESET_TRAIN;
}

/* The node whose output the last linear layer reads (its embedding), or -1 when the model does
 * not end in a linear layer (then only the bias part of the gradient is known). */
static int embedding_node(const at_model *m)
{
    const at_node *last = &m->nodes[m->n_nodes - 1];
    return last->kind == AT_LAYER_linear ? last->inputs[0] : -1;
}

int at_coreset_choose(at_model *model, const at_dataset *train, const at_train_config *c,
                      int epoch, int32_t *selected, float *weights, int *count, at_error *err)
{
    const int n = train->n, k = at_model_num_classes(model);
    const int batch = c->eval_batch_size > 0 ? c->eval_batch_size : 250;
    const int node = c->coreset_bias_only ? -1 : embedding_node(model);
    const size_t embed = node >= 0 ? at_shape_numel(model->nodes[node].out) : 0;
    const size_t image = (size_t)train->c * train->h * train->w;
    at_attack_options o = {.norm = c->norm, .eps = c->eps,
                           .steps = c->attack_steps ? c->attack_steps : 10,
                           .step_size = c->attack_step_size > 0.0f ? c->attack_step_size : c->eps / 4,
                           .bn_mode = AT_BN_BATCH_STATS, .loss = AT_ATTACK_LOSS_CE};
    at_attack *attack = NULL;
    at_pass *pass = NULL;
    float *probs = at_alloc((size_t)n * k * sizeof(float));
    float *embeddings = embed ? at_alloc((size_t)n * embed * sizeof(float)) : NULL;
    float *x = at_alloc((size_t)batch * image * sizeof(float));
    float *x_adv = at_alloc((size_t)batch * image * sizeof(float));
    int32_t *y = at_alloc((size_t)n * sizeof(int32_t)), *idx = at_alloc((size_t)batch * sizeof(int32_t));
    uint64_t *seeds = at_alloc((size_t)batch * sizeof(uint64_t));
    int status = (!probs || (embed && !embeddings) || !x || !x_adv || !y || !idx || !seeds)
                     ? at_fail(err, AT_ERR_NOMEM, "out of memory choosing a coreset")
                     : AT_OK;
    if (!status)
        status = at_attack_create(&attack, "pgd", model, batch, &o, err);
    if (!status)
        status = at_pass_create(&pass, model, batch, AT_PASS_FORWARD_ONLY | AT_PASS_KEEP_ALL, err);
    at_rng rng;
    at_rng_stream(&rng, c->seed, (uint64_t)epoch, STREAM_CORESET);
    const uint64_t seed = at_rng_next(&rng);
    for (int first = 0; !status && first < n; first += batch) {
        const int m = n - first < batch ? n - first : batch;
        for (int i = 0; i < m; i++)
            idx[i] = first + i;
        at_dataset_batch(train, idx, m, x, y + first, NULL, NULL);
        at_attack_seeds(seed, first, m, seeds);
        status = at_attack_run(attack, x, y + first, NULL, m, seeds, x_adv, NULL);
        if (!status)
            status = at_forward(pass, x_adv, m, AT_BN_BATCH_STATS);
        if (status)
            break;
        at_softmax_rows(at_pass_logits(pass), m, k, probs + (size_t)first * k);
        if (embed)
            memcpy(embeddings + (size_t)first * embed, at_pass_activation(pass, node),
                   (size_t)m * embed * sizeof(float));
    }
    if (!status) {
        at_coreset_input in = {.n = n, .classes = k, .embed = (int)embed, .probs = probs,
                               .labels = y, .embeddings = embeddings, .bias_only = !embed};
        int chosen = at_coreset_select(&in, c->coreset, selected, weights, err);
        status = chosen < 0 ? chosen : AT_OK;
        *count = chosen;
    }
    at_attack_free(attack);
    at_pass_free(pass);
    at_free(probs);
    at_free(embeddings);
    at_free(x);
    at_free(x_adv);
    at_free(y);
    at_free(idx);
    at_free(seeds);
    return status;
}
