/* plots.h: the pictures the tool writes next to its JSON reports: a PNG grid of clean and
 * adversarial examples (plot_png.c), an SVG line chart such as accuracy against epsilon
 * (plot_svg.c) and an SVG reliability diagram (plot_reliability.c). Every file is written
 * through a temp file and rename, so a reader never sees half a picture and a failed call leaves
 * any existing file as it was. */
#ifndef ADVTRAIN_PLOTS_H
#define ADVTRAIN_PLOTS_H

#include "advtrain.h"

#include <stdio.h>

/* A grid of examples, one row each: the clean image, the adversarial image, and the
 * perturbation (adv - clean) mapped to [0,1] around 0.5 and amplified so the largest
 * |perturbation| in the grid reaches 0 or 1. Images are float CHW in [0,1] with 1 (grey) or 3
 * (RGB) channels, or up to 64 channels drawn side by side in grey (the frames of a clip); each
 * pixel is drawn as a `zoom` x `zoom` block, with a 2-pixel white gap
 * between cells. Written with libpng, atomically (temp file + rename). */
int plot_png_grid(const char *path, const float *clean, const float *adv, int n, int c, int h,
                  int w, int zoom, at_error *err);

/* The images alone, one column of n rows (a mosaic of samples is one image). The same checks
 * and atomic writing as plot_png_grid. */
int plot_png_images(const char *path, const float *images, int n, int c, int h, int w, int zoom,
                    at_error *err);

/* A grid of two columns: each image, and beside it a map [n, h, w] of values >= 0 (an input
 * gradient's magnitude per pixel) drawn in grey from black (0) to white (that map's largest
 * value). The same checks and atomic writing as plot_png_grid. */
int plot_png_maps(const char *path, const float *images, const float *maps, int n, int c, int h,
                  int w, int zoom, at_error *err);

typedef struct plot_series {
    const char *name;            /* legend entry */
    const double *y;             /* n values */
    const double *lo, *hi;       /* optional (NULL) confidence band, n values each */
} plot_series;

/* A self-contained SVG line chart (no scripts, no external fonts or files): axes with ticks and
 * labels, one polyline with markers per series, an optional shaded band per series, a legend
 * and a title. x values must be finite; y values may be NaN (the point is skipped). Written
 * atomically. */
int plot_svg_lines(const char *path, const char *title, const char *x_label, const char *y_label,
                   const double *x, int n, const plot_series *series, int n_series,
                   at_error *err);

/* A reliability diagram (Guo et al., ICML 2017, figure 1) as a self-contained SVG: for each of
 * `bins` equal-width confidence bins a bar of the bin's accuracy, the gap up or down to its mean
 * confidence shaded, the diagonal of perfect calibration, and below them the bin counts as a
 * histogram; the legend gives the ECE and the number of predictions. accuracy and confidence
 * are in [0, 1] for a bin with count > 0 and ignored (may be NaN) for an empty one. Written
 * atomically; AT_ERR_ARG for bins outside 1..1000, a negative count, no predictions at all, or a
 * value outside [0, 1]. */
int plot_svg_reliability(const char *path, const char *title, int bins, const long *count,
                         const double *accuracy, const double *confidence, double ece,
                         at_error *err);

/* The SVG writers' shared pieces: text escaped as XML character data, and a file written by
 * put() through a temp file and rename (removed on failure). */
void plot_svg_text(FILE *f, const char *s);
int plot_write_atomic(const char *path, void (*put)(FILE *f, const void *ctx), const void *ctx,
                      at_error *err);

/* Fills err (when not NULL) with status and a formatted message; returns status. */
int plot_error(at_error *err, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
