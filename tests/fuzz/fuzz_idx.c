/* fuzz_idx.c: IDX image and label files, raw or gzip (at_dataset_load_idx). The input is one
 * byte for the number of classes (1 + byte), two bytes (little-endian) for the length of the
 * image file, the image file, and the label file (the rest). */
#include "advtrain.h"
#include "fuzz_file.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3)
        return 0;
    const int classes = 1 + data[0];
    size_t images = (size_t)data[1] | (size_t)data[2] << 8;
    data += 3;
    size -= 3;
    if (images > size)
        images = size;
    const char *image_path = fuzz_write_file(data, images, "-images.idx");
    const char *label_path = fuzz_write_file(data + images, size - images, "-labels.idx");
    at_dataset ds;
    at_error err;
    if (at_dataset_load_idx(&ds, image_path, label_path, classes, &err) == AT_OK)
        at_dataset_free(&ds);
    return 0;
}
