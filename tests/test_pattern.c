/* test_pattern.c: a pass following another pass's activation pattern (at_pass_freeze_pattern).
 * At the input the pattern came from it computes what the plain pass does, bit for bit (fused
 * ReLUs, max-pools, PReLUs, batch norm); elsewhere a network of those is exactly linear in its
 * input, its input gradient of a linear function of the logits does not move, and differences
 * of its weight gradients do not depend on the step, where the plain pass crosses kinks; and
 * the errors it reports. */
#include "test.h"

#include "advtrain.h"
#include "models/archs.h"

#include <stdlib.h>

enum { N = 4 };

static void fill_uniform(float *x, size_t n, uint64_t seed, float lo, float hi)
{
    at_rng rng;
    at_rng_seed(&rng, seed);
    for (size_t i = 0; i < n; i++)
        x[i] = lo + (hi - lo) * (float)at_rng_uniform(&rng);
}

static void fill_tensor(at_model *m, const char *name, uint64_t seed, float lo, float hi)
{
    int t = at_model_find_tensor(m, name);
    CHECK(t >= 0);
    if (t < 0)
        return;
    at_tensor_info info = at_model_tensor(m, t);
    fill_uniform(info.data, info.numel, seed, lo, hi);
}

/* TRADES' SmallCNN: conv+ReLU (fused in a plain pass), max-pools, linear+ReLU; its last layer
 * starts at zero, so it is drawn here */
static at_model *smallcnn(void)
{
    at_model *m = NULL;
    at_error err;
    CHECK_OK(at_model_create(&m, "smallcnn", &(at_model_options){.seed = 3}, &err), &err);
    if (m)
        fill_tensor(m, "classifier.fc3.weight", 4, -0.1f, 0.1f);
    return m;
}

/* PReLUs of either sign (per channel and shared), a max-pool, a padded conv+ReLU */
static at_model *prelu_model(void)
{
    at_model *m = NULL;
    at_error err;
    CHECK_OK(at_model_begin(&m, 3, 8, 8, &err), &err);
    if (!m)
        return NULL;
    int x = at_add_conv2d(m, 0, "conv1", 8, 3, 1, 1, true);
    x = at_add_prelu(m, x, "act1", 8);
    x = at_add_maxpool2d(m, x, 2, 2);
    x = at_add_conv2d(m, x, "conv2", 8, 3, 1, 1, true);
    x = at_add_relu(m, x);
    x = at_add_flatten(m, x);
    x = at_add_linear(m, x, "fc1", 16, true);
    x = at_add_prelu(m, x, "act2", 1);
    at_add_linear(m, x, "fc2", 5, true);
    CHECK_OK(at_model_finish(m, 7, &err), &err);
    fill_tensor(m, "act1.weight", 8, -0.5f, 0.8f);
    fill_tensor(m, "act2.weight", 9, -0.6f, -0.2f);
    return m;
}

/* a narrow PreAct ResNet-18: batch norm before each ReLU (not fused), residual adds */
static at_model *preact(void)
{
    at_model *m = NULL;
    at_error err;
    CHECK_OK(at_model_begin(&m, 3, 32, 32, &err), &err);
    static const int planes[4] = {8, 8, 16, 16};
    CHECK(m && at_preact_resnet_build(m, 0, planes, 10) > 0);
    CHECK_OK(at_model_finish(m, 11, &err), &err);
    return m;
}

static size_t input_size(const at_model *m)
{
    int c, h, w;
    at_model_input_shape(m, &c, &h, &w);
    return (size_t)c * h * w;
}

typedef struct step {
    float *logits, *dx, *dw;
} step;

static void step_free(step *s)
{
    free(s->logits);
    free(s->dx);
    free(s->dw);
}

/* forward at x and backward of dlogits (input and weight gradients), copied out */
static step run(at_pass *p, const float *x, const float *dlogits)
{
    at_model *m = at_pass_model(p);
    const size_t k = (size_t)at_model_num_classes(m), image = input_size(m);
    size_t np;
    at_model_params(m, &np);
    step s = {malloc(N * k * sizeof(float)), malloc(N * image * sizeof(float)),
              malloc(np * sizeof(float))};
    at_model_zero_grad(m);
    CHECK_OK(at_forward(p, x, N, AT_BN_BATCH_STATS), NULL);
    CHECK_OK(at_backward(p, dlogits, AT_GRAD_INPUT | AT_GRAD_WEIGHTS), NULL);
    memcpy(s.logits, at_pass_logits(p), N * k * sizeof(float));
    memcpy(s.dx, at_pass_input_grad(p), N * image * sizeof(float));
    memcpy(s.dw, at_model_grads(m, &np), np * sizeof(float));
    return s;
}

