/* test_data.c: data sets. Loaders are checked on small files written here (IDX raw and gzip,
 * CIFAR-10 and CIFAR-100 batches) for exact values and for every kind of damage a download can
 * suffer, each error with its status and the file's path in the message; then opening by name,
 * the real Fashion-MNIST, splits, and batch conversion with crop and flip augmentation. */
#include "test.h"

#include "advtrain.h"
#include "core/util.h"
#include "util/tmpdir.h"

#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

/* ---- temporary files ---------------------------------------------------------------------- */

static bool write_file(const char *path, const void *data, size_t n, bool gzip)
{
    if (gzip) {
        gzFile g = gzopen(path, "wb");
        bool ok = g && gzwrite(g, data, (unsigned)n) == (int)n;
        return g && gzclose(g) == Z_OK && ok;
    }
    return tmpdir_write(path, data, n);
}

/* A failing call on the locals `ds` and `err`: the status, both the path and `needle` in the
 * message ("" when the path is enough), and the output left empty. */
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

/* ---- IDX files ---------------------------------------------------------------------------- */

enum { N_IMG = 3, IMG_H = 4, IMG_W = 5, IMG_BYTES = N_IMG * IMG_H * IMG_W };
static const uint8_t test_labels[N_IMG] = {2, 0, 9};

static uint8_t test_pixel(int k) { return (uint8_t)(k * 37 + k / 7 * 101 + 255); }

/* An IDX file in buf: magic, dims, then `count` bytes of data (pixels or labels). */
static size_t idx_bytes(uint8_t *buf, uint32_t magic, const uint32_t *dims, int ndim,
                        const uint8_t *data, size_t count)
{
    size_t len = 0;
    for (int i = -1; i < ndim; i++)
        for (int b = 3; b >= 0; b--)
            buf[len++] = (uint8_t)((i < 0 ? magic : dims[i]) >> (8 * b));
    memcpy(buf + len, data, count);
    return len + count;
}

/* The good test files: 3 images of 4x5 and their labels, raw or compressed. */
static bool write_test_idx(const char *images, const char *labels, bool gzip_images,
                           bool gzip_labels)
{
    uint8_t pixels[IMG_BYTES], buf[128];
    for (int k = 0; k < IMG_BYTES; k++)
        pixels[k] = test_pixel(k);
    size_t n = idx_bytes(buf, 0x803, (const uint32_t[]){N_IMG, IMG_H, IMG_W}, 3, pixels,
                         IMG_BYTES);
    if (!write_file(images, buf, n, gzip_images))
        return false;
    n = idx_bytes(buf, 0x801, (const uint32_t[]){N_IMG}, 1, test_labels, N_IMG);
    return write_file(labels, buf, n, gzip_labels);
}

static void check_test_idx(const at_dataset *ds)
{
    CHECK(ds->n == N_IMG && ds->c == 1 && ds->h == IMG_H && ds->w == IMG_W);
    CHECK_EQ_INT(ds->num_classes, 10);
    REQUIRE(ds->images && ds->labels && ds->n == N_IMG);
    int wrong = 0;
    for (int k = 0; k < IMG_BYTES; k++)
        wrong += ds->images[k] != test_pixel(k);
    CHECK_EQ_INT(wrong, 0);
    for (int i = 0; i < N_IMG; i++)
        CHECK_EQ_INT(ds->labels[i], test_labels[i]);
}

TEST(idx_raw_and_gzip_round_trip)
{
    char t[64];
    REQUIRE(tmpdir_make(t, "data"));
    char pi[256], pl[256], gi[256], gl[256];
    REQUIRE(write_test_idx(tmpdir_path(t, "img", pi), tmpdir_path(t, "lab", pl), false, false));
    REQUIRE(write_test_idx(tmpdir_path(t, "img.gz", gi), tmpdir_path(t, "lab.gz", gl), true, true));
    at_dataset ds;
    at_error err;
    const char *pairs[][2] = {{pi, pl}, {gi, gl}, {gi, pl}, {pi, gl}};
    for (int p = 0; p < 4; p++) {
        CHECK_OK(at_dataset_load_idx(&ds, pairs[p][0], pairs[p][1], 10, &err), &err);
        check_test_idx(&ds);
        CHECK(ds.name[0] != '\0');
        at_dataset_free(&ds);
        CHECK(ds.images == NULL && ds.n == 0);
    }
    at_dataset_free(&ds); /* twice is harmless */
    tmpdir_remove(t);
}

