/* plots_test.c: the tool's picture writers (tools/plot_png.c, tools/plot_svg.c,
 * tools/plot_reliability.c): PNG grids read back with libpng pixel by pixel, SVG charts and
 * reliability diagrams checked as text, and failures that must leave neither a file nor a temp
 * file behind. Not named test_*.c: it is built by its own rule in CMakeLists.txt, with the
 * tools' sources and libpng. */
#include "test.h"

#include "plots.h"

#include <ctype.h>
#include <dirent.h>
#include <png.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

/* A fresh directory under /tmp; false when it cannot be made. */
static bool make_dir(char *dir, size_t size)
{
    snprintf(dir, size, "/tmp/advtrain-plots-XXXXXX");
    return mkdtemp(dir) != NULL;
}

/* Removes the directory and what it holds (files and empty subdirectories). */
static void remove_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    char path[512];
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        remove(path);
    }
    closedir(d);
    rmdir(dir);
}

static int count_temp_files(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    int count = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        count += strstr(e->d_name, ".tmp.") != NULL;
    closedir(d);
    return count;
}

static bool exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* The whole file as a NUL-terminated string; NULL when unreadable. */
static char *read_text(const char *path, size_t *length)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *text = size >= 0 ? malloc((size_t)size + 1) : NULL;
    if (text && fread(text, 1, (size_t)size, f) == (size_t)size) {
        text[size] = '\0';
        if (length)
            *length = (size_t)size;
    } else {
        free(text);
        text = NULL;
    }
    fclose(f);
    return text;
}

/* A PNG read back with libpng's simplified API, in its own format: *channels is 1 for grey, 3
 * for RGB, and 0 when the file has alpha or anything else unexpected. */
static png_byte *read_png(const char *path, int *width, int *height, int *channels)
{
    png_image image = {.version = PNG_IMAGE_VERSION};
    if (!png_image_begin_read_from_file(&image, path))
        return NULL;
    *width = (int)image.width;
    *height = (int)image.height;
    *channels = image.format == PNG_FORMAT_GRAY ? 1 : image.format == PNG_FORMAT_RGB ? 3 : 0;
    png_byte *pixels = malloc(PNG_IMAGE_SIZE(image));
    if (!pixels || !png_image_finish_read(&image, NULL, pixels, 0, NULL)) {
        png_image_free(&image);
        free(pixels);
        return NULL;
    }
    return pixels;
}

static int quantised(float v)
{
    return (int)floor((v < 0 ? 0 : v > 1 ? 1 : v) * 255.0 + 0.5);
}

/* Grid geometry of the tests: cell k (0 clean, 1 adversarial, 2 perturbation) of example i. */
typedef struct layout {
    int h, w, zoom, width;
} layout;

static int pixel_at(const png_byte *pixels, const layout *l, int channels, int i, int cell,
                    int row, int col, int ch)
{
    int y = i * (l->h * l->zoom + 2) + row * l->zoom + l->zoom - 1;
    int x = cell * (l->w * l->zoom + 2) + col * l->zoom + l->zoom - 1;
    return pixels[((size_t)y * l->width + x) * channels + ch];
}

