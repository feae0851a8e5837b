/* test_image_folder.c: image-folder data sets. Folders are written here with libpng and libjpeg
 * from pixels the test knows (Fashion-MNIST test images read by the IDX loader, synthetic
 * patterns), then read back through at_dataset_open("folder...") and compared: exactly for PNG,
 * within the codec's error for JPEG, against hand-computed area means for resizing. */
#include "test.h"

#include "advtrain.h"
#include "util/tmpdir.h"

#include <dirent.h>
#include <png.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jpeglib.h>

/* ---------------------------------------------------------------------------------------------
 * Writing files */

/* pixels: [h][w][c] interleaved, c = 1 grey, 2 grey + alpha, 3 RGB or 4 RGBA; 16-bit when
 * `sixteen` (values v * 257). */
static bool write_png_depth(const char *path, const uint8_t *pixels, int c, int h, int w,
                            bool sixteen)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return false;
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    uint8_t *row = malloc((size_t)w * c * 2);
    bool ok = png && info && row;
    if (ok && setjmp(png_jmpbuf(png))) {
        ok = false;
    } else if (ok) {
        png_init_io(png, f);
        png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, sixteen ? 16 : 8,
                     c == 1   ? PNG_COLOR_TYPE_GRAY
                     : c == 2 ? PNG_COLOR_TYPE_GRAY_ALPHA
                     : c == 3 ? PNG_COLOR_TYPE_RGB
                              : PNG_COLOR_TYPE_RGB_ALPHA,
                     PNG_INTERLACE_NONE,
                     PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
        png_write_info(png, info);
        for (int r = 0; r < h; r++) {
            const uint8_t *src = pixels + (size_t)r * w * c;
            for (int k = 0; k < w * c; k++) {
                if (sixteen)
                    row[2 * k] = row[2 * k + 1] = src[k]; /* big-endian v * 257 */
                else
                    row[k] = src[k];
            }
            png_write_row(png, row);
        }
        png_write_end(png, NULL);
    }
    png_destroy_write_struct(&png, &info);
    free(row);
    return fclose(f) == 0 && ok;
}

static bool write_png(const char *path, const uint8_t *pixels, int c, int h, int w)
{
    return write_png_depth(path, pixels, c, h, w, false);
}

/* An 8-bit palette PNG, Adam7-interlaced: index[h][w] into palette[n][3]. */
static bool write_palette_png(const char *path, const uint8_t *index, const uint8_t *palette,
                              int n, int h, int w)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return false;
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    png_colorp colours = malloc((size_t)n * sizeof *colours);
    png_bytep *rows = malloc((size_t)h * sizeof *rows);
    bool ok = png && info && colours && rows;
    if (ok && setjmp(png_jmpbuf(png))) {
        ok = false;
    } else if (ok) {
        png_init_io(png, f);
        png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, 8, PNG_COLOR_TYPE_PALETTE,
                     PNG_INTERLACE_ADAM7, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
        for (int k = 0; k < n; k++)
            colours[k] = (png_color){palette[3 * k], palette[3 * k + 1], palette[3 * k + 2]};
        png_set_PLTE(png, info, colours, n);
        png_write_info(png, info);
        for (int r = 0; r < h; r++)
            rows[r] = (png_bytep)(index + (size_t)r * w);
        png_write_image(png, rows); /* all passes of the interlace */
        png_write_end(png, NULL);
    }
    png_destroy_write_struct(&png, &info);
    free(colours);
    free(rows);
    return fclose(f) == 0 && ok;
}

static bool write_jpeg(const char *path, const uint8_t *pixels, int c, int h, int w, int quality)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return false;
    struct jpeg_compress_struct enc;
    struct jpeg_error_mgr manager;
    enc.err = jpeg_std_error(&manager); /* default errors exit: acceptable in a test writer */
    jpeg_create_compress(&enc);
    jpeg_stdio_dest(&enc, f);
    enc.image_width = (JDIMENSION)w;
    enc.image_height = (JDIMENSION)h;
    enc.input_components = c;
    enc.in_color_space = c == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_set_defaults(&enc);
    jpeg_set_quality(&enc, quality, TRUE);
    jpeg_start_compress(&enc, TRUE);
    while (enc.next_scanline < enc.image_height) {
        JSAMPROW row = (JSAMPROW)(pixels + (size_t)enc.next_scanline * w * c);
        jpeg_write_scanlines(&enc, &row, 1);
    }
    jpeg_finish_compress(&enc);
    jpeg_destroy_compress(&enc);
    return fclose(f) == 0;
}

