/* test_extra_data.c: extra training data from .npz and .safetensors files. The files are written
 * here: .npy arrays by hand, zipped with libzip (stored and deflated), safetensors with the
 * library's writer. Values must round-trip exactly (channels-last arrays moved to NCHW); every
 * kind of bad file fails with its status and a message naming the file; and a good file cut at
 * every byte offset, or with any one byte spoiled, never crashes the reader. */
#include "test.h"

#include "advtrain.h"
#include "util/tmpdir.h"
#include "io/npy.h"

#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zip.h>

/* ---- temporary files ---------------------------------------------------------------------- */

/* The whole file into a malloc'd buffer. */
static uint8_t *read_whole(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc(*n ? *n : 1);
    if (buf && fread(buf, 1, *n, f) != *n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    return buf;
}

/* ---- .npy arrays and .npz archives -------------------------------------------------------- */

typedef struct blob {
    uint8_t *bytes;
    size_t size;
} blob;

/* A .npy file: magic, version `major`.0, the dict padded with spaces and a newline to a multiple
 * of 64 bytes as numpy does, then `n` bytes of data. */
static blob npy(int major, const char *dict, const void *data, size_t n)
{
    const size_t prefix = major == 1 ? 10 : 12, text = strlen(dict);
    const size_t header = (prefix + text + 1 + 63) / 64 * 64;
    blob b = {malloc(header + n), header + n};
    memcpy(b.bytes, "\x93NUMPY", 6);
    b.bytes[6] = (uint8_t)major;
    b.bytes[7] = 0;
    const size_t len = header - prefix;
    for (size_t i = 0; i < prefix - 8; i++)
        b.bytes[8 + i] = (uint8_t)(len >> (8 * i));
    memcpy(b.bytes + prefix, dict, text);
    memset(b.bytes + prefix + text, ' ', header - prefix - text - 1);
    b.bytes[header - 1] = '\n';
    if (n)
        memcpy(b.bytes + header, data, n);
    return b;
}

/* An archive of named members (stored or deflated); frees the blobs. */
static bool write_npz(const char *path, int count, const char *const *names, blob *members,
                      bool deflate)
{
    int code;
    zip_t *z = zip_open(path, ZIP_CREATE | ZIP_TRUNCATE, &code);
    bool ok = z != NULL;
    for (int i = 0; ok && i < count; i++) {
        zip_source_t *src = zip_source_buffer(z, members[i].bytes, members[i].size, 0);
        zip_int64_t index = src ? zip_file_add(z, names[i], src, ZIP_FL_OVERWRITE) : -1;
        if (index < 0)
            zip_source_free(src);
        ok = index >= 0 && zip_set_file_compression(z, (zip_uint64_t)index,
                                                     deflate ? ZIP_CM_DEFLATE : ZIP_CM_STORE,
                                                     0) == 0;
    }
    if (z && (ok ? zip_close(z) != 0 : (zip_discard(z), true)))
        ok = false;
    for (int i = 0; i < count; i++)
        free(members[i].bytes);
    return ok;
}

/* Test images: example i, channel ch, row y, column x. */
enum { N = 3, H = 4, W = 5 };
static uint8_t pixel(int i, int ch, int y, int x)
{
    return (uint8_t)(i * 131 + ch * 71 + y * 17 + x * 3 + (x * y) % 7);
}
static const int64_t test_labels[N] = {2, 0, 9};

/* The images as N, H, W, C bytes (C = 1 gives N, H, W). */
static uint8_t *images_hwc(int c)
{
    uint8_t *p = malloc((size_t)N * H * W * c);
    for (int i = 0; i < N; i++)
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++)
                for (int ch = 0; ch < c; ch++)
                    p[(((size_t)i * H + y) * W + x) * c + ch] = pixel(i, ch, y, x);
    return p;
}

/* The labels as `itemsize`-byte little-endian integers. */
static void labels_as(int itemsize, const int64_t *labels, int n, uint8_t *out)
{
    for (int i = 0; i < n; i++)
        for (int b = 0; b < itemsize; b++)
            out[i * itemsize + b] = (uint8_t)((uint64_t)labels[i] >> (8 * b));
}

