/* conv_winograd.c: 3x3 stride-1 convolution by Winograd's minimal filtering F(2x2, 3x3) (Lavin and
 * Gray, "Fast Algorithms for Convolutional Neural Networks", CVPR 2016, eq. 7-9), for processors
 * with AVX-512.
 *
 * The output is cut into 2x2 tiles; tile (ty, tx) reads the 4x4 input patch d at (2ty, 2tx) and
 *   Y = A^T [ sum over input channels c of (G g_c G^T) . (B^T d_c B) ] A     (. element-wise)
 * with, for cross-correlation as in nn.Conv2d,
 *   B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1],  G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1],
 *   A^T = [1 1 1 0; 0 1 -1 -1].
 * Per output pixel and channel pair that is 16 / 4 = 4 multiplications instead of 9. The sum over
 * c is, for each of the 16 positions xi of the 4x4 transform, a matrix product [tiles x C] .
 * [C x OC], which runs on the direct convolution's register block (avx512_blocks.h) as a 1x1
 * "convolution" whose pixels are the tiles: 32 output channels x up to 12 tiles in registers.
 *
 * Per image: the input transform of every channel (tiles in the vector lanes, the 4x4 patches of
 * 16 neighbouring tiles deinterleaved from two rows' loads), then for each block of 32 output
 * channels and each run of tiles the 16 products, the output transform (channels in the lanes),
 * and the block store through the 16 x 16 transpose, with the bias, ReLU or accumulation the
 * direct kernel offers. Every output is computed in a fixed order whatever the split between
 * threads. It rounds differently from the direct sums (the transforms add a few roundings; the
 * tests bound the error against the defining sums in double precision). */
#include "kernels/avx512_blocks.h"

#include <string.h>

bool at_conv_winograd_supported(const at_conv_geom *g, int out_channels)
{
#if HAVE_DIRECT
    /* the input transform takes 16 channels per vector; few input channels would leave too
     * little product per transform anyway (SmallCNN's 1-channel first layer runs direct) */
    return __builtin_cpu_supports("avx512f") && out_channels % BLOCK == 0 && g->kernel == 3 &&
           g->stride == 1 && g->padding == 0 && g->out_height % 2 == 0 && g->out_width % 2 == 0 &&
           g->channels % 16 == 0;
#else
    (void)g;
    (void)out_channels;
    return false;
#endif
}

size_t at_conv_winograd_work_floats(const at_conv_geom *g)
{
    const size_t tiles = (size_t)(g->out_height / 2) * (g->out_width / 2);
    return (size_t)g->channels * g->height * g->width  /* the input, [pixel, channel] */
           + 16 * (size_t)g->channels * tiles            /* transformed input */
           + 16 * (size_t)MAX_RUN * BLOCK              /* products of one run of tiles */
           + (size_t)g->out_height * g->out_width * BLOCK; /* one block's output, pixel-major */
}

void at_conv_winograd_pack(const float *w, int out_channels, int channels, bool transposed,
                           int block, float *packed)
{
    const int rows = transposed ? channels : out_channels, cols = transposed ? out_channels : channels;
    const int blocks = rows / BLOCK;
    static const double G[4][3] = {{1, 0, 0}, {0.5, 0.5, 0.5}, {0.5, -0.5, 0.5}, {0, 0, 1}};
    for (int l = 0; l < BLOCK; l++) {
        const int r = block * BLOCK + l;
        for (int c = 0; c < cols; c++) {
            double g[3][3]; /* forward: w[r, c]; transposed: w[c, r] flipped in space */
            for (int a = 0; a < 3; a++)
                for (int b = 0; b < 3; b++)
                    g[a][b] = transposed ? w[((size_t)c * rows + r) * 9 + (2 - a) * 3 + (2 - b)]
                                         : w[((size_t)r * cols + c) * 9 + a * 3 + b];
            double gg[4][3]; /* G g */
            for (int i = 0; i < 4; i++)
                for (int b = 0; b < 3; b++)
                    gg[i][b] = G[i][0] * g[0][b] + G[i][1] * g[1][b] + G[i][2] * g[2][b];
            for (int i = 0; i < 4; i++)
                for (int j = 0; j < 4; j++) { /* (G g G^T)[i, j], rounded once */
                    double u = gg[i][0] * G[j][0] + gg[i][1] * G[j][1] + gg[i][2] * G[j][2];
                    packed[(((size_t)(i * 4 + j) * blocks + block) * cols + c) * BLOCK + l] = (float)u;
                }
        }
    }
}

