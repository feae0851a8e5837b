/* train_epochs.c: what `advtrain train` does after each epoch: one JSON record in log.jsonl,
 * the summary line, and the checkpoints, written atomically so that a run killed at any moment
 * resumes from its last finished epoch. */
#include "ranks.h"
#include "train_run.h"

#include <stdlib.h>
#include <string.h>

void train_on_batch(void *user, int epoch, long done, long total, double loss)
{
    run_state *s = user;
    char label[32], extra[48];
    snprintf(label, sizeof label, "epoch %d/%d", epoch, at_trainer_epochs(s->trainer));
    snprintf(extra, sizeof extra, "loss %.4f", loss);
    cli_progress_update(&s->progress, label, done, total, extra);
}

/* last.safetensors: the live weights and the optimiser, to resume; with a weight average, its
 * weights go to last_ema.safetensors first, stamped with the same epoch (a resume checks both).
 * best.safetensors: the weights to evaluate, when the epoch is the best so far. last.safetensors
 * goes last: it marks the epoch done, so a process killed before it repeats the epoch and
 * writes the others again (a best.safetensors written after it would be lost to a kill). */
static int save_checkpoints(run_state *s, int epoch, bool best)
{
    char epoch_text[32], progress_text[512];
    snprintf(epoch_text, sizeof epoch_text, "%d", epoch);
    at_trainer_progress p = at_trainer_get_progress(s->trainer);
    snprintf(progress_text, sizeof progress_text,
             "{\"best_score\": %.17g, \"best_epoch\": %d, \"check_pgd\": %.17g, "
             "\"check_fgsm\": %.17g, \"optimizer_steps\": %ld, \"last_train_acc\": %.17g, "
             "\"last_train_loss\": %.9g}",
             p.best_score, s->best_epoch, p.check_pgd, p.check_fgsm, p.optimizer_steps,
             p.last_train_acc, p.last_train_loss);
    at_kv meta[] = {
        {"format", "advtrain-checkpoint-1"}, {"advtrain_version", AT_VERSION_STRING},
        {"model", s->model_spec}, {"config", s->config_text}, {"epoch", epoch_text},
        {"progress", progress_text},
    };
    const int n_meta = (int)(sizeof meta / sizeof meta[0]);
    at_model *eval_model = at_trainer_eval_model(s->trainer);
    int status = 0;
    if (eval_model != s->model)
        status = at_checkpoint_save(s->ema_path, eval_model, NULL, meta, n_meta, &s->err);
    const int cap = at_trainer_state_count(s->trainer);
    at_st_tensor *state = malloc((size_t)cap * sizeof *state);
    if (!state) {
        s->err.status = AT_ERR_NOMEM;
        snprintf(s->err.message, sizeof s->err.message, "out of memory");
        return AT_ERR_NOMEM;
    }
    const int n_state = at_trainer_state(s->trainer, state, cap);
    if (!status && best)
        status = at_checkpoint_save(s->best_path, eval_model, NULL, meta, n_meta, &s->err);
    if (!status)
        status = at_checkpoint_save_with(s->checkpoint, s->model, at_trainer_optimizer(s->trainer), meta,
                                         n_meta, state, n_state, &s->err);
    free(state);
    return status;
}

/* A resumed run's report covers the whole run: the records of epochs 1..through_epoch come from
 * log.jsonl (the last record of an epoch wins: a process killed after logging an epoch but before
 * its checkpoint logged it twice), and their seconds are added to the training time. */
double train_load_earlier_epochs(const char *log_path, int through_epoch, json_t *epochs)
{
    FILE *f = fopen(log_path, "r");
    if (!f)
        return 0.0;
    json_t *by_epoch = json_array();
    for (int e = 0; e < through_epoch; e++)
        json_array_append_new(by_epoch, json_null());
    char line[8192];
    while (fgets(line, sizeof line, f)) {
        json_t *rec = json_loads(line, 0, NULL);
        json_int_t e = json_integer_value(json_object_get(rec, "epoch"));
        if (rec && e >= 1 && e <= through_epoch)
            json_array_set(by_epoch, (size_t)e - 1, rec);
        json_decref(rec);
    }
    fclose(f);
    double seconds = 0.0;
    size_t i;
    json_t *rec;
    json_array_foreach(by_epoch, i, rec) {
        if (json_is_object(rec)) {
            json_array_append(epochs, rec);
            seconds += json_number_value(json_object_get(rec, "seconds"));
        }
    }
    json_decref(by_epoch);
    return seconds;
}

