/* conv_direct.c: a direct convolution kernel (no column matrix), for processors with AVX-512.
 *
 * im2col copies every input value k*k times before the matrix product reads it again; on the
 * small images of the reference workloads that copy (and col2im, its adjoint) took about half as
 * long as the product itself. Here the product reads the input where it lies: for a block of 32 output channels and
 * a run of T <= 12 neighbouring output pixels of one row, 2*T vector accumulators (16 channels
 * each) are kept in registers, and for every tap (c, ky, kx) of the window one input value per
 * pixel is broadcast and multiplied into them with the tap's 32 weights, which are packed so they
 * are contiguous ([block][tap][32]). This is the register blocking of BLIS-style micro-kernels
 * with the column matrix replaced by its definition (Chellapilla et al. 2006 for the unrolling;
 * Zhang et al., "High performance zero-memory overhead direct convolutions", ICML 2018, for
 * keeping output channels in the vector lanes).
 *
 * Every output is one sum over its taps in the order (c, ky, kx), one fused multiply-add per
 * tap, so a result does not depend on how the work is split between threads. The input must
 * already be padded: the kernel computes the "valid" convolution of a [C, H, W] image.
 *
 * The input gradient of a stride-1 convolution is itself such a convolution: of the output
 * gradient, padded by k - 1 - p, with the weights flipped in space and the two channel axes
 * swapped (at_conv_direct_pack's `transposed`). The weight gradient of a 3x3 convolution has its
 * own loop: the nine taps x 32 channels of one input channel in 18 accumulators, one pixel at a
 * time, from the output gradient transposed to [pixel, channel].
 *
 * Blocks are written out through a 16 x 16 transpose in registers (the accumulators hold channels
 * in their lanes, the output planes want pixels). The store lives in avx512_blocks.h, which the
 * Winograd convolution shares. */
#include "kernels/avx512_blocks.h"

#include <string.h>

bool at_conv_direct_supported(const at_conv_geom *g, int out_channels)
{
#if HAVE_DIRECT
    return __builtin_cpu_supports("avx512f") && out_channels % BLOCK == 0 && g->padding == 0 &&
           (g->stride == 1 || g->stride == 2) && g->kernel <= 7;
#else
    (void)g;
    (void)out_channels;
    return false;
#endif
}

void at_conv_direct_pack(const float *w, int out_channels, int channels, int kernel, bool transposed,
                         int block, float *packed)
{
    const int kk = kernel * kernel;
    /* as a convolution: `rows` output channels over `cols` input channels */
    const int rows = transposed ? channels : out_channels, cols = transposed ? out_channels : channels;
    const size_t taps = (size_t)cols * kk;
    float *dst = packed + (size_t)block * taps * BLOCK;
    for (int c = 0; c < cols; c++)
        for (int t = 0; t < kk; t++, dst += BLOCK)
            for (int l = 0; l < BLOCK; l++) {
                const int r = block * BLOCK + l;
                /* forward: w[r, c, t]; transposed: w[c, r, flipped t] */
                dst[l] = transposed ? w[((size_t)c * rows + r) * kk + (kk - 1 - t)]
                                    : w[((size_t)r * cols + c) * kk + t];
            }
}

void at_pad_planes(int planes, int height, int width, int pad, const float *x, float *padded)
{
    const int ph = height + 2 * pad, pw = width + 2 * pad;
    for (int c = 0; c < planes; c++) {
        float *dst = padded + (size_t)c * ph * pw;
        const float *src = x + (size_t)c * height * width;
        memset(dst, 0, (size_t)pad * pw * sizeof(float));
        for (int y = 0; y < height; y++) {
            float *row = dst + (size_t)(y + pad) * pw;
            memset(row, 0, (size_t)pad * sizeof(float));
            memcpy(row + pad, src + (size_t)y * width, (size_t)width * sizeof(float));
            memset(row + pad + width, 0, (size_t)pad * sizeof(float));
        }
        memset(dst + (size_t)(pad + height) * pw, 0, (size_t)pad * pw * sizeof(float));
    }
}

#if HAVE_DIRECT
/* One register block: out[j, 0..31] = sum over taps of weights[tap, 0..31] * in[j*S + offset[tap]]
 * for j < T. The taps are walked as channel c (planes apart), then the k*k window offsets. */
