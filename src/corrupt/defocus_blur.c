/* defocus_blur.c: the defocus blur of CIFAR-10-C (Hendrycks and Dietterich, ICLR 2019,
 * make_cifar_c.py): each channel correlated with an anti-aliased disk, the indicator of
 * x^2 + y^2 <= radius^2 on the integer grid, normalised, then blurred by a 3x3 Gaussian of sigma
 * alias_blur (their disk(): OpenCV's GaussianBlur, 5x5 beyond radius 8), with OpenCV's
 * reflect-101 padding. Severities 1-3 (radius < 1) are the single-pixel disk, so there the
 * anti-aliasing Gaussian is the whole blur.
 *
 * Other sizes: radius and alias_blur are lengths and scale by at_corrupt_scale (filter.h), the
 * 3x3 (5x5) anti-aliasing window with them (half-width round(1 s) or round(2 s)). The kernel is
 * built on a grid just wide enough for the disk and its Gaussian (the original's fixed 17x17 grid
 * only adds zeros, except for radii above 7 where its reflect-padded Gaussian touches the grid's
 * edge). No randomness. */
#include "corrupt/corruption.h"
#include "corrupt/filter.h"

#include <math.h>
#include <string.h>

static const double TABLE[5][2] = {/* radius, alias_blur */
                                   {0.3, 0.4}, {0.4, 0.5}, {0.5, 0.6}, {1.0, 0.2}, {1.5, 0.1}};

int at_corrupt_defocus_blur(float *image, int c, int h, int w, int severity, at_rng *rng,
                            at_error *err)
{
    const double s = at_corrupt_scale(h, w);
    const double radius = TABLE[severity - 1][0] * s, alias = TABLE[severity - 1][1] * s;
    const int g = (int)lround((radius <= 8.0 ? 1.0 : 2.0) * s);
    const int R = (int)ceil(radius) + g, n = 2 * R + 1;
    const size_t plane = (size_t)h * w;
    double *disk = at_alloc((size_t)n * n * sizeof(double));
    double *kernel = at_alloc((size_t)n * n * sizeof(double));
    double *taps = at_alloc((size_t)(2 * g + 1) * sizeof(double));
    float *copy = at_alloc(plane * sizeof(float));
    if (!disk || !kernel || !taps || !copy) {
        at_free(disk);
        at_free(kernel);
        at_free(taps);
        at_free(copy);
        return at_fail(err, AT_ERR_NOMEM, "defocus_blur: out of memory (%d x %d)", h, w);
    }
    double total = 0.0;
    for (int y = -R; y <= R; y++)
        for (int x = -R; x <= R; x++) {
            double in = (double)x * x + (double)y * y <= radius * radius;
            disk[(size_t)(y + R) * n + x + R] = in;
            total += in;
        }
    at_gaussian_taps(alias, g, taps);
    /* the disk's support is within ceil(radius) of the centre, so its blur stays on the grid */
    for (int y = -R; y <= R; y++)
        for (int x = -R; x <= R; x++) {
            double sum = 0.0;
            for (int a = -g; a <= g; a++)
                for (int b = -g; b <= g; b++) {
                    int yy = y - a, xx = x - b;
                    if (yy >= -R && yy <= R && xx >= -R && xx <= R)
                        sum += taps[a + g] * taps[b + g] * disk[(size_t)(yy + R) * n + xx + R];
                }
            kernel[(size_t)(y + R) * n + x + R] = sum / total;
        }
    for (int ch = 0; ch < c; ch++) {
        float *p = image + ch * plane;
        memcpy(copy, p, plane * sizeof(float));
        at_filter2d(copy, p, h, w, kernel, n, n, AT_PAD_REFLECT101);
        for (size_t i = 0; i < plane; i++)
            p[i] = p[i] < 0.0f ? 0.0f : p[i] > 1.0f ? 1.0f : p[i];
    }
    at_free(disk);
    at_free(kernel);
    at_free(taps);
    at_free(copy);
    return 0;
}