static void same_at_the_captured_input(at_model *m, const char *label)
{
    REQUIRE(m);
    const size_t k = (size_t)at_model_num_classes(m), image = input_size(m);
    size_t np;
    at_model_params(m, &np);
    float *x = malloc(N * image * sizeof(float)), *d = malloc(N * k * sizeof(float));
    fill_uniform(x, N * image, 21, 0.0f, 1.0f);
    fill_uniform(d, N * k, 22, -1.0f, 1.0f);
    at_pass *src = NULL, *dst = NULL;
    at_error err;
    CHECK_OK(at_pass_create(&src, m, N, 0, &err), &err);
    CHECK_OK(at_pass_create(&dst, m, N, 0, &err), &err);
    REQUIRE(src && dst);
    step plain = run(src, x, d);
    CHECK_OK(at_pass_freeze_pattern(dst, src), NULL);
    step frozen = run(dst, x, d);
    CHECK(memcmp(plain.logits, frozen.logits, N * k * sizeof(float)) == 0);
    CHECK(memcmp(plain.dx, frozen.dx, N * image * sizeof(float)) == 0);
    CHECK(memcmp(plain.dw, frozen.dw, np * sizeof(float)) == 0);
    /* a pass may follow its own pattern */
    CHECK_OK(at_pass_freeze_pattern(src, src), NULL);
    step own = run(src, x, d);
    CHECK(memcmp(plain.logits, own.logits, N * k * sizeof(float)) == 0);
    CHECK(memcmp(plain.dw, own.dw, np * sizeof(float)) == 0);
    int nonzero = 0;
    for (size_t j = 0; j < np; j++)
        nonzero += plain.dw[j] != 0.0f;
    CHECK(nonzero > (int)(np / 4)); /* the comparison is not between zeros */
    printf("  %s: frozen forward, input and weight gradients at x equal the plain ones\n", label);
    step_free(&plain);
    step_free(&frozen);
    step_free(&own);
    at_pass_free(src);
    at_pass_free(dst);
    free(x);
    free(d);
    at_model_free(m);
}

TEST(a_frozen_pass_at_the_captured_input_is_the_plain_pass)
{
    same_at_the_captured_input(smallcnn(), "smallcnn");
    same_at_the_captured_input(prelu_model(), "prelu model");
    same_at_the_captured_input(preact(), "preact-resnet");
}

/* largest |a_i - b_i| and largest |b_i| */
static double max_diff(const float *a, const float *b, size_t n, double *scale)
{
    double diff = 0.0;
    *scale = 0.0;
    for (size_t i = 0; i < n; i++) {
        diff = fmax(diff, fabs((double)a[i] - b[i]));
        *scale = fmax(*scale, fabs((double)b[i]));
    }
    return diff;
}

/* Along x + t d, t = 0, s, 2s: the second difference of the logits over the first. A network
 * linear in its input gives rounding; one crossing kinks gives much more. Also the input
 * gradient of v . logits at 2s against the one at 0, and the weight-gradient quotients
 * (g(t) - g(0)) / t at t = s and 2s against each other. */
typedef struct linearity {
    double logits, input_grad, weight_quotient;
} linearity;

static linearity along_a_line(at_model *m, at_pass *p, bool frozen, float s)
{
    const size_t k = (size_t)at_model_num_classes(m), image = input_size(m);
    size_t np;
    at_model_params(m, &np);
    float *x = malloc(3 * N * image * sizeof(float)), *dir = malloc(N * image * sizeof(float));
    float *v = malloc(N * k * sizeof(float));
    fill_uniform(x, N * image, 31, 0.0f, 1.0f);
    fill_uniform(dir, N * image, 32, -1.0f, 1.0f);
    fill_uniform(v, N * k, 33, -1.0f, 1.0f);
    for (int t = 1; t < 3; t++)
        for (size_t j = 0; j < N * image; j++)
            x[t * N * image + j] = x[j] + (float)t * s * dir[j];
    at_pass *src = NULL;
    at_error err;
    CHECK_OK(at_pass_create(&src, m, N, 0, &err), &err);
    step at[3];
    at[0] = run(src, x, v);
    CHECK_OK(at_pass_freeze_pattern(p, frozen ? src : NULL), NULL);
    for (int t = 1; t < 3; t++)
        at[t] = run(p, x + t * N * image, v);
    float *second = malloc(N * k * sizeof(float)), *first = malloc(N * k * sizeof(float));
    for (size_t j = 0; j < N * k; j++) {
        second[j] = at[2].logits[j] - 2.0f * at[1].logits[j] + at[0].logits[j];
        first[j] = at[1].logits[j] - at[0].logits[j];
    }
    linearity r;
    double scale;
    float *nothing = calloc(N * k, sizeof(float));
    r.logits = max_diff(second, nothing, N * k, &scale) / max_diff(first, nothing, N * k, &scale);
    r.input_grad = max_diff(at[2].dx, at[0].dx, N * image, &scale) / scale;
    float *q1 = malloc(np * sizeof(float)), *q2 = malloc(np * sizeof(float));
    for (size_t j = 0; j < np; j++) {
        q1[j] = (at[1].dw[j] - at[0].dw[j]) / s;
        q2[j] = (at[2].dw[j] - at[0].dw[j]) / (2 * s);
    }
    r.weight_quotient = max_diff(q2, q1, np, &scale) / scale;
    for (int t = 0; t < 3; t++)
        step_free(&at[t]);
    at_pass_free(src);
    free(q1);
    free(q2);
    free(nothing);
    free(first);
    free(second);
    free(x);
    free(dir);
    free(v);
    return r;
}

