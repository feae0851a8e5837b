/* test_kernels.c: every fast kernel of src/kernels/ against a naive reference: the oneDNN matrix
 * product against the double-precision triple loop, im2col against its defining formula and
 * col2im as its adjoint, and the multi-versioned element-wise loops and 2x2 max pooling against
 * plain loops written from their comments (bit for bit: they do no reassociated sums), and the
 * direct and Winograd convolutions against their defining sums. */
#include "test.h"

#include "advtrain.h"
#include "kernels/kernels.h"

static void fill(float *v, size_t n, at_rng *rng)
{
    for (size_t i = 0; i < n; i++)
        v[i] = (float)(2.0 * at_rng_uniform(rng) - 1.0);
}

/* All four transpositions, shapes that are not multiples of any vector width, leading
 * dimensions wider than the rows, and beta 0 (C ignored, even NaN), 1 and another value. */
TEST(gemm_matches_reference)
{
    static const int shapes[][3] = {{1, 1, 1}, {3, 5, 7}, {32, 576, 288}, {17, 33, 9}, {64, 1, 100}};
    static const float betas[] = {0.0f, 1.0f, -0.5f};
    at_rng rng;
    at_rng_seed(&rng, 7);
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int m = shapes[s][0], n = shapes[s][1], k = shapes[s][2];
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++)
                for (size_t bi = 0; bi < sizeof betas / sizeof betas[0]; bi++) {
                    const int lda = (ta ? m : k) + 3, ldb = (tb ? k : n) + 2, ldc = n + 1;
                    float *a = malloc(sizeof(float) * (size_t)(ta ? k : m) * lda);
                    float *b = malloc(sizeof(float) * (size_t)(tb ? n : k) * ldb);
                    float *c = malloc(sizeof(float) * (size_t)m * ldc);
                    float *ref = malloc(sizeof(float) * (size_t)m * ldc);
                    fill(a, (size_t)(ta ? k : m) * lda, &rng);
                    fill(b, (size_t)(tb ? n : k) * ldb, &rng);
                    fill(c, (size_t)m * ldc, &rng);
                    if (betas[bi] == 0.0f)
                        c[0] = NAN; /* beta 0 must not read C */
                    memcpy(ref, c, sizeof(float) * (size_t)m * ldc);
                    at_gemm(ta, tb, m, n, k, 0.75f, a, lda, b, ldb, betas[bi], c, ldc);
                    at_gemm_ref(ta, tb, m, n, k, 0.75f, a, lda, b, ldb, betas[bi], ref, ldc);
                    double worst = 0.0;
                    for (int i = 0; i < m; i++)
                        for (int j = 0; j < n; j++) {
                            double d = fabs((double)c[i * ldc + j] - ref[i * ldc + j]);
                            worst = d > worst || d != d ? d : worst;
                        }
                    /* float sums of k products of magnitude <= 1: a few ulps of sqrt(k) */
                    if (!(worst <= 1e-5 * (1.0 + k)))
                        TEST_FAIL_("gemm %dx%dx%d ta %d tb %d beta %g: max error %g", m, n, k, ta,
                                   tb, betas[bi], worst);
                    free(a);
                    free(b);
                    free(c);
                    free(ref);
                }
    }
}

static const at_conv_geom geometries[] = {
    /* channels, height, width, kernel, stride, padding, out_height, out_width */
    {1, 28, 28, 3, 1, 0, 26, 26},
    {3, 8, 8, 3, 1, 1, 8, 8},
    {2, 9, 7, 3, 2, 1, 5, 4},
    {2, 6, 6, 1, 2, 0, 3, 3},
    {1, 5, 6, 5, 1, 2, 5, 6},
    {2, 4, 4, 3, 1, 2, 6, 6}, /* padding wider than the kernel's reach: zero rows and columns */
};

/* The defining formula of the header. */
static float window_value(const at_conv_geom *g, const float *x, int row, int oy, int ox)
{
    const int k = g->kernel, c = row / (k * k), ky = row / k % k, kx = row % k;
    const int iy = oy * g->stride - g->padding + ky, ix = ox * g->stride - g->padding + kx;
    if (iy < 0 || iy >= g->height || ix < 0 || ix >= g->width)
        return 0.0f;
    return x[((size_t)c * g->height + iy) * g->width + ix];
}

