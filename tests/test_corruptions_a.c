/* test_corruptions_a.c: nine of the common corruptions of CIFAR-10-C (Hendrycks and Dietterich,
 * ICLR 2019) against their definitions, on images built here: contrast and brightness by their
 * formulas, the noises by their moments, JPEG against libjpeg called directly, pixelate by its
 * blocks; and for each of the nine, severity monotone in the distortion, the same bytes from the
 * same seed, outputs in [0, 1], grey, colour and odd sizes, and bad input refused. */
#include "test.h"

#include "advtrain.h"
#include "corrupt/corruption.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <jpeglib.h>

static const char *const mine[] = {"gaussian_noise", "shot_noise", "impulse_noise", "brightness",
                                   "contrast",       "pixelate",   "jpeg_compression", "fog",
                                   "frost"};
enum { N_MINE = (int)(sizeof mine / sizeof mine[0]) };

static int random_kind(const char *name)
{
    return !strcmp(name, "gaussian_noise") || !strcmp(name, "shot_noise") ||
           !strcmp(name, "impulse_noise") || !strcmp(name, "fog") || !strcmp(name, "frost");
}

/* A textured test image [c, h, w] with values k / 255 in [lo, hi]: smooth waves (different per
 * channel and per `which`) plus pixel noise, so blocks, edges and colours all occur. */
static float *test_image(int c, int h, int w, int which, double lo, double hi)
{
    float *x = malloc((size_t)c * h * w * sizeof(float));
    at_rng rng;
    at_rng_stream(&rng, 1234, (uint64_t)which, 0);
    for (int ch = 0; ch < c; ch++)
        for (int i = 0; i < h; i++)
            for (int j = 0; j < w; j++) {
                double v = 0.5 + 0.3 * sin(0.37 * (i + 1) * (1 + which % 3) + ch) *
                                     cos(0.23 * (j + 2) * (1 + ch) + which) +
                           0.2 * (at_rng_uniform(&rng) - 0.5);
                v = v < 0.0 ? 0.0 : v > 1.0 ? 1.0 : v;
                v = lo + (hi - lo) * v;
                x[((size_t)ch * h + i) * w + j] = (float)(round(v * 255.0) / 255.0);
            }
    return x;
}

static float *copy_of(const float *x, size_t count)
{
    float *y = malloc(count * sizeof(float));
    memcpy(y, x, count * sizeof(float));
    return y;
}

/* Corrupts a copy of x through the public call; NULL (and a failure) when it fails. */
static float *corrupted(const char *name, int severity, const float *x, int c, int h, int w,
                        uint64_t seed)
{
    const size_t count = (size_t)c * h * w;
    float *y = copy_of(x, count);
    at_error err;
    int k = at_corruption_find(name);
    if (k < 0 || at_corrupt_images(k, severity, y, 1, c, h, w, seed, 0, &err)) {
        TEST_FAIL_("%s severity %d on %dx%dx%d: %s", name, severity, c, h, w,
                   k < 0 ? "not in the table" : err.message);
        free(y);
        return NULL;
    }
    return y;
}

static double mse(const float *a, const float *b, size_t count)
{
    double s = 0.0;
    for (size_t i = 0; i < count; i++)
        s += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
    return s / (double)count;
}

/* ---- definitions -------------------------------------------------------------------------- */

TEST(contrast_is_the_formula)
{
    static const double k[5] = {0.75, 0.5, 0.4, 0.3, 0.15};
    const int c = 3, h = 20, w = 36;
    float *x = test_image(c, h, w, 1, 0.0, 1.0);
    for (int s = 1; s <= 5; s++) {
        float *y = corrupted("contrast", s, x, c, h, w, 0);
        REQUIRE(y);
        double worst = 0.0;
        for (int ch = 0; ch < c; ch++) {
            const float *xc = x + (size_t)ch * h * w, *yc = y + (size_t)ch * h * w;
            double mean = 0.0;
            for (int p = 0; p < h * w; p++)
                mean += xc[p];
            mean /= h * w;
            for (int p = 0; p < h * w; p++) {
                double want = fmin(1.0, fmax(0.0, (xc[p] - mean) * k[s - 1] + mean));
                worst = fmax(worst, fabs(yc[p] - want));
            }
        }
        CHECK(worst <= 1e-7); /* float rounding of the double result */
        free(y);
    }
    free(x);
}

