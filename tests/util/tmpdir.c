/* tmpdir.c: temporary directories and files for the tests (tmpdir.h). */
#define _XOPEN_SOURCE 700 /* nftw, mkdtemp */
#include "util/tmpdir.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

bool tmpdir_make(char *dir, const char *tag)
{
    snprintf(dir, 64, "/tmp/advtrain-test-%s-XXXXXX", tag);
    return mkdtemp(dir) != NULL;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

void tmpdir_remove(const char *path) { nftw(path, remove_entry, 8, FTW_DEPTH | FTW_PHYS); }

const char *tmpdir_path(const char *dir, const char *name, char *out)
{
    snprintf(out, 256, "%s/%s", dir, name);
    return out;
}

bool tmpdir_write(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    bool ok = f && fwrite(data, 1, n, f) == n;
    return f && fclose(f) == 0 && ok;
}