TEST(im2col_matches_its_definition)
{
    at_rng rng;
    at_rng_seed(&rng, 11);
    for (size_t t = 0; t < sizeof geometries / sizeof geometries[0]; t++) {
        const at_conv_geom *g = &geometries[t];
        const int rows = g->channels * g->kernel * g->kernel, pixels = g->out_height * g->out_width;
        float *x = malloc(sizeof(float) * (size_t)g->channels * g->height * g->width);
        float *col = malloc(sizeof(float) * (size_t)rows * pixels);
        fill(x, (size_t)g->channels * g->height * g->width, &rng);
        for (int i = 0; i < rows * pixels; i++)
            col[i] = NAN; /* every entry must be written */
        at_im2col(g, x, col);
        int wrong = 0;
        for (int r = 0; r < rows; r++)
            for (int p = 0; p < pixels; p++)
                if (!(col[r * pixels + p] ==
                      window_value(g, x, r, p / g->out_width, p % g->out_width)))
                    wrong++;
        if (wrong)
            TEST_FAIL_("im2col geometry %zu: %d of %d entries wrong", t, wrong, rows * pixels);
        free(x);
        free(col);
    }
}

/* col2im is the adjoint of im2col: <im2col(x), c> = <x, col2im(c)>, and it accumulates. */
TEST(col2im_is_the_adjoint_of_im2col)
{
    at_rng rng;
    at_rng_seed(&rng, 13);
    for (size_t t = 0; t < sizeof geometries / sizeof geometries[0]; t++) {
        const at_conv_geom *g = &geometries[t];
        const size_t in = (size_t)g->channels * g->height * g->width;
        const size_t cols = (size_t)g->channels * g->kernel * g->kernel * g->out_height * g->out_width;
        float *x = malloc(sizeof(float) * in), *dx = malloc(sizeof(float) * in);
        float *col = malloc(sizeof(float) * cols), *c = malloc(sizeof(float) * cols);
        fill(x, in, &rng);
        fill(c, cols, &rng);
        fill(dx, in, &rng);
        float *start = malloc(sizeof(float) * in);
        memcpy(start, dx, sizeof(float) * in);
        at_im2col(g, x, col);
        at_col2im(g, c, dx);
        double lhs = 0.0, rhs = 0.0;
        for (size_t i = 0; i < cols; i++)
            lhs += (double)col[i] * c[i];
        for (size_t i = 0; i < in; i++)
            rhs += (double)x[i] * ((double)dx[i] - start[i]);
        CHECK_CLOSE(rhs, lhs, 1e-4, 1e-5);
        free(x);
        free(dx);
        free(col);
        free(c);
        free(start);
    }
}

TEST(elementwise_kernels_match_plain_loops)
{
    enum { N = 1000 + 13 }; /* not a multiple of any vector width */
    at_rng rng;
    at_rng_seed(&rng, 17);
    float *a = malloc(sizeof(float) * N), *b = malloc(sizeof(float) * N);
    float *y = malloc(sizeof(float) * N), *acc = malloc(sizeof(float) * N);
    fill(a, N, &rng);
    fill(b, N, &rng);
    a[5] = NAN;
    a[6] = -0.0f;
    int wrong = 0;

    at_relu_forward_kernel(a, y, N);
    for (int i = 0; i < N; i++)
        wrong += i == 5 ? y[i] == y[i] : y[i] != (a[i] < 0.0f ? 0.0f : a[i]);
    CHECK_EQ_INT(wrong, 0); /* a NaN passes through */

    fill(acc, N, &rng);
    memcpy(y, acc, sizeof(float) * N);
    at_relu_backward_kernel(a, b, acc, N);
    wrong = 0;
    for (int i = 0; i < N; i++)
        wrong += acc[i] != y[i] + (a[i] > 0.0f ? b[i] : 0.0f);
    CHECK_EQ_INT(wrong, 0);

    b[7] = -0.0f; /* where a > 0: the zeroed buffer turns it into +0 */
    a[7] = 1.0f;
    float *zeroed = calloc(N, sizeof(float));
    at_relu_backward_kernel(a, b, zeroed, N);
    at_relu_grad_kernel(a, b, y, N);
    CHECK(memcmp(y, zeroed, sizeof(float) * N) == 0);
    CHECK(!signbit(y[7]));
    free(zeroed);

    a[5] = 0.25f;
    at_add_kernel(a, b, y, N);
    wrong = 0;
    for (int i = 0; i < N; i++)
        wrong += y[i] != a[i] + b[i];
    CHECK_EQ_INT(wrong, 0);

    memcpy(y, acc, sizeof(float) * N);
    at_accumulate_kernel(a, acc, N);
    wrong = 0;
    for (int i = 0; i < N; i++)
        wrong += acc[i] != y[i] + a[i];
    CHECK_EQ_INT(wrong, 0);

    at_scale_shift_kernel(a, 1.7f, -0.3f, y, N);
    wrong = 0;
    for (int i = 0; i < N; i++) {
        float product = a[i] * 1.7f; /* rounded before the add: no fused multiply-add */
        wrong += y[i] != product + -0.3f;
    }
    CHECK_EQ_INT(wrong, 0);
    free(a);
    free(b);
    free(y);
    free(acc);
}

