/* coreset_distance.c: the distances between the last-layer gradients g_i = [e_i ; e_i (outer) h_i]
 * of the points of one class (coreset.h), without forming the K (H + 1) values of each g_i.
 * Writing h'_i = [1 ; h_i], g_i is e_i (outer) h'_i, so <g_i, g_j> = (e_i . e_j)(1 + h_i . h_j)
 * and
 *   ||g_i - g_j||^2 = q_i + q_j - 2 (e_i . e_j)(1 + h_i . h_j),   q_i = ||e_i||^2 (1 + ||h_i||^2),
 * the same as ||e_i - e_j||^2 (the bias part) plus the weight part
 *   ||e_i||^2 ||h_i||^2 + ||e_j||^2 ||h_j||^2 - 2 (e_i . e_j)(h_i . h_j).
 * The embeddings' dot products come from the GEMM (H multiply-adds per pair instead of K (H + 1)),
 * the errors' (K per pair) from a plain loop, one block of rows at a time, upper triangle only;
 * each block then mirrors itself into the lower triangle, so the matrix is exactly symmetric (the
 * greedy reads a column as a row). Rounding can make a squared distance slightly negative: it is
 * clamped to 0. The blocks have a fixed size and each GEMM runs on one thread, so the result does
 * not depend on how many threads share the blocks. */
#include "train/coreset.h"

#include "kernels/kernels.h"

#include <math.h>

enum {
    ROWS = 128 /* rows per GEMM call: long enough to keep the GEMM efficient, short enough to
                  balance the triangle between threads */
};

/* Squared norms in a fixed order, in double: q = ||e||^2 (1 + ||h||^2). */
static void gradient_norms(const float *e, const float *h, int n, int classes, int embed, double *q)
{
#pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++) {
        double a = 0.0, b = 0.0;
        for (int k = 0; k < classes; k++)
            a += (double)e[(size_t)i * classes + k] * e[(size_t)i * classes + k];
        if (h)
            for (int k = 0; k < embed; k++)
                b += (double)h[(size_t)i * embed + k] * h[(size_t)i * embed + k];
        q[i] = a * (1.0 + b);
    }
}

/* ee[c] = e_i . e_j for the `count` points j whose errors are the columns of et ([classes, n],
 * starting at j), summed over the classes in order. */
AT_MULTIVERSION
static void error_dots(const float *restrict ei, const float *restrict et, int n, int classes,
                       int count, float *restrict ee)
{
    for (int c = 0; c < count; c++)
        ee[c] = ei[0] * et[c];
    for (int k = 1; k < classes; k++)
        for (int c = 0; c < count; c++)
            ee[c] += ei[k] * et[(size_t)k * n + c];
}

/* One row of the upper triangle: the dot products ee[c] = e_i . e_j (and hh[c] = h_i . h_j, or
 * none) with the points j = i + 1, ... become distances, written over hh when given; returns the
 * largest. Element-wise, so every instruction set gives the same bits. */
AT_MULTIVERSION
static float distance_row(double qi, const double *restrict q, const float *restrict ee,
                          const float *hh, float *out, int count)
{
    float best = 0.0f;
    for (int c = 0; c < count; c++) {
        double d2 = qi + q[c] - 2.0 * (double)ee[c] * (1.0 + (hh ? (double)hh[c] : 0.0));
        float dist = d2 > 0.0 ? sqrtf((float)d2) : 0.0f;
        out[c] = dist;
        best = dist > best ? dist : best;
    }
    return best;
}

/* d[j, i] = d[i, j] for the rows i of a block and every j > i: each row j gets a contiguous run,
 * read from a column of the block while it is still in cache. Blocks write disjoint columns of
 * the lower triangle, so they can run at once. */
static void mirror_block(float *d, int n, int r0, int rows)
{
    for (int j = r0 + 1; j < n; j++)
        for (int i = r0; i < r0 + rows && i < j; i++)
            d[(size_t)j * n + i] = d[(size_t)i * n + j];
}

/* Rows [r0, r0 + rows) of the upper triangle, columns r0..n-1; returns their largest distance.
 * et: the errors transposed, [classes, n]; ee: n floats of scratch. */
static float upper_block(const float *e, const float *et, const float *h, const double *q, int n,
                         int classes, int embed, int r0, int rows, float *d, float *ee)
{
    float *out = d + (size_t)r0 * n + r0;
    if (h)
        at_gemm(false, true, rows, n - r0, embed, 1.0f, h + (size_t)r0 * embed, embed,
                h + (size_t)r0 * embed, embed, 0.0f, out, n);
    float best = 0.0f;
    for (int r = 0; r < rows; r++) {
        const int i = r0 + r, count = n - i - 1;
        float *row = out + (size_t)r * n + r; /* d[i, i], d[i, i + 1], ... */
        row[0] = 0.0f; /* a point's own distance, whatever the rounding */
        error_dots(e + (size_t)i * classes, et + i + 1, n, classes, count, ee);
        float m = distance_row(q[i], q + i + 1, ee, h ? row + 1 : NULL, row + 1, count);
        best = m > best ? m : best;
    }
    mirror_block(d, n, r0, rows);
    return best;
}

int at_coreset_distances(const float *e, const float *h, int n, int classes, int embed, float *d,
                         float *d_max)
{
    const int threads = at_max_threads();
    const int blocks = (n + ROWS - 1) / ROWS;
    double *q = at_alloc((size_t)n * sizeof(double));
    float *et = at_alloc((size_t)n * classes * sizeof(float));
    float *scratch = at_alloc((size_t)threads * n * sizeof(float));
    if (!q || !et || !scratch) {
        at_free(q);
        at_free(et);
        at_free(scratch);
        return AT_ERR_NOMEM;
    }
    gradient_norms(e, h, n, classes, embed, q);
    at_transpose(n, classes, e, et);
    float best = 0.0f;
    /* dynamic: the blocks shrink down the triangle; which thread runs a block changes nothing */
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads) reduction(max : best)
    for (int b = 0; b < blocks; b++) {
        const int r0 = b * ROWS, rows = n - r0 < ROWS ? n - r0 : ROWS;
        float *ee = scratch + (size_t)at_thread_id() * n;
        float m = upper_block(e, et, h, q, n, classes, embed, r0, rows, d, ee);
        best = m > best ? m : best;
    }
    *d_max = best;
    at_free(q);
    at_free(et);
    at_free(scratch);
    return AT_OK;
}
