/* trainer.c: the training loop shared by every method. One epoch: choose a coreset if it is
 * time (coreset_epochs.c), shuffle (from the run seed and the epoch number, so a resumed run sees
 * the same order), compose each batch (batch.c: augmentation, repetition, CutMix, extra and OOD
 * rows, budgets), ask the method for gradients (Free-AT: m times per batch), step the optimiser
 * at the scheduled rate and budget (the schedules' clock counts full-data steps, so a coreset
 * epoch or a skipped one keeps them in step), update the weight average; then validate (clean,
 * and PGD-10 for adversarial methods) and, for fgsm-rs, check for catastrophic overfitting.
 * Buffers are allocated when the trainer is created; an epoch allocates nothing but its
 * validation attack and a coreset choice. */
#include "train/batch.h"
#include "train/coreset.h"
#include "train/share.h"

#include "attack/attack.h"
#include "io/checkpoint.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Purposes of the per-epoch random streams (see at_rng_stream; batch.c has the data's). */
enum { STREAM_METHOD = 3, STREAM_EPS = 8, STREAM_UNSCORED = 9 };

struct at_trainer {
    at_model *model, *ema, *snapshot;
    const at_dataset *train, *val;
    at_train_config config;
    const at_method *method;
    at_optimizer *optimizer;
    at_optimizer *snapshot_optimizer; /* fgsm-rs: the state to roll back to, with `snapshot` */
    at_method_ctx ctx;
    at_batch_maker *batches;
    double opt[AT_MAX_METHOD_OPTIONS * 2];  /* the method's options, resolved */
    bool opt_given[AT_MAX_METHOD_OPTIONS * 2];
    int epochs_done, passes;
    long iters_per_epoch, step;     /* optimiser steps per epoch of the schedule, steps so far */
    double best_score, previous_pgd, previous_fgsm;
    double last_train_acc, last_train_loss; /* of the last epoch that trained; -1 before the first */
    bool stopped;
    at_share *share;                /* data parallelism (at_trainer_share), or NULL */
};

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static bool adversarial(const at_method *m) { return m->uses & AT_USES_EPS; }

/* Every shared option set must be one the method reads (its own options are checked against
 * its table). */
static int check_uses(const at_method *m, const at_train_config *c, at_error *err)
{
    static const struct { unsigned bit; const char *what; } options[] = {
        {AT_USES_EPS, "eps"}, {AT_USES_ATTACK_STEPS, "attack steps"},
        {AT_USES_STEP_SIZE, "attack step size"}, {AT_USES_ATTACK_BN, "attack BN mode"},
        {AT_USES_AUTOENCODER, "an autoencoder"}, {AT_USES_FLOW, "a flow"},
    };
    const bool set[] = {c->eps != 0.0f || c->eps_warmup != 0.0f || c->norm != AT_NORM_LINF,
                        c->attack_steps != 0, c->attack_step_size != 0.0f, c->attack_bn_given,
                        c->autoencoder != NULL, c->flow != NULL};
    for (size_t i = 0; i < sizeof options / sizeof options[0]; i++)
        if (set[i] && !(m->uses & options[i].bit))
            return at_fail(err, AT_ERR_ARG, "method %s does not use %s", m->name, options[i].what);
    if (!adversarial(m) && (c->no_robust_validation))
        return at_fail(err, AT_ERR_ARG, "method %s has no robust validation to turn off", m->name);
    return AT_OK;
}

