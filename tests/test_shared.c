/* test_shared.c: nodes that apply an earlier node's layer with the same parameters
 * (at_add_shared). Gradients of the shared parameters are the sum over their uses, checked by
 * finite differences through every convolution path (matrix product, direct, Winograd) and the
 * linear layer; a shared node declares no tensors and draws no initial values; results do not
 * depend on the thread count or the memory plan; what cannot be shared is refused. */
#include "test.h"
#include "util/gradcheck.h"

#include "advtrain.h"

#include <omp.h>
#include <stdlib.h>

typedef struct conv_case {
    const char *label;
    int channels, height, width, out_channels, padding;
} conv_case;

/* Two frames of `channels` channels each, side by side in the input's channels: conv -> ReLU ->
 * flatten -> linear on the first, the same layers (shared) on the second, the two logit vectors
 * averaged. With `second` false the second frame's branch is left out. */
static at_model *two_frame_model(const conv_case *k, bool second, uint64_t seed)
{
    at_model *m = NULL;
    at_error err;
    CHECK_OK(at_model_begin(&m, 2 * k->channels, k->height, k->width, &err), &err);
    if (!m)
        return NULL;
    int a = at_add_slice(m, 0, 0, k->channels);
    int conv = at_add_conv2d(m, a, "conv", k->out_channels, 3, 1, k->padding, true);
    int relu = at_add_relu(m, conv);
    int flat = at_add_flatten(m, relu);
    int fc = at_add_linear(m, flat, "fc", 5, true);
    if (second) {
        int b = at_add_slice(m, 0, k->channels, k->channels);
        int x = at_add_shared(m, b, conv);
        x = at_add_shared(m, x, relu);
        x = at_add_shared(m, x, flat);
        x = at_add_shared(m, x, fc);
        at_add_scale(m, at_add_add(m, fc, x), 0.5f);
    }
    CHECK_OK(at_model_finish(m, seed, &err), &err);
    return m;
}

/* the convolution paths where the processor has AVX-512: 4 outputs, the matrix product; 32
 * outputs of 3 channels, the direct forward and weight gradient; 32 -> 32 with odd outputs, the
 * direct kernels throughout; with even outputs, Winograd throughout (padded or not) */
static const conv_case cases[] = {
    {"conv 3->4 (matrix product)", 3, 5, 6, 4, 0},
    {"conv 3->32 (direct)", 3, 5, 7, 32, 0},
    {"conv 32->32 odd (direct)", 32, 5, 7, 32, 0},
    {"conv 32->32 even (Winograd)", 32, 6, 6, 32, 0},
    {"conv 32->32 p1 (Winograd)", 32, 4, 6, 32, 1},
};
#define N_CASES (int)(sizeof cases / sizeof cases[0])

TEST(shared_weight_gradients_sum_over_uses)
{
    for (int i = 0; i < N_CASES; i++) {
        at_model *m = two_frame_model(&cases[i], true, 3);
        REQUIRE(m);
        gc_options o = {.n = 3, .mode = AT_BN_TRAIN, .loss = GC_LOSS_CE, .max_coords = 300,
                        .tol = 2e-5, .seed = 17, .randomize_params = true, .centered_input = true};
        gc_report r;
        int failures = gradcheck_model(m, &o, &r);
        if (failures)
            TEST_FAIL_("%s: %d gradient mismatches", cases[i].label, failures);
        CHECK(r.weight_checked > 0);
        printf("  %-30s fwd %.1e  dx %.1e (%d)  dw %.1e (%d)  skipped %d\n", cases[i].label,
               r.forward_max_err, r.input_max_err, r.input_checked, r.weight_max_err,
               r.weight_checked, r.skipped);
        at_model_free(m);
    }
}