TEST(png_grey_grid)
{
    char dir[64], path[128];
    REQUIRE(make_dir(dir, sizeof dir));
    snprintf(path, sizeof path, "%s/grey.png", dir);
    enum { N = 2, H = 3, W = 4, ZOOM = 2 };
    float clean[N * H * W], adv[N * H * W];
    for (int k = 0; k < N * H * W; k++)
        clean[k] = adv[k] = (float)(k % 5) * 0.25f;
    adv[0] = -0.3f;                 /* clean 0: clamps to 0, so no perturbation shows */
    adv[1 * 12 + 0 * 4 + 1] += 0.1f; /* the largest change: perturbation 1 */
    adv[0 * 12 + 2 * 4 + 3] -= 0.05f; /* half as large, downwards: perturbation 0.25 */
    at_error err = {0};
    CHECK_OK(plot_png_grid(path, clean, adv, N, 1, H, W, ZOOM, &err), &err);
    int width = 0, height = 0, channels = -1;
    png_byte *pixels = read_png(path, &width, &height, &channels);
    REQUIRE(pixels);
    CHECK_EQ_INT(channels, 1);
    CHECK_EQ_INT(width, 3 * W * ZOOM + 2 * 2);
    CHECK_EQ_INT(height, N * H * ZOOM + (N - 1) * 2);
    layout l = {H, W, ZOOM, width};
    if (width == l.width && height == N * H * ZOOM + 2 && channels == 1) {
        for (int i = 0; i < N; i++)
            for (int r = 0; r < H; r++)
                for (int x = 0; x < W; x++) {
                    int k = (i * H + r) * W + x;
                    CHECK_EQ_INT(pixel_at(pixels, &l, 1, i, 0, r, x, 0), quantised(clean[k]));
                    CHECK_EQ_INT(pixel_at(pixels, &l, 1, i, 1, r, x, 0), quantised(adv[k]));
                    if (quantised(adv[k]) == quantised(clean[k]))
                        CHECK(abs(pixel_at(pixels, &l, 1, i, 2, r, x, 0) - 128) <= 1);
                }
        CHECK_EQ_INT(pixel_at(pixels, &l, 1, 0, 1, 0, 0, 0), 0);
        CHECK_EQ_INT(pixel_at(pixels, &l, 1, 0, 2, 0, 0, 0), 128);
        CHECK_EQ_INT(pixel_at(pixels, &l, 1, 1, 2, 0, 1, 0), 255);
        CHECK(abs(pixel_at(pixels, &l, 1, 0, 2, 2, 3, 0) - 64) <= 1);
        /* the first pixel of every block equals its last (the one checked above) */
        CHECK_EQ_INT(pixels[(size_t)(8 + 2 * 2) * width + 3 * 2], quantised(clean[12 + 8 + 3]));
        /* gaps: columns between cells and rows between examples are white */
        for (int y = 0; y < height; y++)
            for (int g = 0; g < 2; g++) {
                CHECK_EQ_INT(pixels[(size_t)y * width + W * ZOOM + g], 255);
                CHECK_EQ_INT(pixels[(size_t)y * width + 2 * (W * ZOOM + 2) - 2 + g], 255);
            }
        for (int x = 0; x < width; x++)
            for (int g = 0; g < 2; g++)
                CHECK_EQ_INT(pixels[(size_t)(H * ZOOM + g) * width + x], 255);
    }
    free(pixels);
    CHECK_EQ_INT(count_temp_files(dir), 0);
    remove_dir(dir);
}

TEST(png_gradient_maps)
{
    char dir[64], path[128];
    REQUIRE(make_dir(dir, sizeof dir));
    snprintf(path, sizeof path, "%s/maps.png", dir);
    enum { N = 2, H = 2, W = 3 };
    float images[N * H * W], maps[N * H * W];
    for (int k = 0; k < N * H * W; k++) {
        images[k] = (float)(k % 4) * 0.25f;
        maps[k] = (float)k; /* each map drawn from black to its own largest value, white */
    }
    at_error err = {0};
    CHECK_OK(plot_png_maps(path, images, maps, N, 1, H, W, 1, &err), &err);
    int width = 0, height = 0, channels = -1;
    png_byte *pixels = read_png(path, &width, &height, &channels);
    REQUIRE(pixels);
    CHECK_EQ_INT(channels, 1);
    CHECK_EQ_INT(width, 2 * W + 2);
    CHECK_EQ_INT(height, N * H + 2);
    layout l = {H, W, 1, width};
    if (width == 2 * W + 2 && height == N * H + 2 && channels == 1)
        for (int i = 0; i < N; i++)
            for (int r = 0; r < H; r++)
                for (int x = 0; x < W; x++) {
                    int k = (i * H + r) * W + x;
                    float top = (float)((i + 1) * H * W - 1);
                    CHECK_EQ_INT(pixel_at(pixels, &l, 1, i, 0, r, x, 0), quantised(images[k]));
                    CHECK_EQ_INT(pixel_at(pixels, &l, 1, i, 1, r, x, 0), quantised(maps[k] / top));
                }
    free(pixels);
    maps[3] = -1.0f; /* a magnitude is never negative */
    CHECK(plot_png_maps(path, images, maps, N, 1, H, W, 1, &err) == AT_ERR_NUMERIC);
    CHECK(strstr(err.message, "maps.png") != NULL);
    CHECK_EQ_INT(count_temp_files(dir), 0);
    remove_dir(dir);
}

