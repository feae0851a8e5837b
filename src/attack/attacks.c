/* attacks.c: the table of attacks, and what happens around every run: options checked and
 * defaulted once, the pass seeded, the result measured (norms, range, success) and recorded. */
#include "attack/attack.h"

#include <math.h>
#include <string.h>

extern const at_attack_ops at_attack_fgsm, at_attack_pgd, at_attack_apgd_ce, at_attack_apgd_dlr,
    at_attack_apgd_t, at_attack_fab_t, at_attack_square, at_attack_iwd, at_attack_jsa;

static const at_attack_ops *const attack_table[] = {
    &at_attack_fgsm, &at_attack_pgd, &at_attack_apgd_ce, &at_attack_apgd_dlr, &at_attack_apgd_t,
    &at_attack_fab_t, &at_attack_square, &at_attack_iwd, &at_attack_jsa,
};
#define N_ATTACKS (int)(sizeof attack_table / sizeof attack_table[0])

bool at_attack_info(int index, const char **name, const char **description)
{
    if (index < 0 || index >= N_ATTACKS)
        return false;
    if (name)
        *name = attack_table[index]->name;
    if (description)
        *description = attack_table[index]->description;
    return true;
}

const char *at_norm_name(at_norm norm)
{
    switch (norm) {
    case AT_NORM_LINF: return "linf";
    case AT_NORM_L2: return "l2";
    case AT_NORM_L1: return "l1";
    }
    return "unknown";
}

void at_attack_free(at_attack *a)
{
    if (!a)
        return;
    if (a->state && a->ops->free_state)
        a->ops->free_state(a->state);
    at_pass_free(a->pass);
    at_free(a->work);
    at_free(a->grad);
    at_free(a->dlogits);
    at_free(a->loss);
    at_free(a->logits);
    at_free(a->correct);
    at_free(a->scratch);
    at_free(a->rngs);
    at_free(a);
}

