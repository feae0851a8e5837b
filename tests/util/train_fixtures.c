/* train_fixtures.c: see train_fixtures.h. */
#include "util/train_fixtures.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { HW = BANDS_HW, K = BANDS_K };

at_dataset bands_data(int n, uint64_t seed)
{
    at_dataset d = {.n = n, .c = 1, .h = HW, .w = HW, .num_classes = K};
    snprintf(d.name, sizeof d.name, "bands");
    d.images = calloc((size_t)n * HW * HW, 1);
    d.labels = calloc((size_t)n, sizeof(int32_t));
    at_rng r;
    at_rng_seed(&r, seed);
    for (int i = 0; i < n; i++) {
        int k = i % K;
        d.labels[i] = k;
        for (int p = 0; p < HW * HW; p++) {
            int row = p / HW;
            int base = row / 2 == k ? 180 : 40;
            d.images[(size_t)i * HW * HW + p] = (uint8_t)(base + (int)at_rng_below(&r, 60));
        }
    }
    return d;
}

void bands_free(at_dataset *d)
{
    free(d->images);
    free(d->labels);
}

at_model *bands_mlp(uint64_t seed)
{
    at_model *m = NULL;
    at_error err;
    if (at_model_create(&m, "mlp-16", &(at_model_options){.num_classes = K, .in_channels = 1,
                        .in_height = HW, .in_width = HW, .seed = seed}, &err))
        fprintf(stderr, "bands_mlp: %s\n", err.message);
    return m;
}

at_train_config bands_config(const char *method)
{
    at_train_config c = {.method = method, .epochs = 2, .batch_size = 16,
                         .lr = {.kind = AT_LR_COSINE, .base = 0.1f},
                         .optimizer = {.momentum = 0.9f, .weight_decay = 5e-4f}, .seed = 3,
                         .eval_batch_size = 64};
    if (strcmp(method, "standard") != 0)
        c.eps = 0.05f;
    return c;
}

float *train_model(at_model *m, const at_train_config *cfg, const at_dataset *train,
                   size_t *count)
{
    at_dataset val = {0};
    at_trainer *t = NULL;
    at_error err;
    float *out = NULL;
    int status = m ? at_trainer_create(&t, m, train, &val, cfg, &err) : AT_ERR_ARG;
    while (!status && at_trainer_epoch(t) < at_trainer_epochs(t)) {
        at_epoch_stats st;
        status = at_trainer_run_epoch(t, NULL, &st, &err);
    }
    if (status) {
        fprintf(stderr, "train_model (%s): %s\n", cfg->method, m ? err.message : "no model");
    } else {
        const float *p = at_model_params(m, count);
        out = malloc(*count * sizeof(float));
        memcpy(out, p, *count * sizeof(float));
    }
    at_trainer_free(t);
    at_model_free(m);
    return out;
}

float *bands_train(const at_train_config *cfg, const at_dataset *train, size_t *count)
{
    return train_model(bands_mlp(1), cfg, train, count);
}

at_model *small_conv_model(void)
{
    at_model *m = NULL;
    at_error err;
    if (at_model_begin(&m, 1, 6, 6, &err)) {
        fprintf(stderr, "small_conv_model: %s\n", err.message);
        return NULL;
    }
    int x = at_add_conv2d(m, 0, "conv", 2, 3, 1, 1, true);
    x = at_add_relu(m, x);
    x = at_add_maxpool2d(m, x, 2, 2);
    x = at_add_flatten(m, x);
    at_add_linear(m, x, "fc", 3, true);
    if (at_model_finish(m, 5, &err)) {
        fprintf(stderr, "small_conv_model: %s\n", err.message);
        at_model_free(m);
        return NULL;
    }
    return m;
}

double sgd_step_gap(at_model *m, const float *trained, double *largest)
{
    size_t count;
    const float *theta = at_model_params(m, &count), *grad = at_model_grads(m, &count);
    double worst = 0.0;
    *largest = 0.0;
    for (size_t j = 0; j < count; j++) {
        worst = fmax(worst, fabs((double)theta[j] - grad[j] - trained[j]));
        *largest = fmax(*largest, fabs(grad[j]));
    }
    return worst;
}
