/* fuzz_file.c: see fuzz_file.h. The files are memfds (memory-backed, gone when the process ends)
 * opened by path through /proc/self/fd: a file on disk costs milliseconds per input. */
#define _GNU_SOURCE
#include "fuzz_file.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

enum { FUZZ_MAX_FILES = 4 };

/* One memfd per suffix; a harness uses at most a few files per input. */
static struct {
    char suffix[32];
    char path[64];
    int fd;
} files[FUZZ_MAX_FILES];
static int n_files;

static int fd_for(const char *suffix, const char **path)
{
    for (int i = 0; i < n_files; i++)
        if (!strcmp(files[i].suffix, suffix)) {
            *path = files[i].path;
            return files[i].fd;
        }
    if (n_files == FUZZ_MAX_FILES) {
        fprintf(stderr, "fuzz_write_file: more than %d files\n", FUZZ_MAX_FILES);
        abort();
    }
    int fd = memfd_create(suffix, 0);
    if (fd < 0) {
        perror("memfd_create");
        abort();
    }
    snprintf(files[n_files].suffix, sizeof files[n_files].suffix, "%s", suffix);
    snprintf(files[n_files].path, sizeof files[n_files].path, "/proc/self/fd/%d", fd);
    files[n_files].fd = fd;
    *path = files[n_files++].path;
    return fd;
}

const char *fuzz_write_file(const uint8_t *data, size_t size, const char *suffix)
{
    const char *path;
    int fd = fd_for(suffix, &path);
    size_t done = 0;
    if (ftruncate(fd, 0) != 0)
        goto fail;
    while (done < size) {
        ssize_t n = pwrite(fd, data + done, size - done, (off_t)done);
        if (n <= 0)
            goto fail;
        done += (size_t)n;
    }
    return path;
fail:
    perror(path);
    abort();
}