int at_attack_create(at_attack **out, const char *name, at_model *model, int max_batch,
                     const at_attack_options *options, at_error *err)
{
    *out = NULL;
    const at_attack_ops *ops = NULL;
    for (int i = 0; i < N_ATTACKS && !ops; i++)
        if (strcmp(attack_table[i]->name, name) == 0)
            ops = attack_table[i];
    if (!ops)
        return at_fail(err, AT_ERR_NOTFOUND, "unknown attack '%s' (see 'advtrain list attacks')", name);
    at_attack_options o = options ? *options : (at_attack_options){0};
    if (o.norm != AT_NORM_LINF && o.norm != AT_NORM_L2 && o.norm != AT_NORM_L1)
        return at_fail(err, AT_ERR_ARG, "%s: unknown norm", name);
    if (o.norm == AT_NORM_L1 && !ops->supports_l1)
        return at_fail(err, AT_ERR_ARG, "%s does not support the L1 norm", name);
    if (!(o.eps >= 0.0f && isfinite(o.eps)))
        return at_fail(err, AT_ERR_ARG, "%s: eps must be >= 0 (got %g)", name, o.eps);
    if (o.steps < 0 || o.steps > 100000 || o.restarts < 0 || o.restarts > 1000 || o.eot < 0 ||
        o.eot > 10000 || o.queries < 0 || o.targets < 0)
        return at_fail(err, AT_ERR_ARG, "%s: steps, restarts, eot, queries and targets must be >= 0",
                       name);
    if (!(o.step_size >= 0.0f && isfinite(o.step_size)))
        return at_fail(err, AT_ERR_ARG, "%s: step size must be >= 0", name);
    if (o.bn_mode != AT_BN_EVAL && o.bn_mode != AT_BN_TRAIN && o.bn_mode != AT_BN_BATCH_STATS)
        return at_fail(err, AT_ERR_ARG, "%s: unknown batch-norm mode", name);
    const int k = at_model_num_classes(model);
    if (k < ops->min_classes)
        return at_fail(err, AT_ERR_ARG, "%s needs a model with at least %d classes (this one has %d)",
                       name, ops->min_classes, k);
    if (k > 4096)
        return at_fail(err, AT_ERR_ARG, "%s: at most 4096 classes", name);
    if (o.loss == AT_ATTACK_LOSS_DEFAULT)
        o.loss = ops->default_loss;
    if (o.loss == AT_ATTACK_LOSS_DLR && k < (o.targeted || ops->needs_targets ? 4 : 3))
        return at_fail(err, AT_ERR_ARG, "%s: the %sDLR loss needs at least %d classes", name,
                       o.targeted || ops->needs_targets ? "targeted " : "",
                       o.targeted || ops->needs_targets ? 4 : 3);
    if (o.steps == 0)
        o.steps = ops->default_steps;
    if (o.restarts == 0)
        o.restarts = 1;
    if (o.eot == 0)
        o.eot = 1;
    if (o.queries == 0)
        o.queries = 5000;
    if (!(o.p_init > 0.0f && o.p_init <= 1.0f))
        o.p_init = 0.8f;
    if (o.targets == 0 || o.targets > k - 1)
        o.targets = k - 1 < 9 ? k - 1 : 9;
    if (o.step_size == 0.0f)
        o.step_size = 2.5f * o.eps / (float)(o.steps > 0 ? o.steps : 1);
    if (ops->needs_flow) {
        if (!o.flow)
            return at_fail(err, AT_ERR_ARG, "%s needs a normalizing flow (--flow FILE, from "
                           "advtrain train-flow)", name);
        if (o.norm != AT_NORM_LINF)
            return at_fail(err, AT_ERR_ARG, "%s supports the Linf norm only", name);
        if (!(o.eps_z >= 0.0f && isfinite(o.eps_z)) ||
            !(o.step_size_z >= 0.0f && isfinite(o.step_size_z)))
            return at_fail(err, AT_ERR_ARG, "%s: eps-z and its step size must be >= 0", name);
        int c, h, w;
        at_model_input_shape(model, &c, &h, &w);
        const at_flow_options *fo = at_flow_get_options(o.flow);
        if (fo->channels != c || fo->height != h || fo->width != w)
            return at_fail(err, AT_ERR_SHAPE, "%s: the flow takes %dx%dx%d images, the model "
                           "%dx%dx%d", name, fo->channels, fo->height, fo->width, c, h, w);
        if (at_flow_max_batch(o.flow) < max_batch)
            return at_fail(err, AT_ERR_ARG, "%s: the flow takes batches of up to %d, the attack "
                           "%d", name, at_flow_max_batch(o.flow), max_batch);
        if (o.step_size_z == 0.0f)
            o.step_size_z = 2.5f * o.eps_z / (float)(o.steps > 0 ? o.steps : 1);
    } else {
        o.flow = NULL;
        o.eps_z = o.step_size_z = 0.0f;
    }

    at_attack *a = at_alloc(sizeof *a);
    if (!a)
        return at_fail(err, AT_ERR_NOMEM, "out of memory");
    a->ops = ops;
    a->o = o;
    a->model = model;
    a->max_batch = max_batch;
    a->classes = k;
    int c, h, w;
    at_model_input_shape(model, &c, &h, &w);
    a->image = (size_t)c * h * w;
    /* a gradient-free attack gets a forward-only pass: its activation buffers are reused layer
     * after layer, which takes less memory (no measurable change in speed) */
    int status = at_pass_create(&a->pass, model, max_batch,
                                ops->gradient_free ? AT_PASS_FORWARD_ONLY : AT_PASS_NO_WEIGHT_GRADS,
                                err);
    if (status) {
        at_free(a);
        return status;
    }
    if (ops->setup && (status = ops->setup(a, err))) {
        at_attack_free(a);
        return status;
    }
    size_t per = ops->workspace ? ops->workspace(a, a->image) : 0;
    a->work = per ? at_alloc(per * (size_t)max_batch * sizeof(float)) : NULL;
    a->grad = at_alloc(a->image * (size_t)max_batch * sizeof(float));
    a->dlogits = at_alloc((size_t)k * max_batch * sizeof(float));
    a->loss = at_alloc((size_t)max_batch * sizeof(float));
    a->logits = at_alloc((size_t)k * max_batch * sizeof(float));
    a->correct = at_alloc((size_t)max_batch);
    a->scratch = at_alloc(a->image * sizeof(float));
    a->rngs = at_alloc((size_t)max_batch * sizeof(at_rng));
    if ((per && !a->work) || !a->grad || !a->dlogits || !a->loss || !a->logits || !a->correct ||
        !a->scratch || !a->rngs) {
        at_attack_free(a);
        return at_fail(err, AT_ERR_NOMEM, "out of memory for the %s attack", name);
    }
    at_attack_reset_stats(a);
    *out = a;
    return AT_OK;
}