/* 2x2 max pooling: the first maximum in window order wins and a NaN wins over any number; odd
 * sizes drop the last row and column. */
TEST(maxpool_matches_plain_loop)
{
    static const int sizes[][2] = {{24, 24}, {7, 9}, {2, 2}, {8, 32}, {6, 67}, {5, 35}};
    at_rng rng;
    at_rng_seed(&rng, 19);
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        const int h = sizes[s][0], w = sizes[s][1], oh = h / 2, ow = w / 2;
        float *x = malloc(sizeof(float) * (size_t)h * w), *y = malloc(sizeof(float) * (size_t)oh * ow);
        int32_t *arg = malloc(sizeof(int32_t) * (size_t)oh * ow);
        for (int i = 0; i < h * w; i++)
            x[i] = (float)at_rng_below(&rng, 4); /* ties are common */
        x[w + 1] = NAN;                           /* the last candidate of window (0, 0) */
        for (int i = 0; i < h * w; i += 7 + (int)at_rng_below(&rng, 13))
            x[i] = NAN; /* NaNs in every position of some window, several in some */
        at_maxpool2x2_kernel(x, h, w, y, arg);
        int wrong = 0;
        for (int oy = 0; oy < oh; oy++)
            for (int ox = 0; ox < ow; ox++) {
                const int cand[4] = {2 * oy * w + 2 * ox, 2 * oy * w + 2 * ox + 1,
                                     (2 * oy + 1) * w + 2 * ox, (2 * oy + 1) * w + 2 * ox + 1};
                int best = cand[0];
                for (int c = 1; c < 4; c++) {
                    float v = x[cand[c]], m = x[best];
                    if (m == m && (v > m || v != v))
                        best = cand[c];
                }
                const float want = x[best], got = y[oy * ow + ox];
                wrong += arg[oy * ow + ox] != best || !(got == want || (got != got && want != want));
            }
        if (wrong)
            TEST_FAIL_("maxpool %dx%d: %d windows wrong", h, w, wrong);
        free(x);
        free(y);
        free(arg);
    }
}

/* The direct and Winograd convolutions (forward, accumulating forward, input gradient through
 * the transposed packing, weight and bias gradients) against the defining
 * sums in double precision, on shapes whose rows split into runs of every kind (1 to 12 pixels or
 * tiles), with stride 2, padding and 5x5. */
typedef struct direct_case {
    int channels, height, width, kernel, stride, padding, out_channels;
} direct_case;

/* The two kernels behind one signature. */
typedef struct conv_kernel {
    const char *name;
    bool (*supported)(const at_conv_geom *g, int out_channels);
    size_t packed_per_weight; /* floats of packed weights per weight of a 3x3 kernel: 9 or 16 */
    void (*pack)(const float *w, int out_channels, int channels, int kernel, bool transposed,
                 int block, float *packed);
    void (*run)(const at_conv_geom *g, int out_channels, const float *x, const float *packed,
                const float *bias, at_conv_output output, float *y);
} conv_kernel;

static void winograd_pack(const float *w, int out_channels, int channels, int kernel,
                          bool transposed, int block, float *packed)
{
    at_conv_winograd_pack(w, out_channels, channels, transposed, block, packed);
}