/* A good archive: images of c channels (c = 1 written as N, H, W unless `four_dims`), labels of
 * the given descr, under the given array names. */
static bool write_good_npz(const char *path, int c, bool four_dims, const char *label_descr,
                           const char *image_name, const char *label_name, bool deflate, int major)
{
    char dict[160];
    if (c == 1 && !four_dims)
        snprintf(dict, sizeof dict, "{'descr': '|u1', 'fortran_order': False, 'shape': (%d, %d, "
                 "%d), }", N, H, W);
    else
        snprintf(dict, sizeof dict, "{'descr': '|u1', 'fortran_order': False, 'shape': (%d, %d, "
                 "%d, %d), }", N, H, W, c);
    uint8_t *pixels = images_hwc(c);
    const int itemsize = label_descr[2] - '0';
    uint8_t labels[N * 8];
    labels_as(itemsize, test_labels, N, labels);
    char ldict[160], iname[32], lname[32];
    snprintf(ldict, sizeof ldict, "{'descr': '%s', 'fortran_order': False, 'shape': (%d,), }",
             label_descr, N);
    blob members[2] = {npy(major, dict, pixels, (size_t)N * H * W * c),
                       npy(major, ldict, labels, (size_t)N * itemsize)};
    free(pixels);
    snprintf(iname, sizeof iname, "%s.npy", image_name);
    snprintf(lname, sizeof lname, "%s.npy", label_name);
    return write_npz(path, 2, (const char *const[]){iname, lname}, members, deflate);
}

/* The dataset must hold the test images in NCHW order and the test labels. */
static void check_loaded(const at_dataset *ds, int c, const char *name)
{
    REQUIRE(ds->images && ds->labels);
    CHECK(ds->n == N && ds->c == c && ds->h == H && ds->w == W);
    CHECK_EQ_INT(ds->num_classes, 10);
    CHECK_STR_EQ(ds->name, name);
    int wrong = 0;
    for (int i = 0; i < N; i++)
        for (int ch = 0; ch < c; ch++)
            for (int y = 0; y < H; y++)
                for (int x = 0; x < W; x++)
                    wrong += ds->images[(((size_t)i * c + ch) * H + y) * W + x] !=
                             pixel(i, ch, y, x);
    CHECK_EQ_INT(wrong, 0);
    for (int i = 0; i < N; i++)
        CHECK_EQ_INT(ds->labels[i], test_labels[i]);
}

/* A failing call on the locals `ds` and `err`: the status, the path and `needle` in the message,
 * and the dataset left empty. */
#define CHECK_FAILS(call, want, path, needle)                                                 \
    do {                                                                                      \
        CHECK_EQ_INT((call), want);                                                           \
        CHECK_EQ_INT(err.status, want);                                                       \
        if (!strstr(err.message, (path)) || !strstr(err.message, (needle)))                   \
            TEST_FAIL_("message lacks the path %s or \"%s\": %s", (path), (needle),          \
                       err.message);                                                          \
        CHECK(ds.images == NULL && ds.labels == NULL && ds.n == 0);                           \
        printf("  %s\n", err.message);                                                        \
    } while (0)

TEST(npz_round_trip)
{
    char t[64], p[256];
    REQUIRE(tmpdir_make(t, "extra"));
    tmpdir_path(t, "gen.npz", p);
    static const char *const descrs[] = {"<i8", "|u1", "<u8", "<i4", "<u2", "|i1"};
    at_dataset ds;
    at_error err;
    for (int deflate = 0; deflate < 2; deflate++)
        for (int c = 1; c <= 3; c += 2)
            for (int d = 0; d < 6; d++) {
                /* one channel as (N, H, W) and, once, as (N, H, W, 1); version 1.0 and 2.0 */
                REQUIRE(write_good_npz(p, c, d == 5, descrs[d], d % 2 ? "images" : "image",
                                       d % 3 ? "label" : "labels", deflate, d == 2 ? 2 : 1));
                CHECK_OK(at_dataset_load_file(&ds, p, c, H, W, 10, &err), &err);
                check_loaded(&ds, c, "gen.npz");
                at_dataset_free(&ds);
            }
    tmpdir_remove(t);
}

