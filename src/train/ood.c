/* ood.c: out-of-distribution images for OAT (Lee et al., "Removing Undesirable Feature
 * Contributions Using Out-of-Distribution Data", ICLR 2021, Sec. 4). The paper draws them from
 * 80M TinyImages, which is withdrawn; its point is that even weakly related images carry the
 * undesirable features, so advtrain offers procedural sources beside any data set of the right
 * shape: Gaussian noise images, patch-shuffled training images (local statistics of the data,
 * no object), and random textures (sums of oriented sinusoidal gratings). */
#include "train/batch.h"

#include <math.h>
#include <string.h>

static float clamp01(double v) { return v < 0.0 ? 0.0f : (v > 1.0 ? 1.0f : (float)v); }

/* mu ~ U(0, 1) and sigma ~ U(0, 0.5) per image, then independent N(mu, sigma^2) pixels. */
static void gaussian(float *x, size_t image, at_rng *rng)
{
    const double mu = at_rng_uniform(rng), sigma = 0.5 * at_rng_uniform(rng);
    for (size_t j = 0; j < image; j++)
        x[j] = clamp01(mu + sigma * at_rng_normal(rng));
}

/* A random training image cut into a 4x4 grid of patches (the last row and column of patches
 * take the remainder when the size is not a multiple of 4), the patches of equal size
 * permuted among themselves. */
static void shuffle(float *x, const at_dataset *train, at_rng *rng)
{
    const int c = train->c, h = train->h, w = train->w, grid = 4;
    const int ph = h / grid, pw = w / grid;
    const size_t image = (size_t)c * h * w;
    const uint8_t *src = train->images + (size_t)at_rng_below(rng, (uint32_t)train->n) * image;
    for (size_t j = 0; j < image; j++)
        x[j] = (float)src[j] / 255.0f;
    if (ph < 1 || pw < 1)
        return;
    /* only the full-size patches (rows and columns 0..2, plus row/column 3 when they divide
     * evenly) trade places; with an even split all 16 do */
    const bool even = h % grid == 0 && w % grid == 0;
    const int movable = even ? 16 : 9;
    int32_t cells[16], perm[16];
    for (int i = 0, m = 0; i < 16; i++)
        if (even || (i / grid < 3 && i % grid < 3))
            cells[m++] = i;
    memcpy(perm, cells, sizeof perm);
    at_rng_shuffle(rng, perm, (size_t)movable);
    for (int ch = 0; ch < c; ch++) {
        const uint8_t *plane = src + (size_t)ch * h * w;
        float *out = x + (size_t)ch * h * w;
        for (int i = 0; i < movable; i++) {
            const int to = cells[i], from = perm[i];
            const int tr = to / grid * ph, tc = to % grid * pw, fr = from / grid * ph, fc = from % grid * pw;
            for (int r = 0; r < ph; r++)
                for (int q = 0; q < pw; q++)
                    out[(size_t)(tr + r) * w + tc + q] = (float)plane[(size_t)(fr + r) * w + fc + q] / 255.0f;
        }
    }
}

/* Per channel: the sum of three gratings of random spatial frequency (1 to 8 cycles across the
 * image), orientation, phase and amplitude, rescaled to a random contrast around a random
 * mean. */
static void texture(float *x, int c, int h, int w, at_rng *rng)
{
    const double pi = 3.14159265358979323846;
    for (int ch = 0; ch < c; ch++) {
        double fy[3], fx[3], phase[3], amp[3];
        for (int g = 0; g < 3; g++) {
            double f = 1.0 + 7.0 * at_rng_uniform(rng), theta = pi * at_rng_uniform(rng);
            fy[g] = 2.0 * pi * f * sin(theta) / h;
            fx[g] = 2.0 * pi * f * cos(theta) / w;
            phase[g] = 2.0 * pi * at_rng_uniform(rng);
            amp[g] = at_rng_uniform(rng);
        }
        const double mean = at_rng_uniform(rng), contrast = at_rng_uniform(rng);
        double norm = amp[0] + amp[1] + amp[2] + 1e-12;
        float *out = x + (size_t)ch * h * w;
        for (int r = 0; r < h; r++)
            for (int q = 0; q < w; q++) {
                double v = 0.0;
                for (int g = 0; g < 3; g++)
                    v += amp[g] * sin(fy[g] * r + fx[g] * q + phase[g]);
                out[(size_t)r * w + q] = clamp01(mean + 0.5 * contrast * v / norm);
            }
    }
}

void at_ood_fill(at_ood_source source, const at_dataset *train, const at_dataset *data, int n,
                 float *x, at_rng *rng)
{
    const size_t image = (size_t)train->c * train->h * train->w;
    for (int i = 0; i < n; i++) {
        float *xi = x + (size_t)i * image;
        switch (source) {
        case AT_OOD_GAUSSIAN: gaussian(xi, image, rng); break;
        case AT_OOD_SHUFFLE: shuffle(xi, train, rng); break;
        case AT_OOD_TEXTURES: texture(xi, train->c, train->h, train->w, rng); break;
        case AT_OOD_DATA: {
            const uint8_t *src = data->images + (size_t)at_rng_below(rng, (uint32_t)data->n) * image;
            for (size_t j = 0; j < image; j++)
                xi[j] = (float)src[j] / 255.0f;
            break;
        }
        case AT_OOD_NONE: memset(xi, 0, image * sizeof(float)); break;
        }
    }
}

const char *at_ood_source_name(at_ood_source s)
{
    static const char *const names[] = {"none", "gaussian", "shuffle", "textures", "data"};
    return (unsigned)s < sizeof names / sizeof names[0] ? names[s] : "?";
}
