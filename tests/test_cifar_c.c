/* test_cifar_c.c: the CIFAR-10-C / CIFAR-100-C loader on small files written here in the
 * release's format (.npy arrays, uint8 [N, 32, 32, 3] with the five severities stacked, and
 * labels.npy): every severity's rows, the NHWC to NCHW transposition pixel by pixel, the labels
 * in uint8 and int64, opening by name, and each kind of damage with its status and file name. */
#define _XOPEN_SOURCE 700 /* nftw, to remove the temporary directory */
#include "test.h"

#include "advtrain.h"

#include <ftw.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

enum { SIDE = 32, CH = 3, IMAGE = SIDE * SIDE * CH };

/* Pixel (y, x, channel c) of row i: every index changes the value, so a transposition or an
 * off-by-one row shows up. */
static uint8_t pixel(int i, int y, int x, int c)
{
    return (uint8_t)((i * 37 + y * 13 + x * 3 + c * 101) % 256);
}

static int label_of(int i, int classes) { return (i * 7 + 3) % classes; }

/* Writes a version 1.0 .npy file: header for `descr` and `shape`, then `bytes` bytes of data. */
static void write_npy(const char *path, const char *descr, const char *shape, const void *data,
                      size_t bytes)
{
    char dict[256];
    int len = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': %s, }",
                       descr, shape);
    int total = 10 + len + 1, pad = (64 - total % 64) % 64; /* numpy aligns the data to 64 */
    FILE *f = fopen(path, "wb");
    if (!f)
        return;
    uint16_t header = (uint16_t)(len + pad + 1);
    fwrite("\x93NUMPY\x01\x00", 1, 8, f);
    fputc(header & 0xff, f);
    fputc(header >> 8, f);
    fwrite(dict, 1, (size_t)len, f);
    for (int i = 0; i < pad; i++)
        fputc(' ', f);
    fputc('\n', f);
    fwrite(data, 1, bytes, f);
    fclose(f);
}

/* rows images in NHWC order. */
static uint8_t *make_images(int rows)
{
    uint8_t *px = malloc((size_t)rows * IMAGE);
    for (int i = 0; i < rows; i++)
        for (int y = 0; y < SIDE; y++)
            for (int x = 0; x < SIDE; x++)
                for (int c = 0; c < CH; c++)
                    px[(size_t)i * IMAGE + (y * SIDE + x) * CH + c] = pixel(i, y, x, c);
    return px;
}

static void write_images(const char *dir, const char *name, int rows, int stored_rows)
{
    char path[256], shape[64];
    snprintf(path, sizeof path, "%s/%s.npy", dir, name);
    snprintf(shape, sizeof shape, "(%d, 32, 32, 3)", rows);
    uint8_t *px = make_images(rows);
    write_npy(path, "|u1", shape, px, (size_t)stored_rows * IMAGE);
    free(px);
}