static bool write_bytes(const char *path, const void *bytes, size_t n)
{
    FILE *f = fopen(path, "wb");
    bool ok = f && fwrite(bytes, 1, n, f) == n;
    return f && fclose(f) == 0 && ok;
}

/* Writes the first `keep` bytes of file `from` to `to`. */
static bool truncate_copy(const char *from, const char *to, double keep_fraction)
{
    FILE *f = fopen(from, "rb");
    if (!f)
        return false;
    static uint8_t buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    return n > 0 && write_bytes(to, buf, (size_t)(n * keep_fraction));
}

static const char *join(char *out, const char *a, const char *b)
{
    snprintf(out, 1024, "%s/%s", a, b);
    return out;
}

static bool make_dirs(const char *root, const char *sub)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", root, sub);
    for (char *p = path + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            mkdir(path, 0700);
            *p = '/';
        }
    mkdir(path, 0700);
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* ---------------------------------------------------------------------------------------------
 * Fashion-MNIST as folders */

/* Fashion-MNIST's class names, indexed by label; sorted, they are in another order, so a loader
 * that used the labels' order instead of the names' would fail. */
static const char *const fashion_classes[10] = {"t-shirt", "trouser", "pullover", "dress", "coat",
                                                "sandal", "shirt", "sneaker", "bag",
                                                "ankle-boot"};

/* The index of class name `label` in byte order of the names. */
static int sorted_class(int label)
{
    int rank = 0;
    for (int k = 0; k < 10; k++)
        rank += strcmp(fashion_classes[k], fashion_classes[label]) < 0;
    return rank;
}

static bool load_fashion_test(at_dataset *ds)
{
    at_error err;
    if (at_dataset_open(ds, "fashion-mnist", NULL, "test", &err)) {
        TEST_FAIL_("fashion-mnist: %s (install the Fashion-MNIST data package; CI does)",
                   err.message);
        return false;
    }
    return true;
}

/* Images [first, first + count) of src into root/CLASS/NNNNN.ext; NNNNN the index, so file
 * order within a class is index order. */
static bool write_fashion(const char *root, const at_dataset *src, int first, int count,
                          bool jpeg)
{
    char path[1024];
    for (int k = 0; k < 10; k++)
        if (!make_dirs(root, fashion_classes[k]))
            return false;
    for (int i = first; i < first + count; i++) {
        snprintf(path, sizeof path, "%s/%s/%05d.%s", root, fashion_classes[src->labels[i]], i,
                 jpeg ? "jpg" : "png");
        const uint8_t *px = src->images + (size_t)i * 28 * 28;
        if (!(jpeg ? write_jpeg(path, px, 1, 28, 28, 95) : write_png(path, px, 1, 28, 28)))
            return false;
    }
    return true;
}

/* The order the folder loader must produce: by sorted class, then by index. */
static int expected_order(const at_dataset *src, int first, int count, int *order)
{
    int n = 0;
    for (int rank = 0; rank < 10; rank++)
        for (int i = first; i < first + count; i++)
            if (sorted_class(src->labels[i]) == rank)
                order[n++] = i;
    return n;
}

/* Compares a loaded split with images [first, first + count) of src: labels exactly, pixels
 * within max_error; returns the mean absolute pixel error and sets *max_seen. */
static double compare_split(const at_dataset *ds, const at_dataset *src, int first, int count,
                            int max_error, int *max_seen)
{
    int order[400];
    const int n = expected_order(src, first, count, order);
    CHECK_EQ_INT(ds->n, n);
    CHECK_EQ_INT(ds->c, 1);
    CHECK_EQ_INT(ds->h, 28);
    CHECK_EQ_INT(ds->w, 28);
    CHECK_EQ_INT(ds->num_classes, 10);
    double sum = 0;
    *max_seen = 0;
    int label_errors = 0;
    for (int j = 0; j < n && j < ds->n; j++) {
        label_errors += ds->labels[j] != sorted_class(src->labels[order[j]]);
        for (int p = 0; p < 28 * 28; p++) {
            int d = abs((int)ds->images[(size_t)j * 784 + p] -
                        (int)src->images[(size_t)order[j] * 784 + p]);
            sum += d;
            if (d > *max_seen)
                *max_seen = d;
        }
    }
    CHECK_EQ_INT(label_errors, 0);
    CHECK(*max_seen <= max_error);
    return sum / ((double)n * 784);
}

/* ---------------------------------------------------------------------------------------------
 * Tests */

