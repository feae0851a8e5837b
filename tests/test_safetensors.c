/* test_safetensors.c: the safetensors reader and writer. Round trips over every supported dtype;
 * byte-exact agreement with the reference implementation's own test vectors, in both directions;
 * one file per malformed case, each of which must fail with AT_ERR_FORMAT and a message naming
 * the file; and the atomic save, which must never leave a temporary file or damage the old one.
 * Every file lives in a fresh directory under /tmp that the test removes. */
#include "test.h"
#include "util/tmpdir.h"

#include "advtrain.h"

#include <dirent.h>
#include <signal.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

/* ------------------------------------------------------------------------------------------------
 * A scratch directory per test
 */
typedef struct scratch {
    char dir[64];
} scratch;

static bool scratch_make(scratch *s)
{
    return tmpdir_make(s->dir, "st");
}

static void scratch_path(const scratch *s, const char *name, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%s", s->dir, name);
}

/* Entries in the scratch directory: a temporary file left behind shows up here. */
static int scratch_entries(const scratch *s)
{
    DIR *d = opendir(s->dir);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    return n;
}

/* ------------------------------------------------------------------------------------------------
 * Raw files
 */
static void write_bytes(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, n, f) != n)
        TEST_FAIL_("cannot write %s", path);
    if (f)
        fclose(f);
}

/* A file with the given header length field, header text and data_size zero bytes of data. */
static void write_raw(const char *path, uint64_t header_len, const char *header, size_t data_size)
{
    size_t text = strlen(header), n = 8 + text + data_size;
    unsigned char *bytes = calloc(1, n);
    for (int i = 0; i < 8; i++)
        bytes[i] = (unsigned char)(header_len >> (8 * i));
    memcpy(bytes + 8, header, text);
    write_bytes(path, bytes, n);
    free(bytes);
}

static unsigned char *read_bytes(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    *size = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *bytes = malloc(*size ? *size : 1);
    if (fread(bytes, 1, *size, f) != *size) {
        free(bytes);
        bytes = NULL;
    }
    fclose(f);
    return bytes;
}