/* A damaged image file: a header (magic, dims) and `data` bytes of pixels, cut to `keep` bytes
 * when keep >= 0, raw or compressed; loading it must fail with AT_ERR_FORMAT and `needle`. */
static const struct damaged_idx {
    uint32_t magic, dims[3];
    size_t data;
    long keep;
    bool gzip;
    const char *needle;
} damaged_idx[] = {
    {0x803, {3, 4, 5}, 56, -1, false, "truncated: header promises 76 bytes, file has 72"},
    {0x803, {3, 4, 5}, 60, 10, false, "truncated: header promises 16 bytes, file has 10"},
    {0x803, {3, 4, 5}, 60, 0, false, "truncated: header promises 4 bytes, file has 0"},
    {0xd03, {3, 4, 5}, 60, -1, false, "wrong magic 0x00000d03, expected 0x00000803"}, /* float */
    {0x3c68746d, {0}, 20, -1, false, "wrong magic 0x3c68746d, expected 0x00000803"},  /* html */
    {0x802, {3, 20}, 60, -1, false, "wrong number of dims: 2 (magic 0x00000802), expected 3"},
    {0x803, {3, 0, 5}, 60, -1, false, "dimension 1 is 0"},
    {0x803, {0xffffffffu, 0xffffffffu, 28}, 8, -1, false, "oversized header"},
    {0x803, {100000, 28, 28}, 8, -1, false, "header promises 78400016 bytes, file has 24"},
    {0x803, {100000, 28, 28}, 8, -1, true, "header promises 78400016 bytes, file has 24"},
    {0x803, {3, 4, 5}, 64, -1, false, "trailing garbage: 4 bytes after the 76"},
    {0x803, {3, 4, 5}, 64, -1, true, "trailing garbage: 4 bytes after the 76"},
};

TEST(idx_damaged_files)
{
    char t[64];
    REQUIRE(tmpdir_make(t, "data"));
    char pi[256], pl[256], bad[256];
    REQUIRE(write_test_idx(tmpdir_path(t, "img", pi), tmpdir_path(t, "lab", pl), false, false));
    tmpdir_path(t, "bad", bad);
    at_dataset ds;
    at_error err;
    CHECK_FAILS(at_dataset_load_idx(&ds, bad, pl, 10, &err), AT_ERR_IO, bad, "cannot open");
    CHECK_FAILS(at_dataset_load_idx(&ds, pi, bad, 10, &err), AT_ERR_IO, bad, "cannot open");
    CHECK_FAILS(at_dataset_load_idx(&ds, t, pl, 10, &err), AT_ERR_IO, t, "");

    uint8_t pixels[64], buf[128];
    for (int k = 0; k < 64; k++)
        pixels[k] = test_pixel(k);
    for (size_t i = 0; i < sizeof damaged_idx / sizeof damaged_idx[0]; i++) {
        const struct damaged_idx *d = &damaged_idx[i];
        int ndim = (d->magic & 0xff) <= 3 ? (int)(d->magic & 0xff) : 0;
        size_t len = idx_bytes(buf, d->magic, d->dims, ndim, pixels, d->data);
        REQUIRE(write_file(bad, buf, d->keep >= 0 ? (size_t)d->keep : len, d->gzip));
        CHECK_FAILS(at_dataset_load_idx(&ds, bad, pl, 10, &err), AT_ERR_FORMAT, bad, d->needle);
    }
    /* a label file given as the images and the other way round */
    CHECK_FAILS(at_dataset_load_idx(&ds, pl, pl, 10, &err), AT_ERR_FORMAT, pl,
                "dims: 1 (magic 0x00000801), expected 3 (magic 0x00000803");
    CHECK_FAILS(at_dataset_load_idx(&ds, pi, pi, 10, &err), AT_ERR_FORMAT, pi,
                "dims: 3 (magic 0x00000803), expected 1 (magic 0x00000801");
    /* fewer labels than images; a label out of range; no classes */
    REQUIRE(write_file(bad, buf, idx_bytes(buf, 0x801, (const uint32_t[]){2}, 1, test_labels, 2),
                       false));
    CHECK_FAILS(at_dataset_load_idx(&ds, pi, bad, 10, &err), AT_ERR_FORMAT, bad, "3 images");
    CHECK(strstr(err.message, pi) != NULL);
    CHECK_FAILS(at_dataset_load_idx(&ds, pi, pl, 9, &err), AT_ERR_FORMAT, pl,
                "label 9 of example 2 is out of range [0, 9)");
    CHECK_FAILS(at_dataset_load_idx(&ds, pi, pl, 0, &err), AT_ERR_ARG, pl, "");
    tmpdir_remove(t);
}

