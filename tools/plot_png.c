/* plot_png.c: the example grid of plots.h as an 8-bit grey or RGB PNG, through libpng. An image
 * of other than 1 or 3 channels (a video clip stores its frames as channels) is drawn as its
 * channels side by side in grey, so each cell is a film strip. The image
 * is produced one output row at a time, so memory stays at one row however many examples the
 * grid holds; libpng's longjmp error path is confined to one function that owns no resources. */
#include "plots.h"

#include <errno.h>
#include <math.h>
#include <png.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum {
    GAP = 2,          /* white pixels between cells, across and down */
    MAX_ZOOM = 32,
    MAX_FRAMES = 64,
    FRAME_GAP = 1,    /* white pixels between the frames of a strip */
    WHITE = 255
};

/* libpng refuses sides over a million pixels by default; the area bound keeps every index below
 * in range even for 32-bit size_t and stops a typo from writing gigabytes. */
#define MAX_SIDE 1000000LL
#define MAX_PIXELS (1LL << 28)

typedef struct grid {
    const float *clean, *adv;
    const float *map;    /* maps instead of adv: [n, h, w], >= 0, each drawn scaled to its max */
    float *map_scale;    /* [n]: 1 / each map's largest value */
    int columns;         /* clean, adversarial, perturbation; or image, map */
    int n, c, h, w, zoom;
    int pixel;           /* bytes per PNG pixel: 3 for RGB images, else 1 (grey) */
    int frames;          /* images per cell: 1, or c grey frames side by side */
    int cell_w;          /* a cell's width in pixels */
    int width, height;   /* of the whole picture, in pixels */
    float amplify;       /* perturbation scale: 0.5 / largest |adv - clean| */
} grid;

static float clamp01(float v)
{
    return v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v;
}

/* Rounded in double: in float, 0.7f * 255 rounds up to exactly 178.5 before the + 0.5. */
static png_byte quantise(float v)
{
    return (png_byte)(clamp01(v) * 255.0 + 0.5);
}

/* The value shown for one cell at (channel, row, col) of example i; cells show clamped images,
 * so the perturbation column is computed from what the first two columns display. */
static float cell_value(const grid *g, int cell, int i, int ch, int row, int col)
{
    size_t at = (((size_t)i * g->c + ch) * g->h + row) * g->w + col;
    float clean = clamp01(g->clean[at]);
    if (cell == 0)
        return clean;
    if (g->map)
        return g->map[((size_t)i * g->h + row) * g->w + col] * g->map_scale[i];
    float adv = clamp01(g->adv[at]);
    if (cell == 1)
        return adv;
    return 0.5f + (adv - clean) * g->amplify;
}

/* Fills output row y (width * pixel bytes). */
static void build_row(const grid *g, int y, png_byte *row)
{
    int cell_h = g->h * g->zoom;
    int i = y / (cell_h + GAP), within = y % (cell_h + GAP);
    memset(row, WHITE, (size_t)g->width * g->pixel);
    if (within >= cell_h)
        return; /* a gap row between examples */
    int image_row = within / g->zoom;
    for (int cell = 0; cell < g->columns; cell++)
        for (int f = 0; f < g->frames; f++) {
            png_byte *out = row + ((size_t)cell * (g->cell_w + GAP) +
                                   (size_t)f * (g->w * g->zoom + FRAME_GAP)) * g->pixel;
            for (int col = 0; col < g->w; col++)
                for (int p = 0; p < g->pixel; p++) {
                    /* a strip's frame f is channel f; an RGB pixel's byte p is channel p */
                    png_byte v = quantise(cell_value(g, cell, i, f + p, image_row, col));
                    for (int z = 0; z < g->zoom; z++)
                        out[((size_t)col * g->zoom + z) * g->pixel + p] = v;
                }
        }
}

/* libpng's handles and the message of its last error. Owned by the caller of encode(), so
 * nothing encode() must clean up lives in its own frame when libpng longjmps back into it. */
