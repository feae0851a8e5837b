/* atomic_file.c: temporary file, fsync, rename, fsync of the directory (atomic_file.h). Used by
 * checkpoints (safetensors.c) and ONNX exports, so that an interrupted save leaves the previous
 * file whole. */
#include "io/atomic_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* After the rename the directory entry itself must reach the disk for the new file to survive a
 * crash. Some file systems cannot fsync a directory (EINVAL); nothing more can be done there. */
static int sync_directory(const char *path, at_error *err)
{
    size_t n = strlen(path);
    char *dir = malloc(n + 2);
    if (!dir)
        return at_fail(err, AT_ERR_NOMEM, "%s: out of memory", path);
    memcpy(dir, path, n + 1);
    char *slash = strrchr(dir, '/');
    if (!slash)
        strcpy(dir, ".");
    else
        slash[slash == dir ? 1 : 0] = '\0';
    int status = AT_OK, fd = open(dir, O_RDONLY);
    if (fd < 0 || (fsync(fd) != 0 && errno != EINVAL))
        status = at_fail(err, AT_ERR_IO, "%s: written, but syncing directory %s failed: %s", path,
                         dir, strerror(errno));
    if (fd >= 0)
        close(fd);
    free(dir);
    return status;
}

int at_write_atomically(const char *path, at_contents_fn write_contents, const void *arg,
                        at_error *err)
{
    size_t cap = strlen(path) + 32;
    char *tmp = malloc(cap);
    if (!tmp)
        return at_fail(err, AT_ERR_NOMEM, "%s: out of memory", path);
    snprintf(tmp, cap, "%s.tmp.%ld", path, (long)getpid());
    int status = AT_OK;
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        status = at_fail(err, AT_ERR_IO, "%s: cannot create %s: %s", path, tmp, strerror(errno));
    } else {
        if (write_contents(f, arg) != 0 || fflush(f) != 0 || fsync(fileno(f)) != 0)
            status =
                at_fail(err, AT_ERR_IO, "%s: writing %s failed: %s", path, tmp, strerror(errno));
        if (fclose(f) != 0 && status == AT_OK)
            status =
                at_fail(err, AT_ERR_IO, "%s: closing %s failed: %s", path, tmp, strerror(errno));
        if (status == AT_OK && rename(tmp, path) != 0)
            status = at_fail(err, AT_ERR_IO, "%s: cannot rename %s over it: %s", path, tmp,
                             strerror(errno));
        if (status != AT_OK)
            remove(tmp);
        else
            status = sync_directory(path, err);
    }
    free(tmp);
    return status;
}
