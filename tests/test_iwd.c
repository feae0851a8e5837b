/* test_iwd.c: the internal Wasserstein distance and what is built on it. Sinkhorn: on tiny point
 * sets it lands within its regularisation's bound of the exact transport cost (brute force over
 * permutations), its plan has the right marginals, it is symmetric, and its envelope gradient
 * matches finite differences. The IWD: S(x, x) = 0, S symmetric and positive between different
 * images, its gradient to pixels matches finite differences, subsampling is seeded. The IWD
 * attack: outputs in [0,1] and inside the pixel bound, the loss rises, a weak model is broken, the
 * IWD of each returned point is recorded and a budget holds. iwd-at trains. Bad options are
 * errors naming the option. */
#include "test.h"
#include "util/fixtures.h"
#include "util/train_fixtures.h"

#include "advtrain.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>

static void random_points(double *p, int count, uint64_t seed)
{
    at_rng r;
    at_rng_seed(&r, seed);
    for (int i = 0; i < count; i++)
        p[i] = at_rng_uniform(&r);
}

/* Exact optimal transport between two uniform clouds of n points: an optimal coupling of uniform
 * measures of equal size is a permutation (Birkhoff), so the minimum over permutations. */
static double exact_ot(const double *x, const double *y, int n, int d)
{
    int perm[8], c[8] = {0};
    for (int i = 0; i < n; i++)
        perm[i] = i;
    double best = INFINITY;
    for (int i = 0;;) { /* Heap's algorithm */
        double cost = 0.0;
        for (int a = 0; a < n; a++)
            for (int k = 0; k < d; k++) {
                double t = x[a * d + k] - y[perm[a] * d + k];
                cost += t * t / d;
            }
        best = cost / n < best ? cost / n : best;
        while (i < n && c[i] >= i) {
            c[i] = 0;
            i++;
        }
        if (i >= n)
            break;
        int j = i % 2 ? c[i] : 0, t = perm[j];
        perm[j] = perm[i];
        perm[i] = t;
        c[i]++;
        i = 0;
    }
    return best;
}

TEST(sinkhorn_is_within_its_bound_of_the_exact_cost)
{
    const int d = 2;
    double x[6 * 2], y[6 * 2], plan[36];
    double *work = malloc(at_sinkhorn_work(6, 6) * sizeof(double));
    REQUIRE(work);
    for (int n = 2; n <= 6; n++)
        for (int trial = 0; trial < 3; trial++) {
            random_points(x, n * d, 100 + 10 * n + trial);
            random_points(y, n * d, 200 + 10 * n + trial);
            const double exact = exact_ot(x, y, n, d);
            const double eps_list[2] = {0.03, 0.003};
            for (int e = 0; e < 2; e++) {
                double eps = eps_list[e];
                double v =
                    at_sinkhorn(x, NULL, n, y, NULL, n, d, eps, 20000, work, NULL, NULL, plan);
                /* OT_0 <= OT_eps <= OT_0 + eps log n */
                if (!(v >= exact - 1e-9 && v <= exact + eps * log((double)n) + 1e-9))
                    TEST_FAIL_("n %d eps %g: sinkhorn %.9g, exact %.9g, bound %.9g", n, eps, v,
                               exact, exact + eps * log((double)n));
                /* the plan's cost is also within the bound, and its marginals are uniform (to the
                 * convergence reached: slow for eps far below the costs) */
                const double tol = e == 0 ? 1e-7 : 1e-4;
                double primal = 0.0;
                for (int i = 0; i < n; i++) {
                    double row = 0.0, col = 0.0;
                    for (int j = 0; j < n; j++) {
                        row += plan[i * n + j];
                        col += plan[j * n + i];
                        double c = 0.0;
                        for (int k = 0; k < d; k++)
                            c += (x[i * d + k] - y[j * d + k]) * (x[i * d + k] - y[j * d + k]) / d;
                        primal += plan[i * n + j] * c;
                    }
                    CHECK_CLOSE(row, 1.0 / n, tol, 0);
                    CHECK_CLOSE(col, 1.0 / n, tol, 0);
                }
                CHECK(primal >= exact - tol && primal <= exact + eps * log((double)n) + tol);
            }
            /* a small eps gets close: within eps log n, which the exact cost exceeds here */
            double tight = at_sinkhorn(x, NULL, n, y, NULL, n, d, 1e-4, 20000, work, NULL, NULL,
                                       NULL);
            CHECK_CLOSE(tight, exact, 1e-4 * log((double)n) + 1e-9, 0);
        }
    free(work);
}

