/* idx.c: IDX files, the format of MNIST and Fashion-MNIST, raw or gzip-compressed.
 *
 * An IDX file is a 4-byte magic (two zero bytes, a type byte, 0x08 for uint8, and the number of
 * dimensions), one big-endian uint32 per dimension, then the elements in row-major order. Images
 * are [n, h, w] (magic 0x00000803), labels [n] (magic 0x00000801).
 *
 * These files arrive by download and are often cut short or mixed up, so nothing in a header is
 * trusted: sizes are bounded before anything is allocated, memory grows only as data actually
 * arrives (a tiny file whose header claims gigabytes costs nothing), the data must end exactly
 * where the header says, and every message names the file.
 */
#include "core/util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

/* No real data set comes near this many elements; a header above it is damaged or hostile, and
 * below it every count fits an int. */
#define IDX_MAX_ELEMENTS ((uint64_t)INT32_MAX)

/* Both kinds of file are read through zlib (gzread passes a raw file through unchanged); `gzip`,
 * decided from the magic bytes 1f 8b, only shapes the messages. */
typedef struct idx_reader {
    const char *path;
    gzFile gz;
    bool gzip;
    size_t disk_size; /* bytes on disk: a first guess at how much memory the data needs */
} idx_reader;

static int reader_open(idx_reader *r, const char *path, at_error *err)
{
    memset(r, 0, sizeof *r);
    r->path = path;
    int fd = open(path, O_RDONLY | O_NONBLOCK); /* a FIFO is refused below, not waited on */
    if (fd < 0)
        return at_fail(err, AT_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return at_fail(err, AT_ERR_IO, "%s: cannot open: not a regular file", path);
    }
    r->disk_size = (size_t)st.st_size;
    unsigned char magic[2];
    r->gzip = pread(fd, magic, 2, 0) == 2 && magic[0] == 0x1f && magic[1] == 0x8b;
    r->gz = gzdopen(fd, "rb"); /* owns fd from here on */
    if (!r->gz) {
        close(fd);
        return at_fail(err, AT_ERR_NOMEM, "%s: out of memory for the gzip reader", path);
    }
    gzbuffer(r->gz, 1u << 17);
    return AT_OK;
}

static void reader_close(idx_reader *r)
{
    if (r->gz)
        gzclose(r->gz);
    r->gz = NULL;
}

/* Reads up to n bytes into buf; *got < n only at the end of the data. A read error or a damaged
 * gzip stream is an error; a stream that merely stops early is left for the caller to report
 * (see reader_cut_short), since only the caller knows how much was promised. */
static int reader_read(idx_reader *r, void *buf, size_t n, size_t *got, at_error *err)
{
    unsigned char *p = buf;
    *got = 0;
    while (*got < n) {
        size_t left = n - *got;
        unsigned chunk = left > (1u << 30) ? (1u << 30) : (unsigned)left;
        int k = gzread(r->gz, p + *got, chunk);
        if (k < 0) {
            int code;
            const char *what = gzerror(r->gz, &code);
            if (code == Z_ERRNO)
                return at_fail(err, AT_ERR_IO, "%s: read error: %s", r->path, strerror(errno));
            /* zlib prefixes its message with the name given to gzdopen, "<fd:N>: " */
            const char *colon = strstr(what, ": ");
            what = colon ? colon + 2 : what;
            return at_fail(err, AT_ERR_FORMAT, "%s: corrupt gzip stream: %s", r->path, what);
        }
        if (k == 0)
            break;
        *got += (size_t)k;
    }
    return AT_OK;
}

/* True when a gzip stream ended before its own end marker (the download was cut off). */
static bool reader_cut_short(idx_reader *r)
{
    int code;
    gzerror(r->gz, &code);
    return r->gzip && code == Z_BUF_ERROR;
}

static int fail_truncated(idx_reader *r, uint64_t promised, uint64_t have, at_error *err)
{
    return at_fail(err, AT_ERR_FORMAT, "%s: truncated: header promises %llu bytes, file has %llu%s",
                   r->path, (unsigned long long)promised, (unsigned long long)have,
                   !r->gzip ? ""
                   : reader_cut_short(r) ? " (gzip stream cut short)"
                                         : " (after decompression)");
}

/* Reads exactly `want` bytes of data into a new malloc'd buffer that grows only as data arrives,
 * then checks that nothing follows them. `before` is the header size, for messages. */
static int read_data(idx_reader *r, size_t before, size_t want, uint8_t **out, at_error *err)
{
    *out = NULL;
    size_t cap = r->disk_size > (1u << 20) ? r->disk_size : (1u << 20);
    if (cap > want)
        cap = want;
    uint8_t *buf = malloc(cap);
    if (!buf)
        return at_fail(err, AT_ERR_NOMEM, "%s: out of memory for %zu bytes", r->path, cap);
    size_t have = 0;
    for (;;) {
        size_t got;
        int status = reader_read(r, buf + have, cap - have, &got, err);
        if (status) {
            free(buf);
            return status;
        }
        have += got;
        if (have < cap) {
            int s = fail_truncated(r, before + want, before + have, err);
            free(buf);
            return s;
        }
        if (have == want)
            break;
        size_t grown = cap > want - cap ? want : 2 * cap;
        uint8_t *bigger = realloc(buf, grown);
        if (!bigger) {
            free(buf);
            return at_fail(err, AT_ERR_NOMEM, "%s: out of memory for %zu bytes", r->path, grown);
        }
        buf = bigger;
        cap = grown;
    }
    /* Reading past the data both finds trailing garbage and makes zlib check the gzip trailer. */
    unsigned char scratch[4096];
    size_t extra = 0, got;
    do {
        int status = reader_read(r, scratch, sizeof scratch, &got, err);
        if (status) {
            free(buf);
            return status;
        }
        extra += got;
    } while (got == sizeof scratch);
    if (extra || reader_cut_short(r)) {
        free(buf);
        if (extra)
            return at_fail(err, AT_ERR_FORMAT,
                           "%s: trailing garbage: %zu bytes after the %zu the header describes",
                           r->path, extra, before + want);
        return at_fail(err, AT_ERR_FORMAT, "%s: truncated gzip stream: its end marker is missing",
                       r->path);
    }
    *out = buf;
    return AT_OK;
}