TEST(png_rgb_grid)
{
    char dir[64], path[128];
    REQUIRE(make_dir(dir, sizeof dir));
    snprintf(path, sizeof path, "%s/rgb.png", dir);
    enum { C = 3, H = 2, W = 2 };
    const float clean[C * H * W] = {0.0f, 0.1f, 0.2f, 0.3f,   /* red plane */
                                    0.4f, 0.5f, 0.6f, 0.7f,   /* green */
                                    0.8f, 0.9f, 1.0f, 0.25f}; /* blue */
    float adv[C * H * W];
    memcpy(adv, clean, sizeof adv);
    adv[1 * 4 + 1 * 2 + 0] = 0.9f; /* green at row 1, column 0: +0.3, the largest change */
    at_error err = {0};
    CHECK_OK(plot_png_grid(path, clean, adv, 1, C, H, W, 1, &err), &err);
    int width = 0, height = 0, channels = -1;
    png_byte *pixels = read_png(path, &width, &height, &channels);
    REQUIRE(pixels);
    CHECK_EQ_INT(channels, 3);
    CHECK_EQ_INT(width, 3 * W + 4);
    CHECK_EQ_INT(height, H);
    layout l = {H, W, 1, width};
    if (channels == 3 && width == 3 * W + 4 && height == H) {
        for (int ch = 0; ch < C; ch++)
            for (int r = 0; r < H; r++)
                for (int x = 0; x < W; x++) {
                    int k = (ch * H + r) * W + x;
                    CHECK_EQ_INT(pixel_at(pixels, &l, 3, 0, 0, r, x, ch), quantised(clean[k]));
                    CHECK_EQ_INT(pixel_at(pixels, &l, 3, 0, 1, r, x, ch), quantised(adv[k]));
                    int expected = adv[k] == clean[k] ? 128 : 255;
                    CHECK(abs(pixel_at(pixels, &l, 3, 0, 2, r, x, ch) - expected) <= 1);
                }
        for (int ch = 0; ch < 3; ch++)
            CHECK_EQ_INT(pixels[(size_t)W * 3 + ch], 255); /* the gap after the clean cell */
    }
    free(pixels);
    remove_dir(dir);
}

/* A failing call: non-zero status, a message naming the file, no file and no temp file. */
static void check_png_fails(const char *dir, const char *path, const float *clean,
                            const float *adv, int n, int c, int h, int w, int zoom)
{
    at_error err = {0};
    int status = plot_png_grid(path, clean, adv, n, c, h, w, zoom, &err);
    CHECK(status != 0);
    CHECK_EQ_INT(err.status, status);
    CHECK(strstr(err.message, path) != NULL);
    CHECK(!exists(path));
    CHECK_EQ_INT(count_temp_files(dir), 0);
}

/* A clip (frames as channels, here 2 of 3x2): each cell is a grey strip of its frames with a
 * 1-pixel white gap between them. */
