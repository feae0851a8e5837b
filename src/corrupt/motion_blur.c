/* motion_blur.c: the motion blur of CIFAR-10-C (Hendrycks and Dietterich, ICLR 2019,
 * make_cifar_c.py), which calls ImageMagick's MotionBlurImage(radius, sigma, angle) with an angle
 * uniform on [-45, 45) degrees (the only draw). That filter is reimplemented in filter.c
 * (at_motion_blur): a one-sided line of 2 ceil(radius) + 1 taps with Gaussian weights
 * exp(-j^2 / (2 sigma^2)), j = 0, 1, ..., sampled at offsets rounded to whole pixels along the
 * angle, edge padding, every channel alike. So the blur smears each point over about 2-3 sigma
 * pixels to one side, not over the radius, which only bounds the line.
 *
 * Departures: the result stays float (the original goes through an 8-bit PNG both ways), and
 * ImageMagick's own rounding of the weights is not reproduced. The published table makes
 * severities 3 and 4 nearly the same blur: both have sigma 2, and the taps that radius 8 adds to
 * radius 6 (j = 13..16) weigh below 1e-9. Other sizes: radius and sigma scale by
 * at_corrupt_scale (filter.h). */
#include "corrupt/corruption.h"
#include "corrupt/filter.h"

#include <string.h>

static const double TABLE[5][2] = {/* radius, sigma */
                                   {6, 1}, {6, 1.5}, {6, 2}, {8, 2}, {9, 2.5}};

int at_corrupt_motion_blur(float *image, int c, int h, int w, int severity, at_rng *rng,
                           at_error *err)
{
    const double s = at_corrupt_scale(h, w);
    const double radius = TABLE[severity - 1][0] * s, sigma = TABLE[severity - 1][1] * s;
    const double angle = -45.0 + 90.0 * at_rng_uniform(rng);
    const size_t plane = (size_t)h * w;
    float *copy = at_alloc(plane * sizeof(float));
    if (!copy)
        return at_fail(err, AT_ERR_NOMEM, "motion_blur: out of memory (%d x %d)", h, w);
    for (int ch = 0; ch < c; ch++) {
        float *p = image + ch * plane;
        memcpy(copy, p, plane * sizeof(float));
        int rc = at_motion_blur(copy, p, h, w, radius, sigma, angle, err);
        if (rc < 0) {
            at_free(copy);
            return rc;
        }
        for (size_t i = 0; i < plane; i++)
            p[i] = p[i] < 0.0f ? 0.0f : p[i] > 1.0f ? 1.0f : p[i];
    }
    at_free(copy);
    return 0;
}