typedef struct png_writer {
    png_structp png;
    png_infop info;
    char message[256];
} png_writer;

static void on_png_error(png_structp png, png_const_charp message)
{
    png_writer *writer = png_get_error_ptr(png);
    snprintf(writer->message, sizeof writer->message, "%s", message);
    png_longjmp(png, 1);
}

static void on_png_warning(png_structp png, png_const_charp message)
{
    (void)png;
    (void)message; /* helpers never print; a warning does not make the file wrong */
}

/* Writes the picture to `file`; -1 with writer->message set on failure. Frees libpng's handles
 * on both paths. `row` holds one output row. */
static int encode(png_writer *writer, FILE *file, const grid *g, png_byte *row)
{
    writer->png = png_create_write_struct(PNG_LIBPNG_VER_STRING, writer, on_png_error,
                                          on_png_warning);
    if (!writer->png) {
        snprintf(writer->message, sizeof writer->message, "out of memory");
        return -1;
    }
    writer->info = png_create_info_struct(writer->png);
    if (!writer->info) {
        png_destroy_write_struct(&writer->png, NULL);
        snprintf(writer->message, sizeof writer->message, "out of memory");
        return -1;
    }
    if (setjmp(png_jmpbuf(writer->png))) {
        png_destroy_write_struct(&writer->png, &writer->info);
        return -1;
    }
    png_init_io(writer->png, file);
    png_set_IHDR(writer->png, writer->info, (png_uint_32)g->width, (png_uint_32)g->height, 8,
                 g->pixel == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(writer->png, writer->info);
    for (int y = 0; y < g->height; y++) {
        build_row(g, y, row);
        png_write_row(writer->png, row);
    }
    png_write_end(writer->png, NULL);
    png_destroy_write_struct(&writer->png, &writer->info);
    return 0;
}

/* Checks images and maps, and scales each map to its largest value. */
static int plan_maps(grid *g, const char *path, at_error *err)
{
    const size_t image = (size_t)g->c * g->h * g->w, plane = (size_t)g->h * g->w;
    for (int i = 0; i < g->n; i++) {
        float largest = 0.0f;
        for (size_t k = 0; k < image; k++)
            if (!isfinite(g->clean[(size_t)i * image + k]))
                return plot_error(err, AT_ERR_NUMERIC, "%s: non-finite pixel in example %d", path, i);
        for (size_t k = 0; k < plane; k++) {
            const float v = g->map[(size_t)i * plane + k];
            if (!isfinite(v) || v < 0.0f)
                return plot_error(err, AT_ERR_NUMERIC, "%s: map %d holds %g (maps are finite "
                                  "and >= 0)", path, i, (double)v);
            largest = v > largest ? v : largest;
        }
        g->map_scale[i] = largest > 0.0f ? 1.0f / largest : 0.0f;
    }
    return AT_OK;
}

/* Checks the arguments and fills the geometry and perturbation scale of `g`. */
static int plan_grid(grid *g, const char *path, at_error *err)
{
    if (!g->clean || (!g->adv && !g->map))
        return plot_error(err, AT_ERR_ARG, "%s: no images given", path);
    if (g->n < 1 || g->c < 1 || g->c > MAX_FRAMES || g->h < 1 || g->w < 1)
        return plot_error(err, AT_ERR_ARG,
                         "%s: bad image shape n=%d c=%d h=%d w=%d (need n,h,w >= 1, c 1..%d)",
                         path, g->n, g->c, g->h, g->w, MAX_FRAMES);
    if (g->zoom < 1 || g->zoom > MAX_ZOOM)
        return plot_error(err, AT_ERR_ARG, "%s: zoom %d is outside 1..%d", path, g->zoom,
                         MAX_ZOOM);
    g->pixel = g->c == 3 ? 3 : 1;
    g->frames = g->c == 3 ? 1 : g->c;
    long long cell_w = g->frames * ((long long)g->w * g->zoom) + (g->frames - 1LL) * FRAME_GAP;
    long long width = g->columns * cell_w + (g->columns - 1LL) * GAP;
    long long height = g->n * ((long long)g->h * g->zoom) + (g->n - 1LL) * GAP;
    if (width > MAX_SIDE || height > MAX_SIDE || width * height > MAX_PIXELS)
        return plot_error(err, AT_ERR_ARG, "%s: a %lld x %lld pixel grid is too large", path,
                         width, height);
    g->cell_w = (int)cell_w;
    g->width = (int)width;
    g->height = (int)height;
    size_t count = (size_t)g->n * g->c * g->h * g->w;
    if (g->map)
        return plan_maps(g, path, err);
    float largest = 0.0f;
    for (size_t k = 0; k < count; k++) {
        if (!isfinite(g->clean[k]) || !isfinite(g->adv[k]))
            return plot_error(err, AT_ERR_NUMERIC, "%s: non-finite pixel in example %zu", path,
                             k / ((size_t)g->c * g->h * g->w));
        float d = fabsf(clamp01(g->adv[k]) - clamp01(g->clean[k]));
        largest = d > largest ? d : largest;
    }
    g->amplify = largest > 0.0f ? 0.5f / largest : 0.0f;
    return AT_OK;
}

/* Plans and writes the picture atomically. */
static int write_grid(const char *path, grid *g, at_error *err)
{
    if (!path)
        return plot_error(err, AT_ERR_ARG, "(null): no file name given");
    int status = plan_grid(g, path, err);
    if (status)
        return status;
    char tmp[4096];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= sizeof tmp)
        return plot_error(err, AT_ERR_ARG, "%s: path too long", path);
    png_byte *row = malloc((size_t)g->width * g->pixel);
    if (!row)
        return plot_error(err, AT_ERR_NOMEM, "%s: out of memory", path);
    FILE *file = fopen(tmp, "wb");
    if (!file) {
        status = plot_error(err, AT_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
        free(row);
        return status;
    }
    png_writer writer = {0};
    if (encode(&writer, file, g, row)) {
        status = plot_error(err, AT_ERR_IO, "%s: cannot write: %s", path, writer.message);
        fclose(file);
    } else if (fclose(file) != 0) {
        status = plot_error(err, AT_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
    } else if (rename(tmp, path) != 0) {
        status = plot_error(err, AT_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
    }
    free(row);
    if (status)
        remove(tmp);
    return status;
}

int plot_png_grid(const char *path, const float *clean, const float *adv, int n, int c, int h,
                  int w, int zoom, at_error *err)
{
    grid g = {.clean = clean, .adv = adv, .columns = 3, .n = n, .c = c, .h = h, .w = w,
              .zoom = zoom};
    return write_grid(path, &g, err);
}

int plot_png_images(const char *path, const float *images, int n, int c, int h, int w, int zoom,
                    at_error *err)
{
    grid g = {.clean = images, .adv = images, .columns = 1, .n = n, .c = c, .h = h, .w = w,
              .zoom = zoom};
    return write_grid(path, &g, err);
}

int plot_png_maps(const char *path, const float *images, const float *maps, int n, int c, int h,
                  int w, int zoom, at_error *err)
{
    if (n < 1 || !maps)
        return plot_error(err, AT_ERR_ARG, "%s: no maps given", path ? path : "(null)");
    grid g = {.clean = images, .map = maps, .columns = 2, .n = n, .c = c, .h = h, .w = w,
              .zoom = zoom};
    g.map_scale = malloc((size_t)n * sizeof(float));
    if (!g.map_scale)
        return plot_error(err, AT_ERR_NOMEM, "%s: out of memory", path ? path : "(null)");
    int status = write_grid(path, &g, err);
    free(g.map_scale);
    return status;
}

int plot_error(at_error *err, int status, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof err->message, fmt, ap);
        va_end(ap);
        err->status = status;
    }
    return status;
}
