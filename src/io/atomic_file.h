/* atomic_file.h: writing a file so that a reader (or a crash) never sees half of it. */
#ifndef AT_ATOMIC_FILE_H
#define AT_ATOMIC_FILE_H

#include "core/util.h"

#include <stdio.h>

/* Writes the contents to f; returns 0, or -1 with errno set. */
typedef int (*at_contents_fn)(FILE *f, const void *arg);

/* Writes path through a temporary file beside it (the rename then stays within one file system),
 * synced, renamed over path, then the directory synced. On failure the temporary file is removed,
 * path is as it was, and err names path. */
int at_write_atomically(const char *path, at_contents_fn write_contents, const void *arg,
                        at_error *err);

#endif
