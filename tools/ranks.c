/* ranks.c: MPI for the command-line tool (see ranks.h), and the one-process stand-in when MPI
 * is not built in. */
#include "ranks.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef ADVTRAIN_MPI
#include <fcntl.h>
#include <mpi.h>
#include <unistd.h>

/* The job as this process sees it: set once by ranks_init. */
static struct {
    bool started;   /* MPI_Init ran */
    bool finished;  /* some rank made its last ranks_agree call: no more communication */
    int agreed;     /* the status agreed then */
    int rank, size;
    int real_stderr; /* rank > 0: the inherited standard error, while fd 2 is a held file */
    FILE *held;
} job = {.size = 1, .real_stderr = -1};

/* mpirun (Open MPI) and other PMIx launchers set these in each process they start. */
static bool launched_by_mpirun(void)
{
    return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMIX_RANK") || getenv("PMI_RANK");
}

int ranks_init(int *argc, char ***argv)
{
    if (!launched_by_mpirun())
        return 0;
    if (MPI_Init(argc, argv) != MPI_SUCCESS)
        return -1;
    job.started = true;
    /* a failed exchange is reported by the call (a process gone), not an abort from inside MPI */
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &job.rank);
    MPI_Comm_size(MPI_COMM_WORLD, &job.size);
    if (job.rank > 0) {
        fflush(stdout);
        int null = open("/dev/null", O_WRONLY);
        if (null >= 0) {
            dup2(null, 1);
            close(null);
        }
        job.held = tmpfile();
        if (job.held) {
            job.real_stderr = dup(2);
            dup2(fileno(job.held), 2);
        }
    }
    return 0;
}

void ranks_finalize(void)
{
    if (job.started)
        MPI_Finalize();
    job.started = false;
}

int ranks_rank(void) { return job.rank; }
int ranks_size(void) { return job.size; }

void ranks_library(char *out, size_t size)
{
    char version[MPI_MAX_LIBRARY_VERSION_STRING];
    int len = 0;
    MPI_Get_library_version(version, &len);
    version[len < MPI_MAX_LIBRARY_VERSION_STRING ? len : MPI_MAX_LIBRARY_VERSION_STRING - 1] = '\0';
    version[strcspn(version, ",\n")] = '\0'; /* "Open MPI v4.1.4", without the package details */
    snprintf(out, size, "%s", version);
}

/* Shows (show) or drops what this rank wrote to standard error since the last call. */
static void release_held(bool show)
{
    if (!job.held)
        return;
    fflush(stderr);
    int fd = fileno(job.held);
    if (show) {
        char buf[4096];
        ssize_t got;
        lseek(fd, 0, SEEK_SET);
        while ((got = read(fd, buf, sizeof buf)) > 0)
            if (write(job.real_stderr, buf, (size_t)got) != got)
                break;
    }
    if (ftruncate(fd, 0) == 0)
        lseek(fd, 0, SEEK_SET);
}

int ranks_agree(int status, bool last)
{
    if (!job.started || job.size == 1)
        return status;
    if (job.finished)
        return status > job.agreed ? status : job.agreed;
    /* {worst status, rank 0's status, whether anyone is leaving} */
    int mine[3] = {status, job.rank == 0 ? status : 0, last}, all[3];
    if (MPI_Allreduce(mine, all, 3, MPI_INT, MPI_MAX, MPI_COMM_WORLD) != MPI_SUCCESS) {
        all[0] = status ? status : 1;
        all[1] = 0;
        all[2] = 1;
    }
    release_held(status != 0 && all[1] == 0);
    if (all[2]) {
        job.finished = true;
        job.agreed = all[0];
    }
    return all[0];
}

int ranks_gather(const void *bytes, size_t n, void **all, size_t *total)
{
    *all = NULL;
    *total = 0;
    if (!job.started || job.size == 1) {
        if (!(*all = malloc(n ? n : 1)))
            return -1;
        memcpy(*all, bytes, n);
        *total = n;
        return 0;
    }
    if (n > (size_t)0x7fffffff)
        return -1;
    int count = (int)n, *counts = NULL, *offsets = NULL;
    char *buf = NULL;
    if (job.rank == 0) {
        counts = malloc((size_t)job.size * sizeof *counts);
        offsets = malloc((size_t)job.size * sizeof *offsets);
    }
    int failed = job.rank == 0 && (!counts || !offsets);
    MPI_Gather(&count, 1, MPI_INT, counts, 1, MPI_INT, 0, MPI_COMM_WORLD);
    if (job.rank == 0 && !failed) {
        long sum = 0;
        for (int r = 0; r < job.size; r++) {
            offsets[r] = (int)sum;
            sum += counts[r];
        }
        failed = sum > 0x7fffffff || !(buf = malloc(sum ? (size_t)sum : 1));
        *total = (size_t)sum;
    }
    /* every rank learns whether rank 0 can receive, so none is left sending alone */
    MPI_Bcast(&failed, 1, MPI_INT, 0, MPI_COMM_WORLD);
    if (!failed)
        MPI_Gatherv(bytes, count, MPI_BYTE, buf, counts, offsets, MPI_BYTE, 0, MPI_COMM_WORLD);
    free(counts);
    free(offsets);
    if (failed) {
        free(buf);
        *total = 0;
        return -1;
    }
    *all = buf;
    return 0;
}

int ranks_allgather(const void *mine, void *all, size_t bytes)
{
    if (!job.started || job.size == 1) {
        memcpy(all, mine, bytes);
        return 0;
    }
    if (bytes > (size_t)0x7fffffff)
        return -1;
    return MPI_Allgather(mine, (int)bytes, MPI_BYTE, all, (int)bytes, MPI_BYTE, MPI_COMM_WORLD) ==
                   MPI_SUCCESS ? 0 : -1;
}

int ranks_allreduce_sum(void *data, size_t count, bool doubles)
{
    if (!job.started || job.size == 1)
        return 0;
    if (count > (size_t)0x7fffffff)
        return -1;
    return MPI_Allreduce(MPI_IN_PLACE, data, (int)count, doubles ? MPI_DOUBLE : MPI_FLOAT, MPI_SUM,
                         MPI_COMM_WORLD) == MPI_SUCCESS ? 0 : -1;
}

int ranks_stderr_fd(void) { return job.real_stderr >= 0 ? job.real_stderr : 2; }

void ranks_abort(int status)
{
    release_held(true);
    if (job.started && job.size > 1)
        MPI_Abort(MPI_COMM_WORLD, status ? status : 1);
}

#else /* one process: the same answers without MPI */

int ranks_init(int *argc, char ***argv) { return 0; }
void ranks_finalize(void) {}
int ranks_rank(void) { return 0; }
int ranks_size(void) { return 1; }
void ranks_library(char *out, size_t size) { snprintf(out, size, "not built in"); }
int ranks_agree(int status, bool last) { return status; }

int ranks_allgather(const void *mine, void *all, size_t bytes)
{
    memcpy(all, mine, bytes);
    return 0;
}

int ranks_allreduce_sum(void *data, size_t count, bool doubles)
{
    (void)data, (void)count, (void)doubles;
    return 0;
}

int ranks_stderr_fd(void) { return 2; }
void ranks_abort(int status) { (void)status; }

int ranks_gather(const void *bytes, size_t n, void **all, size_t *total)
{
    *total = 0;
    if (!(*all = malloc(n ? n : 1)))
        return -1;
    memcpy(*all, bytes, n);
    *total = n;
    return 0;
}

#endif
