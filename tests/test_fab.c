/* test_fab.c: the targeted FAB attack (FAB-T). Returned points stay within eps and in [0,1], and
 * every point it evaluates is in [0,1] (FAB is a minimum-norm attack: evaluated points may lie
 * beyond eps); the input is not modified; on a linear model, where the linearisation is exact, it
 * finds the closed-form minimal perturbation to its target, and returns the clean point when eps
 * is below the minimal perturbation; it fools a weak random model; seeds reproduce and an
 * example's result does not depend on its batch. */
#include "test.h"
#include "util/fixtures.h"

#include "advtrain.h"

#include <stdlib.h>

static double stat_norm(const at_attack_stats *s, at_norm norm)
{
    return norm == AT_NORM_LINF ? s->max_linf : norm == AT_NORM_L2 ? s->max_l2 : s->max_l1;
}

TEST(returned_points_stay_in_the_threat_model)
{
    enum { N = 6, D = 64 };
    at_model *m = fixture_model("mlp-32", 1, 8, 10, 3);
    REQUIRE(m);
    float x[N * D], x_copy[N * D], adv[N * D];
    int32_t y[N];
    uint64_t seeds[N];
    fixture_images(x, N * D, 1, 0.0f, 1.0f);
    fixture_predict(m, x, N, y);
    at_attack_seeds(7, 0, N, seeds);
    const at_norm norms[3] = {AT_NORM_LINF, AT_NORM_L2, AT_NORM_L1};
    const float eps[3] = {0.1f, 1.0f, 4.0f};
    for (int q = 0; q < 3; q++) {
        at_attack *atk = NULL;
        at_error err;
        at_attack_options o = {.norm = norms[q], .eps = eps[q], .steps = 15, .restarts = 2};
        CHECK_OK(at_attack_create(&atk, "fab-t", m, N, &o, &err), &err);
        if (!atk)
            continue;
        memcpy(x_copy, x, sizeof x);
        uint8_t fooled[N];
        CHECK_OK(at_attack_run(atk, x, y, NULL, N, seeds, adv, fooled), NULL);
        const at_attack_stats *s = at_attack_get_stats(atk);
        double bound = fixture_budget(norms[q], eps[q]);
        if (stat_norm(s, norms[q]) > bound)
            TEST_FAIL_("%s: perturbation %.9g > eps %g", at_norm_name(norms[q]),
                       stat_norm(s, norms[q]), eps[q]);
        CHECK_EQ_INT(s->out_of_range + s->eval_out_of_range + s->nonfinite_outputs, 0);
        CHECK(memcmp(x, x_copy, sizeof x) == 0);
        CHECK_EQ_INT(s->points, N);
        CHECK(s->gradient_evals >= N * 15);
        CHECK(s->fooled > 0);
        for (int i = 0; i < N; i++) {
            CHECK(fixture_distance(norms[q], adv + i * D, x + i * D, D) <= bound);
            /* a point is either fooled or given back clean */
            CHECK(fooled[i] || memcmp(adv + i * D, x + i * D, D * sizeof(float)) == 0);
        }
        for (int j = 0; j < N * D; j++)
            CHECK(adv[j] >= 0.0f && adv[j] <= 1.0f);
        at_attack_free(atk);
    }
    at_model_free(m);
}

/* The smallest perturbation (Lp norm) of x that makes u.(x + delta) + f0 >= 0 inside [0,1],
 * written independently of the attack: greedy for L1, bisection on the multiplier otherwise
 * (Linf: delta_j = sign(u_j) min(lambda, room_j); L2: delta_j = u_j min(lambda, r_j)). */
