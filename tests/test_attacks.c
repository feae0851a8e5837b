/* test_attacks.c: the properties that define each attack. Every point it evaluates and returns
 * stays within the budget (Linf <= eps + 1e-6, L2 and L1 <= eps (1 + 1e-5)) and inside [0,1]; the
 * input is not modified; eps = 0 returns the input; an example's result does not depend on its
 * batch; the same seed gives the same result; the loss rises; on a linear model the closed-form
 * worst case is reached; a gradient-masked model shows zero gradients. */
#include "test.h"
#include "util/fixtures.h"

#include "advtrain.h"
#include "attack/attack.h"

#include <stdlib.h>

static const char *const all_attacks[] = {"fgsm", "pgd", "apgd-ce", "apgd-dlr", "apgd-t"};
#define N_ALL (int)(sizeof all_attacks / sizeof all_attacks[0])

TEST(every_attack_stays_in_the_threat_model_and_raises_the_loss)
{
    const int n = 6, hw = 8;
    const size_t image = (size_t)hw * hw;
    at_model *m = fixture_model("mlp-32", 1, hw, 10, 3);
    REQUIRE(m);
    float x[6 * 64], x_copy[6 * 64], adv[6 * 64];
    int32_t y[6];
    uint64_t seeds[6];
    fixture_images(x, sizeof x / sizeof x[0], 1, 0.0f, 1.0f);
    fixture_predict(m, x, n, y);
    at_attack_seeds(7, 0, n, seeds);
    const at_norm norms[3] = {AT_NORM_LINF, AT_NORM_L2, AT_NORM_L1};
    const float eps[3] = {0.05f, 0.5f, 2.0f};
    for (int a = 0; a < N_ALL; a++)
        for (int q = 0; q < 3; q++) {
            at_attack *atk = NULL;
            at_error err;
            at_attack_options o = {.norm = norms[q], .eps = eps[q], .steps = 15};
            int status = at_attack_create(&atk, all_attacks[a], m, n, &o, &err);
            if (norms[q] == AT_NORM_L1 && a >= 2) { /* APGD is Linf/L2 only: a clear error */
                CHECK_EQ_INT(status, AT_ERR_ARG);
                CHECK(strstr(err.message, "L1") != NULL);
                continue;
            }
            CHECK_OK(status, &err);
            if (!atk)
                continue;
            memcpy(x_copy, x, sizeof x);
            uint8_t fooled[6];
            CHECK_OK(at_attack_run(atk, x, y, NULL, n, seeds, adv, fooled), NULL);
            const at_attack_stats *s = at_attack_get_stats(atk);
            double bound = fixture_budget(norms[q], eps[q]);
            double measured = norms[q] == AT_NORM_LINF ? s->max_linf
                              : norms[q] == AT_NORM_L2 ? s->max_l2 : s->max_l1;
            double along = norms[q] == AT_NORM_LINF ? s->eval_max_linf
                           : norms[q] == AT_NORM_L2 ? s->eval_max_l2 : s->eval_max_l1;
            if (measured > bound || along > bound)
                TEST_FAIL_("%s %s: perturbation %.9g (along the way %.9g) > eps %g", all_attacks[a],
                           at_norm_name(norms[q]), measured, along, eps[q]);
            CHECK(measured > 0.0);
            CHECK_EQ_INT(s->out_of_range + s->eval_out_of_range + s->nonfinite_outputs, 0);
            CHECK(memcmp(x, x_copy, sizeof x) == 0);
            for (int i = 0; i < n; i++)
                CHECK(fixture_distance(norms[q], adv + i * image, x + i * image, image) <= bound);
            for (size_t j = 0; j < sizeof adv / sizeof adv[0]; j++)
                CHECK(adv[j] >= 0.0f && adv[j] <= 1.0f);
            CHECK_EQ_INT(s->points, n);
            CHECK_EQ_INT(s->bn_mode, AT_BN_EVAL);
            /* the mean loss at the end is above the start (FGSM: one step) */
            double first = s->loss_sum[0] / s->loss_count[0];
            double last = s->loss_sum[s->steps] / s->loss_count[s->steps];
            if (!(last > first))
                TEST_FAIL_("%s %s: loss %.6g -> %.6g did not rise", all_attacks[a],
                           at_norm_name(norms[q]), first, last);
            at_attack_free(atk);
        }
    at_model_free(m);
}

