/* image.h: one decoded picture file and the steps that turn it into an example of a dataset:
 * decoding PNG and JPEG (image_decode.c), then converting grey and colour and resizing
 * (image_resize.c). Internal to the library; the image-folder loader is their user. */
#ifndef AT_IMAGE_H
#define AT_IMAGE_H

#include "advtrain.h"

#include <stddef.h>
#include <stdint.h>

/* Pixels as the file stores them: [h][w][c] interleaved, c = 1 (grey) or 3 (RGB). */
typedef struct image_pixels {
    int c, h, w;
    uint8_t *data; /* malloc'ed; free with image_pixels_free */
} image_pixels;

void image_pixels_free(image_pixels *img);

/* Decodes a whole PNG or JPEG file held in memory, chosen by its signature (not its name).
 * `path` only names the file in messages. Palette, low-bit-depth and 16-bit PNGs become 8-bit
 * grey or RGB; an alpha channel is dropped (the colours as stored). Any damage libpng or libjpeg
 * notices, including data that ends early and a JPEG warning ("Premature end of JPEG file",
 * "Corrupt JPEG data"), is an AT_ERR_FORMAT error naming the file. */
int image_decode(image_pixels *out, const uint8_t *bytes, size_t size, const char *path,
                 at_error *err);

/* Converts img in place to `channels` (1 or 3): grey to colour repeats the value; colour to grey
 * is ITU-R BT.601 luma. */
int image_to_channels(image_pixels *img, int channels, at_error *err);

/* How an image of another size is made height x width. */
typedef enum image_fit {
    IMAGE_FIT_STRETCH, /* the whole image, each axis scaled on its own (the aspect may change) */
    IMAGE_FIT_CROP     /* scaled alike on both axes to cover the size, the overflow cut evenly off
                          both sides (torchvision's Resize then CenterCrop) */
} image_fit;

/* Writes img as a CHW example of img->c x height x width into dst, resampling by area: each
 * output pixel is the mean of the source area it covers (weights are overlap lengths per axis),
 * rounded to nearest. An image already that size is copied exactly. */
int image_resize_into(uint8_t *dst, int height, int width, const image_pixels *img,
                      image_fit fit, at_error *err);

#endif