/* The reference layout: length, header padded with spaces to a multiple of 8, data. */
static unsigned char *official_bytes(const char *header, const void *data, size_t data_size,
                                     size_t *size)
{
    size_t text = strlen(header), padded = (text + 7) / 8 * 8;
    *size = 8 + padded + data_size;
    unsigned char *bytes = malloc(*size);
    for (int i = 0; i < 8; i++)
        bytes[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    memcpy(bytes + 8, header, text);
    memset(bytes + 8 + text, ' ', padded - text);
    if (data_size)
        memcpy(bytes + 8 + padded, data, data_size);
    return bytes;
}

/* ------------------------------------------------------------------------------------------------
 * Tests
 */
typedef struct sample {
    const char *name, *dtype;
    int ndim;
    int64_t shape[3];
    size_t nbytes;
} sample;

static size_t element_size(const char *dtype)
{
    if (strstr(dtype, "64"))
        return 8;
    if (strstr(dtype, "32"))
        return 4;
    return strstr(dtype, "16") ? 2 : 1;
}

TEST(round_trip_every_dtype)
{
    scratch s;
    REQUIRE(scratch_make(&s));
    char path[128];
    scratch_path(&s, "all.safetensors", path, sizeof path);
    /* One byte pattern feeds every tensor; odd sizes check that the layout keeps alignment. */
    unsigned char pattern[256];
    for (int i = 0; i < 256; i++)
        pattern[i] = (unsigned char)(i * 37 + 11);
    const sample samples[] = {
        {"weights", "F32", 2, {2, 3}, 24}, {"step", "I64", 0, {0}, 8},
        {"double", "F64", 1, {3}, 24},     {"half", "F16", 1, {5}, 10},
        {"bf", "BF16", 2, {2, 2}, 8},      {"i32", "I32", 1, {3}, 12},
        {"i16", "I16", 1, {1}, 2},         {"i8", "I8", 1, {3}, 3},
        {"bytes", "U8", 1, {7}, 7},        {"mask", "BOOL", 1, {2}, 2},
        {"empty", "F32", 2, {0, 4}, 0},
    };
    const int n = (int)(sizeof samples / sizeof samples[0]);
    at_error err;
    at_st_writer *w = NULL;
    CHECK_OK(at_st_writer_create(&w, &err), &err);
    REQUIRE(w);
    for (int i = 0; i < n; i++)
        CHECK_OK(at_st_writer_add(w, samples[i].name, samples[i].dtype, samples[i].ndim,
                                  samples[i].shape, pattern + i, samples[i].nbytes, &err), &err);
    CHECK_OK(at_st_writer_meta(w, "framework", "pt", &err), &err);
    CHECK_OK(at_st_writer_meta(w, "note", "p\xc3\xa4" "ckchen \xe2\x9c\x93", &err), &err);
    CHECK_OK(at_st_writer_save(w, path, &err), &err);
    at_st_writer_free(w);

    at_safetensors *st = NULL;
    CHECK_OK(at_st_open(&st, path, &err), &err);
    REQUIRE(st);
    CHECK_EQ_INT(at_st_count(st), n);
    for (int i = 0; i < n; i++) {
        const at_st_tensor *t = at_st_find(st, samples[i].name);
        if (!t) {
            TEST_FAIL_("tensor %s not found", samples[i].name);
            continue;
        }
        CHECK_STR_EQ(t->name, samples[i].name);
        CHECK_STR_EQ(t->dtype, samples[i].dtype);
        CHECK_EQ_INT(t->ndim, samples[i].ndim);
        for (int d = 0; d < t->ndim; d++)
            CHECK_EQ_INT(t->shape[d], samples[i].shape[d]);
        CHECK_EQ_INT(t->nbytes, samples[i].nbytes);
        CHECK(t->nbytes == 0 || memcmp(t->data, pattern + i, t->nbytes) == 0);
    }
    CHECK_STR_EQ(at_st_meta(st, "framework"), "pt");
    CHECK_STR_EQ(at_st_meta(st, "note"), "p\xc3\xa4" "ckchen \xe2\x9c\x93");
    CHECK(at_st_meta(st, "absent") == NULL);
    CHECK(at_st_find(st, "absent") == NULL);
    CHECK(at_st_get(st, -1) == NULL);
    CHECK(at_st_get(st, n) == NULL);

    /* The reference order: largest dtype first (I64, then F64), so that with the header padded
     * to 8 bytes every tensor starts at a multiple of its element size. */
    const at_st_tensor *first = at_st_get(st, 0);
    REQUIRE(first);
    CHECK_STR_EQ(first->name, "step");
    CHECK_STR_EQ(at_st_get(st, 1)->name, "double");
    const unsigned char *start = first->data;
    for (int i = 0; i < n; i++) {
        const at_st_tensor *t = at_st_get(st, i);
        size_t offset = (size_t)((const unsigned char *)t->data - start);
        size_t element = element_size(t->dtype);
        if (offset % element != 0)
            TEST_FAIL_("tensor %s at offset %zu is not aligned to %zu", t->name, offset, element);
    }
    at_st_free(st);
    size_t size;
    unsigned char *bytes = read_bytes(path, &size);
    REQUIRE(bytes);
    CHECK_EQ_INT(bytes[0] % 8, 0);
    free(bytes);
    tmpdir_remove(s.dir);
}

/* The reference implementation's serialisation tests, byte for byte: its writer and ours must
 * produce the same files, and ours must read what it writes. */
TEST(official_layout_byte_exact)
{
    scratch s;
    REQUIRE(scratch_make(&s));
    char path[128];
    scratch_path(&s, "official.safetensors", path, sizeof path);
    at_error err;
    const float values[6] = {0, 1, 2, 3, 4, 5};
    const int64_t shape[4] = {1, 1, 2, 3};
    struct {
        const char *header;
        bool with_tensor, with_meta;
        size_t header_len;
    } cases[] = {
        {"{\"attn0\":{\"dtype\":\"F32\",\"shape\":[1,1,2,3],\"data_offsets\":[0,24]}}", true,
         false, 72},
        {"{}", false, false, 8},
        {"{\"__metadata__\":{\"framework\":\"pt\"}}", false, true, 40},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        at_st_writer *w = NULL;
        CHECK_OK(at_st_writer_create(&w, &err), &err);
        REQUIRE(w);
        if (cases[c].with_tensor)
            CHECK_OK(at_st_writer_add(w, "attn0", "F32", 4, shape, values, sizeof values, &err),
                     &err);
        if (cases[c].with_meta)
            CHECK_OK(at_st_writer_meta(w, "framework", "pt", &err), &err);
        CHECK_OK(at_st_writer_save(w, path, &err), &err);
        at_st_writer_free(w);
        size_t want_size, got_size = 0;
        unsigned char *want = official_bytes(cases[c].header, values,
                                             cases[c].with_tensor ? sizeof values : 0, &want_size);
        unsigned char *got = read_bytes(path, &got_size);
        CHECK_EQ_INT(want[0], cases[c].header_len);
        CHECK_EQ_INT(got_size, want_size);
        CHECK(got && got_size == want_size && memcmp(got, want, want_size) == 0);
        free(want);
        free(got);
    }

    /* Hand-built files in the official layout, padded and unpadded, entries out of data order. */
    const float data[2] = {1.5f, -2.0f};
    size_t size;
    unsigned char *bytes = official_bytes(
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", data, sizeof data,
        &size);
    write_bytes(path, bytes, size);
    free(bytes);
    at_safetensors *st = NULL;
    CHECK_OK(at_st_open(&st, path, &err), &err);
    REQUIRE(st);
    CHECK_EQ_INT(at_st_count(st), 1);
    const at_st_tensor *a = at_st_find(st, "a");
    REQUIRE(a);
    CHECK_STR_EQ(a->dtype, "F32");
    CHECK_EQ_INT(a->ndim, 1);
    CHECK_EQ_INT(a->shape[0], 2);
    CHECK(a->nbytes == 8 && memcmp(a->data, data, 8) == 0);
    CHECK(at_st_meta(st, "framework") == NULL);
    at_st_free(st);

    const char *unordered =
        "{\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]},"
        "\"a\":{\"dtype\":\"I32\",\"shape\":[],\"data_offsets\":[0,4]},\"__metadata__\":null}";
    write_raw(path, strlen(unordered), unordered, 8);
    st = NULL;
    CHECK_OK(at_st_open(&st, path, &err), &err);
    REQUIRE(st);
    CHECK_EQ_INT(at_st_count(st), 2);
    CHECK_STR_EQ(at_st_get(st, 0)->name, "a"); /* data order */
    CHECK_EQ_INT(at_st_get(st, 0)->ndim, 0);
    CHECK_STR_EQ(at_st_find(st, "b")->dtype, "F32");
    at_st_free(st);
    tmpdir_remove(s.dir);
}

/* One malformed file: `header` with a correct length field and data_size zero bytes after it. */
typedef struct bad_file {
    const char *header;
    size_t data_size;
    const char *expect; /* part of the message */
} bad_file;

#define F32_2(begin, end) "{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[" #begin "," #end "]}"

static const bad_file bad_files[] = {
    {"{\"a\": {\"dtype\": \"F32\"", 0, "not valid JSON (line 1"},
    {"", 0, "not valid JSON"},
    {"{\"a\":" F32_2(0, 8) ",\"a\":" F32_2(0, 8) "}", 8, "duplicate"},
    {"[1, 2]", 0, "not a JSON object"},
    {"{\"a\": 3}", 0, "tensor a: entry is not an object"},
    {"{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "missing \"dtype\""},
    {"{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4, "missing \"shape\""},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, "missing \"data_offsets\""},
    {"{\"a\":{\"dtype\":7,\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "dtype is not a string"},
    {"{\"a\":{\"dtype\":\"Q4\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "unknown dtype \"Q4\""},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":4,\"data_offsets\":[0,16]}}", 16, "not an array"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,0]}}", 0, "non-negative"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1.0],\"data_offsets\":[0,4]}}", 4, "non-negative"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[\"1\"],\"data_offsets\":[0,4]}}", 4, "non-negative"},
    {"{\"a\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,1]}}", 1,
     "at most 8"},
    {"{\"a\":{\"dtype\":\"U8\",\"shape\":[4294967296,4294967296,4294967296],"
     "\"data_offsets\":[0,0]}}", 0, "overflows"},
    {"{\"a\":{\"dtype\":\"F64\",\"shape\":[2305843009213693952],\"data_offsets\":[0,0]}}", 0,
     "overflows"},
    {"{\"a\":" F32_2(8, 0) "}", 8, "data_offsets is not [begin, end]"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0]}}", 8, "data_offsets is not"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,\"8\"]}}", 8,
     "data_offsets is not"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[-1,7]}}", 8, "data_offsets is not"},
    {"{\"a\":" F32_2(0, 8) "}", 4, "beyond the data buffer"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, "need 12"},
    {"{\"a\":" F32_2(0, 8) ",\"b\":" F32_2(4, 12) "}", 12, "tensors a and b overlap"},
    {"{\"a\":" F32_2(0, 8) ",\"b\":" F32_2(0, 8) "}", 8, "overlap"},
    {"{\"a\":" F32_2(0, 8) ",\"b\":" F32_2(12, 20) "}", 20,
     "gap in the data buffer before tensor b"},
    {"{\"a\":" F32_2(4, 12) "}", 12, "gap in the data buffer before tensor a"},
    {"{\"a\":" F32_2(0, 8) "}", 12, "4 unused bytes"},
    {"{}", 8, "8 unused bytes"},
    {"{\"__metadata__\": 3}", 0, "__metadata__ is not an object"},
    {"{\"__metadata__\": {\"epoch\": 1}}", 0, "metadata value of \"epoch\" is not a string"},
};

