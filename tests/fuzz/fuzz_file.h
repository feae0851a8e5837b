/* fuzz_file.h: the fuzz harnesses' way to hand bytes to parsers that only take a path. */
#ifndef ADVTRAIN_FUZZ_FILE_H
#define ADVTRAIN_FUZZ_FILE_H

#include <stddef.h>
#include <stdint.h>

/* Writes size bytes to a file of this process (one per `suffix`, rewritten on every call, so
 * repeated runs reuse it) and returns a path that opens it. Aborts when the file cannot be
 * written: the harness would otherwise test nothing. */
const char *fuzz_write_file(const uint8_t *data, size_t size, const char *suffix);

/* The harness every fuzz target defines (libFuzzer's entry point). */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
