/* test_corruptions_b.c: the blur corruptions (defocus, glass, motion, zoom), snow and the elastic
 * transform of CIFAR-10-C, and the filters they share (src/corrupt/filter.h). Each is checked
 * against its definition on images built here: the blurs against direct convolutions written out
 * in double precision, the shuffle as a permutation, the elastic transform through a constant and
 * a coordinate ramp, snow for brightening. For all six: distortion growing with severity (where
 * the published table makes it grow), the same bytes for the same seed, output in [0, 1] and
 * grey, colour and non-square images. */
#include "test.h"

#include "advtrain.h"
#include "corrupt/corruption.h"
#include "corrupt/filter.h"

#include <stdint.h>

typedef struct named_fn {
    const char *name;
    at_corrupt_fn fn;
    int random; /* draws from the rng */
} named_fn;

static const named_fn MINE[] = {
    {"defocus_blur", at_corrupt_defocus_blur, 0},
    {"glass_blur", at_corrupt_glass_blur, 1},
    {"motion_blur", at_corrupt_motion_blur, 1},
    {"zoom_blur", at_corrupt_zoom_blur, 0},
    {"snow", at_corrupt_snow, 1},
    {"elastic_transform", at_corrupt_elastic_transform, 1},
};
enum { N_MINE = (int)(sizeof MINE / sizeof MINE[0]) };

/* A textured image in [0, 1]: a few random sinusoids, a random edge and a little noise. */
static float *textured(int c, int h, int w, uint64_t seed)
{
    at_rng rng;
    at_rng_seed(&rng, seed);
    float *x = malloc(sizeof(float) * c * h * w);
    for (int ch = 0; ch < c; ch++) {
        double f1 = 0.2 + 0.8 * at_rng_uniform(&rng), f2 = 0.2 + 0.8 * at_rng_uniform(&rng);
        double p1 = 6.28 * at_rng_uniform(&rng), p2 = 6.28 * at_rng_uniform(&rng);
        double ex = w * at_rng_uniform(&rng), slope = 2 * at_rng_uniform(&rng) - 1;
        for (int y = 0; y < h; y++)
            for (int xx = 0; xx < w; xx++) {
                double v = 0.5 + 0.2 * sin(f1 * xx + p1) * cos(f2 * y + p2) +
                           (xx > ex + slope * y ? 0.2 : -0.2) + 0.05 * at_rng_normal(&rng);
                x[((size_t)ch * h + y) * w + xx] = (float)(v < 0 ? 0 : v > 1 ? 1 : v);
            }
    }
    return x;
}

static float *copy_of(const float *x, size_t n)
{
    float *y = malloc(n * sizeof(float));
    memcpy(y, x, n * sizeof(float));
    return y;
}

static double mse(const float *a, const float *b, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
    return s / n;
}

static double mean(const float *a, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += a[i];
    return s / n;
}

/* Applies fn with the stream of seed; returns its status. */
static int apply(at_corrupt_fn fn, float *x, int c, int h, int w, int severity, uint64_t seed)
{
    at_rng rng;
    at_rng_seed(&rng, seed);
    at_error err;
    int rc = fn(x, c, h, w, severity, &rng, &err);
    if (rc != 0)
        fprintf(stderr, "  %s\n", err.message);
    return rc;
}

/* ---- shared filters ------------------------------------------------------------------------ */

TEST(padding_rules)
{
    /* n = 4, abcd: edge aaa|abcd|ddd, reflect ba|abcd|dc, reflect-101 cb|abcd|cb */
    const int in[] = {-3, -2, -1, 0, 3, 4, 5, 6};
    const int edge[] = {0, 0, 0, 0, 3, 3, 3, 3};
    const int reflect[] = {2, 1, 0, 0, 3, 3, 2, 1};
    const int reflect101[] = {3, 2, 1, 0, 3, 2, 1, 0};
    for (int i = 0; i < 8; i++) {
        CHECK_EQ_INT(at_pad_index(in[i], 4, AT_PAD_EDGE), edge[i]);
        CHECK_EQ_INT(at_pad_index(in[i], 4, AT_PAD_REFLECT), reflect[i]);
        CHECK_EQ_INT(at_pad_index(in[i], 4, AT_PAD_REFLECT101), reflect101[i]);
    }
    /* far outside: the patterns repeat with periods 2n and 2n - 2 */
    CHECK_EQ_INT(at_pad_index(-9, 4, AT_PAD_REFLECT), 0);    /* -9 = -1 - 8 -> as -1 */
    CHECK_EQ_INT(at_pad_index(13, 4, AT_PAD_REFLECT101), 1); /* 13 = 7 + 6 -> as 7 -> 1 */
    CHECK_EQ_INT(at_pad_index(-7, 1, AT_PAD_REFLECT101), 0);
}

/* The 2D Gaussian of scipy.ndimage (radius (int)(truncate sigma + 0.5)), written as one direct
 * double loop over the 2D window, against the separable at_gaussian_filter. */
