/* test_augmix_ops.c: AugMix's operations against their definitions on small images built here
 * (autocontrast's min -> 0 and max -> 1 per channel, solarize's inversion above the threshold,
 * posterize's top bits of 8-bit levels, equalize's flat histogram, rotations and translations as
 * index maps with zero fill, shear 0 as the identity), the random operations' ranges, and
 * augment-and-mix: convex in the original and the chain images, determined by the seed. */
#include "test.h"

#include "advtrain.h"
#include "data/augmix.h"

#include <stdlib.h>

static void random_image(float *x, size_t n, uint64_t seed)
{
    at_rng r;
    at_rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++)
        x[i] = (float)at_rng_below(&r, 256) / 255.0f;
}

TEST(autocontrast_stretches_each_channel_to_zero_one)
{
    enum { C = 3, H = 4, W = 5, P = H * W };
    float x[C * P], y[C * P];
    for (int i = 0; i < P; i++) {
        x[i] = 0.2f + 0.3f * i / (P - 1);       /* [0.2, 0.5] */
        x[P + i] = 0.9f - 0.8f * (i % 7) / 6.0f; /* [0.1, 0.9] */
        x[2 * P + i] = 0.4f;                     /* constant: left alone */
    }
    memcpy(y, x, sizeof x);
    at_augmix_autocontrast(y, C, H, W);
    for (int i = 0; i < P; i++) {
        CHECK_CLOSE(y[i], (x[i] - 0.2) / 0.3, 1e-5, 0);
        CHECK_CLOSE(y[P + i], (x[P + i] - 0.1) / 0.8, 1e-5, 0);
        CHECK(y[2 * P + i] == 0.4f);
    }
    CHECK_CLOSE(y[0], 0.0, 1e-6, 0);
    CHECK_CLOSE(y[P - 1], 1.0, 1e-6, 0);
}

/* a 16 x 16 grey image holding every 8-bit level once */
static void level_ramp(float *x)
{
    for (int q = 0; q < 256; q++)
        x[q] = q / 255.0f;
}

TEST(solarize_inverts_the_levels_at_or_above_the_threshold)
{
    float x[256];
    for (int threshold = 0; threshold <= 256; threshold += 64) {
        level_ramp(x);
        at_augmix_solarize(x, 1, 16, 16, threshold);
        for (int q = 0; q < 256; q++)
            CHECK_CLOSE(x[q] * 255.0f, q < threshold ? q : 255 - q, 1e-4, 0);
    }
}

TEST(posterize_keeps_the_top_bits)
{
    float x[256];
    for (int bits = 1; bits <= 8; bits++) {
        level_ramp(x);
        at_augmix_posterize(x, 1, 16, 16, bits);
        const int bucket = 1 << (8 - bits);
        for (int q = 0; q < 256; q++)
            CHECK_CLOSE(x[q] * 255.0f, q - q % bucket, 1e-4, 0);
    }
    /* values between levels go to their nearest level first */
    float v = 100.4f / 255.0f;
    at_augmix_posterize(&v, 1, 1, 1, 6);
    CHECK_CLOSE(v * 255.0f, 100, 1e-4, 0);
}

TEST(equalize_flattens_the_histogram_of_a_skewed_ramp)
{
    /* levels floor(255 (j / 1023)^2): half the pixels in the darkest quarter */
    enum { N = 32 * 32 };
    static float x[N];
    int before[4] = {0}, after[4] = {0};
    for (int j = 0; j < N; j++) {
        const double t = (double)j / (N - 1);
        x[j] = (float)floor(255.0 * t * t) / 255.0f;
        before[(int)(x[j] * 255.0f + 0.5f) / 64]++;
    }
    CHECK(before[0] >= N / 2 - 2);
    at_augmix_equalize(x, 1, 32, 32);
    for (int j = 0; j < N; j++) {
        const int q = (int)(x[j] * 255.0f + 0.5f);
        after[q / 64]++;
        /* a pixel's new level is its rank's share of 255, give or take the ties */
        int below = 0;
        const double level = floor(255.0 * ((double)j / (N - 1)) * ((double)j / (N - 1)));
        for (int i = 0; i < N; i++)
            below += floor(255.0 * ((double)i / (N - 1)) * ((double)i / (N - 1))) < level;
        CHECK_CLOSE(q, 255.0 * below / N, 2.0, 0);
    }
    for (int b = 0; b < 4; b++)
        CHECK(abs(after[b] - N / 4) <= N / 32);
    /* a constant image has nothing to equalise */
    float flat[64];
    for (int i = 0; i < 64; i++)
        flat[i] = 0.3f;
    at_augmix_equalize(flat, 1, 8, 8);
    for (int i = 0; i < 64; i++)
        CHECK(flat[i] == 0.3f);
}

