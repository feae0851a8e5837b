/* pca.c: principal component analysis of a data set's images.
 *
 * The covariance is accumulated from the centred images a chunk of rows at a time with the
 * library's GEMM (C += X^T X, upper triangle only, in column blocks that threads share out), and
 * its top eigenvectors come from LAPACK's dsyevr (relatively robust representations, Dhillon and
 * Parlett 2004), asked for only the k largest. The chunks, the column blocks and the order in
 * which chunks are added are fixed by the data's size alone, so the result is the same whatever
 * the number of threads.
 */
#include "data/pca.h"

#include "core/util.h"
#include "kernels/kernels.h"

#include <lapacke.h>
#include <math.h>
#include <string.h>

enum {
    PCA_ROWS = 1024, /* images per chunk of the covariance sum */
    PCA_BLOCK = 64   /* covariance columns per GEMM call */
};

void at_pca_free(at_pca *p)
{
    if (!p)
        return;
    at_free(p->mean);
    at_free(p->basis);
    at_free(p->variance);
    memset(p, 0, sizeof *p);
}

/* Rows [first, first + rows) of ds as floats in [0,1] minus the mean, into x[rows, d]. */
static void centred_rows(const at_dataset *ds, const float *mean, int first, int rows, float *x)
{
    const int d = ds->c * ds->h * ds->w;
#pragma omp parallel for schedule(static)
    for (int i = 0; i < rows; i++) {
        const uint8_t *src = ds->images + (size_t)(first + i) * d;
        float *dst = x + (size_t)i * d;
        for (int j = 0; j < d; j++)
            dst[j] = (float)src[j] / 255.0f - mean[j];
    }
}

/* cov[d, d] (upper triangle) = sum over images of (x - mean)(x - mean)^T. */
static void covariance(const at_dataset *ds, const float *mean, float *x, float *cov)
{
    const int d = ds->c * ds->h * ds->w, blocks = (d + PCA_BLOCK - 1) / PCA_BLOCK;
    for (int first = 0; first < ds->n; first += PCA_ROWS) {
        const int rows = ds->n - first < PCA_ROWS ? ds->n - first : PCA_ROWS;
        centred_rows(ds, mean, first, rows, x);
        const float beta = first == 0 ? 0.0f : 1.0f;
#pragma omp parallel for schedule(dynamic, 1)
        for (int b = blocks - 1; b >= 0; b--) { /* the widest products first */
            const int col = b * PCA_BLOCK, width = d - col < PCA_BLOCK ? d - col : PCA_BLOCK;
            /* rows 0..col+width-1 of these columns: the block's part of the upper triangle */
            at_gemm(true, false, col + width, width, rows, 1.0f, x, d, x + col, d, beta, cov + col,
                    d);
        }
    }
}