static int check_config(const at_method *m, const at_train_config *c, at_error *err)
{
    if (c->epochs < 1 || c->epochs > 100000)
        return at_fail(err, AT_ERR_ARG, "epochs %d out of range 1..100000", c->epochs);
    if (c->batch_size < 1 || c->batch_size > 65536)
        return at_fail(err, AT_ERR_ARG, "batch size %d out of range 1..65536", c->batch_size);
    if (!(c->lr.base > 0.0f && isfinite(c->lr.base)))
        return at_fail(err, AT_ERR_ARG, "learning rate %g must be > 0", c->lr.base);
    if (c->augment.crop_padding < 0 || c->augment.crop_padding > 64)
        return at_fail(err, AT_ERR_ARG, "crop padding %d out of range 0..64", c->augment.crop_padding);
    if (!(c->ema >= 0.0f && c->ema < 1.0f))
        return at_fail(err, AT_ERR_ARG, "weight-average decay %g out of range [0, 1)", c->ema);
    if (adversarial(m)) {
        if (!(c->eps > 0.0f && isfinite(c->eps)))
            return at_fail(err, AT_ERR_ARG, "method %s needs eps > 0", m->name);
        int status = at_eps_schedule_check(c, err);
        if (!status)
            status = at_coreset_check(c, err);
        if (status)
            return status;
        if (c->norm == AT_NORM_L1)
            return at_fail(err, AT_ERR_ARG, "training methods support the linf and l2 norms");
        if (!(c->eps_warmup >= 0.0f && c->eps_warmup <= c->epochs))
            return at_fail(err, AT_ERR_ARG, "eps warm-up %g must be within the %d epochs",
                           c->eps_warmup, c->epochs);
    }
    /* eval_eps alone is fine: the tool evaluates any model at it after training */
    if (!adversarial(m) && c->eps_schedule != AT_EPS_FIXED)
        return at_fail(err, AT_ERR_ARG, "method %s has no eps to schedule", m->name);
    if (!adversarial(m) && c->coreset != 0.0f)
        return at_fail(err, AT_ERR_ARG, "coreset training needs an adversarial method (it "
                       "chooses by the gradients at PGD points)");
    if (m->hard_labels_only && (c->cutmix || c->ood != AT_OOD_NONE || c->extra_smoothing > 0.0f))
        return at_fail(err, AT_ERR_ARG, "method %s needs one label per example: no CutMix, OOD "
                       "rows or label smoothing", m->name);
    return AT_OK;
}

static void free_ctx(at_method_ctx *c)
{
    if (c->free_state)
        c->free_state(c->state);
    for (int i = 0; i < c->n_aux; i++)
        at_aux_net_free(c->aux[i]);
    at_pass_free(c->train);
    at_pass_free(c->clean);
    at_pass_free(c->attack_pass);
    at_attack_free(c->attack);
    at_awp_free(c->awp);
    at_free(c->x_adv);
    at_free(c->delta);
    at_free(c->dlogits);
    at_free(c->dlogits2);
    at_free(c->probs);
    at_free(c->target);
    at_free(c->dir);
    at_free(c->scratch);
    at_free(c->seeds);
    at_free(c->correct);
}

static int make_ctx(at_trainer *t, int batch, at_error *err)
{
    at_method_ctx *c = &t->ctx;
    const at_train_config *cfg = &t->config;
    int ch, h, w;
    at_model_input_shape(t->model, &ch, &h, &w);
    c->model = t->model;
    c->optimizer = t->optimizer;
    c->config = cfg;
    c->num_classes = at_model_num_classes(t->model);
    c->batch = batch;
    c->image = (size_t)ch * h * w;
    c->eps = cfg->eps;
    c->opt = t->opt;
    c->opt_given = t->opt_given;
    c->replays = 1;
    const size_t images = (size_t)batch * c->image, logits = (size_t)batch * c->num_classes;
    c->x_adv = at_alloc(images * sizeof(float));
    c->dir = at_alloc(images * sizeof(float));
    c->delta = at_alloc(images * sizeof(float));
    c->dlogits = at_alloc(logits * sizeof(float));
    c->dlogits2 = at_alloc(logits * sizeof(float));
    c->probs = at_alloc(logits * sizeof(float));
    c->target = at_alloc(logits * sizeof(float));
    c->scratch = at_alloc(c->image * sizeof(float));
    c->seeds = at_alloc((size_t)batch * sizeof(uint64_t));
    c->correct = at_alloc((size_t)batch);
    if (!c->x_adv || !c->dir || !c->delta || !c->dlogits || !c->dlogits2 || !c->probs ||
        !c->target || !c->scratch || !c->seeds || !c->correct)
        return at_fail(err, AT_ERR_NOMEM, "out of memory for training buffers");
    const at_method *m = t->method;
    int status = at_pass_create(&c->train, t->model, batch, 0, err);
    if (!status && (m->needs & AT_NEEDS_CLEAN_PASS))
        status = at_pass_create(&c->clean, t->model, batch, 0, err);
    if (!status && (m->needs & AT_NEEDS_ATTACK_PASS))
        status = at_pass_create(&c->attack_pass, t->model, batch, AT_PASS_NO_WEIGHT_GRADS, err);
    if (!status && (m->needs & AT_NEEDS_PGD)) {
        at_attack_options o = {.norm = cfg->norm, .eps = cfg->eps, .steps = cfg->attack_steps,
                               .step_size = cfg->attack_step_size, .bn_mode = cfg->attack_bn_mode,
                               .loss = AT_ATTACK_LOSS_CE};
        status = at_attack_create(&c->attack, "pgd", t->model, batch, &o, err);
    }
    if (!status && m->setup)
        status = m->setup(c, err);
    return status;
}

