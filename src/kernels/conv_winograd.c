/* conv_winograd.c: 3x3 stride-1 convolution by Winograd's minimal filtering F(2x2, 3x3) (Lavin and
 * Gray, "Fast Algorithms for Convolutional Neural Networks", CVPR 2016, eq. 7-9), for processors
 * with AVX-512: forward, input gradient and weight gradient.
 *
 * The output is cut into 2x2 tiles; tile (ty, tx) reads the 4x4 input patch d at (2ty, 2tx) and
 *   Y = A^T [ sum over input channels c of (G g_c G^T) . (B^T d_c B) ] A     (. element-wise)
 * with, for cross-correlation as in nn.Conv2d,
 *   B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1],  G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1],
 *   A^T = [1 1 1 0; 0 1 -1 -1].
 * Per output pixel and channel pair that is 16 / 4 = 4 multiplications instead of 9. The sum over
 * c is, for each of the 16 positions xi of the 4x4 transform, a matrix product [tiles x C] .
 * [C x OC], computed by a register block like the direct kernel's (conv_direct.c): 32 output
 * channels x up to 12 tiles in registers.
 *
 * Per image: the input is transposed to [pixel, channel] and transformed 16 channels per vector
 * into v[xi, tile, channel]; then for each block of 32 output channels and each run of tiles the
 * 16 products, the output transform (channels in the lanes) and the block store through the
 * 16 x 16 transpose, with the bias, ReLU or accumulation the direct kernel offers.
 *
 * The weight gradient dW[a, b] = sum over pixels of dy[p] x[p + (a, b)] is the same algorithm
 * with the output gradient in the kernel's place, F(3x3, 2x2): per tile the 2x2 output gradient e
 * and the same input patch, and
 *   dW = A'^T [ sum over tiles of (G' e G'^T) . (B^T d B) ] A',
 *   G' = [1 0; 1/2 1/2; 1/2 -1/2; 0 -1],  A'^T = [1 1 1 0; 0 1 -1 0; 0 1 1 1]
 * (the 1-d form: y_a = e_0 d_a + e_1 d_(a+1) for a < 3 from 4 products, with B^T's last row
 * d_1 - d_3 as in the forward, hence G''s -1). The 16 sums of each channel pair run over all
 * tiles of all images of a unit of the batch; A'^T . A' is applied once, after the units are
 * added.
 *
 * Every output is computed in a fixed order whatever the split between threads. It rounds
 * differently from the direct sums (the transforms add a few roundings, and the nine taps of a
 * weight gradient come out of one transform of 16 sums; the tests bound the error against the
 * defining sums in double precision). */
#include "kernels/avx512_blocks.h"

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

