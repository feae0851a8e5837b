/* fog.c: CIFAR-10-C's "fog" (Hendrycks and Dietterich, ICLR 2019): a plasma fractal (plasma.c) is
 * added to every channel and the image rescaled so its brightest value stays where it was,
 *   x' = clip((x + t * P) * m / (m + t)),  m = max of x over all pixels and channels,
 * with the strength t and the fractal's roughness (wibble decay) from the CIFAR-10 severity table.
 * Scaling: the original draws a 32 x 32 map for 32 x 32 images; here the map's side is the
 * smallest power of two >= max(h, w) and its top-left h x w corner is used, so at 32 x 32 it is the
 * published corruption and at other sizes the fog's large features keep spanning the image (as
 * the ImageNet-C version, a 256 map for 224 images, does). */
#include "corrupt/corruption.h"
#include "corrupt/plasma.h"

#include <stdlib.h>

static const double strength[5] = {0.2, 0.5, 0.75, 1.0, 1.5};
static const double decay[5] = {3.0, 3.0, 2.5, 2.0, 1.75};

int at_corrupt_fog(float *image, int c, int h, int w, int severity, at_rng *rng, at_error *err)
{
    const double t = strength[severity - 1];
    const int size = at_plasma_size(h, w);
    double *map = malloc((size_t)size * size * sizeof(double));
    if (!map)
        return at_fail(err, AT_ERR_NOMEM, "fog: out of memory for a %dx%d map", size, size);
    at_plasma_fractal(map, size, decay[severity - 1], rng);
    const size_t plane = (size_t)h * w;
    double m = 0.0;
    for (size_t k = 0; k < plane * c; k++)
        m = image[k] > m ? image[k] : m;
    const double scale = m / (m + t);
    for (int ch = 0; ch < c; ch++)
        for (int i = 0; i < h; i++)
            for (int j = 0; j < w; j++) {
                float *x = image + (size_t)ch * plane + (size_t)i * w + j;
                const double v = (*x + t * map[(size_t)i * size + j]) * scale;
                *x = (float)(v < 0.0 ? 0.0 : v > 1.0 ? 1.0 : v);
            }
    free(map);
    return 0;
}
