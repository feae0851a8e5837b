/* augmix.c: AugMix's operations and augment-and-mix (Hendrycks et al., ICLR 2020, Algorithm 1),
 * following the authors' CIFAR code (google-research/augmix: augmentations.py for the operations
 * and their parameter ranges, cifar.py's aug() for the mixing). Their images are PIL uint8; ours
 * are floats in [0,1], so the intensity operations work on the 8-bit level round(255 v) where
 * PIL's definition is one on levels, and the geometric ones interpolate without PIL's truncation
 * to uint8. */
#include "data/augmix.h"

#include <math.h>
#include <string.h>

static int level8(float v)
{
    const float q = v * 255.0f + 0.5f;
    return q <= 0.0f ? 0 : q >= 255.0f ? 255 : (int)q;
}

void at_augmix_autocontrast(float *img, int c, int h, int w)
{
    const size_t plane = (size_t)h * w;
    for (int ch = 0; ch < c; ch++) {
        float *p = img + ch * plane, lo = p[0], hi = p[0];
        for (size_t i = 1; i < plane; i++) {
            lo = p[i] < lo ? p[i] : lo;
            hi = p[i] > hi ? p[i] : hi;
        }
        if (!(hi > lo))
            continue;
        const float scale = 1.0f / (hi - lo);
        for (size_t i = 0; i < plane; i++)
            p[i] = (p[i] - lo) * scale;
    }
}

void at_augmix_equalize(float *img, int c, int h, int w)
{
    const size_t plane = (size_t)h * w;
    for (int ch = 0; ch < c; ch++) {
        float *p = img + ch * plane;
        long hist[256] = {0};
        for (size_t i = 0; i < plane; i++)
            hist[level8(p[i])]++;
        int top = 255;
        while (top > 0 && !hist[top])
            top--;
        /* PIL: step = (sum of the histogram - the count of its last non-empty level) // 255 */
        const long step = ((long)plane - hist[top]) / 255;
        if (step == 0)
            continue;
        float lut[256];
        long n = step / 2;
        for (int q = 0; q < 256; q++) {
            long v = n / step;
            lut[q] = (float)(v > 255 ? 255 : v) / 255.0f;
            n += hist[q];
        }
        for (size_t i = 0; i < plane; i++)
            p[i] = lut[level8(p[i])];
    }
}

void at_augmix_posterize(float *img, int c, int h, int w, int bits)
{
    const int mask = ~((1 << (8 - bits)) - 1) & 255;
    for (size_t i = 0; i < (size_t)c * h * w; i++)
        img[i] = (float)(level8(img[i]) & mask) / 255.0f;
}

void at_augmix_solarize(float *img, int c, int h, int w, int threshold)
{
    for (size_t i = 0; i < (size_t)c * h * w; i++)
        if (level8(img[i]) >= threshold)
            img[i] = 1.0f - img[i];
}

/* One sample of plane p at (sx, sy) (PIL's coordinates: pixel i covers [i, i + 1)). */
static float sample(const float *p, int h, int w, double sx, double sy, bool bilinear)
{
    if (!(sx >= 0.0 && sx < w && sy >= 0.0 && sy < h))
        return 0.0f;
    if (!bilinear)
        return p[(size_t)(int)sy * w + (int)sx];
    /* BILINEAR_HEAD/BODY of PIL's Geometry.c: centres at i + 0.5, neighbours clamped */
    sx -= 0.5;
    sy -= 0.5;
    const int x = (int)floor(sx), y = (int)floor(sy);
    const double dx = sx - x, dy = sy - y;
    const int x0 = x < 0 ? 0 : x, x1 = x + 1 > w - 1 ? w - 1 : x + 1;
    const int y0 = y < 0 ? 0 : y, y1 = y + 1 > h - 1 ? h - 1 : y + 1;
    const float *r0 = p + (size_t)y0 * w, *r1 = p + (size_t)y1 * w;
    const double v0 = r0[x0] + (r0[x1] - r0[x0]) * dx, v1 = r1[x0] + (r1[x1] - r1[x0]) * dx;
    return (float)(v0 + (v1 - v0) * dy);
}

void at_augmix_affine(const float *in, float *out, int c, int h, int w, const double m[6],
                      bool bilinear)
{
    const size_t plane = (size_t)h * w;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            const double sx = m[0] * (x + 0.5) + m[1] * (y + 0.5) + m[2];
            const double sy = m[3] * (x + 0.5) + m[4] * (y + 0.5) + m[5];
            for (int ch = 0; ch < c; ch++)
                out[ch * plane + (size_t)y * w + x] =
                    sample(in + ch * plane, h, w, sx, sy, bilinear);
        }
}

/* Python's round(v, 15), as Image.rotate rounds its matrix (so that cos 90 degrees is 0). */
static double round15(double v) { return round(v * 1e15) / 1e15; }

