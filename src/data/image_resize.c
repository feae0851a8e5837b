/* image_resize.c: grey/colour conversion and resizing of a decoded image into a dataset example.
 *
 * Resizing is area resampling: the source is taken as piecewise constant (pixel j covers
 * [j, j + 1)), output pixel i of an axis covers an interval of the source window of length
 * window / size, and its value is the mean over that interval, i.e. source pixels weighted by
 * how much of them it overlaps. Shrinking by an integer factor k is then the exact mean of each
 * k x k block, growing by an integer factor repeats pixels, and an unchanged size copies
 * (OpenCV's INTER_AREA for shrinking; PIL's BOX filter). The two axes are independent, so a
 * pixel's weight is the product of its row and column weights. */
#include "core/util.h"
#include "data/image.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int image_to_channels(image_pixels *img, int channels, at_error *err)
{
    if (img->c == channels)
        return AT_OK;
    const size_t pixels = (size_t)img->h * img->w;
    uint8_t *data = malloc(pixels * (size_t)channels);
    if (!data)
        return at_fail(err, AT_ERR_NOMEM, "out of memory converting a %dx%d image", img->w,
                       img->h);
    for (size_t p = 0; p < pixels; p++) {
        const uint8_t *s = img->data + p * (size_t)img->c;
        if (channels == 3) {
            data[3 * p] = data[3 * p + 1] = data[3 * p + 2] = s[0];
        } else {
            /* BT.601 luma 0.299 R + 0.587 G + 0.114 B in 16-bit fixed point, rounded (the
             * weights and rounding of PIL's convert("L")) */
            data[p] = (uint8_t)((19595u * s[0] + 38470u * s[1] + 7471u * s[2] + 0x8000u) >> 16);
        }
    }
    free(img->data);
    img->data = data;
    img->c = channels;
    return AT_OK;
}

/* Output pixel i of `out` covers source [start + i len / out, start + (i + 1) len / out); its
 * taps are the source pixels first[i] .. first[i] + count[i] - 1 with weights[i * stride + k]. */
typedef struct axis_taps {
    int *first, *count;
    double *weights;
    int stride;
} axis_taps;

static void axis_free(axis_taps *a)
{
    free(a->first);
    free(a->count);
    free(a->weights);
}

static bool axis_plan(axis_taps *a, int out, double start, double len, int in)
{
    a->stride = (int)ceil(len / out) + 2;
    a->first = malloc((size_t)out * sizeof *a->first);
    a->count = malloc((size_t)out * sizeof *a->count);
    a->weights = malloc((size_t)out * a->stride * sizeof *a->weights);
    if (!a->first || !a->count || !a->weights)
        return false;
    for (int i = 0; i < out; i++) {
        const double lo = start + i * len / out, hi = start + (i + 1) * len / out;
        int j0 = (int)floor(lo), j1 = (int)ceil(hi); /* taps j0 .. j1 - 1 */
        if (j0 < 0)
            j0 = 0;
        if (j1 > in)
            j1 = in;
        if (j1 - j0 > a->stride)
            j1 = j0 + a->stride;
        a->first[i] = j0;
        a->count[i] = j1 - j0;
        for (int j = j0; j < j1; j++) {
            const double overlap = fmin(hi, j + 1.0) - fmax(lo, (double)j);
            a->weights[(size_t)i * a->stride + (j - j0)] = overlap / (hi - lo);
        }
    }
    return true;
}

int image_resize_into(uint8_t *dst, int height, int width, const image_pixels *img,
                      image_fit fit, at_error *err)
{
    const int c = img->c, h = img->h, w = img->w;
    const size_t plane = (size_t)height * width;
    if (h == height && w == width) {
        for (int r = 0; r < h; r++)
            for (int q = 0; q < w; q++)
                for (int ch = 0; ch < c; ch++)
                    dst[ch * plane + (size_t)r * w + q] = img->data[((size_t)r * w + q) * c + ch];
        return AT_OK;
    }
    /* The source window resampled: all of it, or for a crop the centred part with the output's
     * aspect ratio, scale = max(height / h, width / w) output pixels per source pixel. */
    double y0 = 0, x0 = 0, wh = h, ww = w;
    if (fit == IMAGE_FIT_CROP) {
        const double scale = fmax((double)height / h, (double)width / w);
        wh = height / scale;
        ww = width / scale;
        y0 = (h - wh) / 2;
        x0 = (w - ww) / 2;
    }
    axis_taps rows = {0}, cols = {0};
    if (!axis_plan(&rows, height, y0, wh, h) || !axis_plan(&cols, width, x0, ww, w)) {
        axis_free(&rows);
        axis_free(&cols);
        return at_fail(err, AT_ERR_NOMEM, "out of memory resizing a %dx%d image", w, h);
    }
    for (int r = 0; r < height; r++)
        for (int q = 0; q < width; q++)
            for (int ch = 0; ch < c; ch++) {
                double sum = 0;
                for (int a = 0; a < rows.count[r]; a++) {
                    const uint8_t *row = img->data + (size_t)(rows.first[r] + a) * w * c;
                    double line = 0;
                    for (int b = 0; b < cols.count[q]; b++)
                        line += cols.weights[(size_t)q * cols.stride + b] *
                                row[(size_t)(cols.first[q] + b) * c + ch];
                    sum += rows.weights[(size_t)r * rows.stride + a] * line;
                }
                const long v = lround(sum);
                dst[ch * plane + (size_t)r * width + q] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
    axis_free(&rows);
    axis_free(&cols);
    return AT_OK;
}