static void winograd_run(const at_conv_geom *g, int out_channels, const float *x,
                         const float *packed, const float *bias, at_conv_output output, float *y)
{
    float *work = malloc(sizeof(float) * at_conv_winograd_work_floats(g));
    at_conv_winograd(g, out_channels, x, packed, bias, output, y, work);
    free(work);
}

static const conv_kernel kernels[2] = {
    {"direct", at_conv_direct_supported, 9, at_conv_direct_pack, at_conv_direct},
    {"winograd", at_conv_winograd_supported, 16, winograd_pack, winograd_run},
};

/* The largest error relative to the size of the sum: |a - ref| / (sum of |terms|), which float
 * rounding keeps to a few units of 6e-8 times the square root of the number of terms. */
static double max_error(const float *a, const double *ref, const double *size, size_t n)
{
    double worst = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - ref[i]) / (size[i] + 1e-30);
        worst = d > worst || d != d ? d : worst;
    }
    return worst;
}

/* The defining sums of one case and the sums of their terms' magnitudes: forward without bias,
 * input gradient, weight and bias gradient. */
typedef struct conv_sums {
    double *y, *dx, *dw, *y_size, *dx_size, *dw_size;
} conv_sums;

/* Forward (plain, through ReLU, accumulating) and, for stride 1, the input gradient of one case
 * through one kernel, against the defining sums. Returns the forward error, or -1 when the
 * kernel does not take the case. */
static double check_kernel(const conv_kernel *kern, const direct_case *t, const char *label,
                           const float *x, const float *w, const float *bias, const float *dy,
                           const conv_sums *r, double tol, at_rng *rng)
{
    const int C = t->channels, H = t->height, W = t->width, k = t->kernel, s = t->stride;
    const int p = t->padding, O = t->out_channels;
    const int OH = (H + 2 * p - k) / s + 1, OW = (W + 2 * p - k) / s + 1;
    const size_t nx = (size_t)C * H * W, ny = (size_t)O * OH * OW, pixels = (size_t)OH * OW;
    const size_t npacked = (size_t)O * C * (k == 3 ? kern->packed_per_weight : (size_t)k * k);
    const at_conv_geom pg = {C, H + 2 * p, W + 2 * p, k, s, 0, OH, OW};
    if (!kern->supported(&pg, O))
        return -1.0;
    float *xp = malloc(sizeof(float) * (size_t)C * pg.height * pg.width);
    float *packed = malloc(sizeof(float) * npacked), *y = malloc(sizeof(float) * ny);
    float *yr = malloc(sizeof(float) * ny);
    double *want = malloc(sizeof(double) * (ny > nx ? ny : nx));
    double *size = malloc(sizeof(double) * (ny > nx ? ny : nx));
    at_pad_planes(C, H, W, p, x, xp);
    for (int b = 0; b < O / 32; b++)
        kern->pack(w, O, C, k, false, b, packed);
    for (size_t i = 0; i < ny; i++)
        y[i] = NAN; /* a plain forward must not read y */
    kern->run(&pg, O, xp, packed, bias, AT_CONV_SET, y);
    for (size_t i = 0; i < ny; i++) {
        want[i] = r->y[i] + bias[i / pixels];
        size[i] = r->y_size[i] + fabs(bias[i / pixels]);
    }
    double e_fwd = max_error(y, want, size, ny);
    kern->run(&pg, O, xp, packed, bias, AT_CONV_SET_RELU, yr);
    int relu_wrong = 0; /* the same sums, through ReLU's rule */
    for (size_t i = 0; i < ny; i++)
        relu_wrong += memcmp(&yr[i], y[i] < 0.0f ? &(float){0.0f} : &y[i], sizeof(float)) != 0;
    if (relu_wrong)
        TEST_FAIL_("%s conv %s: %d outputs with ReLU differ from relu(output)", kern->name, label,
                   relu_wrong);
    fill(y, ny, rng);
    for (size_t i = 0; i < ny; i++) {
        want[i] = r->y[i] + y[i];
        size[i] = r->y_size[i] + fabs(y[i]);
    }
    kern->run(&pg, O, xp, packed, bias, AT_CONV_ADD, y); /* y += conv, the bias ignored */
    double e_acc = max_error(y, want, size, ny);
    if (!(e_fwd <= tol && e_acc <= tol))
        TEST_FAIL_("%s conv %s: forward error %g, accumulating %g", kern->name, label, e_fwd, e_acc);

    if (s == 1 && p < k) { /* the input gradient as the transposed convolution */
        const int q = k - 1 - p;
        const at_conv_geom tg = {O, OH + 2 * q, OW + 2 * q, k, 1, 0, H, W};
        if (kern->supported(&tg, C)) {
            float *dyp = malloc(sizeof(float) * (size_t)O * tg.height * tg.width);
            float *dx = malloc(sizeof(float) * nx);
            at_pad_planes(O, OH, OW, q, dy, dyp);
            for (int b = 0; b < C / 32; b++)
                kern->pack(w, O, C, k, true, b, packed);
            fill(dx, nx, rng);
            for (size_t i = 0; i < nx; i++) {
                want[i] = r->dx[i] + dx[i];
                size[i] = r->dx_size[i] + fabs(dx[i]);
            }
            kern->run(&tg, C, dyp, packed, NULL, AT_CONV_ADD, dx);
            double e = max_error(dx, want, size, nx);
            if (!(e <= tol))
                TEST_FAIL_("%s conv %s: input gradient error %g", kern->name, label, e);
            free(dyp);
            free(dx);
        }
    }
    free(xp), free(packed), free(y), free(yr), free(want), free(size);
    return e_fwd;
}

