/* cifar_c.c: CIFAR-10-C and CIFAR-100-C (Hendrycks and Dietterich, "Benchmarking Neural Network
 * Robustness to Common Corruptions and Perturbations", ICLR 2019), as distributed on Zenodo
 * (record 2535967 for CIFAR-10-C): a directory of `<corruption>.npy` arrays, uint8
 * [N, 32, 32, 3] (NHWC), each the test set under one corruption at the five severities stacked
 * (rows (s-1) N/5 .. s N/5 - 1 for severity s; N = 50000 in the release), and `labels.npy`, [N]
 * integers, the same test labels five times over.
 *
 * Only the rows of the severity asked for are read (seeking past the others, a whole file is
 * 150 MB), and transposed from HWC to the CHW layout of at_dataset. Every label of the file is
 * read and range-checked, so a wrong --num-classes shows up whatever the severity. Any number of
 * rows that is a multiple of 5 is accepted, so small files in the same format work too.
 */
#include "core/util.h"
#include "data/extra_data.h"
#include "io/npy.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#define SIDE 32
#define CHANNELS 3
#define SEVERITIES 5

/* Besides the fifteen benchmark corruptions (at_corruption_name), the release holds four more,
 * held out for validation. */
static const char *const held_out[] = {"speckle_noise", "gaussian_blur", "spatter", "saturate"};

/* The header of an .npy file, its size and the stream positioned anywhere. */
static int open_npy(const char *path, FILE **out, at_npy_header *h, long long *file_size,
                    at_error *err)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return at_fail(err, errno == ENOENT ? AT_ERR_NOTFOUND : AT_ERR_IO, "%s: cannot open: %s",
                       path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return at_fail(err, AT_ERR_IO, "%s: cannot open: not a regular file", path);
    }
    *file_size = (long long)st.st_size;
    uint8_t prefix[AT_NPY_PREFIX];
    size_t got = fread(prefix, 1, sizeof prefix, f);
    size_t length;
    int status = at_npy_header_length(prefix, got, path, &length, err);
    uint8_t *header = status ? NULL : at_alloc(length);
    if (!status && !header)
        status = at_fail(err, AT_ERR_NOMEM, "%s: out of memory for the .npy header", path);
    if (!status) {
        rewind(f);
        got = fread(header, 1, length, f);
        status = at_npy_header_parse(header, got, path, h, err);
    }
    at_free(header);
    const long long promised = status ? 0 : (long long)(h->header_bytes + h->data_bytes);
    if (!status && promised != *file_size)
        status = at_fail(err, AT_ERR_FORMAT, "%s: %s: its header promises %zu data bytes, the "
                         "file holds %lld", path,
                         promised > *file_size ? "truncated" : "trailing bytes", h->data_bytes, *file_size - (long long)h->header_bytes);
    if (status) {
        fclose(f);
        return status;
    }
    *out = f;
    return AT_OK;
}

/* All N labels of labels.npy, range-checked. */
static int read_labels(const char *path, int64_t rows, int num_classes, int32_t **labels,
                       at_error *err)
{
    FILE *f;
    at_npy_header h;
    long long size;
    int status = open_npy(path, &f, &h, &size, err);
    if (status)
        return status;
    const bool integer = (h.kind == 'u' || h.kind == 'i') &&
                         (h.itemsize == 1 || h.itemsize == 2 || h.itemsize == 4 || h.itemsize == 8);
    uint8_t *data = NULL;
    if (!integer || (h.big_endian && h.itemsize > 1))
        status = at_fail(err, AT_ERR_FORMAT, "%s: dtype %s; labels must be little-endian integers",
                         path, h.descr);
    else if (h.ndim != 1 || h.shape[0] != rows)
        status = at_fail(err, AT_ERR_SHAPE, "%s: %d-dimensional, %lld entries; expected one label "
                         "per image ([%lld])", path, h.ndim, h.ndim ? (long long)h.shape[0] : 1LL,
                         (long long)rows);
    if (!status) {
        data = at_alloc(h.data_bytes);
        *labels = at_alloc((size_t)rows * sizeof(int32_t));
        if (!data || !*labels)
            status = at_fail(err, AT_ERR_NOMEM, "%s: out of memory for %lld labels", path,
                             (long long)rows);
    }
    if (!status && (fseek(f, (long)h.header_bytes, SEEK_SET) != 0 ||
                    fread(data, 1, h.data_bytes, f) != h.data_bytes))
        status = at_fail(err, AT_ERR_IO, "%s: read failed", path);
    if (!status)
        status = at_extra_convert_labels(path, "labels", data, h.itemsize, h.kind == 'i',
                                         (int)rows, num_classes, *labels, err);
    at_free(data);
    fclose(f);
    return status;
}

