/* gemm.c: matrix products through oneDNN's sgemm, and the naive triple loop they are tested
 * against. oneDNN generates its kernels at run time for the processor it finds (AVX-512, AVX2,
 * ...), so one binary is fast on every x86-64 machine; on the convolution shapes of the reference
 * workloads it runs about twice as fast per core as OpenBLAS's AVX2 kernels. */
#include "kernels/kernels.h"

#include <dnnl.h> /* dnnl_sgemm */
#include <omp.h>  /* omp_in_parallel, omp_set_num_threads */

void at_gemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float *a, int lda,
             const float *b, int ldb, float beta, float *c, int ldc)
{
    /* Callers split the work themselves, so each product must run on the calling thread alone:
     * oneDNN does so inside an active parallel region; elsewhere (a team of one) it would use
     * every thread and might split the sums differently, so it is told to use one. */
    if (omp_in_parallel()) {
        dnnl_sgemm(trans_a ? 'T' : 'N', trans_b ? 'T' : 'N', m, n, k, alpha, a, lda, b, ldb, beta,
                   c, ldc);
        return;
    }
    int threads = omp_get_max_threads();
    omp_set_num_threads(1);
    dnnl_sgemm(trans_a ? 'T' : 'N', trans_b ? 'T' : 'N', m, n, k, alpha, a, lda, b, ldb, beta, c,
               ldc);
    omp_set_num_threads(threads);
}

void at_gemm_ref(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float *a,
                 int lda, const float *b, int ldb, float beta, float *c, int ldc)
{
    for (int i = 0; i < m; i++) {
        for (int j = 0; j < n; j++) {
            double sum = 0.0;
            for (int p = 0; p < k; p++) {
                float av = trans_a ? a[(size_t)p * lda + i] : a[(size_t)i * lda + p];
                float bv = trans_b ? b[(size_t)j * ldb + p] : b[(size_t)p * ldb + j];
                sum += (double)av * bv;
            }
            float *cij = &c[(size_t)i * ldc + j];
            *cij = (float)(alpha * sum + (beta == 0.0f ? 0.0 : (double)beta * *cij));
        }
    }
}
