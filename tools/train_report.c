/* train_report.c: the end of `advtrain train`: report.json (the configuration, each epoch's
 * record, the method's settings as used, the hashes of the data, the starting weights and the
 * checkpoints) and the final evaluation on the test split of the weights the run chose. */
#include "attack_args.h"
#include "eval_report.h"
#include "ranks.h"
#include "train_run.h"

#include <stdlib.h>
#include <string.h>

/* The budget a run is judged at: --eval-eps, else the training eps. */
static float train_eval_eps(const at_train_config *c)
{
    return c->eval_eps > 0.0f ? c->eval_eps : c->eps;
}

/* The method's settings as the run used them, its presets filled in (the "config" record keeps
 * the options as given, null where a preset applies). */
static json_t *method_settings(const at_trainer *t)
{
    const at_train_config *c = at_trainer_config(t);
    json_t *j = json_object();
    const at_option_info *info;
    char text[64];
    for (int i = 0; at_trainer_method_option(t, i, &info, text, sizeof text); i++) {
        json_t *v = info->type == AT_OPTION_FLAG     ? json_boolean(!strcmp(text, "true"))
                    : info->type == AT_OPTION_CHOICE ? json_string(text)
                    : info->type == AT_OPTION_INT    ? json_integer(atol(text))
                                                     : json_real(atof(text));
        char key[64]; /* report keys are snake_case, like the shared settings beside them */
        snprintf(key, sizeof key, "%s", info->name);
        for (char *k = key; *k; k++)
            *k = *k == '-' ? '_' : *k;
        json_object_set_new(j, key, v);
    }
    if (c->eps == 0.0f)
        return j;
    json_object_set_new(j, "eps", json_real(c->eps));
    json_object_set_new(j, "attack_steps", json_integer(c->attack_steps));
    json_object_set_new(j, "attack_step_size", json_real(c->attack_step_size));
    json_object_set_new(j, "attack_bn_mode", json_string(at_bn_mode_name(c->attack_bn_mode)));
    json_object_set_new(j, "eval_eps", json_real(train_eval_eps(c)));
    json_object_set_new(j, "eps_schedule", json_string(at_eps_schedule_name(c->eps_schedule)));
    if (c->eps_schedule == AT_EPS_CURRICULUM)
        json_object_set_new(j, "eps_stages", json_integer(c->eps_stages));
    if (c->eps_schedule == AT_EPS_ADAPTIVE || c->eps_schedule == AT_EPS_STOCHASTIC)
        json_object_set_new(j, "eps_min", json_real(c->eps_min));
    if (c->eps_schedule == AT_EPS_ADAPTIVE)
        json_object_set_new(j, "eps_rate", json_real(c->eps_rate));
    return j;
}

/* Which weights the final evaluation measures: with robust validation, the best epoch's
 * (early stopping, Rice et al.); otherwise the end of training (the weight average if any). */
static int final_model(run_state *s, at_model **out, bool *owned, const char **which)
{
    *owned = false;
    *out = at_trainer_eval_model(s->trainer);
    *which = at_trainer_eval_model(s->trainer) == s->model ? "last" : "last (weight average)";
    if (s->best_epoch == 0 || at_trainer_config(s->trainer)->no_robust_validation ||
        at_trainer_config(s->trainer)->eps <= 0)
        return 0;
    at_model *best = NULL;
    if (at_model_create_from_spec(&best, s->model_spec, &s->err) ||
        at_checkpoint_load(s->best_path, best, NULL, NULL, &s->err)) {
        at_model_free(best);
        return cli_error("train", EXIT_WORK_FAILED, "%s", s->err.message);
    }
    *out = best;
    *owned = true;
    *which = "best";
    return 0;
}

static int run_attacks(run_state *s, at_model *model, const at_dataset *test, const char *what,
                       cli_attack_args *args, int points, json_t *final, const char *key)
{
    at_eval_plan plan;
    at_eval_result r;
    int status = cli_attack_plan("train", args, train_eval_eps(at_trainer_config(s->trainer)), &plan);
    if (status)
        return status;
    plan.points = points;
    plan.batch_size = s->opts->eval_batch_size;
    cli_progress progress;
    cli_progress_start(&progress, s->opts->quiet);
    if (at_eval_robust(model, test, &plan, &r, NULL, NULL, &s->err))
        return cli_error("train", EXIT_WORK_FAILED, "%s", s->err.message);
    long robust = r.robust_after[plan.n_attacks - 1];
    double lo, hi;
    cli_wilson(robust, r.points, &lo, &hi);
    printf("  %-26s %6.2f%%  [%5.2f, %5.2f]  (%ld points)\n", what, 100.0 * robust / r.points,
           100 * lo, 100 * hi, r.points);
    json_t *j = cli_eval_json(&plan, &r);
    cli_flags flags = {0};
    cli_eval_flags(&plan, &r, &flags);
    json_object_set_new(j, "flags", flags.list ? flags.list : json_array());
    json_object_set_new(final, key, j);
    at_eval_result_free(&r);
    return 0;
}