/* 200 train and 100 test images as PNG: byte for byte the IDX tensors, labels by class name. */
TEST(png_folder_equals_idx)
{
    at_dataset src, ds;
    at_error err;
    char dir[64], sub[1024];
    REQUIRE(load_fashion_test(&src));
    REQUIRE(tmpdir_make(dir, "folder"));
    REQUIRE(write_fashion(join(sub, dir, "train"), &src, 0, 200, false));
    REQUIRE(write_fashion(join(sub, dir, "test"), &src, 200, 100, false));
    int max_seen;
    CHECK_OK(at_dataset_open(&ds, "folder", dir, "train", &err), &err);
    CHECK_STR_EQ(ds.name, "folder");
    CHECK_EQ_INT(ds.skipped, 0);
    if (ds.images)
        compare_split(&ds, &src, 0, 200, 0, &max_seen);
    at_dataset_free(&ds);
    CHECK_OK(at_dataset_open(&ds, "folder", dir, "test", &err), &err);
    if (ds.images)
        compare_split(&ds, &src, 200, 100, 0, &max_seen);
    at_dataset_free(&ds);
    /* asked for as colour, grey repeats in all three planes */
    CHECK_OK(at_dataset_open(&ds, "folder:channels=3", dir, "test", &err), &err);
    CHECK_EQ_INT(ds.c, 3);
    int order[100], mismatches = 0;
    expected_order(&src, 200, 100, order);
    for (int j = 0; j < ds.n; j++)
        for (int ch = 0; ch < 3; ch++)
            mismatches += memcmp(ds.images + ((size_t)j * 3 + ch) * 784,
                                 src.images + (size_t)order[j] * 784, 784) != 0;
    CHECK_EQ_INT(mismatches, 0);
    at_dataset_free(&ds);
    at_dataset_free(&src);
    tmpdir_remove(dir);
}

/* The same as JPEG at quality 95: libjpeg's round trip error, measured against the originals. */
TEST(jpeg_folder_within_codec_error)
{
    at_dataset src, ds;
    at_error err;
    char dir[64], sub[1024];
    REQUIRE(load_fashion_test(&src));
    REQUIRE(tmpdir_make(dir, "folder"));
    REQUIRE(write_fashion(join(sub, dir, "train"), &src, 0, 200, true));
    REQUIRE(write_fashion(join(sub, dir, "test"), &src, 200, 100, true));
    CHECK_OK(at_dataset_open(&ds, "folder", dir, "train", &err), &err);
    int max_seen = 0;
    double mean = ds.images ? compare_split(&ds, &src, 0, 200, 15, &max_seen) : 1e9;
    printf("JPEG q95 Fashion-MNIST 200 images: max abs error %d, mean abs error %.3f\n",
           max_seen, mean);
    CHECK(mean < 1.25); /* measured: max 9, mean 0.916 (libjpeg-turbo 2.1, slow integer DCT) */
    CHECK(max_seen > 0); /* it is lossy: equality would mean the files were not JPEG-coded */
    at_dataset_free(&ds);
    at_dataset_free(&src);
    tmpdir_remove(dir);
}

/* Colour PNGs exactly (HWC in the file, CHW in the dataset), colour to grey by BT.601 luma, a
 * 16-bit PNG scaled to 8 bits exactly, alpha dropped, and a colour JPEG within its error. */
