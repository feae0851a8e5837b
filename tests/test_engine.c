/* test_engine.c: what the methods rely on beyond correct gradients: thread-count independence,
 * backward flags, accumulation, batch-norm modes, several live passes, perturbation hooks and
 * injected gradients. */
#include "test.h"

#include "advtrain.h"
#include "models/archs.h"

#include <omp.h>
#include <stdlib.h>

static void fill_uniform(float *x, size_t n, uint64_t seed)
{
    at_rng rng;
    at_rng_seed(&rng, seed);
    for (size_t i = 0; i < n; i++)
        x[i] = (float)at_rng_uniform(&rng);
}

/* widths {8, 16, 16, 16}, or with `direct` {32, 32, 64, 32}: multiples of 32, so the
 * convolutions take the direct kernels where the processor has them */
static at_model *preact_of_width(uint64_t seed, bool direct)
{
    at_model *m = NULL;
    at_error err;
    CHECK_OK(at_model_begin(&m, 3, 32, 32, &err), &err);
    static const int narrow[4] = {8, 16, 16, 16}, wide[4] = {32, 32, 64, 32};
    CHECK(at_preact_resnet_build(m, 0, direct ? wide : narrow, 10) > 0);
    CHECK_OK(at_model_finish(m, seed, &err), &err);
    return m;
}

static at_model *narrow_preact(uint64_t seed) { return preact_of_width(seed, false); }

/* One forward (BN train) + CE backward of 20 examples; copies out logits, input grad, weight
 * grads and running statistics. */
typedef struct step_result {
    float *logits, *dx, *dw, *running;
    size_t n_params;
} step_result;

static void run_step(at_model *m, at_pass *p, const float *x, const int32_t *y, int n, step_result *r)
{
    size_t n_params;
    at_model_params(m, &n_params);
    float dlogits[20 * 10];
    at_model_zero_grad(m);
    at_forward(p, x, n, AT_BN_TRAIN);
    at_loss_cross_entropy(at_pass_logits(p), n, 10, &(at_ce_target){.labels = y}, NULL, dlogits);
    at_backward(p, dlogits, AT_GRAD_INPUT | AT_GRAD_WEIGHTS);
    r->n_params = n_params;
    r->logits = malloc((size_t)n * 10 * sizeof(float));
    r->dx = malloc((size_t)n * 3 * 32 * 32 * sizeof(float));
    r->dw = malloc(n_params * sizeof(float));
    memcpy(r->logits, at_pass_logits(p), (size_t)n * 10 * sizeof(float));
    memcpy(r->dx, at_pass_input_grad(p), (size_t)n * 3 * 32 * 32 * sizeof(float));
    memcpy(r->dw, at_model_grads(m, NULL), n_params * sizeof(float));
    at_tensor_info rv = at_model_tensor(m, at_model_find_tensor(m, "layer3.1.bn2.running_var"));
    r->running = malloc(rv.numel * sizeof(float));
    memcpy(r->running, rv.data, rv.numel * sizeof(float));
}

static void free_step(step_result *r)
{
    free(r->logits);
    free(r->dx);
    free(r->dw);
    free(r->running);
}

static void check_thread_count_independence(bool direct)
{
    const int n = 20;
    float *x = malloc((size_t)n * 3 * 32 * 32 * sizeof(float));
    int32_t y[20];
    fill_uniform(x, (size_t)n * 3 * 32 * 32, 1);
    for (int i = 0; i < n; i++)
        y[i] = i % 10;
    step_result r[3];
    int threads[3] = {1, 2, 3};
    int saved = omp_get_max_threads();
    for (int t = 0; t < 3; t++) {
        omp_set_num_threads(threads[t]);
        at_model *m = preact_of_width(5, direct);
        at_pass *p = NULL;
        at_error err;
        CHECK_OK(at_pass_create(&p, m, n, 0, &err), &err);
        run_step(m, p, x, y, n, &r[t]);
        at_pass_free(p);
        at_model_free(m);
    }
    omp_set_num_threads(saved);
    for (int t = 1; t < 3; t++) {
        CHECK(memcmp(r[0].logits, r[t].logits, (size_t)n * 10 * sizeof(float)) == 0);
        CHECK(memcmp(r[0].dx, r[t].dx, (size_t)n * 3 * 32 * 32 * sizeof(float)) == 0);
        CHECK(memcmp(r[0].dw, r[t].dw, r[0].n_params * sizeof(float)) == 0);
        CHECK(memcmp(r[0].running, r[t].running, 16 * sizeof(float)) == 0);
    }
    for (int t = 0; t < 3; t++)
        free_step(&r[t]);
    free(x);
}

