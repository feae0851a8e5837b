/* npz.c: images and labels from a NumPy .npz archive (what numpy.savez and savez_compressed
 * write: a zip archive with one .npy file per array, stored or deflated), read through libzip.
 *
 * The arrays are `image` (or `images`), uint8 [N, H, W, C] or [N, H, W] for one channel, as the
 * generated sets of Gowal et al. (2021) hold them, and `label` (or `labels`), any little-endian
 * integer dtype, [N]. Both headers are checked before any data is read; the data is then read
 * straight into the dataset, one chunk of images at a time when channels must move from last to
 * second place, so a large archive costs its decoded size once.
 *
 * A header's sizes are not trusted: the member's size in the zip directory must match what the
 * .npy header promises, and before anything is allocated the directory's own claim is bounded by
 * what deflate can produce from the compressed bytes (at most 1032 to 1), so a tiny damaged file
 * cannot make the loader allocate gigabytes. libzip checks each member's CRC once it is read to
 * the end, which is why every member is read one byte past its data.
 */
#include "data/extra_data.h"

#include "core/util.h"
#include "io/npy.h"

#include <stdio.h>
#include <string.h>
#include <zip.h>

/* deflate's best case: 258 bytes from a 2-bit code, 1032 output bytes per input byte */
#define DEFLATE_MAX_RATIO 1032

typedef struct member {
    const char *path;
    const char *array;        /* "image" */
    char what[320];           /* "PATH: image.npy", for messages */
    zip_file_t *file;
    zip_uint64_t size;        /* decoded bytes, from the zip directory */
    at_npy_header header;
} member;

static void member_close(member *m)
{
    if (m->file)
        zip_fclose(m->file);
    m->file = NULL;
}

/* Exactly n bytes of the member into buf; fewer is a truncated member. */
static int member_read(member *m, void *buf, size_t n, at_error *err)
{
    size_t got = 0;
    while (got < n) {
        zip_int64_t k = zip_fread(m->file, (char *)buf + got, n - got);
        if (k < 0)
            return at_fail(err, AT_ERR_FORMAT, "%s: corrupt: %s", m->what,
                           zip_file_strerror(m->file));
        if (k == 0)
            return at_fail(err, AT_ERR_FORMAT, "%s: truncated: the data ends early", m->what);
        got += (size_t)k;
    }
    return AT_OK;
}

/* After the data: reading to the end makes libzip check the CRC. */
static int member_finish(member *m, at_error *err)
{
    char extra;
    zip_int64_t k = zip_fread(m->file, &extra, 1);
    if (k < 0)
        return at_fail(err, AT_ERR_FORMAT, "%s: corrupt: %s", m->what,
                       zip_file_strerror(m->file));
    if (k > 0)
        return at_fail(err, AT_ERR_FORMAT, "%s: more data than its zip entry says", m->what);
    return AT_OK;
}

/* Finds the member of the first name present, opens it and reads its .npy header. */
static int member_open(zip_t *zip, const char *path, const char *const names[2], member *m,
                       at_error *err)
{
    m->path = path;
    zip_int64_t index = -1;
    for (int i = 0; i < 2 && index < 0; i++) {
        char file[32];
        snprintf(file, sizeof file, "%s.npy", names[i]);
        index = zip_name_locate(zip, file, 0);
        m->array = names[i];
        snprintf(m->what, sizeof m->what, "%s: %s", path, file);
    }
    if (index < 0)
        return at_fail(err, AT_ERR_FORMAT, "%s: no array '%s' (nor '%s')", path, names[0],
                       names[1]);
    zip_stat_t sb;
    zip_stat_init(&sb);
    if (zip_stat_index(zip, (zip_uint64_t)index, 0, &sb) != 0 || !(sb.valid & ZIP_STAT_SIZE) ||
        !(sb.valid & ZIP_STAT_COMP_SIZE) || !(sb.valid & ZIP_STAT_COMP_METHOD))
        return at_fail(err, AT_ERR_FORMAT, "%s: unreadable zip entry: %s", m->what,
                       zip_strerror(zip));
    if ((sb.comp_method == ZIP_CM_STORE && sb.size != sb.comp_size) ||
        (sb.comp_method == ZIP_CM_DEFLATE && sb.size / DEFLATE_MAX_RATIO > sb.comp_size))
        return at_fail(err, AT_ERR_FORMAT, "%s: corrupt zip entry: %llu bytes from %llu "
                       "compressed", m->what, (unsigned long long)sb.size,
                       (unsigned long long)sb.comp_size);
    m->size = sb.size;
    if (!(m->file = zip_fopen_index(zip, (zip_uint64_t)index, 0)))
        return at_fail(err, AT_ERR_FORMAT, "%s: cannot read: %s", m->what, zip_strerror(zip));
    uint8_t prefix[AT_NPY_PREFIX];
    const size_t first = m->size < AT_NPY_PREFIX ? (size_t)m->size : AT_NPY_PREFIX;
    size_t length;
    int status = member_read(m, prefix, first, err);
    if (!status)
        status = at_npy_header_length(prefix, first, m->what, &length, err);
    if (status)
        return status;
    if (length > m->size)
        return at_fail(err, AT_ERR_FORMAT, "%s: truncated: the .npy header promises %zu bytes, "
                       "the array has %llu", m->what, length, (unsigned long long)m->size);
    uint8_t *text = at_alloc(length);
    if (!text)
        return at_fail(err, AT_ERR_NOMEM, "%s: out of memory", m->what);
    memcpy(text, prefix, first);
    status = member_read(m, text + first, length - first, err);
    if (!status)
        status = at_npy_header_parse(text, length, m->what, &m->header, err);
    at_free(text);
    if (status)
        return status;
    const uint64_t promised = (uint64_t)m->header.header_bytes + m->header.data_bytes;
    if (promised != m->size)
        return at_fail(err, AT_ERR_FORMAT, "%s: %s: the .npy header promises %llu bytes, the "
                       "array has %llu", m->what, promised > m->size ? "truncated" : "trailing data",
                       (unsigned long long)promised, (unsigned long long)m->size);
    return AT_OK;
}

