/* filter.h: the image filters the blur, weather and digital corruptions share (corruption.h):
 * padding rules, 2D correlation, Gaussian filtering, bilinear sampling, make_cifar_c.py's
 * clipped zoom and ImageMagick's motion blur, all on one float plane [h, w] at a time, plus the
 * rule by which the corruptions scale their pixel parameters to image sizes other than 32x32. */
#ifndef AT_CORRUPT_FILTER_H
#define AT_CORRUPT_FILTER_H

#include "core/util.h"

/* How far the pixel parameters of the CIFAR-10-C tables (blur radii and sigmas, shuffle
 * distances, elastic and affine displacements) stretch for an h x w image: min(h, w) / 32, and 1
 * for images of 32 pixels or fewer. A 2x larger image of the same scene needs 2x longer blurs to
 * look alike, so lengths scale with the side; but the tables are already near one pixel at 32
 * (a shuffle distance of 1, blur sigmas of 0.05 to 0.6), and shrinking them for 28x28 or 20x36
 * images would round severities together, so small images keep the 32x32 values. */
double at_corrupt_scale(int h, int w);

/* How an index outside 0..n-1 reads the plane. */
typedef enum at_pad {
    AT_PAD_EDGE,       /* aaa|abcd|ddd: scipy "nearest", ImageMagick's default virtual pixels */
    AT_PAD_REFLECT,    /* ba|abcd|dc: scipy/skimage "reflect" (half-sample symmetric) */
    AT_PAD_REFLECT101, /* cb|abcd|cb: OpenCV's default BORDER_REFLECT_101 */
} at_pad;

/* The index in 0..n-1 that index i reads under pad (any i, however far outside). */
int at_pad_index(int i, int n, at_pad pad);

/* out[y, x] = sum_ij k[i, j] in[y + i - kh/2, x + j - kw/2] (a correlation, as OpenCV's
 * filter2D; kh, kw odd), padded by pad; out and in must not overlap. */
void at_filter2d(const float *in, float *out, int h, int w, const double *k, int kh, int kw,
                 at_pad pad);

/* scipy.ndimage's Gaussian radius for sigma: (int)(truncate * sigma + 0.5), 0 for sigma <= 0. */
int at_gaussian_radius(double sigma, double truncate);

/* taps[0 .. 2 radius] = exp(-t^2 / (2 sigma^2)) for t = -radius..radius, normalised to sum 1. */
void at_gaussian_taps(double sigma, int radius, double *taps);

/* scipy.ndimage.gaussian_filter (and so skimage.filters.gaussian) on one plane, in place:
 * separable, rows then columns, radius from truncate; the identity when the radius is 0. */
int at_gaussian_filter(float *plane, int h, int w, double sigma, double truncate, at_pad pad,
                       at_error *err);

/* Bilinear interpolation of plane at (y, x), reading nodes outside through pad. */
double at_bilinear(const float *plane, int h, int w, double y, double x, at_pad pad);

/* make_cifar_c.py's clipped_zoom of one plane by factor zoom >= 1, per axis (the original crops
 * a square): crop the ceil(n / zoom) centre pixels (starting at (n - crop) / 2, rounded down),
 * resize them to round(crop * zoom) pixels with scipy.ndimage.zoom order 1 (output pixel o reads
 * input o (crop - 1) / (out - 1)), keep the n pixels from (out - n) / 2. out != in. */
int at_clipped_zoom(const float *in, float *out, int h, int w, double zoom, at_error *err);

/* ImageMagick's MotionBlurImage(radius, sigma, angle) on one plane, out != in: width =
 * 2 ceil(radius) + 1 taps k_j = exp(-j^2 / (2 sigma^2)) (j = 0..width-1, normalised), and
 * out[p] = sum_j k_j in[p + o_j] with o_j = (ceil(j cos a - 1/2), ceil(j sin a - 1/2)) in (x, y),
 * y down, edge padding. One-sided: a bright point leaves a trail in the direction a + 180 deg. */
int at_motion_blur(const float *in, float *out, int h, int w, double radius, double sigma,
                   double angle_deg, at_error *err);

#endif
