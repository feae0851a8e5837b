/* train_run.h: one run of `advtrain train`, shared by the files that carry it out: cmd_train.c
 * (the options, the data, the model and the epoch loop), train_epochs.c (each epoch's log record
 * and checkpoints), train_resume.c (continuing a saved run) and train_report.c (the final
 * evaluation and report.json). */
#ifndef ADVTRAIN_TRAIN_RUN_H
#define ADVTRAIN_TRAIN_RUN_H

#include "cli.h"

#include <jansson.h>
#include <stdio.h>

/* The command line of `advtrain train` (its defaults and table are in cmd_train.c). */
typedef struct train_opts {
    const char *data, *data_dir, *model, *method, *out, *json, *schedule, *optimizer;
    int epochs, batch_size, eval_batch_size, seed, val_size, train_size, crop_padding, threads;
    int stop_after, input_levels;
    double input_noise;
    double lr, momentum, weight_decay, warmup, gamma, peak, beta1, beta2, adam_eps;
    cli_float_list milestones, mean, std;
    bool nesterov, hflip, resume, quiet, test_each_epoch, sync_bn, allreduce;
    /* adversarial training */
    const char *norm, *attack_bn;
    double eps, step_size, ema, eps_warmup;
    int steps, final_n;
    bool no_early_stop, no_final_pgd;
    /* budget schedules */
    const char *eps_schedule;
    double eval_eps, eps_min, eps_rate;
    int eps_stages;
    /* what a batch holds */
    int repeat, ood_batch, coreset_period, coreset_warmup, coreset_start;
    double coreset;
    bool coreset_bias_only;
    bool cutmix;
    double cutmix_alpha, ood_weight, extra_ratio, extra_smoothing;
    const char *ood, *extra_data;
    const char *final_suite, *config;
    const char *init, *init_sha256; /* fine-tuning: the starting weights and their hash */
    const char *autoencoder;        /* ada: the autoencoder file */
    char autoencoder_sha256[65];
    const char *flow;               /* ijsat: the flow file */
    char flow_sha256[65];
} train_opts;

/* What a run holds while it trains: the trainer's callbacks (train_on_batch, train_on_epoch)
 * receive it as their user pointer. */
typedef struct run_state {
    const train_opts *opts;
    cli_progress progress;
    FILE *log;
    at_model *model;
    at_trainer *trainer;
    const at_dataset *test;
    char checkpoint[4096], best_path[4096], ema_path[4096];
    char *config_text, *model_spec;
    int best_epoch;
    double last_train_acc; /* of the last epoch this process ran; -1 before the first */
    double best_val_robust, best_val_acc;
    json_t *epochs;        /* the per-epoch records, also in the final report */
    at_error err;
    int status;
} run_state;

/* at_train_callbacks: the progress line, and after each epoch its log record and checkpoints
 * (train_epochs.c). */
void train_on_batch(void *user, int epoch, long done, long total, double loss);
int train_on_epoch(void *user, const at_epoch_stats *st);

/* A resumed run's records of epochs 1..through_epoch from its log.jsonl, appended to `epochs`;
 * returns their training seconds. */
double train_load_earlier_epochs(const char *log_path, int through_epoch, json_t *epochs);

/* report.json of a run that diverged, saying why it ended and what it had done. */
void train_report_divergence(const run_state *s, json_t *config, const char *reason);

/* --resume: restores the model, optimiser, trainer state and weight average from the run's last
 * checkpoint after checking that `config` (the run's configuration now; it takes the saved run's
 * starting weights) matches the saved run's; *epoch is the epoch it continues after. Prints its
 * own error; returns the exit status. */
int train_resume(run_state *s, json_t *config, int *epoch);

/* report.json of a finished run, without its final evaluation: the configuration, the epochs,
 * the method's settings and the hashes of what went in and came out (train_report.c). */
json_t *train_report(run_state *s, json_t *config, double train_seconds, const at_dataset *train,
                     const at_dataset *test, const at_dataset *ood, const at_dataset *extra);

/* Clean accuracy, PGD-20 on the whole test set (adversarial methods) and the suite asked for,
 * printed and added to report["final"]. */
int train_final_evaluation(run_state *s, const at_dataset *test, json_t *report);

#endif