TEST(sinkhorn_is_symmetric_and_handles_weights)
{
    const int n = 5, m = 7, d = 3;
    double x[15], y[21], a[5], b[7];
    random_points(x, n * d, 1);
    random_points(y, m * d, 2);
    double sa = 0, sb = 0;
    for (int i = 0; i < n; i++)
        sa += a[i] = 1.0 + i;
    for (int j = 0; j < m; j++)
        sb += b[j] = 2.0 + (j % 3);
    for (int i = 0; i < n; i++)
        a[i] /= sa;
    for (int j = 0; j < m; j++)
        b[j] /= sb;
    double *work = malloc(at_sinkhorn_work(n, m) * sizeof(double));
    REQUIRE(work);
    for (int iters = 1; iters <= 300; iters *= 5) {
        double ab = at_sinkhorn(x, a, n, y, b, m, d, 0.05, iters, work, NULL, NULL, NULL);
        double ba = at_sinkhorn(y, b, m, x, a, n, d, 0.05, iters, work, NULL, NULL, NULL);
        CHECK(isfinite(ab));
        CHECK_CLOSE(ab, ba, 1e-14, 1e-12);
    }
    /* with fewer iterations the value is a lower bound of the converged one (weak duality) */
    double conv = at_sinkhorn(x, a, n, y, b, m, d, 0.05, 5000, work, NULL, NULL, NULL);
    CHECK(at_sinkhorn(x, a, n, y, b, m, d, 0.05, 3, work, NULL, NULL, NULL) <= conv + 1e-12);
    /* bad arguments: NAN */
    CHECK(isnan(at_sinkhorn(x, a, n, y, b, m, d, 0.0, 10, work, NULL, NULL, NULL)));
    a[0] = -a[0];
    CHECK(isnan(at_sinkhorn(x, a, n, y, b, m, d, 0.05, 10, work, NULL, NULL, NULL)));
    free(work);
}

TEST(sinkhorn_gradient_matches_finite_differences)
{
    const int n = 4, m = 5, d = 3;
    double x[12], y[15], gx[12], gy[15];
    random_points(x, n * d, 11);
    random_points(y, m * d, 12);
    double *work = malloc(at_sinkhorn_work(n, m) * sizeof(double));
    REQUIRE(work);
    const double eps = 0.05;
    const int iters = 3000;
    at_sinkhorn(x, NULL, n, y, NULL, m, d, eps, iters, work, gx, gy, NULL);
    double largest = 0.0;
    for (int side = 0; side < 2; side++) {
        double *p = side ? y : x, *g = side ? gy : gx;
        for (int k = 0; k < (side ? m : n) * d; k++) {
            const double h = 1e-6, keep = p[k];
            p[k] = keep + h;
            double up = at_sinkhorn(x, NULL, n, y, NULL, m, d, eps, iters, work, NULL, NULL, NULL);
            p[k] = keep - h;
            double down =
                at_sinkhorn(x, NULL, n, y, NULL, m, d, eps, iters, work, NULL, NULL, NULL);
            p[k] = keep;
            CHECK_CLOSE(g[k], (up - down) / (2 * h), 1e-7, 1e-5);
            largest = fabs(g[k]) > largest ? fabs(g[k]) : largest;
        }
    }
    CHECK(largest > 1e-3);
    free(work);
}

static void smooth_image(float *img, int c, int hw, uint64_t seed)
{
    at_rng r;
    at_rng_seed(&r, seed);
    double ph = at_rng_uniform(&r) * 6.28, fr = 0.3 + at_rng_uniform(&r);
    for (int ch = 0; ch < c; ch++)
        for (int i = 0; i < hw; i++)
            for (int j = 0; j < hw; j++)
                img[(ch * hw + i) * hw + j] =
                    (float)(0.5 + 0.4 * sin(fr * i + ph + ch) * cos(fr * j - ph) +
                            0.05 * (at_rng_uniform(&r) - 0.5));
}