TEST(shared_nodes_declare_nothing_and_draw_nothing)
{
    const conv_case *k = &cases[3];
    at_model *shared = two_frame_model(k, true, 9), *single = two_frame_model(k, false, 9);
    REQUIRE(shared && single);
    CHECK_EQ_INT(at_model_tensor_count(shared), 4);
    CHECK_EQ_INT(at_model_tensor_count(shared), at_model_tensor_count(single));
    for (int t = 0; t < at_model_tensor_count(shared); t++)
        CHECK_STR_EQ(at_model_tensor(shared, t).name, at_model_tensor(single, t).name);
    size_t n_shared, n_single;
    float *ws = at_model_params(shared, &n_shared), *w1 = at_model_params(single, &n_single);
    CHECK_EQ_INT(n_shared, n_single);
    CHECK(memcmp(ws, w1, n_shared * sizeof(float)) == 0); /* the same draws, once each */
    CHECK_STR_EQ(at_model_node_kind(shared, 7), "conv2d"); /* the second frame's convolution */
    int c, h, w;
    at_model_node_shape(shared, 7, &c, &h, &w);
    CHECK(c == 32 && h == 4 && w == 4);
    /* twice the convolutions and products of one frame */
    CHECK_CLOSE(at_model_forward_flops(shared), 2 * at_model_forward_flops(single), 0, 1e-12);
    at_model_free(shared);
    at_model_free(single);
}

typedef struct run {
    float logits[4 * 5], *dx, *dw;
} run;

static void run_step(at_model *m, unsigned flags, unsigned what, run *r)
{
    int c, h, w;
    at_model_input_shape(m, &c, &h, &w);
    const size_t in_count = (size_t)4 * c * h * w;
    float *x = malloc(in_count * sizeof(float));
    float d[4 * 5];
    at_rng rng;
    at_rng_seed(&rng, 5);
    for (size_t i = 0; i < in_count; i++)
        x[i] = (float)at_rng_uniform(&rng);
    for (int i = 0; i < 20; i++)
        d[i] = (float)at_rng_normal(&rng);
    at_pass *p = NULL;
    at_error err;
    CHECK_OK(at_pass_create(&p, m, 4, flags, &err), &err);
    size_t np;
    float *grads = at_model_grads(m, &np);
    at_model_zero_grad(m);
    CHECK_OK(at_forward(p, x, 4, AT_BN_TRAIN), NULL);
    CHECK_OK(at_backward(p, d, what), NULL);
    memcpy(r->logits, at_pass_logits(p), sizeof r->logits);
    r->dx = malloc(in_count * sizeof(float));
    r->dw = malloc(np * sizeof(float));
    memcpy(r->dx, at_pass_input_grad(p), in_count * sizeof(float));
    memcpy(r->dw, grads, np * sizeof(float));
    at_pass_free(p);
    free(x);
}

static void free_run(run *r)
{
    free(r->dx);
    free(r->dw);
}

/* Fused ReLUs and recycled buffers (the default plan) against every buffer kept and nothing
 * fused; an input-gradient-only pass; 1, 2 and 3 threads: the same bits. */
TEST(shared_results_do_not_depend_on_threads_or_memory_plan)
{
    for (int i = 2; i < N_CASES; i++) {
        at_model *m = two_frame_model(&cases[i], true, 4);
        REQUIRE(m);
        size_t np;
        float *w = at_model_params(m, &np);
        at_rng rng;
        at_rng_seed(&rng, 6);
        for (size_t j = 0; j < np; j++)
            w[j] = (float)(0.2 * at_rng_normal(&rng));
        const size_t in_count = (size_t)4 * 2 * cases[i].channels * cases[i].height * cases[i].width;
        const int saved = omp_get_max_threads();
        run base, other;
        run_step(m, 0, AT_GRAD_INPUT | AT_GRAD_WEIGHTS, &base);
        run_step(m, AT_PASS_KEEP_ALL, AT_GRAD_INPUT | AT_GRAD_WEIGHTS, &other);
        CHECK(memcmp(base.logits, other.logits, sizeof base.logits) == 0);
        CHECK(memcmp(base.dx, other.dx, in_count * sizeof(float)) == 0);
        CHECK(memcmp(base.dw, other.dw, np * sizeof(float)) == 0);
        free_run(&other);
        run_step(m, AT_PASS_NO_WEIGHT_GRADS, AT_GRAD_INPUT, &other);
        CHECK(memcmp(base.dx, other.dx, in_count * sizeof(float)) == 0);
        free_run(&other);
        for (int threads = 1; threads <= 3; threads++) {
            omp_set_num_threads(threads);
            run_step(m, 0, AT_GRAD_INPUT | AT_GRAD_WEIGHTS, &other);
            CHECK(memcmp(base.logits, other.logits, sizeof base.logits) == 0);
            CHECK(memcmp(base.dx, other.dx, in_count * sizeof(float)) == 0);
            CHECK(memcmp(base.dw, other.dw, np * sizeof(float)) == 0);
            free_run(&other);
        }
        omp_set_num_threads(saved);
        free_run(&base);
        at_model_free(m);
    }
}