void at_augmix_rotate(const float *in, float *out, int c, int h, int w, double degrees,
                      bool bilinear)
{
    /* Image.rotate: the inverse map about the centre, angle negated (counter-clockwise) */
    const double a = -degrees * 3.14159265358979323846 / 180.0;
    const double cs = round15(cos(a)), sn = round15(sin(a));
    const double cx = w / 2.0, cy = h / 2.0;
    double m[6] = {cs, sn, 0.0, -sn, cs, 0.0};
    m[2] = m[0] * -cx + m[1] * -cy + cx;
    m[5] = m[3] * -cx + m[4] * -cy + cy;
    at_augmix_affine(in, out, c, h, w, m, bilinear);
}

/* sample_level: U(0.1, severity) */
static double sample_level(int severity, at_rng *rng)
{
    return 0.1 + (severity - 0.1) * at_rng_uniform(rng);
}

/* np.random.uniform() > 0.5 negates */
static double random_sign(double v, at_rng *rng) { return at_rng_uniform(rng) > 0.5 ? -v : v; }

void at_augmix_apply(at_augmix_op op, int severity, float *img, float *tmp, int c, int h, int w,
                     at_rng *rng)
{
    const size_t image = (size_t)c * h * w;
    double m[6] = {1, 0, 0, 0, 1, 0};
    switch (op) {
    case AT_AUGMIX_AUTOCONTRAST: at_augmix_autocontrast(img, c, h, w); return;
    case AT_AUGMIX_EQUALIZE: at_augmix_equalize(img, c, h, w); return;
    case AT_AUGMIX_POSTERIZE:
        at_augmix_posterize(img, c, h, w, 4 - (int)(sample_level(severity, rng) * 4 / 10));
        return;
    case AT_AUGMIX_SOLARIZE:
        at_augmix_solarize(img, c, h, w, 256 - (int)(sample_level(severity, rng) * 256 / 10));
        return;
    case AT_AUGMIX_ROTATE: {
        const double degrees = random_sign((int)(sample_level(severity, rng) * 30 / 10), rng);
        at_augmix_rotate(img, tmp, c, h, w, degrees, true);
        memcpy(img, tmp, image * sizeof(float));
        return;
    }
    case AT_AUGMIX_SHEAR_X: m[1] = random_sign(sample_level(severity, rng) * 0.3 / 10, rng); break;
    case AT_AUGMIX_SHEAR_Y: m[3] = random_sign(sample_level(severity, rng) * 0.3 / 10, rng); break;
    /* IMAGE_SIZE / 3 in the code (square images): a third of the side it moves along */
    case AT_AUGMIX_TRANSLATE_X:
        m[2] = random_sign((int)(sample_level(severity, rng) * (w / 3.0) / 10), rng);
        break;
    case AT_AUGMIX_TRANSLATE_Y:
        m[5] = random_sign((int)(sample_level(severity, rng) * (h / 3.0) / 10), rng);
        break;
    default: return;
    }
    at_augmix_affine(img, tmp, c, h, w, m, true);
    memcpy(img, tmp, image * sizeof(float));
}

void at_augmix(const float *x, float *out, float *scratch, float *chains, int c, int h, int w,
               const at_augmix_options *o, at_rng *rng)
{
    const size_t image = (size_t)c * h * w;
    const int width = o->width < 1 ? 1 : o->width > AT_AUGMIX_MAX_WIDTH ? AT_AUGMIX_MAX_WIDTH
                                                                          : o->width;
    /* cifar.py draws the weights and the blend first, as float32 */
    double ws[AT_AUGMIX_MAX_WIDTH], total = 0.0;
    for (int i = 0; i < width; i++)
        total += ws[i] = at_rng_gamma(rng, o->alpha);
    for (int i = 0; i < width; i++)
        ws[i] = total > 0.0 ? ws[i] / total : 1.0 / width;
    const float mix = (float)at_rng_beta(rng, o->alpha, o->alpha);
    float *chain = scratch, *tmp = scratch + image;
    memset(out, 0, image * sizeof(float));
    for (int i = 0; i < width; i++) {
        memcpy(chain, x, image * sizeof(float));
        const int depth = o->depth > 0 ? o->depth : 1 + (int)at_rng_below(rng, 3);
        for (int d = 0; d < depth; d++)
            at_augmix_apply((at_augmix_op)at_rng_below(rng, AT_AUGMIX_N_OPS), o->severity, chain,
                            tmp, c, h, w, rng);
        const float wi = (float)ws[i];
        for (size_t j = 0; j < image; j++)
            out[j] += wi * chain[j];
        if (chains)
            memcpy(chains + i * image, chain, image * sizeof(float));
    }
    /* a convex combination of images in [0,1]; the clamp only absorbs rounding */
    for (size_t j = 0; j < image; j++) {
        const float v = (1.0f - mix) * x[j] + mix * out[j];
        out[j] = v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v;
    }
}