int at_trainer_create(at_trainer **out, at_model *model, const at_dataset *train,
                      const at_dataset *val, const at_train_config *config, at_error *err)
{
    *out = NULL;
    const at_method *method = at_method_find(config->method ? config->method : "standard");
    if (!method)
        return at_fail(err, AT_ERR_NOTFOUND, "unknown method '%s' (see 'advtrain list methods')",
                       config->method);
    int status = check_uses(method, config, err);
    if (status)
        return status;
    at_train_config cfg = *config;
    cfg.method = method->name;
    if (method->defaults)
        method->defaults(&cfg);
    if ((status = check_config(method, &cfg, err)))
        return status;
    double opt[AT_MAX_METHOD_OPTIONS * 2];
    bool opt_given[AT_MAX_METHOD_OPTIONS * 2];
    if (method->n_options > AT_MAX_METHOD_OPTIONS * 2)
        return at_fail(err, AT_ERR_ARG, "method %s declares too many options", method->name);
    if ((status = at_method_resolve_options(method, &cfg, opt, opt_given, err)))
        return status;
    /* the option texts belong to the caller: the copy keeps only the resolved values */
    cfg.n_method_options = 0;
    if (cfg.eps_schedule == AT_EPS_CURRICULUM && cfg.eps_stages == 0)
        cfg.eps_stages = cfg.epochs < 4 ? cfg.epochs : 4;
    if (cfg.eps_schedule == AT_EPS_ADAPTIVE && cfg.eps_rate == 0.0f)
        cfg.eps_rate = 0.1f;
    at_coreset_defaults(&cfg);
    int c, h, w;
    at_model_input_shape(model, &c, &h, &w);
    if (train->n < 1)
        return at_fail(err, AT_ERR_ARG, "the training set is empty");
    if (train->c != c || train->h != h || train->w != w)
        return at_fail(err, AT_ERR_SHAPE, "model %s takes %dx%dx%d inputs but %s has %dx%dx%d images",
                       at_model_arch(model), c, h, w, train->name, train->c, train->h, train->w);
    if (train->num_classes > at_model_num_classes(model))
        return at_fail(err, AT_ERR_SHAPE, "%s has %d classes but the model outputs %d", train->name,
                       train->num_classes, at_model_num_classes(model));

    at_trainer *t = at_alloc(sizeof *t);
    if (!t)
        return at_fail(err, AT_ERR_NOMEM, "out of memory");
    t->model = model;
    t->train = train;
    t->val = val;
    t->config = cfg;
    t->method = method;
    memcpy(t->opt, opt, sizeof opt);
    memcpy(t->opt_given, opt_given, sizeof opt_given);
    t->best_score = -1.0;
    t->previous_pgd = t->previous_fgsm = -1.0;
    t->last_train_acc = t->last_train_loss = -1.0;
    status = at_batch_maker_create(&t->batches, train, &t->config, at_model_num_classes(model), err);
    if (status) {
        at_trainer_free(t);
        return status;
    }
    t->iters_per_epoch = at_batch_steps(t->batches);
    status = at_optimizer_create(&t->optimizer, model, &cfg.optimizer, err);
    if (!status)
        status = make_ctx(t, at_batch_rows(t->batches), err);
    t->passes = cfg.epochs / t->ctx.replays;
    const bool overfit_check = t->ctx.overfit_check;
    char *spec = NULL;
    if (!status && (cfg.ema > 0.0f || overfit_check)) {
        spec = at_model_spec(model);
        status = spec ? AT_OK : AT_ERR_NOMEM;
    }
    if (!status && cfg.ema > 0.0f && !(status = at_model_create_from_spec(&t->ema, spec, err)))
        status = at_model_copy_weights(t->ema, model, err);
    if (!status && spec && overfit_check &&
        !(status = at_model_create_from_spec(&t->snapshot, spec, err)))
        status = at_optimizer_create(&t->snapshot_optimizer, t->snapshot, &cfg.optimizer, err);
    free(spec);
    if (status) {
        at_trainer_free(t);
        return status;
    }
    *out = t;
    return AT_OK;
}

