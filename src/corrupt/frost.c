/* frost.c: CIFAR-10-C's "frost" (Hendrycks and Dietterich, ICLR 2019) blends the image with a
 * random crop of one of six photographs of frost on glass, x' = clip(a * x + b * F), a and b from
 * the CIFAR-10 severity table. Those photographs are not available here, so F is a procedural
 * stand-in for them: an icy haze (two plasma fractals, plasma.c, one smooth and one rough) under
 * thin bright crystal streaks (random straight needles), tinted a little towards blue for colour
 * images. The blend and the table are the published ones; the texture, and so the numbers, are
 * not those of CIFAR-10-C.
 *
 * Scaling: the fractals are drawn on the smallest power-of-two square covering the image (as
 * fog.c); a needle's length is 10-40% of the image's longer side, and there is one needle per 48
 * pixels (21 at 32 x 32), so the texture looks alike at any size.
 *
 * Severity: the published table lowers a from 0.9 to 0.85 at an equal b = 0.4 between severities
 * 3 and 4, and from 0.85 to 0.75 while b rises only to 0.45 between 4 and 5. The difference to
 * the clean image is b F - (1 - a) x, so wherever b F outweighs (1 - a) x those two steps bring
 * the result closer to the clean image, and the mean squared distortion need not rise past
 * severity 3 (with this texture, on mid-grey images, it falls).
 * What rises at every step is the frost's share b / (a + b) (0.17, 0.23, 0.31, 0.32, 0.38), so
 * the correlation with the clean image falls at every severity. */
#include "corrupt/corruption.h"
#include "corrupt/plasma.h"

#include <math.h>
#include <stdlib.h>

static const double keep[5] = {1.0, 1.0, 0.9, 0.85, 0.75};
static const double frost[5] = {0.2, 0.3, 0.4, 0.4, 0.45};

/* The texture [h, w] in [0, 1]; scratch holds 2 * size^2 doubles. */
static void frost_texture(float *tex, int h, int w, double *scratch, int size, at_rng *rng)
{
    double *smooth = scratch, *rough = scratch + (size_t)size * size;
    at_plasma_fractal(smooth, size, 2.0, rng);
    at_plasma_fractal(rough, size, 1.4, rng);
    for (int i = 0; i < h; i++)
        for (int j = 0; j < w; j++)
            tex[(size_t)i * w + j] =
                (float)(0.45 * smooth[(size_t)i * size + j] + 0.25 * rough[(size_t)i * size + j]);
    const int longer = h > w ? h : w;
    const long needles = 1 + (long)h * w / 48;
    for (long n = 0; n < needles; n++) {
        const double y0 = at_rng_uniform(rng) * h, x0 = at_rng_uniform(rng) * w;
        const double angle = at_rng_uniform(rng) * 3.141592653589793;
        const double length = (0.1 + 0.3 * at_rng_uniform(rng)) * longer;
        const double shine = 0.3 + 0.4 * at_rng_uniform(rng);
        const double dy = sin(angle), dx = cos(angle);
        for (double s = 0.0; s <= length; s += 0.5) {
            const int i = (int)floor(y0 + s * dy), j = (int)floor(x0 + s * dx);
            if (i < 0 || i >= h || j < 0 || j >= w)
                break;
            float *t = tex + (size_t)i * w + j;
            /* a needle brightens the haze under it, so crossings glint more */
            *t = (float)fmin(1.0, *t + shine * (1.0 - 0.5 * s / length));
        }
    }
}

int at_corrupt_frost(float *image, int c, int h, int w, int severity, at_rng *rng, at_error *err)
{
    static const double tint[3] = {0.86, 0.93, 1.0}; /* pale blue ice */
    const double a = keep[severity - 1], b = frost[severity - 1];
    const int size = at_plasma_size(h, w);
    const size_t plane = (size_t)h * w;
    double *scratch = malloc((size_t)2 * size * size * sizeof(double));
    float *tex = malloc(plane * sizeof(float));
    if (!scratch || !tex) {
        free(scratch);
        free(tex);
        return at_fail(err, AT_ERR_NOMEM, "frost: out of memory for a %dx%d image", h, w);
    }
    frost_texture(tex, h, w, scratch, size, rng);
    for (int ch = 0; ch < c; ch++) {
        const double shade = c == 1 ? 1.0 : tint[ch];
        float *x = image + (size_t)ch * plane;
        for (size_t p = 0; p < plane; p++) {
            const double v = a * x[p] + b * shade * tex[p];
            x[p] = (float)(v > 1.0 ? 1.0 : v);
        }
    }
    free(scratch);
    free(tex);
    return 0;
}
