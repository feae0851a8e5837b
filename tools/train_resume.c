/* train_resume.c: `advtrain train --resume`: the run continues from its last checkpoint only if
 * it is the same run (every configuration key as saved), with its optimiser, trainer state
 * (schedules, best epoch, the catastrophic-overfitting check) and weight average as they were. */
#include "train_run.h"

#include <stdlib.h>
#include <string.h>

/* A configuration key newer than the saved run: the value every run had before the key existed
 * (so that such a run still resumes), or NULL for a key every run saved. */
static json_t *value_before_key(const char *key)
{
    if (!strcmp(key, "optimizer"))
        return json_string("sgd");
    if (!strcmp(key, "beta1") || !strcmp(key, "beta2") || !strcmp(key, "adam_eps"))
        return json_real(0.0);
    if (!strcmp(key, "sync_bn"))
        return json_false();
    return NULL;
}

/* On --resume every configuration key must match the saved run, or the result would not be the
 * run that was started. The starting weights of a fine-tuning run are part of its record but not
 * of a resumed session's command line (it continues from its own checkpoint), so they come from
 * the saved run unless given (in a --config file). */
static int check_resume_config(const run_state *s, const char *saved_text, json_t *current)
{
    json_error_t jerr;
    json_t *saved = saved_text ? json_loads(saved_text, 0, &jerr) : NULL;
    if (!saved)
        return cli_error("train", EXIT_WORK_FAILED, "%s/last.safetensors has no run configuration; cannot resume",
                         s->opts->out);
    static const char *const adopted[] = {"init", "init_sha256"};
    for (size_t i = 0; i < sizeof adopted / sizeof adopted[0]; i++)
        if (!json_object_get(current, adopted[i]) && json_object_get(saved, adopted[i]))
            json_object_set(current, adopted[i], json_object_get(saved, adopted[i]));
    const char *key;
    json_t *value;
    int status = 0;
    json_object_foreach(current, key, value) {
        json_t *before = json_object_get(saved, key) ? NULL : value_before_key(key);
        json_t *old = before ? before : json_object_get(saved, key);
        const bool same = old && json_equal(old, value);
        if (!same) {
            char *a = old ? json_dumps(old, JSON_ENCODE_ANY) : NULL;
            char *b = json_dumps(value, JSON_ENCODE_ANY);
            status = cli_error("train", EXIT_USAGE,
                               "--resume: option '%s' was %s in the saved run but is %s now", key,
                               a ? a : "absent", b ? b : "?");
            free(a);
            free(b);
        }
        json_decref(before);
        if (!same)
            break;
    }
    json_decref(saved);
    return status;
}

int train_resume(run_state *s, json_t *config, int *epoch_out)
{
    at_safetensors *st = NULL;
    if (at_checkpoint_load(s->checkpoint, s->model, at_trainer_optimizer(s->trainer), &st, &s->err))
        return cli_error("train", EXIT_WORK_FAILED, "--resume: %s", s->err.message);
    int status = check_resume_config(s, at_st_meta(st, "config"), config);
    free(s->config_text); /* with the saved run's starting weights, if any */
    s->config_text = json_dumps(config, JSON_COMPACT | JSON_SORT_KEYS);
    const char *epoch_text = at_st_meta(st, "epoch");
    int epoch = epoch_text ? atoi(epoch_text) : -1;
    /* a checkpoint written before the last training accuracy and loss were saved resumes AWP as
     * it ran then: with no wait for an epoch above chance */
    at_trainer_progress progress = {epoch, -1.0, -1.0, -1.0, -1, 1.0, 0.0};
    json_error_t jerr;
    json_t *saved = at_st_meta(st, "progress") ? json_loads(at_st_meta(st, "progress"), 0, &jerr) : NULL;
    if (saved) {
        progress.best_score = json_number_value(json_object_get(saved, "best_score"));
        progress.check_pgd = json_number_value(json_object_get(saved, "check_pgd"));
        progress.check_fgsm = json_number_value(json_object_get(saved, "check_fgsm"));
        s->best_epoch = (int)json_integer_value(json_object_get(saved, "best_epoch"));
        json_t *steps = json_object_get(saved, "optimizer_steps");
        if (json_is_integer(steps))
            progress.optimizer_steps = (long)json_integer_value(steps);
        json_t *train_acc = json_object_get(saved, "last_train_acc");
        json_t *train_loss = json_object_get(saved, "last_train_loss");
        if (json_is_number(train_acc) && json_is_number(train_loss)) {
            progress.last_train_acc = json_number_value(train_acc);
            progress.last_train_loss = json_number_value(train_loss);
        }
        json_decref(saved);
    }
    if (!status && (at_trainer_set_progress(s->trainer, &progress, &s->err) ||
                    at_trainer_restore_state(s->trainer, st, &s->err)))
        status = cli_error("train", EXIT_WORK_FAILED, "--resume: %s: %s", s->checkpoint, s->err.message);
    at_st_free(st);
    if (status)
        return status;
    /* the weight average is saved beside the live weights, stamped with the same epoch */
    at_model *average = at_trainer_eval_model(s->trainer);
    if (average != s->model) {
        if (at_checkpoint_load(s->ema_path, average, NULL, &st, &s->err))
            return cli_error("train", EXIT_WORK_FAILED, "--resume: %s", s->err.message);
        const char *ema_epoch = at_st_meta(st, "epoch");
        const bool same = ema_epoch && atoi(ema_epoch) == epoch;
        at_st_free(st);
        if (!same)
            return cli_error("train", EXIT_WORK_FAILED, "--resume: %s is not from epoch %d like %s "
                             "(interrupted while saving?)", s->ema_path, epoch, s->checkpoint);
    }
    if (!s->opts->quiet)
        fprintf(stderr, "resuming %s after epoch %d of %d\n", s->opts->out, epoch, s->opts->epochs);
    *epoch_out = epoch;
    return 0;
}