TEST(brightness_on_grey_adds_and_clips)
{
    static const double b[5] = {0.05, 0.1, 0.15, 0.2, 0.3};
    const int h = 28, w = 28;
    float *x = test_image(1, h, w, 2, 0.0, 1.0);
    for (int s = 1; s <= 5; s++) {
        float *y = corrupted("brightness", s, x, 1, h, w, 0);
        REQUIRE(y);
        int clipped = 0;
        for (int p = 0; p < h * w; p++) {
            CHECK_CLOSE(y[p], fmin(1.0, x[p] + b[s - 1]), 1e-7, 0);
            clipped += x[p] + b[s - 1] > 1.0;
        }
        if (s == 5)
            CHECK(clipped > 0); /* the clip was exercised */
        free(y);
    }
    free(x);
}

/* HSV as the textbook defines it (hue in turns), written independently of the library's. */
static void hsv(double r, double g, double b, double *hue, double *sat, double *val, double *delta)
{
    double max = fmax(r, fmax(g, b)), min = fmin(r, fmin(g, b));
    *val = max;
    *delta = max - min;
    *sat = max > 0.0 ? (max - min) / max : 0.0;
    double hh = 0.0;
    if (max > min) {
        if (max == r)
            hh = fmod((g - b) / (max - min) + 6.0, 6.0);
        else if (max == g)
            hh = (b - r) / (max - min) + 2.0;
        else
            hh = (r - g) / (max - min) + 4.0;
    }
    *hue = hh / 6.0;
}

TEST(brightness_on_colour_keeps_hue_and_saturation)
{
    static const double b[5] = {0.05, 0.1, 0.15, 0.2, 0.3};
    const int h = 32, w = 32, plane = h * w;
    float *x = malloc(3 * plane * sizeof(float));
    at_rng rng;
    at_rng_seed(&rng, 7);
    for (int k = 0; k < 3 * plane; k++)
        x[k] = (float)at_rng_uniform(&rng);
    for (int s = 1; s <= 5; s++) {
        float *y = corrupted("brightness", s, x, 3, h, w, 0);
        REQUIRE(y);
        int checked_hue = 0, reached_one = 0;
        for (int p = 0; p < plane; p++) {
            double h0, s0, v0, d0, h1, s1, v1, d1;
            hsv(x[p], x[plane + p], x[2 * plane + p], &h0, &s0, &v0, &d0);
            hsv(y[p], y[plane + p], y[2 * plane + p], &h1, &s1, &v1, &d1);
            CHECK_CLOSE(v1, fmin(1.0, v0 + b[s - 1]), 1e-6, 0);
            reached_one += v0 + b[s - 1] >= 1.0;
            CHECK_CLOSE(s1, s0, 1e-5, 0);
            if (d0 > 0.05) { /* hue is ill-conditioned for nearly grey pixels */
                double turn = fabs(h1 - h0);
                CHECK(fmin(turn, 1.0 - turn) < 1e-5);
                checked_hue++;
            }
        }
        CHECK(checked_hue > plane / 2);
        CHECK(reached_one > 0);
        free(y);
    }
    free(x);
}

TEST(gaussian_noise_has_its_moments)
{
    static const double sigma[5] = {0.04, 0.06, 0.08, 0.09, 0.10};
    const int h = 200, w = 200, n = h * w;
    float *x = malloc(n * sizeof(float));
    for (int p = 0; p < n; p++)
        x[p] = 0.5f; /* 5 sigma from both ends: clipping is negligible */
    for (int s = 1; s <= 5; s++) {
        float *y = corrupted("gaussian_noise", s, x, 1, h, w, 11);
        REQUIRE(y);
        double sum = 0.0, sq = 0.0;
        for (int p = 0; p < n; p++) {
            double d = (double)y[p] - x[p];
            sum += d;
            sq += d * d;
        }
        double mean = sum / n, sd = sqrt(sq / n - mean * mean), sg = sigma[s - 1];
        /* 5 standard errors: sigma / sqrt(n) for the mean, sigma / sqrt(2n) for the sd */
        CHECK(fabs(mean) < 5.0 * sg / sqrt(n));
        CHECK(fabs(sd - sg) < 5.0 * sg / sqrt(2.0 * n));
        free(y);
    }
    free(x);
}

