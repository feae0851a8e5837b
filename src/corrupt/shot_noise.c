/* shot_noise.c: Poisson (photon) noise, CIFAR-10-C's "shot_noise" (Hendrycks and Dietterich, ICLR
 * 2019): x' = clip(Poisson(x * lambda) / lambda) per pixel and channel, lambda from the CIFAR-10
 * severity table (fewer photons, more noise). Per pixel, so nothing scales with image size. */
#include "corrupt/corruption.h"

#include <math.h>

static const double photons[5] = {500, 250, 100, 75, 50};

/* An exact Poisson draw of mean mu >= 0. Small means multiply uniforms until the product falls
 * below exp(-mu) (Knuth, TAOCP vol. 2, 3.4.1); larger ones use the transformed rejection method
 * PTRS of Hormann, "The transformed rejection method for generating Poisson random variables"
 * (Insurance: Mathematics and Economics 12, 1993), whose cost does not grow with mu. */
static double poisson(at_rng *rng, double mu)
{
    if (mu < 10.0) {
        const double limit = exp(-mu);
        double product = at_rng_uniform(rng);
        int k = 0;
        while (product > limit) {
            product *= at_rng_uniform(rng);
            k++;
        }
        return k;
    }
    const double root = sqrt(mu), log_mu = log(mu);
    const double b = 0.931 + 2.53 * root, a = -0.059 + 0.02483 * b;
    const double inv_alpha = 1.1239 + 1.1328 / (b - 3.4), v_r = 0.9277 - 3.6224 / (b - 2.0);
    for (;;) {
        const double u = at_rng_uniform(rng) - 0.5, v = at_rng_uniform(rng);
        const double us = 0.5 - fabs(u);
        const double k = floor((2.0 * a / us + b) * u + mu + 0.43);
        if (us >= 0.07 && v <= v_r)
            return k;
        if (k < 0.0 || (us < 0.013 && v > us))
            continue;
        if (log(v) + log(inv_alpha) - log(a / (us * us) + b) <= -mu + k * log_mu - lgamma(k + 1.0))
            return k;
    }
}

int at_corrupt_shot_noise(float *image, int c, int h, int w, int severity, at_rng *rng,
                          at_error *err)
{
    (void)err;
    const double lambda = photons[severity - 1];
    const size_t count = (size_t)c * h * w;
    for (size_t i = 0; i < count; i++) {
        double v = poisson(rng, image[i] * lambda) / lambda;
        image[i] = (float)(v > 1.0 ? 1.0 : v);
    }
    return 0;
}