TEST(gaussian_filter_is_the_direct_2d_gaussian)
{
    const int h = 9, w = 13;
    const double sigmas[] = {0.05, 0.25, 0.4, 1.3};
    const at_pad pads[] = {AT_PAD_EDGE, AT_PAD_REFLECT};
    float *x = textured(1, h, w, 3);
    for (int si = 0; si < 4; si++)
        for (int pi = 0; pi < 2; pi++) {
            const double sigma = sigmas[si], truncate = si % 2 ? 3.0 : 4.0;
            const int r = (int)(truncate * sigma + 0.5);
            float *y = copy_of(x, (size_t)h * w);
            at_error err;
            CHECK_OK(at_gaussian_filter(y, h, w, sigma, truncate, pads[pi], &err), &err);
            for (int i = 0; i < h; i++)
                for (int j = 0; j < w; j++) {
                    double num = 0, den = 0;
                    for (int a = -r; a <= r; a++)
                        for (int b = -r; b <= r; b++) {
                            double g = exp(-(a * a + b * b) / (2 * sigma * sigma));
                            int ii = i + a, jj = j + b;
                            if (pads[pi] == AT_PAD_EDGE) {
                                ii = ii < 0 ? 0 : ii >= h ? h - 1 : ii;
                                jj = jj < 0 ? 0 : jj >= w ? w - 1 : jj;
                            } else { /* the window is smaller than the image: one reflection */
                                ii = ii < 0 ? -ii - 1 : ii >= h ? 2 * h - 1 - ii : ii;
                                jj = jj < 0 ? -jj - 1 : jj >= w ? 2 * w - 1 - jj : jj;
                            }
                            num += g * x[ii * w + jj];
                            den += g;
                        }
                    CHECK_CLOSE(y[i * w + j], num / den, 1e-6, 0);
                }
            if (r == 0) /* sigma 0.05: radius 0, the identity */
                CHECK(memcmp(x, y, sizeof(float) * h * w) == 0);
            free(y);
        }
    free(x);
}

TEST(scale_rule)
{
    CHECK_CLOSE(at_corrupt_scale(32, 32), 1.0, 0, 0);
    CHECK_CLOSE(at_corrupt_scale(28, 28), 1.0, 0, 0);
    CHECK_CLOSE(at_corrupt_scale(20, 36), 1.0, 0, 0);
    CHECK_CLOSE(at_corrupt_scale(64, 96), 2.0, 0, 0);
    CHECK_CLOSE(at_corrupt_scale(224, 224), 7.0, 0, 0);
}

/* ---- defocus blur --------------------------------------------------------------------------- */

/* make_cifar_c.py's disk(radius, alias_blur) on its 17x17 grid (L = -8..8), anti-aliased by a
 * (2 g + 1)^2 Gaussian (g = 1: OpenCV's ksize 3), into k[17 * 17]. */
static void published_disk(double radius, double alias, int g, double *k)
{
    double disk[17][17], total = 0;
    for (int y = 0; y < 17; y++)
        for (int x = 0; x < 17; x++) {
            disk[y][x] = (x - 8) * (x - 8) + (y - 8) * (y - 8) <= radius * radius;
            total += disk[y][x];
        }
    double taps[9], tsum = 0;
    for (int t = -g; t <= g; t++)
        tsum += taps[t + g] = exp(-t * t / (2 * alias * alias));
    for (int y = 0; y < 17; y++)
        for (int x = 0; x < 17; x++) {
            double s = 0;
            for (int a = -g; a <= g; a++)
                for (int b = -g; b <= g; b++)
                    if (y - a >= 0 && y - a < 17 && x - b >= 0 && x - b < 17)
                        s += taps[a + g] * taps[b + g] * disk[y - a][x - b];
            k[y * 17 + x] = s / (tsum * tsum * total);
        }
}

TEST(defocus_is_the_disk_convolution)
{
    static const double table[5][2] = {{0.3, 0.4}, {0.4, 0.5}, {0.5, 0.6}, {1, 0.2}, {1.5, 0.1}};
    /* 32x32 and 20x36 keep the table; 64x64 doubles radius, alias blur and Gaussian window */
    const int shapes[3][3] = {{3, 32, 32}, {1, 20, 36}, {1, 64, 64}};
    for (int si = 0; si < 3; si++) {
        const int c = shapes[si][0], h = shapes[si][1], w = shapes[si][2];
        const double s = h == 64 ? 2 : 1;
        float *x = textured(c, h, w, 11 + si);
        for (int sev = 1; sev <= 5; sev++) {
            double k[17 * 17];
            published_disk(table[sev - 1][0] * s, table[sev - 1][1] * s, (int)s, k);
            float *y = copy_of(x, (size_t)c * h * w);
            CHECK_EQ_INT(apply(at_corrupt_defocus_blur, y, c, h, w, sev, 1), 0);
            double worst = 0;
            for (int ch = 0; ch < c; ch++)
                for (int i = 0; i < h; i++)
                    for (int j = 0; j < w; j++) {
                        double sum = 0; /* correlation, OpenCV's reflect-101 border */
                        for (int a = -8; a <= 8; a++)
                            for (int b = -8; b <= 8; b++) {
                                int ii = i + a, jj = j + b;
                                ii = ii < 0 ? -ii : ii >= h ? 2 * h - 2 - ii : ii;
                                jj = jj < 0 ? -jj : jj >= w ? 2 * w - 2 - jj : jj;
                                sum += k[(a + 8) * 17 + b + 8] * x[((size_t)ch * h + ii) * w + jj];
                            }
                        double d = fabs(sum - y[((size_t)ch * h + i) * w + j]);
                        worst = d > worst ? d : worst;
                    }
            if (worst > 1e-5)
                TEST_FAIL_("%dx%dx%d severity %d: off the disk convolution by %g", c, h, w, sev,
                           worst);
            free(y);
        }
        free(x);
    }
}