void at_trainer_free(at_trainer *t)
{
    if (!t)
        return;
    at_share_free(t->share);
    free_ctx(&t->ctx);
    at_batch_maker_free(t->batches);
    at_optimizer_free(t->optimizer);
    at_model_free(t->ema);
    at_model_free(t->snapshot);
    at_optimizer_free(t->snapshot_optimizer);
    at_free(t);
}

at_optimizer *at_trainer_optimizer(at_trainer *t) { return t->optimizer; }
int at_trainer_epoch(const at_trainer *t) { return t->epochs_done; }
int at_trainer_epochs(const at_trainer *t) { return t->passes; }
const at_train_config *at_trainer_config(const at_trainer *t) { return &t->config; }

bool at_trainer_method_option(const at_trainer *t, int index, const at_option_info **info,
                              char *text, size_t cap)
{
    if (index < 0 || index >= t->method->n_options)
        return false;
    if (info)
        *info = &t->method->options[index];
    if (text)
        at_option_format(&t->method->options[index], t->opt[index], text, cap);
    return true;
}
at_model *at_trainer_eval_model(at_trainer *t) { return t->ema ? t->ema : t->model; }
bool at_trainer_stopped(const at_trainer *t) { return t->stopped; }

at_trainer_progress at_trainer_get_progress(const at_trainer *t)
{
    at_trainer_progress p = {t->epochs_done, t->best_score, t->previous_pgd, t->previous_fgsm,
                             t->step, t->last_train_acc, t->last_train_loss};
    return p;
}

int at_trainer_set_progress(at_trainer *t, const at_trainer_progress *p, at_error *err)
{
    if (p->epochs_done < 0 || p->epochs_done > t->passes)
        return at_fail(err, AT_ERR_ARG, "cannot resume at epoch %d of a %d-epoch run", p->epochs_done,
                       t->passes);
    t->epochs_done = p->epochs_done;
    t->step = p->optimizer_steps >= 0 ? p->optimizer_steps
                                      : (long)p->epochs_done * t->iters_per_epoch * t->ctx.replays;
    t->best_score = p->best_score;
    t->previous_pgd = p->check_pgd;
    t->previous_fgsm = p->check_fgsm;
    t->last_train_acc = p->last_train_acc;
    t->last_train_loss = p->last_train_loss;
    if (t->snapshot) {
        int status = at_optimizer_copy_state(t->snapshot_optimizer, t->optimizer, err);
        return status ? status : at_model_copy_weights(t->snapshot, t->model, err);
    }
    return AT_OK;
}

int at_trainer_init_weights(at_trainer *t, const char *path, at_error *err)
{
    if (!path)
        return at_fail(err, AT_ERR_ARG, "at_trainer_init_weights: path is NULL");
    /* after a step the optimiser and the schedules are no longer fresh, and a resumed run has
     * its own weights */
    if (t->epochs_done > 0 || t->step > 0)
        return at_fail(err, AT_ERR_STATE, "%s: weights are set only before the first epoch", path);
    int status = at_checkpoint_load_init(path, t->model, err);
    /* the weight average starts from the weights it averages */
    if (!status && t->ema)
        status = at_model_copy_weights(t->ema, t->model, err);
    return status;
}

/* Rebuffi et al. (NeurIPS 2021): theta_bar <- d theta_bar + (1 - d) theta with the TensorFlow
 * warm-up d = min(tau, (1 + t) / (10 + t)); batch-norm statistics are the live model's. */