#if HAVE_DIRECT
/* The register block of the products: out[j, 0..31] = sum over c of u[c, 0..31] v[j, c] for the
 * j < T tiles of a run (v: [tile, channel], rows `stride` floats apart). */
static inline __attribute__((always_inline)) TARGET void
product(const int T, const float *v, size_t stride, int channels, const float *u, float *out)
{
    __m512 lo[MAX_RUN], hi[MAX_RUN];
    for (int j = 0; j < T; j++) {
        lo[j] = _mm512_setzero_ps();
        hi[j] = _mm512_setzero_ps();
    }
    for (int c = 0; c < channels; c++, v++, u += BLOCK) {
        const __m512 u0 = _mm512_loadu_ps(u), u1 = _mm512_loadu_ps(u + 16);
        for (int j = 0; j < T; j++) {
            const __m512 b = _mm512_set1_ps(v[j * stride]);
            lo[j] = _mm512_fmadd_ps(u0, b, lo[j]);
            hi[j] = _mm512_fmadd_ps(u1, b, hi[j]);
        }
    }
    for (int j = 0; j < T; j++) {
        _mm512_storeu_ps(out + j * BLOCK, lo[j]);
        _mm512_storeu_ps(out + j * BLOCK + 16, hi[j]);
    }
}

typedef void (*product_fn)(const float *, size_t, int, const float *, float *);

#define PRODUCT_FN(T)                                                                             \
    static TARGET void product_##T(const float *v, size_t stride, int channels, const float *u,   \
                                   float *out)                                                    \
    {                                                                                             \
        product(T, v, stride, channels, u, out);                                                  \
    }
PRODUCT_FN(1) PRODUCT_FN(2) PRODUCT_FN(3) PRODUCT_FN(4) PRODUCT_FN(5) PRODUCT_FN(6)
PRODUCT_FN(7) PRODUCT_FN(8) PRODUCT_FN(9) PRODUCT_FN(10) PRODUCT_FN(11) PRODUCT_FN(12)

static const product_fn products[MAX_RUN] = {product_1, product_2, product_3,  product_4,
                                             product_5, product_6, product_7,  product_8,
                                             product_9, product_10, product_11, product_12};

/* v[xi, tile, c] = (B^T d B)[xi] for every tile and channel, 16 channels per vector, from the
 * input transposed to [pixel, channel] (xt). */
static TARGET void input_transform(const at_conv_geom *g, const float *xt, float *v)
{
    const int th = g->out_height / 2, tw = g->out_width / 2, W = g->width, C = g->channels;
    const size_t tiles = (size_t)th * tw, xi_stride = tiles * C;
    for (int ty = 0; ty < th; ty++)
        for (int tx = 0; tx < tw; tx++) {
            const float *patch = xt + ((size_t)2 * ty * W + 2 * tx) * C;
            float *dst = v + ((size_t)ty * tw + tx) * C;
            for (int c0 = 0; c0 < C; c0 += 16) {
                __m512 d[4][4];
                for (int r = 0; r < 4; r++)
                    for (int k = 0; k < 4; k++)
                        d[r][k] = _mm512_loadu_ps(patch + ((size_t)r * W + k) * C + c0);
                __m512 t[4][4]; /* B^T d */
                for (int k = 0; k < 4; k++) {
                    t[0][k] = _mm512_sub_ps(d[0][k], d[2][k]);
                    t[1][k] = _mm512_add_ps(d[1][k], d[2][k]);
                    t[2][k] = _mm512_sub_ps(d[2][k], d[1][k]);
                    t[3][k] = _mm512_sub_ps(d[1][k], d[3][k]);
                }
                for (int i = 0; i < 4; i++) { /* (B^T d) B */
                    float *row = dst + (size_t)i * 4 * xi_stride + c0;
                    _mm512_storeu_ps(row, _mm512_sub_ps(t[i][0], t[i][2]));
                    _mm512_storeu_ps(row + xi_stride, _mm512_add_ps(t[i][1], t[i][2]));
                    _mm512_storeu_ps(row + 2 * xi_stride, _mm512_sub_ps(t[i][2], t[i][1]));
                    _mm512_storeu_ps(row + 3 * xi_stride, _mm512_sub_ps(t[i][1], t[i][3]));
                }
            }
        }
}