TEST(results_do_not_depend_on_thread_count)
{
    check_thread_count_independence(false);
    check_thread_count_independence(true);
}

TEST(backward_flags_select_what_is_computed)
{
    at_model *m = narrow_preact(2);
    REQUIRE(m);
    at_pass *p = NULL;
    at_error err;
    const int n = 4;
    CHECK_OK(at_pass_create(&p, m, n, 0, &err), &err);
    float x[4 * 3 * 32 * 32], dlogits[40];
    fill_uniform(x, sizeof x / sizeof x[0], 3);
    fill_uniform(dlogits, 40, 4);
    size_t np;
    float *grads = at_model_grads(m, &np);
    float *both_dw = malloc(np * sizeof(float));
    static float both_dx[4 * 3 * 32 * 32];

    at_model_zero_grad(m);
    at_forward(p, x, n, AT_BN_TRAIN);
    CHECK_OK(at_backward(p, dlogits, AT_GRAD_INPUT | AT_GRAD_WEIGHTS), NULL);
    memcpy(both_dw, grads, np * sizeof(float));
    memcpy(both_dx, at_pass_input_grad(p), sizeof both_dx);

    /* input only: same input gradient, weight gradients untouched */
    at_model_zero_grad(m);
    CHECK_OK(at_backward(p, dlogits, AT_GRAD_INPUT), NULL);
    CHECK(memcmp(both_dx, at_pass_input_grad(p), sizeof both_dx) == 0);
    size_t nonzero = 0;
    for (size_t i = 0; i < np; i++)
        nonzero += grads[i] != 0.0f;
    CHECK_EQ_INT(nonzero, 0);

    /* weights only: same weight gradients; no input gradient is produced */
    at_model_zero_grad(m);
    CHECK_OK(at_backward(p, dlogits, AT_GRAD_WEIGHTS), NULL);
    CHECK(memcmp(both_dw, grads, np * sizeof(float)) == 0);
    nonzero = 0;
    for (size_t i = 0; i < sizeof both_dx / sizeof both_dx[0]; i++)
        nonzero += at_pass_input_grad(p)[i] != 0.0f;
    CHECK_EQ_INT(nonzero, 0);

    /* weight gradients accumulate until zeroed */
    CHECK_OK(at_backward(p, dlogits, AT_GRAD_WEIGHTS), NULL);
    for (size_t i = 0; i < np; i += 97)
        CHECK_CLOSE(grads[i], 2.0f * both_dw[i], 1e-7, 1e-5);

    CHECK_EQ_INT(at_backward(p, dlogits, 0), AT_ERR_ARG);
    CHECK_EQ_INT(at_forward(p, x, n + 1, AT_BN_TRAIN), AT_ERR_ARG);
    CHECK_EQ_INT(at_forward(p, x, 0, AT_BN_TRAIN), AT_ERR_ARG);
    free(both_dw);
    at_pass_free(p);
    at_model_free(m);
}