static void update_ema(at_trainer *t)
{
    size_t n;
    float *avg = at_model_params(t->ema, &n);
    const float *w = at_model_params(t->model, NULL);
    double d = (1.0 + t->step) / (10.0 + t->step);
    const float decay = (float)(d < t->config.ema ? d : t->config.ema);
    for (size_t i = 0; i < n; i++)
        avg[i] = decay * avg[i] + (1.0f - decay) * w[i];
    for (int i = 0; i < at_model_tensor_count(t->model); i++) {
        at_tensor_info src = at_model_tensor(t->model, i), dst = at_model_tensor(t->ema, i);
        if (src.is_param)
            continue;
        if (src.dtype == AT_F32)
            memcpy(dst.data, src.data, src.numel * sizeof(float));
        else
            memcpy(dst.data_i64, src.data_i64, src.numel * sizeof(int64_t));
    }
}

/* PGD-`steps` (step eps/4, random start, eval mode) accuracy of `model` on `ds`. */
static int robust_accuracy(at_model *model, const at_dataset *ds, const at_train_config *c,
                           float eps, int points, int steps, const char *attack, float step_size,
                           double *accuracy, at_error *err)
{
    at_eval_plan plan = {.n_attacks = 1, .points = points, .batch_size = c->eval_batch_size,
                         .seed = c->seed ^ 0x76616c6964ull};
    plan.attacks[0] = attack;
    plan.options[0] = (at_attack_options){.norm = c->norm, .eps = eps, .steps = steps,
                                          .step_size = step_size, .loss = AT_ATTACK_LOSS_CE};
    at_eval_result r;
    int status = at_eval_robust(model, ds, &plan, &r, NULL, NULL, err);
    if (status)
        return status;
    *accuracy = (double)r.robust_after[0] / r.points;
    at_eval_result_free(&r);
    return AT_OK;
}

/* Wong et al.'s check: PGD accuracy on a fixed training batch collapsing (by more than 20
 * points) while FGSM accuracy rises is catastrophic overfitting; the weights go back to the
 * previous epoch's and training stops. */
static int check_overfitting(at_trainer *t, at_epoch_stats *st, at_error *err)
{
    const at_train_config *c = &t->config;
    const int points = t->train->n < 512 ? t->train->n : 512;
    double pgd, fgsm;
    int status = robust_accuracy(t->model, t->train, c, c->eps, points, 10, "pgd", c->eps / 4, &pgd,
                                 err);
    if (!status)
        status = robust_accuracy(t->model, t->train, c, c->eps, points, 1, "pgd", c->attack_step_size,
                                 &fgsm, err);
    if (status)
        return status;
    st->check_pgd_acc = pgd;
    st->check_fgsm_acc = fgsm;
    if (t->previous_pgd >= 0.0 && pgd < t->previous_pgd - 0.2 && fgsm >= t->previous_fgsm) {
        st->overfitting_detected = true;
        t->stopped = true;
        if ((status = at_model_copy_weights(t->model, t->snapshot, err)))
            return status;
        return at_optimizer_copy_state(t->optimizer, t->snapshot_optimizer, err);
    }
    t->previous_pgd = pgd;
    t->previous_fgsm = fgsm;
    if ((status = at_optimizer_copy_state(t->snapshot_optimizer, t->optimizer, err)))
        return status;
    return at_model_copy_weights(t->snapshot, t->model, err);
}

static int validate(at_trainer *t, at_epoch_stats *st, at_error *err)
{
    st->val_loss = st->val_acc = st->val_robust_acc = -1.0;
    if (!t->val || t->val->n == 0)
        return AT_OK;
    at_model *m = at_trainer_eval_model(t);
    long correct;
    int status = at_evaluate_clean(m, t->val, t->config.eval_batch_size, &correct, &st->val_loss, err);
    if (status)
        return status;
    st->val_acc = (double)correct / t->val->n;
    double score = st->val_acc;
    if (adversarial(t->method) && !t->config.no_robust_validation) {
        /* Rice et al.: PGD-10 robust accuracy on the held-out split chooses the checkpoint */
        const float eps = t->config.eval_eps > 0.0f ? t->config.eval_eps : t->config.eps;
        if ((status = robust_accuracy(m, t->val, &t->config, eps, 0, 10, "pgd", eps / 4,
                                      &st->val_robust_acc, err)))
            return status;
        score = st->val_robust_acc;
    }
    st->best = score > t->best_score;
    if (st->best)
        t->best_score = score;
    return AT_OK;
}