TEST(shot_noise_is_poisson)
{
    static const double lambda[5] = {500, 250, 100, 75, 50};
    const int h = 200, w = 200, n = h * w;
    /* means of 250 and 25 (the rejection sampler) and 5 (the multiplicative one) */
    const struct { int severity; float level; } cases[] = {{1, 0.5f}, {5, 0.5f}, {5, 0.1f}, {3, 0.02f}};
    float *x = malloc(n * sizeof(float));
    for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
        const double c = lambda[cases[t].severity - 1], mu = cases[t].level * c;
        for (int p = 0; p < n; p++)
            x[p] = cases[t].level;
        float *y = corrupted("shot_noise", cases[t].severity, x, 1, h, w, 5);
        REQUIRE(y);
        double sum = 0.0, sq = 0.0, off_integer = 0.0;
        enum { BINS = 512 };
        static long seen[BINS];
        memset(seen, 0, sizeof seen);
        for (int p = 0; p < n; p++) {
            double k = (double)y[p] * c; /* the photon count */
            off_integer = fmax(off_integer, fabs(k - round(k)));
            sum += k;
            sq += k * k;
            seen[(long)round(k) < BINS ? (long)round(k) : BINS - 1]++;
        }
        double mean = sum / n, var = sq / n - mean * mean;
        CHECK(off_integer < 1e-3);
        /* Poisson: mean = variance = mu; standard errors sqrt(mu / n) and sqrt((mu + 2 mu^2) / n) */
        CHECK(fabs(mean - mu) < 5.0 * sqrt(mu / n));
        CHECK(fabs(var - mu) < 5.0 * sqrt((mu + 2.0 * mu * mu) / n));
        /* and the whole distribution: Pearson's chi-square over the counts expected 5 times or
         * more (the rest pooled in one cell), under 5 standard deviations above its mean */
        double chi2 = 0.0, pooled_expected = 0.0, pooled_seen = 0.0;
        int cells = 0;
        for (int k = 0; k < BINS; k++) {
            double expected = n * exp(k * log(mu) - mu - lgamma(k + 1.0));
            if (expected >= 5.0) {
                chi2 += (seen[k] - expected) * (seen[k] - expected) / expected;
                cells++;
            } else {
                pooled_expected += expected;
                pooled_seen += seen[k];
            }
        }
        if (pooled_expected >= 5.0) {
            chi2 += (pooled_seen - pooled_expected) * (pooled_seen - pooled_expected) / pooled_expected;
            cells++;
        }
        const double df = cells - 1;
        if (!(chi2 < df + 5.0 * sqrt(2.0 * df)))
            TEST_FAIL_("shot noise mean %g: chi-square %.1f on %.0f degrees of freedom", mu, chi2, df);
        free(y);
    }
    free(x);
}

TEST(impulse_noise_flips_its_share_per_channel)
{
    static const double amount[5] = {0.01, 0.02, 0.03, 0.05, 0.07};
    const int h = 100, w = 100, plane = h * w;
    float *x = malloc(3 * plane * sizeof(float));
    for (int k = 0; k < 3 * plane; k++)
        x[k] = 0.5f;
    for (int s = 1; s <= 5; s++) {
        const double a = amount[s - 1];
        float *y = corrupted("impulse_noise", s, x, 3, h, w, 3);
        REQUIRE(y);
        int flipped = 0, salt = 0, other = 0, any_channel = 0;
        for (int p = 0; p < plane; p++) {
            int here = 0;
            for (int ch = 0; ch < 3; ch++) {
                float v = y[ch * plane + p];
                flipped += v == 0.0f || v == 1.0f;
                salt += v == 1.0f;
                other += v != 0.0f && v != 1.0f && v != 0.5f;
                here += v != 0.5f;
            }
            any_channel += here > 0;
        }
        const double n = 3.0 * plane;
        CHECK_EQ_INT(other, 0);
        CHECK(fabs(flipped / n - a) < 5.0 * sqrt(a * (1 - a) / n));
        CHECK(fabs(salt - flipped / 2.0) < 5.0 * sqrt(flipped / 4.0));
        /* channels flip independently: a pixel is touched with 1 - (1 - a)^3, not a */
        const double touched = 1.0 - pow(1.0 - a, 3.0);
        CHECK(fabs(any_channel / (double)plane - touched) <
              5.0 * sqrt(touched * (1 - touched) / plane));
        free(y);
    }
    free(x);
}