TEST(batchnorm_modes_and_running_statistics)
{
    at_model *m = narrow_preact(3);
    REQUIRE(m);
    at_pass *p = NULL;
    at_error err;
    CHECK_OK(at_pass_create(&p, m, 8, 0, &err), &err);
    float x[8 * 3 * 32 * 32];
    fill_uniform(x, sizeof x / sizeof x[0], 5);
    at_tensor_info mean = at_model_tensor(m, at_model_find_tensor(m, "layer1.0.bn2.running_mean"));
    at_tensor_info count = at_model_tensor(m, at_model_find_tensor(m, "layer1.0.bn2.num_batches_tracked"));
    REQUIRE(mean.data && count.data_i64);
    float before = mean.data[0];

    at_forward(p, x, 8, AT_BN_EVAL);
    CHECK(mean.data[0] == before && *count.data_i64 == 0);
    float eval_logit = at_pass_logits(p)[0];
    at_forward(p, x, 8, AT_BN_BATCH_STATS);
    CHECK(mean.data[0] == before && *count.data_i64 == 0);
    float batch_logit = at_pass_logits(p)[0];
    CHECK(eval_logit != batch_logit);
    at_forward(p, x, 8, AT_BN_TRAIN);
    CHECK(mean.data[0] != before && *count.data_i64 == 1);
    CHECK(at_pass_logits(p)[0] == batch_logit); /* same statistics as batch-stats mode */
    CHECK_EQ_INT(at_pass_bn_mode(p), AT_BN_TRAIN);
    /* a smaller batch in the same pass */
    at_forward(p, x, 3, AT_BN_EVAL);
    CHECK_EQ_INT(at_pass_batch(p), 3);
    at_pass_free(p);
    at_model_free(m);
}

TEST(two_live_passes_share_weights_and_sum_gradients)
{
    at_model *m = narrow_preact(4);
    REQUIRE(m);
    at_pass *a = NULL, *b = NULL;
    at_error err;
    CHECK_OK(at_pass_create(&a, m, 4, 0, &err), &err);
    CHECK_OK(at_pass_create(&b, m, 4, 0, &err), &err);
    float x1[4 * 3 * 32 * 32], x2[4 * 3 * 32 * 32], d[40];
    fill_uniform(x1, sizeof x1 / sizeof x1[0], 6);
    fill_uniform(x2, sizeof x2 / sizeof x2[0], 7);
    fill_uniform(d, 40, 8);
    size_t np;
    float *grads = at_model_grads(m, &np);
    float *ga = malloc(np * sizeof(float)), *gb = malloc(np * sizeof(float));

    at_model_zero_grad(m);
    at_forward(a, x1, 4, AT_BN_EVAL);
    at_backward(a, d, AT_GRAD_WEIGHTS);
    memcpy(ga, grads, np * sizeof(float));
    at_model_zero_grad(m);
    at_forward(b, x2, 4, AT_BN_EVAL);
    at_backward(b, d, AT_GRAD_WEIGHTS);
    memcpy(gb, grads, np * sizeof(float));

    /* both forwards first, then both backwards: the activations of a survived b's forward */
    at_model_zero_grad(m);
    at_forward(a, x1, 4, AT_BN_EVAL);
    at_forward(b, x2, 4, AT_BN_EVAL);
    at_backward(a, d, AT_GRAD_WEIGHTS);
    at_backward(b, d, AT_GRAD_WEIGHTS);
    for (size_t i = 0; i < np; i += 31)
        CHECK_CLOSE(grads[i], ga[i] + gb[i], 1e-7, 1e-5);
    free(ga);
    free(gb);
    at_pass_free(a);
    at_pass_free(b);
    at_model_free(m);
}

/* Loss = sum of logits weighted by d; its derivative w.r.t. a perturbation added at a hidden
 * node is that node's gradient after backward (checked by central differences in float). */
