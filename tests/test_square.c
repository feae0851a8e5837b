/* test_square.c: the properties that define the Square attack. Every point it evaluates and
 * returns stays within the budget (Linf <= eps + 1e-6, L2 <= eps (1 + 1e-5)) and inside [0,1]; the
 * input is not modified; it spends at most `queries` forward passes per example and restart and
 * stops spending them once an example is fooled; it breaks a weak model; an example's result does
 * not depend on its batch and the same seed gives the same result; eps = 0 returns the input. */
#include "test.h"
#include "util/fixtures.h"

#include "advtrain.h"

#include <stdlib.h>

/* Runs Square once; returns the attack (for its statistics) or NULL. */
static at_attack *run_square(at_model *m, const at_attack_options *o, const float *x,
                             const int32_t *y, const int32_t *target, int n, uint64_t seed,
                             float *adv, uint8_t *fooled)
{
    at_attack *atk = NULL;
    at_error err;
    CHECK_OK(at_attack_create(&atk, "square", m, n, o, &err), &err);
    if (!atk)
        return NULL;
    uint64_t *seeds = malloc((size_t)n * sizeof *seeds);
    at_attack_seeds(seed, 0, n, seeds);
    CHECK_OK(at_attack_run(atk, x, y, target, n, seeds, adv, fooled), NULL);
    free(seeds);
    return atk;
}

static int count_fooled(const uint8_t *fooled, int n)
{
    int count = 0;
    for (int i = 0; i < n; i++)
        count += fooled[i];
    return count;
}

TEST(square_stays_in_the_threat_model)
{
    enum { N = 6, QUERIES = 60 };
    /* one and three channels (the L2 proposal works per channel); the large L2 budget makes
     * the [0,1] clamp bite */
    const int channels[2] = {1, 3};
    const at_norm norms[3] = {AT_NORM_LINF, AT_NORM_L2, AT_NORM_L2};
    const float eps[3] = {0.05f, 0.5f, 3.0f};
    for (int ci = 0; ci < 2; ci++) {
        const int c = channels[ci], hw = 8;
        const size_t image = (size_t)c * hw * hw;
        at_model *m = fixture_model("mlp-32", c, hw, 10, 3);
        REQUIRE(m);
        float *x = malloc(N * image * sizeof(float)), *x_copy = malloc(N * image * sizeof(float));
        float *adv = malloc(N * image * sizeof(float));
        int32_t y[N];
        fixture_images(x, N * image, 1, 0.0f, 1.0f);
        fixture_predict(m, x, N, y);
        memcpy(x_copy, x, N * image * sizeof(float));
        for (int q = 0; q < 3; q++) {
            at_attack_options o = {.norm = norms[q], .eps = eps[q], .queries = QUERIES};
            uint8_t fooled[N];
            at_attack *atk = run_square(m, &o, x, y, NULL, N, 7, adv, fooled);
            if (!atk)
                continue;
            const at_attack_stats *s = at_attack_get_stats(atk);
            double bound = fixture_budget(norms[q], eps[q]);
            double measured = norms[q] == AT_NORM_LINF ? s->max_linf : s->max_l2;
            double along = norms[q] == AT_NORM_LINF ? s->eval_max_linf : s->eval_max_l2;
            if (measured > bound || along > bound)
                TEST_FAIL_("%d channels %s eps %g: perturbation %.9g (along the way %.9g)", c,
                           at_norm_name(norms[q]), eps[q], measured, along);
            CHECK(measured > 0.0);
            CHECK_EQ_INT(s->out_of_range + s->eval_out_of_range + s->nonfinite_outputs, 0);
            CHECK_EQ_INT(s->gradient_evals, 0);
            CHECK(memcmp(x, x_copy, N * image * sizeof(float)) == 0);
            for (int i = 0; i < N; i++)
                CHECK(fixture_distance(norms[q], adv + i * image, x + i * image, image) <= bound);
            for (size_t j = 0; j < N * image; j++)
                CHECK(adv[j] >= 0.0f && adv[j] <= 1.0f);
            CHECK_EQ_INT(s->points, N);
            /* the best loss of each example never falls within a restart: the mean curve rises
             * (or stays), over one slot per proposal (queries - 2 after the clean check and
             * the start) */
            CHECK_EQ_INT(s->steps, QUERIES - 2);
            for (int t = 1; t <= s->steps; t++) {
                CHECK_EQ_INT(s->loss_count[t], N);
                if (s->loss_sum[t] < s->loss_sum[t - 1] - 1e-9)
                    TEST_FAIL_("%s: mean loss fell at step %d", at_norm_name(norms[q]), t);
            }
            CHECK(s->loss_sum[s->steps] > s->loss_sum[0]);
            at_attack_free(atk);
        }
        free(x);
        free(x_copy);
        free(adv);
        at_model_free(m);
    }
}