/* ---- JPEG against libjpeg itself ---------------------------------------------------------- */

/* Encodes 8-bit [h, w, c] at `quality` with libjpeg's defaults and decodes it back in place. */
static void libjpeg_roundtrip(uint8_t *pixels, int c, int h, int w, int quality)
{
    struct jpeg_compress_struct enc;
    struct jpeg_decompress_struct dec;
    struct jpeg_error_mgr e1, e2;
    unsigned char *file = NULL;
    unsigned long bytes = 0;
    enc.err = jpeg_std_error(&e1);
    jpeg_create_compress(&enc);
    jpeg_mem_dest(&enc, &file, &bytes);
    enc.image_width = (JDIMENSION)w;
    enc.image_height = (JDIMENSION)h;
    enc.input_components = c;
    enc.in_color_space = c == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_set_defaults(&enc);
    jpeg_set_quality(&enc, quality, TRUE);
    jpeg_start_compress(&enc, TRUE);
    for (int i = 0; i < h; i++) {
        JSAMPROW row = pixels + (size_t)i * w * c;
        jpeg_write_scanlines(&enc, &row, 1);
    }
    jpeg_finish_compress(&enc);
    jpeg_destroy_compress(&enc);
    dec.err = jpeg_std_error(&e2);
    jpeg_create_decompress(&dec);
    jpeg_mem_src(&dec, file, bytes);
    jpeg_read_header(&dec, TRUE);
    jpeg_start_decompress(&dec);
    for (int i = 0; i < h; i++) {
        JSAMPROW row = pixels + (size_t)i * w * c;
        jpeg_read_scanlines(&dec, &row, 1);
    }
    jpeg_finish_decompress(&dec);
    jpeg_destroy_decompress(&dec);
    free(file);
}

TEST(jpeg_is_libjpeg_at_the_table_quality)
{
    static const int quality[5] = {80, 65, 58, 50, 40};
    const int shapes[][3] = {{1, 28, 28}, {3, 32, 32}, {3, 20, 36}, {1, 7, 5}};
    for (size_t t = 0; t < sizeof shapes / sizeof shapes[0]; t++) {
        const int c = shapes[t][0], h = shapes[t][1], w = shapes[t][2], plane = h * w;
        float *x = test_image(c, h, w, (int)t, 0.0, 1.0);
        uint8_t *pixels = malloc((size_t)c * plane);
        for (int s = 1; s <= 5; s++) {
            for (int p = 0; p < plane; p++)
                for (int ch = 0; ch < c; ch++)
                    pixels[p * c + ch] = (uint8_t)lround(x[ch * plane + p] * 255.0);
            libjpeg_roundtrip(pixels, c, h, w, quality[s - 1]);
            float *y = corrupted("jpeg_compression", s, x, c, h, w, 0);
            REQUIRE(y);
            int differ = 0, changed = 0;
            for (int p = 0; p < plane; p++)
                for (int ch = 0; ch < c; ch++) {
                    differ += y[ch * plane + p] != pixels[p * c + ch] / 255.0f;
                    changed += y[ch * plane + p] != x[ch * plane + p];
                }
            CHECK_EQ_INT(differ, 0);
            CHECK(changed > 0);
            free(y);
        }
        free(pixels);
        free(x);
    }
}

TEST(jpeg_errors_come_back_as_errors)
{
    /* 70000 rows are over JPEG's limit of 65500: libjpeg's own error, returned, not exit() */
    const int h = 70000;
    float *x = calloc(h, sizeof(float));
    at_error err;
    int status = at_corrupt_images(at_corruption_find("jpeg_compression"), 3, x, 1, 1, h, 1, 0, 0,
                                   &err);
    CHECK(status < 0);
    CHECK(status < 0 && strstr(err.message, "jpeg_compression") && strstr(err.message, "65500"));
    free(x);
}

