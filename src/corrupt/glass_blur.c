/* glass_blur.c: the glass blur of CIFAR-10-C (Hendrycks and Dietterich, ICLR 2019,
 * make_cifar_c.py): a Gaussian blur of sigma (skimage, truncate 4, edge padding), then
 * `iterations` passes of local pixel shuffling, then the same Gaussian blur again. A pass visits
 * rows y = h - d down to d + 1 and, within each, columns x = w - d down to d + 1 (their loop
 * order), draws dx then dy uniform on -d..d-1 (numpy's randint excludes the top) and swaps pixel
 * (y, x) with (y + dy, x + dx) in every channel. Sigma 0.05 (severity 1) has a Gaussian radius of
 * 0 (scipy: (int)(4 sigma + 0.5)), so severity 1 is the shuffle alone.
 *
 * Departure: the original rounds the image down to 8 bits between the first blur and the
 * shuffle; here it stays float. Other sizes: sigma and the shuffle distance d scale by
 * at_corrupt_scale (filter.h), d rounded to whole pixels; the number of passes does not. */
#include "corrupt/corruption.h"
#include "corrupt/filter.h"

#include <math.h>

static const double TABLE[5][3] = {/* sigma, max_delta, iterations */
                                   {0.05, 1, 1}, {0.25, 1, 1}, {0.4, 1, 1}, {0.25, 1, 2},
                                   {0.4, 1, 2}};

static int blur(float *image, int c, int h, int w, double sigma, at_error *err)
{
    for (int ch = 0; ch < c; ch++) {
        int rc = at_gaussian_filter(image + (size_t)ch * h * w, h, w, sigma, 4.0, AT_PAD_EDGE,
                                    err);
        if (rc < 0)
            return rc;
    }
    return 0;
}

int at_corrupt_glass_blur(float *image, int c, int h, int w, int severity, at_rng *rng,
                          at_error *err)
{
    const double s = at_corrupt_scale(h, w);
    const double sigma = TABLE[severity - 1][0] * s;
    const int d = (int)lround(TABLE[severity - 1][1] * s);
    const int iterations = (int)TABLE[severity - 1][2];
    const size_t plane = (size_t)h * w;
    int rc = blur(image, c, h, w, sigma, err);
    if (rc < 0)
        return rc;
    for (int it = 0; it < iterations; it++)
        for (int y = h - d; y > d; y--)
            for (int x = w - d; x > d; x--) {
                const int dx = (int)at_rng_below(rng, (uint32_t)(2 * d)) - d;
                const int dy = (int)at_rng_below(rng, (uint32_t)(2 * d)) - d;
                const size_t a = (size_t)y * w + x, b = (size_t)(y + dy) * w + (x + dx);
                for (int ch = 0; ch < c; ch++) {
                    float *p = image + ch * plane;
                    float t = p[a];
                    p[a] = p[b];
                    p[b] = t;
                }
            }
    rc = blur(image, c, h, w, sigma, err);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < (size_t)c * plane; i++)
        image[i] = image[i] < 0.0f ? 0.0f : image[i] > 1.0f ? 1.0f : image[i];
    return 0;
}