TEST(colour_and_grey_conversion)
{
    char dir[64], path[1024];
    at_dataset ds;
    at_error err;
    REQUIRE(tmpdir_make(dir, "folder"));
    uint8_t px[3][5 * 4 * 3];
    at_rng rng;
    at_rng_seed(&rng, 7);
    for (int k = 0; k < 3; k++)
        for (int i = 0; i < 5 * 4 * 3; i++)
            px[k][i] = (uint8_t)at_rng_below(&rng, 256);
    const char *files[3] = {"train/a/1.png", "train/b/1.png", "test/a/2.PNG"};
    const int labels[2] = {0, 1};
    for (int k = 0; k < 3; k++) {
        REQUIRE(make_dirs(dir, k == 2 ? "test/a" : k ? "train/b" : "train/a"));
        REQUIRE(write_png(join(path, dir, files[k]), px[k], 3, 5, 4));
    }
    REQUIRE(make_dirs(dir, "test/b"));
    REQUIRE(write_png_depth(join(path, dir, "test/b/sixteen.png"), px[1], 3, 5, 4, true));
    CHECK_OK(at_dataset_open(&ds, "folder", dir, "train", &err), &err);
    REQUIRE(ds.images);
    CHECK_EQ_INT(ds.c, 3);
    CHECK_EQ_INT(ds.h, 5);
    CHECK_EQ_INT(ds.w, 4);
    CHECK_EQ_INT(ds.n, 2);
    int mismatches = 0;
    for (int k = 0; k < 2; k++) {
        CHECK_EQ_INT(ds.labels[k], labels[k]);
        for (int ch = 0; ch < 3; ch++)
            for (int p = 0; p < 20; p++)
                mismatches += ds.images[(size_t)k * 60 + ch * 20 + p] != px[k][p * 3 + ch];
    }
    CHECK_EQ_INT(mismatches, 0);
    at_dataset_free(&ds);
    CHECK_OK(at_dataset_open(&ds, "folder:channels=1", dir, "test", &err), &err);
    REQUIRE(ds.images);
    CHECK_EQ_INT(ds.c, 1);
    CHECK_EQ_INT(ds.n, 2);
    int worst = 0;
    for (int k = 0; k < 2; k++) {
        const uint8_t *rgb = px[k == 0 ? 2 : 1]; /* test/a/2.PNG, then test/b/sixteen.png */
        for (int p = 0; p < 20; p++) {
            double luma = 0.299 * rgb[3 * p] + 0.587 * rgb[3 * p + 1] + 0.114 * rgb[3 * p + 2];
            int d = abs((int)ds.images[k * 20 + p] - (int)lround(luma));
            worst = d > worst ? d : worst;
        }
    }
    CHECK(worst <= 1); /* fixed-point weights may round a half the other way */
    at_dataset_free(&ds);
    CHECK_OK(at_dataset_open(&ds, "folder", dir, "test", &err), &err);
    REQUIRE(ds.images);
    mismatches = 0;
    for (int ch = 0; ch < 3; ch++)
        for (int p = 0; p < 20; p++)
            mismatches += ds.images[60 + ch * 20 + p] != px[1][p * 3 + ch];
    CHECK_EQ_INT(mismatches, 0);
    at_dataset_free(&ds);
    tmpdir_remove(dir);

    /* RGBA and grey + alpha: the alpha channel is dropped, the colours kept as stored */
    uint8_t rgba[20 * 4], grey_alpha[20 * 2];
    for (int p = 0; p < 20; p++) {
        memcpy(rgba + 4 * p, px[0] + 3 * p, 3);
        rgba[4 * p + 3] = grey_alpha[2 * p + 1] = (uint8_t)(p * 13);
        grey_alpha[2 * p] = px[1][p];
    }
    REQUIRE(tmpdir_make(dir, "folder") && make_dirs(dir, "train/a") && make_dirs(dir, "test/a"));
    REQUIRE(write_png(join(path, dir, "train/a/rgba.png"), rgba, 4, 5, 4));
    REQUIRE(write_png(join(path, dir, "test/a/ga.png"), grey_alpha, 2, 5, 4));
    CHECK_OK(at_dataset_open(&ds, "folder", dir, "train", &err), &err);
    REQUIRE(ds.images);
    CHECK_EQ_INT(ds.c, 3);
    mismatches = 0;
    for (int ch = 0; ch < 3; ch++)
        for (int p = 0; p < 20; p++)
            mismatches += ds.images[ch * 20 + p] != px[0][p * 3 + ch];
    CHECK_EQ_INT(mismatches, 0);
    at_dataset_free(&ds);
    CHECK_OK(at_dataset_open(&ds, "folder:channels=1", dir, "test", &err), &err);
    REQUIRE(ds.images);
    CHECK_EQ_INT(memcmp(ds.images, px[1], 20), 0);
    at_dataset_free(&ds);
    tmpdir_remove(dir);

    /* an interlaced palette PNG: the palette's colours, exactly */
    const uint8_t palette[4 * 3] = {255, 0, 0, 0, 128, 0, 10, 20, 30, 200, 201, 202};
    uint8_t index[9 * 7], expected[3 * 9 * 7];
    for (int p = 0; p < 9 * 7; p++) {
        index[p] = (uint8_t)((p * 5 + p / 7) % 4);
        for (int ch = 0; ch < 3; ch++)
            expected[ch * 63 + p] = palette[3 * index[p] + ch];
    }
    REQUIRE(tmpdir_make(dir, "folder") && make_dirs(dir, "train/a") && make_dirs(dir, "test/a"));
    REQUIRE(write_palette_png(join(path, dir, "train/a/palette.png"), index, palette, 4, 9, 7));
    REQUIRE(write_palette_png(join(path, dir, "test/a/palette.png"), index, palette, 4, 9, 7));
    CHECK_OK(at_dataset_open(&ds, "folder", dir, "train", &err), &err);
    REQUIRE(ds.images);
    CHECK(ds.c == 3 && ds.h == 9 && ds.w == 7);
    CHECK_EQ_INT(memcmp(ds.images, expected, sizeof expected), 0);
    at_dataset_free(&ds);
    tmpdir_remove(dir);

    /* a smooth colour JPEG at quality 95 */
    static uint8_t smooth[32 * 32 * 3];
    for (int r = 0; r < 32; r++)
        for (int q = 0; q < 32; q++) {
            uint8_t *s = smooth + (r * 32 + q) * 3;
            s[0] = (uint8_t)(8 * r);
            s[1] = (uint8_t)(8 * q);
            s[2] = (uint8_t)(255 - 4 * (r + q));
        }
    REQUIRE(tmpdir_make(dir, "folder") && make_dirs(dir, "train/a") && make_dirs(dir, "test/a"));
    REQUIRE(write_jpeg(join(path, dir, "train/a/smooth.jpeg"), smooth, 3, 32, 32, 95));
    REQUIRE(write_jpeg(join(path, dir, "test/a/smooth.JPG"), smooth, 3, 32, 32, 95));
    CHECK_OK(at_dataset_open(&ds, "folder", dir, "train", &err), &err);
    REQUIRE(ds.images);
    CHECK_EQ_INT(ds.c, 3);
    double sum = 0;
    worst = 0;
    for (int ch = 0; ch < 3; ch++)
        for (int p = 0; p < 32 * 32; p++) {
            int d = abs((int)ds.images[ch * 1024 + p] - (int)smooth[p * 3 + ch]);
            sum += d;
            worst = d > worst ? d : worst;
        }
    printf("colour JPEG q95 32x32 gradient: max abs error %d, mean abs error %.3f\n", worst,
           sum / (3 * 1024));
    CHECK(worst <= 15 && sum / (3 * 1024) < 2.0);
    at_dataset_free(&ds);
    tmpdir_remove(dir);
}