/* CRAIG's weighted subset for this epoch on, in the batches' pool. */
static int choose_coreset(at_trainer *t, int epoch, int *size, at_error *err)
{
    const int n = t->train->n;
    int32_t *selected = at_alloc((size_t)n * sizeof(int32_t));
    float *weights = at_alloc((size_t)n * sizeof(float));
    int status = !selected || !weights ? at_fail(err, AT_ERR_NOMEM, "out of memory for a coreset")
                                       : AT_OK;
    if (!status)
        status = at_coreset_choose(t->model, t->train, &t->config, epoch, selected, weights, size,
                                   err);
    if (!status)
        status = at_batch_set_pool(t->batches, selected, weights, *size, err);
    at_free(selected);
    at_free(weights);
    return status;
}

int at_trainer_state(at_trainer *t, at_st_tensor *out, int cap)
{
    int n = 0, count;
    float *budgets = at_batch_budgets(t->batches, &count);
    if (budgets && n < cap)
        out[n++] = (at_st_tensor){"trainer.eps_budgets", "F32", 1, {count}, budgets,
                                  (size_t)count * sizeof(float)};
    const int32_t *indices;
    const float *weights;
    count = at_batch_pool(t->batches, &indices, &weights);
    if (count && n + 2 <= cap) {
        out[n++] = (at_st_tensor){"trainer.coreset_indices", "I32", 1, {count}, indices,
                                  (size_t)count * sizeof(int32_t)};
        out[n++] = (at_st_tensor){"trainer.coreset_weights", "F32", 1, {count}, weights,
                                  (size_t)count * sizeof(float)};
    }
    for (int i = 0; i < t->ctx.n_aux; i++)
        n += at_aux_net_state(t->ctx.aux[i], out + n, cap - n);
    return n;
}

int at_trainer_state_count(const at_trainer *t)
{
    int n = 3; /* the budgets and the coreset */
    for (int i = 0; i < t->ctx.n_aux; i++)
        n += at_aux_net_state_count(t->ctx.aux[i]);
    return n;
}

/* A saved 1-dim tensor of `dtype` and `count` values, or an error naming it. */
static int saved_vector(const at_safetensors *st, const char *name, const char *dtype, int count,
                        const at_st_tensor **out, at_error *err)
{
    const at_st_tensor *v = at_st_find(st, name);
    *out = v;
    if (!v)
        return count < 0 ? AT_OK : at_fail(err, AT_ERR_NOTFOUND, "the checkpoint has no %s", name);
    if (strcmp(v->dtype, dtype) || v->ndim != 1 || (count >= 0 && v->shape[0] != count))
        return at_fail(err, AT_ERR_FORMAT, "the checkpoint's %s is not %s [%d]", name, dtype, count);
    return AT_OK;
}

int at_trainer_restore_state(at_trainer *t, const at_safetensors *st, at_error *err)
{
    for (int i = 0; i < t->ctx.n_aux; i++) {
        int status = at_aux_net_restore(t->ctx.aux[i], st, err);
        if (status)
            return status;
    }
    int count;
    float *budgets = at_batch_budgets(t->batches, &count);
    const at_st_tensor *v;
    int status = budgets ? saved_vector(st, "trainer.eps_budgets", "F32", count, &v, err) : AT_OK;
    if (status)
        return status;
    if (budgets)
        memcpy(budgets, v->data, v->nbytes);
    const at_st_tensor *indices, *weights;
    if ((status = saved_vector(st, "trainer.coreset_indices", "I32", -1, &indices, err)))
        return status;
    const bool coreset_chosen = t->config.coreset > 0.0f && t->epochs_done > t->config.coreset_start;
    if (!indices && coreset_chosen)
        return at_fail(err, AT_ERR_NOTFOUND, "the checkpoint has no coreset, though epoch %d "
                       "trained on one", t->epochs_done);
    if (!indices)
        return AT_OK;
    count = (int)indices->shape[0];
    if ((status = saved_vector(st, "trainer.coreset_weights", "F32", count, &weights, err)))
        return status;
    int32_t *idx = at_alloc((size_t)count * sizeof(int32_t));
    float *w = at_alloc((size_t)count * sizeof(float));
    status = !idx || !w ? at_fail(err, AT_ERR_NOMEM, "out of memory") : AT_OK;
    if (!status) {
        memcpy(idx, indices->data, indices->nbytes); /* the file's bytes need not be aligned */
        memcpy(w, weights->data, weights->nbytes);
        status = at_batch_set_pool(t->batches, idx, w, count, err);
    }
    at_free(idx);
    at_free(w);
    return status;
}

