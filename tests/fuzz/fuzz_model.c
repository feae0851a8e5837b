/* fuzz_model.c: see fuzz_model.h. */
#include "fuzz_model.h"

#include <stdio.h>

int fuzz_model_create(at_model **out, at_error *err)
{
    at_model *m = NULL;
    int status = at_model_begin(&m, 1, 4, 4, err);
    if (status)
        return status;
    int x = at_add_conv2d(m, 0, "conv", 2, 3, 1, 1, true);
    x = x < 0 ? x : at_add_batchnorm2d(m, x, "bn");
    x = x < 0 ? x : at_add_relu(m, x);
    x = x < 0 ? x : at_add_flatten(m, x);
    x = x < 0 ? x : at_add_linear(m, x, "fc", 3, true);
    if (x < 0) {
        snprintf(err->message, sizeof err->message, "building the fuzz model failed");
        status = err->status = x;
    } else {
        status = at_model_finish(m, 1, err);
    }
    if (status) {
        at_model_free(m);
        return status;
    }
    *out = m;
    return AT_OK;
}
