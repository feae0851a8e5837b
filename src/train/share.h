/* share.h: a trainer's part in data-parallel training (at_trainer_share): which rows of each batch
 * this process runs, the models whose sums it exchanges during a step, and what it exchanges
 * after one (per-example results, the loss, running statistics). */
#ifndef AT_SHARE_H
#define AT_SHARE_H

#include "train/method.h"

typedef struct at_share at_share;

/* For batches of up to max_rows rows. */
int at_share_create(at_share **out, at_shard *shard, int max_rows, at_error *err);
void at_share_free(at_share *s);
int at_share_rank(const at_share *s);
int at_share_ranks(const at_share *s);
bool at_share_sync_bn(const at_share *s);

/* This process's rows of the whole batch (images of `image` floats, `classes` per soft target;
 * first, total and total_scored set); false when the
 * batch has fewer rows than processes (every process passes it over). */
bool at_share_rows(at_share *s, const at_batch *whole, size_t image, int classes, at_batch *mine);
/* Exchanges the weight-gradient sums of the method's models (the model, AWP's proxy, auxiliary
 * networks) through the shard during a step (on), or not (off: validation and the rest of an
 * epoch run on every process alike). */
void at_share_attach(at_share *s, at_method_ctx *ctx, bool on);
/* After a step on `mine`: every row's correct flag of the whole batch into correct [whole->n]
 * (this process's are at correct[0..mine->n-1] on entry), and the batch loss summed over the
 * processes (each gives its rows' part of the batch mean). */
int at_share_results(at_share *s, const at_batch *whole, const at_batch *mine, uint8_t *correct,
                     double *loss);
/* Rank 0's batch-norm running statistics to every process (per-process batch norm). */
int at_share_buffers(at_share *s, at_model *model);

#endif