/* ---- pixelate ------------------------------------------------------------------------------ */

TEST(pixelate_is_constant_blocks_of_means_when_sizes_divide)
{
    /* severity 5 keeps (int)(0.65 n) pixels: 4 -> 2, 6 -> 3, 2 -> 1, so the blocks are 2 x 2 */
    const int shapes[][3] = {{1, 4, 4}, {3, 6, 6}, {1, 4, 6}, {3, 2, 2}};
    for (size_t t = 0; t < sizeof shapes / sizeof shapes[0]; t++) {
        const int c = shapes[t][0], h = shapes[t][1], w = shapes[t][2];
        float *x = test_image(c, h, w, 3 + (int)t, 0.0, 1.0);
        float *y = corrupted("pixelate", 5, x, c, h, w, 0);
        REQUIRE(y);
        for (int ch = 0; ch < c; ch++)
            for (int i = 0; i < h; i++)
                for (int j = 0; j < w; j++) {
                    const float *xc = x + (size_t)ch * h * w;
                    const int bi = i / 2 * 2, bj = j / 2 * 2;
                    double mean = (xc[bi * w + bj] + xc[bi * w + bj + 1] + xc[(bi + 1) * w + bj] +
                                   xc[(bi + 1) * w + bj + 1]) / 4.0;
                    CHECK_CLOSE(y[((size_t)ch * h + i) * w + j], mean, 1e-6, 0);
                }
        free(x);
        free(y);
    }
}

TEST(pixelate_keeps_as_many_values_as_the_small_image)
{
    /* at 32 x 32 the image passes through (int)(32 k) pixels a side, so no output row or column
     * has more distinct values than that, and a constant image stays as it is */
    static const double k[5] = {0.95, 0.9, 0.85, 0.75, 0.65};
    const int n = 32;
    float *x = malloc(n * n * sizeof(float));
    for (int p = 0; p < n * n; p++)
        x[p] = (float)p / (n * n); /* all distinct */
    for (int s = 1; s <= 5; s++) {
        const int small = (int)(n * k[s - 1]);
        float *y = corrupted("pixelate", s, x, 1, n, n, 0);
        REQUIRE(y);
        int most_row = 0, most_col = 0;
        for (int i = 0; i < n; i++) {
            int row = 0, col = 0;
            for (int j = 0; j < n; j++) {
                row += j == 0 || y[i * n + j] != y[i * n + j - 1];
                col += j == 0 || y[j * n + i] != y[(j - 1) * n + i];
            }
            most_row = row > most_row ? row : most_row;
            most_col = col > most_col ? col : most_col;
        }
        CHECK_EQ_INT(most_row, small);
        CHECK_EQ_INT(most_col, small);
        free(y);
    }
    for (int p = 0; p < n * n; p++)
        x[p] = 0.25f;
    float *y = corrupted("pixelate", 4, x, 1, n, n, 0);
    REQUIRE(y);
    CHECK(memcmp(x, y, n * n * sizeof(float)) == 0);
    free(y);
    free(x);
}

/* ---- every corruption ------------------------------------------------------------------ */

/* The function behind a name, to call it with an rng of the test's choosing. */
static at_corrupt_fn function_of(const char *name)
{
    static const struct { const char *name; at_corrupt_fn fn; } table[] = {
        {"gaussian_noise", at_corrupt_gaussian_noise}, {"shot_noise", at_corrupt_shot_noise},
        {"impulse_noise", at_corrupt_impulse_noise},   {"brightness", at_corrupt_brightness},
        {"contrast", at_corrupt_contrast},             {"pixelate", at_corrupt_pixelate},
        {"jpeg_compression", at_corrupt_jpeg_compression}, {"fog", at_corrupt_fog},
        {"frost", at_corrupt_frost}};
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (!strcmp(table[i].name, name))
            return table[i].fn;
    return NULL;
}

/* Mean squared distortion and correlation with the clean image at each severity, averaged over
 * a few images, grey and colour, with pixels in [lo, hi]. Each image gets the same random stream
 * at every severity (the function is called directly with a fresh copy of one rng), so the
 * comparison is of the severities and not of the draws. */
