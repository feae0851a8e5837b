/* safetensors.c: reading and writing safetensors files, the format of Hugging Face's safetensors
 * library (what PyTorch users read with safetensors.torch.load_file), so checkpoints move between
 * this library and PyTorch unchanged.
 *
 * Layout: an 8-byte little-endian header length N; N bytes of JSON mapping each tensor name to
 * {"dtype", "shape", "data_offsets": [begin, end]} plus an optional "__metadata__" map of strings;
 * then the data buffer, which the tensors must cover exactly, without gaps or overlaps. Offsets
 * are relative to the start of the data buffer.
 *
 * The reader checks everything the reference implementation checks, so a file accepted here is
 * accepted there. The writer lays files out as the reference does (tensors by descending dtype,
 * then by name; header padded with spaces to a multiple of 8), which keeps every tensor aligned to
 * its element size and makes our files byte-identical to safetensors' own for the same tensors.
 * It writes atomically: a crash or a full disk never leaves half a checkpoint under the name.
 */
#include "core/util.h"
#include "io/atomic_file.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Tensor data is handed out and taken in as raw bytes, which the format defines as little-endian;
 * a big-endian host would need byte swapping that nothing here does. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors.c assumes a little-endian host"
#endif

#define ST_METADATA_KEY "__metadata__"
#define ST_MAX_DIMS 8 /* at_st_tensor.shape */

/* The reference implementation's limit: a larger header is a corrupt length, not a real file. */
static const uint64_t st_max_header = 100000000;

/* Supported dtypes. `rank` is the position in the reference implementation's Dtype enum, which
 * orders them by alignment; the writer sorts by it, descending, as the reference does. */
typedef struct st_dtype {
    const char *name;
    size_t size;
    int rank;
} st_dtype;

static const st_dtype st_dtypes[] = {
    {"BOOL", 1, 0}, {"U8", 1, 1}, {"I8", 1, 2},   {"I16", 2, 3}, {"F16", 2, 4},
    {"BF16", 2, 5}, {"I32", 4, 6}, {"F32", 4, 7}, {"F64", 8, 8}, {"I64", 8, 9},
};

static const st_dtype *find_dtype(const char *name)
{
    for (size_t i = 0; i < sizeof st_dtypes / sizeof st_dtypes[0]; i++)
        if (strcmp(st_dtypes[i].name, name) == 0)
            return &st_dtypes[i];
    return NULL;
}

/* ------------------------------------------------------------------------------------------------
 * Reading
 */

struct at_safetensors {
    unsigned char *bytes;        /* the whole file */
    json_t *header;              /* owns the tensor names and metadata strings */
    json_t *metadata;            /* borrowed from header; NULL when the file has none */
    int count;
    at_st_tensor *tensors;       /* in data order */
    json_t *index;               /* tensor name -> position in tensors, for at_st_find */
};

void at_st_free(at_safetensors *st)
{
    if (!st)
        return;
    json_decref(st->header);
    at_free(st->bytes);
    json_decref(st->index);
    at_free(st->tensors);
    at_free(st);
}

int at_st_count(const at_safetensors *st) { return st->count; }

const at_st_tensor *at_st_get(const at_safetensors *st, int index)
{
    return index >= 0 && index < st->count ? &st->tensors[index] : NULL;
}

const at_st_tensor *at_st_find(const at_safetensors *st, const char *name)
{
    const json_t *position = json_object_get(st->index, name);
    return position ? &st->tensors[json_integer_value(position)] : NULL;
}

const char *at_st_meta(const at_safetensors *st, const char *key)
{
    return st->metadata ? json_string_value(json_object_get(st->metadata, key)) : NULL;
}

