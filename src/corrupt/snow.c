/* snow.c: the snow of CIFAR-10-C (Hendrycks and Dietterich, ICLR 2019, make_cifar_c.py). A snow
 * layer of normal noise (mean loc, deviation scale) per pixel is centre-zoomed by zoom
 * (clipped_zoom, filter.c), zeroed below threshold, clipped to [0, 1] and motion-blurred
 * (ImageMagick's filter, filter.c) along an angle uniform on [-135, -45) degrees, so flakes fall
 * in streaks. The image is whitened as snow light does, x = blend x + (1 - blend) max(x,
 * 1.5 gray(x) + 0.5) with gray the ITU-R 601 luma (OpenCV's RGB2GRAY; a grey image is its own
 * gray), and the result is clip(x + snow + snow rotated 180 degrees). Draws: the layer's h w
 * normals row by row, then the angle.
 *
 * Departures: the layer and the result stay float (the original rounds the layer down to 8 bits
 * and passes it through PNG). Other sizes: the zoom, the motion blur's radius and sigma scale by
 * at_corrupt_scale (filter.h), so flakes and streaks keep their size relative to the image. */
#include "corrupt/corruption.h"
#include "corrupt/filter.h"

static const double TABLE[5][7] = {
    /* loc, scale, zoom, threshold, blur radius, blur sigma, blend */
    {0.1, 0.2, 1, 0.6, 8, 3, 0.95},
    {0.1, 0.2, 1, 0.5, 10, 4, 0.9},
    {0.15, 0.3, 1.75, 0.55, 10, 4, 0.9},
    {0.25, 0.3, 2.25, 0.6, 12, 6, 0.85},
    {0.3, 0.3, 1.25, 0.65, 14, 12, 0.8},
};

int at_corrupt_snow(float *image, int c, int h, int w, int severity, at_rng *rng, at_error *err)
{
    const double *t = TABLE[severity - 1];
    const double s = at_corrupt_scale(h, w);
    const size_t plane = (size_t)h * w;
    float *noise = at_alloc(plane * sizeof(float)), *layer = at_alloc(plane * sizeof(float));
    if (!noise || !layer) {
        at_free(noise);
        at_free(layer);
        return at_fail(err, AT_ERR_NOMEM, "snow: out of memory (%d x %d)", h, w);
    }
    for (size_t i = 0; i < plane; i++)
        noise[i] = (float)(t[0] + t[1] * at_rng_normal(rng));
    int rc = at_clipped_zoom(noise, layer, h, w, t[2] * s, err);
    if (rc < 0)
        goto done;
    for (size_t i = 0; i < plane; i++)
        layer[i] = layer[i] < t[3] ? 0.0f : layer[i] > 1.0f ? 1.0f : layer[i];
    const double angle = -135.0 + 90.0 * at_rng_uniform(rng);
    rc = at_motion_blur(layer, noise, h, w, t[4] * s, t[5] * s, angle, err);
    if (rc < 0)
        goto done;
    const double blend = t[6];
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            const size_t i = (size_t)y * w + x;
            const double flakes = (double)noise[i] + noise[(size_t)(h - 1 - y) * w + (w - 1 - x)];
            double gray = image[i];
            if (c == 3)
                gray = 0.299 * image[i] + 0.587 * image[plane + i] + 0.114 * image[2 * plane + i];
            const double light = 1.5 * gray + 0.5;
            for (int ch = 0; ch < c; ch++) {
                const double v = image[ch * plane + i];
                double out = blend * v + (1.0 - blend) * (v > light ? v : light) + flakes;
                image[ch * plane + i] = (float)(out < 0.0 ? 0.0 : out > 1.0 ? 1.0 : out);
            }
        }
done:
    at_free(noise);
    at_free(layer);
    return rc;
}
