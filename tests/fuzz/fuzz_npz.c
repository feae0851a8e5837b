/* fuzz_npz.c: .npz archives of extra training data (at_extra_load_npz, as at_dataset_load_file
 * calls it): a zip of "image(s)" and "label(s)" .npy arrays, stored or deflated. The first byte
 * sets the image shape the data set expects: 1 or 3 channels (bit 0), side 1 to 8 (bits 1-3);
 * 10 classes. The rest is the archive. */
#include "advtrain.h"
#include "data/extra_data.h"
#include "fuzz_file.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const char *path = fuzz_write_file(data + 1, size - 1, ".npz");
    at_dataset ds;
    memset(&ds, 0, sizeof ds);
    ds.c = data[0] & 1 ? 3 : 1;
    ds.h = ds.w = 1 + (data[0] >> 1 & 7);
    ds.num_classes = 10;
    at_error err;
    at_extra_load_npz(&ds, path, &err);
    at_dataset_free(&ds); /* what at_dataset_load_file does on success and failure alike */
    return 0;
}