int train_final_evaluation(run_state *s, const at_dataset *test, json_t *report)
{
    at_model *model;
    bool owned;
    const char *which;
    int status = final_model(s, &model, &owned, &which);
    if (status)
        return status;
    const at_train_config *cfg = at_trainer_config(s->trainer);
    json_t *final = json_pack("{s:s}", "weights", which);
    if (s->best_epoch && !strcmp(which, "best"))
        json_object_set_new(final, "epoch", json_integer(s->best_epoch));
    long correct;
    double loss, lo, hi;
    if (at_evaluate_clean(model, test, s->opts->eval_batch_size, &correct, &loss, &s->err)) {
        status = cli_error("train", EXIT_WORK_FAILED, "%s", s->err.message);
        goto done;
    }
    cli_wilson(correct, test->n, &lo, &hi);
    printf("final evaluation on %s/test with the %s weights%s:\n", test->name, which,
           !strcmp(which, "best") ? " (chosen by validation PGD-10)" : "");
    printf("  %-26s %6.2f%%  [%5.2f, %5.2f]  (%d points)\n", "clean accuracy",
           100.0 * correct / test->n, 100 * lo, 100 * hi, test->n);
    json_t *clean = cli_accuracy_json(correct, test->n);
    json_object_set_new(clean, "loss", json_real(loss));
    json_object_set_new(final, "clean", clean);
    const char *norm = cfg->norm == AT_NORM_L2 ? "l2" : "linf";
    const float eps = train_eval_eps(cfg);
    if (eps > 0 && !s->opts->no_final_pgd) {
        cli_attack_args pgd = {.attack = "pgd", .norm = norm, .steps = 20,
                               .step_size = eps / 10, .seed = s->opts->seed};
        char what[64];
        snprintf(what, sizeof what, "PGD-20 (%s eps %g)", norm, eps);
        if ((status = run_attacks(s, model, test, what, &pgd, 0, final, "pgd20")))
            goto done;
    }
    if (s->opts->final_suite) {
        cli_attack_args suite = {.suite = s->opts->final_suite, .norm = norm, .seed = s->opts->seed};
        char what[64];
        snprintf(what, sizeof what, "%s suite (%s eps %g)", s->opts->final_suite, norm, eps);
        if ((status = run_attacks(s, model, test, what, &suite, s->opts->final_n, final, "suite")))
            goto done;
    }
    json_object_set_new(report, "final", json_incref(final));
done:
    json_decref(final);
    if (owned)
        at_model_free(model);
    return status;
}

json_t *train_report(run_state *s, json_t *config, double train_seconds, const at_dataset *train,
                     const at_dataset *test, const at_dataset *ood, const at_dataset *extra)
{
    json_t *report = json_pack("{s:s, s:s, s:o, s:s, s:o, s:f}", "command", "train", "advtrain_version",
                       cli_version(), "config", json_incref(config), "model_spec", s->model_spec,
                       "epochs", json_incref(s->epochs), "train_seconds", train_seconds);
    json_object_set_new(report, "method_settings", method_settings(s->trainer));
    if (ranks_size() > 1) { /* how the run was shared (the checkpoint does not depend on it) */
        json_object_set_new(report, "processes", json_integer(ranks_size()));
        json_object_set_new(report, "gradient_sum", json_string(s->opts->allreduce ? "allreduce" : "gathered"));
    }
    json_object_set_new(report, "checkpoint", json_string(s->checkpoint));
    /* a fine-tuning run's starting weights, as recorded when it started (a resumed session
     * takes them from its checkpoint) */
    if (json_object_get(config, "init")) {
        json_object_set(report, "init", json_object_get(config, "init"));
        if (json_object_get(config, "init_sha256"))
            json_object_set(report, "init_sha256", json_object_get(config, "init_sha256"));
    }
    char hash[65];
    at_dataset_sha256(train, hash);
    json_object_set_new(report, "train_data_sha256", json_string(hash));
    if (test) {
        at_dataset_sha256(test, hash);
        json_object_set_new(report, "test_data_sha256", json_string(hash));
    }
    if (s->opts->autoencoder) {
        json_object_set_new(report, "autoencoder", json_string(s->opts->autoencoder));
        json_object_set_new(report, "autoencoder_sha256", json_string(s->opts->autoencoder_sha256));
    }
    if (s->opts->flow) {
        json_object_set_new(report, "flow", json_string(s->opts->flow));
        json_object_set_new(report, "flow_sha256", json_string(s->opts->flow_sha256));
    }
    if (extra && !at_file_sha256(s->opts->extra_data, hash, &s->err))
        json_object_set_new(report, "extra_data_sha256", json_string(hash));
    if (ood) {
        at_dataset_sha256(ood, hash);
        json_object_set_new(report, "ood_data_sha256", json_string(hash));
    }
    if (!at_file_sha256(s->checkpoint, hash, &s->err))
        json_object_set_new(report, "checkpoint_sha256", json_string(hash));
    if (!at_file_sha256(s->best_path, hash, &s->err))
        json_object_set_new(report, "best_checkpoint_sha256", json_string(hash));
    if (at_trainer_stopped(s->trainer))
        json_object_set_new(report, "stopped", json_string("catastrophic overfitting: rolled back"));
    /* A run can stall at chance (a learning rate too high for the model at the start, the
     * network's units all dead): say so rather than let a useless model pass for a result. */
    const int classes = at_model_num_classes(s->model);
    if (s->last_train_acc >= 0.0 && s->last_train_acc < 1.5 / classes) {
        char warning[256];
        snprintf(warning, sizeof warning, "training accuracy %.1f%% in the last epoch is at "
                 "chance (%d classes): the model did not learn (check --lr; --warmup-epochs "
                 "helps a run that stalls at the start)", 100 * s->last_train_acc, classes);
        fprintf(stderr, "warning: %s\n", warning);
        json_object_set_new(report, "warning", json_string(warning));
    }
    return report;
}