/* ---- motion blur ---------------------------------------------------------------------------- */

/* On a single bright pixel the output is the line kernel itself, mirrored: weight k_j at the
 * pixel q - o_j. Its sum is 1, it lies on the line through q at the drawn angle (the first
 * draw, uniform on [-45, 45)) within the rounding of each coordinate, on one side only, reaching
 * 2 ceil(radius) pixels, and its centroid is at the mean distance of the Gaussian weights
 * exp(-j^2 / 2 sigma^2). The 41x41 image scales radius and sigma by 41 / 32. */
TEST(motion_blur_of_a_point_is_the_line_kernel)
{
    static const double table[5][2] = {{6, 1}, {6, 1.5}, {6, 2}, {8, 2}, {9, 2.5}};
    const int n = 41, qy = 20, qx = 36; /* the taps reach right, up and down */
    const double s = n / 32.0, pi = 3.14159265358979323846, rounding = 0.5 * sqrt(2.0);
    for (int sev = 1; sev <= 5; sev++)
        for (uint64_t seed = 1; seed <= 6; seed++) {
            float *x = calloc((size_t)n * n, sizeof(float));
            x[qy * n + qx] = 1;
            at_rng rng;
            at_rng_seed(&rng, seed);
            const double angle = (-45 + 90 * at_rng_uniform(&rng)) * pi / 180;
            CHECK_EQ_INT(apply(at_corrupt_motion_blur, x, 1, n, n, sev, seed), 0);
            const int width = 2 * (int)ceil(table[sev - 1][0] * s) + 1;
            const double sigma = table[sev - 1][1] * s;
            double total = 0, mx = 0, my = 0, far = 0, off_line = 0, behind = 0;
            for (int y = 0; y < n; y++)
                for (int xx = 0; xx < n; xx++) {
                    double v = x[y * n + xx];
                    total += v;
                    if (v == 0)
                        continue;
                    double dx = qx - xx, dy = qy - y; /* o_j, the offset this pixel was read at */
                    double along = dx * cos(angle) + dy * sin(angle);
                    double across = fabs(-dx * sin(angle) + dy * cos(angle));
                    mx += v * dx;
                    my += v * dy;
                    far = fmax(far, hypot(dx, dy));
                    off_line = fmax(off_line, across);
                    behind = fmin(behind, along);
                }
            double expect = 0, ksum = 0;
            for (int j = 0; j < width; j++) {
                double kj = exp(-(double)j * j / (2 * sigma * sigma));
                expect += kj * j;
                ksum += kj;
            }
            CHECK_CLOSE(total, 1.0, 1e-5, 0);
            CHECK(far <= width - 1 + rounding && far >= width - 1 - rounding);
            CHECK(off_line <= rounding + 1e-9);
            CHECK(behind >= -1e-9); /* one-sided */
            CHECK_CLOSE(hypot(mx, my), expect / ksum, rounding, 0);
            free(x);
        }
}

/* On a textured image, where no tap reaches past the border, the output is the correlation
 * with that kernel: out[p] = sum_o k(o) in[p + o], k read off the point response (shift
 * invariance). The point sits right of centre, since the taps reach right (angles in [-45, 45)
 * degrees), so the response holds every tap. */