static void distortions(const char *name, double lo, double hi, double out[5], double corr[5])
{
    const at_corrupt_fn fn = function_of(name);
    const int shapes[][3] = {{1, 28, 28}, {3, 32, 32}, {1, 32, 32}, {3, 20, 36}};
    for (int s = 0; s < 5; s++)
        out[s] = corr[s] = 0.0;
    int images = 0;
    for (size_t t = 0; t < sizeof shapes / sizeof shapes[0]; t++)
        for (int which = 0; which < 3; which++, images++) {
            const int c = shapes[t][0], h = shapes[t][1], w = shapes[t][2];
            const size_t count = (size_t)c * h * w;
            float *x = test_image(c, h, w, which + 10 * (int)t, lo, hi);
            for (int s = 1; s <= 5; s++) {
                float *y = copy_of(x, count);
                at_error err;
                at_rng rng;
                at_rng_stream(&rng, 99, (uint64_t)images, 0);
                CHECK_OK(fn(y, c, h, w, s, &rng, &err), &err);
                out[s - 1] += mse(x, y, count);
                double mx = 0, my = 0, sxy = 0, sxx = 0, syy = 0;
                for (size_t i = 0; i < count; i++)
                    mx += x[i], my += y[i];
                mx /= count, my /= count;
                for (size_t i = 0; i < count; i++) {
                    sxy += (x[i] - mx) * (y[i] - my);
                    sxx += (x[i] - mx) * (x[i] - mx);
                    syy += (y[i] - my) * (y[i] - my);
                }
                corr[s - 1] += sxy / sqrt(sxx * syy);
                free(y);
            }
            free(x);
        }
    for (int s = 0; s < 5; s++)
        out[s] /= images, corr[s] /= images;
}

TEST(severity_is_monotone_in_the_distortion)
{
    for (int m = 0; m < N_MINE; m++) {
        double d[5], corr[5];
        distortions(mine[m], 0.0, 1.0, d, corr);
        printf("  %-17s mse by severity %.5f %.5f %.5f %.5f %.5f\n", mine[m], d[0], d[1], d[2],
               d[3], d[4]);
        for (int s = 1; s < 5; s++) {
            if (!strcmp(mine[m], "frost") && s >= 3)
                continue; /* the published table: see frost_loses_the_image_at_every_severity */
            if (!(d[s] > d[s - 1]))
                TEST_FAIL_("%s: distortion at severity %d (%.6f) not above %d (%.6f)", mine[m],
                           s + 1, d[s], s, d[s - 1]);
        }
    }
}

TEST(frost_loses_the_image_at_every_severity)
{
    /* x' = a x + b F: past severity 3 the table lowers the image's weight a faster than it
     * raises the frost's b (0.9, 0.85, 0.75 against 0.4, 0.4, 0.45), so the squared distance to
     * the clean image b F - (1 - a) x can fall there (frost.c); what rises at every step is the
     * frost's share b / (a + b), so the correlation with the clean image falls (measured on dark
     * images, where nothing clips). */
    double d[5], corr[5];
    distortions("frost", 0.0, 0.4, d, corr);
    printf("  frost correlation by severity %.4f %.4f %.4f %.4f %.4f\n", corr[0], corr[1],
           corr[2], corr[3], corr[4]);
    for (int s = 1; s < 5; s++)
        CHECK(corr[s] < corr[s - 1]);
}

TEST(same_seed_same_bytes_other_seed_other_noise)
{
    const int c = 3, h = 20, w = 36;
    const size_t count = (size_t)c * h * w;
    float *x = test_image(c, h, w, 4, 0.0, 1.0);
    for (int m = 0; m < N_MINE; m++)
        for (int s = 1; s <= 5; s += 2) {
            float *a = corrupted(mine[m], s, x, c, h, w, 42);
            float *b = corrupted(mine[m], s, x, c, h, w, 42);
            float *o = corrupted(mine[m], s, x, c, h, w, 43);
            REQUIRE(a && b && o);
            CHECK(memcmp(a, b, count * sizeof(float)) == 0);
            if (random_kind(mine[m]))
                CHECK(memcmp(a, o, count * sizeof(float)) != 0);
            else
                CHECK(memcmp(a, o, count * sizeof(float)) == 0);
            CHECK(memcmp(a, x, count * sizeof(float)) != 0);
            free(a);
            free(b);
            free(o);
        }
    free(x);
}