int at_pca_fit(at_pca *out, const at_dataset *ds, int k, at_error *err)
{
    memset(out, 0, sizeof *out);
    const int d = ds->c * ds->h * ds->w;
    if (ds->n < 1 || k < 1 || k > d)
        return at_fail(err, AT_ERR_ARG, "%s: PCA of %d images of %d pixels to %d dimensions",
                       ds->name, ds->n, d, k);
    out->d = d;
    out->k = k;
    out->mean = at_alloc((size_t)d * sizeof(float));
    out->basis = at_alloc((size_t)d * k * sizeof(float));
    out->variance = at_alloc((size_t)k * sizeof(double));
    double *sum = at_alloc((size_t)d * sizeof(double)), *eigval = at_alloc((size_t)d * sizeof(double));
    double *a = at_alloc((size_t)d * d * sizeof(double)), *vec = at_alloc((size_t)d * k * sizeof(double));
    const int rows = ds->n < PCA_ROWS ? ds->n : PCA_ROWS;
    float *x = at_alloc((size_t)rows * d * sizeof(float)), *cov = at_alloc((size_t)d * d * sizeof(float));
    lapack_int *support = at_alloc(2 * (size_t)k * sizeof(lapack_int));
    int status = AT_OK;
    if (!out->mean || !out->basis || !out->variance || !sum || !eigval || !a || !vec || !x ||
        !cov || !support) {
        status = at_fail(err, AT_ERR_NOMEM, "%s: out of memory for the PCA of %d pixels",
                         ds->name, d);
        goto done;
    }
    for (int i = 0; i < ds->n; i++) {
        const uint8_t *src = ds->images + (size_t)i * d;
        for (int j = 0; j < d; j++)
            sum[j] += (double)src[j] / 255.0;
    }
    for (int j = 0; j < d; j++)
        out->mean[j] = (float)(sum[j] / ds->n);
    covariance(ds, out->mean, x, cov);
    for (int i = 0; i < d; i++) {
        out->total += (double)cov[(size_t)i * d + i] / ds->n;
        for (int j = i; j < d; j++) /* symmetric: row- and column-major agree */
            a[(size_t)i * d + j] = a[(size_t)j * d + i] = (double)cov[(size_t)i * d + j] / ds->n;
    }
    lapack_int found = 0;
    lapack_int info = LAPACKE_dsyevr(LAPACK_COL_MAJOR, 'V', 'I', 'U', d, a, d, 0.0, 0.0, d - k + 1,
                                     d, 0.0, &found, eigval, vec, d, support);
    if (info != 0 || found != k) {
        status = at_fail(err, AT_ERR_NUMERIC, "%s: eigen-decomposition of the %dx%d covariance "
                         "failed (LAPACK dsyevr info %d)", ds->name, d, d, (int)info);
        goto done;
    }
    /* dsyevr returns them ascending; the basis keeps them descending */
    for (int t = 0; t < k; t++) {
        const double *v = vec + (size_t)(k - 1 - t) * d;
        int largest = 0;
        for (int j = 1; j < d; j++)
            if (fabs(v[j]) > fabs(v[largest]))
                largest = j;
        const double sign = v[largest] < 0 ? -1.0 : 1.0;
        for (int j = 0; j < d; j++)
            out->basis[(size_t)j * k + t] = (float)(sign * v[j]);
        out->variance[t] = eigval[k - 1 - t] > 0 ? eigval[k - 1 - t] : 0.0;
    }
done:
    at_free(sum);
    at_free(eigval);
    at_free(a);
    at_free(vec);
    at_free(x);
    at_free(cov);
    at_free(support);
    if (status)
        at_pca_free(out);
    return status;
}

int at_pca_project(const at_pca *p, const at_dataset *ds, float *z, at_error *err)
{
    const int d = p->d, k = p->k;
    if (ds->c * ds->h * ds->w != d)
        return at_fail(err, AT_ERR_SHAPE, "%s: images of %d pixels, the PCA has %d", ds->name,
                       ds->c * ds->h * ds->w, d);
    const int chunks = (ds->n + PCA_ROWS - 1) / PCA_ROWS;
    const int threads = at_max_threads();
    float *x = at_alloc((size_t)threads * PCA_ROWS * d * sizeof(float));
    if (!x)
        return at_fail(err, AT_ERR_NOMEM, "%s: out of memory projecting onto the PCA", ds->name);
#pragma omp parallel for schedule(dynamic, 1)
    for (int c = 0; c < chunks; c++) {
        const int first = c * PCA_ROWS, rows = ds->n - first < PCA_ROWS ? ds->n - first : PCA_ROWS;
        float *mine = x + (size_t)at_thread_id() * PCA_ROWS * d;
        for (int i = 0; i < rows; i++) {
            const uint8_t *src = ds->images + (size_t)(first + i) * d;
            for (int j = 0; j < d; j++)
                mine[(size_t)i * d + j] = (float)src[j] / 255.0f - p->mean[j];
        }
        at_gemm(false, false, rows, k, d, 1.0f, mine, d, p->basis, k, 0.0f, z + (size_t)first * k,
                k);
    }
    at_free(x);
    return AT_OK;
}