TEST(motion_blur_is_the_correlation_with_its_point_response)
{
    const int n = 48, qy = 24, qx = 44;
    float *point = calloc((size_t)n * n, sizeof(float));
    point[qy * n + qx] = 1;
    float *x = textured(3, n, n, 5), *y = copy_of(x, (size_t)3 * n * n);
    for (int sev = 1; sev <= 5; sev += 2) {
        memcpy(y, x, sizeof(float) * 3 * n * n);
        float *p = copy_of(point, (size_t)n * n);
        CHECK_EQ_INT(apply(at_corrupt_motion_blur, p, 1, n, n, sev, 9), 0);
        CHECK_EQ_INT(apply(at_corrupt_motion_blur, y, 3, n, n, sev, 9), 0);
        double worst = 0;
        int checked = 0;
        for (int ch = 0; ch < 3; ch++)
            for (int i = 0; i < n; i++)
                for (int j = 0; j < n; j++) {
                    double sum = 0; /* p[q - o] = k(o) */
                    int inside = 1;
                    for (int a = 0; a < n && inside; a++)
                        for (int b = 0; b < n; b++)
                            if (p[a * n + b] != 0) {
                                int ii = i + qy - a, jj = j + qx - b;
                                if (ii < 0 || ii >= n || jj < 0 || jj >= n) {
                                    inside = 0;
                                    break;
                                }
                                sum += p[a * n + b] * x[(ch * n + ii) * n + jj];
                            }
                    if (!inside)
                        continue;
                    worst = fmax(worst, fabs(sum - y[(ch * n + i) * n + j]));
                    checked++;
                }
        CHECK(checked >= 3 * 100);
        CHECK(worst < 1e-5);
        free(p);
    }
    free(point);
    free(x);
    free(y);
}

/* ---- zoom blur ------------------------------------------------------------------------------ */

/* make_cifar_c.py's zoom_blur written out plainly in double: for each factor, crop the centre
 * ceil(n / z), zoom it to round(crop z) by scipy's order-1 zoom, keep the centre n. */
static void published_zoom_blur(const double *x, double *out, int h, int w, int count)
{
    for (int i = 0; i < h * w; i++)
        out[i] = x[i];
    for (int k = 0; k < count; k++) {
        const double z = 1 + k * 0.01;
        const int ch = (int)ceil(h / z), cw = (int)ceil(w / z);
        const int top = (h - ch) / 2, left = (w - cw) / 2;
        const int oh = (int)nearbyint(ch * z), ow = (int)nearbyint(cw * z);
        double *big = malloc(sizeof(double) * oh * ow);
        for (int i = 0; i < oh; i++)
            for (int j = 0; j < ow; j++) {
                double u = oh > 1 ? i * (ch - 1.0) / (oh - 1) : 0;
                double v = ow > 1 ? j * (cw - 1.0) / (ow - 1) : 0;
                int u0 = (int)u, v0 = (int)v;
                int u1 = u0 + 1 < ch ? u0 + 1 : u0, v1 = v0 + 1 < cw ? v0 + 1 : v0;
                double fu = u - u0, fv = v - v0;
                const double *c0 = x + (size_t)(top + u0) * w + left;
                const double *c1 = x + (size_t)(top + u1) * w + left;
                big[i * ow + j] = (1 - fu) * ((1 - fv) * c0[v0] + fv * c0[v1]) +
                                  fu * ((1 - fv) * c1[v0] + fv * c1[v1]);
            }
        const int th = (oh - h) / 2, tw = (ow - w) / 2;
        for (int i = 0; i < h; i++)
            for (int j = 0; j < w; j++)
                out[i * w + j] += big[(th + i) * ow + tw + j];
        free(big);
    }
    for (int i = 0; i < h * w; i++)
        out[i] /= count + 1;
}

TEST(zoom_blur_is_the_mean_of_centre_zooms)
{
    /* numpy's arange(1, stop, 0.01) for the stops 1.06, 1.11, 1.16, 1.21, 1.26 */
    const int counts[5] = {7, 12, 16, 21, 26};
    const int shapes[3][2] = {{32, 32}, {20, 36}, {28, 28}};
    for (int si = 0; si < 3; si++) {
        const int h = shapes[si][0], w = shapes[si][1];
        float *x = textured(1, h, w, 21 + si);
        double *xd = malloc(sizeof(double) * h * w), *ref = malloc(sizeof(double) * h * w);
        for (int i = 0; i < h * w; i++)
            xd[i] = x[i];
        for (int sev = 1; sev <= 5; sev++) {
            float *y = copy_of(x, (size_t)h * w);
            CHECK_EQ_INT(apply(at_corrupt_zoom_blur, y, 1, h, w, sev, 1), 0);
            published_zoom_blur(xd, ref, h, w, counts[sev - 1]);
            double worst = 0;
            for (int i = 0; i < h * w; i++)
                worst = fmax(worst, fabs(ref[i] - y[i]));
            if (worst > 1e-5)
                TEST_FAIL_("%dx%d severity %d: off the published zoom blur by %g", h, w, sev,
                           worst);
            free(y);
        }
        free(x);
        free(xd);
        free(ref);
    }
}