TEST(zero_budget_returns_the_input)
{
    const int n = 4;
    at_model *m = fixture_model("mlp-16", 1, 6, 10, 4);
    REQUIRE(m);
    float x[4 * 36], adv[4 * 36];
    int32_t y[4];
    uint64_t seeds[4];
    fixture_images(x, sizeof x / sizeof x[0], 2, 0.0f, 1.0f);
    fixture_predict(m, x, n, y);
    at_attack_seeds(1, 0, n, seeds);
    for (int a = 0; a < N_ALL; a++) {
        at_attack *atk = NULL;
        at_error err;
        CHECK_OK(at_attack_create(&atk, all_attacks[a], m, n, &(at_attack_options){.eps = 0.0f}, &err), &err);
        if (!atk)
            continue;
        CHECK_OK(at_attack_run(atk, x, y, NULL, n, seeds, adv, NULL), NULL);
        CHECK(memcmp(x, adv, sizeof x) == 0);
        at_attack_free(atk);
    }
    at_model_free(m);
}

/* The result for one example equals the same example inside a batch (eval BN mode). */
static void check_batch_independence(at_model *m, const char *attack, at_norm norm, float eps,
                                     int c, int hw)
{
    enum { N = 5 };
    const size_t image = (size_t)c * hw * hw;
    float *x = malloc(N * image * sizeof(float)), *adv = malloc(N * image * sizeof(float));
    float *one = malloc(image * sizeof(float));
    int32_t y[N];
    uint64_t seeds[N];
    fixture_images(x, N * image, 3, 0.0f, 1.0f);
    fixture_predict(m, x, N, y);
    at_attack_seeds(11, 100, N, seeds);
    at_attack *atk = NULL;
    at_error err;
    CHECK_OK(at_attack_create(&atk, attack, m, N, &(at_attack_options){.norm = norm, .eps = eps, .steps = 8}, &err), &err);
    if (!atk)
        goto done;
    CHECK_OK(at_attack_run(atk, x, y, NULL, N, seeds, adv, NULL), NULL);
    for (int i = 0; i < N; i++) {
        CHECK_OK(at_attack_run(atk, x + i * image, y + i, NULL, 1, seeds + i, one, NULL), NULL);
        if (memcmp(one, adv + i * image, image * sizeof(float)) != 0)
            TEST_FAIL_("%s: example %d alone differs from the same example in a batch", attack, i);
    }
    /* same seeds, same result; other seeds, another random start */
    float *again = malloc(N * image * sizeof(float));
    CHECK_OK(at_attack_run(atk, x, y, NULL, N, seeds, again, NULL), NULL);
    CHECK(memcmp(again, adv, N * image * sizeof(float)) == 0);
    uint64_t other[N];
    at_attack_seeds(12, 100, N, other);
    CHECK_OK(at_attack_run(atk, x, y, NULL, N, other, again, NULL), NULL);
    CHECK(memcmp(again, adv, N * image * sizeof(float)) != 0);
    free(again);
    at_attack_free(atk);
done:
    free(x);
    free(adv);
    free(one);
}

TEST(an_example_does_not_depend_on_its_batch_and_seeds_reproduce)
{
    at_model *mlp = fixture_model("mlp-24", 1, 8, 10, 5);
    at_model *cnn = fixture_model("smallcnn", 1, 28, 10, 6);
    REQUIRE(mlp && cnn);
    check_batch_independence(mlp, "pgd", AT_NORM_LINF, 0.1f, 1, 8);
    check_batch_independence(mlp, "pgd", AT_NORM_L2, 1.0f, 1, 8);
    check_batch_independence(mlp, "apgd-ce", AT_NORM_LINF, 0.1f, 1, 8);
    check_batch_independence(mlp, "apgd-t", AT_NORM_L2, 1.0f, 1, 8);
    check_batch_independence(cnn, "pgd", AT_NORM_LINF, 0.1f, 1, 28);
    check_batch_independence(cnn, "apgd-dlr", AT_NORM_LINF, 0.1f, 1, 28);
    at_model_free(mlp);
    at_model_free(cnn);
}