/* A safetensors file with images [N, C, H, W] (the given dtype and shape) and labels. */
static bool write_st(const char *path, const char *image_name, const char *image_dtype, int ndim,
                     const int64_t *shape, const char *label_name, const char *label_dtype,
                     int n_labels, const int64_t *labels)
{
    at_st_writer *w;
    at_error err;
    if (at_st_writer_create(&w, &err))
        return false;
    size_t count = 1;
    for (int d = 0; d < ndim; d++)
        count *= (size_t)shape[d];
    const size_t item = !strcmp(image_dtype, "F32") ? 4 : 1;
    uint8_t *pixels = calloc(count * item, 1);
    for (size_t k = 0; ndim == 4 && k < count && item == 1; k++) {
        const int x = (int)(k % (size_t)shape[3]), y = (int)(k / (size_t)shape[3] % (size_t)shape[2]);
        const int ch = (int)(k / (size_t)(shape[3] * shape[2]) % (size_t)shape[1]);
        pixels[k] = pixel((int)(k / (size_t)(shape[1] * shape[2] * shape[3])), ch, y, x);
    }
    if (!label_dtype)
        label_dtype = "I64";
    const int itemsize = !strcmp(label_dtype, "U8") || !strcmp(label_dtype, "I8") ? 1
                         : !strcmp(label_dtype, "I16")                           ? 2
                         : !strcmp(label_dtype, "I32") || !strcmp(label_dtype, "F32") ? 4
                                                                                       : 8;
    uint8_t lab[64];
    labels_as(itemsize, labels, n_labels, lab);
    bool ok = at_st_writer_add(w, image_name, image_dtype, ndim, shape, pixels, count * item,
                               &err) == 0 &&
              (!label_name || at_st_writer_add(w, label_name, label_dtype, 1,
                                               (const int64_t[]){n_labels}, lab,
                                               (size_t)n_labels * itemsize, &err) == 0) &&
              at_st_writer_save(w, path, &err) == 0;
    at_st_writer_free(w);
    free(pixels);
    return ok;
}

TEST(safetensors_round_trip)
{
    char t[64], p[256];
    REQUIRE(tmpdir_make(t, "extra"));
    tmpdir_path(t, "gen.safetensors", p);
    at_dataset ds;
    at_error err;
    static const char *const dtypes[] = {"I64", "U8", "I32", "I16", "I8"};
    for (int c = 1; c <= 3; c += 2)
        for (int d = 0; d < 5; d++) {
            REQUIRE(write_st(p, d % 2 ? "image" : "images", "U8", 4, (const int64_t[]){N, c, H, W},
                             d % 3 ? "label" : "labels", dtypes[d], N, test_labels));
            CHECK_OK(at_dataset_load_file(&ds, p, c, H, W, 10, &err), &err);
            check_loaded(&ds, c, "gen.safetensors");
            at_dataset_free(&ds);
        }
    tmpdir_remove(t);
}

