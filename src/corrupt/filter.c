/* filter.c: the image filters shared by the corruptions (filter.h). Every filter reads one float
 * plane and accumulates in double, so the results do not depend on the order of the sums' terms
 * beyond double rounding. */
#include "corrupt/filter.h"

#include <math.h>
#include <string.h>

double at_corrupt_scale(int h, int w)
{
    double s = (h < w ? h : w) / 32.0;
    return s > 1.0 ? s : 1.0;
}

int at_pad_index(int i, int n, at_pad pad)
{
    if (i >= 0 && i < n)
        return i;
    if (n == 1)
        return 0;
    switch (pad) {
    case AT_PAD_EDGE:
        return i < 0 ? 0 : n - 1;
    case AT_PAD_REFLECT: { /* period 2n: 0..n-1 forwards, then n-1..0 */
        int m = i % (2 * n);
        m += m < 0 ? 2 * n : 0;
        return m < n ? m : 2 * n - 1 - m;
    }
    case AT_PAD_REFLECT101: { /* period 2n - 2: 0..n-1, then n-2..1 */
        int m = i % (2 * n - 2);
        m += m < 0 ? 2 * n - 2 : 0;
        return m < n ? m : 2 * n - 2 - m;
    }
    }
    return 0;
}

void at_filter2d(const float *in, float *out, int h, int w, const double *k, int kh, int kw,
                 at_pad pad)
{
    const int ry = kh / 2, rx = kw / 2;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            double sum = 0.0;
            for (int i = 0; i < kh; i++) {
                const float *row = in + (size_t)at_pad_index(y + i - ry, h, pad) * w;
                const double *ki = k + (size_t)i * kw;
                for (int j = 0; j < kw; j++)
                    if (ki[j] != 0.0)
                        sum += ki[j] * row[at_pad_index(x + j - rx, w, pad)];
            }
            out[(size_t)y * w + x] = (float)sum;
        }
}

int at_gaussian_radius(double sigma, double truncate)
{
    return sigma > 0.0 ? (int)(truncate * sigma + 0.5) : 0;
}

void at_gaussian_taps(double sigma, int radius, double *taps)
{
    double sum = 0.0;
    for (int t = -radius; t <= radius; t++) {
        taps[t + radius] = sigma > 0.0 ? exp(-(double)t * t / (2.0 * sigma * sigma)) : t == 0;
        sum += taps[t + radius];
    }
    for (int t = 0; t <= 2 * radius; t++)
        taps[t] /= sum;
}

int at_gaussian_filter(float *plane, int h, int w, double sigma, double truncate, at_pad pad,
                       at_error *err)
{
    const int r = at_gaussian_radius(sigma, truncate);
    if (r == 0)
        return 0;
    const int n = h > w ? h : w;
    double *taps = at_alloc((size_t)(2 * r + 1) * sizeof(double));
    float *line = at_alloc((size_t)n * sizeof(float));
    if (!taps || !line) {
        at_free(taps);
        at_free(line);
        return at_fail(err, AT_ERR_NOMEM, "gaussian filter: out of memory (radius %d)", r);
    }
    at_gaussian_taps(sigma, r, taps);
    for (int y = 0; y < h; y++) { /* along rows (x) */
        float *row = plane + (size_t)y * w;
        memcpy(line, row, (size_t)w * sizeof(float));
        for (int x = 0; x < w; x++) {
            double sum = 0.0;
            for (int t = -r; t <= r; t++)
                sum += taps[t + r] * line[at_pad_index(x + t, w, pad)];
            row[x] = (float)sum;
        }
    }
    for (int x = 0; x < w; x++) { /* along columns (y) */
        for (int y = 0; y < h; y++)
            line[y] = plane[(size_t)y * w + x];
        for (int y = 0; y < h; y++) {
            double sum = 0.0;
            for (int t = -r; t <= r; t++)
                sum += taps[t + r] * line[at_pad_index(y + t, h, pad)];
            plane[(size_t)y * w + x] = (float)sum;
        }
    }
    at_free(taps);
    at_free(line);
    return 0;
}

double at_bilinear(const float *plane, int h, int w, double y, double x, at_pad pad)
{
    const double fy = floor(y), fx = floor(x);
    const double ty = y - fy, tx = x - fx;
    const int y0 = at_pad_index((int)fy, h, pad), y1 = at_pad_index((int)fy + 1, h, pad);
    const int x0 = at_pad_index((int)fx, w, pad), x1 = at_pad_index((int)fx + 1, w, pad);
    const float *r0 = plane + (size_t)y0 * w, *r1 = plane + (size_t)y1 * w;
    return (1.0 - ty) * ((1.0 - tx) * r0[x0] + tx * r0[x1]) +
           ty * ((1.0 - tx) * r1[x0] + tx * r1[x1]);
}

/* The input coordinates that clipped_zoom's n output pixels read along one axis. */
static void zoom_axis(int n, double zoom, double *coord)
{
    const int crop = (int)ceil(n / zoom);
    const int top = (n - crop) / 2;
    const int out = (int)rint(crop * zoom); /* scipy: round(); rint rounds ties to even, too */
    const int trim = (out - n) / 2;
    for (int o = 0; o < n; o++)
        coord[o] = out > 1 ? top + (double)(trim + o) * (crop - 1) / (out - 1) : top;
}

int at_clipped_zoom(const float *in, float *out, int h, int w, double zoom, at_error *err)
{
    double *cy = at_alloc((size_t)(h + w) * sizeof(double));
    if (!cy)
        return at_fail(err, AT_ERR_NOMEM, "zoom: out of memory (%d x %d)", h, w);
    double *cx = cy + h;
    zoom_axis(h, zoom, cy);
    zoom_axis(w, zoom, cx);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            out[(size_t)y * w + x] = (float)at_bilinear(in, h, w, cy[y], cx[x], AT_PAD_EDGE);
    at_free(cy);
    return 0;
}

int at_motion_blur(const float *in, float *out, int h, int w, double radius, double sigma,
                   double angle_deg, at_error *err)
{
    const int width = 2 * (int)ceil(radius) + 1;
    double *k = at_alloc((size_t)width * sizeof(double));
    int *off = at_alloc((size_t)width * 2 * sizeof(int));
    if (!k || !off) {
        at_free(k);
        at_free(off);
        return at_fail(err, AT_ERR_NOMEM, "motion blur: out of memory (radius %g)", radius);
    }
    const double a = angle_deg * (3.14159265358979323846 / 180.0);
    double sum = 0.0;
    for (int j = 0; j < width; j++) {
        k[j] = exp(-(double)j * j / (2.0 * sigma * sigma));
        sum += k[j];
        off[2 * j] = (int)ceil(j * cos(a) - 0.5);
        off[2 * j + 1] = (int)ceil(j * sin(a) - 0.5);
    }
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            double acc = 0.0;
            for (int j = 0; j < width; j++) {
                int sy = at_pad_index(y + off[2 * j + 1], h, AT_PAD_EDGE);
                int sx = at_pad_index(x + off[2 * j], w, AT_PAD_EDGE);
                acc += k[j] * in[(size_t)sy * w + sx];
            }
            out[(size_t)y * w + x] = (float)(acc / sum);
        }
    at_free(k);
    at_free(off);
    return 0;
}
