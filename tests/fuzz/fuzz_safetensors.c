/* fuzz_safetensors.c: a safetensors file, header and body (at_st_open), and every tensor and
 * metadata entry it reports, read back. */
#include "advtrain.h"
#include "fuzz_file.h"

#include <string.h>

/* The sum of every byte read: stored so the reads are not optimised away. */
static volatile size_t touched;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_write_file(data, size, ".safetensors");
    at_safetensors *st = NULL;
    at_error err;
    if (at_st_open(&st, path, &err) != AT_OK)
        return 0;
    size_t sum = 0; /* every byte each tensor claims must be readable */
    for (int i = 0; i < at_st_count(st); i++) {
        const at_st_tensor *t = at_st_get(st, i);
        if (at_st_find(st, t->name) == NULL)
            __builtin_trap();
        const uint8_t *bytes = t->data;
        for (size_t b = 0; b < t->nbytes; b++)
            sum += bytes[b];
    }
    const char *model = at_st_meta(st, "model");
    if (model)
        sum += strlen(model);
    touched = sum;
    at_st_free(st);
    return 0;
}