static inline __attribute__((always_inline)) TARGET void
run_block(const int T, const int S, const float *in, int channels, size_t plane, const int *window,
          int kk, const float *weights, float *out)
{
    __m512 lo[MAX_RUN], hi[MAX_RUN];
    for (int j = 0; j < T; j++) {
        lo[j] = _mm512_setzero_ps();
        hi[j] = _mm512_setzero_ps();
    }
    for (int c = 0; c < channels; c++, in += plane) {
        for (int t = 0; t < kk; t++, weights += BLOCK) {
            const float *p = in + window[t];
            const __m512 w0 = _mm512_loadu_ps(weights), w1 = _mm512_loadu_ps(weights + 16);
            for (int j = 0; j < T; j++) {
                const __m512 v = _mm512_set1_ps(p[j * S]);
                lo[j] = _mm512_fmadd_ps(w0, v, lo[j]);
                hi[j] = _mm512_fmadd_ps(w1, v, hi[j]);
            }
        }
    }
    for (int j = 0; j < T; j++) {
        _mm512_storeu_ps(out + j * BLOCK, lo[j]);
        _mm512_storeu_ps(out + j * BLOCK + 16, hi[j]);
    }
}

typedef void (*block_fn)(const float *, int, size_t, const int *, int, const float *, float *);

#define BLOCK_FN(T, S)                                                                            \
    static TARGET void block_##T##_##S(const float *in, int channels, size_t plane,               \
                                       const int *window, int kk, const float *weights, float *out) \
    {                                                                                             \
        run_block(T, S, in, channels, plane, window, kk, weights, out);                           \
    }
#define BLOCK_FNS(S)                                                                              \
    BLOCK_FN(1, S) BLOCK_FN(2, S) BLOCK_FN(3, S) BLOCK_FN(4, S) BLOCK_FN(5, S) BLOCK_FN(6, S)     \
    BLOCK_FN(7, S) BLOCK_FN(8, S) BLOCK_FN(9, S) BLOCK_FN(10, S) BLOCK_FN(11, S) BLOCK_FN(12, S)
BLOCK_FNS(1)
BLOCK_FNS(2)

static const block_fn blocks[2][MAX_RUN] = {
    {block_1_1, block_2_1, block_3_1, block_4_1, block_5_1, block_6_1, block_7_1, block_8_1,
     block_9_1, block_10_1, block_11_1, block_12_1},
    {block_1_2, block_2_2, block_3_2, block_4_2, block_5_2, block_6_2, block_7_2, block_8_2,
     block_9_2, block_10_2, block_11_2, block_12_2},
};

void at_conv_direct(const at_conv_geom *g, int out_channels, const float *x, const float *packed,
                    const float *bias, at_conv_output output, float *y)
{
    const int k = g->kernel, kk = k * k, s = g->stride, oh = g->out_height, ow = g->out_width;
    const size_t plane = (size_t)g->height * g->width, pixels = (size_t)oh * ow;
    const size_t taps = (size_t)g->channels * kk;
    int window[49];
    for (int t = 0; t < kk; t++)
        window[t] = t / k * g->width + t % k;
    /* rows cut into runs of nearly equal length: 24 -> 12 + 12, 16 -> 8 + 8, 26 -> 9 + 9 + 8 */
    const int runs = (ow + MAX_RUN - 1) / MAX_RUN, run = (ow + runs - 1) / runs;
    float out[MAX_RUN * BLOCK];
    for (int b = 0; b < out_channels / BLOCK; b++) {
        const float *weights = packed + (size_t)b * taps * BLOCK;
        float *yb = y + (size_t)b * BLOCK * pixels;
        for (int oy = 0; oy < oh; oy++) {
            for (int ox = 0; ox < ow; ox += run) {
                const int T = ow - ox < run ? ow - ox : run;
                const float *in = x + (size_t)oy * s * g->width + (size_t)ox * s;
                blocks[s - 1][T - 1](in, g->channels, plane, window, kk, weights, out);
                store_block(out, T, bias ? bias + b * BLOCK : NULL, output,
                            yb + (size_t)oy * ow + ox, pixels);
            }
        }
    }
}

/* The weight gradient of one image for one block of 32 output channels and one input channel:
 * acc[t] += dy[p, block] * x[c, window t of pixel p] over the pixels p in order, all nine taps of
 * a 3x3 window at once (18 accumulators), and the bias gradient beside them. */
