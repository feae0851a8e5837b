/* test_robustify.c: preemptive image robustification (Moon et al., AAAI 2022): the robustified
 * image stays in the delta-box (or L2 ball) around the original and in [0,1]; on a small trained
 * model the robust loss at x_r is below the one at x (and the reconstruction attack raises it
 * again); the gradient through the tanh reparameterisation and the inner PGD's masks matches
 * finite differences; bad options are clear errors. */
#include "test.h"
#include "util/fixtures.h"
#include "util/train_fixtures.h"

#include "advtrain.h"

static double mean(const float *v, int n)
{
    double s = 0.0;
    for (int i = 0; i < n; i++)
        s += v[i];
    return s / n;
}

/* bands_mlp trained for 2 epochs of standard training on the bands */
static at_model *trained_bands_model(void)
{
    at_dataset d = bands_data(256, 11);
    at_train_config c = bands_config("standard");
    size_t count = 0;
    float *trained = bands_train(&c, &d, &count);
    bands_free(&d);
    if (!trained)
        return NULL;
    at_model *m = bands_mlp(1);
    size_t n = 0;
    float *theta = at_model_params(m, &n);
    if (n != count) {
        at_model_free(m);
        free(trained);
        return NULL;
    }
    memcpy(theta, trained, n * sizeof(float));
    free(trained);
    return m;
}

TEST(robustified_images_stay_in_the_budget_and_the_range)
{
    enum { N = 6 };
    const size_t image = BANDS_HW * BANDS_HW;
    at_model *m = bands_mlp(2);
    REQUIRE(m);
    at_dataset d = bands_data(N, 5);
    float x[N * BANDS_HW * BANDS_HW], x_copy[sizeof x / sizeof x[0]], xr[sizeof x / sizeof x[0]];
    int32_t y[N], labels[N];
    at_dataset_batch(&d, (int32_t[]){0, 1, 2, 3, 4, 5}, N, x, y, NULL, NULL);
    memcpy(x_copy, x, sizeof x);
    uint64_t seeds[N];
    at_attack_seeds(3, 0, N, seeds);
    const at_norm norms[3] = {AT_NORM_LINF, AT_NORM_L2, AT_NORM_LINF};
    const float delta[3] = {0.05f, 0.3f, 0.08f};
    for (int q = 0; q < 3; q++) {
        at_robustify_options o;
        at_robustify_defaults(&o, norms[q], delta[q], delta[q]);
        o.iters = 8;
        o.steps = 4;
        if (q == 2) { /* the smoothing variant */
            o.noise_samples = 3;
            o.noise_sigma = 0.1f;
        }
        at_robustifier *r = NULL;
        at_error err;
        CHECK_OK(at_robustify_create(&r, m, N, &o, &err), &err);
        REQUIRE(r);
        CHECK_OK(at_robustify_run(r, x, N, seeds, xr, labels), NULL);
        CHECK(memcmp(x, x_copy, sizeof x) == 0);
        double bound = fixture_budget(norms[q], delta[q]), largest = 0.0;
        for (int i = 0; i < N; i++) {
            double dist = fixture_distance(norms[q], xr + i * image, x + i * image, image);
            largest = dist > largest ? dist : largest;
            if (dist > bound)
                TEST_FAIL_("%s: ||x_r - x|| = %.9g > delta %g", at_norm_name(norms[q]), dist,
                           delta[q]);
        }
        CHECK(largest > 0.0); /* it moved */
        for (size_t j = 0; j < sizeof xr / sizeof xr[0]; j++)
            CHECK(xr[j] >= 0.0f && xr[j] <= 1.0f);
        const at_robustify_stats *s = at_robustify_get_stats(r);
        CHECK_EQ_INT(s->points, N);
        CHECK_EQ_INT(s->out_of_range + s->nonfinite, 0);
        CHECK_CLOSE(norms[q] == AT_NORM_LINF ? s->max_linf : s->max_l2, largest, 1e-6, 1e-6);
        CHECK(s->gradient_evals > 0);
        /* the labels are the model's own predictions */
        int32_t pred[N];
        fixture_predict(m, x, N, pred);
        for (int i = 0; i < N; i++)
            CHECK_EQ_INT(labels[i], pred[i]);
        /* seeds reproduce the run */
        float again[sizeof xr / sizeof xr[0]];
        CHECK_OK(at_robustify_run(r, x, N, seeds, again, NULL), NULL);
        CHECK(memcmp(xr, again, sizeof xr) == 0);
        at_robustify_free(r);
    }
    bands_free(&d);
    at_model_free(m);
}