TEST(idx_damaged_gzip)
{
    char t[64];
    REQUIRE(tmpdir_make(t, "data"));
    /* Big and varied enough that the compressed stream can be cut in several places. */
    enum { N = 4, S = 28, BYTES = N * S * S };
    static uint8_t pixels[BYTES], buf[2 * BYTES], gz[2 * BYTES];
    for (int k = 0; k < BYTES; k++)
        pixels[k] = (uint8_t)(k / 5 * 3 + ((k * 2654435761u) >> 29)); /* a little noise */
    size_t len = idx_bytes(buf, 0x803, (const uint32_t[]){N, S, S}, 3, pixels, BYTES);
    char good[256], pl[256], bad[256];
    REQUIRE(write_file(tmpdir_path(t, "good.gz", good), buf, len, true));
    len = idx_bytes(buf, 0x801, (const uint32_t[]){N}, 1, (const uint8_t[]){1, 2, 3, 4}, N);
    REQUIRE(write_file(tmpdir_path(t, "lab", pl), buf, len, false));
    tmpdir_path(t, "bad.gz", bad);
    FILE *f = fopen(good, "rb");
    REQUIRE(f);
    size_t glen = fread(gz, 1, sizeof gz, f);
    fclose(f);
    REQUIRE(glen > 200);
    at_dataset ds;
    at_error err;
    CHECK_OK(at_dataset_load_idx(&ds, good, pl, 10, &err), &err);
    REQUIRE(ds.images && ds.n == N);
    CHECK(memcmp(ds.images, pixels, BYTES) == 0 && ds.labels[3] == 4);
    at_dataset_free(&ds);

    /* Cut in the middle, only the trailer lost, the CRC changed, garbage in the deflate data. */
    const struct { size_t keep, spoil; const char *needle; } cases[] = {
        {glen / 2, 0, "(gzip stream cut short)"}, {glen - 3, 0, "truncated gzip stream"},
        {glen, glen - 6, "corrupt gzip stream"}, {glen, glen / 3, ""}};
    for (int i = 0; i < 4; i++) {
        memcpy(buf, gz, glen);
        buf[cases[i].spoil] ^= cases[i].spoil ? 0x5a : 0;
        REQUIRE(write_file(bad, buf, cases[i].keep, false));
        CHECK_FAILS(at_dataset_load_idx(&ds, bad, pl, 10, &err), AT_ERR_FORMAT, bad,
                    cases[i].needle);
    }
    tmpdir_remove(t);
}

/* ---- CIFAR -------------------------------------------------------------------------------- */

enum { CIFAR_PIX = 3072 };

/* Record r's pixel k: the channel (k / 1024) in the high bits, so channel order shows. */
static uint8_t cifar_pixel(int r, int k) { return (uint8_t)(k / 1024 * 80 + (k * 7 + r) % 64); }

/* Records first..first+count-1 with labels[r * lb ..] into buf. */
static size_t cifar_records(uint8_t *buf, int first, int count, const uint8_t *labels, int lb)
{
    size_t len = 0;
    for (int r = first; r < first + count; r++) {
        for (int b = 0; b < lb; b++)
            buf[len++] = labels[r * lb + b];
        for (int k = 0; k < CIFAR_PIX; k++)
            buf[len++] = cifar_pixel(r, k);
    }
    return len;
}

static void check_cifar(const at_dataset *ds, int n, int classes, const int32_t *labels)
{
    CHECK(ds->n == n && ds->c == 3 && ds->h == 32 && ds->w == 32);
    CHECK_EQ_INT(ds->num_classes, classes);
    REQUIRE(ds->images && ds->labels && ds->n == n);
    int wrong = 0;
    for (int r = 0; r < n; r++) {
        CHECK_EQ_INT(ds->labels[r], labels[r]);
        for (int k = 0; k < CIFAR_PIX; k++)
            wrong += ds->images[(size_t)r * CIFAR_PIX + k] != cifar_pixel(r, k);
    }
    CHECK_EQ_INT(wrong, 0);
    CHECK(ds->images[0] < 80 && ds->images[1024] >= 80 && ds->images[2048] >= 160); /* R, G, B */
}