static void check_direct_case(const direct_case *t, at_rng *rng)
{
    const int C = t->channels, H = t->height, W = t->width, k = t->kernel, s = t->stride;
    const int p = t->padding, O = t->out_channels, kk = k * k;
    const int OH = (H + 2 * p - k) / s + 1, OW = (W + 2 * p - k) / s + 1;
    const size_t nx = (size_t)C * H * W, ny = (size_t)O * OH * OW, nw = (size_t)O * C * kk;
    const at_conv_geom pg = {C, H + 2 * p, W + 2 * p, k, s, 0, OH, OW};
    const double tol = 2e-6;
    float *x = malloc(sizeof(float) * nx), *w = malloc(sizeof(float) * nw);
    float *bias = malloc(sizeof(float) * O), *dy = malloc(sizeof(float) * ny);
    float *xp = malloc(sizeof(float) * (size_t)C * pg.height * pg.width);
    float *gw = malloc(sizeof(float) * (nw + O)), *dyt = malloc(sizeof(float) * ny);
    conv_sums r = {calloc(ny, sizeof(double)), calloc(nx, sizeof(double)),
                   calloc(nw + O, sizeof(double)), calloc(ny, sizeof(double)),
                   calloc(nx, sizeof(double)), calloc(nw + O, sizeof(double))};
    fill(x, nx, rng);
    fill(w, nw, rng);
    fill(bias, O, rng);
    fill(dy, ny, rng);
    /* the defining sums, with the window's taps that fall outside the image left out */
    for (int o = 0; o < O; o++)
        for (int oy = 0; oy < OH; oy++)
            for (int ox = 0; ox < OW; ox++) {
                const size_t yi = ((size_t)o * OH + oy) * OW + ox;
                for (int c = 0; c < C; c++)
                    for (int ky = 0; ky < k; ky++)
                        for (int kx = 0; kx < k; kx++) {
                            int iy = oy * s - p + ky, ix = ox * s - p + kx;
                            if (iy < 0 || iy >= H || ix < 0 || ix >= W)
                                continue;
                            size_t xi = ((size_t)c * H + iy) * W + ix;
                            size_t wi = (((size_t)o * C + c) * k + ky) * k + kx;
                            r.y[yi] += (double)w[wi] * x[xi];
                            r.dx[xi] += (double)w[wi] * dy[yi];
                            r.dw[wi] += (double)dy[yi] * x[xi];
                            r.y_size[yi] += fabs((double)w[wi] * x[xi]);
                            r.dx_size[xi] += fabs((double)w[wi] * dy[yi]);
                            r.dw_size[wi] += fabs((double)dy[yi] * x[xi]);
                        }
                r.dw[nw + o] += dy[yi];
                r.dw_size[nw + o] += fabs(dy[yi]);
            }
    char label[96];
    snprintf(label, sizeof label, "C%d %dx%d k%d s%d p%d O%d", C, H, W, k, s, p, O);
    double e_direct = check_kernel(&kernels[0], t, label, x, w, bias, dy, &r, tol, rng);
    double e_winograd = check_kernel(&kernels[1], t, label, x, w, bias, dy, &r, tol, rng);
    CHECK(e_direct >= 0.0); /* every case is one the direct kernel takes */

    if (k == 3) { /* the direct kernel's weight and bias gradients, added to what the buffers hold */
        float *start = malloc(sizeof(float) * (nw + O));
        fill(start, nw + O, rng);
        for (int b = 0; b < O / 32; b++)
            at_conv_direct_pack(start, O, C, k, false, b, gw);
        memcpy(gw + nw, start + nw, sizeof(float) * O);
        at_pad_planes(C, H, W, p, x, xp);
        at_transpose(O, OH * OW, dy, dyt);
        at_conv_direct_weight_grad(&pg, O, xp, dyt, gw, gw + nw);
        double *rpacked = malloc(sizeof(double) * (nw + O)), *size = malloc(sizeof(double) * (nw + O));
        for (size_t j = 0; j < nw + O; j++) {
            /* the packed layout: [o / 32][c, ky, kx][o % 32], then the bias */
            size_t o = j / ((size_t)C * kk), at = j < nw ? ((o / 32) * C * kk + j % (C * kk)) * 32 + o % 32 : j;
            rpacked[at] = r.dw[j] + start[j];
            size[at] = r.dw_size[j] + fabs(start[j]);
        }
        double e = max_error(gw, rpacked, size, nw + O);
        if (!(e <= tol))
            TEST_FAIL_("direct conv %s: weight gradient error %g", label, e);
        free(start);
        free(rpacked);
        free(size);
    }
    if (e_winograd >= 0.0) { /* Winograd's weight and bias gradients, the image added twice */
        float *m = calloc((size_t)16 * O * C, sizeof(float)), *bias_grad = malloc(sizeof(float) * O);
        float *got = malloc(sizeof(float) * (nw + O));
        float *work = malloc(sizeof(float) * at_conv_winograd_weight_grad_work_floats(&pg, O));
        double *want = malloc(sizeof(double) * (nw + O)), *size = malloc(sizeof(double) * (nw + O));
        fill(bias_grad, O, rng);
        for (int o = 0; o < O; o++) {
            want[nw + o] = 2.0 * r.dw[nw + o] + bias_grad[o];
            size[nw + o] = 2.0 * r.dw_size[nw + o] + fabs(bias_grad[o]);
        }
        at_pad_planes(C, H, W, p, x, xp);
        at_transpose(O, OH * OW, dy, dyt);
        for (int twice = 0; twice < 2; twice++)
            at_conv_winograd_weight_grad(&pg, O, xp, dyt, m, bias_grad, work);
        for (int o = 0; o < O; o++)
            for (int c = 0; c < C; c++) {
                float sums[16];
                for (int xi = 0; xi < 16; xi++) /* the packed layout: [xi][o / 32][c][o % 32] */
                    sums[xi] = m[(((size_t)xi * (O / 32) + o / 32) * C + c) * 32 + o % 32];
                at_conv_winograd_weight_from_grad(sums, got + ((size_t)o * C + c) * 9);
            }
        /* the nine taps of a channel pair come out of one transform of its 16 sums, so their
         * rounding scales with all nine: a corner tap of a small image, one term, carries the
         * rounding of the whole pair */
        for (size_t j = 0; j < nw; j++) {
            want[j] = 2.0 * r.dw[j];
            size[j] = 0.0;
            for (size_t t9 = j - j % 9; t9 < j - j % 9 + 9; t9++)
                size[j] += 2.0 * r.dw_size[t9];
        }
        memcpy(got + nw, bias_grad, sizeof(float) * O);
        double e = max_error(got, want, size, nw + O);
        if (!(e <= tol))
            TEST_FAIL_("winograd conv %s: weight gradient error %g", label, e);
        free(m), free(bias_grad), free(got), free(work), free(want), free(size);
    }
    if (e_winograd >= 0.0)
        printf("  conv %-26s forward error: direct %.1e, winograd %.1e\n", label, e_direct,
               e_winograd);
    else
        printf("  conv %-26s forward error: direct %.1e\n", label, e_direct);
    free(x), free(w), free(bias), free(dy), free(xp), free(gw), free(dyt);
    free(r.y), free(r.dx), free(r.dw), free(r.y_size), free(r.dx_size), free(r.dw_size);
}