/* One bad .npz per case: the image and label .npy dicts and data sizes, or a member missing. */
static const struct bad_npz {
    const char *image_dict, *label_dict;
    size_t image_bytes, label_bytes; /* data after each header */
    int status;
    const char *needle;
} bad_npz[] = {
    {NULL, "{'descr': '<i8', 'fortran_order': False, 'shape': (3,), }", 0, 24, AT_ERR_FORMAT,
     "no array 'image' (nor 'images')"},
    {"{'descr': '|u1', 'fortran_order': False, 'shape': (3, 4, 5), }", NULL, 60, 0, AT_ERR_FORMAT,
     "no array 'label' (nor 'labels')"},
    {"{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4, 5), }",
     "{'descr': '<i8', 'fortran_order': False, 'shape': (3,), }", 240, 24, AT_ERR_FORMAT,
     "image has dtype '<f4', expected uint8"},
    {"{'descr': '|u1', 'fortran_order': False, 'shape': (3, 4, 5), }",
     "{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }", 60, 24, AT_ERR_FORMAT,
     "label has dtype '<f8', expected a little-endian integer"},
    {"{'descr': '|u1', 'fortran_order': False, 'shape': (3, 4, 5), }",
     "{'descr': '>i8', 'fortran_order': False, 'shape': (3,), }", 60, 24, AT_ERR_FORMAT,
     "label has dtype '>i8'"},
    {"{'descr': '|u1', 'fortran_order': False, 'shape': (3, 4, 5, 3), }",
     "{'descr': '<i8', 'fortran_order': False, 'shape': (3,), }", 180, 24, AT_ERR_SHAPE,
     "image has shape (3, 4, 5, 3), expected (N, 4, 5) or (N, 4, 5, 1)"},
    {"{'descr': '|u1', 'fortran_order': False, 'shape': (3, 5, 4), }",
     "{'descr': '<i8', 'fortran_order': False, 'shape': (3,), }", 60, 24, AT_ERR_SHAPE,
     "image has shape (3, 5, 4), expected"},
    {"{'descr': '|u1', 'fortran_order': False, 'shape': (3, 4, 5), }",
     "{'descr': '<i8', 'fortran_order': False, 'shape': (2,), }", 60, 16, AT_ERR_SHAPE,
     "image has 3 images but label has 2 labels"},
    {"{'descr': '|u1', 'fortran_order': False, 'shape': (3, 4, 5), }",
     "{'descr': '<i8', 'fortran_order': False, 'shape': (3, 1), }", 60, 24, AT_ERR_SHAPE,
     "label has shape (3, 1), expected one label per image (3)"},
    {"{'descr': '|u1', 'fortran_order': False, 'shape': (0, 4, 5), }",
     "{'descr': '<i8', 'fortran_order': False, 'shape': (0,), }", 0, 0, AT_ERR_FORMAT,
     "image holds no images (N = 0)"},
    {"{'descr': '|u1', 'fortran_order': True, 'shape': (3, 4, 5), }",
     "{'descr': '<i8', 'fortran_order': False, 'shape': (3,), }", 60, 24, AT_ERR_FORMAT,
     "image.npy: fortran_order is True"},
    {"{'descr': '|u1', 'fortran_order': False, 'shape': (3, 4, 5), }",
     "{'descr': '<i8', 'fortran_order': False, 'shape': (3,), }", 59, 24, AT_ERR_FORMAT,
     "image.npy: truncated: the .npy header promises 188 bytes, the array has 187"},
    {"{'descr': '|u1', 'fortran_order': False, 'shape': (3, 4, 5), }",
     "{'descr': '<i8', 'fortran_order': False, 'shape': (3,), }", 60, 25, AT_ERR_FORMAT,
     "label.npy: trailing data"},
    {"{'descr': '|u1', 'shape': (3, 4, 5), }",
     "{'descr': '<i8', 'fortran_order': False, 'shape': (3,), }", 60, 24, AT_ERR_FORMAT,
     "image.npy: .npy header lacks 'fortran_order'"},
    {"{'descr': [('a', '|u1')], 'fortran_order': False, 'shape': (3, 4, 5), }",
     "{'descr': '<i8', 'fortran_order': False, 'shape': (3,), }", 60, 24, AT_ERR_FORMAT,
     "structured dtype"},
};

