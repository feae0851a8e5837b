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