static void linear_when_frozen(at_model *m, const char *label, float s)
{
    REQUIRE(m);
    at_pass *p = NULL;
    at_error err;
    CHECK_OK(at_pass_create(&p, m, N, 0, &err), &err);
    REQUIRE(p);
    const linearity frozen = along_a_line(m, p, true, s), plain = along_a_line(m, p, false, s);
    printf("  %s, steps %g: second/first difference of the logits %.2e frozen, %.2e plain; "
           "input gradient moves %.2e, %.2e; weight quotients differ %.2e, %.2e\n",
           label, s, frozen.logits, plain.logits, frozen.input_grad, plain.input_grad,
           frozen.weight_quotient, plain.weight_quotient);
    CHECK(frozen.logits < 1e-4);
    CHECK(plain.logits > 1e-2); /* the steps cross kinks: the comparison means something */
    /* an input gradient through fixed masks, indices and sides reads no activation: the same
     * numbers */
    CHECK(frozen.input_grad == 0.0);
    CHECK(plain.input_grad > 1e-2);
    CHECK(frozen.weight_quotient < 1e-3);
    CHECK(plain.weight_quotient > 1e-2);
    at_pass_free(p);
    at_model_free(m);
}

TEST(a_frozen_network_is_linear_in_its_input)
{
    linear_when_frozen(smallcnn(), "smallcnn", 0.3f);
    linear_when_frozen(prelu_model(), "prelu model", 0.3f);
}

TEST(freezing_checks_its_passes_and_null_clears)
{
    at_model *m = prelu_model(), *other = prelu_model();
    REQUIRE(m && other);
    const size_t k = (size_t)at_model_num_classes(m), image = input_size(m);
    float x[N * 3 * 8 * 8], y[N * 3 * 8 * 8];
    fill_uniform(x, N * image, 41, 0.0f, 1.0f);
    fill_uniform(y, N * image, 42, 0.0f, 1.0f);
    at_pass *src = NULL, *dst = NULL, *small = NULL, *theirs = NULL, *inference = NULL;
    at_error err;
    CHECK_OK(at_pass_create(&src, m, N, 0, &err), &err);
    CHECK_OK(at_pass_create(&dst, m, N, 0, &err), &err);
    CHECK_OK(at_pass_create(&small, m, N - 1, 0, &err), &err);
    CHECK_OK(at_pass_create(&theirs, other, N, 0, &err), &err);
    CHECK_OK(at_pass_create(&inference, m, N, AT_PASS_FORWARD_ONLY, &err), &err);
    REQUIRE(src && dst && small && theirs && inference);
    CHECK_EQ_INT(at_pass_freeze_pattern(dst, src), AT_ERR_STATE); /* before src's forward */
    CHECK_OK(at_forward(src, x, N, AT_BN_BATCH_STATS), NULL);
    CHECK_OK(at_forward(theirs, x, N, AT_BN_BATCH_STATS), NULL);
    CHECK_OK(at_forward(inference, x, N, AT_BN_BATCH_STATS), NULL);
    CHECK_EQ_INT(at_pass_freeze_pattern(dst, theirs), AT_ERR_ARG);   /* another model */
    CHECK_EQ_INT(at_pass_freeze_pattern(dst, inference), AT_ERR_STATE); /* outputs not kept */
    CHECK_EQ_INT(at_pass_freeze_pattern(small, src), AT_ERR_ARG);    /* more than max_batch */
    CHECK_EQ_INT(at_pass_freeze_pattern(NULL, src), AT_ERR_ARG);
    CHECK_OK(at_pass_freeze_pattern(dst, src), NULL);
    CHECK_EQ_INT(at_forward(dst, x, N - 1, AT_BN_BATCH_STATS), AT_ERR_ARG); /* another batch */
    /* at y the frozen pass is not the plain one; cleared, it is again */
    CHECK_OK(at_forward(src, y, N, AT_BN_BATCH_STATS), NULL);
    CHECK_OK(at_forward(dst, y, N, AT_BN_BATCH_STATS), NULL);
    CHECK(memcmp(at_pass_logits(src), at_pass_logits(dst), N * k * sizeof(float)) != 0);
    CHECK_OK(at_pass_freeze_pattern(dst, NULL), NULL);
    CHECK_OK(at_forward(dst, y, N - 1, AT_BN_BATCH_STATS), NULL); /* any batch again */
    CHECK_OK(at_forward(dst, y, N, AT_BN_BATCH_STATS), NULL);
    CHECK(memcmp(at_pass_logits(src), at_pass_logits(dst), N * k * sizeof(float)) == 0);
    at_pass_free(src);
    at_pass_free(dst);
    at_pass_free(small);
    at_pass_free(theirs);
    at_pass_free(inference);
    at_model_free(m);
    at_model_free(other);
}

TEST_MAIN(TEST_ENTRY(a_frozen_pass_at_the_captured_input_is_the_plain_pass),
          TEST_ENTRY(a_frozen_network_is_linear_in_its_input),
          TEST_ENTRY(freezing_checks_its_passes_and_null_clears))
