/* eval_shards.h: one evaluation cascade shared among the processes of an mpirun job. */
#ifndef ADVTRAIN_EVAL_SHARDS_H
#define ADVTRAIN_EVAL_SHARDS_H

#include "cli.h"

/* Runs `plan` on its points of ds batch by batch: each rank evaluates a contiguous range of
 * whole batches, and rank 0 merges every batch's piece in batch order, so its result is the
 * same, bit for bit, whatever the number of processes (one included). Every rank returns the
 * same status; only rank 0's result holds the measurements (the others get the right number
 * of points and nothing else). Errors are reported (cli_error) and returned. */
int cli_eval_sharded(at_model *model, const at_dataset *ds, const at_eval_plan *plan,
                     at_eval_result *result, bool quiet);

#endif
