/* fuzz_checkpoint.c: checkpoints (safetensors with the model's and the optimiser's tensors and
 * the "model"/"optimizer" metadata) loaded into a small model. The first byte chooses how: bit 0
 * and 1 pick resuming with an SGD or Adam optimiser (at_checkpoint_load), initialising weights
 * (at_checkpoint_load_init) or importing under a prefix (at_checkpoint_import); bit 2 also builds
 * the model the file's "model" metadata describes, as `advtrain eval` does. */
#include "advtrain.h"
#include "fuzz_file.h"
#include "fuzz_model.h"
#include "io/checkpoint.h"

#include <stdlib.h>

/* The file's own model, from its spec, loaded as `advtrain eval --checkpoint` loads it. */
static void load_described(const char *path)
{
    at_safetensors *st = NULL;
    at_error err;
    if (at_st_open(&st, path, &err))
        return;
    const char *spec = at_st_meta(st, "model");
    at_model *model = NULL;
    if (spec && at_model_create_from_spec(&model, spec, &err) == AT_OK) {
        at_checkpoint_load(path, model, NULL, NULL, &err);
        at_model_free(model);
    }
    at_st_free(st);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const int mode = data[0] & 3;
    const char *path = fuzz_write_file(data + 1, size - 1, ".safetensors");
    at_model *model = NULL;
    at_error err;
    if (fuzz_model_create(&model, &err))
        abort();
    if (mode <= 1) {
        at_optimizer_options o = at_optimizer_defaults(mode == 0 ? AT_OPTIMIZER_SGD : AT_OPTIMIZER_ADAM);
        if (mode == 0)
            o.momentum = 0.9;
        at_optimizer *opt = NULL;
        if (at_optimizer_create(&opt, model, &o, &err))
            abort();
        at_safetensors *st = NULL;
        if (at_checkpoint_load(path, model, opt, &st, &err) == AT_OK)
            at_st_free(st);
        at_optimizer_free(opt);
    } else if (mode == 2) {
        at_checkpoint_load_init(path, model, &err);
    } else {
        static const char *const ignore[] = {"mean", "std", NULL};
        at_checkpoint_import(path, model, "module.", ignore, &err);
    }
    at_model_free(model);
    if (data[0] & 4)
        load_described(path);
    return 0;
}