TEST(robust_loss_falls_at_the_robustified_point_and_reconstruction_raises_it)
{
    enum { N = 16 };
    const size_t image = BANDS_HW * BANDS_HW;
    at_model *m = trained_bands_model();
    REQUIRE(m);
    at_dataset d = bands_data(N, 77);
    int32_t idx[N];
    for (int i = 0; i < N; i++)
        idx[i] = i;
    float x[N * BANDS_HW * BANDS_HW], xr[sizeof x / sizeof x[0]], xrec[sizeof x / sizeof x[0]];
    int32_t y[N], pred[N], pred_r[N];
    at_dataset_batch(&d, idx, N, x, y, NULL, NULL);
    uint64_t seeds[N], eval_seeds[N];
    at_attack_seeds(5, 0, N, seeds);
    at_attack_seeds(6, 0, N, eval_seeds);
    for (int q = 0; q < 2; q++) {
        const at_norm norm = q == 0 ? AT_NORM_LINF : AT_NORM_L2;
        const float delta = q == 0 ? 0.15f : 1.0f;
        at_robustify_options o;
        at_robustify_defaults(&o, norm, delta, delta);
        o.iters = 30;
        o.steps = 5;
        at_robustifier *r = NULL, *rec = NULL;
        at_error err;
        CHECK_OK(at_robustify_create(&r, m, N, &o, &err), &err);
        o.reconstruct = true;
        CHECK_OK(at_robustify_create(&rec, m, N, &o, &err), &err);
        REQUIRE(r && rec);
        CHECK_OK(at_robustify_run(r, x, N, seeds, xr, pred), NULL);
        float l0[N], l1[N], l2[N];
        CHECK_OK(at_robustify_loss(r, x, pred, N, eval_seeds, l0), NULL);
        CHECK_OK(at_robustify_loss(r, xr, pred, N, eval_seeds, l1), NULL);
        if (!(mean(l1, N) < 0.8 * mean(l0, N)))
            TEST_FAIL_("%s: robust loss %.6g at x, %.6g at x_r", at_norm_name(norm), mean(l0, N),
                       mean(l1, N));
        /* the reconstruction attack from x_r (labels: the predictions at x_r) climbs back */
        CHECK_OK(at_robustify_run(rec, xr, N, seeds, xrec, pred_r), NULL);
        CHECK_OK(at_robustify_loss(r, xrec, pred_r, N, eval_seeds, l2), NULL);
        CHECK_OK(at_robustify_loss(r, xr, pred_r, N, eval_seeds, l1), NULL);
        if (!(mean(l2, N) > mean(l1, N)))
            TEST_FAIL_("%s: reconstruction: robust loss %.6g at x_r, %.6g after", at_norm_name(norm),
                       mean(l1, N), mean(l2, N));
        for (int i = 0; i < N; i++)
            CHECK(fixture_distance(norm, xrec + i * image, xr + i * image, image) <=
                  fixture_budget(norm, delta));
        at_robustify_free(r);
        at_robustify_free(rec);
    }
    bands_free(&d);
    at_model_free(m);
}

/* d loss / d v against central differences of the robust loss, the inner PGD's random start
 * and increments fixed by the seeds. A 2-class linear model keeps the sign of the input gradient
 * constant, so the PGD path is piecewise affine in x_r and the held-constant increments are its
 * exact derivative (pixels clamped at 0 or 1 contribute nothing). */