size_t at_conv_winograd_weight_grad_work_floats(const at_conv_geom *g, int out_channels)
{
    const size_t tiles = (size_t)(g->out_height / 2) * (g->out_width / 2);
    return (size_t)g->channels * g->height * g->width /* the input, [pixel, channel] */
           + 16 * (size_t)g->channels * tiles         /* transformed input */
           + 16 * (size_t)out_channels * tiles;       /* transformed output gradient */
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

void at_conv_winograd_weight_from_grad(const float m[16], float w[9])
{
    static const double A[3][4] = {{1, 1, 1, 0}, {0, 1, -1, 0}, {0, 1, 1, 1}};
    for (int a = 0; a < 3; a++)
        for (int b = 0; b < 3; b++) {
            double sum = 0.0; /* (A^T m A)[a, b] */
            for (int i = 0; i < 4; i++)
                for (int j = 0; j < 4; j++)
                    sum += A[a][i] * m[i * 4 + j] * A[b][j];
            w[a * 3 + b] = (float)sum;
        }
}

#if HAVE_DIRECT
/* The register block of the products: out[j, 0..31] (+)= sum over r < depth of u[r, 0..31]
 * v[j * j_stride + r * r_stride] for j < T. The forward sums over the input channels for T tiles
 * (v: [tile, channel]); the weight gradient sums over the tiles for T input channels and adds to
 * what out holds. */
static inline __attribute__((always_inline)) TARGET void
product(const int T, const float *v, size_t j_stride, size_t r_stride, int depth, const float *u,
        bool accumulate, float *out)
{
    __m512 lo[MAX_RUN], hi[MAX_RUN];
    for (int j = 0; j < T; j++) {
        lo[j] = accumulate ? _mm512_loadu_ps(out + j * BLOCK) : _mm512_setzero_ps();
        hi[j] = accumulate ? _mm512_loadu_ps(out + j * BLOCK + 16) : _mm512_setzero_ps();
    }
    for (int r = 0; r < depth; r++, v += r_stride, u += BLOCK) {
        const __m512 u0 = _mm512_loadu_ps(u), u1 = _mm512_loadu_ps(u + 16);
        for (int j = 0; j < T; j++) {
            const __m512 b = _mm512_set1_ps(v[j * j_stride]);
            lo[j] = _mm512_fmadd_ps(u0, b, lo[j]);
            hi[j] = _mm512_fmadd_ps(u1, b, hi[j]);
        }
    }
    for (int j = 0; j < T; j++) {
        _mm512_storeu_ps(out + j * BLOCK, lo[j]);
        _mm512_storeu_ps(out + j * BLOCK + 16, hi[j]);
    }
}

/* forward: v [tile, channel], `stride` floats a tile; gradient: v [tile, channel], `stride`
 * floats a tile, summed over the tiles */
typedef void (*product_fn)(const float *v, size_t stride, int depth, const float *u, float *out);

#define PRODUCT_FNS(T)                                                                            \
    static TARGET void forward_##T(const float *v, size_t stride, int depth, const float *u,      \
                                   float *out)                                                    \
    {                                                                                             \
        product(T, v, stride, 1, depth, u, false, out);                                           \
    }                                                                                             \
    static TARGET void gradient_##T(const float *v, size_t stride, int depth, const float *u,     \
                                    float *out)                                                   \
    {                                                                                             \
        product(T, v, 1, stride, depth, u, true, out);                                            \
    }
PRODUCT_FNS(1) PRODUCT_FNS(2) PRODUCT_FNS(3) PRODUCT_FNS(4) PRODUCT_FNS(5) PRODUCT_FNS(6)
PRODUCT_FNS(7) PRODUCT_FNS(8) PRODUCT_FNS(9) PRODUCT_FNS(10) PRODUCT_FNS(11) PRODUCT_FNS(12)

static const product_fn forward_products[MAX_RUN] = {
    forward_1, forward_2, forward_3, forward_4,  forward_5,  forward_6,
    forward_7, forward_8, forward_9, forward_10, forward_11, forward_12};