static uint32_t read_be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* One IDX file of uint8 elements with `ndim` dimensions: fills dims and a malloc'd data buffer. */
static int idx_read(const char *path, int ndim, uint32_t *dims, uint8_t **data, at_error *err)
{
    const char *what = ndim == 3 ? "uint8 images" : "uint8 labels";
    const uint32_t expected = 0x00000800u | (uint32_t)ndim;
    idx_reader r;
    int status = reader_open(&r, path, err);
    if (status)
        return status;
    unsigned char header[16];
    const size_t header_bytes = 4 + 4 * (size_t)ndim;
    size_t got;
    if ((status = reader_read(&r, header, 4, &got, err)))
        goto done;
    if (got < 4) {
        status = fail_truncated(&r, 4, got, err);
        goto done;
    }
    const uint32_t magic = read_be32(header);
    if ((magic & 0xffffff00u) != 0x00000800u) {
        status = at_fail(err, AT_ERR_FORMAT,
                         "%s: wrong magic 0x%08x, expected 0x%08x (IDX %s)", path,
                         (unsigned)magic, (unsigned)expected, what);
        goto done;
    }
    if ((int)(magic & 0xffu) != ndim) {
        status = at_fail(err, AT_ERR_FORMAT,
                         "%s: wrong number of dims: %u (magic 0x%08x), expected %d (magic "
                         "0x%08x, IDX %s)", path, (unsigned)(magic & 0xffu), (unsigned)magic,
                         ndim, (unsigned)expected, what);
        goto done;
    }
    if ((status = reader_read(&r, header + 4, header_bytes - 4, &got, err)))
        goto done;
    if (got < header_bytes - 4) {
        status = fail_truncated(&r, header_bytes, 4 + got, err);
        goto done;
    }
    uint64_t elements = 1;
    for (int d = 0; d < ndim; d++) {
        dims[d] = read_be32(header + 4 + 4 * d);
        if (dims[d] == 0) {
            status = d == 0 ? at_fail(err, AT_ERR_FORMAT, "%s: no examples (dimension 0 is 0)", path)
                            : at_fail(err, AT_ERR_FORMAT, "%s: dimension %d is 0", path, d);
            goto done;
        }
        elements *= dims[d]; /* stays below 2^63: checked against the limit after each factor */
        if (elements > IDX_MAX_ELEMENTS) {
            status = at_fail(err, AT_ERR_FORMAT,
                             "%s: oversized header: dimensions give more than %llu elements",
                             path, (unsigned long long)IDX_MAX_ELEMENTS);
            goto done;
        }
    }
    status = read_data(&r, header_bytes, (size_t)elements, data, err);
done:
    reader_close(&r);
    return status;
}

/* The last path component, for a default dataset name. */
static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

int at_dataset_load_idx(at_dataset *out, const char *images_path, const char *labels_path,
                        int num_classes, at_error *err)
{
    memset(out, 0, sizeof *out);
    if (!images_path || !labels_path)
        return at_fail(err, AT_ERR_ARG, "IDX data set needs both an image and a label file");
    if (num_classes < 1 || num_classes > 256)
        return at_fail(err, AT_ERR_ARG, "%s: %d classes; uint8 labels allow 1 to 256",
                       labels_path, num_classes);
    uint32_t idims[3], ldims[1];
    uint8_t *pixels = NULL, *labels = NULL;
    int status = idx_read(images_path, 3, idims, &pixels, err);
    if (status)
        return status;
    if ((status = idx_read(labels_path, 1, ldims, &labels, err)))
        goto done;
    if (idims[0] != ldims[0]) {
        status = at_fail(err, AT_ERR_FORMAT, "%s has %u images but %s has %u labels", images_path,
                         (unsigned)idims[0], labels_path, (unsigned)ldims[0]);
        goto done;
    }
    const int n = (int)idims[0];
    for (int i = 0; i < n; i++)
        if (labels[i] >= num_classes) {
            status = at_fail(err, AT_ERR_FORMAT,
                             "%s: label %d of example %d is out of range [0, %d)", labels_path,
                             labels[i], i, num_classes);
            goto done;
        }
    const size_t bytes = (size_t)n * idims[1] * idims[2];
    out->images = at_alloc(bytes);
    out->labels = at_alloc((size_t)n * sizeof(int32_t));
    if (!out->images || !out->labels) {
        at_dataset_free(out);
        status = at_fail(err, AT_ERR_NOMEM, "%s: out of memory for %d examples", images_path, n);
        goto done;
    }
    memcpy(out->images, pixels, bytes);
    for (int i = 0; i < n; i++)
        out->labels[i] = labels[i];
    out->n = n;
    out->c = 1;
    out->h = (int)idims[1];
    out->w = (int)idims[2];
    out->num_classes = num_classes;
    at_strlcpy(out->name, base_name(images_path), sizeof out->name);
done:
    free(pixels);
    free(labels);
    return status;
}