/* Binary logistic regression: CE = softplus(u . x + c) with u = w_1 - w_0 (for label 0), so the
 * worst case in the Linf ball is x + eps sign(u) and in the L2 ball x + eps u / ||u|| (inputs in
 * [0.3, 0.7] keep the box out of the way). */
TEST(linear_model_reaches_the_closed_form_worst_case)
{
    enum { N = 4, D = 16 };
    at_model *m = fixture_model("linear", 1, 4, 2, 9);
    REQUIRE(m);
    at_tensor_info w = at_model_tensor(m, at_model_find_tensor(m, "fc.weight"));
    at_tensor_info b = at_model_tensor(m, at_model_find_tensor(m, "fc.bias"));
    float x[N * D], adv[N * D];
    fixture_images(x, N * D, 4, 0.3f, 0.7f);
    fixture_images(w.data, 2 * D, 5, -1.0f, 1.0f);
    b.data[0] = b.data[1] = 0.0f;
    int32_t y[N];
    fixture_predict(m, x, N, y);
    uint64_t seeds[N];
    at_attack_seeds(3, 0, N, seeds);
    const at_norm norms[2] = {AT_NORM_LINF, AT_NORM_L2};
    const float eps[2] = {0.1f, 0.2f};
    const char *attacks[3] = {"pgd", "apgd-ce", "fgsm"};
    for (int q = 0; q < 2; q++) {
        /* closed form */
        double best_loss[N];
        for (int i = 0; i < N; i++) {
            int o = 1 - y[i];
            double u[D], un = 0.0, z = 0.0;
            for (int j = 0; j < D; j++) {
                u[j] = (double)w.data[o * D + j] - w.data[y[i] * D + j];
                un += u[j] * u[j];
            }
            un = sqrt(un);
            for (int j = 0; j < D; j++) {
                double step = norms[q] == AT_NORM_LINF ? eps[q] * ((u[j] > 0) - (u[j] < 0)) : eps[q] * u[j] / un;
                z += u[j] * (x[i * D + j] + step);
            }
            best_loss[i] = log1p(exp(z));
        }
        for (int a = 0; a < 3; a++) {
            at_attack *atk = NULL;
            at_error err;
            /* PGD with a step of eps/4: with the default 2.5 eps/steps an L2 iterate sheds its
             * component off the optimal direction by only ~alpha/eps per step */
            at_attack_options o = {.norm = norms[q], .eps = eps[q], .steps = 50,
                                   .step_size = a == 0 ? eps[q] / 4 : 0.0f};
            CHECK_OK(at_attack_create(&atk, attacks[a], m, N, &o, &err), &err);
            if (!atk)
                continue;
            CHECK_OK(at_attack_run(atk, x, y, NULL, N, seeds, adv, NULL), NULL);
            /* the loss at the returned points */
            float loss[N];
            CHECK_OK(at_attack_evaluate(atk, x, adv, y, NULL, N, AT_ATTACK_LOSS_CE, false, false), NULL);
            memcpy(loss, atk->loss, sizeof loss);
            for (int i = 0; i < N; i++)
                if (fabs(loss[i] - best_loss[i]) > 1e-3)
                    TEST_FAIL_("%s %s example %d: loss %.6f, closed form %.6f", attacks[a],
                               at_norm_name(norms[q]), i, loss[i], best_loss[i]);
            at_attack_free(atk);
        }
    }
    at_model_free(m);
}