TEST(direct_and_winograd_convolutions_match_their_definition)
{
    static const direct_case cases[] = {
        {1, 28, 28, 3, 1, 0, 32},  /* rows of 26: runs 9 + 9 + 8 */
        {32, 26, 26, 3, 1, 0, 32}, /* 24: 12 + 12; Winograd: 144 tiles in runs of 12 */
        {32, 12, 12, 3, 1, 0, 64}, /* 10; Winograd: 25 tiles, 9 + 8 + 8, two blocks */
        {4, 6, 17, 3, 1, 1, 32},   /* 17: 9 + 8, padded */
        {3, 9, 13, 3, 2, 1, 64},   /* stride 2: 7 */
        {2, 7, 30, 5, 1, 2, 32},   /* 5x5: 10 + 10 + 10 */
        {33, 3, 4, 3, 1, 1, 32},   /* 4-pixel rows; input gradient to 33 channels: not direct */
        {64, 5, 5, 3, 1, 1, 32},   /* input gradient to 64 channels */
        {2, 5, 5, 1, 2, 0, 32},    /* 1x1 stride 2 */
        {3, 4, 1, 3, 1, 1, 32},    /* one-pixel rows */
        {16, 6, 36, 3, 1, 1, 32},  /* Winograd: 18 tiles a row (two vectors), 54 tiles */
        {64, 4, 4, 3, 1, 1, 64},   /* Winograd: 4 tiles, input gradient to 64 channels */
        {32, 2, 2, 3, 1, 1, 32},   /* Winograd: a single tile */
    };
    at_conv_geom probe = {1, 3, 3, 3, 1, 0, 1, 1};
    if (!at_conv_direct_supported(&probe, 32)) {
        printf("  NOT TESTED HERE: this processor has no AVX-512, so neither the direct nor the "
               "Winograd convolution ever runs; the im2col path (tested above) is the one in use\n");
        return;
    }
    at_rng rng;
    at_rng_seed(&rng, 5);
    int winograd_cases = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const direct_case *t = &cases[i];
        const int oh = (t->height + 2 * t->padding - t->kernel) / t->stride + 1;
        const int ow = (t->width + 2 * t->padding - t->kernel) / t->stride + 1;
        const at_conv_geom pg = {t->channels, t->height + 2 * t->padding, t->width + 2 * t->padding,
                                 t->kernel, t->stride, 0, oh, ow};
        winograd_cases += at_conv_winograd_supported(&pg, t->out_channels);
        check_direct_case(t, &rng);
    }
    CHECK_EQ_INT(winograd_cases, 5);
}

