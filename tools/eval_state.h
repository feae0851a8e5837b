/* eval_state.h: a resumable evaluation. The cascade runs in chunks of points; after each chunk
 * the per-point outcomes and the merged statistics are written (atomically) to a state file, so
 * an interrupted `advtrain eval --state FILE` continues where it stopped. Every point has its own
 * seed, so the resumed run gives the same per-point results as an uninterrupted one. */
#ifndef ADVTRAIN_EVAL_STATE_H
#define ADVTRAIN_EVAL_STATE_H

#include "cli.h"

/* Runs plan over points [0, total) of ds in chunks of `chunk`, resuming from `path` when it
 * holds a state with the same fingerprint; stops after `budget` new points (0 = no limit),
 * leaving *finished false. The merged result is the caller's to free (at_eval_result_free). */
int cli_eval_resumable(at_model *model, const at_dataset *ds, const at_eval_plan *plan, long total,
                       int chunk, const char *path, const char *fingerprint, long budget,
                       at_eval_result *result, bool *finished, bool quiet);

#endif
