/* fixtures.c: see fixtures.h. */
#include "util/fixtures.h"

#include <math.h>
#include <stdio.h>

at_model *fixture_model(const char *arch, int c, int hw, int classes, uint64_t seed)
{
    at_model *m = NULL;
    at_error err;
    at_model_options o = {.num_classes = classes, .in_channels = c, .in_height = hw,
                          .in_width = hw, .seed = seed};
    if (at_model_create(&m, arch, &o, &err))
        fprintf(stderr, "fixture_model: %s\n", err.message);
    return m;
}

void fixture_images(float *x, size_t count, uint64_t seed, float lo, float hi)
{
    at_rng r;
    at_rng_seed(&r, seed);
    for (size_t i = 0; i < count; i++)
        x[i] = lo + (hi - lo) * (float)at_rng_uniform(&r);
}

void fixture_predict(at_model *m, const float *x, int n, int32_t *y)
{
    at_pass *p = NULL;
    at_error err;
    if (at_pass_create(&p, m, n, AT_PASS_FORWARD_ONLY, &err)) {
        fprintf(stderr, "fixture_predict: %s\n", err.message);
        return;
    }
    at_forward(p, x, n, AT_BN_EVAL);
    int k = at_model_num_classes(m);
    for (int i = 0; i < n; i++) {
        const float *z = at_pass_logits(p) + (size_t)i * k;
        y[i] = 0;
        for (int j = 1; j < k; j++)
            if (z[j] > z[y[i]])
                y[i] = j;
    }
    at_pass_free(p);
}

double fixture_budget(at_norm norm, float eps)
{
    return norm == AT_NORM_LINF ? eps + 1e-6 : eps * (1.0 + 1e-5);
}

double fixture_distance(at_norm norm, const float *a, const float *b, size_t image)
{
    double r = 0.0;
    for (size_t j = 0; j < image; j++) {
        double d = fabs((double)a[j] - b[j]);
        r = norm == AT_NORM_LINF ? (d > r ? d : r) : (norm == AT_NORM_L2 ? r + d * d : r + d);
    }
    return norm == AT_NORM_L2 ? sqrt(r) : r;
}

at_model *fixture_fashion_smallcnn(int n_train, int epochs, int batch_size, uint64_t seed,
                                   int n_test, at_dataset *test)
{
    static const char *const dir = "/usr/share/datasets/fashion-mnist";
    at_error err = {0};
    at_dataset full = {0}, full_test = {0}, train = {0}, val = {0};
    at_model *model = NULL;
    at_trainer *t = NULL;
    at_train_config cfg = {.method = "standard", .epochs = epochs, .batch_size = batch_size,
                           .lr = {.kind = AT_LR_COSINE, .base = 0.05f},
                           .optimizer = {.momentum = 0.9f, .weight_decay = 5e-4f}, .seed = seed,
                           .eval_batch_size = 500};
    at_epoch_stats st;
    int status = at_dataset_open(&full, "fashion-mnist", dir, "train", &err) ||
                 at_dataset_open(&full_test, "fashion-mnist", dir, "test", &err) ||
                 at_dataset_slice(&train, &full, 0, n_train, &err) ||
                 at_dataset_slice(test, &full_test, 0, n_test, &err) ||
                 at_model_create(&model, "smallcnn", &(at_model_options){.seed = seed}, &err) ||
                 at_trainer_create(&t, model, &train, &val, &cfg, &err);
    for (int e = 0; e < epochs && !status; e++)
        status = at_trainer_run_epoch(t, NULL, &st, &err);
    if (status) {
        fprintf(stderr, "fixture_fashion_smallcnn: %s\n", err.message);
        at_model_free(model);
        model = NULL;
    }
    at_trainer_free(t);
    at_dataset_free(&full);
    at_dataset_free(&full_test);
    at_dataset_free(&train);
    at_dataset_free(&val);
    return model;
}

at_eval_plan fixture_linf_plan(const char *const *names, int n, float eps)
{
    at_eval_plan p = {.n_attacks = n, .batch_size = 100, .seed = 5};
    for (int i = 0; i < n; i++) {
        p.attacks[i] = names[i];
        p.options[i] = (at_attack_options){.norm = AT_NORM_LINF, .eps = eps};
    }
    return p;
}
