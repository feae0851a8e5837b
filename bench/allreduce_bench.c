/* allreduce_bench.c: the cost of summing one gradient slab over the processes of an mpirun job,
 * the communication term of data-parallel training (docs/PERFORMANCE.md, "Many processes: the
 * cost model"). Sizes: one float (the latency), and the gradient slabs of the reference
 * workloads, counted from the models themselves (W1 smallcnn 1x28x28, W2 preact-resnet18
 * 3x32x32), plus any --floats N. Three ways to sum, each timed --repeats times after --warmup:
 *   allreduce   MPI_Allreduce(MPI_SUM, MPI_FLOAT): the library picks the algorithm and the order
 *               of the additions, which may change with the size and the number of ranks;
 *   gather      MPI_Gather to rank 0, which adds the slabs in rank order, then MPI_Bcast: the
 *               same bits whatever MPI does (the order one process would add them in);
 *   ordered-rs  MPI_Alltoallv of 1/N of the slab to each rank, which adds its chunk in rank order,
 *               then MPI_Allgatherv: the gather mode's bits at the ring's traffic per rank.
 * A repetition's time is the slowest rank's, between barriers; the median over repetitions is
 * quoted. The phases of gather and ordered-rs are rank 0's medians: a phase of another rank also
 * counts its waits for rank 0 (rank 1's broadcast starts while rank 0 still adds). Bandwidth: algbw = bytes / seconds; for allreduce also busbw = algbw x 2 (N - 1) / N,
 * the traffic per rank of a ring allreduce (the convention of nccl-tests), so busbw estimates the
 * link bandwidth whatever N. The gather and ordered-rs results must match bit for bit, or the
 * program fails.
 *   mpirun -np 2 advtrain-allreduce-bench [--repeats 20] [--warmup 3] [--floats N]... [--json F] */
#include "advtrain.h"
#include "median.h"

#include <jansson.h>
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SIZES 16

typedef struct size_case {
    char name[64];
    size_t floats;
} size_case;

typedef struct timing {
    double median, min, part[3]; /* part: medians of the phases (gather, add, bcast), if any */
} timing;