/* Dtypes: images uint8; labels any integer dtype stored little-endian. */
static int check_dtypes(const member *img, const member *lab, at_error *err)
{
    const at_npy_header *i = &img->header, *l = &lab->header;
    if (i->kind != 'u' || i->itemsize != 1)
        return at_fail(err, AT_ERR_FORMAT, "%s: %s has dtype '%s', expected uint8 ('|u1')",
                       img->path, img->array, i->descr);
    const bool integer = (l->kind == 'i' || l->kind == 'u') &&
                         (l->itemsize == 1 || l->itemsize == 2 || l->itemsize == 4 ||
                          l->itemsize == 8);
    if (!integer || (l->big_endian && l->itemsize > 1))
        return at_fail(err, AT_ERR_FORMAT, "%s: %s has dtype '%s', expected a little-endian "
                       "integer dtype ('|u1', '<i4', '<i8', ...)", lab->path, lab->array,
                       l->descr);
    return AT_OK;
}

/* The image data into out->images, moving channels from last to second place when needed. */
static int read_images(member *m, at_dataset *out, at_error *err)
{
    const int c = out->c, n = out->n;
    const size_t plane = (size_t)out->h * out->w, image = (size_t)c * plane;
    if (c == 1)
        return member_read(m, out->images, (size_t)n * image, err);
    enum { CHUNK = 64 };
    uint8_t *hwc = at_alloc(CHUNK * image);
    if (!hwc)
        return at_fail(err, AT_ERR_NOMEM, "%s: out of memory", m->what);
    int status = AT_OK;
    for (int first = 0; first < n && !status; first += CHUNK) {
        const int count = n - first < CHUNK ? n - first : CHUNK;
        if ((status = member_read(m, hwc, (size_t)count * image, err)))
            break;
        for (int i = 0; i < count; i++) {
            const uint8_t *src = hwc + (size_t)i * image;
            uint8_t *dst = out->images + (size_t)(first + i) * image;
            for (size_t p = 0; p < plane; p++)
                for (int ch = 0; ch < c; ch++)
                    dst[(size_t)ch * plane + p] = src[p * c + ch];
        }
    }
    at_free(hwc);
    return status;
}

static int read_labels(member *m, at_dataset *out, at_error *err)
{
    const at_npy_header *h = &m->header;
    uint8_t *raw = at_alloc(h->data_bytes);
    if (!raw)
        return at_fail(err, AT_ERR_NOMEM, "%s: out of memory", m->what);
    int status = member_read(m, raw, h->data_bytes, err);
    if (!status)
        status = at_extra_convert_labels(m->path, m->array, raw, h->itemsize, h->kind == 'i',
                                         out->n, out->num_classes, out->labels, err);
    at_free(raw);
    return status;
}

/* libzip's message for an error code from zip_open. */
static int open_failed(const char *path, int code, at_error *err)
{
    zip_error_t ze;
    zip_error_init_with_code(&ze, code);
    const bool io = code == ZIP_ER_NOENT || code == ZIP_ER_OPEN || code == ZIP_ER_READ;
    int status = at_fail(err, io ? AT_ERR_IO : AT_ERR_FORMAT, "%s: %s: %s", path,
                         io ? "cannot open" : "not a readable zip archive",
                         zip_error_strerror(&ze));
    zip_error_fini(&ze);
    return status;
}

int at_extra_load_npz(at_dataset *out, const char *path, at_error *err)
{
    static const char *const image_names[2] = {"image", "images"};
    static const char *const label_names[2] = {"label", "labels"};
    int code = 0;
    zip_t *zip = zip_open(path, ZIP_RDONLY | ZIP_CHECKCONS, &code);
    if (!zip)
        return open_failed(path, code, err);
    member img = {0}, lab = {0};
    int n = 0;
    int status = member_open(zip, path, image_names, &img, err);
    if (!status)
        status = member_open(zip, path, label_names, &lab, err);
    if (!status)
        status = check_dtypes(&img, &lab, err);
    if (!status)
        status = at_extra_check_images(path, img.array, img.header.ndim, img.header.shape, true,
                                       out, &n, err);
    if (!status)
        status = at_extra_check_labels(path, lab.array, lab.header.ndim, lab.header.shape,
                                       img.array, n, err);
    if (!status) {
        out->n = n;
        out->images = at_alloc(img.header.data_bytes);
        out->labels = at_alloc((size_t)n * sizeof(int32_t));
        if (!out->images || !out->labels)
            status = at_fail(err, AT_ERR_NOMEM, "%s: out of memory for %d images", path, n);
    }
    if (!status)
        status = read_images(&img, out, err);
    if (!status)
        status = member_finish(&img, err);
    if (!status)
        status = read_labels(&lab, out, err);
    if (!status)
        status = member_finish(&lab, err);
    member_close(&img);
    member_close(&lab);
    zip_discard(zip);
    return status;
}
