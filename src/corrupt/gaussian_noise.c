/* gaussian_noise.c: additive white Gaussian noise, CIFAR-10-C's "gaussian_noise" (Hendrycks and
 * Dietterich, ICLR 2019): x' = clip(x + N(0, sigma^2)), one draw per pixel and channel, with sigma
 * from the CIFAR-10 severity table. The noise is per pixel, so nothing scales with image size. */
#include "corrupt/corruption.h"

static const double sigma[5] = {0.04, 0.06, 0.08, 0.09, 0.10};

int at_corrupt_gaussian_noise(float *image, int c, int h, int w, int severity, at_rng *rng,
                              at_error *err)
{
    (void)err;
    const double s = sigma[severity - 1];
    const size_t count = (size_t)c * h * w;
    for (size_t i = 0; i < count; i++) {
        double v = image[i] + s * at_rng_normal(rng);
        image[i] = (float)(v < 0.0 ? 0.0 : v > 1.0 ? 1.0 : v);
    }
    return 0;
}