TEST(iwd_is_zero_on_itself_symmetric_and_positive)
{
    const int c = 2, hw = 9;
    float x[2 * 81], z[2 * 81];
    smooth_image(x, c, hw, 1);
    smooth_image(z, c, hw, 2);
    at_iwd *w = NULL;
    at_error err;
    at_iwd_options o = {.patch = 3, .stride = 1, .samples = 30};
    CHECK_OK(at_iwd_create(&w, &o, c, hw, hw, &err), &err);
    REQUIRE(w);
    CHECK_EQ_INT(at_iwd_patches(w), 30); /* 49 positions, 30 kept */
    CHECK_CLOSE(at_iwd_get_options(w)->reg, 0.01, 1e-9, 0);
    double self = at_iwd_distance(w, x, x, 5, NULL);
    CHECK(fabs(self) < 1e-12);
    double xz = at_iwd_distance(w, x, z, 5, NULL), zx = at_iwd_distance(w, z, x, 5, NULL);
    CHECK(xz > 1e-4);
    CHECK_CLOSE(xz, zx, 1e-12, 1e-9);
    /* another seed takes other patches: another (still positive) value */
    double other = at_iwd_distance(w, x, z, 6, NULL);
    CHECK(other > 1e-4 && other != xz);
    /* a shifted copy of an image has nearly the same patches: far closer than another image */
    float shifted[2 * 81];
    for (int ch = 0; ch < c; ch++)
        for (int i = 0; i < hw; i++)
            for (int j = 0; j < hw; j++)
                shifted[(ch * hw + i) * hw + j] = x[(ch * hw + i) * hw + (j + 1) % hw];
    at_iwd_options all = {.patch = 3, .stride = 1};
    at_iwd *wa = NULL;
    CHECK_OK(at_iwd_create(&wa, &all, c, hw, hw, &err), &err);
    REQUIRE(wa);
    CHECK(at_iwd_distance(wa, x, shifted, 0, NULL) < 0.5 * at_iwd_distance(wa, x, z, 0, NULL));
    at_iwd_free(wa);
    at_iwd_free(w);
}

TEST(iwd_gradient_matches_finite_differences)
{
    const int c = 1, hw = 7;
    float x[49], z[49], g[49];
    smooth_image(x, c, hw, 3);
    smooth_image(z, c, hw, 4);
    at_iwd *w = NULL;
    at_error err;
    at_iwd_options o = {.patch = 3, .stride = 2, .reg = 0.02f, .iters = 2000};
    CHECK_OK(at_iwd_create(&w, &o, c, hw, hw, &err), &err);
    REQUIRE(w);
    at_iwd_distance(w, x, z, 0, g);
    double largest = 0.0;
    for (int k = 0; k < hw * hw; k++) {
        const float h = 1e-3f, keep = z[k];
        z[k] = keep + h;
        double up = at_iwd_distance(w, x, z, 0, NULL);
        z[k] = keep - h;
        double down = at_iwd_distance(w, x, z, 0, NULL);
        z[k] = keep;
        double fd = (up - down) / ((double)(keep + h) - (double)(keep - h));
        CHECK_CLOSE(g[k], fd, 2e-5, 2e-3);
        largest = fabs(g[k]) > largest ? fabs(g[k]) : largest;
    }
    CHECK(largest > 1e-3);
    /* a pixel no patch covers (stride 2, patch 3 on 7 pixels covers all; on 8, the last column
     * is never seen) has a zero gradient */
    at_iwd_free(w);
    float x8[64], z8[64], g8[64];
    smooth_image(x8, 1, 8, 5);
    smooth_image(z8, 1, 8, 6);
    CHECK_OK(at_iwd_create(&w, &o, 1, 8, 8, &err), &err);
    REQUIRE(w);
    at_iwd_distance(w, x8, z8, 0, g8);
    for (int i = 0; i < 8; i++)
        CHECK(g8[i * 8 + 7] == 0.0f);
    at_iwd_free(w);
}