static double min_perturbation(at_norm norm, const double *u, double f0, const float *x, int d)
{
    if (f0 >= 0.0)
        return 0.0;
    double need = -f0, room[256], gain[256];
    for (int j = 0; j < d; j++) {
        room[j] = u[j] > 0 ? 1.0 - x[j] : x[j];
        gain[j] = fabs(u[j]);
    }
    if (norm == AT_NORM_L1) {
        double dist = 0.0;
        bool used[256] = {false};
        while (need > 0.0) {
            int best = -1;
            for (int j = 0; j < d; j++)
                if (!used[j] && (best < 0 || gain[j] > gain[best]))
                    best = j;
            if (best < 0 || gain[best] == 0.0)
                return INFINITY;
            used[best] = true;
            double move = fmin(room[best], need / gain[best]);
            dist += move;
            need -= move * gain[best];
            if (move < room[best])
                break;
        }
        return dist;
    }
    double lo = 0.0, hi = norm == AT_NORM_LINF ? 1.0 : 1e6;
    for (int it = 0; it < 200; it++) {
        double lambda = 0.5 * (lo + hi), got = 0.0;
        for (int j = 0; j < d; j++)
            got += norm == AT_NORM_LINF ? gain[j] * fmin(lambda, room[j])
                                        : gain[j] * fmin(lambda * gain[j], room[j]);
        if (got >= need)
            hi = lambda;
        else
            lo = lambda;
    }
    if (norm == AT_NORM_LINF)
        return hi;
    double l2 = 0.0;
    for (int j = 0; j < d; j++) {
        double move = fmin(hi * gain[j], room[j]);
        l2 += move * move;
    }
    return sqrt(l2);
}

/* Multinomial logistic regression: z = W x + b is linear, so FAB's linearisation is exact. FAB
 * converges to the boundary from outside: in one dimension the iterate after a success is
 * p' = 1 + 0.1 u / (1 + u) with u = 1 - 0.9 p (distances relative to the minimum), i.e. 1.05,
 * 1.0052, 1.0087, ... so the best point lies within 1% of the minimum. Inputs in [0.3, 0.7]
 * keep the box out of the way (except for L1, which moves few coordinates far); inputs with a
 * third of their coordinates at 0 or 1 make the box constraint of the projections matter. */
