/* avx512_blocks.h: the block sizes and the block store shared by the direct (conv_direct.c) and
 * Winograd (conv_winograd.c) convolutions. Private to src/kernels: static inline functions
 * compiled for AVX-512 (callers check the processor first). */
#ifndef AT_AVX512_BLOCKS_H
#define AT_AVX512_BLOCKS_H

#include "kernels/kernels.h"

#define BLOCK 32    /* output channels per register block: two 16-float vectors */
#define MAX_RUN 12  /* output pixels per register block: 2 x 12 accumulators of 32 registers */

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define HAVE_DIRECT 1
#define TARGET __attribute__((target("avx512f")))
#else
#define HAVE_DIRECT 0
#endif

#if HAVE_DIRECT
/* In-register transpose of the 16 x 16 matrix whose rows are r[0..15]: unpacking pairs of rows
 * leaves 4 x 4 transposed blocks in every 128-bit lane, which two rounds of lane shuffles put in
 * place. */
static inline __attribute__((always_inline)) TARGET void transpose16(__m512 r[16])
{
    __m512 t[16];
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) { /* r[i + m], lane L: rows i..i+3 of column 4L + m */
        const __m512d t0 = _mm512_castps_pd(t[i]), t1 = _mm512_castps_pd(t[i + 1]);
        const __m512d t2 = _mm512_castps_pd(t[i + 2]), t3 = _mm512_castps_pd(t[i + 3]);
        r[i] = _mm512_castpd_ps(_mm512_unpacklo_pd(t0, t2));
        r[i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(t0, t2));
        r[i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(t1, t3));
        r[i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(t1, t3));
    }
    for (int m = 0; m < 4; m++) {
        const __m512 a = _mm512_shuffle_f32x4(r[m], r[4 + m], 0x44);      /* lanes 0,1 of each */
        const __m512 b = _mm512_shuffle_f32x4(r[m], r[4 + m], 0xEE);      /* lanes 2,3 */
        const __m512 c = _mm512_shuffle_f32x4(r[8 + m], r[12 + m], 0x44);
        const __m512 d = _mm512_shuffle_f32x4(r[8 + m], r[12 + m], 0xEE);
        t[m] = _mm512_shuffle_f32x4(a, c, 0x88);
        t[4 + m] = _mm512_shuffle_f32x4(a, c, 0xDD);
        t[8 + m] = _mm512_shuffle_f32x4(b, d, 0x88);
        t[12 + m] = _mm512_shuffle_f32x4(b, d, 0xDD);
    }
    for (int i = 0; i < 16; i++)
        r[i] = t[i];
}

/* Writes a register block, out[j, 0..31] for T pixels, to the channel planes of y (stride
 * `pixels`) as `output` says. */
static inline TARGET void store_block(const float *out, int T, const float *bias, at_conv_output output,
                               float *dst, size_t pixels)
{
    const __mmask16 lanes = (__mmask16)((1u << T) - 1);
    const __m512 zero = _mm512_setzero_ps();
    for (int half = 0; half < 2; half++) {
        __m512 r[16];
        for (int j = 0; j < 16; j++)
            r[j] = j < T ? _mm512_loadu_ps(out + j * BLOCK + half * 16) : zero;
        transpose16(r);
        for (int c = 0; c < 16; c++) {
            float *d = dst + (size_t)(half * 16 + c) * pixels;
            __m512 base = output == AT_CONV_ADD ? _mm512_maskz_loadu_ps(lanes, d)
                                                : _mm512_set1_ps(bias ? bias[half * 16 + c] : 0.0f);
            __m512 v = _mm512_add_ps(base, r[c]);
            if (output == AT_CONV_SET_RELU)
                v = _mm512_mask_mov_ps(v, _mm512_cmp_ps_mask(v, zero, _CMP_LT_OQ), zero);
            _mm512_mask_storeu_ps(d, lanes, v);
        }
    }
}

#endif

#endif