TEST(what_cannot_be_shared_is_refused)
{
    at_model *m = NULL;
    at_error err;
    CHECK_OK(at_model_begin(&m, 4, 6, 6, &err), &err);
    REQUIRE(m);
    int a = at_add_slice(m, 0, 0, 2), b = at_add_slice(m, 0, 2, 2);
    int conv = at_add_conv2d(m, a, "conv", 3, 3, 1, 1, false);
    int bn = at_add_batchnorm2d(m, conv, "bn");
    int sum = at_add_add(m, conv, bn);
    int pool = at_add_maxpool2d(m, sum, 2, 2);
    CHECK_EQ_INT(at_add_shared(m, b, 0), AT_ERR_ARG);       /* the input */
    CHECK_EQ_INT(at_add_shared(m, b, 99), AT_ERR_ARG);      /* no such node */
    CHECK_EQ_INT(at_add_shared(m, conv, bn), AT_ERR_ARG);   /* running statistics */
    CHECK_EQ_INT(at_add_shared(m, conv, sum), AT_ERR_ARG);  /* two inputs */
    CHECK_EQ_INT(at_add_shared(m, 0, conv), AT_ERR_SHAPE);  /* 4 channels, not 2 */
    at_model_free(m);

    /* a parameterless layer can be shared, and so can a shared node (its source's layer) */
    CHECK_OK(at_model_begin(&m, 4, 6, 6, &err), &err);
    REQUIRE(m);
    a = at_add_slice(m, 0, 0, 2);
    b = at_add_slice(m, 0, 2, 2);
    conv = at_add_conv2d(m, a, "conv", 3, 3, 1, 1, false);
    int again = at_add_shared(m, b, conv);
    int third = at_add_shared(m, a, again);
    pool = at_add_maxpool2d(m, conv, 2, 2);
    int pooled = at_add_shared(m, third, pool);
    CHECK(again > 0 && third > again && pooled > pool);
    at_add_linear(m, at_add_flatten(m, pooled), "fc", 2, false);
    CHECK_OK(at_model_finish(m, 1, &err), &err);
    CHECK_EQ_INT(at_model_tensor_count(m), 2);
    at_model_free(m);

    /* the first refusal is the build error at_model_finish reports */
    CHECK_OK(at_model_begin(&m, 2, 6, 6, &err), &err);
    REQUIRE(m);
    bn = at_add_batchnorm2d(m, 0, "bn");
    CHECK_EQ_INT(at_add_shared(m, bn, bn), AT_ERR_ARG);
    at_add_flatten(m, bn);
    CHECK_EQ_INT(at_model_finish(m, 1, &err), AT_ERR_ARG);
    at_model_free(m);
}

TEST_MAIN(TEST_ENTRY(shared_weight_gradients_sum_over_uses),
          TEST_ENTRY(shared_nodes_declare_nothing_and_draw_nothing),
          TEST_ENTRY(shared_results_do_not_depend_on_threads_or_memory_plan),
          TEST_ENTRY(what_cannot_be_shared_is_refused))