TEST(perturbation_hook_and_hidden_gradients)
{
    at_model *m = narrow_preact(5);
    REQUIRE(m);
    at_pass *p = NULL;
    at_error err;
    CHECK_OK(at_pass_create(&p, m, 2, AT_PASS_KEEP_ALL, &err), &err);
    float x[2 * 3 * 32 * 32], d[20];
    fill_uniform(x, sizeof x / sizeof x[0], 9);
    fill_uniform(d, 20, 10);
    const int node = 12; /* a hidden node inside layer1 */
    int c, h, w;
    at_model_node_shape(m, node, &c, &h, &w);
    const size_t count = (size_t)2 * c * h * w;
    float *delta = calloc(count, sizeof(float));
    float *grad = malloc(count * sizeof(float));

    at_forward(p, x, 2, AT_BN_EVAL);
    float clean[20];
    memcpy(clean, at_pass_logits(p), sizeof clean);
    at_backward(p, d, AT_GRAD_INPUT);
    memcpy(grad, at_pass_grad(p, node), count * sizeof(float));

    CHECK_OK(at_pass_set_perturbation(p, node, delta), NULL);
    for (int t = 0; t < 8; t++) {
        size_t j = (size_t)(t * 977) % count;
        double lp = 0, lm = 0;
        const float hstep = 1e-2f;
        delta[j] = hstep;
        at_forward(p, x, 2, AT_BN_EVAL);
        for (int i = 0; i < 20; i++)
            lp += (double)d[i] * at_pass_logits(p)[i];
        delta[j] = -hstep;
        at_forward(p, x, 2, AT_BN_EVAL);
        for (int i = 0; i < 20; i++)
            lm += (double)d[i] * at_pass_logits(p)[i];
        delta[j] = 0.0f;
        CHECK_CLOSE(grad[j], (lp - lm) / (2 * hstep), 2e-3, 2e-2);
    }
    /* clearing the hook restores the clean logits exactly */
    CHECK_OK(at_pass_set_perturbation(p, node, NULL), NULL);
    at_forward(p, x, 2, AT_BN_EVAL);
    CHECK(memcmp(clean, at_pass_logits(p), sizeof clean) == 0);

    /* An injected gradient propagates from where it is put: the output of the first residual
     * block is a cut of the graph (everything downstream depends on x only through it), so its
     * gradient after a full backward, injected alone, gives the same input gradient. */
    int cut = 0;
    for (int k = 1; k < at_model_node_count(m) && !cut; k++)
        if (strcmp(at_model_node_kind(m, k), "add") == 0)
            cut = k;
    REQUIRE(cut > 0);
    at_model_node_shape(m, cut, &c, &h, &w);
    const size_t cut_count = (size_t)2 * c * h * w;
    float *cut_grad = malloc(cut_count * sizeof(float));
    static float dx_full[2 * 3 * 32 * 32], dx_hidden[2 * 3 * 32 * 32];
    at_backward(p, d, AT_GRAD_INPUT);
    memcpy(dx_full, at_pass_input_grad(p), sizeof dx_full);
    memcpy(cut_grad, at_pass_grad(p, cut), cut_count * sizeof(float));
    at_backward_begin(p);
    memcpy(at_pass_grad(p, cut), cut_grad, cut_count * sizeof(float));
    CHECK_OK(at_backward_run(p, AT_GRAD_INPUT), NULL);
    memcpy(dx_hidden, at_pass_input_grad(p), sizeof dx_hidden);
    double max_err = 0.0, scale = 0.0;
    for (size_t i = 0; i < sizeof dx_full / sizeof dx_full[0]; i++) {
        double e = fabs(dx_full[i] - dx_hidden[i]);
        max_err = e > max_err ? e : max_err;
        scale = fabs(dx_full[i]) > scale ? fabs(dx_full[i]) : scale;
    }
    CHECK(scale > 0.0);
    CHECK(max_err == 0.0);
    free(cut_grad);
    free(delta);
    free(grad);
    at_pass_free(p);
    at_model_free(m);
}