static void expect_failure(const char *path, int status, const char *fragment)
{
    static char sentinel;
    at_safetensors *st = (at_safetensors *)&sentinel; /* any non-NULL value: must become NULL */
    at_error err = {0, ""};
    int got = at_st_open(&st, path, &err);
    CHECK(st == NULL);
    if (got != status || err.status != status || !strstr(err.message, path) ||
        !strstr(err.message, fragment))
        TEST_FAIL_("expected status %d and \"%s\", got %d: %s", status, fragment, got,
                   err.message);
    if (got == 0)
        at_st_free(st);
}

TEST(malformed_files_fail_clearly)
{
    scratch s;
    REQUIRE(scratch_make(&s));
    char path[128];
    for (size_t i = 0; i < sizeof bad_files / sizeof bad_files[0]; i++) {
        char name[32];
        snprintf(name, sizeof name, "bad%zu.safetensors", i);
        scratch_path(&s, name, path, sizeof path);
        write_raw(path, strlen(bad_files[i].header), bad_files[i].header, bad_files[i].data_size);
        expect_failure(path, AT_ERR_FORMAT, bad_files[i].expect);
    }
    /* The length field itself. */
    scratch_path(&s, "short.safetensors", path, sizeof path);
    write_bytes(path, "\x02\0\0\0\0", 5);
    expect_failure(path, AT_ERR_FORMAT, "shorter than 8 bytes");
    scratch_path(&s, "long-header.safetensors", path, sizeof path);
    write_raw(path, 100, "{}", 0);
    expect_failure(path, AT_ERR_FORMAT, "oversized header");
    scratch_path(&s, "huge-header.safetensors", path, sizeof path);
    write_raw(path, 200000000, "{}", 0);
    expect_failure(path, AT_ERR_FORMAT, "oversized header");
    write_raw(path, UINT64_MAX, "{}", 0);
    expect_failure(path, AT_ERR_FORMAT, "oversized header");
    /* Files that are not there or not files. */
    scratch_path(&s, "absent.safetensors", path, sizeof path);
    expect_failure(path, AT_ERR_IO, "cannot open");
    expect_failure(s.dir, AT_ERR_IO, "not a regular file");
    tmpdir_remove(s.dir);
}