const at_attack_options *at_attack_get_options(const at_attack *a) { return &a->o; }
const at_attack_stats *at_attack_get_stats(const at_attack *a) { return &a->stats; }

void at_attack_reset_stats(at_attack *a)
{
    memset(&a->stats, 0, sizeof a->stats);
    a->stats.bn_mode = a->o.bn_mode;
}

/* Measures what was returned: norms, range, finiteness, and whether the model is fooled. */
static int measure(at_attack *a, const float *x, const float *x_adv, const int32_t *y, int n,
                   uint8_t *fooled)
{
    at_attack_stats *s = &a->stats;
    for (int i = 0; i < n; i++) {
        const float *xi = x + (size_t)i * a->image, *ai = x_adv + (size_t)i * a->image;
        double linf = 0.0, l2 = 0.0, l1 = 0.0;
        for (size_t j = 0; j < a->image; j++) {
            double d = fabs((double)ai[j] - xi[j]);
            linf = d > linf ? d : linf;
            l2 += d * d;
            l1 += d;
            s->out_of_range += ai[j] < 0.0f || ai[j] > 1.0f;
            s->nonfinite_outputs += !isfinite(ai[j]);
        }
        l2 = sqrt(l2);
        s->max_linf = linf > s->max_linf ? linf : s->max_linf;
        s->max_l2 = l2 > s->max_l2 ? l2 : s->max_l2;
        s->max_l1 = l1 > s->max_l1 ? l1 : s->max_l1;
    }
    int status = at_forward(a->pass, x_adv, n, a->o.bn_mode);
    if (status)
        return status;
    s->forward_evals += n;
    uint8_t *correct = a->correct;
    at_count_correct(at_pass_logits(a->pass), n, a->classes, y, correct);
    for (int i = 0; i < n; i++) {
        s->fooled += !correct[i];
        if (fooled)
            fooled[i] = !correct[i];
    }
    s->points += n;
    return AT_OK;
}

void at_attack_seeds(uint64_t seed, long first, int n, uint64_t *seeds)
{
    for (int i = 0; i < n; i++) {
        at_rng r;
        at_rng_stream(&r, seed, (uint64_t)(first + i), 0x61747461636bull /* "attack" */);
        seeds[i] = at_rng_next(&r);
    }
}

int at_attack_run(at_attack *a, const float *x, const int32_t *y, const int32_t *target, int n,
                  const uint64_t *seeds, float *x_adv, uint8_t *fooled)
{
    if (n < 1 || n > a->max_batch || !x || !y || !x_adv || x == x_adv || !seeds)
        return AT_ERR_ARG;
    if (a->o.targeted && !target)
        return AT_ERR_ARG;
    for (int i = 0; i < n; i++)
        if (y[i] < 0 || y[i] >= a->classes || (a->o.targeted && (target[i] < 0 || target[i] >= a->classes)))
            return AT_ERR_ARG;
    for (int i = 0; i < n; i++)
        at_rng_seed(&a->rngs[i], seeds[i]);
    at_pass_set_seed(a->pass, seeds[0]);
    int status;
    if (a->o.eps == 0.0f && a->o.eps_z == 0.0f) {
        memcpy(x_adv, x, (size_t)n * a->image * sizeof(float)); /* nothing to search */
        status = AT_OK;
    } else {
        status = a->ops->run(a, x, y, target, n, x_adv);
    }
    if (status)
        return status;
    return measure(a, x, x_adv, y, n, fooled);
}