TEST(cifar_loads_and_validates)
{
    char t[64];
    REQUIRE(tmpdir_make(t, "data"));
    static uint8_t buf[3 * (CIFAR_PIX + 2)];
    const uint8_t labels10[] = {7, 0, 9}, labels100[] = {3, 77, 19, 99, 0, 0};
    char a[256], b[256], c[256], bad[256];
    REQUIRE(write_file(tmpdir_path(t, "a", a), buf, cifar_records(buf, 0, 2, labels10, 1), false));
    REQUIRE(write_file(tmpdir_path(t, "b", b), buf, cifar_records(buf, 2, 1, labels10, 1), false));
    REQUIRE(write_file(tmpdir_path(t, "c", c), buf, cifar_records(buf, 0, 3, labels100, 2), false));
    tmpdir_path(t, "bad", bad);
    at_dataset ds;
    at_error err;
    CHECK_OK(at_dataset_load_cifar(&ds, (const char *[]){a, b}, 2, 1, &err), &err);
    check_cifar(&ds, 3, 10, (const int32_t[]){7, 0, 9});
    at_dataset_free(&ds);
    CHECK_OK(at_dataset_load_cifar(&ds, (const char *[]){c}, 1, 2, &err), &err);
    check_cifar(&ds, 3, 100, (const int32_t[]){77, 99, 0}); /* the fine labels */
    at_dataset_free(&ds);

    REQUIRE(write_file(bad, buf, 2 * (CIFAR_PIX + 1) + 5, false));
    CHECK_FAILS(at_dataset_load_cifar(&ds, (const char *[]){a, bad}, 2, 1, &err), AT_ERR_FORMAT,
                bad, "6151 bytes is not a non-zero multiple of the 3073-byte record");
    CHECK_FAILS(at_dataset_load_cifar(&ds, (const char *[]){b}, 1, 2, &err), AT_ERR_FORMAT, b,
                "3073 bytes is not a non-zero multiple of the 3074-byte record");
    REQUIRE(write_file(bad, buf, 0, false));
    CHECK_FAILS(at_dataset_load_cifar(&ds, (const char *[]){bad}, 1, 1, &err), AT_ERR_FORMAT, bad,
                "size 0 bytes");
    REQUIRE(write_file(bad, buf, cifar_records(buf, 0, 2, (const uint8_t[]){1, 10}, 1), false));
    CHECK_FAILS(at_dataset_load_cifar(&ds, (const char *[]){a, bad}, 2, 1, &err), AT_ERR_FORMAT,
                bad, "label 10 of record 1 is out of range [0, 10)");
    REQUIRE(write_file(bad, buf, cifar_records(buf, 0, 1, (const uint8_t[]){1, 100}, 2), false));
    CHECK_FAILS(at_dataset_load_cifar(&ds, (const char *[]){bad}, 1, 2, &err), AT_ERR_FORMAT, bad,
                "label 100 of record 0 is out of range [0, 100)");
    tmpdir_path(t, "missing", bad);
    CHECK_FAILS(at_dataset_load_cifar(&ds, (const char *[]){a, bad}, 2, 1, &err), AT_ERR_IO, bad,
                "cannot open");
    CHECK_EQ_INT(at_dataset_load_cifar(&ds, (const char *[]){a}, 1, 3, &err), AT_ERR_ARG);
    tmpdir_remove(t);
}

/* ---- opening by name ---------------------------------------------------------------------- */