TEST(png_frames_strip)
{
    char dir[64], path[128];
    REQUIRE(make_dir(dir, sizeof dir));
    snprintf(path, sizeof path, "%s/strip.png", dir);
    enum { F = 2, H = 3, W = 2 };
    float clean[F * H * W], adv[F * H * W];
    for (int k = 0; k < F * H * W; k++)
        clean[k] = adv[k] = (float)k / (F * H * W);
    at_error err = {0};
    CHECK_OK(plot_png_grid(path, clean, adv, 1, F, H, W, 1, &err), &err);
    int width = 0, height = 0, channels = -1;
    png_byte *pixels = read_png(path, &width, &height, &channels);
    REQUIRE(pixels);
    CHECK_EQ_INT(channels, 1);
    CHECK_EQ_INT(width, 3 * (F * W + 1) + 2 * 2);
    CHECK_EQ_INT(height, H);
    if (width == 3 * (F * W + 1) + 4 && height == H)
        for (int cell = 0; cell < 2; cell++)
            for (int f = 0; f < F; f++)
                for (int r = 0; r < H; r++) {
                    const png_byte *row = pixels + (size_t)r * width + cell * (F * W + 1 + 2);
                    for (int x = 0; x < W; x++)
                        CHECK_EQ_INT(row[f * (W + 1) + x], quantised(clean[(f * H + r) * W + x]));
                    CHECK_EQ_INT(row[W], 255); /* between the frames */
                }
    free(pixels);
    remove_dir(dir);
}

TEST(png_bad_arguments)
{
    char dir[64], path[128], kept[128], blocked[128], missing[160];
    REQUIRE(make_dir(dir, sizeof dir));
    snprintf(path, sizeof path, "%s/bad.png", dir);
    float clean[12] = {0}, adv[12] = {0};
    check_png_fails(dir, path, clean, adv, 0, 1, 2, 2, 1);   /* no examples */
    check_png_fails(dir, path, clean, adv, 1, 0, 2, 2, 1);   /* no channels */
    check_png_fails(dir, path, clean, adv, 1, 65, 2, 2, 1);  /* more frames than a strip takes */
    check_png_fails(dir, path, clean, adv, 1, 1, 0, 2, 1);   /* no rows */
    check_png_fails(dir, path, clean, adv, 1, 1, 2, -1, 1);  /* negative width */
    check_png_fails(dir, path, clean, adv, 1, 1, 2, 2, 0);   /* zoom 0 */
    check_png_fails(dir, path, clean, adv, 1, 1, 2, 2, 33);  /* zoom past 32 */
    check_png_fails(dir, path, NULL, adv, 1, 1, 2, 2, 1);
    check_png_fails(dir, path, clean, adv, 1, 1, 1 << 20, 1 << 20, 1); /* absurd size */
    check_png_fails(dir, path, clean, adv, 1000000, 3, 1000, 1000, 32); /* would overflow */
    clean[5] = NAN;
    check_png_fails(dir, path, clean, adv, 1, 3, 2, 2, 1);
    clean[5] = 0.0f;
    adv[11] = INFINITY;
    check_png_fails(dir, path, clean, adv, 1, 3, 2, 2, 1);
    adv[11] = 0.0f;

    /* a failed call leaves an existing file as it was */
    snprintf(kept, sizeof kept, "%s/kept.png", dir);
    at_error err = {0};
    CHECK_OK(plot_png_grid(kept, clean, adv, 1, 3, 2, 2, 1, &err), &err);
    size_t before_size = 0, after_size = 0;
    char *before = read_text(kept, &before_size);
    adv[3] = NAN;
    CHECK(plot_png_grid(kept, clean, adv, 1, 3, 2, 2, 1, &err) == AT_ERR_NUMERIC);
    char *after = read_text(kept, &after_size);
    CHECK(before && after && before_size == after_size && !memcmp(before, after, before_size));
    free(before);
    free(after);
    adv[3] = 0.0f;

    /* failing at the rename (the target is a directory) removes the temp file */
    snprintf(blocked, sizeof blocked, "%s/blocked", dir);
    REQUIRE(mkdir(blocked, 0777) == 0);
    CHECK(plot_png_grid(blocked, clean, adv, 1, 3, 2, 2, 1, &err) == AT_ERR_IO);
    CHECK(strstr(err.message, blocked) != NULL);
    CHECK_EQ_INT(count_temp_files(dir), 0);

    snprintf(missing, sizeof missing, "%s/no/such/dir.png", dir);
    CHECK(plot_png_grid(missing, clean, adv, 1, 3, 2, 2, 1, &err) == AT_ERR_IO);
    CHECK(strstr(err.message, missing) != NULL);
    remove_dir(dir);
}