TEST(any_size_grey_or_colour_stays_in_range)
{
    const int shapes[][3] = {{1, 28, 28}, {3, 32, 32}, {1, 20, 36}, {3, 36, 20}, {3, 1, 1},
                             {1, 7, 5},   {3, 64, 48}};
    for (size_t t = 0; t < sizeof shapes / sizeof shapes[0]; t++) {
        const int c = shapes[t][0], h = shapes[t][1], w = shapes[t][2];
        const size_t count = (size_t)c * h * w;
        float *x = test_image(c, h, w, 5 + (int)t, 0.0, 1.0);
        for (int m = 0; m < N_MINE; m++)
            for (int s = 1; s <= 5; s++) {
                float *y = corrupted(mine[m], s, x, c, h, w, 8);
                REQUIRE(y);
                size_t outside = 0;
                for (size_t i = 0; i < count; i++)
                    outside += !(y[i] >= 0.0f && y[i] <= 1.0f);
                if (outside)
                    TEST_FAIL_("%s severity %d on %dx%dx%d: %zu pixels outside [0, 1]", mine[m], s,
                               c, h, w, outside);
                free(y);
            }
        free(x);
    }
}

TEST(bad_input_is_refused)
{
    const int h = 8, w = 8;
    float x[3 * 8 * 8];
    at_error err;
    for (int m = 0; m < N_MINE; m++) {
        const int k = at_corruption_find(mine[m]);
        REQUIRE(k >= 0);
        CHECK_STR_EQ(at_corruption_name(k), mine[m]);
        for (int i = 0; i < 3 * h * w; i++)
            x[i] = 0.5f;
        CHECK_EQ_INT(at_corrupt_images(k, 0, x, 1, 1, h, w, 0, 0, &err), AT_ERR_ARG);
        CHECK(strstr(err.message, "severity 0") != NULL);
        CHECK_EQ_INT(at_corrupt_images(k, 6, x, 1, 1, h, w, 0, 0, &err), AT_ERR_ARG);
        CHECK_EQ_INT(at_corrupt_images(k, 3, x, 1, 2, h, w, 0, 0, &err), AT_ERR_ARG);
        CHECK_EQ_INT(at_corrupt_images(k, 3, x, 1, 3, 0, w, 0, 0, &err), AT_ERR_ARG);
        x[17] = 1.5f;
        CHECK_EQ_INT(at_corrupt_images(k, 3, x, 1, 1, h, w, 0, 0, &err), AT_ERR_ARG);
        CHECK(strstr(err.message, "outside [0, 1]") != NULL);
        x[17] = -0.01f;
        CHECK_EQ_INT(at_corrupt_images(k, 3, x, 1, 1, h, w, 0, 0, &err), AT_ERR_ARG);
        x[17] = NAN;
        CHECK_EQ_INT(at_corrupt_images(k, 3, x, 1, 1, h, w, 0, 0, &err), AT_ERR_ARG);
    }
    CHECK_EQ_INT(at_corruption_find("gaussian"), AT_ERR_NOTFOUND);
}

TEST_MAIN(TEST_ENTRY(contrast_is_the_formula), TEST_ENTRY(brightness_on_grey_adds_and_clips),
          TEST_ENTRY(brightness_on_colour_keeps_hue_and_saturation),
          TEST_ENTRY(gaussian_noise_has_its_moments), TEST_ENTRY(shot_noise_is_poisson),
          TEST_ENTRY(impulse_noise_flips_its_share_per_channel),
          TEST_ENTRY(jpeg_is_libjpeg_at_the_table_quality),
          TEST_ENTRY(jpeg_errors_come_back_as_errors),
          TEST_ENTRY(pixelate_is_constant_blocks_of_means_when_sizes_divide),
          TEST_ENTRY(pixelate_keeps_as_many_values_as_the_small_image),
          TEST_ENTRY(severity_is_monotone_in_the_distortion),
          TEST_ENTRY(frost_loses_the_image_at_every_severity),
          TEST_ENTRY(same_seed_same_bytes_other_seed_other_noise),
          TEST_ENTRY(any_size_grey_or_colour_stays_in_range), TEST_ENTRY(bad_input_is_refused))