int at_trainer_share(at_trainer *t, at_shard *shard, at_error *err)
{
    if (t->share)
        return at_fail(err, AT_ERR_STATE, "a trainer is shared once");
    return at_share_create(&t->share, shard, at_batch_rows(t->batches), err);
}

/* The method's step on this process's rows of the batch (all of them without sharing): the
 * model's gradients summed over the processes, the loss and every row's correct flag those of
 * the whole batch. False (*skip) for a batch too small to share. */
static int shared_step(at_trainer *t, const at_batch *whole, double *loss, bool *skip)
{
    *skip = false;
    if (!t->share)
        return t->method->step(&t->ctx, whole, loss);
    at_batch mine;
    if (!at_share_rows(t->share, whole, t->ctx.image, t->ctx.num_classes, &mine)) {
        *skip = true;
        return AT_OK;
    }
    at_share_attach(t->share, &t->ctx, true);
    int status = t->method->step(&t->ctx, &mine, loss);
    at_share_attach(t->share, &t->ctx, false);
    if (!status)
        status = at_share_results(t->share, whole, &mine, t->ctx.correct, loss);
    return status;
}

/* Whether every parameter is finite: a float is NaN or infinite exactly when its exponent bits
 * are all set, so the largest magnitude's bits (an integer maximum, which vectorises) tell. One
 * pass over the slab costs about 0.2 ms for SmallCNN's 312k parameters, under 0.5% of its
 * cheapest step (standard training, batch 50). A step whose loss was finite can still leave
 * non-finite weights (a huge learning rate or gradient); no checkpoint may hold them. */
static bool params_finite(at_model *model)
{
    size_t count;
    const float *p = at_model_params(model, &count);
    uint32_t largest = 0;
    for (size_t i = 0; i < count; i++) {
        uint32_t bits;
        memcpy(&bits, &p[i], sizeof bits);
        bits &= 0x7fffffffu;
        largest = bits > largest ? bits : largest;
    }
    return largest < 0x7f800000u;
}