/* Text-level checks that an SVG file is plausible XML without NaN or infinity anywhere. */
static void check_svg_text(const char *text, size_t length)
{
    CHECK(!strncmp(text, "<svg", 4));
    CHECK(length >= 7 && !strcmp(text + length - 7, "</svg>\n"));
    size_t opened = 0, closed = 0;
    char *lower = malloc(length + 1);
    REQUIRE(lower);
    for (size_t i = 0; i <= length; i++) {
        lower[i] = (char)tolower((unsigned char)text[i]);
        opened += text[i] == '<';
        closed += text[i] == '>';
        if (text[i] == '&')
            CHECK(!strncmp(text + i, "&amp;", 5) || !strncmp(text + i, "&lt;", 4) ||
                  !strncmp(text + i, "&gt;", 4) || !strncmp(text + i, "&quot;", 6));
    }
    CHECK_EQ_INT(opened, closed);
    CHECK(!strstr(lower, "nan"));
    CHECK(!strstr(lower, "inf"));
    free(lower);
}

static size_t count_of(const char *text, const char *needle)
{
    size_t count = 0;
    for (const char *p = strstr(text, needle); p; p = strstr(p + 1, needle))
        count++;
    return count;
}

TEST(svg_two_series_with_band_and_gap)
{
    char dir[64], path[128];
    REQUIRE(make_dir(dir, sizeof dir));
    snprintf(path, sizeof path, "%s/chart.svg", dir);
    const double x[4] = {0.0, 0.1, 0.2, 0.3};
    const double clean_y[4] = {0.91, 0.88, NAN, 0.8};
    const double pgd_y[4] = {0.5, 0.4, 0.3, 0.2}, pgd_lo[4] = {0.45, 0.35, 0.25, 0.15},
                 pgd_hi[4] = {0.55, 0.45, 0.35, 0.25};
    const plot_series series[2] = {{"clean accuracy", clean_y, NULL, NULL},
                                   {"PGD <20 steps>", pgd_y, pgd_lo, pgd_hi}};
    at_error err = {0};
    CHECK_OK(plot_svg_lines(path, "a < b & c", "epsilon", "accuracy", x, 4, series, 2, &err),
             &err);
    size_t length = 0;
    char *text = read_text(path, &length);
    REQUIRE(text);
    check_svg_text(text, length);
    CHECK(strstr(text, "clean accuracy"));
    CHECK(strstr(text, "PGD &lt;20 steps&gt;"));
    CHECK(strstr(text, "a &lt; b &amp; c"));
    CHECK(strstr(text, ">epsilon<") && strstr(text, ">accuracy<"));
    CHECK_EQ_INT(count_of(text, "<polyline"), 3); /* the clean line breaks at its NaN */
    CHECK_EQ_INT(count_of(text, "<polygon"), 1);
    CHECK_EQ_INT(count_of(text, "<circle"), 3 + 4 + 2); /* markers, then one per legend entry */
    CHECK(strstr(text, ">0.2<") && strstr(text, ">0.1<")); /* nice ticks, short labels */
    free(text);
    CHECK_EQ_INT(count_temp_files(dir), 0);
    remove_dir(dir);
}

