/* checkpoint_seeds.c: writes the seed inputs of fuzz_checkpoint into DIR: checkpoints of the fuzz
 * model (fuzz_model.h) with SGD's and Adam's state and of a small "linear" model, each behind the
 * harness's mode byte. Run by make_corpus.sh. */
#include "fuzz_model.h"

#include <stdio.h>
#include <stdlib.h>

/* The checkpoint at tmp, prefixed with the mode byte, as DIR/NAME. */
static int write_seed(const char *tmp, const char *dir, const char *name, unsigned char mode)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *in = fopen(tmp, "rb"), *out = fopen(path, "wb");
    int ok = in && out && fputc(mode, out) != EOF;
    for (int c; ok && (c = fgetc(in)) != EOF;)
        ok = fputc(c, out) != EOF;
    if (in)
        fclose(in);
    if (out && fclose(out) != 0)
        ok = 0;
    remove(tmp);
    if (!ok)
        fprintf(stderr, "checkpoint_seeds: cannot write %s\n", path);
    return ok ? 0 : 1;
}

/* The model (and, with `kind` >= 0, that optimiser's state) with its spec as "model", as the
 * tool's checkpoints carry it. */
static int save(at_model *model, int kind, const char *tmp, at_error *err)
{
    at_optimizer *opt = NULL;
    int status = AT_OK;
    if (kind >= 0) {
        at_optimizer_options o = at_optimizer_defaults((at_optimizer_kind)kind);
        if (kind == AT_OPTIMIZER_SGD)
            o.momentum = 0.9;
        status = at_optimizer_create(&opt, model, &o, err);
    }
    char *spec = at_model_spec(model);
    const at_kv meta[] = {{"model", spec}};
    if (!status && !spec) {
        snprintf(err->message, sizeof err->message, "out of memory for the model spec");
        status = err->status = AT_ERR_NOMEM;
    }
    if (!status)
        status = at_checkpoint_save(tmp, model, opt, meta, 1, err);
    free(spec);
    at_optimizer_free(opt);
    return status;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: checkpoint_seeds DIR\n");
        return 2;
    }
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s/.checkpoint.tmp", argv[1]);
    at_model *model = NULL, *linear = NULL;
    at_error err;
    const at_model_options lo = {.num_classes = 3, .in_channels = 1, .in_height = 2, .in_width = 2};
    int status = fuzz_model_create(&model, &err);
    if (!status)
        status = at_model_create(&linear, "linear", &lo, &err);
    int failed = 0;
    if (!status && !(status = save(model, AT_OPTIMIZER_SGD, tmp, &err)))
        failed |= write_seed(tmp, argv[1], "sgd.safetensors", 0 | 4);
    if (!status && !(status = save(model, AT_OPTIMIZER_ADAM, tmp, &err)))
        failed |= write_seed(tmp, argv[1], "adam.safetensors", 1);
    if (!status && !(status = save(model, -1, tmp, &err)))
        failed |= write_seed(tmp, argv[1], "weights.safetensors", 2 | 4);
    if (!status && !(status = save(linear, -1, tmp, &err)))
        failed |= write_seed(tmp, argv[1], "linear.safetensors", 3 | 4);
    at_model_free(model);
    at_model_free(linear);
    if (status) {
        fprintf(stderr, "checkpoint_seeds: %s\n", err.message);
        return 1;
    }
    return failed;
}