int at_trainer_run_epoch(at_trainer *t, const at_train_callbacks *cb, at_epoch_stats *stats,
                         at_error *err)
{
    const at_train_config *cfg = &t->config;
    if (t->stopped || t->epochs_done >= t->passes)
        return at_fail(err, AT_ERR_STATE, "all %d epochs are done", t->passes);
    const int epoch = t->epochs_done; /* 0-based */
    at_rng method_rng, unscored_rng, eps_rng;
    /* sharing a batch, a method that does not draw per row of the whole batch draws from a
     * stream of each process's own (rank 0's is one process's) */
    const uint64_t own = t->share && !t->method->row_draws ? (uint64_t)at_share_rank(t->share) : 0;
    at_rng_stream(&method_rng, cfg->seed + own * 0x9E3779B97F4A7C15ull, (uint64_t)epoch, STREAM_METHOD);
    at_rng_stream(&unscored_rng, cfg->seed + own * 0x9E3779B97F4A7C15ull, (uint64_t)epoch,
                  STREAM_UNSCORED);
    at_rng_stream(&eps_rng, cfg->seed, (uint64_t)epoch, STREAM_EPS);
    memset(stats, 0, sizeof *stats);
    const at_coreset_phase phase = at_coreset_phase_of(cfg, epoch);
    if (phase == AT_CORESET_SELECT) {
        double begin = now_seconds();
        int status = choose_coreset(t, epoch, &stats->coreset_size, err);
        if (status)
            return status;
        stats->selection_seconds = now_seconds() - begin;
    }
    at_batch_begin_epoch(t->batches, epoch);
    t->ctx.rng = &method_rng;
    t->ctx.rng_unscored = &unscored_rng;
    t->ctx.epoch = epoch;
    t->ctx.last_train_acc = t->last_train_acc;
    t->ctx.last_train_loss = t->last_train_loss;

    double loss_sum = 0.0, start = now_seconds();
    long correct = 0, seen = 0, images = 0;
    float lr = 0.0f;
    /* a coreset epoch has fewer steps: the schedules' clock still covers one epoch */
    const long steps = phase == AT_CORESET_SKIP ? 0 : at_batch_steps(t->batches);
    const int m = t->ctx.replays;
    for (long b = 0; b < steps; b++) {
        at_batch batch;
        double last_loss = 0.0;
        bool passed_over = false;
        for (int r = 0; r < m; r++) {
            /* the schedules count steps of the full data: an epoch is iters_per_epoch x m */
            const long clock = ((long)epoch * t->iters_per_epoch + b * t->iters_per_epoch / steps) * m + r;
            lr = at_lr_at(&cfg->lr, clock, t->iters_per_epoch, cfg->epochs);
            if (adversarial(t->method))
                t->ctx.eps = at_eps_now(cfg, clock, t->iters_per_epoch, &eps_rng);
            if (r == 0)
                at_batch_make(t->batches, b, t->ctx.eps, &batch);
            double loss = 0.0;
            bool skip;
            at_model_zero_grad(t->model);
            t->ctx.step = t->step;
            int status = shared_step(t, &batch, &loss, &skip);
            if ((passed_over = skip))
                break; /* every process passes this batch over */
            if (status)
                return at_fail(err, status, "method %s failed at epoch %d batch %ld: %s",
                               t->method->name, epoch + 1, b + 1, at_status_string(status));
            if (!isfinite(loss)) {
                if (t->method->after_step)
                    t->method->after_step(&t->ctx);
                return at_fail(err, AT_ERR_NUMERIC,
                               "training loss became %g at epoch %d batch %ld (learning rate %g); "
                               "lower --lr", loss, epoch + 1, b + 1, lr);
            }
            at_optimizer_step(t->optimizer, lr);
            if (t->method->after_step)
                t->method->after_step(&t->ctx);
            if (!params_finite(t->model))
                return at_fail(err, AT_ERR_NUMERIC,
                               "weights became non-finite at epoch %d batch %ld (learning rate %g); "
                               "lower --lr", epoch + 1, b + 1, lr);
            if (t->share && !at_share_sync_bn(t->share) &&
                (status = at_share_buffers(t->share, t->model)))
                return at_fail(err, status, "exchanging running statistics at epoch %d batch %ld: %s",
                               epoch + 1, b + 1, at_status_string(status));
            if (t->ema)
                update_ema(t);
            t->step++;
            loss_sum += loss * batch.scored;
            for (int i = 0; i < batch.scored; i++)
                correct += t->ctx.correct[i];
            seen += batch.scored;
            last_loss = loss;
        }
        if (passed_over)
            continue;
        at_batch_update_budgets(t->batches, t->ctx.correct);
        images += batch.scored;
        if (cb && cb->on_batch)
            cb->on_batch(cb->user, epoch + 1, images, at_batch_epoch_images(t->batches), last_loss);
    }
    double seconds = now_seconds() - start;
    stats->epoch = epoch + 1;
    stats->epochs = t->passes;
    stats->skipped = phase == AT_CORESET_SKIP;
    stats->steps = steps * m;
    stats->train_loss = seen ? loss_sum / seen : 0.0;
    stats->train_acc = seen ? (double)correct / seen : 0.0;
    if (seen) {
        /* the loss kept to float precision: summed over processes, its double differs in the
         * last bits from one process's, and a checkpoint of N processes must be one process's */
        t->last_train_acc = stats->train_acc;
        t->last_train_loss = (float)stats->train_loss;
    }
    stats->lr_last = lr;
    stats->eps = t->ctx.eps;
    stats->seconds = seconds;
    stats->images_per_second = seconds > 0 ? images / seconds : 0.0;
    stats->check_pgd_acc = stats->check_fgsm_acc = -1.0;
    int status = AT_OK;
    if (t->snapshot && !stats->skipped)
        status = check_overfitting(t, stats, err);
    if (!status && !stats->skipped)
        status = validate(t, stats, err);
    if (stats->skipped) /* the weights did not change: nothing to validate */
        stats->val_loss = stats->val_acc = stats->val_robust_acc = -1.0;
    if (status)
        return status;
    t->epochs_done++;
    if (cb && cb->on_epoch) {
        int stop = cb->on_epoch(cb->user, stats);
        if (stop)
            return stop;
    }
    return AT_OK;
}