TEST(svg_degenerate_ranges)
{
    char dir[64], path[128];
    REQUIRE(make_dir(dir, sizeof dir));
    snprintf(path, sizeof path, "%s/flat.svg", dir);
    const double one_x[1] = {3.0}, one_y[1] = {0.5}, nothing[2] = {NAN, -INFINITY};
    const double two_x[2] = {1.0, 1.0}, flat[2] = {7.0, 7.0};
    at_error err = {0};
    const plot_series single[1] = {{"single", one_y, NULL, NULL}};
    const plot_series empty[1] = {{"empty", nothing, NULL, NULL}};
    const plot_series equal[1] = {{"equal", flat, flat, flat}};
    const struct {
        const double *x;
        int n;
        const plot_series *s;
    } cases[3] = {{one_x, 1, single}, {two_x, 2, empty}, {two_x, 2, equal}};
    for (int c = 0; c < 3; c++) {
        CHECK_OK(plot_svg_lines(path, NULL, NULL, NULL, cases[c].x, cases[c].n, cases[c].s, 1,
                                &err),
                 &err);
        size_t length = 0;
        char *text = read_text(path, &length);
        REQUIRE(text);
        check_svg_text(text, length);
        free(text);
    }
    remove_dir(dir);
}

static void check_svg_fails(const char *dir, const char *path, const double *x, int n,
                            const plot_series *series, int n_series)
{
    at_error err = {0};
    int status = plot_svg_lines(path, "t", "x", "y", x, n, series, n_series, &err);
    CHECK(status != 0);
    CHECK_EQ_INT(err.status, status);
    CHECK(strstr(err.message, path) != NULL);
    CHECK(!exists(path));
    CHECK_EQ_INT(count_temp_files(dir), 0);
}

TEST(svg_bad_arguments)
{
    char dir[64], path[128], missing[160];
    REQUIRE(make_dir(dir, sizeof dir));
    snprintf(path, sizeof path, "%s/bad.svg", dir);
    const double x[3] = {0, 1, 2}, y[3] = {1, 2, 3}, bad_x[3] = {0, NAN, 2};
    const double inf_x[3] = {0, 1, INFINITY}, huge_x[2] = {-1.7e308, 1.7e308};
    const plot_series good[1] = {{"s", y, NULL, NULL}};
    const plot_series unnamed[1] = {{NULL, y, NULL, NULL}};
    const plot_series half_band[1] = {{"s", y, y, NULL}};
    check_svg_fails(dir, path, x, 0, good, 1);
    check_svg_fails(dir, path, x, 3, good, 0);
    check_svg_fails(dir, path, x, 3, NULL, 1);
    check_svg_fails(dir, path, NULL, 3, good, 1);
    check_svg_fails(dir, path, bad_x, 3, good, 1);
    check_svg_fails(dir, path, inf_x, 3, good, 1);
    check_svg_fails(dir, path, huge_x, 2, good, 1);
    check_svg_fails(dir, path, x, 3, unnamed, 1);
    check_svg_fails(dir, path, x, 3, half_band, 1);
    snprintf(missing, sizeof missing, "%s/no/such/chart.svg", dir);
    check_svg_fails(dir, missing, x, 3, good, 1);
    remove_dir(dir);
}

/* The <rect> elements of the group with this id, as (y, height) pairs; returns how many. */
static int group_rects(const char *text, const char *id, double *y, double *height, int cap)
{
    char open[64];
    snprintf(open, sizeof open, "<g id=\"%s\"", id);
    const char *p = strstr(text, open), *end = p ? strstr(p, "</g>") : NULL;
    int n = 0;
    for (const char *r = p ? strstr(p, "<rect") : NULL; r && r < end; r = strstr(r + 1, "<rect")) {
        double x, w;
        if (n < cap && sscanf(r, "<rect x=\"%lf\" y=\"%lf\" width=\"%lf\" height=\"%lf\"", &x,
                              &y[n], &w, &height[n]) == 4)
            n++;
    }
    return n;
}

