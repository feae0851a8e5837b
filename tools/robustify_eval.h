/* robustify_eval.h: the man-in-the-middle protocol of preemptive robustification (Moon, An and
 * Song, AAAI 2022), shared by `advtrain robustify` and `advtrain eval --robustify`
 * (robustify_eval.c): robustify the first points of a split in batches, attack the originals and
 * the robustified images with the same cascade, and (optionally) the reconstruction attack. */
#ifndef ADVTRAIN_ROBUSTIFY_EVAL_H
#define ADVTRAIN_ROBUSTIFY_EVAL_H

#include "cli.h"

/* The robustification options of a command line (fields of a struct variable `r`). */
typedef struct cli_robustify_args {
    double delta, eps, step_size, lr, noise_sigma, rec_delta;
    int iters, steps, noise_samples;
    const char *norm;     /* "linf" (NULL) or "l2": set by the command */
    bool no_random_start, reconstruct;
} cli_robustify_args;

#define CLI_ROBUSTIFY_OPTIONS(r, eps_name, eps_help)                                                         \
    {"delta", CLI_FLOAT, &(r).delta, 0, 1e6, NULL, "D", "robustification budget around each image, > 0 (required)"}, \
    {eps_name, CLI_FLOAT, &(r).eps, 0, 1e6, NULL, "E", eps_help},                        \
    {"iters", CLI_INT, &(r).iters, 0, 1000000, NULL, "N", "outer iterations; default 100"},      \
    {"inner-steps", CLI_INT, &(r).steps, 0, 100000, NULL, "N", "steps of the inner PGD; default 20"}, \
    {"inner-step-size", CLI_FLOAT, &(r).step_size, 1e-9, 1e6, NULL, "A", "its step; default eps/4"}, \
    {"robustify-lr", CLI_FLOAT, &(r).lr, 1e-9, 1e6, NULL, "LR", "outer step: RMSprop rate on w (linf, default 0.1), L2 step length (default delta/10, reconstruction)"}, \
    {"noise-samples", CLI_INT, &(r).noise_samples, 1, 10000, NULL, "K", "smoothing variant: average the inner loss over K Gaussian draws"}, \
    {"noise-sigma", CLI_FLOAT, &(r).noise_sigma, 1e-9, 100, NULL, "S", "their standard deviation (with --noise-samples; the authors' 0.1)"}, \
    {"robustify-no-random-start", CLI_FLAG, &(r).no_random_start, 0, 0, NULL, NULL, "start at x and every inner PGD at x_r"}, \
    {"reconstruct", CLI_FLAG, &(r).reconstruct, 0, 0, NULL, NULL, "also run the reconstruction attack: the same loop ascending from x_r"}, \
    {"reconstruct-delta", CLI_FLOAT, &(r).rec_delta, 1e-9, 1e6, NULL, "D", "the reconstruction attack's budget around x_r; default --delta"}

/* Checks the arguments and fills the library's options (the inner eps defaults to
 * default_eps); prints the error and returns EXIT_USAGE on a bad combination. */
int cli_robustify_options(const char *cmd, const cli_robustify_args *a, double default_eps,
                          at_robustify_options *o);

/* Robustifies (or with o->reconstruct attacks) n images x in batches into x_r; labels get the
 * model's predictions at x; seeds from `seed` per point index. Stats are summed over batches.
 * Returns an exit status. */
int cli_robustify_images(const char *cmd, at_model *model, const at_robustify_options *o,
                         const float *x, int n, int batch, uint64_t seed, bool quiet, float *x_r,
                         int32_t *labels, at_robustify_stats *stats);

/* A cascade (plan) on x with labels y: robust[i] = 1 when x_i is classified correctly and no
 * attack of the cascade fools it; stats of each attack into stats[a]. Returns an exit status. */
int cli_cascade_robust(const char *cmd, at_model *model, const at_eval_plan *plan, const float *x,
                       const int32_t *y, int n, int batch, uint8_t *correct, uint8_t *robust,
                       at_attack_stats *stats);

/* The robustification's measurements as JSON (budget, measured distances, range, loss). */
json_t *cli_robustify_stats_json(const at_robustify_options *o, const at_robustify_stats *s,
                                 long points);

/* `advtrain eval --robustify`: robustifies every point of ds (the model's own predictions as the
 * protected labels), runs the cascade `plan` on the originals and on the robustified images with
 * the true labels, and with a->reconstruct the reconstruction attack from each x_r followed by the
 * cascade from there; prints both and puts them in report["robustify"]. png (may be NULL): grid
 * of originals and robustified images. Returns an exit status. */
int cli_eval_mitm(at_model *model, const at_dataset *ds, const at_eval_plan *plan,
                  const cli_robustify_args *a, int batch, bool quiet, const char *png,
                  json_t *report);

#endif
