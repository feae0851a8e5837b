/* kernels.h: the few loops where the time goes (matrix products, image-to-column unrolling), each
 * with a naive reference beside it that the tests compare against. */
#ifndef AT_KERNELS_H
#define AT_KERNELS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Hot loops are compiled three times, for x86-64-v4 (AVX-512), x86-64-v3 (AVX2) and the baseline,
 * and the best version the processor supports is chosen when the program starts (GCC function
 * multi-versioning), so the shipped binary needs no -march flag. Results do not depend on the
 * version chosen: these loops are element-wise (no reassociated sums) and the build disables
 * floating-point contraction. The convolution kernels (conv_direct.c, written with AVX-512
 * intrinsics and chosen at run time) and oneDNN's GEMM do sum, in an order that depends on the
 * processor but never on the number of threads. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define AT_MULTIVERSION __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define AT_MULTIVERSION
#endif

/* Element-wise kernels on n floats. */
void at_relu_forward_kernel(const float *x, float *y, size_t n);
void at_relu_backward_kernel(const float *y, const float *dy, float *dx, size_t n); /* dx += */
void at_relu_grad_kernel(const float *y, const float *dy, float *dx, size_t n); /* dx = 0 + */
/* ReLU on given active units (a frozen pattern): the ReLU mask of another input. The mask holds
 * 1 where the unit is active (its output was > 0), else 0. */
void at_relu_pattern_forward_kernel(const float *x, const uint8_t *mask, float *y, size_t n);
void at_relu_pattern_backward_kernel(const uint8_t *mask, const float *dy, float *dx,
                                     size_t n); /* dx += */
void at_relu_mask_kernel(const float *y, uint8_t *mask, size_t n); /* mask = y > 0 */
void at_add_kernel(const float *a, const float *b, float *y, size_t n);              /* y = a + b */
void at_accumulate_kernel(const float *dy, float *dx, size_t n);                      /* dx += dy */
/* y = x * scale + shift */
void at_scale_shift_kernel(const float *x, float scale, float shift, float *y, size_t n);

/* 2x2 max pooling with stride 2 of one h x w plane: y and argmax are (h/2) x (w/2); the first
 * maximum of a window wins, and a NaN wins over any number. */
void at_maxpool2x2_kernel(const float *x, int h, int w, float *y, int32_t *argmax);

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

/* How the direct convolution writes its sums S: y = bias + S, y += S (bias ignored), or
 * y = relu(bias + S) with ReLU's rule (v < 0 ? 0 : v: a NaN passes through). */
typedef enum { AT_CONV_SET, AT_CONV_ADD, AT_CONV_SET_RELU } at_conv_output;

/* Direct convolution (conv_direct.c), without a column matrix: S[o, oy, ox] = sum over
 * (c, ky, kx) of w[o, c, ky, kx] * x[c, oy*s + ky, ox*s + kx], written as `output` says, over an input already padded (g->padding must be 0). Supported
 * when the processor has AVX-512, out_channels is a multiple of 32, the stride is 1 or 2 and
 * the kernel at most 7; callers fall back to im2col otherwise. Each output is summed over its
 * taps in order with fused multiply-adds, whatever the split between threads. */
bool at_conv_direct_supported(const at_conv_geom *g, int out_channels);
/* Weights [out_channels, channels, k, k] into the kernel's layout (out_channels * channels * k*k
 * floats; the convolution's outputs, out_channels or when transposed channels, a multiple of 32),
 * one block of 32 outputs per call (blocks are independent: callers may pack them in parallel).
 * `transposed` packs the convolution that gives the input gradient of a stride-1 convolution:
 * `channels` outputs over `out_channels` inputs, the window flipped. */
void at_conv_direct_pack(const float *w, int out_channels, int channels, int kernel,
                         bool transposed, int block, float *packed);
void at_conv_direct(const at_conv_geom *g, int out_channels, const float *x, const float *packed,
                    const float *bias, at_conv_output output, float *y);
/* The weight (and bias) gradient of a 3x3 convolution over one padded image, added into `grad`
 * in the packed layout of at_conv_direct_pack and into bias_grad[out_channels] (when not NULL):
 * dyt is the output gradient transposed, [pixels, out_channels]. Each gradient is a sum over the
 * pixels in order. Supported as at_conv_direct_supported says, for kernel 3. */
void at_conv_direct_weight_grad(const at_conv_geom *g, int out_channels, const float *x,
                                const float *dyt, float *grad, float *bias_grad);
/* Winograd F(2x2, 3x3) convolution (conv_winograd.c), the same sums as at_conv_direct with 4
 * multiplications per output and input channel instead of 9. Supported when at_conv_direct is,
 * for kernel 3, stride 1, even output height and width and input channels a multiple of 16. The
 * weights are packed as G g G^T (16 floats per output and input channel, out_channels * channels
 * * 16 in all), one block of 32 outputs per call; `transposed` as for at_conv_direct_pack. Each
 * call needs at_conv_winograd_work_floats(g) floats of scratch `work`. Each output is computed
 * in the same order whatever the split between threads. */
bool at_conv_winograd_supported(const at_conv_geom *g, int out_channels);
size_t at_conv_winograd_work_floats(const at_conv_geom *g);
void at_conv_winograd_pack(const float *w, int out_channels, int channels, bool transposed,
                           int block, float *packed);
void at_conv_winograd(const at_conv_geom *g, int out_channels, const float *x, const float *packed,
                      const float *bias, at_conv_output output, float *y, float *work);
/* The weight gradient of one image by F(3x3, 2x2), the same algorithm with the roles of the
 * output gradient and the kernel swapped: adds, for every input and output channel, the 16
 * products summed over the tiles into `grad` (the packed layout of at_conv_winograd_pack, not
 * transposed) and the sum of dy into bias_grad[out_channels] (when not NULL). dyt is the output
 * gradient transposed, [pixels, out_channels]; `work` holds
 * at_conv_winograd_weight_grad_work_floats(g, out_channels) floats. Once the sums are complete,
 * at_conv_winograd_weight_from_grad turns the 16 sums of an (output, input) channel pair into its
 * 3x3 weight gradient. Supported as at_conv_winograd_supported says. */
size_t at_conv_winograd_weight_grad_work_floats(const at_conv_geom *g, int out_channels);
void at_conv_winograd_weight_grad(const at_conv_geom *g, int out_channels, const float *x,
                                  const float *dyt, float *grad, float *bias_grad, float *work);
void at_conv_winograd_weight_from_grad(const float m[16], float w[9]);
/* t[j, i] = a[i, j] for a row-major [rows, cols] matrix. */
void at_transpose(int rows, int cols, const float *a, float *t);
/* padded[c] = the plane x[c] of height x width with `pad` zeros on every side. */
void at_pad_planes(int planes, int height, int width, int pad, const float *x, float *padded);

#endif
