/* elementwise.c: the element-wise loops of the layers, compiled for several instruction sets
 * (AT_MULTIVERSION). Callers split the work across threads; each call runs on one thread. */
#include "kernels/kernels.h"

AT_MULTIVERSION
void at_relu_forward_kernel(const float *restrict x, float *restrict y, size_t n)
{
    for (size_t i = 0; i < n; i++)
        y[i] = x[i] < 0.0f ? 0.0f : x[i]; /* a NaN fails the test and passes through */
}

AT_MULTIVERSION
void at_relu_backward_kernel(const float *restrict y, const float *restrict dy,
                             float *restrict dx, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dx[i] += y[i] > 0.0f ? dy[i] : 0.0f;
}

AT_MULTIVERSION
void at_relu_grad_kernel(const float *restrict y, const float *restrict dy, float *restrict dx,
                         size_t n)
{
    for (size_t i = 0; i < n; i++)
        dx[i] = 0.0f + (y[i] > 0.0f ? dy[i] : 0.0f); /* bit for bit the above on a zeroed dx */
}

/* At the input the mask came from, these are the loops above, except that a unit at exactly -0
 * or NaN comes out +0 (inactive: not > 0) where the plain ReLU passes it through. */
AT_MULTIVERSION
void at_relu_pattern_forward_kernel(const float *restrict x, const uint8_t *restrict mask,
                                    float *restrict y, size_t n)
{
    for (size_t i = 0; i < n; i++)
        y[i] = mask[i] ? x[i] : 0.0f;
}

AT_MULTIVERSION
void at_relu_pattern_backward_kernel(const uint8_t *restrict mask, const float *restrict dy,
                                     float *restrict dx, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dx[i] += mask[i] ? dy[i] : 0.0f;
}

AT_MULTIVERSION
void at_relu_mask_kernel(const float *restrict y, uint8_t *restrict mask, size_t n)
{
    for (size_t i = 0; i < n; i++)
        mask[i] = y[i] > 0.0f;
}

AT_MULTIVERSION
void at_add_kernel(const float *restrict a, const float *restrict b, float *restrict y, size_t n)
{
    for (size_t i = 0; i < n; i++)
        y[i] = a[i] + b[i];
}

AT_MULTIVERSION
void at_accumulate_kernel(const float *restrict dy, float *restrict dx, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dx[i] += dy[i];
}

AT_MULTIVERSION
void at_scale_shift_kernel(const float *restrict x, float scale, float shift, float *restrict y,
                           size_t n)
{
    for (size_t i = 0; i < n; i++)
        y[i] = x[i] * scale + shift;
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define HAVE_AVX512_MAXPOOL 1

/* 16 windows at a time: the even and odd columns of both rows are separated with one permute
 * each, then the four candidates are taken in window order with the same rule as below (strict >,
 * a NaN wins over a number), so values and indices equal the plain loop's. */
__attribute__((target("avx512f"))) static void
maxpool2x2_avx512(const float *x, int h, int w, float *y, int32_t *argmax)
{
    const int oh = h / 2, ow = w / 2;
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
    for (int oy = 0; oy < oh; oy++) {
        const float *r0 = x + (size_t)(2 * oy) * w, *r1 = r0 + w;
        for (int ox = 0; ox < ow; ox += 16) {
            const int n = ow - ox < 16 ? ow - ox : 16;
            const __mmask16 out = (__mmask16)((1u << n) - 1);
            const __mmask16 lo = (__mmask16)(2 * n >= 16 ? 0xFFFFu : (1u << (2 * n)) - 1);
            const __mmask16 hi = (__mmask16)(2 * n > 16 ? (1u << (2 * n - 16)) - 1 : 0);
            const __m512 a0 = _mm512_maskz_loadu_ps(lo, r0 + 2 * ox);
            const __m512 a1 = _mm512_maskz_loadu_ps(hi, r0 + 2 * ox + 16);
            const __m512 b0 = _mm512_maskz_loadu_ps(lo, r1 + 2 * ox);
            const __m512 b1 = _mm512_maskz_loadu_ps(hi, r1 + 2 * ox + 16);
            const __m512 cand[3] = {_mm512_permutex2var_ps(a0, odd, a1),
                                    _mm512_permutex2var_ps(b0, even, b1),
                                    _mm512_permutex2var_ps(b0, odd, b1)};
            const int offset[3] = {1, w, w + 1};
            __m512 v = _mm512_permutex2var_ps(a0, even, a1);
            const __m512i first = _mm512_add_epi32(_mm512_set1_epi32(2 * oy * w + 2 * ox), even);
            __m512i best = first;
            for (int k = 0; k < 3; k++) {
                const __m512 c = cand[k];
                __mmask16 take = _mm512_cmp_ps_mask(c, v, _CMP_GT_OQ) |
                                 (_mm512_cmp_ps_mask(c, c, _CMP_UNORD_Q) &
                                  _mm512_cmp_ps_mask(v, v, _CMP_ORD_Q));
                v = _mm512_mask_mov_ps(v, take, c);
                best = _mm512_mask_mov_epi32(best, take,
                                             _mm512_add_epi32(first, _mm512_set1_epi32(offset[k])));
            }
            _mm512_mask_storeu_ps(y + (size_t)oy * ow + ox, out, v);
            _mm512_mask_storeu_epi32(argmax + (size_t)oy * ow + ox, out, best);
        }
    }
}
#endif

AT_MULTIVERSION
static void maxpool2x2_plain(const float *restrict x, int h, int w, float *restrict y,
                             int32_t *restrict argmax)
{
    const int oh = h / 2, ow = w / 2;
    for (int oy = 0; oy < oh; oy++) {
        const float *r0 = x + (size_t)(2 * oy) * w, *r1 = r0 + w;
        for (int ox = 0; ox < ow; ox++) {
            /* candidates in window order; strict > keeps the first maximum */
            int best = 2 * ox;
            float v = r0[best];
            const float *row = r0;
            if (r0[2 * ox + 1] > v || (r0[2 * ox + 1] != r0[2 * ox + 1] && v == v)) {
                v = r0[2 * ox + 1];
                best = 2 * ox + 1;
            }
            if (r1[2 * ox] > v || (r1[2 * ox] != r1[2 * ox] && v == v)) {
                v = r1[2 * ox];
                best = 2 * ox;
                row = r1;
            }
            if (r1[2 * ox + 1] > v || (r1[2 * ox + 1] != r1[2 * ox + 1] && v == v)) {
                v = r1[2 * ox + 1];
                best = 2 * ox + 1;
                row = r1;
            }
            y[oy * ow + ox] = v;
            argmax[oy * ow + ox] = (int32_t)((row - x) + best);
        }
    }
}

void at_maxpool2x2_kernel(const float *x, int h, int w, float *y, int32_t *argmax)
{
#ifdef HAVE_AVX512_MAXPOOL
    if (__builtin_cpu_supports("avx512f")) {
        maxpool2x2_avx512(x, h, w, y, argmax);
        return;
    }
#endif
    maxpool2x2_plain(x, h, w, y, argmax);
}