/* The slowest rank's time of each repetition, then the median; t is sorted on return. */
static double slowest_median(double *t, int reps)
{
    MPI_Allreduce(MPI_IN_PLACE, t, reps, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    return median_of(t, reps);
}

/* Gradient slab length of a reference workload's model, as the trainer would sum it. */
static int model_floats(const char *arch, int c, int size, size_t *floats)
{
    at_model_options mo = {.in_channels = c, .in_height = size, .in_width = size, .normalize = c == 3};
    const float mean[3] = {0.4914f, 0.4822f, 0.4465f}, std[3] = {0.2471f, 0.2435f, 0.2616f};
    if (c == 3) {
        memcpy(mo.mean, mean, sizeof mean);
        memcpy(mo.std, std, sizeof std);
    }
    at_model *m;
    at_error err;
    if (at_model_create(&m, arch, &mo, &err))
        return -1;
    at_model_grads(m, floats);
    at_model_free(m);
    return 0;
}

/* Distinct values per rank and index, in [-0.5, 0.5): sums round differently in other orders. */
static void fill(float *x, size_t n, int rank)
{
    uint64_t s = 0x9e3779b97f4a7c15ull * (uint64_t)(rank + 1);
    for (size_t i = 0; i < n; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        x[i] = (float)((s >> 40) / 16777216.0 - 0.5);
    }
}

/* out = in[0] + in[1] + ... + in[ranks - 1], left to right, each in[r] of n floats spaced by
 * stride: the order of one process adding the ranks' slabs. */
static void add_in_rank_order(float *out, const float *in, size_t n, size_t stride, int ranks)
{
    memcpy(out, in, n * sizeof *out);
    for (int r = 1; r < ranks; r++)
        for (size_t i = 0; i < n; i++)
            out[i] += in[(size_t)r * stride + i];
}

typedef struct job {
    int rank, ranks, reps, warmup;
    int *counts, *displs; /* ordered-rs: each rank's chunk of the slab */
    int *rcounts, *rdispls;
} job;

static timing time_allreduce(const job *j, const float *x, float *sum, size_t n, double *t)
{
    for (int i = -j->warmup; i < j->reps; i++) {
        MPI_Barrier(MPI_COMM_WORLD);
        double t0 = MPI_Wtime();
        MPI_Allreduce(x, sum, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        if (i >= 0)
            t[i] = MPI_Wtime() - t0;
    }
    timing r = {.median = slowest_median(t, j->reps)};
    r.min = t[0];
    return r;
}

/* One repetition's phases of the gather mode, or of ordered-rs. */
static void phases(const job *j, const float *x, float *sum, float *all, size_t n, bool gather,
                   double p[3])
{
    double t0 = MPI_Wtime();
    if (gather) {
        MPI_Gather(x, (int)n, MPI_FLOAT, all, (int)n, MPI_FLOAT, 0, MPI_COMM_WORLD);
    } else { /* rank r receives every rank's copy of chunk r, one after the other */
        for (int r = 0; r < j->ranks; r++)
            j->rcounts[r] = j->counts[j->rank], j->rdispls[r] = r * j->counts[j->rank];
        MPI_Alltoallv(x, j->counts, j->displs, MPI_FLOAT, all, j->rcounts, j->rdispls, MPI_FLOAT,
                      MPI_COMM_WORLD);
    }
    double t1 = MPI_Wtime();
    if (gather && j->rank == 0)
        add_in_rank_order(sum, all, n, n, j->ranks);
    else if (!gather)
        add_in_rank_order(sum + j->displs[j->rank], all, (size_t)j->counts[j->rank],
                          (size_t)j->counts[j->rank], j->ranks);
    double t2 = MPI_Wtime();
    if (gather)
        MPI_Bcast(sum, (int)n, MPI_FLOAT, 0, MPI_COMM_WORLD);
    else
        MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_FLOAT, sum, j->counts, j->displs, MPI_FLOAT,
                       MPI_COMM_WORLD);
    double t3 = MPI_Wtime();
    p[0] = t1 - t0, p[1] = t2 - t1, p[2] = t3 - t2;
}

static timing time_ordered(const job *j, const float *x, float *sum, float *all, size_t n,
                           bool gather, double *t)
{
    double *p[3];
    for (int k = 0; k < 3; k++)
        p[k] = malloc((size_t)j->reps * sizeof(double));
    for (int i = -j->warmup; i < j->reps; i++) {
        double q[3];
        MPI_Barrier(MPI_COMM_WORLD);
        double t0 = MPI_Wtime();
        phases(j, x, sum, all, n, gather, q);
        if (i >= 0) {
            t[i] = MPI_Wtime() - t0;
            for (int k = 0; k < 3; k++)
                p[k][i] = q[k];
        }
    }
    timing r = {.median = slowest_median(t, j->reps)};
    r.min = t[0];
    for (int k = 0; k < 3; k++) { /* rank 0's own: the slowest rank's would count its waits */
        r.part[k] = median_of(p[k], j->reps);
        free(p[k]);
    }
    return r;
}

static json_t *timing_json(timing r, size_t bytes, int ranks, bool bus, const char *parts)
{
    json_t *o = json_pack("{s:f, s:f, s:f}", "median_s", r.median, "min_s", r.min, "algbw_bytes_per_s",
                          bytes / r.median);
    if (bus)
        json_object_set_new(o, "busbw_bytes_per_s",
                            json_real(bytes / r.median * 2.0 * (ranks - 1) / ranks));
    if (parts)
        json_object_set_new(o, "rank0_phases_median_s",
                            json_pack("{s:f, s:f, s:f}", parts, r.part[0], "add", r.part[1],
                                      parts[0] == 'g' ? "bcast" : "allgather", r.part[2]));
    return o;
}

static int fail(int rank, const char *msg, const char *what)
{
    if (rank == 0)
        fprintf(stderr, "advtrain-allreduce-bench: %s%s\n", msg, what ? what : "");
    MPI_Finalize();
    return 2;
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    job j = {.reps = 20, .warmup = 3};
    MPI_Comm_rank(MPI_COMM_WORLD, &j.rank);
    MPI_Comm_size(MPI_COMM_WORLD, &j.ranks);
    const char *json_path = NULL;
    size_case sizes[MAX_SIZES] = {{"latency (1 float)", 1}};
    int nsizes = 1;
    if (model_floats("smallcnn", 1, 28, &sizes[1].floats) ||
        model_floats("preact-resnet18", 3, 32, &sizes[2].floats))
        return fail(j.rank, "cannot create the reference models", NULL);
    snprintf(sizes[1].name, sizeof sizes[1].name, "W1 smallcnn gradients");
    snprintf(sizes[2].name, sizeof sizes[2].name, "W2 preact-resnet18 gradients");
    nsizes = 3;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        char *end = NULL;
        long long n = v ? strtoll(v, &end, 10) : 0;
        bool number = v && *v && end && !*end;
        if (!strcmp(a, "--repeats") && number && n >= 1 && n <= 100000) j.reps = (int)n, i++;
        else if (!strcmp(a, "--warmup") && number && n >= 0 && n <= 100000) j.warmup = (int)n, i++;
        else if (!strcmp(a, "--json") && v) json_path = v, i++;
        else if (!strcmp(a, "--floats") && number && n >= 1 && n <= (1ll << 28)) {
            if (nsizes == MAX_SIZES)
                return fail(j.rank, "too many --floats (at most 13)", NULL);
            sizes[nsizes].floats = (size_t)n;
            snprintf(sizes[nsizes++].name, sizeof sizes[0].name, "%lld floats", n);
            i++;
        } else {
            return fail(j.rank, "bad option or value: ", a);
        }
    }
    for (int s = 0; s < nsizes; s++) /* gather receives ranks x floats into one int count */
        if (sizes[s].floats * (size_t)j.ranks > (size_t)INT32_MAX)
            return fail(j.rank, "slab too large for one MPI count: ", sizes[s].name);

    char library[MPI_MAX_LIBRARY_VERSION_STRING];
    int len = 0;
    MPI_Get_library_version(library, &len);
    library[strcspn(library, ",\n")] = '\0';
    if (j.rank == 0)
        printf("%s, %d ranks, %d repetitions after %d warm-up, median of the slowest rank\n"
               "busbw = algbw x 2 (N-1)/N (ring allreduce traffic per rank)\n", library, j.ranks,
               j.reps, j.warmup);

    json_t *results = json_array();
    int status = 0;
    double *t = malloc((size_t)j.reps * sizeof(double));
    j.counts = malloc(4 * (size_t)j.ranks * sizeof(int));
    j.displs = j.counts + j.ranks, j.rcounts = j.displs + j.ranks, j.rdispls = j.rcounts + j.ranks;
    for (int s = 0; s < nsizes && !status; s++) {
        const size_t n = sizes[s].floats, bytes = n * sizeof(float);
        for (int r = 0; r < j.ranks; r++) { /* chunk r: floats n r / N up to n (r + 1) / N */
            j.displs[r] = (int)(n * (size_t)r / (size_t)j.ranks);
            j.counts[r] = (int)(n * (size_t)(r + 1) / (size_t)j.ranks) - j.displs[r];
        }
        float *x = malloc(bytes), *sum = malloc(bytes), *ordered = malloc(bytes),
              *all = malloc(bytes * (size_t)j.ranks);
        if (!x || !sum || !ordered || !all || !t || !j.counts) {
            fprintf(stderr, "advtrain-allreduce-bench: out of memory at %s\n", sizes[s].name);
            MPI_Abort(MPI_COMM_WORLD, 1);
        }
        fill(x, n, j.rank);
        timing ar = time_allreduce(&j, x, sum, n, t);
        timing ga = time_ordered(&j, x, ordered, all, n, true, t);
        timing rs = time_ordered(&j, x, sum, all, n, false, t);
        /* the two rank-ordered sums must agree bit for bit, on every rank */
        int differ = memcmp(sum, ordered, bytes) != 0;
        MPI_Allreduce(MPI_IN_PLACE, &differ, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
        if (differ) {
            if (j.rank == 0)
                fprintf(stderr, "advtrain-allreduce-bench: gather and ordered-rs sums differ at %s\n",
                        sizes[s].name);
            status = 1;
        }
        if (j.rank == 0) {
            printf("%-30s %10zu floats %11zu bytes\n", sizes[s].name, n, bytes);
            printf("  allreduce   %10.4f ms (min %.4f)  algbw %8.3f GB/s  busbw %8.3f GB/s\n",
                   ar.median * 1e3, ar.min * 1e3, bytes / ar.median / 1e9,
                   bytes / ar.median / 1e9 * 2.0 * (j.ranks - 1) / j.ranks);
            printf("  gather      %10.4f ms (min %.4f)  algbw %8.3f GB/s  gather %.4f add %.4f "
                   "bcast %.4f ms\n", ga.median * 1e3, ga.min * 1e3, bytes / ga.median / 1e9,
                   ga.part[0] * 1e3, ga.part[1] * 1e3, ga.part[2] * 1e3);
            printf("  ordered-rs  %10.4f ms (min %.4f)  algbw %8.3f GB/s  alltoall %.4f add %.4f "
                   "allgather %.4f ms\n", rs.median * 1e3, rs.min * 1e3, bytes / rs.median / 1e9,
                   rs.part[0] * 1e3, rs.part[1] * 1e3, rs.part[2] * 1e3);
            json_array_append_new(
                results, json_pack("{s:s, s:I, s:I, s:o, s:o, s:o}", "name", sizes[s].name,
                                   "floats", (json_int_t)n, "bytes", (json_int_t)bytes, "allreduce",
                                   timing_json(ar, bytes, j.ranks, true, NULL), "gather",
                                   timing_json(ga, bytes, j.ranks, false, "gather"), "ordered_rs",
                                   timing_json(rs, bytes, j.ranks, false, "alltoall")));
        }
        free(x), free(sum), free(ordered), free(all);
    }
    free(t);
    free(j.counts);
    if (j.rank == 0 && json_path && !status) {
        json_t *root = json_pack("{s:s, s:i, s:i, s:i, s:s, s:o}", "mpi_library", library, "ranks",
                                 j.ranks, "repeats", j.reps, "warmup", j.warmup, "bandwidth_convention",
                                 "algbw = bytes / median_s; busbw = algbw * 2 (ranks - 1) / ranks",
                                 "results", results);
        if (json_dump_file(root, json_path, JSON_INDENT(1))) {
            fprintf(stderr, "advtrain-allreduce-bench: cannot write %s\n", json_path);
            status = 1;
        }
        json_decref(root);
    } else {
        json_decref(results);
    }
    MPI_Bcast(&status, 1, MPI_INT, 0, MPI_COMM_WORLD);
    MPI_Finalize();
    return status;
}