TEST(writer_rejects_bad_input)
{
    at_error err;
    at_st_writer *w = NULL;
    CHECK_OK(at_st_writer_create(&w, &err), &err);
    REQUIRE(w);
    const float v[4] = {1, 2, 3, 4};
    const int64_t shape4[1] = {4}, negative[1] = {-4}, many[9] = {1, 1, 1, 1, 1, 1, 1, 1, 4};
    CHECK_OK(at_st_writer_add(w, "v", "F32", 1, shape4, v, sizeof v, &err), &err);
    CHECK_EQ_INT(at_st_writer_add(w, "v", "F32", 1, shape4, v, sizeof v, &err), AT_ERR_ARG);
    CHECK(strstr(err.message, "duplicate tensor name v") != NULL);
    CHECK_EQ_INT(at_st_writer_add(w, "w", "F32", 1, shape4, v, 12, &err), AT_ERR_SHAPE);
    CHECK(strstr(err.message, "w: 12 bytes given") != NULL);
    CHECK_EQ_INT(at_st_writer_add(w, "w", "F128", 1, shape4, v, sizeof v, &err), AT_ERR_ARG);
    CHECK_EQ_INT(at_st_writer_add(w, "w", "F32", 1, negative, v, sizeof v, &err), AT_ERR_ARG);
    CHECK_EQ_INT(at_st_writer_add(w, "w", "F32", 9, many, v, sizeof v, &err), AT_ERR_ARG);
    CHECK_EQ_INT(at_st_writer_add(w, "w", "F32", 1, shape4, NULL, sizeof v, &err), AT_ERR_ARG);
    CHECK_EQ_INT(at_st_writer_add(w, "__metadata__", "F32", 1, shape4, v, sizeof v, &err),
                 AT_ERR_ARG);
    CHECK_EQ_INT(at_st_writer_add(w, "", "F32", 1, shape4, v, sizeof v, &err), AT_ERR_ARG);
    CHECK_EQ_INT(at_st_writer_add(w, "bad\xff", "F32", 1, shape4, v, sizeof v, &err), AT_ERR_ARG);
    CHECK_OK(at_st_writer_meta(w, "k", "1", &err), &err);
    CHECK_EQ_INT(at_st_writer_meta(w, "k", "2", &err), AT_ERR_ARG);
    CHECK_EQ_INT(at_st_writer_meta(w, "k2", "\xc3", &err), AT_ERR_ARG);

    /* The rejected calls left the writer as it was. */
    scratch s;
    REQUIRE(scratch_make(&s));
    char path[128];
    scratch_path(&s, "w.safetensors", path, sizeof path);
    CHECK_OK(at_st_writer_save(w, path, &err), &err);
    at_st_writer_free(w);
    at_safetensors *st = NULL;
    CHECK_OK(at_st_open(&st, path, &err), &err);
    REQUIRE(st);
    CHECK_EQ_INT(at_st_count(st), 1);
    CHECK_STR_EQ(at_st_meta(st, "k"), "1");
    at_st_free(st);
    tmpdir_remove(s.dir);
}