TEST(gradient_through_tanh_and_pgd_masks_matches_finite_differences)
{
    enum { N = 3, HW = 4, D = HW * HW };
    at_model *m = fixture_model("linear", 1, HW, 2, 9);
    REQUIRE(m);
    float x[N * D], v[N * D], vp[N * D], xr[N * D], g[N * D], loss[N];
    fixture_images(x, N * D, 4, 0.0f, 1.0f);
    int32_t y[N];
    fixture_predict(m, x, N, y);
    uint64_t seeds[N];
    at_attack_seeds(8, 0, N, seeds);
    for (int q = 0; q < 2; q++) {
        const at_norm norm = q == 0 ? AT_NORM_LINF : AT_NORM_L2;
        const float delta = q == 0 ? 0.1f : 0.5f;
        for (int steps = 0; steps <= 3; steps += 3) {
            at_robustify_options o;
            at_robustify_defaults(&o, norm, delta, q == 0 ? 0.1f : 0.4f);
            o.steps = steps;
            o.step_size = q == 0 ? 0.02f : 0.1f;
            /* L2: 3 steps of 0.1 from x_r itself stay inside the 0.4-ball, so the
             * renormalisation (whose Jacobian is not diagonal) never acts */
            o.no_random_start = norm == AT_NORM_L2;
            at_robustifier *r = NULL;
            at_error err;
            CHECK_OK(at_robustify_create(&r, m, N, &o, &err), &err);
            REQUIRE(r);
            /* the outer variable of a point inside the budget */
            fixture_images(v, N * D, 10 + steps, -1.5f, 1.5f);
            if (norm == AT_NORM_L2)
                for (int j = 0; j < N * D; j++)
                    v[j] = x[j] + 0.02f * v[j];
            CHECK_OK(at_robustify_gradient(r, x, v, y, N, seeds, loss, g), NULL);
            const float h = norm == AT_NORM_LINF ? 1e-2f : 1e-3f;
            int checked = 0;
            double largest = 0.0;
            for (int j = 0; j < N * D; j++) {
                double f[2];
                for (int side = 0; side < 2; side++) {
                    memcpy(vp, v, sizeof v);
                    vp[j] += side ? -h : h;
                    const float *point = vp;
                    if (norm == AT_NORM_LINF) {
                        at_robustify_box_from_w(x, vp, N * D, delta, xr);
                        point = xr;
                    }
                    float l[N];
                    CHECK_OK(at_robustify_loss(r, point, y, N, seeds, l), NULL);
                    f[side] = (double)l[0] + l[1] + l[2];
                }
                double fd = (f[0] - f[1]) / (2.0 * h);
                CHECK_CLOSE(g[j], fd, 3e-4, 3e-2);
                largest = fabs(g[j]) > largest ? fabs(g[j]) : largest;
                checked++;
            }
            CHECK_EQ_INT(checked, N * D);
            CHECK(largest > 1e-3); /* not an empty gradient */
            at_robustify_free(r);
        }
    }
    /* the box map and its inverse */
    for (int j = 0; j < N * D; j++)
        v[j] = 0.7f * (float)(j % 7 - 3) / 3.0f;
    at_robustify_box_from_w(x, v, N * D, 0.1f, xr);
    float back[N * D];
    at_robustify_box_to_w(x, xr, N * D, 0.1f, back);
    for (int j = 0; j < N * D; j++) {
        CHECK(fabsf(xr[j] - x[j]) <= 0.1f + 1e-6f && xr[j] >= 0.0f && xr[j] <= 1.0f);
        /* atanh(1.999 t) inverts tanh only up to the 1.999 / 2 scaling of the authors' code */
        float again[1];
        at_robustify_box_from_w(x + j, back + j, 1, 0.1f, again);
        CHECK_CLOSE(again[0], xr[j], 1e-3, 0);
    }
    at_model_free(m);
}

TEST(bad_options_are_errors)
{
    at_model *m = fixture_model("linear", 1, 4, 2, 9);
    REQUIRE(m);
    at_robustify_options bad[7];
    const char *words[7] = {"norm", "delta", "eps", "step size", "learning rate", "sigma",
                            "RMSprop"};
    for (int i = 0; i < 7; i++)
        at_robustify_defaults(&bad[i], AT_NORM_LINF, 0.1f, 0.1f);
    bad[0].norm = AT_NORM_L1;
    bad[1].delta = 0.0f;
    bad[2].eps = -1.0f;
    bad[3].step_size = 0.0f;
    bad[4].lr = 0.0f;
    bad[5].noise_samples = 4;
    bad[6].rms_alpha = 1.0f;
    for (int i = 0; i < 7; i++) {
        at_robustifier *r = (at_robustifier *)m; /* must be reset to NULL */
        at_error err = {0};
        CHECK_EQ_INT(at_robustify_create(&r, m, 2, &bad[i], &err), AT_ERR_ARG);
        CHECK(r == NULL);
        if (!strstr(err.message, words[i]))
            TEST_FAIL_("case %d: '%s' does not name %s", i, err.message, words[i]);
    }
    at_model_free(m);
}

TEST_MAIN(TEST_ENTRY(robustified_images_stay_in_the_budget_and_the_range),
          TEST_ENTRY(robust_loss_falls_at_the_robustified_point_and_reconstruction_raises_it),
          TEST_ENTRY(gradient_through_tanh_and_pgd_masks_matches_finite_differences),
          TEST_ENTRY(bad_options_are_errors))
