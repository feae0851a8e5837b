/* contrast.c: CIFAR-10-C's "contrast" (Hendrycks and Dietterich, ICLR 2019): each channel is pulled
 * towards its own mean over the image, x' = (x - mean) * k + mean, with k from the CIFAR-10
 * severity table. With 0 < k < 1 the result stays between x and the mean, so inside [0, 1]; the
 * clip of the original is kept for rounding. No spatial parameter: any size as it is. */
#include "corrupt/corruption.h"

static const double keep[5] = {0.75, 0.5, 0.4, 0.3, 0.15};

int at_corrupt_contrast(float *image, int c, int h, int w, int severity, at_rng *rng,
                        at_error *err)
{
    (void)rng, (void)err;
    const double k = keep[severity - 1];
    const size_t plane = (size_t)h * w;
    for (int ch = 0; ch < c; ch++) {
        float *x = image + (size_t)ch * plane;
        double mean = 0.0;
        for (size_t i = 0; i < plane; i++)
            mean += x[i];
        mean /= (double)plane;
        for (size_t i = 0; i < plane; i++) {
            double v = (x[i] - mean) * k + mean;
            x[i] = (float)(v < 0.0 ? 0.0 : v > 1.0 ? 1.0 : v);
        }
    }
    return 0;
}
