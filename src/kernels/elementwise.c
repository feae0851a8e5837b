/* elementwise.c: the element-wise loops of the layers, compiled for several instruction sets
 * (AT_MULTIVERSION). Callers split the work across threads; each call runs on one thread. */
#include "kernels/kernels.h"

AT_MULTIVERSION
void at_relu_forward_kernel(const float *restrict x, float *restrict y, size_t n)
{
    for (size_t i = 0; i < n; i++)
        y[i] = x[i] < 0.0f ? 0.0f : x[i]; /* a NaN fails the test and passes through */
}

AT_MULTIVERSION
void at_relu_backward_kernel(const float *restrict y, const float *restrict dy,
                             float *restrict dx, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dx[i] += y[i] > 0.0f ? dy[i] : 0.0f;
}

AT_MULTIVERSION
void at_add_kernel(const float *restrict a, const float *restrict b, float *restrict y, size_t n)
{
    for (size_t i = 0; i < n; i++)
        y[i] = a[i] + b[i];
}

AT_MULTIVERSION
void at_accumulate_kernel(const float *restrict dy, float *restrict dx, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dx[i] += dy[i];
}

AT_MULTIVERSION
void at_scale_shift_kernel(const float *restrict x, float scale, float shift, float *restrict y,
                           size_t n)
{
    for (size_t i = 0; i < n; i++)
        y[i] = x[i] * scale + shift;
}

AT_MULTIVERSION
void at_maxpool2x2_kernel(const float *restrict x, int h, int w, float *restrict y,
                          int32_t *restrict argmax)
{
    const int oh = h / 2, ow = w / 2;
    for (int oy = 0; oy < oh; oy++) {
        const float *r0 = x + (size_t)(2 * oy) * w, *r1 = r0 + w;
        for (int ox = 0; ox < ow; ox++) {
            /* candidates in window order; strict > keeps the first maximum */
            int best = 2 * ox;
            float v = r0[best];
            const float *row = r0;
            if (r0[2 * ox + 1] > v || (r0[2 * ox + 1] != r0[2 * ox + 1] && v == v)) {
                v = r0[2 * ox + 1];
                best = 2 * ox + 1;
            }
            if (r1[2 * ox] > v || (r1[2 * ox] != r1[2 * ox] && v == v)) {
                v = r1[2 * ox];
                best = 2 * ox;
                row = r1;
            }
            if (r1[2 * ox + 1] > v || (r1[2 * ox + 1] != r1[2 * ox + 1] && v == v)) {
                v = r1[2 * ox + 1];
                best = 2 * ox + 1;
                row = r1;
            }
            y[oy * ow + ox] = v;
            argmax[oy * ow + ox] = (int32_t)((row - x) + best);
        }
    }
}