TEST(square_counts_its_queries_and_stops_on_success)
{
    enum { N = 8, HW = 8, IMAGE = HW * HW };
    at_model *mlp = fixture_model("mlp-32", 1, HW, 10, 5);
    at_model *lin = fixture_model("linear", 1, HW, 10, 6);
    REQUIRE(mlp && lin);
    float x[N * IMAGE], adv[N * IMAGE];
    int32_t y[N];
    uint8_t fooled[N];
    fixture_images(x, N * IMAGE, 2, 0.0f, 1.0f);
    fixture_predict(mlp, x, N, y);
    /* a small budget: at most `queries` per example (the clean check included), plus the
     * framework's final measurement; restarts get `queries` each */
    const int restarts[2] = {1, 3};
    for (int r = 0; r < 2; r++) {
        at_attack_options o = {.eps = 0.02f, .queries = 40, .restarts = restarts[r]};
        at_attack *atk = run_square(mlp, &o, x, y, NULL, N, 3, adv, fooled);
        REQUIRE(atk);
        const at_attack_stats *s = at_attack_get_stats(atk);
        CHECK(s->forward_evals <= (long)N * (40 * restarts[r] + 1));
        CHECK(s->forward_evals > (long)N * 2);
        at_attack_free(atk);
    }
    /* a huge budget on a linear model: every point falls within a few queries, after which it
     * costs nothing more */
    fixture_predict(lin, x, N, y);
    at_attack_options o = {.eps = 1.0f, .queries = 2000};
    at_attack *atk = run_square(lin, &o, x, y, NULL, N, 4, adv, fooled);
    REQUIRE(atk);
    const at_attack_stats *s = at_attack_get_stats(atk);
    CHECK_EQ_INT(count_fooled(fooled, N), N);
    CHECK_EQ_INT(s->fooled, N);
    if (s->forward_evals > (long)N * 20)
        TEST_FAIL_("%ld forward evaluations for %d easy points", s->forward_evals, N);
    /* the loss curve still spans the whole schedule, at most AT_STATS_MAX_STEPS + 1 slots */
    CHECK_EQ_INT(s->steps, AT_STATS_MAX_STEPS);
    for (int t = 0; t <= s->steps; t++)
        CHECK_EQ_INT(s->loss_count[t], N);
    at_attack_free(atk);
    /* points already misclassified cost the clean check only and come back unchanged */
    int32_t wrong[N];
    for (int i = 0; i < N; i++)
        wrong[i] = (y[i] + 1) % 10;
    atk = run_square(lin, &o, x, wrong, NULL, N, 4, adv, fooled);
    REQUIRE(atk);
    CHECK_EQ_INT(at_attack_get_stats(atk)->forward_evals, 2 * N);
    CHECK(memcmp(adv, x, sizeof x) == 0);
    CHECK_EQ_INT(count_fooled(fooled, N), N);
    at_attack_free(atk);
    at_model_free(mlp);
    at_model_free(lin);
}