TEST(iwd_bad_options_are_errors)
{
    struct {
        at_iwd_options o;
        const char *name;
    } bad[] = {
        {{.patch = 9}, "iwd-patch"},  {{.patch = -1}, "iwd-patch"},
        {{.stride = -2}, "iwd-stride"}, {{.samples = 1}, "iwd-samples"},
        {{.reg = -0.1f}, "iwd-reg"},  {{.reg = NAN}, "iwd-reg"},
        {{.iters = -5}, "iwd-iters"}, {{.patch = 8, .stride = 1}, "fewer than 2"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        at_iwd *w = NULL;
        at_error err = {0};
        int status = at_iwd_create(&w, &bad[i].o, 1, 8, 8, &err);
        CHECK(status != 0 && w == NULL);
        if (!strstr(err.message, bad[i].name))
            TEST_FAIL_("case %zu: message '%s' does not name %s", i, err.message, bad[i].name);
    }
}

/* Runs the IWD attack on n random 1x8x8 images of a random (weak) MLP; returns the stats. */
static at_attack_stats run_attack(at_model *m, const float *x, const int32_t *y, int n,
                                  const at_attack_options *o, float *adv, int *fooled_count)
{
    at_attack *atk = NULL;
    at_error err;
    at_attack_stats s = {0};
    CHECK_OK(at_attack_create(&atk, "iwd", m, n, o, &err), &err);
    if (!atk)
        return s;
    uint64_t seeds[8];
    at_attack_seeds(7, 0, n, seeds);
    uint8_t fooled[8];
    CHECK_OK(at_attack_run(atk, x, y, NULL, n, seeds, adv, fooled), NULL);
    s = *at_attack_get_stats(atk);
    *fooled_count = 0;
    for (int i = 0; i < n; i++)
        *fooled_count += fooled[i];
    at_attack_free(atk);
    return s;
}

/* The mean IWD of the returned points, measured here, and its largest. */
static double mean_iwd(const float *x, const float *adv, int n, double *max)
{
    at_iwd *w = NULL;
    at_error err;
    CHECK_OK(at_iwd_create(&w, NULL, 1, 8, 8, &err), &err);
    if (!w)
        return NAN;
    double sum = 0.0;
    *max = 0.0;
    for (int i = 0; i < n; i++) {
        double s = at_iwd_distance(w, x + i * 64, adv + i * 64, 0, NULL);
        sum += s;
        *max = s > *max ? s : *max;
    }
    at_iwd_free(w);
    return sum / n;
}

TEST(iwd_attack_breaks_a_weak_model_and_records_the_iwd)
{
    enum { n = 8 };
    at_model *m = fixture_model("mlp-32", 1, 8, 10, 3);
    REQUIRE(m);
    float x[n * 64], x_copy[n * 64], adv[n * 64];
    int32_t y[n];
    fixture_images(x, n * 64, 1, 0.0f, 1.0f);
    fixture_predict(m, x, n, y);
    memcpy(x_copy, x, sizeof x);
    int fooled = 0;
    at_attack_options o = {.norm = AT_NORM_LINF, .eps = 1.0f, .steps = 20, .iwd_lambda = 1.0f};
    at_attack_stats s = run_attack(m, x, y, n, &o, adv, &fooled);
    CHECK(memcmp(x, x_copy, sizeof x) == 0);
    CHECK_EQ_INT(s.out_of_range + s.eval_out_of_range + s.nonfinite_outputs, 0);
    for (int j = 0; j < n * 64; j++)
        CHECK(adv[j] >= 0.0f && adv[j] <= 1.0f);
    CHECK(fooled >= n / 2); /* a random MLP is weak */
    CHECK_EQ_INT(s.iwd_points, n);
    double max, mean = mean_iwd(x, adv, n, &max);
    CHECK_CLOSE(s.iwd_sum / n, mean, 1e-7, 1e-4);
    CHECK_CLOSE(s.iwd_max, max, 1e-7, 1e-4);
    CHECK(mean > 0.0);
    /* the objective rises */
    double first = s.loss_sum[0] / s.loss_count[0];
    double last = s.loss_sum[s.steps] / s.loss_count[s.steps];
    if (!(last > first))
        TEST_FAIL_("objective %.6g -> %.6g did not rise", first, last);
    /* a heavier IWD penalty finds points closer in IWD */
    float adv_heavy[n * 64];
    at_attack_options heavy = o;
    heavy.iwd_lambda = 100.0f;
    int fooled_heavy = 0;
    run_attack(m, x, y, n, &heavy, adv_heavy, &fooled_heavy);
    double max_heavy, mean_heavy = mean_iwd(x, adv_heavy, n, &max_heavy);
    if (!(mean_heavy < mean))
        TEST_FAIL_("lambda 100: mean IWD %.6g, not below lambda 1's %.6g", mean_heavy, mean);
    /* a pixel bound holds */
    at_attack_options bounded = o;
    bounded.eps = 0.1f;
    s = run_attack(m, x, y, n, &bounded, adv, &fooled);
    CHECK(s.max_linf <= 0.1 + 1e-6 && s.eval_max_linf <= 0.1 + 1e-6);
    /* an IWD budget holds: every returned point is within it, half the unbudgeted mean */
    at_attack_options budget = o;
    budget.iwd_budget = (float)(0.5 * mean);
    s = run_attack(m, x, y, n, &budget, adv, &fooled);
    CHECK_EQ_INT(s.iwd_over_budget, 0);
    mean_iwd(x, adv, n, &max);
    CHECK(max <= budget.iwd_budget * (1 + 1e-5));
    CHECK(s.iwd_max > 0.0); /* it still moved */
    /* the CW loss works as well */
    at_attack_options cw = o;
    cw.loss = AT_ATTACK_LOSS_CW;
    s = run_attack(m, x, y, n, &cw, adv, &fooled);
    CHECK(fooled >= n / 2);
    at_model_free(m);
}

/* The examples' distances run on several threads once there is enough work: the same bits. */
TEST(iwd_attack_does_not_depend_on_the_thread_count)
{
    enum { n = 6, hw = 16 };
    at_model *m = fixture_model("mlp-32", 1, hw, 10, 4);
    REQUIRE(m);
    float x[n * hw * hw], one[n * hw * hw], two[n * hw * hw];
    int32_t y[n];
    uint64_t seeds[n];
    fixture_images(x, n * hw * hw, 2, 0.0f, 1.0f);
    fixture_predict(m, x, n, y);
    at_attack_seeds(3, 0, n, seeds);
    at_attack_options o = {.eps = 0.3f, .steps = 3, .iwd = {.stride = 1}}; /* 196 patches */
    const int threads = omp_get_max_threads();
    for (int t = 1; t <= 2; t++) {
        omp_set_num_threads(t);
        at_attack *atk = NULL;
        at_error err;
        CHECK_OK(at_attack_create(&atk, "iwd", m, n, &o, &err), &err);
        if (atk)
            CHECK_OK(at_attack_run(atk, x, y, NULL, n, seeds, t == 1 ? one : two, NULL), NULL);
        at_attack_free(atk);
    }
    omp_set_num_threads(threads);
    CHECK(memcmp(one, two, sizeof one) == 0);
    at_model_free(m);
}

TEST(iwd_attack_bad_options_are_errors)
{
    at_model *m = fixture_model("mlp-32", 1, 8, 10, 3);
    REQUIRE(m);
    struct {
        at_attack_options o;
        const char *message;
    } bad[] = {
        {{.eps = 1, .iwd_lambda = -1}, "iwd-lambda"},
        {{.eps = 1, .iwd_budget = -0.5f}, "iwd-budget"},
        {{.eps = 1, .norm = AT_NORM_L1}, "L1"},
        {{.eps = 1, .loss = AT_ATTACK_LOSS_DLR}, "ce or cw"},
        {{.eps = 1, .iwd = {.patch = 20}}, "iwd-patch"},
        {{.eps = 1, .iwd = {.reg = -1}}, "iwd-reg"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        at_attack *atk = NULL;
        at_error err = {0};
        CHECK(at_attack_create(&atk, "iwd", m, 4, &bad[i].o, &err) != 0 && !atk);
        if (!strstr(err.message, bad[i].message))
            TEST_FAIL_("case %zu: message '%s' does not name %s", i, err.message, bad[i].message);
    }
    at_model_free(m);
}

/* Accuracy of bands_mlp weights `params` on d's first n images under the IWD attack. */
static double iwd_robust_accuracy(const float *params, size_t count, const at_dataset *d, int n)
{
    at_model *m = bands_mlp(1);
    size_t have;
    float *p = at_model_params(m, &have);
    if (have != count) {
        at_model_free(m);
        return NAN;
    }
    memcpy(p, params, count * sizeof(float));
    const size_t image = (size_t)BANDS_HW * BANDS_HW;
    float *x = malloc((size_t)n * image * sizeof(float));
    float *adv = malloc((size_t)n * image * sizeof(float));
    uint64_t *seeds = malloc((size_t)n * sizeof(uint64_t));
    uint8_t *fooled = malloc((size_t)n);
    for (size_t j = 0; j < (size_t)n * image; j++)
        x[j] = d->images[j] / 255.0f;
    at_attack *atk = NULL;
    at_error err;
    at_attack_options o = {.norm = AT_NORM_LINF, .eps = 0.3f, .steps = 10};
    CHECK_OK(at_attack_create(&atk, "iwd", m, n, &o, &err), &err);
    at_attack_seeds(1, 0, n, seeds);
    int robust = 0;
    if (atk && at_attack_run(atk, x, d->labels, NULL, n, seeds, adv, fooled) == 0)
        for (int i = 0; i < n; i++)
            robust += !fooled[i];
    at_attack_free(atk);
    at_model_free(m);
    free(x);
    free(adv);
    free(seeds);
    free(fooled);
    return (double)robust / n;
}

TEST(iwd_at_trains_and_resists_the_iwd_attack)
{
    at_dataset d = bands_data(128, 4);
    at_train_config standard = bands_config("standard"), iwd = bands_config("iwd-at");
    /* lr 0.3 for both: iwd-at's loss is the mean of three CE terms, whose steps at the fixture's
     * 0.1 are too small for it to learn the bands' robust features in 4 epochs */
    standard.epochs = iwd.epochs = 4;
    standard.lr.base = iwd.lr.base = 0.3f;
    size_t n1 = 0, n2 = 0;
    float *a = bands_train(&standard, &d, &n1), *b = bands_train(&iwd, &d, &n2);
    REQUIRE(a && b && n1 == n2);
    bool finite = true;
    for (size_t j = 0; j < n2; j++)
        finite &= isfinite(b[j]);
    CHECK(finite);
    double acc_standard = iwd_robust_accuracy(a, n1, &d, 64);
    double acc_iwd = iwd_robust_accuracy(b, n2, &d, 64);
    printf("accuracy under the IWD attack: standard %.3f, iwd-at %.3f\n", acc_standard, acc_iwd);
    if (!(acc_iwd > acc_standard))
        TEST_FAIL_("iwd-at %.3f is not above standard training %.3f under the IWD attack", acc_iwd,
                   acc_standard);
    /* without the clean and PGD terms it is another run */
    at_train_config only = bands_config("iwd-at");
    only.epochs = 4;
    only.lr.base = 0.3f;
    at_train_config_set(&only, "iwd-no-pgd", "true");
    at_train_config_set(&only, "iwd-clean-weight", "0");
    float *c = bands_train(&only, &d, &n2);
    CHECK(c && memcmp(b, c, n2 * sizeof(float)) != 0);
    free(a);
    free(b);
    free(c);
    bands_free(&d);
}

TEST(iwd_at_bad_options_are_errors)
{
    at_dataset d = bands_data(16, 5), val = {0};
    at_model *m = bands_mlp(1);
    const char *bad[][2] = {{"iwd-patch", "20"}, {"iwd-steps", "0"}, {"iwd-reg", "-1"},
                            {"iwd-lambda", "x"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        at_train_config c = bands_config("iwd-at");
        at_trainer *t = NULL;
        at_error err = {0};
        int status = at_train_config_set(&c, bad[i][0], bad[i][1]);
        if (!status)
            status = at_trainer_create(&t, m, &d, &val, &c, &err);
        if (status == 0 || !strstr(err.message, bad[i][0]))
            TEST_FAIL_("%s=%s: status %d, message '%s'", bad[i][0], bad[i][1], status, err.message);
        at_trainer_free(t);
    }
    at_model_free(m);
    bands_free(&d);
}

TEST_MAIN(TEST_ENTRY(sinkhorn_is_within_its_bound_of_the_exact_cost),
          TEST_ENTRY(sinkhorn_is_symmetric_and_handles_weights),
          TEST_ENTRY(sinkhorn_gradient_matches_finite_differences),
          TEST_ENTRY(iwd_is_zero_on_itself_symmetric_and_positive),
          TEST_ENTRY(iwd_gradient_matches_finite_differences),
          TEST_ENTRY(iwd_bad_options_are_errors),
          TEST_ENTRY(iwd_attack_breaks_a_weak_model_and_records_the_iwd),
          TEST_ENTRY(iwd_attack_does_not_depend_on_the_thread_count),
          TEST_ENTRY(iwd_attack_bad_options_are_errors),
          TEST_ENTRY(iwd_at_trains_and_resists_the_iwd_attack),
          TEST_ENTRY(iwd_at_bad_options_are_errors))