TEST(zoom_blur_keeps_constants_and_symmetry)
{
    const int h = 32, w = 32;
    float *x = malloc(sizeof(float) * 3 * h * w), *y = malloc(sizeof(float) * 3 * h * w);
    for (int sev = 1; sev <= 5; sev++) {
        for (int i = 0; i < 3 * h * w; i++)
            x[i] = i < h * w ? 0.25f : i < 2 * h * w ? 0.5f : 1.0f;
        memcpy(y, x, sizeof(float) * 3 * h * w);
        CHECK_EQ_INT(apply(at_corrupt_zoom_blur, y, 3, h, w, sev, 1), 0);
        CHECK(mse(x, y, (size_t)3 * h * w) < 1e-12);
        /* a bump symmetric under the 180-degree rotation about the centre stays so up to a
         * shift: the published clipped_zoom crops from (n - crop) / 2 and trims from
         * (out - n) / 2, both rounded down, so each copy reads up to a pixel up and left of
         * the centre: its content moves by 0 to 1 pixel down and right, the centroid with it,
         * and mirror
         * pixels differ by at most twice the bump's steepest slope, 1 / (6 sqrt(e)). */
        double cy = 0, cx = 0, mass = 0;
        for (int i = 0; i < h; i++)
            for (int j = 0; j < w; j++) {
                double r2 = (i - 15.5) * (i - 15.5) + (j - 15.5) * (j - 15.5);
                x[i * w + j] = (float)exp(-r2 / 72);
            }
        memcpy(y, x, sizeof(float) * h * w);
        CHECK_EQ_INT(apply(at_corrupt_zoom_blur, y, 1, h, w, sev, 1), 0);
        double asym = 0;
        for (int i = 0; i < h; i++)
            for (int j = 0; j < w; j++) {
                asym = fmax(asym, fabs(y[i * w + j] - y[(h - 1 - i) * w + w - 1 - j]));
                cy += i * y[i * w + j];
                cx += j * y[i * w + j];
                mass += y[i * w + j];
            }
        CHECK(asym <= 2 / (6 * sqrt(exp(1.0))));
        CHECK(cy / mass >= 15.5 - 1e-9 && cy / mass <= 16.5);
        CHECK(cx / mass >= 15.5 - 1e-9 && cx / mass <= 16.5);
        CHECK(mse(x, y, (size_t)h * w) > 1e-6); /* and it did blur */
    }
    free(x);
    free(y);
}

/* ---- glass blur ----------------------------------------------------------------------------- */

TEST(glass_blur_shuffles_locally)
{
    const int h = 32, w = 32, n = h * w;
    /* severity 1 (sigma 0.05: Gaussian radius 0) is the shuffle alone: a permutation of the
     * pixels, the same in every channel, that keeps the border rows and columns 0 */
    float *x = malloc(sizeof(float) * 3 * n), *y = malloc(sizeof(float) * 3 * n);
    for (int i = 0; i < n; i++) {
        x[i] = (float)(i + 1) / (n + 1);
        x[n + i] = 1 - x[i];
        x[2 * n + i] = x[i] * x[i];
    }
    memcpy(y, x, sizeof(float) * 3 * n);
    CHECK_EQ_INT(apply(at_corrupt_glass_blur, y, 3, h, w, 1, 4), 0);
    int moved = 0, seen_ok = 1;
    char *seen = calloc(n, 1);
    for (int i = 0; i < n; i++) {
        int k = (int)lrint(y[i] * (n + 1)) - 1;
        if (k < 0 || k >= n || seen[k] || y[i] != x[k] || y[n + i] != x[n + k] ||
            y[2 * n + i] != x[2 * n + k]) {
            seen_ok = 0;
            continue;
        }
        seen[k] = 1;
        moved += k != i;
        if (i / w == 0 || i % w == 0)
            CHECK_EQ_INT(k, i);
    }
    CHECK(seen_ok);
    CHECK(moved > n / 4);
    free(seen);
    /* with the blurs: the mean stays, the texture changes */
    for (int sev = 1; sev <= 5; sev++) {
        float *t = textured(3, h, w, 30 + sev);
        float *u = copy_of(t, (size_t)3 * n);
        CHECK_EQ_INT(apply(at_corrupt_glass_blur, u, 3, h, w, sev, 2), 0);
        CHECK_CLOSE(mean(u, (size_t)3 * n), mean(t, (size_t)3 * n), 0.01, 0);
        CHECK(mse(t, u, (size_t)3 * n) > 1e-3);
        free(t);
        free(u);
    }
    free(x);
    free(y);
}

/* ---- elastic transform ---------------------------------------------------------------------- */

TEST(elastic_keeps_constants)
{
    const int shapes[3][3] = {{3, 32, 32}, {1, 28, 28}, {3, 20, 36}};
    for (int si = 0; si < 3; si++) {
        const int c = shapes[si][0], h = shapes[si][1], w = shapes[si][2];
        const size_t n = (size_t)c * h * w;
        float *x = malloc(sizeof(float) * n);
        for (size_t i = 0; i < n; i++)
            x[i] = 0.2f + 0.3f * (float)(i / ((size_t)h * w));
        for (int sev = 1; sev <= 5; sev++) {
            float *y = copy_of(x, n);
            CHECK_EQ_INT(apply(at_corrupt_elastic_transform, y, c, h, w, sev, 7), 0);
            CHECK(mse(x, y, n) < 1e-12);
            free(y);
        }
        free(x);
    }
}

