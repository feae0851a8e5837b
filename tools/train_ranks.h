/* train_ranks.h: `advtrain train` under mpirun (see train_ranks.c). */
#ifndef ADVTRAIN_TRAIN_RANKS_H
#define ADVTRAIN_TRAIN_RANKS_H

#include "advtrain.h"

/* Under mpirun with more than one process: shares the trainer's batches among the processes
 * (*shard, to free after the trainer; sums through MPI_Allreduce with use_allreduce, else
 * gathered in batch order) and makes a process stopped by mpirun say so in one line, naming the
 * checkpoint to resume. One process: nothing (*shard NULL). */
int train_ranks_begin(at_trainer *trainer, bool sync_bn, bool use_allreduce, const char *checkpoint,
                      at_shard **shard, at_error *err);

#endif