int at_dataset_load_cifar_c(at_dataset *out, const char *dir, const char *corruption,
                            int severity, int num_classes, at_error *err)
{
    memset(out, 0, sizeof *out);
    bool known = corruption && at_corruption_find(corruption) >= 0;
    for (int i = 0; i < 4 && corruption; i++)
        known |= !strcmp(corruption, held_out[i]);
    if (!known) {
        char list[400] = "";
        for (int i = 0; at_corruption_name(i); i++) {
            size_t len = strlen(list);
            snprintf(list + len, sizeof list - len, "%s%s", i ? ", " : "", at_corruption_name(i));
        }
        return at_fail(err, AT_ERR_ARG, "unknown CIFAR-C corruption '%s' (known: %s; and the "
                       "held-out speckle_noise, gaussian_blur, spatter, saturate)",
                       corruption ? corruption : "(null)", list);
    }
    if (severity < 1 || severity > SEVERITIES)
        return at_fail(err, AT_ERR_ARG, "CIFAR-C severity must be 1..5, got %d", severity);
    if (num_classes < 1 || num_classes > 256 * 256)
        return at_fail(err, AT_ERR_ARG, "CIFAR-C: %d classes", num_classes);
    if (!dir)
        return at_fail(err, AT_ERR_ARG, "CIFAR-C: no directory given");

    char path[4096], labels_path[4096];
    if (snprintf(path, sizeof path, "%s/%s.npy", dir, corruption) >= (int)sizeof path ||
        snprintf(labels_path, sizeof labels_path, "%s/labels.npy", dir) >= (int)sizeof labels_path)
        return at_fail(err, AT_ERR_ARG, "%s: path too long", dir);
    FILE *f;
    at_npy_header h;
    long long size;
    int status = open_npy(path, &f, &h, &size, err);
    if (status)
        return status;
    const int64_t rows = h.ndim == 4 ? h.shape[0] : 0;
    if (h.kind != 'u' || h.itemsize != 1)
        status = at_fail(err, AT_ERR_FORMAT, "%s: dtype %s; CIFAR-C images are uint8 (|u1)", path,
                         h.descr);
    else if (h.ndim != 4 || h.shape[1] != SIDE || h.shape[2] != SIDE || h.shape[3] != CHANNELS)
        status = at_fail(err, AT_ERR_SHAPE, "%s: not of shape [N, 32, 32, 3] (N images, height, "
                         "width, RGB)", path);
    else if (rows < SEVERITIES || rows % SEVERITIES != 0 || rows > INT32_MAX)
        status = at_fail(err, AT_ERR_SHAPE, "%s: %lld rows, not a positive multiple of the 5 "
                         "severities", path, (long long)rows);
    const int per = (int)(rows / SEVERITIES), first = per * (severity - 1);
    const size_t image = (size_t)SIDE * SIDE * CHANNELS;
    int32_t *all_labels = NULL;
    uint8_t *hwc = NULL;
    if (!status)
        status = read_labels(labels_path, rows, num_classes, &all_labels, err);
    if (!status) {
        out->images = at_alloc((size_t)per * image);
        out->labels = at_alloc((size_t)per * sizeof(int32_t));
        hwc = at_alloc((size_t)per * image);
        if (!out->images || !out->labels || !hwc)
            status = at_fail(err, AT_ERR_NOMEM, "%s: out of memory for %d images", path, per);
    }
    if (!status && (fseek(f, (long)(h.header_bytes + (size_t)first * image), SEEK_SET) != 0 ||
                    fread(hwc, 1, (size_t)per * image, f) != (size_t)per * image))
        status = at_fail(err, AT_ERR_IO, "%s: read of severity %d (rows %d..%d) failed", path,
                         severity, first, first + per - 1);
    fclose(f);
    if (!status) {
        for (int i = 0; i < per; i++) {
            const uint8_t *src = hwc + (size_t)i * image;
            uint8_t *dst = out->images + (size_t)i * image;
            for (int y = 0; y < SIDE; y++)
                for (int x = 0; x < SIDE; x++)
                    for (int c = 0; c < CHANNELS; c++)
                        dst[((size_t)c * SIDE + y) * SIDE + x] =
                            src[((size_t)y * SIDE + x) * CHANNELS + c];
        }
        memcpy(out->labels, all_labels + first, (size_t)per * sizeof(int32_t));
        out->n = per;
        out->c = CHANNELS;
        out->h = SIDE;
        out->w = SIDE;
        out->num_classes = num_classes;
        snprintf(out->name, sizeof out->name, "%s-c:%s:%d",
                 num_classes == 100 ? "cifar100" : "cifar10", corruption, severity);
    }
    at_free(hwc);
    at_free(all_labels);
    if (status)
        at_dataset_free(out);
    return status;
}
