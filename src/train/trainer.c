/* trainer.c: the training loop shared by every method. One epoch: shuffle (from the run seed and
 * the epoch number, so a resumed run sees the same order), fill each batch (with augmentation),
 * ask the method for gradients, step the optimiser at the scheduled rate, then validate.
 * Everything is allocated in at_trainer_create; an epoch allocates nothing. */
#include "train/method.h"

#include "core/util.h"

#include <math.h>
#include <string.h>
#include <time.h>

/* Purposes of the per-epoch random streams (see at_rng_stream). */
enum { STREAM_SHUFFLE = 1, STREAM_AUGMENT = 2, STREAM_METHOD = 3 };

struct at_trainer {
    at_model *model;
    const at_dataset *train, *val;
    at_train_config config;
    const at_method *method;
    at_sgd *sgd;
    at_pass *pass;
    float *x, *dlogits;
    int32_t *y, *order;
    int epochs_done;
    long iters_per_epoch;
};

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int check_config(const at_train_config *c, at_error *err)
{
    if (c->epochs < 1 || c->epochs > 100000)
        return at_fail(err, AT_ERR_ARG, "epochs %d out of range 1..100000", c->epochs);
    if (c->batch_size < 1 || c->batch_size > 65536)
        return at_fail(err, AT_ERR_ARG, "batch size %d out of range 1..65536", c->batch_size);
    if (!(c->lr.base > 0.0f && isfinite(c->lr.base)))
        return at_fail(err, AT_ERR_ARG, "learning rate %g must be > 0", c->lr.base);
    if (c->augment.crop_padding < 0 || c->augment.crop_padding > 64)
        return at_fail(err, AT_ERR_ARG, "crop padding %d out of range 0..64", c->augment.crop_padding);
    return AT_OK;
}

int at_trainer_create(at_trainer **out, at_model *model, const at_dataset *train,
                      const at_dataset *val, const at_train_config *config, at_error *err)
{
    *out = NULL;
    int status = check_config(config, err);
    if (status)
        return status;
    const at_method *method = at_method_find(config->method ? config->method : "standard");
    if (!method)
        return at_fail(err, AT_ERR_NOTFOUND, "unknown method '%s' (see 'advtrain list methods')",
                       config->method);
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
    t->config = *config;
    t->method = method;
    t->config.method = method->name;
    t->iters_per_epoch = (train->n + config->batch_size - 1) / config->batch_size;
    const int batch = config->batch_size < train->n ? config->batch_size : train->n;
    const size_t image = (size_t)c * h * w;
    const int k = at_model_num_classes(model);
    t->x = at_alloc((size_t)batch * image * sizeof(float));
    t->dlogits = at_alloc((size_t)batch * k * sizeof(float));
    t->y = at_alloc((size_t)batch * sizeof(int32_t));
    t->order = at_alloc((size_t)train->n * sizeof(int32_t));
    if (!t->x || !t->dlogits || !t->y || !t->order) {
        at_trainer_free(t);
        return at_fail(err, AT_ERR_NOMEM, "out of memory for training buffers");
    }
    status = at_sgd_create(&t->sgd, model, &config->sgd, err);
    if (!status)
        status = at_pass_create(&t->pass, model, batch, 0, err);
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
    at_sgd_free(t->sgd);
    at_pass_free(t->pass);
    at_free(t->x);
    at_free(t->dlogits);
    at_free(t->y);
    at_free(t->order);
    at_free(t);
}

at_sgd *at_trainer_sgd(at_trainer *t) { return t->sgd; }
int at_trainer_epoch(const at_trainer *t) { return t->epochs_done; }

int at_trainer_set_epoch(at_trainer *t, int epochs_done, at_error *err)
{
    if (epochs_done < 0 || epochs_done > t->config.epochs)
        return at_fail(err, AT_ERR_ARG, "cannot resume at epoch %d of a %d-epoch run", epochs_done,
                       t->config.epochs);
    t->epochs_done = epochs_done;
    return AT_OK;
}

int at_trainer_run_epoch(at_trainer *t, const at_train_callbacks *cb, at_epoch_stats *stats,
                         at_error *err)
{
    const at_train_config *cfg = &t->config;
    if (t->epochs_done >= cfg->epochs)
        return at_fail(err, AT_ERR_STATE, "all %d epochs are done", cfg->epochs);
    const int epoch = t->epochs_done; /* 0-based */
    const at_dataset *ds = t->train;
    at_rng shuffle, augment, method_rng;
    at_rng_stream(&shuffle, cfg->seed, (uint64_t)epoch, STREAM_SHUFFLE);
    at_rng_stream(&augment, cfg->seed, (uint64_t)epoch, STREAM_AUGMENT);
    at_rng_stream(&method_rng, cfg->seed, (uint64_t)epoch, STREAM_METHOD);
    for (int i = 0; i < ds->n; i++)
        t->order[i] = i;
    at_rng_shuffle(&shuffle, t->order, (size_t)ds->n);
    const bool augmenting = cfg->augment.crop_padding > 0 || cfg->augment.hflip;

    at_method_ctx ctx = {t->model, t->pass, cfg, &method_rng, t->dlogits,
                         at_model_num_classes(t->model)};
    double loss_sum = 0.0, start = now_seconds();
    long correct = 0;
    float lr = 0.0f;
    for (long b = 0; b < t->iters_per_epoch; b++) {
        int first = (int)(b * cfg->batch_size);
        int n = ds->n - first < cfg->batch_size ? ds->n - first : cfg->batch_size;
        at_dataset_batch(ds, t->order + first, n, t->x, t->y, augmenting ? &cfg->augment : NULL,
                         &augment);
        long iter = (long)epoch * t->iters_per_epoch + b;
        lr = at_lr_at(&cfg->lr, iter, t->iters_per_epoch, cfg->epochs);
        double loss = 0.0;
        int batch_correct = 0;
        at_model_zero_grad(t->model);
        int status = t->method->step(&ctx, t->x, t->y, n, &loss, &batch_correct);
        if (status)
            return at_fail(err, status, "method %s failed at epoch %d batch %ld: %s",
                           t->method->name, epoch + 1, b + 1, at_status_string(status));
        if (!isfinite(loss))
            return at_fail(err, AT_ERR_NUMERIC,
                           "training loss became %g at epoch %d batch %ld (learning rate %g); "
                           "lower --lr", loss, epoch + 1, b + 1, lr);
        at_sgd_step(t->sgd, lr);
        loss_sum += loss * n;
        correct += batch_correct;
        if (cb && cb->on_batch)
            cb->on_batch(cb->user, epoch + 1, (long)first + n, ds->n, loss);
    }
    double seconds = now_seconds() - start;
    memset(stats, 0, sizeof *stats);
    stats->epoch = epoch + 1;
    stats->epochs = cfg->epochs;
    stats->train_loss = loss_sum / ds->n;
    stats->train_acc = (double)correct / ds->n;
    stats->lr_last = lr;
    stats->seconds = seconds;
    stats->images_per_second = seconds > 0 ? ds->n / seconds : 0.0;
    stats->val_loss = stats->val_acc = -1.0;
    if (t->val && t->val->n > 0) {
        long val_correct;
        int status = at_evaluate_clean(t->model, t->val, cfg->eval_batch_size, &val_correct,
                                       &stats->val_loss, err);
        if (status)
            return status;
        stats->val_acc = (double)val_correct / t->val->n;
    }
    t->epochs_done++;
    if (cb && cb->on_epoch) {
        int stop = cb->on_epoch(cb->user, stats);
        if (stop)
            return stop;
    }
    return AT_OK;
}