TEST(forward_only_pass_refuses_backward)
{
    at_model *m = narrow_preact(6);
    REQUIRE(m);
    at_pass *p = NULL;
    at_error err;
    CHECK_OK(at_pass_create(&p, m, 2, AT_PASS_FORWARD_ONLY, &err), &err);
    float x[2 * 3 * 32 * 32] = {0}, d[20] = {0};
    CHECK_OK(at_forward(p, x, 2, AT_BN_EVAL), NULL);
    CHECK_EQ_INT(at_backward(p, d, AT_GRAD_INPUT), AT_ERR_STATE);
    at_pass_free(p);
    at_pass *q = NULL;
    CHECK_OK(at_pass_create(&q, m, 2, 0, &err), &err);
    CHECK_EQ_INT(at_backward(q, d, AT_GRAD_INPUT), AT_ERR_STATE); /* before any forward */
    at_pass_free(q);
    CHECK_EQ_INT(at_pass_create(&q, m, 0, 0, &err), AT_ERR_ARG);
    at_model_free(m);
}

/* Without AT_PASS_KEEP_ALL hidden outputs and gradients share memory: they are not handed out,
 * and the shared plan gives the same results as keeping everything. */
TEST(shared_memory_plan_gives_the_same_results)
{
    at_model *m = narrow_preact(7);
    REQUIRE(m);
    at_pass *shared = NULL, *kept = NULL, *attack = NULL;
    at_error err;
    CHECK_OK(at_pass_create(&shared, m, 4, 0, &err), &err);
    CHECK_OK(at_pass_create(&kept, m, 4, AT_PASS_KEEP_ALL, &err), &err);
    CHECK_OK(at_pass_create(&attack, m, 4, AT_PASS_NO_WEIGHT_GRADS, &err), &err);
    float x[4 * 3 * 32 * 32], d[40];
    fill_uniform(x, sizeof x / sizeof x[0], 21);
    fill_uniform(d, 40, 22);
    size_t np;
    float *grads = at_model_grads(m, &np);
    float *g1 = malloc(np * sizeof(float));
    static float dx1[4 * 3 * 32 * 32];
    at_model_zero_grad(m);
    at_forward(shared, x, 4, AT_BN_EVAL);
    at_backward(shared, d, AT_GRAD_INPUT | AT_GRAD_WEIGHTS);
    memcpy(g1, grads, np * sizeof(float));
    memcpy(dx1, at_pass_input_grad(shared), sizeof dx1);
    at_model_zero_grad(m);
    at_forward(kept, x, 4, AT_BN_EVAL);
    at_backward(kept, d, AT_GRAD_INPUT | AT_GRAD_WEIGHTS);
    CHECK(memcmp(g1, grads, np * sizeof(float)) == 0);
    CHECK(memcmp(dx1, at_pass_input_grad(kept), sizeof dx1) == 0);
    at_forward(attack, x, 4, AT_BN_EVAL);
    CHECK_OK(at_backward(attack, d, AT_GRAD_INPUT), NULL);
    CHECK(memcmp(dx1, at_pass_input_grad(attack), sizeof dx1) == 0);
    CHECK_EQ_INT(at_backward(attack, d, AT_GRAD_WEIGHTS), AT_ERR_ARG);
    CHECK(at_pass_grad(shared, 5) == NULL && at_pass_grad(kept, 5) != NULL);
    CHECK(at_pass_grad(shared, 0) != NULL && at_pass_activation(shared, 0) != NULL);
    free(g1);
    at_pass_free(shared);
    at_pass_free(kept);
    at_pass_free(attack);
    at_model_free(m);
}

/* SmallCNN's conv -> ReLU pairs run fused in ordinary passes (the convolution applies the ReLU
 * and its backward) and apart in AT_PASS_KEEP_ALL passes, or when the convolution's own output is
 * perturbed: all three give the same bits. */
typedef struct smallcnn_step {
    float logits[6 * 10], dx[6 * 28 * 28];
    float *dw;
} smallcnn_step;

