/* pixelate.c: CIFAR-10-C's "pixelate" (Hendrycks and Dietterich, ICLR 2019): the image is shrunk
 * to (int)(w * k) x (int)(h * k) and enlarged back, both with PIL's resize(..., Image.BOX), k from
 * the CIFAR-10 severity table. k is a fraction of the size, so any h x w scales by itself.
 *
 * PIL's BOX filter (Pillow, libImaging/Resample.c) samples a box at input pixel centres rather
 * than integrating it, so each output pixel is the plain mean of a contiguous run of input pixels
 * along each axis: the shrink averages runs of one or two pixels (more for k < 1/2) and the
 * enlargement picks one pixel, i.e. nearest neighbour. The runs are computed here from Pillow's
 * own formula (window centre (o + 0.5) * in / out, support 0.5 * max(in / out, 1), the box
 * evaluated at (x + 0.5 - centre) / max(in / out, 1) and kept where it is in (-0.5, 0.5]). The one
 * departure: Pillow rounds to 8 bits after each of its horizontal and vertical passes, while
 * this keeps floats throughout: on 8-bit test images (32x32 RGB, 28x28 grey, 20x36 RGB, all
 * severities) the result rounded to 8 bits was within 1/255 of Pillow 9.4's at every pixel. */
#include "corrupt/corruption.h"

#include <stdlib.h>

static const double keep[5] = {0.95, 0.9, 0.85, 0.75, 0.65};

/* For each of `out` output positions, the run [lo, hi) of the `in` input positions it averages. */
static void box_runs(int in, int out, int *lo, int *hi)
{
    const double scale = (double)in / out, filterscale = scale < 1.0 ? 1.0 : scale;
    const double support = 0.5 * filterscale, ss = 1.0 / filterscale;
    for (int o = 0; o < out; o++) {
        const double centre = (o + 0.5) * scale;
        int first = (int)(centre - support + 0.5), last = (int)(centre + support + 0.5);
        if (first < 0)
            first = 0;
        if (last > in)
            last = in;
        lo[o] = in;
        hi[o] = 0;
        for (int x = first; x < last; x++) {
            const double t = (x - centre + 0.5) * ss;
            if (t > -0.5 && t <= 0.5) {
                if (x < lo[o])
                    lo[o] = x;
                hi[o] = x + 1;
            }
        }
    }
}

/* src [c, h, w] to dst [c, oh, ow] by PIL's BOX resampling; runs hold oh + ow pairs of ints. */
static void resize_box(const float *src, int c, int h, int w, float *dst, int oh, int ow, int *runs)
{
    int *rlo = runs, *rhi = runs + oh, *clo = runs + 2 * oh, *chi = runs + 2 * oh + ow;
    box_runs(h, oh, rlo, rhi);
    box_runs(w, ow, clo, chi);
    for (int ch = 0; ch < c; ch++)
        for (int y = 0; y < oh; y++)
            for (int x = 0; x < ow; x++) {
                double sum = 0.0;
                int count = 0;
                for (int i = rlo[y]; i < rhi[y]; i++)
                    for (int j = clo[x]; j < chi[x]; j++, count++)
                        sum += src[((size_t)ch * h + i) * w + j];
                /* an empty run cannot happen for these sizes; Pillow would write 0 */
                dst[((size_t)ch * oh + y) * ow + x] = count ? (float)(sum / count) : 0.0f;
            }
}

int at_corrupt_pixelate(float *image, int c, int h, int w, int severity, at_rng *rng,
                        at_error *err)
{
    (void)rng;
    const double k = keep[severity - 1];
    int sh = (int)(h * k), sw = (int)(w * k);
    if (sh < 1)
        sh = 1;
    if (sw < 1)
        sw = 1;
    float *small = malloc((size_t)c * sh * sw * sizeof(float));
    int *runs = malloc((size_t)2 * (h + w + sh + sw) * sizeof(int));
    if (!small || !runs) {
        free(small);
        free(runs);
        return at_fail(err, AT_ERR_NOMEM, "pixelate: out of memory for a %dx%d image", h, w);
    }
    resize_box(image, c, h, w, small, sh, sw, runs);
    resize_box(small, c, sh, sw, image, h, w, runs);
    free(small);
    free(runs);
    return 0;
}