TEST(open_by_name)
{
    char t[64];
    REQUIRE(tmpdir_make(t, "data"));
    char p[256], q[256];
    at_dataset ds;
    at_error err;
    /* Only the test split: images compressed (a stale raw copy must lose to them), labels raw. */
    REQUIRE(write_test_idx(tmpdir_path(t, "t10k-images-idx3-ubyte.gz", p),
                           tmpdir_path(t, "t10k-labels-idx1-ubyte", q), true, false));
    REQUIRE(write_file(tmpdir_path(t, "t10k-images-idx3-ubyte", p), "stale", 5, false));
    CHECK_OK(at_dataset_open(&ds, "fashion-mnist", t, "test", &err), &err);
    check_test_idx(&ds);
    CHECK_STR_EQ(ds.name, "fashion-mnist");
    at_dataset_free(&ds);
    CHECK_FAILS(at_dataset_open(&ds, "mnist", t, "train", &err), AT_ERR_NOTFOUND,
                tmpdir_path(t, "train-images-idx3-ubyte", p), "train");
    CHECK_FAILS(at_dataset_open(&ds, "imagenet", t, "test", &err), AT_ERR_ARG, "imagenet",
                "mnist, fashion-mnist, cifar10, cifar100");
    CHECK_FAILS(at_dataset_open(&ds, "mnist", t, "valid", &err), AT_ERR_ARG, "valid",
                "train, test");
    CHECK_FAILS(at_dataset_open(&ds, "cifar10", tmpdir_path(t, "nowhere", p), "test", &err),
                AT_ERR_NOTFOUND, p, "");

    /* CIFAR-10 where the official archive unpacks it: inside cifar-10-batches-bin. */
    static uint8_t buf[2 * (CIFAR_PIX + 1)];
    REQUIRE(mkdir(tmpdir_path(t, "cifar-10-batches-bin", p), 0700) == 0);
    REQUIRE(write_file(tmpdir_path(t, "cifar-10-batches-bin/test_batch.bin", p), buf,
                       cifar_records(buf, 0, 2, (const uint8_t[]){4, 5}, 1), false));
    CHECK_OK(at_dataset_open(&ds, "cifar10", t, "test", &err), &err);
    check_cifar(&ds, 2, 10, (const int32_t[]){4, 5});
    CHECK_STR_EQ(ds.name, "cifar10");
    at_dataset_free(&ds);
    CHECK_FAILS(at_dataset_open(&ds, "cifar10", t, "train", &err), AT_ERR_NOTFOUND,
                tmpdir_path(t, "cifar-10-batches-bin/data_batch_1.bin", p), "");

    const char *name, *dir, *description;
    int count = 0;
    for (; at_dataset_info(count, &name, &dir, &description); count++)
        CHECK(name && (dir ? dir[0] == '/' : !strcmp(name, "folder")) &&
              strlen(description) > 10);
    CHECK_EQ_INT(count, 8); /* and fashion-mnist-clips (test_clips.c), cifar10-c and cifar100-c
                               (test_cifar_c.c), folder (test_image_folder.c) */
    CHECK(!at_dataset_info(-1, &name, &dir, &description));
    tmpdir_remove(t);
}

TEST(real_fashion_mnist)
{
    const char *dir = "/usr/share/datasets/fashion-mnist";
    struct stat st;
    if (stat(dir, &st) != 0) {
        TEST_FAIL_("%s is missing: install the Fashion-MNIST data package (CI does)", dir);
        return;
    }
    at_dataset train, test;
    at_error err;
    CHECK_OK(at_dataset_open(&train, "fashion-mnist", NULL, "train", &err), &err);
    CHECK_OK(at_dataset_open(&test, "fashion-mnist", NULL, "test", &err), &err);
    CHECK(train.n == 60000 && test.n == 10000 && test.c == 1 && test.h == 28 && test.w == 28);
    CHECK_EQ_INT(test.num_classes, 10);
    int per_class[2][10] = {{0}};
    long label_sum = 0;
    uint64_t pixel_sum = 0; /* of the published test images: a checksum of the decompression */
    for (int i = 0; i < train.n; i++)
        per_class[0][train.labels[i]]++;
    for (int i = 0; i < test.n; i++) {
        per_class[1][test.labels[i]]++;
        label_sum += test.labels[i];
    }
    for (size_t k = 0; k < (size_t)test.n * test.c * test.h * test.w; k++)
        pixel_sum += test.images[k];
    for (int k = 0; k < 10; k++)
        CHECK(per_class[0][k] == 6000 && per_class[1][k] == 1000);
    CHECK(label_sum == 45000 && pixel_sum == 573469082);
    CHECK(test.n > 1 && test.labels[0] == 9 && test.labels[1] == 2);
    at_dataset_free(&train);
    at_dataset_free(&test);
}

/* ---- splits and batches ------------------------------------------------------------------- */