/* On the ramps R = x / 31, G = y / 31 (bilinear interpolation keeps ramps exact) the output
 * names the source of each pixel, so its displacement is out * 31 - position: the affine part
 * A p - p plus the field d seen through A's linear part, A (p + d) - p. A takes the moved points
 * back to (26, 26), (26, 6), (6, 6) (in (x, y); q = 10 about (16, 16)), so inside the moved
 * triangle A p - p is a convex combination of the moves, at most `affine` per coordinate. Each
 * point moves at most affine sqrt(2), and so does each edge, so pixels that far inside the
 * published triangle are inside the moved one. The field is at most alpha (smoothed noise in
 * [-1, 1]); A's linear part is within 0.3 of the identity per entry (moves of <= 2.56 sqrt(2)
 * over legs of 20), so it adds at most 1.6 alpha. */
TEST(elastic_displacement_is_bounded)
{
    static const double table[5][3] = {{0, 0, 0.08}, {0.05, 0.2, 0.07}, {0.08, 0.06, 0.06},
                                       {0.1, 0.04, 0.05}, {0.1, 0.03, 0.03}};
    const int n = 32;
    float *x = malloc(sizeof(float) * 3 * n * n), *y = malloc(sizeof(float) * 3 * n * n);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            x[i * n + j] = j / 31.0f;
            x[n * n + i * n + j] = i / 31.0f;
            x[2 * n * n + i * n + j] = 0.5f;
        }
    for (int sev = 1; sev <= 5; sev++)
        for (uint64_t seed = 1; seed <= 4; seed++) {
            memcpy(y, x, sizeof(float) * 3 * n * n);
            CHECK_EQ_INT(apply(at_corrupt_elastic_transform, y, 3, n, n, sev, seed), 0);
            const double affine = 32 * table[sev - 1][2], alpha = 32 * table[sev - 1][0];
            const double inside = affine * sqrt(2.0), bound = affine + 1.6 * alpha + 1e-4;
            double worst = 0, total = 0;
            int checked = 0;
            for (int i = 0; i < n; i++)
                for (int j = 0; j < n; j++) {
                    /* distance inside the edges y = 6, x = 26 and x = y */
                    if (i - 6 < inside || 26 - j < inside || (j - i) / sqrt(2.0) < inside)
                        continue;
                    double ddx = y[i * n + j] * 31 - j, ddy = y[n * n + i * n + j] * 31 - i;
                    worst = fmax(worst, fmax(fabs(ddx), fabs(ddy)));
                    total += fabs(ddx) + fabs(ddy);
                    checked++;
                }
            CHECK(checked >= 20);
            if (worst > bound)
                TEST_FAIL_("severity %d seed %d: a pixel moved %g > %g", sev, (int)seed, worst,
                           bound);
            CHECK(total > 0); /* and pixels did move */
            for (int i = 0; i < n * n; i++)
                CHECK(fabs(y[2 * n * n + i] - 0.5) < 1e-6);
        }
    free(x);
    free(y);
}

/* ---- snow ----------------------------------------------------------------------------------- */

TEST(snow_brightens)
{
    for (int sev = 1; sev <= 5; sev++)
        for (int c = 1; c <= 3; c += 2) {
            float *x = textured(c, 32, 32, 40 + sev), *y = copy_of(x, (size_t)c * 32 * 32);
            for (int i = 0; i < c * 32 * 32; i++)
                x[i] = y[i] = x[i] * 0.5f; /* darker, so brightening shows */
            CHECK_EQ_INT(apply(at_corrupt_snow, y, c, 32, 32, sev, 3), 0);
            CHECK(mean(y, (size_t)c * 32 * 32) > mean(x, (size_t)c * 32 * 32) + 0.01);
            /* every pixel at least as bright as the whitening alone makes it (blend >= 0.8
             * of x plus the rest of max(x, ...) >= x): no pixel darkens */
            int darker = 0;
            for (int i = 0; i < c * 32 * 32; i++)
                darker += y[i] < x[i] - 1e-6f;
            CHECK_EQ_INT(darker, 0);
            free(x);
            free(y);
        }
}

/* ---- common properties ---------------------------------------------------------------------- */

/* Mean squared difference to the clean image over 6 textured 32x32x3 images and 3 seeds (the
 * same seeds at every severity, so a motion blur's angle is the same at every severity). */
static void severity_curve(at_corrupt_fn fn, double curve[5])
{
    const int c = 3, h = 32, w = 32;
    const size_t n = (size_t)c * h * w;
    for (int sev = 1; sev <= 5; sev++) {
        double s = 0;
        for (int img = 0; img < 6; img++) {
            float *x = textured(c, h, w, 100 + img);
            for (uint64_t seed = 1; seed <= 3; seed++) {
                float *y = copy_of(x, n);
                CHECK_EQ_INT(apply(fn, y, c, h, w, sev, seed * 1000 + img), 0);
                s += mse(x, y, n);
                free(y);
            }
            free(x);
        }
        curve[sev - 1] = s / 18;
    }
}