static void check_linear(bool on_faces)
{
    enum { N = 8, D = 16, K = 3 };
    at_model *m = fixture_model("linear", 1, 4, K, 9);
    REQUIRE(m);
    at_tensor_info w = at_model_tensor(m, at_model_find_tensor(m, "fc.weight"));
    at_tensor_info bias = at_model_tensor(m, at_model_find_tensor(m, "fc.bias"));
    float x[N * D], adv[N * D];
    if (on_faces) {
        fixture_images(x, N * D, 6, -0.3f, 1.3f);
        for (int j = 0; j < N * D; j++)
            x[j] = fminf(fmaxf(x[j], 0.0f), 1.0f);
    } else {
        fixture_images(x, N * D, 4, 0.3f, 0.7f);
    }
    fixture_images(w.data, K * D, 5, -1.0f, 1.0f);
    for (int c = 0; c < K; c++)
        bias.data[c] = 0.0f;
    int32_t y[N];
    fixture_predict(m, x, N, y);
    uint64_t seeds[N];
    at_attack_seeds(3, 0, N, seeds);
    const at_norm norms[3] = {AT_NORM_LINF, AT_NORM_L2, AT_NORM_L1};
    for (int q = 0; q < 3; q++) {
        /* closed forms: to the target (second largest logit) and to any other class */
        double to_target[N], to_any[N], largest = 0.0, smallest = INFINITY;
        for (int i = 0; i < N; i++) {
            double z[K];
            for (int c = 0; c < K; c++) {
                z[c] = 0.0;
                for (int j = 0; j < D; j++)
                    z[c] += (double)w.data[c * D + j] * x[i * D + j];
            }
            int t = -1;
            to_any[i] = INFINITY;
            for (int c = 0; c < K; c++)
                if (c != y[i] && (t < 0 || z[c] > z[t]))
                    t = c;
            for (int c = 0; c < K; c++) {
                if (c == y[i])
                    continue;
                double u[D];
                for (int j = 0; j < D; j++)
                    u[j] = (double)w.data[c * D + j] - w.data[y[i] * D + j];
                double dist = min_perturbation(norms[q], u, z[c] - z[y[i]], x + i * D, D);
                to_any[i] = fmin(to_any[i], dist);
                if (c == t)
                    to_target[i] = dist;
            }
            largest = fmax(largest, to_target[i]);
            smallest = fmin(smallest, to_any[i]);
        }
        /* eps above every minimum: each point is fooled within 1% of its target's minimum */
        at_attack *atk = NULL;
        at_error err;
        at_attack_options o = {.norm = norms[q], .eps = (float)(2.0 * largest), .steps = 20};
        CHECK_OK(at_attack_create(&atk, "fab-t", m, N, &o, &err), &err);
        REQUIRE(atk);
        uint8_t fooled[N];
        CHECK_OK(at_attack_run(atk, x, y, NULL, N, seeds, adv, fooled), NULL);
        for (int i = 0; i < N; i++) {
            double dist = fixture_distance(norms[q], adv + i * D, x + i * D, D);
            CHECK(fooled[i]);
            if (!(dist <= 1.01 * to_target[i] && dist >= to_any[i] * (1.0 - 1e-4)))
                TEST_FAIL_("%s%s example %d: distance %.6g, minimum to the target %.6g, to "
                           "any class %.6g", at_norm_name(norms[q]), on_faces ? " (faces)" : "", i,
                           dist, to_target[i], to_any[i]);
        }
        at_attack_free(atk);
        /* eps below every minimum: nothing is found, the clean points come back */
        o.eps = (float)(0.9 * smallest);
        CHECK_OK(at_attack_create(&atk, "fab-t", m, N, &o, &err), &err);
        REQUIRE(atk);
        CHECK_OK(at_attack_run(atk, x, y, NULL, N, seeds, adv, fooled), NULL);
        CHECK(memcmp(adv, x, sizeof x) == 0);
        CHECK_EQ_INT(at_attack_get_stats(atk)->fooled, 0);
        const at_attack_stats *s = at_attack_get_stats(atk);
        double looked = norms[q] == AT_NORM_LINF ? s->eval_max_linf
                        : norms[q] == AT_NORM_L2 ? s->eval_max_l2 : s->eval_max_l1;
        CHECK(looked > o.eps); /* it searched beyond eps, as a minimum-norm attack does */
        at_attack_free(atk);
    }
    at_model_free(m);
}

TEST(linear_model_reaches_the_minimal_perturbation)
{
    check_linear(false);
    check_linear(true);
}

TEST(a_weak_random_model_is_fooled)
{
    enum { N = 16, D = 64 };
    at_model *m = fixture_model("mlp-32", 1, 8, 10, 11);
    REQUIRE(m);
    float x[N * D], adv[N * D];
    fixture_images(x, N * D, 12, 0.0f, 1.0f);
    int32_t y[N];
    fixture_predict(m, x, N, y);
    uint64_t seeds[N];
    at_attack_seeds(4, 0, N, seeds);
    const at_norm norms[2] = {AT_NORM_LINF, AT_NORM_L2};
    const float eps[2] = {0.15f, 0.8f};
    for (int q = 0; q < 2; q++) {
        at_attack *atk = NULL;
        at_error err;
        at_attack_options o = {.norm = norms[q], .eps = eps[q], .steps = 30};
        CHECK_OK(at_attack_create(&atk, "fab-t", m, N, &o, &err), &err);
        REQUIRE(atk);
        uint8_t fooled[N];
        CHECK_OK(at_attack_run(atk, x, y, NULL, N, seeds, adv, fooled), NULL);
        const at_attack_stats *s = at_attack_get_stats(atk);
        if (s->fooled < N * 7 / 8)
            TEST_FAIL_("%s eps %g: fooled %ld of %d", at_norm_name(norms[q]), eps[q], s->fooled, N);
        CHECK(stat_norm(s, norms[q]) <= fixture_budget(norms[q], eps[q]));
        /* at least as strong as PGD with as many steps */
        at_attack *pgd = NULL;
        CHECK_OK(at_attack_create(&pgd, "pgd", m, N, &o, &err), &err);
        REQUIRE(pgd);
        CHECK_OK(at_attack_run(pgd, x, y, NULL, N, seeds, adv, NULL), NULL);
        CHECK(s->fooled >= at_attack_get_stats(pgd)->fooled);
        at_attack_free(pgd);
        at_attack_free(atk);
    }
    at_model_free(m);
}

