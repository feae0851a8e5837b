/* brightness.c: CIFAR-10-C's "brightness" (Hendrycks and Dietterich, ICLR 2019): in HSV space the
 * value V rises by b from the CIFAR-10 severity table and is clipped to [0, 1], hue and saturation
 * unchanged, then back to RGB. The conversions follow skimage.color.rgb2hsv and hsv2rgb, which the
 * original calls. A grey image is its own value channel (hue and saturation 0), so there the
 * corruption is x' = clip(x + b). Per pixel: any size as it is. */
#include "corrupt/corruption.h"

#include <math.h>

static const double lift[5] = {0.05, 0.1, 0.15, 0.2, 0.3};

/* skimage's rgb2hsv: V the largest channel, S = (max - min) / V, H in [0, 1) from the sector of
 * the largest channel; grey pixels (max == min) get H = S = 0. */
static void rgb_to_hsv(double r, double g, double b, double *h, double *s, double *v)
{
    const double max = fmax(r, fmax(g, b)), min = fmin(r, fmin(g, b)), delta = max - min;
    *v = max;
    if (delta == 0.0) {
        *h = *s = 0.0;
        return;
    }
    *s = delta / max;
    double sector;
    if (b == max)
        sector = 4.0 + (r - g) / delta;
    else if (g == max)
        sector = 2.0 + (b - r) / delta;
    else
        sector = (g - b) / delta;
    *h = fmod(sector / 6.0 + 1.0, 1.0);
}

/* skimage's hsv2rgb: the six sectors of the hue circle. */
static void hsv_to_rgb(double h, double s, double v, double *r, double *g, double *b)
{
    const double sector = floor(h * 6.0), f = h * 6.0 - sector;
    const double p = v * (1.0 - s), q = v * (1.0 - f * s), t = v * (1.0 - (1.0 - f) * s);
    switch ((int)sector % 6) {
    case 0: *r = v, *g = t, *b = p; break;
    case 1: *r = q, *g = v, *b = p; break;
    case 2: *r = p, *g = v, *b = t; break;
    case 3: *r = p, *g = q, *b = v; break;
    case 4: *r = t, *g = p, *b = v; break;
    default: *r = v, *g = p, *b = q; break;
    }
}

static float clip01(double v) { return (float)(v < 0.0 ? 0.0 : v > 1.0 ? 1.0 : v); }

int at_corrupt_brightness(float *image, int c, int h, int w, int severity, at_rng *rng,
                          at_error *err)
{
    (void)rng, (void)err;
    const double b = lift[severity - 1];
    const size_t plane = (size_t)h * w;
    if (c == 1) {
        for (size_t i = 0; i < plane; i++)
            image[i] = clip01(image[i] + b);
        return 0;
    }
    float *red = image, *green = image + plane, *blue = image + 2 * plane;
    for (size_t i = 0; i < plane; i++) {
        double hue, sat, val, r, g, bl;
        rgb_to_hsv(red[i], green[i], blue[i], &hue, &sat, &val);
        val = val + b > 1.0 ? 1.0 : val + b;
        hsv_to_rgb(hue, sat, val, &r, &g, &bl);
        red[i] = clip01(r);
        green[i] = clip01(g);
        blue[i] = clip01(bl);
    }
    return 0;
}
