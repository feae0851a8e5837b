/* util.c: error messages, aligned allocation, opening a file for reading and thread helpers. */
#include "core/util.h"

#include <omp.h>     /* omp_get_max_threads, omp_get_thread_num */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const struct {
    int code;
    const char *text;
} status_table[] = {
#define AT_STATUS_ROW_(name, code, text) {code, text},
    AT_STATUS_LIST(AT_STATUS_ROW_)
#undef AT_STATUS_ROW_
};

const char *at_status_string(int status)
{
    for (size_t i = 0; i < sizeof status_table / sizeof status_table[0]; i++)
        if (status_table[i].code == status)
            return status_table[i].text;
    return "unknown status";
}

int at_fail(at_error *err, int status, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof err->message, fmt, ap);
        va_end(ap);
        err->status = status;
    }
    return status;
}

void *at_alloc(size_t bytes)
{
    if (bytes == 0)
        return NULL;
    size_t rounded = (bytes + 63) & ~(size_t)63;
    if (rounded < bytes)
        return NULL;
    void *p = aligned_alloc(64, rounded);
    if (p)
        memset(p, 0, rounded);
    return p;
}

void at_free(void *p) { free(p); }

void at_strlcpy(char *dst, const char *src, size_t cap)
{
    if (cap == 0)
        return;
    size_t n = strlen(src);
    if (n >= cap)
        n = cap - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

int at_max_threads(void) { return omp_get_max_threads(); }
int at_thread_id(void) { return omp_get_thread_num(); }

int at_open_regular(FILE **out, const char *path, at_error *err)
{
    *out = NULL;
    int fd = open(path, O_RDONLY | O_NONBLOCK);
    if (fd < 0)
        return at_fail(err, AT_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat info;
    int status = AT_OK;
    if (fstat(fd, &info) != 0 || !S_ISREG(info.st_mode))
        status = at_fail(err, AT_ERR_IO, "%s: cannot open: not a regular file", path);
    else if (!(*out = fdopen(fd, "rb")))
        status = at_fail(err, AT_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    if (status)
        close(fd);
    return status;
}