static void run_smallcnn_step(at_model *m, unsigned flags, const float *delta, smallcnn_step *r)
{
    at_pass *p = NULL;
    at_error err;
    CHECK_OK(at_pass_create(&p, m, 6, flags, &err), &err);
    float x[6 * 28 * 28], d[6 * 10];
    fill_uniform(x, sizeof x / sizeof x[0], 31);
    fill_uniform(d, sizeof d / sizeof d[0], 32);
    if (delta)
        at_pass_set_perturbation(p, 1, delta); /* conv1's output */
    size_t np;
    float *grads = at_model_grads(m, &np);
    at_model_zero_grad(m);
    CHECK_OK(at_forward(p, x, 6, AT_BN_TRAIN), NULL);
    CHECK_OK(at_backward(p, d, AT_GRAD_INPUT | AT_GRAD_WEIGHTS), NULL);
    memcpy(r->logits, at_pass_logits(p), sizeof r->logits);
    memcpy(r->dx, at_pass_input_grad(p), sizeof r->dx);
    r->dw = malloc(np * sizeof(float));
    memcpy(r->dw, grads, np * sizeof(float));
    at_pass_free(p);
}

TEST(fused_relu_gives_the_same_results)
{
    at_model *m = NULL;
    at_error err;
    CHECK_OK(at_model_create(&m, "smallcnn", NULL, &err), &err);
    REQUIRE(m);
    size_t np;
    at_model_params(m, &np);
    float *w = at_model_params(m, &np);
    fill_uniform(w, np, 33); /* no zero last layer: every gradient is non-trivial */
    for (size_t i = 0; i < np; i++)
        w[i] = (w[i] - 0.5f) * 0.4f;
    static float zero[6 * 32 * 26 * 26];
    smallcnn_step fused, apart, perturbed;
    run_smallcnn_step(m, 0, NULL, &fused);
    run_smallcnn_step(m, AT_PASS_KEEP_ALL, NULL, &apart);
    run_smallcnn_step(m, 0, zero, &perturbed);
    CHECK(memcmp(fused.logits, apart.logits, sizeof fused.logits) == 0);
    CHECK(memcmp(fused.dx, apart.dx, sizeof fused.dx) == 0);
    CHECK(memcmp(fused.dw, apart.dw, np * sizeof(float)) == 0);
    CHECK(memcmp(fused.logits, perturbed.logits, sizeof fused.logits) == 0);
    CHECK(memcmp(fused.dx, perturbed.dx, sizeof fused.dx) == 0);
    CHECK(memcmp(fused.dw, perturbed.dw, np * sizeof(float)) == 0);
    at_pass *forward_only = NULL; /* its buffers are recycled: none may be read while written */
    CHECK_OK(at_pass_create(&forward_only, m, 6, AT_PASS_FORWARD_ONLY, &err), &err);
    float x[6 * 28 * 28];
    fill_uniform(x, sizeof x / sizeof x[0], 31);
    CHECK_OK(at_forward(forward_only, x, 6, AT_BN_TRAIN), NULL);
    CHECK(memcmp(fused.logits, at_pass_logits(forward_only), sizeof fused.logits) == 0);
    at_pass_free(forward_only);
    int nonzero = 0;
    for (size_t i = 0; i < np; i++)
        nonzero += fused.dw[i] != 0.0f;
    CHECK(nonzero > (int)(np / 4)); /* the comparison is not between zeros */
    free(fused.dw);
    free(apart.dw);
    free(perturbed.dw);
    at_model_free(m);
}

TEST_MAIN(TEST_ENTRY(shared_memory_plan_gives_the_same_results),
          TEST_ENTRY(fused_relu_gives_the_same_results),
          TEST_ENTRY(results_do_not_depend_on_thread_count),
          TEST_ENTRY(backward_flags_select_what_is_computed),
          TEST_ENTRY(batchnorm_modes_and_running_statistics),
          TEST_ENTRY(two_live_passes_share_weights_and_sum_gradients),
          TEST_ENTRY(perturbation_hook_and_hidden_gradients),
          TEST_ENTRY(forward_only_pass_refuses_backward))
