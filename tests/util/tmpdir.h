/* tmpdir.h: temporary directories and files for the tests that write the files they read. */
#ifndef AT_TEST_TMPDIR_H
#define AT_TEST_TMPDIR_H

#include <stdbool.h>
#include <stddef.h>

/* A fresh directory /tmp/advtrain-test-TAG-XXXXXX in dir (64 bytes); false if none was made. */
bool tmpdir_make(char *dir, const char *tag);
/* Removes path and everything below it (symbolic links are removed, not followed). */
void tmpdir_remove(const char *path);
/* dir/name in out (256 bytes); returns out. */
const char *tmpdir_path(const char *dir, const char *name, char *out);
/* Writes n bytes to path; false on any failure. */
bool tmpdir_write(const char *path, const void *data, size_t n);

#endif