static void check_above(const char *name, const double *m, int hi, int lo)
{
    if (!(m[hi - 1] > m[lo - 1]))
        TEST_FAIL_("%s: severity %d (%g) not above %d (%g)", name, hi, m[hi - 1], lo, m[lo - 1]);
}

/* Defocus, zoom and snow distort more at every step. Where the published table does not, what
 * it does imply is checked:
 *   motion_blur 3 -> 4: the same sigma 2; radius 8's extra taps weigh < 1e-9: the same blur;
 *   glass_blur: sigma 0.05, 0.25, 0.4, 0.25, 0.4 with 1, 1, 1, 2, 2 shuffle passes. The second
 *     blur smooths the shuffle away, so more blur with the same passes is closer to the clean
 *     image (3 < 2, 5 < 4) and sigma 0.25 is nearly no blur (2 ~ 1); two passes distort more
 *     than one (4 > 2, 5 > 3, and both above severities 1-3);
 *   elastic_transform: its affine moves shrink (32 x 0.08 ... 0.03 pixels) and dominate the
 *     difference, which falls with severity; elastic_field_grows_with_severity checks the rest. */
TEST(severity_increases_distortion)
{
    for (int k = 0; k < N_MINE; k++) {
        const char *name = MINE[k].name;
        double m[5];
        severity_curve(MINE[k].fn, m);
        printf("  %-18s mse by severity: %.5f %.5f %.5f %.5f %.5f\n", name, m[0], m[1], m[2],
               m[3], m[4]);
        if (strcmp(name, "glass_blur") == 0) {
            CHECK_CLOSE(m[1], m[0], 0, 0.02);
            check_above(name, m, 2, 3);
            check_above(name, m, 4, 5);
            for (int lo = 1; lo <= 3; lo++) {
                check_above(name, m, 4, lo);
                check_above(name, m, 5, lo);
            }
        } else if (strcmp(name, "elastic_transform") == 0) {
            for (int sev = 2; sev <= 5; sev++)
                check_above(name, m, sev - 1, sev);
        } else {
            for (int sev = 2; sev <= 5; sev++) {
                if (strcmp(name, "motion_blur") == 0 && sev == 4)
                    CHECK_CLOSE(m[3], m[2], 0, 1e-4);
                else
                    check_above(name, m, sev, sev - 1);
            }
        }
    }
}

/* The elastic transform's two parts, measured on coordinate ramps (R = x / 31, G = y / 31,
 * which bilinear interpolation keeps exact) over the pixels 6 or more from the border: the
 * displacement's least-squares affine fit (the random affine) shrinks from severity 1 to 5 as
 * the table's affine moves do, and what the fit leaves (the smoothed random field, none at
 * severity 1 where alpha is 0) grows, as alpha / sigma does. */
TEST(elastic_field_grows_with_severity)
{
    const int n = 32, lo = 6, hi = 25;
    float *x = malloc(sizeof(float) * 2 * n * n), *y = malloc(sizeof(float) * 2 * n * n);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            x[i * n + j] = j / 31.0f;
            x[n * n + i * n + j] = i / 31.0f;
        }
    double affine[5] = {0}, field[5] = {0};
    for (int sev = 1; sev <= 5; sev++)
        for (uint64_t seed = 1; seed <= 8; seed++) {
            memcpy(y, x, sizeof(float) * 2 * n * n);
            /* grey planes: the same field moves both (every channel alike) */
            CHECK_EQ_INT(apply(at_corrupt_elastic_transform, y, 1, n, n, sev, seed), 0);
            memcpy(y + n * n, x + n * n, sizeof(float) * n * n);
            CHECK_EQ_INT(apply(at_corrupt_elastic_transform, y + n * n, 1, n, n, sev, seed), 0);
            for (int axis = 0; axis < 2; axis++) {
                /* fit d = a j + b i + c by the normal equations over the window */
                double m[3][4] = {{0}};
                for (int i = lo; i <= hi; i++)
                    for (int j = lo; j <= hi; j++) {
                        double d = y[axis * n * n + i * n + j] * 31 - (axis ? i : j);
                        double f[3] = {j, i, 1};
                        for (int r = 0; r < 3; r++) {
                            for (int cc = 0; cc < 3; cc++)
                                m[r][cc] += f[r] * f[cc];
                            m[r][3] += f[r] * d;
                        }
                    }
                for (int r = 0; r < 3; r++) /* Gauss-Jordan, the matrix is well conditioned */
                    for (int o = 0; o < 3; o++)
                        if (o != r) {
                            double t = m[o][r] / m[r][r];
                            for (int cc = 0; cc < 4; cc++)
                                m[o][cc] -= t * m[r][cc];
                        }
                double coef[3] = {m[0][3] / m[0][0], m[1][3] / m[1][1], m[2][3] / m[2][2]};
                for (int i = lo; i <= hi; i++)
                    for (int j = lo; j <= hi; j++) {
                        double d = y[axis * n * n + i * n + j] * 31 - (axis ? i : j);
                        double fit = coef[0] * j + coef[1] * i + coef[2];
                        affine[sev - 1] += fit * fit;
                        field[sev - 1] += (d - fit) * (d - fit);
                    }
            }
        }
    printf("  elastic affine part by severity: %.4f %.4f %.4f %.4f %.4f\n", affine[0], affine[1],
           affine[2], affine[3], affine[4]);
    printf("  elastic field part by severity:  %.2e %.2e %.2e %.2e %.2e\n", field[0], field[1],
           field[2], field[3], field[4]);
    CHECK(field[0] < 1e-6 * field[1]);
    for (int sev = 2; sev <= 5; sev++) {
        CHECK(affine[sev - 1] < affine[sev - 2]);
        CHECK(field[sev - 1] > field[sev - 2]);
    }
    free(x);
    free(y);
}