/* Reads a whole regular file into at_alloc'd memory. */
static int read_file(const char *path, unsigned char **out, size_t *size, at_error *err)
{
    FILE *f;
    int opened = at_open_regular(&f, path, err);
    if (opened)
        return opened;
    struct stat info;
    int status = AT_OK;
    if (fstat(fileno(f), &info) != 0)
        status = at_fail(err, AT_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    else if ((*size = (size_t)info.st_size) < 8)
        status = at_fail(err, AT_ERR_FORMAT, "%s: file shorter than 8 bytes (%zu bytes)", path,
                         *size);
    else if (!(*out = at_alloc(*size)))
        status = at_fail(err, AT_ERR_NOMEM, "%s: out of memory reading %zu bytes", path, *size);
    else if (fread(*out, 1, *size, f) != *size)
        status = at_fail(err, AT_ERR_IO, "%s: read error", path); /* *out freed with st */
    fclose(f);
    return status;
}

/* A JSON integer >= 0 (the format's sizes are unsigned). */
static bool get_size(const json_t *value, uint64_t *out)
{
    if (!json_is_integer(value) || json_integer_value(value) < 0)
        return false;
    *out = (uint64_t)json_integer_value(value);
    return true;
}

/* "PATH: tensor NAME: why" as AT_ERR_FORMAT. */
static int bad_tensor(at_error *err, const char *path, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int bad_tensor(at_error *err, const char *path, const char *name, const char *fmt, ...)
{
    char why[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    return at_fail(err, AT_ERR_FORMAT, "%s: tensor %s: %s", path, name, why);
}

/* Checks one header entry and points `t` at its bytes inside `data` (data_size bytes). */
static int parse_tensor(const char *path, const char *name, const json_t *entry,
                        const unsigned char *data, uint64_t data_size, at_st_tensor *t,
                        at_error *err)
{
    if (!json_is_object(entry))
        return bad_tensor(err, path, name, "entry is not an object");
    const json_t *dtype = json_object_get(entry, "dtype");
    const json_t *shape = json_object_get(entry, "shape");
    const json_t *offsets = json_object_get(entry, "data_offsets");
    if (!dtype || !shape || !offsets)
        return bad_tensor(err, path, name, "missing \"%s\"",
                          !dtype ? "dtype" : !shape ? "shape" : "data_offsets");
    if (!json_is_string(dtype))
        return bad_tensor(err, path, name, "dtype is not a string");
    const st_dtype *type = find_dtype(json_string_value(dtype));
    if (!type)
        return bad_tensor(err, path, name, "unknown dtype \"%s\"", json_string_value(dtype));
    if (!json_is_array(shape))
        return bad_tensor(err, path, name, "shape is not an array");
    size_t ndim = json_array_size(shape);
    if (ndim > ST_MAX_DIMS)
        return bad_tensor(err, path, name, "%zu dimensions, at most %d supported", ndim,
                          ST_MAX_DIMS);
    size_t numel = 1, nbytes;
    for (size_t i = 0; i < ndim; i++) {
        uint64_t dim;
        if (!get_size(json_array_get(shape, i), &dim))
            return bad_tensor(err, path, name, "shape is not a list of non-negative integers");
        t->shape[i] = (int64_t)dim;
        if (!at_mul_size(numel, (size_t)dim, &numel))
            return bad_tensor(err, path, name, "shape overflows");
    }
    if (!at_mul_size(numel, type->size, &nbytes))
        return bad_tensor(err, path, name, "shape overflows");
    uint64_t begin, end;
    if (!json_is_array(offsets) || json_array_size(offsets) != 2 ||
        !get_size(json_array_get(offsets, 0), &begin) ||
        !get_size(json_array_get(offsets, 1), &end) || begin > end)
        return bad_tensor(err, path, name,
                          "data_offsets is not [begin, end] with 0 <= begin <= end");
    if (end > data_size)
        return bad_tensor(err, path, name, "data_offsets end %llu is beyond the data buffer "
                          "(%llu bytes)", (unsigned long long)end, (unsigned long long)data_size);
    if (end - begin != nbytes)
        return bad_tensor(err, path, name, "data_offsets span %llu bytes but %zu elements of %s "
                          "need %zu", (unsigned long long)(end - begin), numel, type->name,
                          nbytes);
    t->name = name;
    t->dtype = type->name;
    t->ndim = (int)ndim;
    t->data = data + begin;
    t->nbytes = nbytes;
    return AT_OK;
}

static int compare_offsets(const void *a, const void *b)
{
    const at_st_tensor *x = a, *y = b;
    const unsigned char *xd = x->data, *yd = y->data;
    if (xd != yd)
        return xd < yd ? -1 : 1;
    return x->nbytes < y->nbytes ? -1 : x->nbytes > y->nbytes;
}

/* The reference requires the tensors to tile the data buffer exactly: sorted by offset, each one
 * starts where the previous one ended and the last one ends at the end of the file. */
static int check_coverage(const char *path, const at_safetensors *st, const unsigned char *data,
                          uint64_t data_size, at_error *err)
{
    uint64_t covered = 0;
    for (int i = 0; i < st->count; i++) {
        const at_st_tensor *t = &st->tensors[i];
        uint64_t begin = (uint64_t)((const unsigned char *)t->data - data);
        if (begin < covered)
            return at_fail(err, AT_ERR_FORMAT, "%s: tensors %s and %s overlap in the data buffer",
                           path, st->tensors[i - 1].name, t->name);
        if (begin > covered)
            return at_fail(err, AT_ERR_FORMAT,
                           "%s: gap in the data buffer before tensor %s (bytes %llu to %llu)",
                           path, t->name, (unsigned long long)covered, (unsigned long long)begin);
        covered = begin + t->nbytes;
    }
    if (covered != data_size)
        return at_fail(err, AT_ERR_FORMAT,
                       "%s: %llu unused bytes in the data buffer after the last tensor", path,
                       (unsigned long long)(data_size - covered));
    return AT_OK;
}

/* Everything after the file is in memory: header length, JSON, each entry, the coverage. */
static int parse_file(const char *path, at_safetensors *st, size_t size, at_error *err)
{
    uint64_t header_len = 0;
    for (int i = 7; i >= 0; i--)
        header_len = header_len << 8 | st->bytes[i];
    if (header_len > st_max_header)
        return at_fail(err, AT_ERR_FORMAT, "%s: oversized header: %llu bytes (the limit is %llu)",
                       path, (unsigned long long)header_len, (unsigned long long)st_max_header);
    if (header_len > size - 8)
        return at_fail(err, AT_ERR_FORMAT,
                       "%s: oversized header: length %llu but the file has %zu bytes", path,
                       (unsigned long long)header_len, size);
    json_error_t jerr;
    st->header = json_loadb((const char *)st->bytes + 8, (size_t)header_len,
                            JSON_REJECT_DUPLICATES, &jerr);
    if (!st->header)
        return at_fail(err, AT_ERR_FORMAT, "%s: header is not valid JSON (line %d, column %d: %s)",
                       path, jerr.line, jerr.column, jerr.text);
    if (!json_is_object(st->header))
        return at_fail(err, AT_ERR_FORMAT, "%s: header is not a JSON object", path);

    const unsigned char *data = st->bytes + 8 + header_len;
    uint64_t data_size = size - 8 - header_len;
    size_t n = json_object_size(st->header);
    st->metadata = json_object_get(st->header, ST_METADATA_KEY);
    if (st->metadata) {
        n--;
        if (json_is_null(st->metadata))
            st->metadata = NULL; /* serde reads null as no metadata */
        else if (!json_is_object(st->metadata))
            return at_fail(err, AT_ERR_FORMAT, "%s: " ST_METADATA_KEY " is not an object", path);
    }
    const char *key;
    json_t *value;
    json_object_foreach(st->metadata, key, value)
        if (!json_is_string(value))
            return at_fail(err, AT_ERR_FORMAT, "%s: metadata value of \"%s\" is not a string",
                           path, key);
    /* The header limit bounds n far below INT_MAX, so the count fits an int. */
    st->tensors = n ? at_alloc(n * sizeof *st->tensors) : NULL;
    st->index = json_object();
    if ((n && !st->tensors) || !st->index)
        return at_fail(err, AT_ERR_NOMEM, "%s: out of memory for %zu tensors", path, n);
    const char *name;
    const json_t *entry;
    json_object_foreach(st->header, name, entry) {
        if (strcmp(name, ST_METADATA_KEY) == 0)
            continue;
        int status = parse_tensor(path, name, entry, data, data_size, &st->tensors[st->count], err);
        if (status != AT_OK)
            return status;
        st->count++;
    }
    if (st->count > 0) /* qsort's base must not be NULL, even for no items */
        qsort(st->tensors, (size_t)st->count, sizeof *st->tensors, compare_offsets);
    int status = check_coverage(path, st, data, data_size, err);
    if (status != AT_OK)
        return status;
    for (int i = 0; i < st->count; i++)
        if (json_object_set_new(st->index, st->tensors[i].name, json_integer(i)) != 0)
            return at_fail(err, AT_ERR_NOMEM, "%s: out of memory for %zu tensors", path, n);
    return AT_OK;
}

int at_st_open(at_safetensors **out, const char *path, at_error *err)
{
    *out = NULL;
    if (!path)
        return at_fail(err, AT_ERR_ARG, "safetensors path is NULL");
    at_safetensors *st = at_alloc(sizeof *st);
    if (!st)
        return at_fail(err, AT_ERR_NOMEM, "%s: out of memory", path);
    size_t size = 0;
    int status = read_file(path, &st->bytes, &size, err);
    if (status == AT_OK)
        status = parse_file(path, st, size, err);
    if (status == AT_OK)
        *out = st;
    else
        at_st_free(st);
    return status;
}

/* ------------------------------------------------------------------------------------------------
 * Writing
 */

typedef struct st_entry {
    char *name;
    const st_dtype *dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    const void *data; /* the caller's, kept until save */
    size_t nbytes;
} st_entry;

struct at_st_writer {
    st_entry *tensors;
    int n_tensors, cap_tensors;
    json_t *meta; /* object of strings, in the order they were added */
};

int at_st_writer_create(at_st_writer **out, at_error *err)
{
    at_st_writer *w = at_alloc(sizeof *w);
    if (w && !(w->meta = json_object())) {
        at_free(w);
        w = NULL;
    }
    *out = w;
    return w ? AT_OK : at_fail(err, AT_ERR_NOMEM, "out of memory creating a safetensors writer");
}

void at_st_writer_free(at_st_writer *w)
{
    if (!w)
        return;
    for (int i = 0; i < w->n_tensors; i++)
        at_free(w->tensors[i].name);
    at_free(w->tensors);
    json_decref(w->meta);
    at_free(w);
}

static char *copy_string(const char *s)
{
    size_t n = strlen(s) + 1;
    char *copy = at_alloc(n);
    if (copy)
        memcpy(copy, s, n);
    return copy;
}

/* JSON strings must be UTF-8; jansson's own check is what json_string applies. */
static bool is_utf8(const char *s)
{
    json_t *probe = json_string(s);
    json_decref(probe);
    return probe != NULL;
}

int at_st_writer_add(at_st_writer *w, const char *name, const char *dtype, int ndim,
                     const int64_t *shape, const void *data, size_t nbytes, at_error *err)
{
    if (!w || !name || !dtype)
        return at_fail(err, AT_ERR_ARG, "safetensors writer: NULL argument");
    if (name[0] == '\0' || strcmp(name, ST_METADATA_KEY) == 0 || !is_utf8(name))
        return at_fail(err, AT_ERR_ARG, "\"%s\" is not a valid tensor name", name);
    const st_dtype *type = find_dtype(dtype);
    if (!type)
        return at_fail(err, AT_ERR_ARG, "tensor %s: unknown dtype \"%s\"", name, dtype);
    if (ndim < 0 || ndim > ST_MAX_DIMS || (ndim > 0 && !shape))
        return at_fail(err, AT_ERR_ARG, "tensor %s: %d dimensions (0 to %d supported)", name,
                       ndim, ST_MAX_DIMS);
    size_t numel = 1, expected;
    for (int i = 0; i < ndim; i++)
        if (shape[i] < 0 || !at_mul_size(numel, (size_t)shape[i], &numel))
            return at_fail(err, AT_ERR_ARG, "tensor %s: invalid shape", name);
    if (!at_mul_size(numel, type->size, &expected))
        return at_fail(err, AT_ERR_ARG, "tensor %s: shape overflows", name);
    if (nbytes != expected)
        return at_fail(err, AT_ERR_SHAPE, "tensor %s: %zu bytes given, %zu elements of %s need %zu",
                       name, nbytes, numel, type->name, expected);
    if (nbytes > 0 && !data)
        return at_fail(err, AT_ERR_ARG, "tensor %s: NULL data", name);
    for (int i = 0; i < w->n_tensors; i++)
        if (strcmp(w->tensors[i].name, name) == 0)
            return at_fail(err, AT_ERR_ARG, "duplicate tensor name %s", name);
    if (w->n_tensors == w->cap_tensors) { /* at_alloc has no realloc */
        int cap = w->cap_tensors ? 2 * w->cap_tensors : 16;
        st_entry *bigger = at_alloc((size_t)cap * sizeof *bigger);
        if (!bigger)
            return at_fail(err, AT_ERR_NOMEM, "out of memory adding tensor %s", name);
        if (w->tensors)
            memcpy(bigger, w->tensors, (size_t)w->n_tensors * sizeof *bigger);
        at_free(w->tensors);
        w->tensors = bigger;
        w->cap_tensors = cap;
    }
    st_entry e = {.name = copy_string(name), .dtype = type, .ndim = ndim, .data = data,
                  .nbytes = nbytes};
    if (!e.name)
        return at_fail(err, AT_ERR_NOMEM, "out of memory adding tensor %s", name);
    for (int i = 0; i < ndim; i++)
        e.shape[i] = shape[i];
    w->tensors[w->n_tensors++] = e;
    return AT_OK;
}

int at_st_writer_meta(at_st_writer *w, const char *key, const char *value, at_error *err)
{
    if (!w || !key || !value)
        return at_fail(err, AT_ERR_ARG, "safetensors writer: NULL argument");
    if (!is_utf8(key) || !is_utf8(value))
        return at_fail(err, AT_ERR_ARG, "metadata \"%s\" is not valid UTF-8", key);
    if (json_object_get(w->meta, key))
        return at_fail(err, AT_ERR_ARG, "duplicate metadata key \"%s\"", key);
    if (json_object_set_new(w->meta, key, json_string(value)) != 0)
        return at_fail(err, AT_ERR_NOMEM, "out of memory adding metadata \"%s\"", key);
    return AT_OK;
}

/* The reference's order: descending dtype rank (so larger elements come first and every tensor
 * stays aligned), then by name. */
static int compare_entries(const void *a, const void *b)
{
    const st_entry *x = a, *y = b;
    if (x->dtype->rank != y->dtype->rank)
        return y->dtype->rank - x->dtype->rank;
    return strcmp(x->name, y->name);
}

/* The compact JSON header, tensors in the writer's order; NULL when out of memory. */
static char *header_json(const at_st_writer *w)
{
    json_t *root = json_object();
    bool ok = root != NULL;
    if (ok && json_object_size(w->meta) > 0) /* as the reference: no key without metadata */
        ok = json_object_set(root, ST_METADATA_KEY, w->meta) == 0;
    uint64_t offset = 0;
    for (int i = 0; ok && i < w->n_tensors; i++) {
        const st_entry *e = &w->tensors[i];
        json_t *shape = json_array();
        ok = shape != NULL;
        for (int d = 0; ok && d < e->ndim; d++)
            ok = json_array_append_new(shape, json_integer((json_int_t)e->shape[d])) == 0;
        /* json_pack keeps the key order of its format, the reference's order; "o" takes over
         * the shape array. */
        json_t *entry = ok ? json_pack("{s:s, s:o, s:[I, I]}", "dtype", e->dtype->name, "shape",
                                       shape, "data_offsets", (json_int_t)offset,
                                       (json_int_t)(offset + e->nbytes))
                           : NULL;
        if (!ok)
            json_decref(shape);
        ok = entry && json_object_set_new(root, e->name, entry) == 0;
        offset += e->nbytes;
    }
    char *text = ok ? json_dumps(root, JSON_COMPACT) : NULL;
    json_decref(root);
    return text;
}

static int write_all(FILE *f, const void *data, size_t n)
{
    return n == 0 || fwrite(data, 1, n, f) == n ? 0 : -1;
}

/* What a saved file holds: the header JSON of these tensors, then their data. */
typedef struct st_file {
    const at_st_writer *w;
    const char *json;
} st_file;

/* Header length, header padded with spaces to a multiple of 8, then the data. */
static int write_contents(FILE *f, const void *arg)
{
    const st_file *file = arg;
    size_t len = strlen(file->json), padded = (len + 7) & ~(size_t)7;
    unsigned char length[8];
    for (int i = 0; i < 8; i++)
        length[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    static const char spaces[] = "       "; /* at most 7 are needed */
    if (write_all(f, length, 8) || write_all(f, file->json, len) ||
        write_all(f, spaces, padded - len))
        return -1;
    for (int i = 0; i < file->w->n_tensors; i++)
        if (write_all(f, file->w->tensors[i].data, file->w->tensors[i].nbytes))
            return -1;
    return 0;
}

int at_st_writer_save(at_st_writer *w, const char *path, at_error *err)
{
    if (!w || !path)
        return at_fail(err, AT_ERR_ARG, "safetensors writer: NULL argument");
    if (w->n_tensors > 0) /* the writer has no order of its own to keep */
        qsort(w->tensors, (size_t)w->n_tensors, sizeof *w->tensors, compare_entries);
    char *json = header_json(w);
    if (!json)
        return at_fail(err, AT_ERR_NOMEM, "%s: out of memory", path);
    st_file file = {w, json};
    int status = at_write_atomically(path, write_contents, &file, err);
    free(json); /* from jansson, which allocates with malloc */
    return status;
}
