/* im2col.c: unrolling convolution windows into columns so a convolution becomes one matrix
 * product (and col2im, its adjoint, for the input gradient). */
#include "kernels/kernels.h"

#include <string.h>

AT_MULTIVERSION
void at_im2col(const at_conv_geom *g, const float *restrict x, float *restrict col)
{
    const int k = g->kernel, s = g->stride, pad = g->padding;
    const int oh = g->out_height, ow = g->out_width, h = g->height, w = g->width;
    for (int c = 0; c < g->channels; c++) {
        const float *xc = x + (size_t)c * h * w;
        for (int ky = 0; ky < k; ky++) {
            for (int kx = 0; kx < k; kx++) {
                float *row = col + ((size_t)(c * k + ky) * k + kx) * oh * ow;
                for (int oy = 0; oy < oh; oy++) {
                    int iy = oy * s - pad + ky;
                    float *dst = row + (size_t)oy * ow;
                    if (iy < 0 || iy >= h) {
                        memset(dst, 0, (size_t)ow * sizeof(float));
                        continue;
                    }
                    const float *src = xc + (size_t)iy * w;
                    if (s == 1) {
                        /* contiguous run, with zeros where the window leaves the image */
                        int ox0 = pad - kx > 0 ? pad - kx : 0;
                        int ox1 = w + pad - kx < ow ? w + pad - kx : ow;
                        for (int ox = 0; ox < ox0; ox++)
                            dst[ox] = 0.0f;
                        const int shift = kx - pad;
                        for (int ox = ox0; ox < ox1; ox++) /* short rows: a loop beats memcpy */
                            dst[ox] = src[ox + shift];
                        for (int ox = ox1 > ox0 ? ox1 : ox0; ox < ow; ox++)
                            dst[ox] = 0.0f;
                    } else {
                        for (int ox = 0; ox < ow; ox++) {
                            int ix = ox * s - pad + kx;
                            dst[ox] = (ix >= 0 && ix < w) ? src[ix] : 0.0f;
                        }
                    }
                }
            }
        }
    }
}

AT_MULTIVERSION
void at_col2im(const at_conv_geom *g, const float *restrict col, float *restrict x)
{
    const int k = g->kernel, s = g->stride, pad = g->padding;
    const int oh = g->out_height, ow = g->out_width, h = g->height, w = g->width;
    for (int c = 0; c < g->channels; c++) {
        float *xc = x + (size_t)c * h * w;
        for (int ky = 0; ky < k; ky++) {
            for (int kx = 0; kx < k; kx++) {
                const float *row = col + ((size_t)(c * k + ky) * k + kx) * oh * ow;
                for (int oy = 0; oy < oh; oy++) {
                    int iy = oy * s - pad + ky;
                    if (iy < 0 || iy >= h)
                        continue;
                    float *dst = xc + (size_t)iy * w;
                    const float *src = row + (size_t)oy * ow;
                    if (s == 1) {
                        /* the columns ox in [ox0, ox1) map onto pixels ox - pad + kx */
                        int ox0 = pad - kx > 0 ? pad - kx : 0;
                        int ox1 = w + pad - kx < ow ? w + pad - kx : ow;
                        const int shift = kx - pad;
                        for (int ox = ox0; ox < ox1; ox++)
                            dst[ox + shift] += src[ox];
                        continue;
                    }
                    for (int ox = 0; ox < ow; ox++) {
                        int ix = ox * s - pad + kx;
                        if (ix >= 0 && ix < w)
                            dst[ix] += src[ox];
                    }
                }
            }
        }
    }
}
