/* npz_write.c: a NumPy .npz archive of images and labels, written with libzip: one .npy file
 * per array (version 1.0 headers, as numpy.save writes them) inside a zip archive. */
#include "npz.h"
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zip.h>

/* A .npy file in a malloc'd buffer: the header dict padded with spaces and a newline to a
 * multiple of 64 bytes, then room for `bytes` of data at *data. */
static uint8_t *npy_alloc(const char *descr, const char *shape, size_t bytes, size_t *size,
                          uint8_t **data)
{
    char dict[256];
    const int len = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, "
                             "'shape': %s, }", descr, shape);
    const size_t header = (10 + (size_t)len + 1 + 63) / 64 * 64;
    uint8_t *buf = malloc(header + bytes);
    if (!buf)
        return NULL;
    memcpy(buf, "\x93NUMPY\x01\x00", 8);
    buf[8] = (uint8_t)(header - 10);
    buf[9] = (uint8_t)((header - 10) >> 8);
    memcpy(buf + 10, dict, (size_t)len);
    memset(buf + 10 + len, ' ', header - 10 - (size_t)len - 1);
    buf[header - 1] = '\n';
    *size = header + bytes;
    *data = buf + header;
    return buf;
}

/* Adds a stored member dated 1980-01-01 00:00 (the first DOS date). The archive reads `buf`
 * when it is closed. */
static int add_member(zip_t *z, const char *name, const uint8_t *buf, size_t size,
                      const char *path, at_error *err)
{
    zip_source_t *src = zip_source_buffer(z, buf, size, 0);
    zip_int64_t index = src ? zip_file_add(z, name, src, ZIP_FL_OVERWRITE) : -1;
    if (index < 0) {
        zip_source_free(src);
    } else if (zip_set_file_compression(z, (zip_uint64_t)index, ZIP_CM_STORE, 0) == 0 &&
               zip_file_set_dostime(z, (zip_uint64_t)index, 0, 1 << 5 | 1, 0) == 0) {
        return AT_OK;
    }
    return cli_fail(err, AT_ERR_IO, "%s: cannot add %s: %s", path, name, zip_strerror(z));
}

/* Writes the archive to tmp with libzip (which itself writes a temporary file and renames it on
 * zip_close), then makes it durable. */
static int write_archive(const char *tmp, const char *path, uint8_t *const *bufs,
                         const size_t *sizes, const char *const *names, int count, at_error *err)
{
    int code = 0;
    zip_t *z = zip_open(tmp, ZIP_CREATE | ZIP_TRUNCATE, &code);
    if (!z) {
        zip_error_t ze;
        zip_error_init_with_code(&ze, code);
        cli_fail(err, AT_ERR_IO, "%s: cannot create %s: %s", path, tmp, zip_error_strerror(&ze));
        zip_error_fini(&ze);
        return AT_ERR_IO;
    }
    for (int i = 0; i < count; i++)
        if (add_member(z, names[i], bufs[i], sizes[i], path, err)) {
            zip_discard(z);
            return err->status;
        }
    if (zip_close(z) != 0) {
        cli_fail(err, AT_ERR_IO, "%s: writing %s failed: %s", path, tmp, zip_strerror(z));
        zip_discard(z);
        return AT_ERR_IO;
    }
    int fd = open(tmp, O_RDONLY);
    if (fd < 0 || fsync(fd) != 0) {
        cli_fail(err, AT_ERR_IO, "%s: syncing %s failed: %s", path, tmp, strerror(errno));
        if (fd >= 0)
            close(fd);
        return AT_ERR_IO;
    }
    close(fd);
    return AT_OK;
}

int cli_write_npz(const char *path, const uint8_t *images, int n, int c, int h, int w,
                  const int32_t *labels, const char *metadata, at_error *err)
{
    char shape[96], tmp[4096];
    const size_t plane = (size_t)h * w, image = (size_t)c * plane;
    const size_t text = metadata ? strlen(metadata) : 0;
    uint8_t *bufs[3] = {NULL, NULL, NULL}, *data[3];
    size_t sizes[3];
    static const char *const names[3] = {"image.npy", "label.npy", "metadata.npy"};
    snprintf(shape, sizeof shape, "(%d, %d, %d, %d)", n, h, w, c);
    bufs[0] = npy_alloc("|u1", shape, (size_t)n * image, &sizes[0], &data[0]);
    snprintf(shape, sizeof shape, "(%d,)", n);
    bufs[1] = npy_alloc("<i8", shape, (size_t)n * 8, &sizes[1], &data[1]);
    char descr[32];
    snprintf(descr, sizeof descr, "<U%zu", text ? text : 1);
    if (metadata)
        bufs[2] = npy_alloc(descr, "()", 4 * (text ? text : 1), &sizes[2], &data[2]);
    const int count = metadata ? 3 : 2;
    int status = AT_OK;
    if (!bufs[0] || !bufs[1] || (metadata && !bufs[2])) {
        status = cli_fail(err, AT_ERR_NOMEM, "%s: out of memory for %d images", path, n);
        goto done;
    }
    for (int i = 0; i < n; i++) /* NCHW to NHWC */
        for (size_t p = 0; p < plane; p++)
            for (int ch = 0; ch < c; ch++)
                data[0][(size_t)i * image + p * c + ch] = images[(size_t)i * image + ch * plane + p];
    for (int i = 0; i < n; i++)
        for (int b = 0; b < 8; b++) /* little-endian int64; labels are never negative */
            data[1][(size_t)i * 8 + b] = (uint8_t)((uint64_t)labels[i] >> (8 * b));
    if (metadata) {
        memset(data[2], 0, 4 * (text ? text : 1));
        for (size_t k = 0; k < text; k++) /* UTF-32LE of ASCII text */
            data[2][4 * k] = (uint8_t)metadata[k];
    }
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= sizeof tmp) {
        status = cli_fail(err, AT_ERR_ARG, "%s: path too long", path);
        goto done;
    }
    status = write_archive(tmp, path, bufs, sizes, names, count, err);
    if (!status && rename(tmp, path) != 0) {
        status = cli_fail(err, AT_ERR_IO, "%s: cannot rename %s over it: %s", path, tmp,
                      strerror(errno));
    }
    if (status)
        remove(tmp);
done:
    for (int i = 0; i < 3; i++)
        free(bufs[i]);
    return status;
}