TEST(transpose_matches_plain_loop)
{
    static const int shapes[][2] = {{1, 1}, {5, 3}, {16, 16}, {17, 33}, {32, 576}, {64, 100}};
    at_rng rng;
    at_rng_seed(&rng, 9);
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int rows = shapes[s][0], cols = shapes[s][1];
        const size_t n = (size_t)rows * cols;
        float *a = malloc(sizeof(float) * n), *t = malloc(sizeof(float) * (n + 1));
        fill(a, n, &rng);
        t[n] = 42.0f; /* nothing written past the end */
        at_transpose(rows, cols, a, t);
        int wrong = t[n] != 42.0f;
        for (int i = 0; i < rows; i++)
            for (int j = 0; j < cols; j++)
                wrong += t[(size_t)j * rows + i] != a[(size_t)i * cols + j];
        if (wrong)
            TEST_FAIL_("transpose %dx%d: %d entries wrong", rows, cols, wrong);
        free(a);
        free(t);
    }
}

TEST_MAIN(TEST_ENTRY(gemm_matches_reference), TEST_ENTRY(transpose_matches_plain_loop), TEST_ENTRY(im2col_matches_its_definition),
          TEST_ENTRY(col2im_is_the_adjoint_of_im2col), TEST_ENTRY(elementwise_kernels_match_plain_loops),
          TEST_ENTRY(maxpool_matches_plain_loop), TEST_ENTRY(direct_and_winograd_convolutions_match_their_definition))
