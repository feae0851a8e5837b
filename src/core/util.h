/* util.h: small internal helpers shared by every file of the library (errors, memory, sizes). */
#ifndef AT_UTIL_H
#define AT_UTIL_H

#include "advtrain.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/* Fills `err` (when not NULL) with status and a printf-style message; returns status, so an error
 * path is a single `return at_fail(err, AT_ERR_IO, "%s: cannot open", path);`. */
int at_fail(at_error *err, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Opens a regular file for reading into *out, or fails with "PATH: cannot open: why". Opened without
 * blocking, so a FIFO or device named by mistake is refused instead of waited on for ever (reads
 * of a regular file do not block either way). */
int at_open_regular(FILE **out, const char *path, at_error *err);

/* 64-byte aligned, zero-filled memory; NULL on failure or when bytes is 0. Free with at_free. */
void *at_alloc(size_t bytes);
void at_free(void *p);

/* a * b without overflow; false when it would overflow. */
static inline bool at_mul_size(size_t a, size_t b, size_t *out)
{
    if (a != 0 && b > (size_t)-1 / a)
        return false;
    *out = a * b;
    return true;
}

/* Rounds up to a multiple of 16 floats (64 bytes), so carved buffers stay cache-line aligned. */
static inline size_t at_round_floats(size_t n) { return (n + 15) & ~(size_t)15; }

/* Copies at most cap-1 bytes and always terminates. */
void at_strlcpy(char *dst, const char *src, size_t cap);

/* How many OpenMP threads a parallel region may use right now (1 without OpenMP). */
int at_max_threads(void);
int at_thread_id(void);

#endif