/* Same seeds, same result; one example alone equals the same example in a batch (eval BN mode);
 * target labels given to the run do not matter (FAB-T ranks its own targets). */
static void check_reproducible(at_model *m, at_norm norm, float eps, size_t image, int steps)
{
    enum { N = 5 };
    float *x = malloc(N * image * sizeof(float)), *adv = malloc(N * image * sizeof(float));
    float *one = malloc(image * sizeof(float)), *again = malloc(N * image * sizeof(float));
    int32_t y[N], t[N];
    uint64_t seeds[N];
    fixture_images(x, N * image, 3, 0.0f, 1.0f);
    fixture_predict(m, x, N, y);
    for (int i = 0; i < N; i++)
        t[i] = (y[i] + 1) % at_model_num_classes(m);
    at_attack_seeds(11, 100, N, seeds);
    at_attack *atk = NULL;
    at_error err;
    at_attack_options o = {.norm = norm, .eps = eps, .steps = steps, .restarts = 2, .targets = 2};
    CHECK_OK(at_attack_create(&atk, "fab-t", m, N, &o, &err), &err);
    if (!atk)
        goto done;
    CHECK_OK(at_attack_run(atk, x, y, NULL, N, seeds, adv, NULL), NULL);
    for (int i = 0; i < N; i++) {
        CHECK_OK(at_attack_run(atk, x + i * image, y + i, NULL, 1, seeds + i, one, NULL), NULL);
        if (memcmp(one, adv + i * image, image * sizeof(float)) != 0)
            TEST_FAIL_("%s: example %d alone differs from the same example in a batch",
                       at_norm_name(norm), i);
    }
    CHECK_OK(at_attack_run(atk, x, y, t, N, seeds, again, NULL), NULL);
    CHECK(memcmp(again, adv, N * image * sizeof(float)) == 0);
    at_attack_free(atk);
    o.targeted = true;
    CHECK_OK(at_attack_create(&atk, "fab-t", m, N, &o, &err), &err);
    if (!atk)
        goto done;
    CHECK_OK(at_attack_run(atk, x, y, t, N, seeds, again, NULL), NULL);
    CHECK(memcmp(again, adv, N * image * sizeof(float)) == 0);
    at_attack_free(atk);
done:
    free(x);
    free(adv);
    free(one);
    free(again);
}

TEST(seeds_reproduce_and_an_example_does_not_depend_on_its_batch)
{
    at_model *mlp = fixture_model("mlp-24", 1, 8, 10, 5);
    at_model *cnn = fixture_model("smallcnn", 1, 28, 10, 6);
    at_model *wide = fixture_model("mlp-8", 1, 64, 10, 7); /* a batch large enough for threads */
    REQUIRE(mlp && cnn && wide);
    check_reproducible(mlp, AT_NORM_LINF, 0.05f, 64, 8);
    check_reproducible(mlp, AT_NORM_L2, 0.5f, 64, 8);
    check_reproducible(mlp, AT_NORM_L1, 2.0f, 64, 8);
    check_reproducible(cnn, AT_NORM_LINF, 0.03f, 784, 3);
    check_reproducible(wide, AT_NORM_L2, 0.5f, 4096, 4);
    at_model_free(wide);
    at_model_free(mlp);
    at_model_free(cnn);
}

TEST_MAIN(TEST_ENTRY(returned_points_stay_in_the_threat_model),
          TEST_ENTRY(linear_model_reaches_the_minimal_perturbation),
          TEST_ENTRY(a_weak_random_model_is_fooled),
          TEST_ENTRY(seeds_reproduce_and_an_example_does_not_depend_on_its_batch))
