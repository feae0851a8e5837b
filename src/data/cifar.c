/* cifar.c: the official CIFAR-10 and CIFAR-100 binary batches.
 *
 * A batch file is a run of fixed-size records with no header: `label_bytes` label bytes (CIFAR-10:
 * the class; CIFAR-100: the coarse superclass, then the fine class, which is the one used) and
 * 3072 pixel bytes, 1024 red, 1024 green, 1024 blue, each plane 32x32 row-major. That is already
 * the CHW layout of at_dataset, so a record's pixels are read straight into place. Several files
 * (the five CIFAR-10 training batches) are concatenated in the order given.
 *
 * With no header, the file size is the only check of the format, so it must be an exact non-zero
 * multiple of the record size; the labels are range-checked since a wrong label_bytes shows up
 * there first.
 */
#include "core/util.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#define CIFAR_SIDE 32
#define CIFAR_PIXELS (3 * CIFAR_SIDE * CIFAR_SIDE)
#define CIFAR100_COARSE_CLASSES 20

/* Every count fits an int and no real set comes near it (CIFAR has 60000 images). */
#define CIFAR_MAX_RECORDS (INT32_MAX / CIFAR_PIXELS)

/* The number of records in one file, from its size. */
static int count_records(const char *path, size_t record, long *records, at_error *err)
{
    FILE *f;
    int opened = at_open_regular(&f, path, err);
    if (opened)
        return opened;
    struct stat st;
    int ok = fstat(fileno(f), &st) == 0;
    fclose(f);
    if (!ok)
        return at_fail(err, AT_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    long long size = (long long)st.st_size;
    if (size == 0 || size % (long long)record != 0)
        return at_fail(err, AT_ERR_FORMAT,
                       "%s: size %lld bytes is not a non-zero multiple of the %zu-byte record",
                       path, size, record);
    if (size / (long long)record > CIFAR_MAX_RECORDS)
        return at_fail(err, AT_ERR_FORMAT, "%s: %lld records, more than the limit of %d", path,
                       size / (long long)record, CIFAR_MAX_RECORDS);
    *records = (long)(size / (long long)record);
    return AT_OK;
}

/* Reads `records` records of one file into images/labels starting at example `first`. */
static int read_file(const char *path, int label_bytes, int first, long records, at_dataset *ds,
                     at_error *err)
{
    const int classes = ds->num_classes;
    FILE *f = fopen(path, "rb");
    if (!f)
        return at_fail(err, AT_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    int status = AT_OK;
    for (long r = 0; r < records; r++) {
        const int i = first + (int)r;
        unsigned char label[2];
        uint8_t *pixels = ds->images + (size_t)i * CIFAR_PIXELS;
        if (fread(label, 1, (size_t)label_bytes, f) != (size_t)label_bytes ||
            fread(pixels, 1, CIFAR_PIXELS, f) != CIFAR_PIXELS) {
            status = at_fail(err, ferror(f) ? AT_ERR_IO : AT_ERR_FORMAT,
                             "%s: read failed at record %ld of %ld: %s", path, r, records,
                             ferror(f) ? strerror(errno) : "file shrank while being read");
            break;
        }
        const int fine = label[label_bytes - 1];
        if (label_bytes == 2 && label[0] >= CIFAR100_COARSE_CLASSES) {
            status = at_fail(err, AT_ERR_FORMAT,
                             "%s: coarse label %d of record %ld is out of range [0, %d)", path,
                             label[0], r, CIFAR100_COARSE_CLASSES);
            break;
        }
        if (fine >= classes) {
            status = at_fail(err, AT_ERR_FORMAT,
                             "%s: label %d of record %ld is out of range [0, %d)", path, fine, r,
                             classes);
            break;
        }
        ds->labels[i] = fine;
    }
    fclose(f);
    return status;
}

int at_dataset_load_cifar(at_dataset *out, const char *const *paths, int n_paths,
                          int label_bytes, at_error *err)
{
    memset(out, 0, sizeof *out);
    if (label_bytes != 1 && label_bytes != 2)
        return at_fail(err, AT_ERR_ARG,
                       "CIFAR label bytes must be 1 (CIFAR-10) or 2 (CIFAR-100), not %d",
                       label_bytes);
    if (!paths || n_paths < 1)
        return at_fail(err, AT_ERR_ARG, "CIFAR data set needs at least one batch file");
    const size_t record = (size_t)label_bytes + CIFAR_PIXELS;
    long total = 0;
    for (int p = 0; p < n_paths; p++) {
        if (!paths[p])
            return at_fail(err, AT_ERR_ARG, "CIFAR batch file %d is NULL", p);
        long records;
        int status = count_records(paths[p], record, &records, err);
        if (status)
            return status;
        total += records;
        if (total > CIFAR_MAX_RECORDS)
            return at_fail(err, AT_ERR_FORMAT, "%s: the files hold more than %d records in all",
                           paths[p], CIFAR_MAX_RECORDS);
    }
    out->n = (int)total;
    out->c = 3;
    out->h = CIFAR_SIDE;
    out->w = CIFAR_SIDE;
    out->num_classes = label_bytes == 1 ? 10 : 100;
    at_strlcpy(out->name, label_bytes == 1 ? "cifar10" : "cifar100", sizeof out->name);
    out->images = at_alloc((size_t)total * CIFAR_PIXELS);
    out->labels = at_alloc((size_t)total * sizeof(int32_t));
    if (!out->images || !out->labels) {
        at_dataset_free(out);
        return at_fail(err, AT_ERR_NOMEM, "%s: out of memory for %ld CIFAR images", paths[0],
                       total);
    }
    int first = 0;
    for (int p = 0; p < n_paths; p++) {
        long records;
        /* Counted again so each file's share is known without a second array. */
        int status = count_records(paths[p], record, &records, err);
        if (!status && records > out->n - first)
            status = at_fail(err, AT_ERR_FORMAT, "%s: the file grew while being read", paths[p]);
        if (!status)
            status = read_file(paths[p], label_bytes, first, records, out, err);
        if (status) {
            at_dataset_free(out);
            return status;
        }
        first += (int)records;
    }
    if (first != out->n) {
        at_dataset_free(out);
        return at_fail(err, AT_ERR_FORMAT, "%s: the files changed size while being read",
                       paths[n_paths - 1]);
    }
    return AT_OK;
}