/* n examples of c x h x w; example i has label i and pixels that depend on i. */
static at_dataset make_dataset(int n, int c, int h, int w)
{
    at_dataset ds = {.name = "made", .n = n, .c = c, .h = h, .w = w, .num_classes = 256};
    size_t example = (size_t)c * h * w;
    ds.images = at_alloc((size_t)n * example);
    ds.labels = at_alloc((size_t)n * sizeof(int32_t));
    for (int i = 0; i < n; i++) {
        ds.labels[i] = i;
        for (size_t k = 0; k < example; k++)
            ds.images[i * example + k] = (uint8_t)(i * 31 + k * 7 + 1);
    }
    return ds;
}

TEST(split_and_slice)
{
    enum { N = 50, VAL = 12, EX = 18 };
    at_dataset src = make_dataset(N, 2, 3, 3), tr[3], va[3];
    at_error err;
    const uint64_t seeds[3] = {5, 5, 6};
    for (int s = 0; s < 3; s++) {
        CHECK_OK(at_dataset_split(&tr[s], &va[s], &src, VAL, seeds[s], &err), &err);
        REQUIRE(tr[s].n == N - VAL && va[s].n == VAL && tr[s].c == 2 && va[s].h == 3);
        int seen[N] = {0};
        for (int i = 0; i < VAL; i++)
            seen[va[s].labels[i]]++;
        for (int i = 0; i < N - VAL; i++) {
            seen[tr[s].labels[i]]++;
            CHECK(i == 0 || tr[s].labels[i] > tr[s].labels[i - 1]); /* original order */
            CHECK(memcmp(tr[s].images + i * EX, src.images + tr[s].labels[i] * EX, EX) == 0);
        }
        for (int i = 0; i < N; i++)
            CHECK_EQ_INT(seen[i], 1); /* disjoint and covering */
    }
    CHECK(memcmp(va[0].images, va[1].images, VAL * EX) == 0); /* the same seed, the same split */
    CHECK(memcmp(va[0].labels, va[2].labels, VAL * sizeof(int32_t)) != 0);
    for (int s = 0; s < 3; s++) {
        at_dataset_free(&tr[s]);
        at_dataset_free(&va[s]);
    }
    CHECK_OK(at_dataset_split(&tr[0], &va[0], &src, 0, 1, &err), &err);
    CHECK(va[0].n == 0 && va[0].images == NULL && va[0].labels == NULL && va[0].c == 2);
    CHECK(tr[0].n == N && memcmp(tr[0].images, src.images, N * EX) == 0);
    at_dataset_free(&tr[0]);
    at_dataset_free(&va[0]);
    CHECK_EQ_INT(at_dataset_split(&tr[0], &va[0], &src, N, 1, &err), AT_ERR_ARG);
    CHECK_EQ_INT(at_dataset_split(&tr[0], &va[0], &src, -1, 1, &err), AT_ERR_ARG);

    CHECK_OK(at_dataset_slice(&tr[0], &src, 10, 5, &err), &err);
    CHECK(tr[0].n == 5 && tr[0].labels[0] == 10 && tr[0].labels[4] == 14);
    CHECK(memcmp(tr[0].images, src.images + 10 * EX, 5 * EX) == 0);
    at_dataset_free(&tr[0]);
    CHECK_EQ_INT(at_dataset_slice(&tr[0], &src, 48, 3, &err), AT_ERR_ARG);
    CHECK_EQ_INT(at_dataset_slice(&tr[0], &src, -1, 3, &err), AT_ERR_ARG);
    at_dataset_free(&src);
}

TEST(batch_conversion_is_exact)
{
    at_dataset ds = make_dataset(3, 1, 16, 16); /* 256 pixels: example 1 gets every byte value */
    for (int k = 0; k < 256; k++)
        ds.images[256 + k] = (uint8_t)k;
    float x[2 * 256];
    int32_t y[2];
    at_dataset_batch(&ds, (const int32_t[]){1, 0}, 2, x, y, NULL, NULL);
    int wrong = 0;
    for (int k = 0; k < 256; k++)
        wrong += x[k] != (float)k / 255.0f || x[256 + k] != (float)ds.images[k] / 255.0f;
    CHECK_EQ_INT(wrong, 0);
    CHECK(x[0] == 0.0f && x[255] == 1.0f && y[0] == 1 && y[1] == 0);
    at_dataset_free(&ds);
}