static void write_labels_u8(const char *dir, int rows, int classes)
{
    char path[256], shape[32];
    uint8_t y[64];
    for (int i = 0; i < rows; i++)
        y[i] = (uint8_t)label_of(i, classes);
    snprintf(path, sizeof path, "%s/labels.npy", dir);
    snprintf(shape, sizeof shape, "(%d,)", rows);
    write_npy(path, "|u1", shape, y, (size_t)rows);
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static void make_dir(char *dir)
{
    snprintf(dir, 64, "/tmp/advtrain-cifarc-XXXXXX");
    if (!mkdtemp(dir))
        dir[0] = '\0';
}

/* Loads every severity and checks it row by row against what was written. */
static void check_all_severities(const char *dir, int rows, int classes)
{
    const int per = rows / 5;
    for (int s = 1; s <= 5; s++) {
        at_dataset ds;
        at_error err;
        CHECK_OK(at_dataset_load_cifar_c(&ds, dir, "fog", s, classes, &err), &err);
        if (!ds.images)
            return;
        CHECK_EQ_INT(ds.n, per);
        CHECK(ds.c == 3 && ds.h == 32 && ds.w == 32 && ds.num_classes == classes);
        char name[64];
        snprintf(name, sizeof name, "%s:fog:%d", classes == 100 ? "cifar100-c" : "cifar10-c", s);
        CHECK_STR_EQ(ds.name, name);
        long wrong = 0;
        for (int j = 0; j < per; j++) {
            const int row = (s - 1) * per + j;
            CHECK_EQ_INT(ds.labels[j], label_of(row, classes));
            for (int c = 0; c < CH; c++)
                for (int y = 0; y < SIDE; y++)
                    for (int x = 0; x < SIDE; x++)
                        wrong += ds.images[(size_t)j * IMAGE + (c * SIDE + y) * SIDE + x] !=
                                 pixel(row, y, x, c);
        }
        CHECK_EQ_INT(wrong, 0);
        at_dataset_free(&ds);
    }
}

TEST(loads_every_severity_in_nchw)
{
    char dir[64];
    make_dir(dir);
    REQUIRE(dir[0]);
    write_images(dir, "fog", 20, 20);
    write_labels_u8(dir, 20, 10);
    check_all_severities(dir, 20, 10);
    /* int64 labels, as some copies of the release have, and 100 classes */
    int64_t y[20];
    for (int i = 0; i < 20; i++)
        y[i] = label_of(i, 100);
    char path[256];
    snprintf(path, sizeof path, "%s/labels.npy", dir);
    write_npy(path, "<i8", "(20,)", y, sizeof y);
    check_all_severities(dir, 20, 100);

    /* by name, as --data cifar10-c:fog:2 --data-dir DIR; 10 classes refuse labels up to 99 */
    at_dataset ds;
    at_error err;
    CHECK_OK(at_dataset_open(&ds, "cifar100-c:fog:2", dir, "test", &err), &err);
    CHECK_EQ_INT(ds.n, 4);
    CHECK_EQ_INT(ds.labels[1], label_of(5, 100));
    at_dataset_free(&ds);
    CHECK_EQ_INT(at_dataset_open(&ds, "cifar10-c:fog:2", dir, "test", &err), AT_ERR_FORMAT);
    CHECK(strstr(err.message, "labels.npy") && strstr(err.message, "out of range [0, 10)"));
    write_labels_u8(dir, 20, 10);
    CHECK_OK(at_dataset_open(&ds, "cifar10-c:fog:5", dir, "test", &err), &err);
    CHECK_STR_EQ(ds.name, "cifar10-c:fog:5");
    CHECK_EQ_INT(ds.labels[0], label_of(16, 10));
    at_dataset_free(&ds);
    CHECK_EQ_INT(at_dataset_open(&ds, "cifar10-c", dir, "test", &err), AT_ERR_ARG);
    CHECK(strstr(err.message, "cifar10-c:gaussian_noise:3"));
    CHECK_EQ_INT(at_dataset_open(&ds, "cifar10-c:fog", dir, "test", &err), AT_ERR_ARG);
    CHECK_EQ_INT(at_dataset_open(&ds, "cifar10-c:fog:x", dir, "test", &err), AT_ERR_ARG);
    CHECK_EQ_INT(at_dataset_open(&ds, "cifar10-c:fog:6", dir, "test", &err), AT_ERR_ARG);
    CHECK(strstr(err.message, "severity must be 1..5, got 6"));
    CHECK_EQ_INT(at_dataset_open(&ds, "cifar10-c:fog:1", dir, "train", &err), AT_ERR_ARG);
    CHECK(strstr(err.message, "test split only"));
    nftw(dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
}

/* Every benchmark corruption and the four held-out ones are file names the loader takes. */
TEST(names_of_the_corruptions)
{
    char dir[64];
    make_dir(dir);
    REQUIRE(dir[0]);
    write_labels_u8(dir, 5, 10);
    const char *held_out[4] = {"speckle_noise", "gaussian_blur", "spatter", "saturate"};
    int n = 0;
    for (int i = 0; i < 19; i++) {
        const char *name = i < 15 ? at_corruption_name(i) : held_out[i - 15];
        REQUIRE(name);
        write_images(dir, name, 5, 5);
        at_dataset ds;
        at_error err;
        CHECK_OK(at_dataset_load_cifar_c(&ds, dir, name, 1 + i % 5, 10, &err), &err);
        n += ds.n == 1;
        at_dataset_free(&ds);
    }
    CHECK_EQ_INT(n, 19);
    CHECK(at_corruption_name(15) == NULL);
    nftw(dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
}

/* A failing load: its status, the file named, and nothing left allocated. */
static void check_fails(const char *dir, const char *corruption, int severity, int status,
                        const char *in_message)
{
    at_dataset ds;
    at_error err = {0};
    CHECK_EQ_INT(at_dataset_load_cifar_c(&ds, dir, corruption, severity, 10, &err), status);
    if (!strstr(err.message, in_message))
        TEST_FAIL_("'%s' lacks '%s'", err.message, in_message);
    CHECK(ds.images == NULL && ds.labels == NULL && ds.n == 0);
}

TEST(errors_name_the_file)
{
    char dir[64], path[256];
    make_dir(dir);
    REQUIRE(dir[0]);
    write_images(dir, "fog", 20, 20);
    /* labels.npy missing */
    snprintf(path, sizeof path, "%s/labels.npy", dir);
    check_fails(dir, "fog", 1, AT_ERR_NOTFOUND, path);
    write_labels_u8(dir, 20, 10);
    snprintf(path, sizeof path, "%s/snow.npy", dir);
    check_fails(dir, "snow", 1, AT_ERR_NOTFOUND, path);
    check_fails(dir, "rain", 1, AT_ERR_ARG, "unknown CIFAR-C corruption 'rain'");
    check_fails(dir, "../fog", 1, AT_ERR_ARG, "unknown CIFAR-C corruption");
    check_fails(dir, "fog", 0, AT_ERR_ARG, "severity must be 1..5");
    check_fails(dir, "fog", 6, AT_ERR_ARG, "severity must be 1..5");

    /* truncated: the header promises 20 rows, 19 and a half are there (every severity fails,
     * the damage is the file's) */
    snprintf(path, sizeof path, "%s/frost.npy", dir);
    uint8_t *px = make_images(20);
    write_npy(path, "|u1", "(20, 32, 32, 3)", px, 19 * IMAGE + IMAGE / 2);
    check_fails(dir, "frost", 1, AT_ERR_FORMAT, "truncated");
    check_fails(dir, "frost", 5, AT_ERR_FORMAT, path);
    /* trailing bytes */
    write_npy(path, "|u1", "(19, 32, 32, 3)", px, 20 * IMAGE);
    check_fails(dir, "frost", 1, AT_ERR_FORMAT, "trailing bytes");
    /* channels first, as at_dataset stores them, is not the release's layout */
    write_npy(path, "|u1", "(20, 3, 32, 32)", px, 20 * IMAGE);
    check_fails(dir, "frost", 1, AT_ERR_SHAPE, "[N, 32, 32, 3]");
    /* not five severities */
    write_npy(path, "|u1", "(18, 32, 32, 3)", px, 18 * IMAGE);
    check_fails(dir, "frost", 1, AT_ERR_SHAPE, "18 rows, not a positive multiple of the 5");
    /* floats */
    write_npy(path, "<f4", "(5, 32, 32, 3)", px, 20 * IMAGE);
    check_fails(dir, "frost", 1, AT_ERR_FORMAT, "dtype <f4");
    /* not an .npy file */
    write_npy(path, "|u1", "(20, 32, 32, 3)", px, 20 * IMAGE);
    FILE *f = fopen(path, "r+b");
    if (f) {
        fputc('X', f);
        fclose(f);
    }
    check_fails(dir, "frost", 1, AT_ERR_FORMAT, "not a .npy array");
    free(px);

    /* labels: fewer than the images, out of range, floats */
    snprintf(path, sizeof path, "%s/labels.npy", dir);
    write_labels_u8(dir, 15, 10);
    check_fails(dir, "fog", 1, AT_ERR_SHAPE, "expected one label per image ([20])");
    uint8_t y[20] = {0};
    y[17] = 10;
    write_npy(path, "|u1", "(20,)", y, sizeof y);
    check_fails(dir, "fog", 1, AT_ERR_FORMAT, "labels[17] = 10 is out of range [0, 10)");
    int64_t negative[20] = {0};
    negative[3] = -1;
    write_npy(path, "<i8", "(20,)", negative, sizeof negative);
    check_fails(dir, "fog", 2, AT_ERR_FORMAT, "labels[3] = -1");
    float fy[20] = {0};
    write_npy(path, "<f4", "(20,)", fy, sizeof fy);
    check_fails(dir, "fog", 1, AT_ERR_FORMAT, "labels must be little-endian integers");
    nftw(dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
}

TEST_MAIN(TEST_ENTRY(loads_every_severity_in_nchw), TEST_ENTRY(names_of_the_corruptions),
          TEST_ENTRY(errors_name_the_file))