TEST(npz_bad_files)
{
    char t[64], p[256];
    REQUIRE(tmpdir_make(t, "extra"));
    tmpdir_path(t, "bad.npz", p);
    at_dataset ds;
    at_error err;
    static uint8_t zeros[1024];
    for (size_t i = 0; i < sizeof bad_npz / sizeof bad_npz[0]; i++) {
        const struct bad_npz *b = &bad_npz[i];
        blob members[2];
        const char *names[2];
        int count = 0;
        if (b->image_dict) {
            names[count] = "image.npy";
            members[count++] = npy(1, b->image_dict, zeros, b->image_bytes);
        }
        if (b->label_dict) {
            names[count] = "label.npy";
            members[count++] = npy(1, b->label_dict, zeros, b->label_bytes);
        }
        REQUIRE(write_npz(p, count, names, members, i % 2));
        CHECK_FAILS(at_dataset_load_file(&ds, p, 1, H, W, 10, &err), b->status, p, b->needle);
    }
    /* labels out of range, negative, and too large for any int */
    const int64_t high[N] = {1, 2, 10}, negative[N] = {0, -1, 3}, huge[N] = {0, 0, INT64_MIN};
    const struct { const int64_t *labels; const char *descr, *needle; } ranges[] = {
        {high, "<i8", "label[2] = 10 is out of range [0, 10)"},
        {negative, "<i8", "label[1] = -1 is out of range"},
        {negative, "<i2", "label[1] = -1 is out of range"},
        {huge, "<u8", "label[2] = 9223372036854775808 is out of range"},
    };
    for (int r = 0; r < 4; r++) {
        uint8_t labels[N * 8];
        const int itemsize = ranges[r].descr[2] - '0';
        labels_as(itemsize, ranges[r].labels, N, labels);
        char ldict[128];
        snprintf(ldict, sizeof ldict, "{'descr': '%s', 'fortran_order': False, 'shape': (3,), }",
                 ranges[r].descr);
        blob members[2] = {npy(1, bad_npz[1].image_dict, zeros, 60),
                           npy(1, ldict, labels, (size_t)N * itemsize)};
        REQUIRE(write_npz(p, 2, (const char *const[]){"image.npy", "label.npy"}, members, r % 2));
        CHECK_FAILS(at_dataset_load_file(&ds, p, 1, H, W, 10, &err), AT_ERR_FORMAT, p,
                    ranges[r].needle);
    }
    /* not .npy data inside, not a zip archive, no file, a directory, an unknown extension */
    blob junk[2] = {{(uint8_t *)strdup("<html>not found</html>"), 22},
                    npy(1, bad_npz[0].label_dict, zeros, 24)};
    REQUIRE(write_npz(p, 2, (const char *const[]){"image.npy", "label.npy"}, junk, false));
    CHECK_FAILS(at_dataset_load_file(&ds, p, 1, H, W, 10, &err), AT_ERR_FORMAT, p,
                "image.npy: not a .npy array");
    REQUIRE(tmpdir_write(p, "<html>not found</html>", 22));
    CHECK_FAILS(at_dataset_load_file(&ds, p, 1, H, W, 10, &err), AT_ERR_FORMAT, p,
                "not a readable zip archive");
    tmpdir_path(t, "missing.npz", p);
    CHECK_FAILS(at_dataset_load_file(&ds, p, 1, H, W, 10, &err), AT_ERR_IO, p, "cannot open");
    tmpdir_path(t, "gen.npy", p);
    CHECK_FAILS(at_dataset_load_file(&ds, p, 1, H, W, 10, &err), AT_ERR_ARG, p,
                "unknown extension");
    CHECK_FAILS(at_dataset_load_file(&ds, p, 0, H, W, 10, &err), AT_ERR_ARG, p, "");
    CHECK_FAILS(at_dataset_load_file(&ds, p, 1, H, W, 0, &err), AT_ERR_ARG, p, "");
    tmpdir_remove(t);
}

