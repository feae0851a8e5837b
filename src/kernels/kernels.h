/* kernels.h: the few loops where the time goes (matrix products, image-to-column unrolling), each
 * with a naive reference beside it that the tests compare against. */
#ifndef AT_KERNELS_H
#define AT_KERNELS_H

#include <stdbool.h>
#include <stddef.h>

/* C[M,N] = alpha * op(A) * op(B) + beta * C, row-major; op(A) is [M,K], op(B) is [K,N].
 * Runs on the calling thread (the BLAS is single-threaded; callers parallelise around it). */
void at_gemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float *a, int lda,
             const float *b, int ldb, float beta, float *c, int ldc);
void at_gemm_ref(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float *a,
                 int lda, const float *b, int ldb, float beta, float *c, int ldc);

/* The geometry of a 2-d convolution over one image. */
typedef struct at_conv_geom {
    int channels, height, width;       /* input */
    int kernel, stride, padding;
    int out_height, out_width;
} at_conv_geom;

/* col[(c*k + ky)*k + kx, oy*ow + ox] = x[c, oy*s - p + ky, ox*s - p + kx] (0 outside). */
void at_im2col(const at_conv_geom *g, const float *x, float *col);
/* The adjoint: x[c, iy, ix] += col[...] for every column entry that came from (iy, ix). */
void at_col2im(const at_conv_geom *g, const float *col, float *x);

#endif
