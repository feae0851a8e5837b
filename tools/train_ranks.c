/* train_ranks.c: `advtrain train` under mpirun. Every process runs the same command; the trainer
 * shares each batch among them (at_trainer_share) through an allgather over MPI (ranks.c). Rank 0
 * alone writes the run's files. A process that dies takes the job down: mpirun stops the others
 * with SIGTERM, and each says so in one line before it goes, naming the checkpoint to resume. */
#include "train_ranks.h"

#include "ranks.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int allgather(void *user, const void *mine, void *all, size_t bytes)
{
    (void)user;
    return ranks_allgather(mine, all, bytes);
}

static int allreduce(void *user, void *data, size_t count, bool doubles)
{
    (void)user;
    return ranks_allreduce_sum(data, count, doubles);
}

/* The line a stopped process writes: made before training starts, since a signal handler may
 * only write(). */
static char stopped_line[4352];

static int stopped_fd = 2;

static void on_stop(int sig)
{
    (void)sig;
    ssize_t ignored = write(stopped_fd, stopped_line, strlen(stopped_line));
    (void)ignored;
    _exit(1);
}

int train_ranks_begin(at_trainer *trainer, bool sync_bn, bool use_allreduce, const char *checkpoint,
                      at_shard **shard, at_error *err)
{
    *shard = NULL;
    if (ranks_size() == 1)
        return AT_OK;
    at_collective c = {ranks_rank(), ranks_size(), allgather, allreduce, NULL};
    int status = at_shard_create(shard, &c, sync_bn, err);
    if (!status)
        status = at_shard_use_allreduce(*shard, use_allreduce);
    if (!status)
        status = at_trainer_share(trainer, *shard, err);
    if (status)
        return status;
    snprintf(stopped_line, sizeof stopped_line,
             "advtrain train: process %d of %d stopped: another process of the job ended; "
             "--resume continues from %s\n", ranks_rank(), ranks_size(), checkpoint);
    /* rank > 0 holds its standard error back (ranks.c): the line goes to the inherited one */
    stopped_fd = ranks_stderr_fd();
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;
    sigaction(SIGTERM, &sa, NULL);
    return AT_OK;
}