TEST(safetensors_bad_files)
{
    char t[64], p[256];
    REQUIRE(tmpdir_make(t, "extra"));
    tmpdir_path(t, "bad.safetensors", p);
    at_dataset ds;
    at_error err;
    const int64_t good[4] = {N, 1, H, W}, high[N] = {0, 10, 1}, negative[N] = {0, 1, -3};
    const struct {
        const char *image_name, *image_dtype;
        int ndim;
        int64_t shape[4];
        const char *label_name, *label_dtype;
        int n_labels;
        const int64_t *labels;
        int status;
        const char *needle;
    } cases[] = {
        {"pixels", "U8", 4, {N, 1, H, W}, "labels", "I64", N, test_labels, AT_ERR_FORMAT,
         "no tensor 'images' (nor 'image')"},
        {"images", "U8", 4, {N, 1, H, W}, NULL, NULL, 0, NULL, AT_ERR_FORMAT,
         "no tensor 'labels' (nor 'label')"},
        {"images", "F32", 4, {N, 1, H, W}, "labels", "I64", N, test_labels, AT_ERR_FORMAT,
         "images has dtype F32, expected U8"},
        {"images", "U8", 4, {N, 1, H, W}, "labels", "F32", N, test_labels, AT_ERR_FORMAT,
         "labels has dtype F32, expected an integer dtype"},
        {"images", "U8", 4, {N, H, W, 1}, "labels", "I64", N, test_labels, AT_ERR_SHAPE,
         "images has shape [3, 4, 5, 1], expected [N, 1, 4, 5]"},
        {"images", "U8", 3, {N, H, W}, "labels", "I64", N, test_labels, AT_ERR_SHAPE,
         "images has shape [3, 4, 5], expected [N, 1, 4, 5]"},
        {"images", "U8", 4, {N, 1, H, W}, "labels", "I64", 2, test_labels, AT_ERR_SHAPE,
         "images has 3 images but labels has 2 labels"},
        {"images", "U8", 4, {0, 1, H, W}, "labels", "I64", 0, test_labels, AT_ERR_FORMAT,
         "images holds no images (N = 0)"},
        {"images", "U8", 4, {N, 1, H, W}, "labels", "I64", N, high, AT_ERR_FORMAT,
         "labels[1] = 10 is out of range [0, 10)"},
        {"images", "U8", 4, {N, 1, H, W}, "labels", "I8", N, negative, AT_ERR_FORMAT,
         "labels[2] = -3 is out of range [0, 10)"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        REQUIRE(write_st(p, cases[i].image_name, cases[i].image_dtype, cases[i].ndim,
                         cases[i].shape, cases[i].label_name, cases[i].label_dtype,
                         cases[i].n_labels, cases[i].labels));
        CHECK_FAILS(at_dataset_load_file(&ds, p, 1, H, W, 10, &err), cases[i].status, p,
                    cases[i].needle);
    }
    /* the expected shape is the caller's: a good file of one channel is wrong for three */
    REQUIRE(write_st(p, "images", "U8", 4, good, "labels", "I64", N, test_labels));
    CHECK_FAILS(at_dataset_load_file(&ds, p, 3, H, W, 10, &err), AT_ERR_SHAPE, p,
                "expected [N, 3, 4, 5]");
    REQUIRE(tmpdir_write(p, "not a safetensors file", 22));
    CHECK_FAILS(at_dataset_load_file(&ds, p, 1, H, W, 10, &err), AT_ERR_FORMAT, p, "");
    tmpdir_remove(t);
}

/* Every prefix of a good file, and the file with any one byte changed: the reader must never
 * crash or read out of bounds (the sanitizer build checks), every prefix must fail with the path
 * in the message, and a changed file that still loads must hold a whole, valid data set. */
static void damage_everywhere(const char *good, const char *bad, int c)
{
    size_t size;
    uint8_t *bytes = read_whole(good, &size);
    REQUIRE(bytes && size > 100);
    at_dataset ds;
    at_error err;
    int loaded = 0;
    for (size_t keep = 0; keep < size; keep++) {
        REQUIRE(tmpdir_write(bad, bytes, keep));
        int status = at_dataset_load_file(&ds, bad, c, H, W, 10, &err);
        if (status == 0 || !strstr(err.message, bad))
            TEST_FAIL_("%s cut to %zu of %zu bytes: status %d, %s", good, keep, size, status,
                       status ? err.message : "loaded");
        at_dataset_free(&ds);
    }
    for (size_t k = 0; k < size; k++) {
        bytes[k] ^= 0x55;
        REQUIRE(tmpdir_write(bad, bytes, size));
        bytes[k] ^= 0x55;
        int status = at_dataset_load_file(&ds, bad, c, H, W, 10, &err);
        if (status == 0) {
            loaded++;
            CHECK(ds.n == N && ds.images && ds.labels);
            for (int i = 0; i < ds.n; i++)
                CHECK(ds.labels[i] >= 0 && ds.labels[i] < 10);
        } else if (!strstr(err.message, bad)) {
            TEST_FAIL_("byte %zu spoiled: message lacks the path: %s", k, err.message);
        }
        at_dataset_free(&ds);
    }
    printf("  %s: %zu prefixes fail; %d of %zu one-byte changes still load\n", good, size, loaded,
           size);
    free(bytes);
}

TEST(truncated_and_spoiled_files)
{
    char t[64], good[256], bad[256];
    REQUIRE(tmpdir_make(t, "extra"));
    for (int deflate = 0; deflate < 2; deflate++) {
        REQUIRE(write_good_npz(tmpdir_path(t, "good.npz", good), 3, true, "<i8", "image", "label",
                               deflate, 1));
        damage_everywhere(good, tmpdir_path(t, "bad.npz", bad), 3);
    }
    REQUIRE(write_st(tmpdir_path(t, "good.safetensors", good), "images", "U8", 4,
                     (const int64_t[]){N, 3, H, W}, "labels", "I64", N, test_labels));
    damage_everywhere(good, tmpdir_path(t, "bad.safetensors", bad), 3);
    tmpdir_remove(t);
}

/* ---- the .npy header on its own ----------------------------------------------------------- */

TEST(npy_headers)
{
    at_npy_header h;
    at_error err;
    blob b = npy(1, "{'descr': '<i8', 'fortran_order': False, 'shape': (3, 28L, 28), }", NULL, 0);
    CHECK_OK(at_npy_header_parse(b.bytes, b.size, "a", &h, &err), &err);
    CHECK(h.kind == 'i' && h.itemsize == 8 && !h.big_endian && h.ndim == 3);
    CHECK(h.shape[0] == 3 && h.shape[1] == 28 && h.shape[2] == 28);
    CHECK_EQ_INT(h.header_bytes, b.size);
    CHECK_EQ_INT(h.data_bytes, 3 * 28 * 28 * 8);
    free(b.bytes);
    /* versions 2.0 and 3.0 (4-byte length), a scalar, double quotes, no trailing comma */
    for (int major = 2; major <= 3; major++) {
        b = npy(major, "{\"shape\": (), \"fortran_order\": False, \"descr\": \">f4\"}", NULL, 0);
        CHECK_OK(at_npy_header_parse(b.bytes, b.size, "a", &h, &err), &err);
        CHECK(h.ndim == 0 && h.data_bytes == 4 && h.big_endian && h.kind == 'f');
        free(b.bytes);
    }
    static const struct { const char *dict; const char *needle; } bad[] = {
        {"{'descr': '<i8', 'fortran_order': False, 'shape': (3), }", "malformed value of 'shape'"},
        {"{'descr': '<i8', 'fortran_order': False, 'shape': (3,), 'x': 1}", "unexpected key 'x'"},
        {"{'descr': '<i8', 'descr': '<i8', 'fortran_order': False, 'shape': (3,)}", "twice"},
        {"{'descr': '<i8', 'fortran_order': 0, 'shape': (3,)}", "value of 'fortran_order'"},
        {"{'descr': 'i8', 'fortran_order': False, 'shape': (3,)}", "unknown descr 'i8'"},
        {"{'descr': '<i8', 'fortran_order': False, 'shape': (-3,)}", "value of 'shape'"},
        {"{'descr': '<i8', 'fortran_order': False, 'shape': (3,)} x", "text after the dict"},
        {"{'descr': '<i8' 'fortran_order': False, 'shape': (3,)}", "expected ',' or '}'"},
        {"['descr', '<i8']", "not a dict literal"},
        {"{'descr': '<i8', 'fortran_order': False, 'shape': (99999999999, 99999999999, "
         "99999999999)}", "shape overflows"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        b = npy(1, bad[i].dict, NULL, 0);
        CHECK_EQ_INT(at_npy_header_parse(b.bytes, b.size, "arr.npy", &h, &err), AT_ERR_FORMAT);
        if (!strstr(err.message, "arr.npy") || !strstr(err.message, bad[i].needle))
            TEST_FAIL_("%s: %s", bad[i].dict, err.message);
        /* cut short anywhere, the header is an error too */
        for (size_t keep = 0; keep < b.size; keep++)
            CHECK(at_npy_header_parse(b.bytes, keep, "arr.npy", &h, &err) == AT_ERR_FORMAT);
        free(b.bytes);
    }
    b = npy(1, "{'descr': '<i8', 'fortran_order': False, 'shape': (3,)}", NULL, 0);
    b.bytes[6] = 4;
    CHECK_EQ_INT(at_npy_header_parse(b.bytes, b.size, "a", &h, &err), AT_ERR_FORMAT);
    CHECK(strstr(err.message, "version 4.0") != NULL);
    free(b.bytes);
}

TEST_MAIN(TEST_ENTRY(npz_round_trip), TEST_ENTRY(safetensors_round_trip),
          TEST_ENTRY(npz_bad_files), TEST_ENTRY(safetensors_bad_files),
          TEST_ENTRY(truncated_and_spoiled_files), TEST_ENTRY(npy_headers))
