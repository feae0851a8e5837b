/* fuzz_cifar.c: CIFAR binary batch files (at_dataset_load_cifar). The first byte chooses the
 * label bytes (bit 0: 1 for CIFAR-10, 2 for CIFAR-100) and whether the batch is given twice (bit
 * 1, two files in one data set); the rest is the batch file. */
#include "advtrain.h"
#include "fuzz_file.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const int label_bytes = 1 + (data[0] & 1);
    const int n_paths = 1 + (data[0] >> 1 & 1);
    const char *path = fuzz_write_file(data + 1, size - 1, ".bin");
    const char *paths[2] = {path, path};
    at_dataset ds;
    at_error err;
    if (at_dataset_load_cifar(&ds, paths, n_paths, label_bytes, &err) == AT_OK)
        at_dataset_free(&ds);
    return 0;
}
