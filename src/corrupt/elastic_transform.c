/* elastic_transform.c: the elastic transform of CIFAR-10-C (Hendrycks and Dietterich, ICLR 2019,
 * make_cifar_c.py, after Simard et al. 2003), with its table (alpha, sigma, affine) =
 * 32 x (0, 0, 0.08), (0.05, 0.2, 0.07), (0.08, 0.06, 0.06), (0.1, 0.04, 0.05), (0.1, 0.03, 0.03)
 * pixels. First a random affine warp: the three points centre + (q, q), centre + (q, -q),
 * centre - (q, q), q = min(h, w) / 3 (rounded down), each move by uniform [-affine, affine) in x
 * then y, and the image is resampled (bilinear, OpenCV's reflect-101 border) through the affine
 * map taking the moved points back to the originals (what warpAffine does with the forward
 * map). Then the displacement fields dx, dy, each uniform [-1, 1) noise per pixel smoothed by a
 * Gaussian of sigma (truncate 3, reflect padding) and scaled by alpha, move every pixel:
 * out(y, x) = warped(y + dy, x + dx), bilinear with scipy's reflect mode (map_coordinates order
 * 1), the same field for all channels. Draws: the 6 point moves, the h w values of dx's noise,
 * then dy's.
 *
 * Departures: OpenCV interpolates in 1/32 pixel steps, here exactly; the original takes the
 * centre as (h/2, w/2) in (x, y), the same for square images, here (w/2, h/2); if the moved points
 * fall on a line (only for images a few pixels wide) the affine step is skipped. Severity is
 * not monotone in the distortion: the affine moves, the largest part of it, shrink from severity
 * 1 to 5 while the fine displacement grows (its deviation is about alpha / (6 sigma) pixels,
 * 0.04 at severity 2 and 0.5 at severity 5), so the mean squared change falls with severity.
 *
 * Other sizes: sigma and the affine moves are lengths and scale by s = at_corrupt_scale
 * (filter.h); alpha scales by s^2, because smoothing white noise over an s times wider Gaussian
 * divides its size by s, so the displacement, a length, grows by s only with alpha s^2. */
#include "corrupt/corruption.h"
#include "corrupt/filter.h"

#include <math.h>

static const double TABLE[5][3] = {/* alpha, sigma, affine, times 32 pixels */
                                   {0, 0, 0.08}, {0.05, 0.2, 0.07}, {0.08, 0.06, 0.06},
                                   {0.1, 0.04, 0.05}, {0.1, 0.03, 0.03}};

/* The affine map (row-major 2 x 3) taking from[i] to to[i], i = 0..2; false when from[] are
 * collinear. */
static int affine_from_points(double from[3][2], const double to[3][2], double m[2][3])
{
    const double det = from[0][0] * (from[1][1] - from[2][1]) -
                       from[0][1] * (from[1][0] - from[2][0]) +
                       (from[1][0] * from[2][1] - from[2][0] * from[1][1]);
    if (fabs(det) < 1e-9)
        return 0;
    for (int r = 0; r < 2; r++) { /* Cramer's rule for [x y 1] (a b c)^T = to[.][r] */
        const double t0 = to[0][r], t1 = to[1][r], t2 = to[2][r];
        m[r][0] = (t0 * (from[1][1] - from[2][1]) - from[0][1] * (t1 - t2) +
                   (t1 * from[2][1] - t2 * from[1][1])) / det;
        m[r][1] = (from[0][0] * (t1 - t2) - t0 * (from[1][0] - from[2][0]) +
                   (from[1][0] * t2 - from[2][0] * t1)) / det;
        m[r][2] = (from[0][0] * (from[1][1] * t2 - from[2][1] * t1) -
                   from[0][1] * (from[1][0] * t2 - from[2][0] * t1) +
                   t0 * (from[1][0] * from[2][1] - from[2][0] * from[1][1])) / det;
    }
    return 1;
}

/* One displacement field: uniform [-1, 1) noise, Gaussian-smoothed, times alpha. */
static int field(float *d, int h, int w, double alpha, double sigma, at_rng *rng, at_error *err)
{
    const size_t plane = (size_t)h * w;
    for (size_t i = 0; i < plane; i++)
        d[i] = (float)(2.0 * at_rng_uniform(rng) - 1.0);
    int rc = at_gaussian_filter(d, h, w, sigma, 3.0, AT_PAD_REFLECT, err);
    for (size_t i = 0; i < plane; i++)
        d[i] = (float)(d[i] * alpha);
    return rc;
}

int at_corrupt_elastic_transform(float *image, int c, int h, int w, int severity, at_rng *rng,
                                 at_error *err)
{
    const double s = at_corrupt_scale(h, w);
    const double alpha = 32.0 * TABLE[severity - 1][0] * s * s;
    const double sigma = 32.0 * TABLE[severity - 1][1] * s;
    const double affine = 32.0 * TABLE[severity - 1][2] * s;
    const size_t plane = (size_t)h * w;

    const double cx = w / 2, cy = h / 2, q = (h < w ? h : w) / 3;
    const double pts[3][2] = {{cx + q, cy + q}, {cx + q, cy - q}, {cx - q, cy - q}};
    double moved[3][2], m[2][3];
    for (int i = 0; i < 3; i++)
        for (int k = 0; k < 2; k++)
            moved[i][k] = pts[i][k] + affine * (2.0 * at_rng_uniform(rng) - 1.0);
    const int warp = affine_from_points(moved, pts, m);

    float *warped = at_alloc((size_t)c * plane * sizeof(float));
    float *dx = at_alloc(plane * sizeof(float)), *dy = at_alloc(plane * sizeof(float));
    int rc = 0;
    if (!warped || !dx || !dy) {
        rc = at_fail(err, AT_ERR_NOMEM, "elastic_transform: out of memory (%d x %d)", h, w);
        goto done;
    }
    for (int ch = 0; ch < c; ch++)
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                const size_t i = ch * plane + (size_t)y * w + x;
                if (!warp) {
                    warped[i] = image[i];
                    continue;
                }
                const double sx = m[0][0] * x + m[0][1] * y + m[0][2];
                const double sy = m[1][0] * x + m[1][1] * y + m[1][2];
                warped[i] = (float)at_bilinear(image + ch * plane, h, w, sy, sx,
                                               AT_PAD_REFLECT101);
            }
    if ((rc = field(dx, h, w, alpha, sigma, rng, err)) < 0 ||
        (rc = field(dy, h, w, alpha, sigma, rng, err)) < 0)
        goto done;
    for (int ch = 0; ch < c; ch++)
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                const size_t i = (size_t)y * w + x;
                double v = at_bilinear(warped + ch * plane, h, w, y + dy[i], x + dx[i],
                                       AT_PAD_REFLECT);
                image[ch * plane + i] = (float)(v < 0.0 ? 0.0 : v > 1.0 ? 1.0 : v);
            }
done:
    at_free(warped);
    at_free(dx);
    at_free(dy);
    return rc;
}