/* One image in train/a and test/a; returns the train split loaded with `name`. */
static int load_one(at_dataset *ds, const char *name, const uint8_t *px, int c, int h, int w,
                    at_error *err)
{
    char dir[64], path[1024];
    if (!tmpdir_make(dir, "folder") || !make_dirs(dir, "train/a") || !make_dirs(dir, "test/a") ||
        !write_png(join(path, dir, "train/a/x.png"), px, c, h, w) ||
        !write_png(join(path, dir, "test/a/x.png"), px, c, h, w))
        return -100;
    int status = at_dataset_open(ds, name, dir, "train", err);
    tmpdir_remove(dir);
    return status;
}

/* Resizing on known patterns, against means computed here. */
TEST(resize_stretch_and_crop)
{
    at_dataset ds;
    at_error err;
    uint8_t px[64];
    for (int i = 0; i < 64; i++)
        px[i] = (uint8_t)(3 * i + 1);
    /* crop without scaling: a 6x4 image to 4x4 keeps rows 1..4 */
    CHECK_OK(load_one(&ds, "folder:size=4x4,resize=crop", px, 1, 6, 4, &err), &err);
    REQUIRE(ds.images);
    CHECK_EQ_INT(memcmp(ds.images, px + 4, 16), 0);
    at_dataset_free(&ds);
    /* a 4x8 image to 4x4: columns 2..5 */
    CHECK_OK(load_one(&ds, "folder:size=4x4,resize=crop", px, 1, 4, 8, &err), &err);
    REQUIRE(ds.images);
    int mismatches = 0;
    for (int r = 0; r < 4; r++)
        for (int q = 0; q < 4; q++)
            mismatches += ds.images[r * 4 + q] != px[r * 8 + q + 2];
    CHECK_EQ_INT(mismatches, 0);
    at_dataset_free(&ds);
    /* crop with scaling: 8x4 to 2x2 halves both axes over rows 2..5, so 2x2 block means */
    CHECK_OK(load_one(&ds, "folder:size=2x2,resize=crop", px, 1, 8, 4, &err), &err);
    REQUIRE(ds.images);
    for (int r = 0; r < 2; r++)
        for (int q = 0; q < 2; q++) {
            const uint8_t *b = px + (2 + 2 * r) * 4 + 2 * q;
            CHECK_EQ_INT(ds.images[r * 2 + q], (b[0] + b[1] + b[4] + b[5] + 2) / 4);
        }
    at_dataset_free(&ds);
    /* stretch: 4x4 to 2x2 is the block means, 2x2 to 4x4 repeats each pixel */
    CHECK_OK(load_one(&ds, "folder:size=2x2", px, 1, 4, 4, &err), &err);
    REQUIRE(ds.images);
    for (int r = 0; r < 2; r++)
        for (int q = 0; q < 2; q++) {
            const uint8_t *b = px + 2 * r * 4 + 2 * q;
            CHECK_EQ_INT(ds.images[r * 2 + q], (b[0] + b[1] + b[4] + b[5] + 2) / 4);
        }
    at_dataset_free(&ds);
    CHECK_OK(load_one(&ds, "folder:size=4x4,resize=stretch", px, 1, 2, 2, &err), &err);
    REQUIRE(ds.images);
    for (int r = 0; r < 4; r++)
        for (int q = 0; q < 4; q++)
            CHECK_EQ_INT(ds.images[r * 4 + q], px[(r / 2) * 2 + q / 2]);
    at_dataset_free(&ds);
    /* a fractional factor, 1x3 to 1x2: out 0 covers [0, 1.5): (p0 + p1 / 2) / 1.5 */
    const uint8_t row[3] = {10, 101, 200};
    CHECK_OK(load_one(&ds, "folder:size=1x2", row, 1, 1, 3, &err), &err);
    REQUIRE(ds.images);
    CHECK_EQ_INT(ds.images[0], lround((10 + 101 / 2.0) / 1.5));
    CHECK_EQ_INT(ds.images[1], lround((101 / 2.0 + 200) / 1.5));
    at_dataset_free(&ds);
    /* the other axis too, on colour: 3x1x3 (HxWxC) to 2x1, each channel alike */
    const uint8_t column[9] = {10, 0, 255, 101, 50, 255, 200, 100, 255};
    CHECK_OK(load_one(&ds, "folder:size=2x1", column, 3, 3, 1, &err), &err);
    REQUIRE(ds.images);
    CHECK_EQ_INT(ds.images[0], lround((10 + 101 / 2.0) / 1.5));
    CHECK_EQ_INT(ds.images[1], lround((101 / 2.0 + 200) / 1.5));
    CHECK_EQ_INT(ds.images[2], lround((0 + 50 / 2.0) / 1.5));
    CHECK_EQ_INT(ds.images[4], 255);
    CHECK_EQ_INT(ds.images[5], 255);
    at_dataset_free(&ds);
}