int train_on_epoch(void *user, const at_epoch_stats *st)
{
    run_state *s = user;
    cli_progress_clear(&s->progress);
    json_t *rec = json_pack("{s:i, s:i, s:f, s:f, s:f, s:f, s:f}", "epoch", st->epoch, "epochs",
                            st->epochs, "train_loss", st->train_loss, "train_acc", st->train_acc,
                            "lr", st->lr_last, "seconds", st->seconds, "images_per_second",
                            st->images_per_second);
    if (st->val_acc >= 0) {
        json_object_set_new(rec, "val_loss", json_real(st->val_loss));
        json_object_set_new(rec, "val_acc", json_real(st->val_acc));
        json_object_set_new(rec, "best", json_boolean(st->best));
    }
    if (st->val_robust_acc >= 0)
        json_object_set_new(rec, "val_robust_acc", json_real(st->val_robust_acc));
    if (at_trainer_config(s->trainer)->eps > 0)
        json_object_set_new(rec, "eps", json_real(st->eps));
    json_object_set_new(rec, "steps", json_integer(st->steps));
    if (st->skipped)
        json_object_set_new(rec, "skipped", json_true());
    if (st->coreset_size) {
        json_object_set_new(rec, "coreset_size", json_integer(st->coreset_size));
        json_object_set_new(rec, "selection_seconds", json_real(st->selection_seconds));
    }
    if (st->check_pgd_acc >= 0) {
        json_object_set_new(rec, "check_pgd_acc", json_real(st->check_pgd_acc));
        json_object_set_new(rec, "check_fgsm_acc", json_real(st->check_fgsm_acc));
        json_object_set_new(rec, "catastrophic_overfitting", json_boolean(st->overfitting_detected));
    }
    if (!st->skipped)
        s->last_train_acc = st->train_acc;
    if (st->best) {
        s->best_epoch = st->epoch;
        s->best_val_robust = st->val_robust_acc;
        s->best_val_acc = st->val_acc;
    }
    double test_acc = -1.0;
    if (s->opts->test_each_epoch && s->test && ranks_rank() == 0) {
        long correct;
        double loss;
        if (at_evaluate_clean(s->model, s->test, s->opts->eval_batch_size, &correct, &loss, &s->err))
            return s->status = AT_ERR_IO;
        test_acc = (double)correct / s->test->n;
        json_object_set_new(rec, "test_acc", json_real(test_acc));
        json_object_set_new(rec, "test_loss", json_real(loss));
    }
    char *line = json_dumps(rec, JSON_COMPACT | JSON_REAL_PRECISION(7));
    fprintf(s->log, "%s\n", line);
    fflush(s->log);
    /* the report holds the record as logged, like a resumed run's (train_load_earlier_epochs): an
     * interrupted and resumed run then reports what an uninterrupted one does */
    json_t *logged = line ? json_loads(line, 0, NULL) : NULL;
    free(line);
    json_array_append_new(s->epochs, logged ? logged : json_incref(rec));
    json_decref(rec);
    if (!s->opts->quiet && st->coreset_size)
        fprintf(stderr, "coreset of %d images chosen in %.1f s\n", st->coreset_size,
                st->selection_seconds);
    if (!s->opts->quiet && st->skipped)
        fprintf(stderr, "epoch %d/%d  skipped (coreset warm start)\n", st->epoch, st->epochs);
    else if (!s->opts->quiet) {
        fprintf(stderr, "epoch %d/%d  loss %.4f  train acc %.2f%%", st->epoch, st->epochs,
                st->train_loss, 100 * st->train_acc);
        if (st->val_acc >= 0)
            fprintf(stderr, "  val acc %.2f%%", 100 * st->val_acc);
        if (st->val_robust_acc >= 0)
            fprintf(stderr, "  val PGD-10 %.2f%%%s", 100 * st->val_robust_acc, st->best ? " *" : "");
        if (test_acc >= 0)
            fprintf(stderr, "  test acc %.2f%%", 100 * test_acc);
        fprintf(stderr, "  lr %.4g  %.1f s (%.0f img/s)\n", st->lr_last, st->seconds,
                st->images_per_second);
    }
    if (st->overfitting_detected)
        fprintf(stderr, "catastrophic overfitting at epoch %d: PGD accuracy on a training batch fell "
                        "to %.1f%% while FGSM accuracy rose to %.1f%%; rolled back to epoch %d and "
                        "stopped\n", st->epoch, 100 * st->check_pgd_acc, 100 * st->check_fgsm_acc,
                st->epoch - 1);
    /* after a roll-back the weights are epoch - 1's: the checkpoint says so. Under mpirun rank
     * 0 writes, and every process learns whether it could (none goes on alone). */
    int status = 0;
    if (ranks_rank() == 0)
        status = save_checkpoints(s, st->overfitting_detected ? st->epoch - 1 : st->epoch, st->best);
    if (ranks_agree(status, false) && !status) {
        snprintf(s->err.message, sizeof s->err.message, "rank 0 could not write the checkpoint");
        status = AT_ERR_IO;
    }
    if (status)
        return s->status = status;
    return 0;
}

/* A run whose loss or weights became non-finite stops before its epoch's checkpoint, so the
 * last checkpoint still holds the previous epoch's finite weights; report.json says why the run
 * ended, with what it had done, so that a script watching --out sees the divergence. */
void train_report_divergence(const run_state *s, json_t *config, const char *reason)
{
    char why[600], hash[65], path[4096];
    at_error err = {0};
    snprintf(why, sizeof why, "diverged: %s", reason);
    json_t *report = json_pack("{s:s, s:s, s:O, s:O, s:s, s:s}", "command", "train",
                               "advtrain_version", cli_version(),
                               "config", config, "epochs", s->epochs, "checkpoint",
                               s->checkpoint, "stopped", why);
    if (!at_file_sha256(s->checkpoint, hash, &err))
        json_object_set_new(report, "checkpoint_sha256", json_string(hash));
    snprintf(path, sizeof path, "%s/report.json", s->opts->out);
    if (cli_write_json(path, report, &err))
        fprintf(stderr, "advtrain train: %s\n", err.message);
    json_decref(report);
}