TEST(targeted_pgd_reaches_its_targets)
{
    enum { N = 6 };
    at_model *m = fixture_model("linear", 1, 4, 5, 2);
    REQUIRE(m);
    float x[N * 16], adv[N * 16];
    fixture_images(x, N * 16, 8, 0.0f, 1.0f);
    int32_t y[N], t[N];
    fixture_predict(m, x, N, y);
    for (int i = 0; i < N; i++)
        t[i] = (y[i] + 1 + i % 3) % 5;
    uint64_t seeds[N];
    at_attack_seeds(5, 0, N, seeds);
    at_attack *atk = NULL;
    at_error err;
    at_attack_options o = {.eps = 1.0f, .steps = 100, .step_size = 0.05f, .targeted = true};
    CHECK_OK(at_attack_create(&atk, "pgd", m, N, &o, &err), &err);
    REQUIRE(atk);
    CHECK_EQ_INT(at_attack_run(atk, x, y, NULL, N, seeds, adv, NULL), AT_ERR_ARG); /* targets needed */
    CHECK_OK(at_attack_run(atk, x, y, t, N, seeds, adv, NULL), NULL);
    int32_t pred[N];
    fixture_predict(m, adv, N, pred);
    for (int i = 0; i < N; i++)
        CHECK_EQ_INT(pred[i], t[i]);
    at_attack_free(atk);
    at_model_free(m);
}

TEST(masked_gradients_are_counted)
{
    enum { N = 4 };
    at_model *m = NULL;
    at_error err;
    at_model_options mo = {.in_channels = 1, .in_height = 8, .in_width = 8, .input_levels = 8, .seed = 1};
    CHECK_OK(at_model_create(&m, "mlp-16", &mo, &err), &err);
    REQUIRE(m);
    float x[N * 64], adv[N * 64];
    fixture_images(x, N * 64, 9, 0.0f, 1.0f);
    int32_t y[N];
    fixture_predict(m, x, N, y);
    uint64_t seeds[N];
    at_attack_seeds(1, 0, N, seeds);
    at_attack *atk = NULL;
    CHECK_OK(at_attack_create(&atk, "pgd", m, N, &(at_attack_options){.eps = 0.1f, .steps = 5}, &err), &err);
    REQUIRE(atk);
    CHECK_OK(at_attack_run(atk, x, y, NULL, N, seeds, adv, NULL), NULL);
    const at_attack_stats *s = at_attack_get_stats(atk);
    CHECK_EQ_INT(s->gradient_evals, N * 5);
    CHECK_EQ_INT(s->zero_gradients, s->gradient_evals);
    at_attack_free(atk);
    at_model_free(m);
}

TEST(eot_averages_over_random_forwards)
{
    enum { N = 3 };
    at_model *m = NULL;
    at_error err;
    at_model_options mo = {.in_channels = 1, .in_height = 8, .in_width = 8, .input_noise = 0.3f, .seed = 2};
    CHECK_OK(at_model_create(&m, "mlp-16", &mo, &err), &err);
    REQUIRE(m);
    float x[N * 64];
    fixture_images(x, N * 64, 10, 0.0f, 1.0f);
    int32_t y[N] = {0, 1, 2};
    uint64_t seeds[N];
    at_attack_seeds(2, 0, N, seeds);
    /* the gradient of one noisy forward varies; the average of many varies much less */
    double spread[2];
    const int eots[2] = {1, 64};
    for (int e = 0; e < 2; e++) {
        at_attack *atk = NULL;
        CHECK_OK(at_attack_create(&atk, "fgsm", m, N, &(at_attack_options){.eps = 0.1f, .eot = eots[e]}, &err), &err);
        REQUIRE(atk);
        float g[2][N * 64];
        for (int r = 0; r < 2; r++) {
            at_pass_set_seed(atk->pass, 100 + r);
            CHECK_OK(at_attack_evaluate(atk, x, x, y, NULL, N, AT_ATTACK_LOSS_CE, false, true), NULL);
            memcpy(g[r], atk->grad, sizeof g[r]);
        }
        double d = 0, s = 0;
        for (int j = 0; j < N * 64; j++) {
            d += (g[0][j] - g[1][j]) * (g[0][j] - g[1][j]);
            s += g[0][j] * g[0][j];
        }
        spread[e] = sqrt(d / s);
        CHECK_EQ_INT(at_attack_get_stats(atk)->gradient_evals, 2 * N * eots[e]);
        at_attack_free(atk);
    }
    CHECK(spread[0] > 0.0);
    CHECK(spread[1] < spread[0] / 3.0); /* 64 samples: about 8 times less spread */
    at_model_free(m);
}

