/* corruption.h: the common corruptions of the CIFAR-10-C benchmark (Hendrycks and Dietterich,
 * "Benchmarking Neural Network Robustness to Common Corruptions and Perturbations", ICLR 2019) as a
 * table. Each corruption is one file that defines one function corrupting one image in place; the
 * table in corruptions.c names it. Images are float [c, h, w] in [0, 1] (c = 1 grey or 3 RGB) of
 * any size: the published severity tables are for 32x32 images and each corruption says how it
 * scales its spatial parameters to other sizes. */
#ifndef AT_CORRUPTION_H
#define AT_CORRUPTION_H

#include "advtrain.h"
#include "core/util.h"

/* Corrupts image [c, h, w] in place at severity 1..5 (checked by the caller), drawing any
 * randomness from rng (a stream of its own per image). The result is in [0, 1]. */
typedef int (*at_corrupt_fn)(float *image, int c, int h, int w, int severity, at_rng *rng,
                             at_error *err);

typedef struct at_corruption {
    const char *name;   /* as in CIFAR-10-C's file names: "gaussian_noise", "jpeg_compression" */
    const char *family; /* "noise", "blur", "weather" or "digital" */
    at_corrupt_fn apply;
    const char *note;   /* how it departs from the published definition, or NULL */
} at_corruption;

/* One entry per corruption file (gaussian_noise.c defines at_corrupt_gaussian_noise, ...). */
int at_corrupt_gaussian_noise(float *image, int c, int h, int w, int severity, at_rng *rng,
                              at_error *err);
int at_corrupt_shot_noise(float *image, int c, int h, int w, int severity, at_rng *rng,
                          at_error *err);
int at_corrupt_impulse_noise(float *image, int c, int h, int w, int severity, at_rng *rng,
                             at_error *err);
int at_corrupt_defocus_blur(float *image, int c, int h, int w, int severity, at_rng *rng,
                            at_error *err);
int at_corrupt_glass_blur(float *image, int c, int h, int w, int severity, at_rng *rng,
                          at_error *err);
int at_corrupt_motion_blur(float *image, int c, int h, int w, int severity, at_rng *rng,
                           at_error *err);
int at_corrupt_zoom_blur(float *image, int c, int h, int w, int severity, at_rng *rng,
                         at_error *err);
int at_corrupt_snow(float *image, int c, int h, int w, int severity, at_rng *rng, at_error *err);
int at_corrupt_frost(float *image, int c, int h, int w, int severity, at_rng *rng, at_error *err);
int at_corrupt_fog(float *image, int c, int h, int w, int severity, at_rng *rng, at_error *err);
int at_corrupt_brightness(float *image, int c, int h, int w, int severity, at_rng *rng,
                          at_error *err);
int at_corrupt_contrast(float *image, int c, int h, int w, int severity, at_rng *rng,
                        at_error *err);
int at_corrupt_elastic_transform(float *image, int c, int h, int w, int severity, at_rng *rng,
                                 at_error *err);
int at_corrupt_pixelate(float *image, int c, int h, int w, int severity, at_rng *rng,
                        at_error *err);
int at_corrupt_jpeg_compression(float *image, int c, int h, int w, int severity, at_rng *rng,
                                at_error *err);

#endif
