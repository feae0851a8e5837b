/* fuzz_file.c: see fuzz_file.h. */
#include "fuzz_file.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { FUZZ_MAX_FILES = 4 };

/* Paths per suffix; a harness uses at most a few files per input. */
static struct {
    char suffix[32];
    char path[128];
} files[FUZZ_MAX_FILES];

static void remove_files(void)
{
    for (int i = 0; i < FUZZ_MAX_FILES; i++)
        if (files[i].path[0])
            unlink(files[i].path);
}

static const char *path_for(const char *suffix)
{
    for (int i = 0; i < FUZZ_MAX_FILES; i++) {
        if (files[i].path[0] && !strcmp(files[i].suffix, suffix))
            return files[i].path;
        if (!files[i].path[0]) {
            if (i == 0)
                atexit(remove_files);
            snprintf(files[i].suffix, sizeof files[i].suffix, "%s", suffix);
            snprintf(files[i].path, sizeof files[i].path, "/tmp/advtrain-fuzz-%ld%s",
                     (long)getpid(), suffix);
            return files[i].path;
        }
    }
    fprintf(stderr, "fuzz_write_file: more than %d files\n", FUZZ_MAX_FILES);
    abort();
}

const char *fuzz_write_file(const uint8_t *data, size_t size, const char *suffix)
{
    const char *path = path_for(suffix);
    FILE *f = fopen(path, "wb");
    if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f) != 0) {
        perror(path);
        abort();
    }
    return path;
}
