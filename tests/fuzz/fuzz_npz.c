/* fuzz_npz.c: .npz archives of extra training data (at_extra_load_npz): a zip of "image(s)" and
 * "label(s)" .npy arrays, stored or deflated. */
#include "advtrain.h"
#include "data/extra_data.h"
#include "fuzz_file.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_write_file(data, size, ".npz");
    at_dataset ds;
    at_error err;
    if (at_extra_load_npz(&ds, path, &err) == AT_OK)
        at_dataset_free(&ds);
    return 0;
}
