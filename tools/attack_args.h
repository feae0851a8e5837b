/* attack_args.h: the attack options shared by `advtrain eval` and `advtrain attack`, and how they
 * become a cascade of attacks (at_eval_plan). */
#ifndef ADVTRAIN_ATTACK_ARGS_H
#define ADVTRAIN_ATTACK_ARGS_H

#include "cli.h"

typedef struct cli_attack_args {
    const char *attack;   /* one name, or a comma-separated cascade */
    const char *suite;    /* "quick" or "standard" */
    const char *norm;     /* "linf", "l2", "l1" */
    const char *loss;     /* "ce", "cw", "dlr" */
    const char *bn_mode;  /* "eval", "train", "batch-stats" */
    double eps, step_size, p_init;
    int steps, restarts, eot, queries, targets, seed;
    double iwd_lambda, iwd_budget, iwd_reg;   /* the IWD attack's (0: its presets) */
    int iwd_patch, iwd_stride, iwd_samples, iwd_iters;
    bool no_random_start, early_stop;
    const char *flow;     /* JSA: the flow file (advtrain train-flow) */
    double eps_z, step_size_z;
    int batch;            /* the largest batch the attacks will run (the flow is planned for it);
                             0 = 500 */
} cli_attack_args;

/* Rows of a cli_option table for the fields of `a` (a struct variable, not a pointer). */
#define CLI_ATTACK_OPTIONS(a)                                                                      \
    {"attack", CLI_STRING, &(a).attack, 0, 0, NULL, "NAME[,NAME]", "attack(s) to run in cascade (see 'advtrain list attacks')"}, \
    {"suite", CLI_CHOICE, &(a).suite, 0, 0, "quick|standard|corruptions", NULL, "quick: PGD-20, APGD-CE; standard: APGD-CE, APGD-T, FAB-T, Square; corruptions (eval): the 15 common corruptions x 5 severities"}, \
    {"eps", CLI_FLOAT, &(a).eps, 0, 1e6, NULL, "EPS", "perturbation budget on [0,1] pixels"},      \
    {"norm", CLI_CHOICE, &(a).norm, 0, 0, "linf|l2|l1", NULL, "threat model; default linf"},        \
    {"steps", CLI_INT, &(a).steps, 1, 100000, NULL, "N", "iterations of gradient attacks"},        \
    {"step-size", CLI_FLOAT, &(a).step_size, 1e-9, 1e6, NULL, "A", "PGD step size; default 2.5 eps / steps"}, \
    {"restarts", CLI_INT, &(a).restarts, 1, 1000, NULL, "N", "random restarts (worst case kept per point)"}, \
    {"loss", CLI_CHOICE, &(a).loss, 0, 0, "ce|cw|dlr", NULL, "loss of PGD/FGSM/APGD; default: the attack's own"}, \
    {"bn-mode", CLI_CHOICE, &(a).bn_mode, 0, 0, "eval|train|batch-stats", NULL, "batch-norm mode of attack passes; default eval"}, \
    {"eot", CLI_INT, &(a).eot, 1, 10000, NULL, "K", "average each gradient over K forwards (randomised models)"}, \
    {"queries", CLI_INT, &(a).queries, 1, 1000000, NULL, "N", "Square: queries per point; default 5000"}, \
    {"p-init", CLI_FLOAT, &(a).p_init, 1e-6, 1, NULL, "P", "Square: initial fraction of pixels; default 0.8"}, \
    {"targets", CLI_INT, &(a).targets, 1, 1000, NULL, "N", "APGD-T/FAB-T: target classes; default 9"}, \
    {"no-random-start", CLI_FLAG, &(a).no_random_start, 0, 0, NULL, NULL, "PGD: start from the clean point"}, \
    {"early-stop", CLI_FLAG, &(a).early_stop, 0, 0, NULL, NULL, "PGD: stop moving a point once misclassified"}, \
    {"seed", CLI_INT, &(a).seed, 0, 2147483647, NULL, "N", "seed of random starts and searches; default 0"}, \
    {"iwd-lambda", CLI_FLOAT, &(a).iwd_lambda, 1e-9, 1e9, NULL, "L", "iwd: weight of the IWD in loss - lambda IWD; default 10"}, \
    {"iwd-budget", CLI_FLOAT, &(a).iwd_budget, 1e-12, 1e6, NULL, "S", "iwd: keep only points with IWD <= S; default none"}, \
    {"iwd-patch", CLI_INT, &(a).iwd_patch, 1, 64, NULL, "K", "iwd: KxK patches; default 3"}, \
    {"iwd-stride", CLI_INT, &(a).iwd_stride, 1, 64, NULL, "N", "iwd: stride between patches; default 2"}, \
    {"iwd-samples", CLI_INT, &(a).iwd_samples, 2, 4096, NULL, "N", "iwd: patches kept per image (random subset); default 256"}, \
    {"iwd-reg", CLI_FLOAT, &(a).iwd_reg, 1e-6, 100, NULL, "EPS", "iwd: Sinkhorn regularisation on the per-pixel squared patch cost; default 0.01"}, \
    {"iwd-iters", CLI_INT, &(a).iwd_iters, 1, 100000, NULL, "N", "iwd: Sinkhorn iterations; default 50"}, \
    {"flow", CLI_STRING, &(a).flow, 0, 0, NULL, "FILE", "jsa: the normalizing flow (advtrain train-flow) whose inverse decodes the latent"}, \
    {"eps-z", CLI_FLOAT, &(a).eps_z, 0, 1e6, NULL, "EPS", "jsa: Linf budget of the latent perturbation (required with jsa)"}, \
    {"step-size-z", CLI_FLOAT, &(a).step_size_z, 1e-9, 1e6, NULL, "A", "jsa: latent step size; default 2.5 eps-z / steps"}

/* true when an attack or a suite was asked for */
bool cli_attack_requested(const cli_attack_args *a);

/* Builds the cascade at budget eps. Checks that every given option applies to some attack of the
 * cascade; prints the error and returns EXIT_USAGE otherwise. A cascade with jsa gets the flow of
 * --flow, loaded once per process for batches of up to a->batch and kept for the process's
 * lifetime (EXIT_WORK_FAILED when the file is missing or not a flow). */
int cli_attack_plan(const char *cmd, const cli_attack_args *a, double eps, at_eval_plan *plan);

#endif