/* A folder of good PNGs in train/{a,b} and test/{a,b}; `dir` receives its path. */
static bool good_folder(char *dir, uint8_t *px)
{
    char path[1024];
    for (int i = 0; i < 36; i++)
        px[i] = (uint8_t)(7 * i);
    if (!tmpdir_make(dir, "folder"))
        return false;
    const char *files[] = {"train/a/1.png", "train/a/2.png", "train/b/1.png", "test/a/1.png",
                           "test/b/1.png"};
    bool ok = make_dirs(dir, "train/a") && make_dirs(dir, "train/b") && make_dirs(dir, "test/a") &&
              make_dirs(dir, "test/b");
    for (int k = 0; ok && k < 5; k++)
        ok = write_png(join(path, dir, files[k]), px, 1, 6, 6);
    /* files other than images are ignored */
    return ok && write_bytes(join(path, dir, "train/a/notes.txt"), "not an image", 12) &&
           write_bytes(join(path, dir, "train/README"), "x", 1);
}

/* A garbage .png, a truncated PNG and a truncated JPEG: each an error naming it, all three
 * skipped and counted with skip-bad. */
TEST(bad_images_named_or_skipped)
{
    char dir[64], path[1024], bad[3][1024], good_jpeg[1024];
    uint8_t px[36];
    at_dataset ds;
    at_error err;
    REQUIRE(good_folder(dir, px));
    join(bad[0], dir, "train/a/zz-garbage.png");
    join(bad[1], dir, "train/b/zz-truncated.png");
    join(bad[2], dir, "train/b/zz-truncated.jpg");
    join(good_jpeg, dir, "whole.jpg");
    REQUIRE(write_jpeg(good_jpeg, px, 1, 6, 6, 90));
    for (int k = 0; k < 3; k++) {
        if (k == 0)
            REQUIRE(write_bytes(bad[0], "\x89PNX garbage, not a picture", 27));
        else if (k == 1)
            REQUIRE(truncate_copy(join(path, dir, "train/a/1.png"), bad[1], 0.6));
        else
            REQUIRE(truncate_copy(good_jpeg, bad[2], 0.6));
        CHECK_EQ_INT(at_dataset_open(&ds, "folder", dir, "train", &err), AT_ERR_FORMAT);
        CHECK(strstr(err.message, bad[k]) != NULL);
        CHECK(strchr(err.message, '\n') == NULL);
        CHECK(ds.images == NULL);
        printf("bad image %d: %s\n", k, err.message);
        if (k < 2)
            remove(bad[k]);
    }
    for (int k = 0; k < 2; k++) /* all three at once */
        REQUIRE(k ? truncate_copy(join(path, dir, "train/a/1.png"), bad[1], 0.6)
                  : write_bytes(bad[0], "\x89PNX garbage, not a picture", 27));
    CHECK_OK(at_dataset_open(&ds, "folder:skip-bad", dir, "train", &err), &err);
    CHECK_EQ_INT(ds.n, 3);
    CHECK_EQ_INT(ds.skipped, 3);
    if (ds.images) {
        CHECK_EQ_INT(memcmp(ds.images + 2 * 36, px, 36), 0);
        CHECK_EQ_INT(ds.labels[0], 0);
        CHECK_EQ_INT(ds.labels[2], 1);
    }
    at_dataset_free(&ds);
    /* the first file being bad: the size then comes from the next readable one */
    REQUIRE(write_bytes(join(path, dir, "train/a/0-empty.png"), "", 0));
    CHECK_OK(at_dataset_open(&ds, "folder:skip-bad", dir, "train", &err), &err);
    CHECK_EQ_INT(ds.h, 6);
    CHECK_EQ_INT(ds.skipped, 4);
    at_dataset_free(&ds);
    CHECK_EQ_INT(at_dataset_open(&ds, "folder", dir, "train", &err), AT_ERR_FORMAT);
    CHECK(strstr(err.message, "0-empty.png: not a PNG or JPEG image (empty file)") != NULL);
    tmpdir_remove(dir);
}