/* Augments a 3x3 image with the first seed whose draws (crop row, crop column, flip: the
 * documented order) give shift (dy, dx) and `flip`, and compares with `want` (pixel indices of
 * the source, -1 for padding). */
static void check_augmented(const at_augment *aug, int dy, int dx, bool flip, const int want[9])
{
    at_dataset one = make_dataset(1, 1, 3, 3);
    const int p = aug->crop_padding;
    for (uint64_t seed = 0;; seed++) {
        at_rng rng;
        at_rng_seed(&rng, seed);
        int sy = p ? (int)at_rng_below(&rng, 2u * p + 1) - p : 0;
        int sx = p ? (int)at_rng_below(&rng, 2u * p + 1) - p : 0;
        if (sy != dy || sx != dx || (aug->hflip && (at_rng_below(&rng, 2) == 1) != flip))
            continue;
        float out[9];
        int32_t y;
        at_rng_seed(&rng, seed);
        at_dataset_batch(&one, (const int32_t[]){0}, 1, out, &y, aug, &rng);
        for (int k = 0; k < 9; k++)
            CHECK(out[k] == (want[k] < 0 ? 0.0f : one.images[want[k]] / 255.0f));
        break;
    }
    at_dataset_free(&one);
}

TEST(batch_augmentation)
{
    enum { N = 16, C = 3, H = 6, W = 5, EX = C * H * W };
    at_dataset ds = make_dataset(N, C, H, W);
    int32_t idx[N], y[N];
    for (int i = 0; i < N; i++)
        idx[i] = N - 1 - i;
    static float x1[N * EX], x2[N * EX], x3[N * EX];
    const at_augment both = {.crop_padding = 2, .hflip = true};
    at_rng r1, r2, r3;
    at_rng_seed(&r1, 42);
    at_rng_seed(&r2, 42);
    at_rng_seed(&r3, 43);
    at_dataset_batch(&ds, idx, N, x1, y, &both, &r1);
    at_dataset_batch(&ds, idx, N, x2, y, &both, &r2);
    at_dataset_batch(&ds, idx, N, x3, y, &both, &r3);
    CHECK(memcmp(x1, x2, sizeof x1) == 0);
    CHECK(memcmp(x1, x3, sizeof x1) != 0);
    CHECK(memcmp(&r1, &r2, sizeof r1) == 0 && y[0] == N - 1 && y[N - 1] == 0);
    at_dataset_batch(&ds, idx, N, x3, y, NULL, NULL);
    int same = 0; /* examples left as they were: neither flipped nor shifted */
    for (int i = 0; i < N; i++)
        same += memcmp(x1 + i * EX, x3 + i * EX, sizeof(float) * EX) == 0;
    CHECK(same < N / 2);

    /* By hand on a 3x3 image (pixel indices 0..8 row-major): a flip mirrors each row; a shift of
     * (+1, -1) moves content up and right and fills with zeros; crop then flip does both. */
    const at_augment flip = {.hflip = true}, crop = {.crop_padding = 1};
    check_augmented(&flip, 0, 0, true, (const int[]){2, 1, 0, 5, 4, 3, 8, 7, 6});
    check_augmented(&flip, 0, 0, false, (const int[]){0, 1, 2, 3, 4, 5, 6, 7, 8});
    check_augmented(&crop, 1, -1, false, (const int[]){-1, 3, 4, -1, 6, 7, -1, -1, -1});
    check_augmented(&crop, -1, 0, false, (const int[]){-1, -1, -1, 0, 1, 2, 3, 4, 5});
    check_augmented(&both, 1, -1, true, (const int[]){4, 3, -1, 7, 6, -1, -1, -1, -1});
    check_augmented(&both, -2, 2, false, (const int[]){-1, -1, -1, -1, -1, -1, 2, -1, -1});
    at_dataset_free(&ds);
}

TEST_MAIN(TEST_ENTRY(idx_raw_and_gzip_round_trip), TEST_ENTRY(idx_damaged_files),
          TEST_ENTRY(idx_damaged_gzip), TEST_ENTRY(cifar_loads_and_validates),
          TEST_ENTRY(open_by_name), TEST_ENTRY(real_fashion_mnist), TEST_ENTRY(split_and_slice),
          TEST_ENTRY(batch_conversion_is_exact), TEST_ENTRY(batch_augmentation))