/* Saves one F32 tensor "x" filled with `value` (n elements). */
static int save_x(const char *path, float value, int n, at_error *err)
{
    float *x = malloc((size_t)n * sizeof *x);
    for (int i = 0; i < n; i++)
        x[i] = value;
    const int64_t shape[1] = {n};
    at_st_writer *w = NULL;
    int status = at_st_writer_create(&w, err);
    if (status == 0)
        status = at_st_writer_add(w, "x", "F32", 1, shape, x, (size_t)n * sizeof *x, err);
    if (status == 0)
        status = at_st_writer_save(w, path, err);
    at_st_writer_free(w);
    free(x);
    return status;
}

/* The first value of "x" in the file, or -1 when it cannot be read. */
static float load_x(const char *path)
{
    at_safetensors *st = NULL;
    at_error err;
    float value = -1;
    if (at_st_open(&st, path, &err) == 0 && at_st_find(st, "x"))
        memcpy(&value, at_st_find(st, "x")->data, sizeof value);
    at_st_free(st);
    return value;
}

TEST(atomic_save)
{
    scratch s;
    REQUIRE(scratch_make(&s));
    char path[128], elsewhere[160], occupied[128], inside[160];
    scratch_path(&s, "model.safetensors", path, sizeof path);
    at_error err;
    CHECK_OK(save_x(path, 1.0f, 4, &err), &err);
    CHECK_OK(save_x(path, 2.0f, 8, &err), &err);
    CHECK_EQ_INT(load_x(path), 2);
    CHECK_EQ_INT(scratch_entries(&s), 1);

    /* Into a directory that does not exist. */
    scratch_path(&s, "missing/model.safetensors", elsewhere, sizeof elsewhere);
    CHECK_EQ_INT(save_x(elsewhere, 3.0f, 4, &err), AT_ERR_IO);
    CHECK(strstr(err.message, elsewhere) != NULL);
    CHECK_EQ_INT(scratch_entries(&s), 1);

    /* Over a directory: the rename fails after the data was written; the temporary file goes. */
    scratch_path(&s, "occupied", occupied, sizeof occupied);
    REQUIRE(mkdir(occupied, 0700) == 0);
    snprintf(inside, sizeof inside, "%s/keep", occupied);
    write_bytes(inside, "x", 1);
    CHECK_EQ_INT(save_x(occupied, 4.0f, 4, &err), AT_ERR_IO);
    CHECK(strstr(err.message, occupied) != NULL);
    CHECK_EQ_INT(scratch_entries(&s), 2);

    /* A write that fails halfway (the file size limit stands in for a full disk): the old file
     * must be intact and no temporary file left. */
    struct rlimit old_limit, small;
    REQUIRE(getrlimit(RLIMIT_FSIZE, &old_limit) == 0);
    small = old_limit;
    small.rlim_cur = 4096;
    void (*old_handler)(int) = signal(SIGXFSZ, SIG_IGN);
    REQUIRE(setrlimit(RLIMIT_FSIZE, &small) == 0);
    int status = save_x(path, 5.0f, 1 << 16, &err);
    setrlimit(RLIMIT_FSIZE, &old_limit);
    signal(SIGXFSZ, old_handler);
    CHECK_EQ_INT(status, AT_ERR_IO);
    CHECK(strstr(err.message, path) != NULL);
    CHECK_EQ_INT(load_x(path), 2);
    CHECK_EQ_INT(scratch_entries(&s), 2);
    tmpdir_remove(s.dir);
}

TEST_MAIN(TEST_ENTRY(round_trip_every_dtype), TEST_ENTRY(official_layout_byte_exact),
          TEST_ENTRY(malformed_files_fail_clearly), TEST_ENTRY(writer_rejects_bad_input),
          TEST_ENTRY(atomic_save))