#define CHECK_OPEN_FAILS(name, dir, split, status, text)                                     \
    do {                                                                                     \
        at_dataset ds_;                                                                      \
        at_error e_;                                                                         \
        CHECK_EQ_INT(at_dataset_open(&ds_, name, dir, split, &e_), status);                  \
        if (!strstr(e_.message, text))                                                       \
            TEST_FAIL_("message '%s' lacks '%s'", e_.message, text);                         \
        CHECK(ds_.images == NULL && strchr(e_.message, '\n') == NULL);                       \
    } while (0)

/* Layout and option errors, each naming what is wrong. */
TEST(layout_and_option_errors)
{
    char dir[64], path[1024], other[1024];
    uint8_t px[64] = {0};
    REQUIRE(good_folder(dir, px));
    CHECK_OPEN_FAILS("folder", NULL, "train", AT_ERR_ARG, "--data-dir");
    CHECK_OPEN_FAILS("folder", "/nonexistent/images", "train", AT_ERR_NOTFOUND,
                     "/nonexistent/images");
    CHECK_OPEN_FAILS("folder", dir, "valid", AT_ERR_ARG, "unknown split 'valid'");
    CHECK_OPEN_FAILS("folder:size=0x4", dir, "train", AT_ERR_ARG, "size=0x4");
    CHECK_OPEN_FAILS("folder:size=32", dir, "train", AT_ERR_ARG, "size=32");
    CHECK_OPEN_FAILS("folder:resize=zoom", dir, "train", AT_ERR_ARG, "resize=zoom");
    CHECK_OPEN_FAILS("folder:channels=2", dir, "train", AT_ERR_ARG, "channels=2");
    CHECK_OPEN_FAILS("folder:test-fraction=1.5", dir, "train", AT_ERR_ARG, "test-fraction=1.5");
    CHECK_OPEN_FAILS("folder:colour", dir, "train", AT_ERR_ARG, "unknown folder option 'colour'");
    CHECK_OPEN_FAILS("folder:skip-bad,rgb=1", dir, "train", AT_ERR_ARG,
                     "unknown folder option 'rgb'");
    CHECK_OPEN_FAILS("folder:channels", dir, "train", AT_ERR_ARG, "channels needs a value");
    CHECK_OPEN_FAILS("folder:skip-bad=yes", dir, "train", AT_ERR_ARG, "skip-bad takes no value");
    CHECK_OPEN_FAILS("folder:split-seed=-1", dir, "train", AT_ERR_ARG, "split-seed=-1");
    CHECK_OPEN_FAILS("folder:test-fraction=0.5", dir, "train", AT_ERR_ARG, "has both");
    /* an image of another size, without size=: named, with the first one */
    uint8_t big[7 * 6] = {0};
    REQUIRE(write_png(join(path, dir, "train/b/2.png"), big, 1, 7, 6));
    CHECK_OPEN_FAILS("folder", dir, "train", AT_ERR_FORMAT, "train/b/2.png: 7x6 image");
    CHECK_OPEN_FAILS("folder", dir, "train", AT_ERR_FORMAT, "train/a/1.png (6x6)");
    at_dataset ds;
    at_error err;
    CHECK_OK(at_dataset_open(&ds, "folder:size=6x6", dir, "train", &err), &err);
    CHECK_EQ_INT(ds.n, 4);
    at_dataset_free(&ds);
    /* a class without images (only a non-image file) */
    REQUIRE(make_dirs(dir, "train/c"));
    REQUIRE(write_bytes(join(path, dir, "train/c/list.csv"), "a,b", 3));
    CHECK_OPEN_FAILS("folder", dir, "train", AT_ERR_NOTFOUND,
                     "train/c: class directory without .png, .jpg or .jpeg images");
    /* test/ with other classes than train/ */
    REQUIRE(write_png(join(path, dir, "train/c/1.png"), px, 1, 6, 6));
    CHECK_OPEN_FAILS("folder:size=6x6", dir, "test", AT_ERR_ARG, "same class directories");
    /* train/ without test/, and a split root without class directories */
    tmpdir_remove(join(path, dir, "test"));
    CHECK_OPEN_FAILS("folder", dir, "train", AT_ERR_NOTFOUND, "has train/ but no test/");
    REQUIRE(make_dirs(dir, "test"));
    CHECK_OPEN_FAILS("folder:size=6x6", dir, "test", AT_ERR_NOTFOUND,
                     strcat(strcpy(other, dir), "/test: no class directories"));
    tmpdir_remove(dir);
    REQUIRE(tmpdir_make(dir, "folder"));
    CHECK_OPEN_FAILS("folder", dir, "train", AT_ERR_NOTFOUND, "no class directories");
    tmpdir_remove(dir);
}