TEST(rotations_by_quarter_turns_permute_the_pixels)
{
    enum { C = 2, N = 6, P = N * N };
    float x[C * P], y[C * P];
    random_image(x, C * P, 1);
    for (int bilinear = 0; bilinear <= 1; bilinear++) {
        /* counter-clockwise: the top-right corner goes to the top left */
        at_augmix_rotate(x, y, C, N, N, 90.0, bilinear);
        for (int ch = 0; ch < C; ch++)
            for (int r = 0; r < N; r++)
                for (int col = 0; col < N; col++)
                    CHECK(y[ch * P + r * N + col] == x[ch * P + col * N + (N - 1 - r)]);
        at_augmix_rotate(x, y, C, N, N, 180.0, bilinear);
        for (int ch = 0; ch < C; ch++)
            for (int i = 0; i < P; i++)
                CHECK(y[ch * P + i] == x[ch * P + P - 1 - i]);
        at_augmix_rotate(x, y, C, N, N, 0.0, bilinear);
        CHECK(memcmp(x, y, sizeof x) == 0);
    }
    /* a small angle moves pixels but keeps the centre's value on an odd square */
    float z[25], r[25];
    random_image(z, 25, 2);
    at_augmix_rotate(z, r, 1, 5, 5, 10.0, true);
    CHECK_CLOSE(r[12], z[12], 1e-6, 0);
    CHECK(memcmp(z, r, sizeof z) != 0);
}

TEST(translations_shift_by_whole_pixels_with_zero_fill)
{
    enum { C = 3, H = 5, W = 7, P = H * W };
    float x[C * P], y[C * P];
    random_image(x, C * P, 3);
    for (int t = -3; t <= 3; t++) {
        const double mx[6] = {1, 0, t, 0, 1, 0}, my[6] = {1, 0, 0, 0, 1, t};
        at_augmix_affine(x, y, C, H, W, mx, true);
        for (int ch = 0; ch < C; ch++)
            for (int r = 0; r < H; r++)
                for (int col = 0; col < W; col++) {
                    const int from = col + t;
                    CHECK(y[ch * P + r * W + col] ==
                          (from >= 0 && from < W ? x[ch * P + r * W + from] : 0.0f));
                }
        at_augmix_affine(x, y, C, H, W, my, false);
        for (int ch = 0; ch < C; ch++)
            for (int r = 0; r < H; r++)
                for (int col = 0; col < W; col++) {
                    const int from = r + t;
                    CHECK(y[ch * P + r * W + col] ==
                          (from >= 0 && from < H ? x[ch * P + from * W + col] : 0.0f));
                }
    }
}

TEST(shear_zero_is_the_identity_and_a_shear_moves_along_rows)
{
    enum { H = 6, W = 8, P = H * W };
    float x[P], y[P];
    random_image(x, P, 4);
    const double none[6] = {1, 0, 0, 0, 1, 0};
    at_augmix_affine(x, y, 1, H, W, none, true);
    CHECK(memcmp(x, y, sizeof x) == 0);
    /* rows constant along x: shear_x keeps each row's value where it samples inside, 0 beyond */
    for (int r = 0; r < H; r++)
        for (int col = 0; col < W; col++)
            x[r * W + col] = 0.1f + 0.15f * r;
    const double shear[6] = {1, 0.3, 0, 0, 1, 0};
    at_augmix_affine(x, y, 1, H, W, shear, true);
    for (int r = 0; r < H; r++)
        for (int col = 0; col < W; col++) {
            const bool inside = col + 0.5 + 0.3 * (r + 0.5) < W;
            CHECK_CLOSE(y[r * W + col], inside ? x[r * W] : 0.0f, 1e-6, 0);
        }
}

