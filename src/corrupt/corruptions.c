/* corruptions.c: the table of common corruptions (corruption.h) and the library calls over it. */
#include "corrupt/corruption.h"

#include <string.h>

/* The order of CIFAR-10-C's tables: noise, blur, weather, digital. */
static const at_corruption corruptions[] = {
    {"gaussian_noise", "noise", at_corrupt_gaussian_noise, NULL},
    {"shot_noise", "noise", at_corrupt_shot_noise, NULL},
    {"impulse_noise", "noise", at_corrupt_impulse_noise, NULL},
    {"defocus_blur", "blur", at_corrupt_defocus_blur, NULL},
    {"glass_blur", "blur", at_corrupt_glass_blur,
     "no rounding to 8 bits between the first blur and the shuffle"},
    {"motion_blur", "blur", at_corrupt_motion_blur,
     "ImageMagick's motion blur reimplemented, in float without its 8-bit PNG round trip"},
    {"zoom_blur", "blur", at_corrupt_zoom_blur, NULL},
    {"snow", "weather", at_corrupt_snow,
     "ImageMagick's motion blur reimplemented; the snow layer stays float (not 8-bit)"},
    {"frost", "weather", at_corrupt_frost,
     "procedural stand-in (plasma haze, crystal needles) for the published frost photographs"},
    {"fog", "weather", at_corrupt_fog, NULL},
    {"brightness", "weather", at_corrupt_brightness, NULL},
    {"contrast", "digital", at_corrupt_contrast, NULL},
    {"elastic_transform", "digital", at_corrupt_elastic_transform, NULL},
    {"pixelate", "digital", at_corrupt_pixelate,
     "PIL's BOX resampling in float, without its rounding to 8 bits between passes"},
    {"jpeg_compression", "digital", at_corrupt_jpeg_compression, NULL},
};

enum { N_CORRUPTIONS = (int)(sizeof(corruptions) / sizeof(corruptions[0])) };

int at_corruption_count(void) { return N_CORRUPTIONS; }

const char *at_corruption_name(int i)
{
    return i >= 0 && i < N_CORRUPTIONS ? corruptions[i].name : NULL;
}

const char *at_corruption_family(int i)
{
    return i >= 0 && i < N_CORRUPTIONS ? corruptions[i].family : NULL;
}

const char *at_corruption_note(int i)
{
    return i >= 0 && i < N_CORRUPTIONS ? corruptions[i].note : NULL;
}

int at_corruption_find(const char *name)
{
    for (int i = 0; i < N_CORRUPTIONS; i++)
        if (strcmp(corruptions[i].name, name) == 0)
            return i;
    return AT_ERR_NOTFOUND;
}

int at_corrupt_images(int corruption, int severity, float *images, int n, int c, int h, int w,
                      uint64_t seed, long first_index, at_error *err)
{
    if (corruption < 0 || corruption >= N_CORRUPTIONS)
        return at_fail(err, AT_ERR_ARG, "corruption %d: there are %d", corruption, N_CORRUPTIONS);
    const at_corruption *k = &corruptions[corruption];
    if (severity < 1 || severity > 5)
        return at_fail(err, AT_ERR_ARG, "%s: severity %d is not in 1..5", k->name, severity);
    if (n < 0 || (c != 1 && c != 3) || h < 1 || w < 1)
        return at_fail(err, AT_ERR_ARG, "%s: images must be [n, 1 or 3, h, w], got [%d, %d, %d, %d]",
                       k->name, n, c, h, w);
    size_t image = (size_t)c * h * w;
    for (int i = 0; i < n; i++) {
        float *x = images + (size_t)i * image;
        for (size_t j = 0; j < image; j++)
            if (!(x[j] >= 0.0f && x[j] <= 1.0f))
                return at_fail(err, AT_ERR_ARG, "%s: image %ld has a pixel outside [0, 1]",
                               k->name, first_index + i);
        /* one stream per (image, corruption, severity): the same image gets the same corruption
         * in any batch and on any machine */
        at_rng rng;
        at_rng_stream(&rng, seed, (uint64_t)(first_index + i),
                      (uint64_t)corruption * 8 + (uint64_t)severity);
        int rc = k->apply(x, c, h, w, severity, &rng, err);
        if (rc < 0)
            return rc;
    }
    return 0;
}