/* Y = A^T m A for the T tiles of a run (m[xi, j, 0..31], channels in the lanes), into the
 * pixel-major block output out[pixel, 0..31]. */
static TARGET void output_transform(const float *m, int T, int first_tile, int tw, int ow,
                                    float *out)
{
    for (int j = 0; j < T; j++) {
        const int tile = first_tile + j, oy = 2 * (tile / tw), ox = 2 * (tile % tw);
        for (int half = 0; half < 2; half++) {
            __m512 s[2][4]; /* A^T m */
            for (int k = 0; k < 4; k++) {
                const float *col = m + ((size_t)k * T + j) * BLOCK + half * 16;
                const size_t row = (size_t)4 * T * BLOCK;
                const __m512 m0 = _mm512_loadu_ps(col), m1 = _mm512_loadu_ps(col + row);
                const __m512 m2 = _mm512_loadu_ps(col + 2 * row), m3 = _mm512_loadu_ps(col + 3 * row);
                s[0][k] = _mm512_add_ps(_mm512_add_ps(m0, m1), m2);
                s[1][k] = _mm512_sub_ps(_mm512_sub_ps(m1, m2), m3);
            }
            for (int a = 0; a < 2; a++) { /* (A^T m) A */
                float *p = out + ((size_t)(oy + a) * ow + ox) * BLOCK + half * 16;
                _mm512_storeu_ps(p, _mm512_add_ps(_mm512_add_ps(s[a][0], s[a][1]), s[a][2]));
                _mm512_storeu_ps(p + BLOCK, _mm512_sub_ps(_mm512_sub_ps(s[a][1], s[a][2]), s[a][3]));
            }
        }
    }
}

void at_conv_winograd(const at_conv_geom *g, int out_channels, const float *x, const float *packed,
                      const float *bias, at_conv_output output, float *y, float *work)
{
    const int tw = g->out_width / 2, tiles = g->out_height / 2 * tw, blocks = out_channels / BLOCK;
    const int ow = g->out_width;
    const size_t pixels = (size_t)g->out_height * ow, xi_stride = (size_t)g->channels * tiles;
    float *xt = work, *v = xt + (size_t)g->channels * g->height * g->width;
    float *m = v + 16 * xi_stride, *out = m + 16 * MAX_RUN * BLOCK;
    at_transpose(g->channels, g->height * g->width, x, xt);
    input_transform(g, xt, v);
    /* runs of nearly equal length, as the direct kernel cuts its rows */
    const int runs = (tiles + MAX_RUN - 1) / MAX_RUN, run = (tiles + runs - 1) / runs;
    for (int b = 0; b < blocks; b++) {
        for (int j0 = 0; j0 < tiles; j0 += run) {
            const int T = tiles - j0 < run ? tiles - j0 : run;
            for (int xi = 0; xi < 16; xi++)
                products[T - 1](v + xi * xi_stride + (size_t)j0 * g->channels,
                                (size_t)g->channels, g->channels,
                                packed + ((size_t)xi * blocks + b) * g->channels * BLOCK,
                                m + (size_t)xi * T * BLOCK);
            output_transform(m, T, j0, tw, ow, out);
        }
        float *yb = y + (size_t)b * BLOCK * pixels;
        const float *bias_b = bias ? bias + b * BLOCK : NULL;
        for (size_t p0 = 0; p0 < pixels; p0 += 16) {
            const int n = pixels - p0 < 16 ? (int)(pixels - p0) : 16;
            store_block(out + p0 * BLOCK, n, bias_b, output, yb + p0, pixels);
        }
    }
}
#else
void at_conv_winograd(const at_conv_geom *g, int out_channels, const float *x, const float *packed,
                      const float *bias, at_conv_output output, float *y, float *work)
{
    (void)g, (void)out_channels, (void)x, (void)packed, (void)bias, (void)output, (void)y, (void)work;
}
#endif
