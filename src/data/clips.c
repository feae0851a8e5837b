/* clips.c: video clips made from still images, a stand-in for video data sets (UCF101) in the
 * adversarial training of video classifiers (Kinfu and Vidal, arXiv 2206.07953): the item of
 * each image, halved, moves at a constant speed in a frame of the image's size and bounces off its
 * edges. A clip is stored as an image whose channels are its frames (frame t in channels t*C ..
 * t*C + C - 1), so attacks, training methods and reports work on clips unchanged, with the
 * perturbation budget on the whole clip.
 *
 * Clip i depends only on (seed, i, image i): its draws come from the stream (seed, i, CLIPS), and
 * everything is integer arithmetic, so the bytes are the same on every machine. */
#include "core/util.h"

#include <stdio.h>
#include <string.h>

#define CLIPS 0x636c697073ull /* "clips": the purpose of the random stream */
#define MAX_SPEED 3

/* The item: each pixel the rounded mean of a 2x2 block, for C planes of h x w (even). */
static void halve(const uint8_t *image, int c, int h, int w, uint8_t *item)
{
    const int ih = h / 2, iw = w / 2;
    for (int ch = 0; ch < c; ch++)
        for (int y = 0; y < ih; y++)
            for (int x = 0; x < iw; x++) {
                const uint8_t *p = image + ((size_t)ch * h + 2 * y) * w + 2 * x;
                unsigned sum = (unsigned)p[0] + p[1] + p[w] + p[w + 1];
                item[((size_t)ch * ih + y) * iw + x] = (uint8_t)((sum + 2) / 4);
            }
}

/* Reflects a position off 0 and max, reversing the velocity at each bounce; a speed above max
 * can cross both edges in one step, so it reflects until the position is inside. */
static void bounce(int *pos, int *vel, int max)
{
    for (;;) {
        if (*pos < 0)
            *pos = -*pos;
        else if (*pos > max)
            *pos = 2 * max - *pos;
        else
            return;
        *vel = -*vel;
    }
}

/* One clip: the start uniform on [0, max_x] x [0, max_y], then the velocity uniform among the
 * 48 pairs in [-3, 3]^2 other than (0, 0) (each component uniform on -3..3, conditioned on not
 * both being 0). Draws in this order: x, y, velocity. */
static void make_clip(const uint8_t *item, int c, int h, int w, int frames, at_rng *rng,
                      uint8_t *clip)
{
    const int ih = h / 2, iw = w / 2, max_x = w - iw, max_y = h - ih;
    const int side = 2 * MAX_SPEED + 1;
    int x = (int)at_rng_below(rng, (uint32_t)max_x + 1);
    int y = (int)at_rng_below(rng, (uint32_t)max_y + 1);
    int v = (int)at_rng_below(rng, (uint32_t)(side * side - 1));
    v += v >= side * side / 2; /* skip (0, 0), the middle of the grid */
    int vx = v % side - MAX_SPEED, vy = v / side - MAX_SPEED;
    const size_t plane = (size_t)h * w;
    memset(clip, 0, (size_t)frames * c * plane);
    for (int t = 0; t < frames; t++) {
        for (int ch = 0; ch < c; ch++) {
            uint8_t *frame = clip + ((size_t)t * c + ch) * plane;
            for (int r = 0; r < ih; r++)
                memcpy(frame + (size_t)(y + r) * w + x, item + ((size_t)ch * ih + r) * iw,
                       (size_t)iw);
        }
        x += vx;
        y += vy;
        bounce(&x, &vx, max_x);
        bounce(&y, &vy, max_y);
    }
}

int at_dataset_make_clips(at_dataset *out, const at_dataset *src, int frames, uint64_t seed,
                          at_error *err)
{
    if (out == src)
        return at_fail(err, AT_ERR_ARG, "%s: cannot make clips into the source itself", src->name);
    memset(out, 0, sizeof *out);
    if (frames < 1 || frames > 64)
        return at_fail(err, AT_ERR_ARG, "%s: %d frames per clip, expected 1..64", src->name, frames);
    if (src->h < 4 || src->w < 4 || src->h % 2 || src->w % 2)
        return at_fail(err, AT_ERR_SHAPE,
                       "%s: clips need even image sizes of at least 4x4, the images are %dx%d",
                       src->name, src->h, src->w);
    if (src->n < 0 || src->c < 1 || src->c > 65536 / frames)
        return at_fail(err, AT_ERR_ARG, "%s: %d images of %d channels cannot make %d-frame clips",
                       src->name, src->n, src->c, frames);
    const size_t image = (size_t)src->c * src->h * src->w;
    size_t clip, total;
    if (!at_mul_size(image, (size_t)frames, &clip) || !at_mul_size(clip, (size_t)src->n, &total))
        return at_fail(err, AT_ERR_NOMEM, "%s: %d clips of %d frames are too large", src->name,
                       src->n, frames);
    uint8_t *item = at_alloc(image / 4);
    out->images = at_alloc(total);
    out->labels = at_alloc((size_t)src->n * sizeof(int32_t));
    if (!item || (total && !out->images) || (src->n && !out->labels)) {
        at_free(item);
        at_dataset_free(out);
        return at_fail(err, AT_ERR_NOMEM, "%s: out of memory for %d clips of %d frames (%zu MiB)",
                       src->name, src->n, frames, total >> 20);
    }
    snprintf(out->name, sizeof out->name, "%.57s-clips", src->name);
    out->n = src->n;
    out->c = src->c * frames;
    out->h = src->h;
    out->w = src->w;
    out->num_classes = src->num_classes;
    for (int i = 0; i < src->n; i++) {
        at_rng rng;
        at_rng_stream(&rng, seed, (uint64_t)i, CLIPS);
        halve(src->images + (size_t)i * image, src->c, src->h, src->w, item);
        make_clip(item, src->c, src->h, src->w, frames, &rng, out->images + (size_t)i * clip);
        out->labels[i] = src->labels[i];
    }
    at_free(item);
    return AT_OK;
}