static TARGET void weight_grad_3x3(const at_conv_geom *g, const float *xc, const float *dyt,
                                   size_t dyt_stride, const int *window, float *acc_io,
                                   float *bias_io)
{
    __m512 lo[9], hi[9], blo = _mm512_setzero_ps(), bhi = _mm512_setzero_ps();
    for (int t = 0; t < 9; t++) {
        lo[t] = _mm512_loadu_ps(acc_io + t * BLOCK);
        hi[t] = _mm512_loadu_ps(acc_io + t * BLOCK + 16);
    }
    if (bias_io) {
        blo = _mm512_loadu_ps(bias_io);
        bhi = _mm512_loadu_ps(bias_io + 16);
    }
    const int s = g->stride;
    for (int oy = 0; oy < g->out_height; oy++) {
        const float *row = xc + (size_t)oy * s * g->width;
        for (int ox = 0; ox < g->out_width; ox++, dyt += dyt_stride) {
            const float *p = row + (size_t)ox * s;
            const __m512 d0 = _mm512_loadu_ps(dyt), d1 = _mm512_loadu_ps(dyt + 16);
            for (int t = 0; t < 9; t++) {
                const __m512 v = _mm512_set1_ps(p[window[t]]);
                lo[t] = _mm512_fmadd_ps(d0, v, lo[t]);
                hi[t] = _mm512_fmadd_ps(d1, v, hi[t]);
            }
            blo = _mm512_add_ps(blo, d0);
            bhi = _mm512_add_ps(bhi, d1);
        }
    }
    for (int t = 0; t < 9; t++) {
        _mm512_storeu_ps(acc_io + t * BLOCK, lo[t]);
        _mm512_storeu_ps(acc_io + t * BLOCK + 16, hi[t]);
    }
    if (bias_io) {
        _mm512_storeu_ps(bias_io, blo);
        _mm512_storeu_ps(bias_io + 16, bhi);
    }
}

void at_conv_direct_weight_grad(const at_conv_geom *g, int out_channels, const float *x,
                                const float *dyt, float *grad, float *bias_grad)
{
    int window[9];
    for (int t = 0; t < 9; t++)
        window[t] = t / 3 * g->width + t % 3;
    const size_t plane = (size_t)g->height * g->width, taps = (size_t)g->channels * 9;
    for (int b = 0; b < out_channels / BLOCK; b++) {
        for (int c = 0; c < g->channels; c++) {
            float *acc = grad + ((size_t)b * taps + (size_t)c * 9) * BLOCK;
            float *bias_io = bias_grad && c == 0 ? bias_grad + b * BLOCK : NULL;
            weight_grad_3x3(g, x + c * plane, dyt + b * BLOCK, (size_t)out_channels, window, acc,
                            bias_io);
        }
    }
}
static TARGET void transpose_avx512(int rows, int cols, const float *a, float *t)
{
    for (int i0 = 0; i0 < rows; i0 += 16) {
        const int ni = rows - i0 < 16 ? rows - i0 : 16;
        for (int j0 = 0; j0 < cols; j0 += 16) {
            const int nj = cols - j0 < 16 ? cols - j0 : 16;
            const __mmask16 in_lanes = (__mmask16)((1u << nj) - 1), out_lanes = (__mmask16)((1u << ni) - 1);
            __m512 r[16];
            for (int i = 0; i < 16; i++)
                r[i] = i < ni ? _mm512_maskz_loadu_ps(in_lanes, a + (size_t)(i0 + i) * cols + j0)
                              : _mm512_setzero_ps();
            transpose16(r);
            for (int j = 0; j < nj; j++)
                _mm512_mask_storeu_ps(t + (size_t)(j0 + j) * rows + i0, out_lanes, r[j]);
        }
    }
}

#else
void at_conv_direct(const at_conv_geom *g, int out_channels, const float *x, const float *packed,
                    const float *bias, at_conv_output output, float *y)
{
    (void)g, (void)out_channels, (void)x, (void)packed, (void)bias, (void)output, (void)y;
}

void at_conv_direct_weight_grad(const at_conv_geom *g, int out_channels, const float *x,
                                const float *dyt, float *grad, float *bias_grad)
{
    (void)g, (void)out_channels, (void)x, (void)dyt, (void)grad, (void)bias_grad;
}
#endif

void at_transpose(int rows, int cols, const float *a, float *t)
{
#if HAVE_DIRECT
    if (__builtin_cpu_supports("avx512f")) {
        transpose_avx512(rows, cols, a, t);
        return;
    }
#endif
    for (int j0 = 0; j0 < cols; j0 += 16)
        for (int i = 0; i < rows; i++)
            for (int j = j0; j < cols && j < j0 + 16; j++)
                t[(size_t)j * rows + i] = a[(size_t)i * cols + j];
}
