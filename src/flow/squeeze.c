/* squeeze.c: the squeeze operation of RealNVP (Dinh et al., "Density estimation using Real NVP",
 * ICLR 2017, sec. 3.6): each 2x2 block of pixels becomes four channels, [c, h, w] ->
 * [4c, h/2, w/2], out channel 4c' + 2dy + dx holding in[c', 2i + dy, 2j + dx]. A permutation: its
 * log-determinant is 0 and its inverse (unsqueeze) is also the gradient of either. */
#include "flow/flow.h"

static void shuffle(const float *in, float *out, int n, int c, int h, int w, bool squeeze)
{
    const int h2 = h / 2, w2 = w / 2;
    const size_t image = (size_t)c * h * w;
    for (int i = 0; i < n; i++) {
        const float *src = in + (size_t)i * image;
        float *dst = out + (size_t)i * image;
        for (int ch = 0; ch < c; ch++)
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++) {
                    const size_t big = ((size_t)ch * h + y) * w + x;
                    const size_t small =
                        (((size_t)ch * 4 + (size_t)(y % 2) * 2 + (size_t)(x % 2)) * h2 + y / 2) * w2 + x / 2;
                    if (squeeze)
                        dst[small] = src[big];
                    else
                        dst[big] = src[small];
                }
    }
}

/* in [n, c, h, w] -> out [n, 4c, h/2, w/2] */
void at_flow_squeeze(const float *in, float *out, int n, int c, int h, int w)
{
    shuffle(in, out, n, c, h, w, true);
}

/* in [n, 4c, h/2, w/2] -> out [n, c, h, w] */
void at_flow_unsqueeze(const float *in, float *out, int n, int c, int h, int w)
{
    shuffle(in, out, n, c, h, w, false);
}