static const product_fn gradient_products[MAX_RUN] = {
    gradient_1, gradient_2, gradient_3, gradient_4,  gradient_5,  gradient_6,
    gradient_7, gradient_8, gradient_9, gradient_10, gradient_11, gradient_12};

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
                forward_products[T - 1](v + xi * xi_stride + (size_t)j0 * g->channels,
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
/* dw[xi, block, tile, 0..31] = (G' e G'^T)[xi] for the 2x2 output gradient e of every tile
 * (16 channels per vector, from the output gradient transposed to [pixel, channel]), and the
 * bias gradient: bias_grad += the sum of e over the tile, tile by tile. */
static TARGET void gradient_transform(const at_conv_geom *g, int out_channels, const float *dyt,
                                      float *dw, float *bias_grad)
{
    const int tw = g->out_width / 2, ow = g->out_width, blocks = out_channels / BLOCK;
    const int tiles = g->out_height / 2 * tw;
    const __m512 half = _mm512_set1_ps(0.5f), zero = _mm512_setzero_ps();
    for (int tile = 0; tile < tiles; tile++) {
        const float *e0 = dyt + ((size_t)2 * (tile / tw) * ow + 2 * (tile % tw)) * out_channels;
        const float *e1 = e0 + (size_t)ow * out_channels;
        for (int k0 = 0; k0 < out_channels; k0 += 16) {
            const __m512 e[2][2] = {{_mm512_loadu_ps(e0 + k0), _mm512_loadu_ps(e0 + out_channels + k0)},
                                    {_mm512_loadu_ps(e1 + k0), _mm512_loadu_ps(e1 + out_channels + k0)}};
            if (bias_grad) {
                const __m512 sum = _mm512_add_ps(_mm512_add_ps(e[0][0], e[0][1]),
                                                 _mm512_add_ps(e[1][0], e[1][1]));
                _mm512_storeu_ps(bias_grad + k0, _mm512_add_ps(_mm512_loadu_ps(bias_grad + k0), sum));
            }
            __m512 r[4][2]; /* G' e */
            for (int q = 0; q < 2; q++) {
                r[0][q] = e[0][q];
                r[1][q] = _mm512_mul_ps(half, _mm512_add_ps(e[0][q], e[1][q]));
                r[2][q] = _mm512_mul_ps(half, _mm512_sub_ps(e[0][q], e[1][q]));
                r[3][q] = _mm512_sub_ps(zero, e[1][q]);
            }
            float *dst = dw + ((size_t)(k0 / BLOCK) * tiles + tile) * BLOCK + k0 % BLOCK;
            const size_t xi_stride = (size_t)blocks * tiles * BLOCK;
            for (int i = 0; i < 4; i++) { /* (G' e) G'^T */
                float *row = dst + (size_t)i * 4 * xi_stride;
                _mm512_storeu_ps(row, r[i][0]);
                _mm512_storeu_ps(row + xi_stride, _mm512_mul_ps(half, _mm512_add_ps(r[i][0], r[i][1])));
                _mm512_storeu_ps(row + 2 * xi_stride, _mm512_mul_ps(half, _mm512_sub_ps(r[i][0], r[i][1])));
                _mm512_storeu_ps(row + 3 * xi_stride, _mm512_sub_ps(zero, r[i][1]));
            }
        }
    }
}

void at_conv_winograd_weight_grad(const at_conv_geom *g, int out_channels, const float *x,
                                  const float *dyt, float *grad, float *bias_grad, float *work)
{
    const int C = g->channels, tiles = g->out_height / 2 * (g->out_width / 2);
    const int blocks = out_channels / BLOCK;
    const size_t xi_stride = (size_t)C * tiles;
    float *xt = work, *v = xt + (size_t)C * g->height * g->width, *dw = v + 16 * xi_stride;
    at_transpose(C, g->height * g->width, x, xt);
    input_transform(g, xt, v);
    gradient_transform(g, out_channels, dyt, dw, bias_grad);
    /* runs of input channels of nearly equal length: 32 -> 11 + 11 + 10 */
    const int runs = (C + MAX_RUN - 1) / MAX_RUN, run = (C + runs - 1) / runs;
    for (int xi = 0; xi < 16; xi++)
        for (int b = 0; b < blocks; b++)
            for (int c0 = 0; c0 < C; c0 += run) {
                const int T = C - c0 < run ? C - c0 : run;
                gradient_products[T - 1](v + xi * xi_stride + c0, (size_t)C, tiles,
                                         dw + ((size_t)xi * blocks + b) * tiles * BLOCK,
                                         grad + (((size_t)xi * blocks + b) * C + c0) * BLOCK);
            }
}
#else
void at_conv_winograd(const at_conv_geom *g, int out_channels, const float *x, const float *packed,
                      const float *bias, at_conv_output output, float *y, float *work)
{
    (void)g, (void)out_channels, (void)x, (void)packed, (void)bias, (void)output, (void)y, (void)work;
}

void at_conv_winograd_weight_grad(const at_conv_geom *g, int out_channels, const float *x,
                                  const float *dyt, float *grad, float *bias_grad, float *work)
{
    (void)g, (void)out_channels, (void)x, (void)dyt, (void)grad, (void)bias_grad, (void)work;
}
#endif