TEST(deterministic_in_range_any_shape)
{
    const int shapes[4][3] = {{1, 28, 28}, {3, 32, 32}, {3, 20, 36}, {1, 36, 20}};
    for (int k = 0; k < N_MINE; k++)
        for (int si = 0; si < 4; si++) {
            const int c = shapes[si][0], h = shapes[si][1], w = shapes[si][2];
            const size_t n = (size_t)c * h * w;
            float *x = textured(c, h, w, 50 + si);
            for (int sev = 1; sev <= 5; sev++) {
                float *a = copy_of(x, n), *b = copy_of(x, n), *d = copy_of(x, n);
                CHECK_EQ_INT(apply(MINE[k].fn, a, c, h, w, sev, 77), 0);
                CHECK_EQ_INT(apply(MINE[k].fn, b, c, h, w, sev, 77), 0);
                CHECK_EQ_INT(apply(MINE[k].fn, d, c, h, w, sev, 78), 0);
                if (memcmp(a, b, n * sizeof(float)) != 0)
                    TEST_FAIL_("%s %dx%dx%d severity %d: same seed, other bytes", MINE[k].name,
                               c, h, w, sev);
                int differ = memcmp(a, d, n * sizeof(float)) != 0;
                if (differ != MINE[k].random)
                    TEST_FAIL_("%s %dx%dx%d severity %d: another seed %s", MINE[k].name, c, h,
                               w, sev,
                               differ ? "changed a non-random corruption" : "changed nothing");
                int bad = 0;
                for (size_t i = 0; i < n; i++)
                    bad += !(a[i] >= 0.0f && a[i] <= 1.0f);
                if (bad)
                    TEST_FAIL_("%s %dx%dx%d severity %d: %d pixels outside [0, 1]", MINE[k].name,
                               c, h, w, sev, bad);
                if (!(mse(x, a, n) > 1e-6))
                    TEST_FAIL_("%s %dx%dx%d severity %d: image unchanged", MINE[k].name, c, h, w,
                               sev);
                free(a);
                free(b);
                free(d);
            }
            free(x);
        }
}

/* Bright and dark extremes stay in [0, 1] (snow adds, the blurs clip). */
TEST(extremes_stay_in_range)
{
    const int c = 3, h = 32, w = 32;
    const size_t n = (size_t)c * h * w;
    for (int k = 0; k < N_MINE; k++)
        for (int v = 0; v <= 1; v++) {
            float *x = malloc(n * sizeof(float));
            for (size_t i = 0; i < n; i++)
                x[i] = (float)((i / 7 + i / w) % 2 == 0 ? v : 1 - v);
            for (int sev = 1; sev <= 5; sev++) {
                float *y = copy_of(x, n);
                CHECK_EQ_INT(apply(MINE[k].fn, y, c, h, w, sev, 5), 0);
                for (size_t i = 0; i < n; i++)
                    if (!(y[i] >= 0.0f && y[i] <= 1.0f)) {
                        TEST_FAIL_("%s severity %d: %g", MINE[k].name, sev, y[i]);
                        break;
                    }
                free(y);
            }
            free(x);
        }
}

TEST_MAIN(TEST_ENTRY(padding_rules), TEST_ENTRY(gaussian_filter_is_the_direct_2d_gaussian),
          TEST_ENTRY(scale_rule), TEST_ENTRY(defocus_is_the_disk_convolution),
          TEST_ENTRY(motion_blur_of_a_point_is_the_line_kernel),
          TEST_ENTRY(motion_blur_is_the_correlation_with_its_point_response),
          TEST_ENTRY(zoom_blur_is_the_mean_of_centre_zooms),
          TEST_ENTRY(zoom_blur_keeps_constants_and_symmetry),
          TEST_ENTRY(glass_blur_shuffles_locally), TEST_ENTRY(elastic_keeps_constants),
          TEST_ENTRY(elastic_displacement_is_bounded), TEST_ENTRY(snow_brightens),
          TEST_ENTRY(severity_increases_distortion),
          TEST_ENTRY(elastic_field_grows_with_severity),
          TEST_ENTRY(deterministic_in_range_any_shape),
          TEST_ENTRY(extremes_stay_in_range))
