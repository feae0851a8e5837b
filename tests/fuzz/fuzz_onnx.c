/* fuzz_onnx.c: ONNX model files (at_model_import_onnx): the protobuf, the graph's operators,
 * attributes, shapes and initializers. An imported model also writes its spec, which walks
 * every node the import made. */
#include "advtrain.h"
#include "fuzz_file.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_write_file(data, size, ".onnx");
    at_model *model = NULL;
    at_error err;
    if (at_model_import_onnx(&model, path, &err) != AT_OK)
        return 0;
    free(at_model_spec(model));
    at_model_free(model);
    return 0;
}
