/* zoom_blur.c: the zoom blur of CIFAR-10-C (Hendrycks and Dietterich, ICLR 2019,
 * make_cifar_c.py): the mean of the image and its centre-zoomed copies (clipped_zoom: bilinear,
 * cropped back to the image's size; filter.c) at zoom factors 1, 1.01, 1.02, ..., as numpy's
 * arange(1, stop, 0.01) gives them for the published stops 1.06, 1.11, 1.16, 1.21, 1.26: its
 * length ceil((stop - 1) / 0.01) in floating point is 7, 12, 16, 21 and 26 factors, so the largest
 * factors are 1.06, 1.11, 1.15, 1.20 and 1.25 (the table's stops are meant as exclusive; the float
 * rounding of the first two lets their stop in). Zoom factors have no unit, so they are the same
 * for every image size. No randomness. */
#include "corrupt/corruption.h"
#include "corrupt/filter.h"

static const int FACTORS[5] = {7, 12, 16, 21, 26};

int at_corrupt_zoom_blur(float *image, int c, int h, int w, int severity, at_rng *rng,
                         at_error *err)
{
    const int n = FACTORS[severity - 1];
    const size_t plane = (size_t)h * w;
    float *zoomed = at_alloc(plane * sizeof(float));
    double *sum = at_alloc(plane * sizeof(double));
    if (!zoomed || !sum) {
        at_free(zoomed);
        at_free(sum);
        return at_fail(err, AT_ERR_NOMEM, "zoom_blur: out of memory (%d x %d)", h, w);
    }
    for (int ch = 0; ch < c; ch++) {
        float *p = image + ch * plane;
        for (size_t i = 0; i < plane; i++)
            sum[i] = p[i];
        for (int k = 0; k < n; k++) {
            int rc = at_clipped_zoom(p, zoomed, h, w, 1.0 + k * 0.01, err);
            if (rc < 0) {
                at_free(zoomed);
                at_free(sum);
                return rc;
            }
            for (size_t i = 0; i < plane; i++)
                sum[i] += zoomed[i];
        }
        for (size_t i = 0; i < plane; i++) {
            double v = sum[i] / (n + 1);
            p[i] = (float)(v < 0.0 ? 0.0 : v > 1.0 ? 1.0 : v);
        }
    }
    at_free(zoomed);
    at_free(sum);
    return 0;
}