/* Without train/ and test/, a seeded share of each class is the test split: the same for the
 * same seed, disjoint from train, together all images, another for another seed. */
TEST(held_out_split_by_seed)
{
    char dir[64], path[1024];
    REQUIRE(tmpdir_make(dir, "folder"));
    const char *classes[3] = {"cat", "dog", "emu"};
    for (int k = 0; k < 3; k++) {
        REQUIRE(make_dirs(dir, classes[k]));
        for (int i = 0; i < 10; i++) {
            /* pixel 0 tells the image apart: 10 k + i */
            uint8_t px[4] = {(uint8_t)(10 * k + i), 1, 2, 3};
            char name[64];
            snprintf(name, sizeof name, "%s/img%d.png", classes[k], i);
            REQUIRE(write_png(join(path, dir, name), px, 1, 2, 2));
        }
    }
    at_dataset train, test, again;
    at_error err;
    CHECK_OK(at_dataset_open(&train, "folder:test-fraction=0.3,split-seed=5", dir, "train", &err),
             &err);
    CHECK_OK(at_dataset_open(&test, "folder:test-fraction=0.3,split-seed=5", dir, "test", &err),
             &err);
    REQUIRE(train.images && test.images);
    CHECK_EQ_INT(train.n, 21);
    CHECK_EQ_INT(test.n, 9);
    int seen[30] = {0}, per_class[3] = {0};
    for (int i = 0; i < train.n; i++)
        seen[train.images[i * 4]]++;
    for (int i = 0; i < test.n; i++) {
        seen[test.images[i * 4]]++;
        per_class[test.labels[i]]++;
        CHECK_EQ_INT(test.labels[i], test.images[i * 4] / 10);
    }
    for (int v = 0; v < 30; v++)
        CHECK_EQ_INT(seen[v], 1);
    for (int k = 0; k < 3; k++)
        CHECK_EQ_INT(per_class[k], 3);
    CHECK_OK(at_dataset_open(&again, "folder:split-seed=5,test-fraction=0.3", dir, "test", &err),
             &err);
    CHECK(again.n == test.n && memcmp(again.images, test.images, (size_t)test.n * 4) == 0);
    at_dataset_free(&again);
    CHECK_OK(at_dataset_open(&again, "folder:test-fraction=0.3,split-seed=6", dir, "test", &err),
             &err);
    CHECK(again.n == test.n && memcmp(again.images, test.images, (size_t)test.n * 4) != 0);
    at_dataset_free(&again);
    /* the default share is 0.2: 2 of each class's 10 */
    CHECK_OK(at_dataset_open(&again, "folder", dir, "test", &err), &err);
    CHECK_EQ_INT(again.n, 6);
    at_dataset_free(&again);
    at_dataset_free(&train);
    at_dataset_free(&test);
    tmpdir_remove(dir);
}

TEST_MAIN(TEST_ENTRY(png_folder_equals_idx), TEST_ENTRY(jpeg_folder_within_codec_error),
          TEST_ENTRY(colour_and_grey_conversion), TEST_ENTRY(resize_stretch_and_crop),
          TEST_ENTRY(bad_images_named_or_skipped), TEST_ENTRY(layout_and_option_errors),
          TEST_ENTRY(held_out_split_by_seed))