TEST(svg_reliability_diagram)
{
    char dir[64], path[128];
    REQUIRE(make_dir(dir, sizeof dir));
    snprintf(path, sizeof path, "%s/reliability.svg", dir);
    /* four bins, one empty (its NaNs must not reach the file) */
    const long count[4] = {10, 0, 30, 60};
    const double acc[4] = {0.5, NAN, 0.5, 1.0}, conf[4] = {0.2, NAN, 0.6, 0.9};
    at_error err = {0};
    CHECK_OK(plot_svg_reliability(path, "clean <test>", 4, count, acc, conf, 0.0321, &err), &err);
    size_t length = 0;
    char *text = read_text(path, &length);
    REQUIRE(text);
    check_svg_text(text, length);
    CHECK(strstr(text, "clean &lt;test&gt;"));
    CHECK(strstr(text, "ECE 3.21%"));
    CHECK(strstr(text, "100 predictions, 4 bins"));
    CHECK(strstr(text, "<line id=\"diagonal\""));
    double y[8], h[8];
    /* accuracy bars: heights in proportion to the accuracies (0.5, 0.5, 1), from one baseline */
    REQUIRE(group_rects(text, "accuracy", y, h, 8) == 3);
    CHECK_CLOSE(h[0] / h[2], 0.5, 1e-3, 0);
    CHECK_CLOSE(h[1] / h[2], 0.5, 1e-3, 0);
    CHECK_CLOSE(y[0] + h[0], y[2] + h[2], 1e-6, 0);
    const double full = h[2];
    /* gaps: |acc - conf| = 0.3, 0.1, 0.1 of the full height; the first (under-confident) spans
     * 0.2..0.5, so it starts where the accuracy bar does */
    REQUIRE(group_rects(text, "gap", y, h, 8) == 3);
    CHECK_CLOSE(h[0] / full, 0.3, 1e-3, 0);
    CHECK_CLOSE(h[1] / full, 0.1, 1e-3, 0);
    CHECK_CLOSE(h[2] / full, 0.1, 1e-3, 0);
    /* counts: 10, 30, 60 in proportion to the largest */
    REQUIRE(group_rects(text, "counts", y, h, 8) == 3);
    CHECK_CLOSE(h[0] / h[2], 10.0 / 60, 1e-3, 0);
    CHECK_CLOSE(h[1] / h[2], 30.0 / 60, 1e-3, 0);
    free(text);
    CHECK_EQ_INT(count_temp_files(dir), 0);

    /* bad input: nothing written */
    const long none[2] = {0, 0}, negative[2] = {1, -1};
    const double bad_acc[2] = {1.5, 0.5}, ok2[2] = {0.5, 0.5};
    snprintf(path, sizeof path, "%s/bad.svg", dir);
    CHECK_EQ_INT(plot_svg_reliability(path, "t", 0, count, acc, conf, 0, &err), AT_ERR_ARG);
    CHECK_EQ_INT(plot_svg_reliability(path, "t", 2, none, ok2, ok2, 0, &err), AT_ERR_ARG);
    CHECK(strstr(err.message, "every bin is empty"));
    CHECK_EQ_INT(plot_svg_reliability(path, "t", 2, negative, ok2, ok2, 0, &err), AT_ERR_ARG);
    CHECK_EQ_INT(plot_svg_reliability(path, "t", 2, count, bad_acc, ok2, 0, &err), AT_ERR_ARG);
    CHECK(strstr(err.message, path));
    CHECK_EQ_INT(plot_svg_reliability(path, "t", 2, count, ok2, ok2, NAN, &err), AT_ERR_ARG);
    CHECK(!exists(path));
    CHECK_EQ_INT(count_temp_files(dir), 0);
    remove_dir(dir);
}

TEST_MAIN(TEST_ENTRY(png_grey_grid), TEST_ENTRY(png_gradient_maps), TEST_ENTRY(png_rgb_grid), TEST_ENTRY(png_frames_strip),
          TEST_ENTRY(png_bad_arguments),
          TEST_ENTRY(svg_two_series_with_band_and_gap), TEST_ENTRY(svg_degenerate_ranges),
          TEST_ENTRY(svg_bad_arguments), TEST_ENTRY(svg_reliability_diagram))
