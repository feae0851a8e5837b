/* impulse_noise.c: salt-and-pepper noise, CIFAR-10-C's "impulse_noise" (Hendrycks and Dietterich,
 * ICLR 2019), which calls skimage.util.random_noise(mode='s&p', amount=a): every pixel of every
 * channel independently is replaced with probability a, by 1 (salt) or 0 (pepper) with equal
 * odds. a comes from the CIFAR-10 severity table; per pixel, so nothing scales with image size. */
#include "corrupt/corruption.h"

static const double amount[5] = {0.01, 0.02, 0.03, 0.05, 0.07};

int at_corrupt_impulse_noise(float *image, int c, int h, int w, int severity, at_rng *rng,
                             at_error *err)
{
    (void)err;
    const double a = amount[severity - 1];
    const size_t count = (size_t)c * h * w;
    for (size_t i = 0; i < count; i++)
        if (at_rng_uniform(rng) < a)
            image[i] = at_rng_uniform(rng) < 0.5 ? 1.0f : 0.0f;
    return 0;
}