TEST(square_breaks_a_weak_model)
{
    enum { N = 20, HW = 8, IMAGE = HW * HW };
    at_model *m = fixture_model("mlp-32", 1, HW, 10, 7);
    REQUIRE(m);
    float x[N * IMAGE], adv[N * IMAGE];
    int32_t y[N], pred[N];
    uint8_t fooled[N];
    fixture_images(x, N * IMAGE, 8, 0.0f, 1.0f);
    fixture_predict(m, x, N, y);
    const at_norm norms[2] = {AT_NORM_LINF, AT_NORM_L2};
    const float eps[2] = {0.1f, 1.0f};
    for (int q = 0; q < 2; q++) {
        at_attack_options o = {.norm = norms[q], .eps = eps[q], .queries = 300};
        at_attack *atk = run_square(m, &o, x, y, NULL, N, 9, adv, fooled);
        REQUIRE(atk);
        int broken = count_fooled(fooled, N);
        if (broken < N * 8 / 10)
            TEST_FAIL_("%s eps %g: fooled only %d of %d", at_norm_name(norms[q]), eps[q], broken,
                       N);
        /* what the attack reports is what the model says */
        fixture_predict(m, adv, N, pred);
        for (int i = 0; i < N; i++)
            CHECK_EQ_INT(pred[i] != y[i], fooled[i]);
        at_attack_free(atk);
    }
    at_model_free(m);
}

TEST(targeted_square_reaches_its_targets)
{
    enum { N = 6, IMAGE = 16 };
    at_model *m = fixture_model("linear", 1, 4, 5, 2);
    REQUIRE(m);
    float x[N * IMAGE], adv[N * IMAGE];
    fixture_images(x, N * IMAGE, 8, 0.0f, 1.0f);
    int32_t y[N], t[N], pred[N];
    fixture_predict(m, x, N, y);
    for (int i = 0; i < N; i++)
        t[i] = (y[i] + 1 + i % 3) % 5;
    at_attack_options o = {.eps = 1.0f, .queries = 500, .targeted = true};
    at_attack *atk = run_square(m, &o, x, y, t, N, 5, adv, NULL);
    REQUIRE(atk);
    fixture_predict(m, adv, N, pred);
    for (int i = 0; i < N; i++)
        CHECK_EQ_INT(pred[i], t[i]);
    at_attack_free(atk);
    at_model_free(m);
}

/* The result for one example equals the same example inside a batch (eval BN mode); the same
 * seeds give the same result, other seeds another. */
static void check_batch_independence(at_model *m, at_norm norm, float eps, int queries, int c,
                                     int hw)
{
    enum { N = 5 };
    const size_t image = (size_t)c * hw * hw;
    float *x = malloc(N * image * sizeof(float)), *adv = malloc(N * image * sizeof(float));
    float *one = malloc(image * sizeof(float)), *again = malloc(N * image * sizeof(float));
    int32_t y[N];
    uint64_t seeds[N], other[N];
    fixture_images(x, N * image, 3, 0.0f, 1.0f);
    fixture_predict(m, x, N, y);
    at_attack_seeds(11, 100, N, seeds);
    at_attack_seeds(12, 100, N, other);
    at_attack *atk = NULL;
    at_error err;
    at_attack_options o = {.norm = norm, .eps = eps, .queries = queries, .restarts = 2};
    CHECK_OK(at_attack_create(&atk, "square", m, N, &o, &err), &err);
    if (!atk)
        goto done;
    CHECK_OK(at_attack_run(atk, x, y, NULL, N, seeds, adv, NULL), NULL);
    for (int i = 0; i < N; i++) {
        CHECK_OK(at_attack_run(atk, x + i * image, y + i, NULL, 1, seeds + i, one, NULL), NULL);
        if (memcmp(one, adv + i * image, image * sizeof(float)) != 0)
            TEST_FAIL_("%s: example %d alone differs from the same example in a batch",
                       at_norm_name(norm), i);
    }
    CHECK_OK(at_attack_run(atk, x, y, NULL, N, seeds, again, NULL), NULL);
    CHECK(memcmp(again, adv, N * image * sizeof(float)) == 0);
    CHECK_OK(at_attack_run(atk, x, y, NULL, N, other, again, NULL), NULL);
    CHECK(memcmp(again, adv, N * image * sizeof(float)) != 0);
    at_attack_free(atk);
done:
    free(x);
    free(adv);
    free(one);
    free(again);
}