TEST(attack_losses_have_the_right_gradients)
{
    const int n = 3, k = 6;
    float z[18], d[18], loss[3], lp[3], lm[3];
    fixture_images(z, 18, 12, -3.0f, 3.0f);
    const int32_t y[3] = {0, 3, 5}, t[3] = {2, 1, 0};
    const at_attack_loss kinds[3] = {AT_ATTACK_LOSS_CE, AT_ATTACK_LOSS_CW, AT_ATTACK_LOSS_DLR};
    for (int kind = 0; kind < 3; kind++)
        for (int targeted = 0; targeted < 2; targeted++) {
            at_attack_loss_eval(kinds[kind], targeted, z, n, k, y, t, loss, d);
            for (int j = 0; j < 18; j++) {
                float zp[18], zm[18];
                memcpy(zp, z, sizeof zp);
                memcpy(zm, z, sizeof zm);
                zp[j] += 1e-3f;
                zm[j] -= 1e-3f;
                at_attack_loss_eval(kinds[kind], targeted, zp, n, k, y, t, lp, NULL);
                at_attack_loss_eval(kinds[kind], targeted, zm, n, k, y, t, lm, NULL);
                double fd = (lp[j / k] - lm[j / k]) / 2e-3;
                if (fabs(fd - d[j]) > 1e-2 * (1 + fabs(fd)))
                    TEST_FAIL_("loss %d targeted %d: d[%d] = %g, finite difference %g", kind,
                               targeted, j, d[j], fd);
            }
        }
    /* DLR is invariant to shifting and scaling the logits */
    float z2[18];
    for (int j = 0; j < 18; j++)
        z2[j] = 7.0f * z[j] + 3.0f;
    at_attack_loss_eval(AT_ATTACK_LOSS_DLR, false, z, n, k, y, t, loss, NULL);
    at_attack_loss_eval(AT_ATTACK_LOSS_DLR, false, z2, n, k, y, t, lp, NULL);
    for (int i = 0; i < n; i++)
        CHECK_CLOSE(loss[i], lp[i], 1e-5, 1e-4);
}

TEST(bad_options_are_errors)
{
    at_model *m2 = fixture_model("linear", 1, 4, 2, 1), *m10 = fixture_model("linear", 1, 4, 10, 1);
    REQUIRE(m2 && m10);
    at_attack *atk = NULL;
    at_error err;
    CHECK_EQ_INT(at_attack_create(&atk, "deepfool", m10, 4, NULL, &err), AT_ERR_NOTFOUND);
    CHECK(strstr(err.message, "deepfool") != NULL);
    CHECK_EQ_INT(at_attack_create(&atk, "pgd", m10, 4, &(at_attack_options){.eps = -1}, &err), AT_ERR_ARG);
    CHECK_EQ_INT(at_attack_create(&atk, "pgd", m10, 4, &(at_attack_options){.eps = NAN}, &err), AT_ERR_ARG);
    CHECK_EQ_INT(at_attack_create(&atk, "apgd-dlr", m2, 4, &(at_attack_options){.eps = 0.1f}, &err), AT_ERR_ARG);
    CHECK_EQ_INT(at_attack_create(&atk, "apgd-t", m2, 4, &(at_attack_options){.eps = 0.1f}, &err), AT_ERR_ARG);
    CHECK_EQ_INT(at_attack_create(&atk, "pgd", m10, 4, &(at_attack_options){.eps = 0.1f, .steps = -3}, &err), AT_ERR_ARG);
    CHECK(atk == NULL);
    at_model_free(m2);
    at_model_free(m10);
}

TEST_MAIN(TEST_ENTRY(every_attack_stays_in_the_threat_model_and_raises_the_loss),
          TEST_ENTRY(zero_budget_returns_the_input),
          TEST_ENTRY(an_example_does_not_depend_on_its_batch_and_seeds_reproduce),
          TEST_ENTRY(linear_model_reaches_the_closed_form_worst_case),
          TEST_ENTRY(targeted_pgd_reaches_its_targets), TEST_ENTRY(masked_gradients_are_counted),
          TEST_ENTRY(eot_averages_over_random_forwards),
          TEST_ENTRY(attack_losses_have_the_right_gradients), TEST_ENTRY(bad_options_are_errors))
