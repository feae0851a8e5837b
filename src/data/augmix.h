/* augmix.h: AugMix's image operations and its augment-and-mix (Hendrycks, Mu, Cubuk, Zoph, Gilmer
 * and Lakshminarayanan, "AugMix: A Simple Data Processing Method to Improve Robustness and
 * Uncertainty", ICLR 2020, Algorithm 1), on float images [c, h, w] in [0,1], grey or colour, any
 * size. The operations are those of the authors' CIFAR code (augmentations.py: the ones that do
 * not overlap the CIFAR-10-C corruptions), with its parameter ranges at a severity. Methods that
 * augment with AugMix (augmix, augrmixat) call these. */
#ifndef AT_AUGMIX_H
#define AT_AUGMIX_H

#include "advtrain.h"

typedef enum at_augmix_op {
    AT_AUGMIX_AUTOCONTRAST,
    AT_AUGMIX_EQUALIZE,
    AT_AUGMIX_POSTERIZE,
    AT_AUGMIX_ROTATE,
    AT_AUGMIX_SOLARIZE,
    AT_AUGMIX_SHEAR_X,
    AT_AUGMIX_SHEAR_Y,
    AT_AUGMIX_TRANSLATE_X,
    AT_AUGMIX_TRANSLATE_Y,
    AT_AUGMIX_N_OPS
} at_augmix_op;

typedef struct at_augmix_options {
    int severity;   /* 1..10: the operations' parameter range (the code's --aug-severity, 3) */
    int width;      /* chains mixed (--mixture-width, 3) */
    int depth;      /* operations per chain; <= 0: 1..3 at random (--mixture-depth -1) */
    double alpha;   /* Dirichlet(alpha) chain weights, Beta(alpha, alpha) blend (1) */
} at_augmix_options;

enum { AT_AUGMIX_MAX_WIDTH = 16 };

/* The operations with explicit parameters; in place unless they take `in` and `out` (distinct
 * buffers). Intensity operations see each value as the 8-bit level round(255 v), as PIL does on
 * the uint8 images of the authors' code. */
/* Per channel, min -> 0 and max -> 1 linearly (ImageOps.autocontrast, cutoff 0, computed in
 * float: no 8-bit truncation); a constant channel is left as it is. */
void at_augmix_autocontrast(float *img, int c, int h, int w);
/* Per channel, PIL's histogram equalisation (ImageOps.equalize): level q maps to
 * (n_below(q) + step / 2) / step with step = (N - count of the top level) / 255 (integer
 * divisions), so the output's histogram is near uniform; left as it is when step is 0. */
void at_augmix_equalize(float *img, int c, int h, int w);
/* Keeps the top `bits` (1..8) bits of each 8-bit level (ImageOps.posterize). */
void at_augmix_posterize(float *img, int c, int h, int w, int bits);
/* Levels >= threshold (0..256) become 255 - level, i.e. v -> 1 - v (ImageOps.solarize). */
void at_augmix_solarize(float *img, int c, int h, int w, int threshold);
/* PIL's Image.transform(AFFINE, (a, b, c', d, e, f)): output pixel (x, y) samples the input at
 * (a (x + .5) + b (y + .5) + c', d (x + .5) + e (y + .5) + f) in coordinates where pixel i covers
 * [i, i + 1); a sample outside the image is 0 (PIL's fill). `bilinear` as PIL's BILINEAR (the
 * four neighbours' centres, clamped at the border), else NEAREST. */
void at_augmix_affine(const float *in, float *out, int c, int h, int w, const double m[6],
                      bool bilinear);
/* Image.rotate(degrees) (counter-clockwise about the centre), bilinear as the authors' code. */
void at_augmix_rotate(const float *in, float *out, int c, int h, int w, double degrees,
                      bool bilinear);

/* One operation with AugMix's random parameter at `severity`: level ~ U(0.1, severity), scaled
 * as int_parameter/float_parameter (level * max / 10) and negated with probability 1/2 for the
 * geometric ones: rotate up to 30 degrees (integer), shear up to 0.3, translate up to a third of
 * the width (x) or height (y) in whole pixels, posterize to 4 - int(level * 4 / 10) bits,
 * solarize at 256 - int(level * 256 / 10). Geometric operations resample bilinearly with fill 0
 * (the authors pass resample=Image.BILINEAR). `tmp` holds one image. */
void at_augmix_apply(at_augmix_op op, int severity, float *img, float *tmp, int c, int h, int w,
                     at_rng *rng);

/* Algorithm 1 (augment_and_mix): `width` chains of `depth` random operations on copies of x,
 * mixed with weights ~ Dirichlet(alpha), blended with x: out = (1 - m) x + m sum_i w_i chain_i,
 * m ~ Beta(alpha, alpha). `scratch` holds 2 images; `chains`, when not NULL, receives the chain
 * images [width, image] (to check the mixing). Every draw comes from rng. */
void at_augmix(const float *x, float *out, float *scratch, float *chains, int c, int h, int w,
               const at_augmix_options *o, at_rng *rng);

#endif