TEST(random_operations_keep_their_ranges)
{
    /* translate by at most int(severity * side / 3 / 10) pixels, exactly; every operation keeps
     * values in [0,1] */
    enum { C = 3, N = 32, P = N * N };
    static float x[C * P], y[C * P], tmp[C * P];
    random_image(x, C * P, 5);
    at_rng rng;
    at_rng_seed(&rng, 6);
    int seen[7] = {0};
    for (int trial = 0; trial < 200; trial++) {
        memcpy(y, x, sizeof x);
        at_augmix_apply(AT_AUGMIX_TRANSLATE_X, 3, y, tmp, C, N, N, &rng);
        int found = 0;
        for (int t = -3; t <= 3 && !found; t++) {
            int ok = 1;
            for (int ch = 0; ch < C && ok; ch++)
                for (int r = 0; r < N && ok; r++)
                    for (int col = 0; col < N && ok; col++) {
                        const int from = col + t;
                        ok = y[ch * P + r * N + col] ==
                             (from >= 0 && from < N ? x[ch * P + r * N + from] : 0.0f);
                    }
            if (ok) {
                found = 1;
                seen[t + 3]++;
            }
        }
        CHECK(found);
    }
    CHECK(seen[0] > 0 && seen[6] > 0); /* both directions, the largest shift reached */
    for (int op = 0; op < AT_AUGMIX_N_OPS; op++)
        for (int trial = 0; trial < 5; trial++) {
            memcpy(y, x, sizeof x);
            at_augmix_apply((at_augmix_op)op, 10, y, tmp, C, N, N, &rng);
            for (int i = 0; i < C * P; i++)
                CHECK(y[i] >= 0.0f && y[i] <= 1.0f);
        }
}

TEST(augment_and_mix_is_convex_and_determined_by_the_seed)
{
    enum { C = 3, H = 9, W = 7, IMG = C * H * W, WIDTH = 3 };
    float x[IMG], out[IMG], again[IMG], scratch[2 * IMG], chains[WIDTH * IMG];
    random_image(x, IMG, 7);
    const at_augmix_options o = {.severity = 3, .width = WIDTH, .depth = -1, .alpha = 1.0};
    int differs_from_x = 0;
    for (uint64_t seed = 1; seed <= 20; seed++) {
        at_rng rng;
        at_rng_seed(&rng, seed);
        at_augmix(x, out, scratch, chains, C, H, W, &o, &rng);
        for (int j = 0; j < IMG; j++) {
            float lo = x[j], hi = x[j];
            for (int i = 0; i < WIDTH; i++) {
                lo = fminf(lo, chains[i * IMG + j]);
                hi = fmaxf(hi, chains[i * IMG + j]);
            }
            CHECK(out[j] >= lo - 1e-6f && out[j] <= hi + 1e-6f);
        }
        differs_from_x += memcmp(out, x, sizeof x) != 0;
        at_rng_seed(&rng, seed);
        at_augmix(x, again, scratch, NULL, C, H, W, &o, &rng);
        CHECK(memcmp(out, again, sizeof out) == 0);
    }
    CHECK(differs_from_x >= 18);
    /* another seed, another image; a grey one of another size works too */
    at_rng a, b;
    at_rng_seed(&a, 100);
    at_rng_seed(&b, 101);
    at_augmix(x, out, scratch, NULL, C, H, W, &o, &a);
    at_augmix(x, again, scratch, NULL, C, H, W, &o, &b);
    CHECK(memcmp(out, again, sizeof out) != 0);
    at_augmix(x, out, scratch, NULL, 1, 3, 21, &(at_augmix_options){2, 1, 2, 0.5}, &a);
    for (int j = 0; j < 63; j++)
        CHECK(out[j] >= 0.0f && out[j] <= 1.0f);
}

TEST_MAIN(TEST_ENTRY(autocontrast_stretches_each_channel_to_zero_one),
          TEST_ENTRY(solarize_inverts_the_levels_at_or_above_the_threshold),
          TEST_ENTRY(posterize_keeps_the_top_bits),
          TEST_ENTRY(equalize_flattens_the_histogram_of_a_skewed_ramp),
          TEST_ENTRY(rotations_by_quarter_turns_permute_the_pixels),
          TEST_ENTRY(translations_shift_by_whole_pixels_with_zero_fill),
          TEST_ENTRY(shear_zero_is_the_identity_and_a_shear_moves_along_rows),
          TEST_ENTRY(random_operations_keep_their_ranges),
          TEST_ENTRY(augment_and_mix_is_convex_and_determined_by_the_seed))
