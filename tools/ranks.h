/* ranks.h: the processes of one `mpirun` job, seen by the command-line tool. Every MPI call of
 * advtrain lives in ranks.c; a build without MPI gets the same functions for one process.
 * MPI starts only when mpirun started the process, so a plain run pays nothing. */
#ifndef ADVTRAIN_RANKS_H
#define ADVTRAIN_RANKS_H

#include <stdbool.h>
#include <stddef.h>

/* Starts MPI when the environment says mpirun launched this process. On every rank but 0,
 * standard output goes to /dev/null and standard error is held back until ranks_agree decides
 * whether this rank's error is the one to show. Returns 0, or non-zero when MPI failed. */
int ranks_init(int *argc, char ***argv);
void ranks_finalize(void);

int ranks_rank(void); /* 0 .. ranks_size() - 1; 0 without MPI */
int ranks_size(void); /* 1 without MPI or without mpirun */

/* "Open MPI v4.1.4, ..." (first line of MPI_Get_library_version), or "not built in". */
void ranks_library(char *out, size_t size);

/* Every rank calls this with its status at the same point: returns the worst status (the
 * largest), the same on every rank. `last` marks a rank's final call: once any rank has made
 * it, the others stop communicating (their later calls return at once), so a rank that fails
 * early never leaves the rest waiting. A rank's held-back errors are shown when it failed and
 * rank 0 did not (rank 0 has already shown the same error otherwise). */
int ranks_agree(int status, bool last);

/* Rank 0 receives every rank's bytes, concatenated in rank order (*all, malloc'd, *total
 * bytes); the other ranks get NULL. Call only after ranks_agree returned 0. Returns 0 or -1. */
int ranks_gather(const void *bytes, size_t n, void **all, size_t *total);

/* MPI_Allgather of `bytes` bytes from every rank into all (size x bytes, rank order); with one
 * process a copy. Returns 0, or -1 when the exchange failed. */
int ranks_allgather(const void *mine, void *all, size_t bytes);

/* MPI_Allreduce (MPI_SUM, in place) of `count` floats, or doubles with `doubles`; with one
 * process nothing. Returns 0, or -1 when the exchange failed. */
int ranks_allreduce_sum(void *data, size_t count, bool doubles);

/* The standard error this process inherited (a rank > 0 holds fd 2 back; see ranks_init). */
int ranks_stderr_fd(void);

/* Ends the whole job after this rank's error (already printed: shown even on a rank > 0). */
void ranks_abort(int status);

#endif