TEST(an_example_does_not_depend_on_its_batch_and_seeds_reproduce)
{
    at_model *mlp = fixture_model("mlp-24", 3, 8, 10, 5);
    at_model *cnn = fixture_model("smallcnn", 1, 28, 10, 6);
    REQUIRE(mlp && cnn);
    /* SmallCNN starts with a zero last layer (all logits tie): give it one that tells classes
     * apart, so proposals are accepted and rejected */
    at_tensor_info head = at_model_tensor(cnn, at_model_find_tensor(cnn, "classifier.fc3.weight"));
    fixture_images(head.data, head.numel, 13, -0.3f, 0.3f);
    /* budgets small enough that some points survive the first restart and are searched again */
    check_batch_independence(mlp, AT_NORM_LINF, 0.03f, 30, 3, 8);
    check_batch_independence(mlp, AT_NORM_L2, 0.3f, 30, 3, 8);
    check_batch_independence(cnn, AT_NORM_LINF, 0.05f, 10, 1, 28);
    check_batch_independence(cnn, AT_NORM_L2, 1.0f, 10, 1, 28);
    at_model_free(mlp);
    at_model_free(cnn);
}

TEST(zero_budget_returns_the_input)
{
    enum { N = 4, IMAGE = 36 };
    at_model *m = fixture_model("mlp-16", 1, 6, 10, 4);
    REQUIRE(m);
    float x[N * IMAGE], adv[N * IMAGE];
    int32_t y[N];
    fixture_images(x, N * IMAGE, 2, 0.0f, 1.0f);
    fixture_predict(m, x, N, y);
    const at_norm norms[2] = {AT_NORM_LINF, AT_NORM_L2};
    for (int q = 0; q < 2; q++) {
        at_attack_options o = {.norm = norms[q], .eps = 0.0f};
        at_attack *atk = run_square(m, &o, x, y, NULL, N, 1, adv, NULL);
        REQUIRE(atk);
        CHECK(memcmp(x, adv, sizeof x) == 0);
        at_attack_free(atk);
    }
    at_model_free(m);
}

TEST(square_options)
{
    at_model *m = fixture_model("linear", 1, 4, 10, 1);
    REQUIRE(m);
    at_attack *atk = NULL;
    at_error err;
    CHECK_EQ_INT(at_attack_create(&atk, "square", m, 4,
                                  &(at_attack_options){.norm = AT_NORM_L1, .eps = 1.0f}, &err),
                 AT_ERR_ARG);
    CHECK(atk == NULL);
    CHECK_OK(at_attack_create(&atk, "square", m, 4, &(at_attack_options){.eps = 0.1f}, &err), &err);
    REQUIRE(atk);
    CHECK_EQ_INT(at_attack_get_options(atk)->queries, 5000);
    CHECK_CLOSE(at_attack_get_options(atk)->p_init, 0.8, 1e-6, 0);
    CHECK_EQ_INT(at_attack_get_options(atk)->loss, AT_ATTACK_LOSS_CW);
    at_attack_free(atk);
    /* listed, with a description */
    bool listed = false;
    const char *name, *description;
    for (int i = 0; at_attack_info(i, &name, &description); i++)
        if (strcmp(name, "square") == 0)
            listed = strstr(description, "Andriushchenko") != NULL;
    CHECK(listed);
    at_model_free(m);
}

TEST_MAIN(TEST_ENTRY(square_stays_in_the_threat_model),
          TEST_ENTRY(square_counts_its_queries_and_stops_on_success),
          TEST_ENTRY(square_breaks_a_weak_model), TEST_ENTRY(targeted_square_reaches_its_targets),
          TEST_ENTRY(an_example_does_not_depend_on_its_batch_and_seeds_reproduce),
          TEST_ENTRY(zero_budget_returns_the_input), TEST_ENTRY(square_options))
