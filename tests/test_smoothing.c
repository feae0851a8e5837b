/* test_smoothing.c: randomized smoothing (Cohen et al., ICML 2019). The statistics against
 * computations of this file's own: the Clopper-Pearson bound against closed forms and against a
 * bisection on the binomial tail summed term by term, the binomial test against its definition,
 * Phi^-1 against published quantiles and against Phi from erfc. Then CERTIFY and PREDICT on
 * models whose smoothed behaviour is known in closed form: a constant classifier is certified at
 * exactly R_max = sigma Phi^-1(alpha^(1/n)); a coin flip makes both abstain; a threshold at one
 * standard deviation of the noise shows the draws are N(0, sigma^2) and not clipped to [0, 1].
 * Results do not depend on the batch size or the thread count; bad options are refused. */
#include "test.h"

#include "advtrain.h"

#include <omp.h>

static double phi_cdf(double x) { return 0.5 * erfc(-x / sqrt(2.0)); }

/* P(Bin(n, p) >= k), summed term by term in double; lc[i] = log C(n, i), built by the caller as
 * a running sum of logarithms (no lgamma, unlike the library). */
static double upper_tail(const double *lc, int k, int n, double p)
{
    double s = 0.0;
    for (int i = k; i <= n; i++)
        s += exp(lc[i] + i * log(p) + (n - i) * log1p(-p));
    return s;
}

static void log_choose_row(int n, double *lc)
{
    lc[0] = 0.0;
    for (int i = 1; i <= n; i++)
        lc[i] = lc[i - 1] + log((double)(n - i + 1)) - log((double)i);
}

/* The Clopper-Pearson lower bound from its definition: the p where P(Bin(n, p) >= k) = alpha. */
static double cp_by_tail(int k, int n, double alpha)
{
    double lc[256], lo = 0.0, hi = 1.0;
    log_choose_row(n, lc);
    for (int it = 0; it < 100; it++) {
        double mid = 0.5 * (lo + hi);
        if (upper_tail(lc, k, n, mid) < alpha)
            lo = mid;
        else
            hi = mid;
    }
    return 0.5 * (lo + hi);
}

TEST(clopper_pearson_closed_forms)
{
    const long ns[] = {1, 2, 10, 1000, 100000};
    const double alphas[] = {0.001, 0.05, 0.5};
    for (int i = 0; i < 5; i++)
        for (int j = 0; j < 3; j++) {
            long n = ns[i];
            double alpha = alphas[j];
            /* k = n: P(Bin(n, p) >= n) = p^n = alpha */
            CHECK_CLOSE(at_clopper_pearson_lower(n, n, alpha), pow(alpha, 1.0 / n), 0, 1e-12);
            CHECK(at_clopper_pearson_lower(0, n, alpha) == 0.0);
        }
    /* k = 1: 1 - (1 - p)^n = alpha */
    CHECK_CLOSE(at_clopper_pearson_lower(1, 100000, 0.001), -expm1(log1p(-0.001) / 100000), 0, 1e-9);
    CHECK(isnan(at_clopper_pearson_lower(5, 4, 0.01)));
    CHECK(isnan(at_clopper_pearson_lower(-1, 4, 0.01)));
    CHECK(isnan(at_clopper_pearson_lower(1, 0, 0.01)));
    CHECK(isnan(at_clopper_pearson_lower(1, 4, 0.0)));
    CHECK(isnan(at_clopper_pearson_lower(1, 4, 1.0)));
    CHECK(isnan(at_clopper_pearson_lower(1, 4, NAN)));
}

TEST(clopper_pearson_matches_the_binomial_tail)
{
    const int ns[] = {1, 3, 7, 20, 64, 150};
    const double alphas[] = {0.001, 0.025, 0.3};
    int compared = 0;
    for (int i = 0; i < 6; i++)
        for (int k = 1; k <= ns[i]; k++)
            for (int j = 0; j < 3; j++) {
                double got = at_clopper_pearson_lower(k, ns[i], alphas[j]);
                double want = cp_by_tail(k, ns[i], alphas[j]);
                CHECK_CLOSE(got, want, 1e-13, 1e-9);
                compared++;
            }
    CHECK_EQ_INT(compared, 3 * (1 + 3 + 7 + 20 + 64 + 150));
    /* monotone in k, and below the point estimate */
    double prev = 0.0;
    for (int k = 1; k <= 1000; k++) {
        double b = at_clopper_pearson_lower(k, 1000, 0.001);
        CHECK(b > prev && b < k / 1000.0);
        prev = b;
    }
}

TEST(binomial_test_matches_its_definition)
{
    /* p-value: the probability of every outcome at most as likely as k under Bin(n, 1/2) */
    double lc[64];
    for (int n = 1; n <= 60; n += 7)
        for (int k = 0; k <= n; k++) {
            log_choose_row(n, lc);
            double pk = exp(lc[k] - n * log(2.0)), want = 0.0;
            for (int i = 0; i <= n; i++) {
                double pi = exp(lc[i] - n * log(2.0));
                if (pi <= pk * (1 + 1e-9))
                    want += pi;
            }
            want = want < 1.0 ? want : 1.0;
            CHECK_CLOSE(at_binomial_test_half(k, n), want, 1e-15, 1e-9);
        }
    CHECK_CLOSE(at_binomial_test_half(0, 10), 2.0 / 1024, 0, 1e-12);
    CHECK_CLOSE(at_binomial_test_half(10, 10), 2.0 / 1024, 0, 1e-12);
    CHECK(at_binomial_test_half(50, 100) == 1.0);
    CHECK(isnan(at_binomial_test_half(3, 2)));
    CHECK(isnan(at_binomial_test_half(0, 0)));
}

TEST(normal_quantile)
{
    CHECK_CLOSE(at_normal_quantile(0.975), 1.959963984540054, 0, 1e-14);
    CHECK_CLOSE(at_normal_quantile(0.999), 3.090232306167813, 0, 1e-14);
    CHECK_CLOSE(at_normal_quantile(0.025), -1.959963984540054, 0, 1e-14);
    CHECK_CLOSE(at_normal_quantile(0.001), -3.090232306167813, 0, 1e-14);
    CHECK(at_normal_quantile(0.5) == 0.0);
    const double ps[] = {1e-300, 1e-30, 1e-10, 1e-4, 0.01, 0.02425, 0.1, 0.3, 0.49, 0.5,
                         0.6, 0.9, 0.97575, 0.999, 0.99993093, 1 - 1e-10};
    for (int i = 0; i < 16; i++) {
        double p = ps[i], x = at_normal_quantile(p);
        if (p < 0.5)
            CHECK_CLOSE(phi_cdf(x), p, 0, 1e-12);
        else /* compare the upper tail, which holds the digits */
            CHECK_CLOSE(phi_cdf(-x), 1.0 - p, 0, 1e-12);
        if (1.0 - (1.0 - p) == p) /* symmetric where 1 - p is exact */
            CHECK(at_normal_quantile(1.0 - p) == -x);
    }
    CHECK(at_normal_quantile(0.0) == -INFINITY && at_normal_quantile(1.0) == INFINITY);
    CHECK(isnan(at_normal_quantile(-0.1)) && isnan(at_normal_quantile(NAN)));
}

TEST(max_radius)
{
    /* the values quoted by Cohen et al.'s successors for alpha = 0.001 */
    CHECK_CLOSE(at_smooth_max_radius(1.0, 100000, 0.001), 3.81, 0.005, 0);
    CHECK_CLOSE(at_smooth_max_radius(1.0, 10000, 0.001), 3.20, 0.005, 0);
    CHECK_CLOSE(at_smooth_max_radius(1.0, 1000, 0.001), 2.46, 0.005, 0);
    /* and exactly: Phi(R / sigma) = alpha^(1/n) */
    double r = at_smooth_max_radius(0.25, 100000, 0.001);
    CHECK_CLOSE(phi_cdf(-r / 0.25), -expm1(log(0.001) / 100000), 0, 1e-10);
    CHECK(isnan(at_smooth_max_radius(0.0, 10, 0.001)) && isnan(at_smooth_max_radius(1, 0, 0.1)));
}

TEST(normals_use_both_values_of_a_pair)
{
    at_rng a, b;
    at_rng_seed(&a, 42);
    at_rng_seed(&b, 42);
    float first;
    at_rng_normals(&a, &first, 1);
    CHECK(first == (float)at_rng_normal(&b));
    enum { N = 1000001 }; /* odd */
    float *z = malloc(N * sizeof *z);
    REQUIRE(z);
    at_rng_normals(&a, z, N);
    double s = 0, s2 = 0, s4 = 0;
    long beyond = 0, odd_pos = 0, even_pos = 0;
    for (long i = 0; i < N; i++) {
        s += z[i];
        s2 += (double)z[i] * z[i];
        s4 += (double)z[i] * z[i] * z[i] * z[i];
        beyond += fabsf(z[i]) > 1.959964f;
        if (z[i] > 0 && i % 2)
            odd_pos++;
        else if (z[i] > 0)
            even_pos++;
    }
    /* standard errors: mean 1e-3, variance 1.4e-3, kurtosis ~1e-2, tail share 2.2e-4 */
    CHECK_CLOSE(s / N, 0.0, 5e-3, 0);
    CHECK_CLOSE(s2 / N, 1.0, 7e-3, 0);
    CHECK_CLOSE(s4 / N, 3.0, 0.05, 0);
    CHECK_CLOSE((double)beyond / N, 0.05, 1.2e-3, 0);
    /* the sine half is a normal too */
    CHECK_CLOSE((double)odd_pos / (N / 2), 0.5, 3.5e-3, 0);
    CHECK_CLOSE((double)even_pos / (N / 2 + 1), 0.5, 3.5e-3, 0);
    free(z);
}

/* Flatten and a linear layer over a c x h x w input, with the given weights and biases. */
static at_model *linear_model(int c, int h, int w, int k, const float *weight, const float *bias)
{
    at_error err;
    at_model *m = NULL;
    CHECK_OK(at_model_begin(&m, c, h, w, &err), &err);
    if (!m)
        return NULL;
    int f = at_add_flatten(m, 0);
    at_add_linear(m, f, "fc", k, true);
    CHECK_OK(at_model_finish(m, 1, &err), &err);
    at_tensor_info wt = at_model_tensor(m, at_model_find_tensor(m, "fc.weight"));
    at_tensor_info bt = at_model_tensor(m, at_model_find_tensor(m, "fc.bias"));
    memcpy(wt.data, weight, wt.numel * sizeof(float));
    memcpy(bt.data, bias, bt.numel * sizeof(float));
    return m;
}

TEST(constant_classifier_is_certified_at_the_largest_radius)
{
    float weight[3 * 16] = {0}, bias[3] = {0.0f, 0.5f, 1.0f};
    at_model *m = linear_model(1, 4, 4, 3, weight, bias);
    REQUIRE(m);
    at_error err;
    at_smoother *s = NULL;
    const long n = 3000;
    const double alpha = 0.001;
    at_smooth_options o = {.sigma = 0.5f, .n0 = 50, .n = n, .alpha = alpha, .batch_size = 256};
    CHECK_OK(at_smoother_create(&s, m, &o, &err), &err);
    REQUIRE(s);
    float x[16];
    for (int i = 0; i < 16; i++)
        x[i] = i / 15.0f;
    at_smooth_result r;
    CHECK_OK(at_smooth_certify(s, x, 7, &r, &err), &err);
    CHECK_EQ_INT(r.prediction, 2);
    CHECK_EQ_INT(r.top_class, 2);
    CHECK_EQ_INT(r.n0_count, 50);
    CHECK_EQ_INT(r.count, n);
    CHECK_CLOSE(r.p_lower, pow(alpha, 1.0 / n), 0, 1e-12);
    /* radius sigma Phi^-1(alpha^(1/n)): Phi(-R / sigma) = 1 - alpha^(1/n) */
    CHECK_CLOSE(phi_cdf(-r.radius / 0.5), -expm1(log(alpha) / n), 0, 1e-9);
    CHECK_CLOSE(r.radius, at_smooth_max_radius(0.5, n, alpha), 0, 1e-12);
    CHECK_OK(at_smooth_predict(s, x, 7, &r, &err), &err);
    CHECK_EQ_INT(r.prediction, 2);
    CHECK_EQ_INT(r.count, n);
    CHECK_EQ_INT(r.runner_up, 0);
    CHECK(r.p_value <= alpha);
    at_smoother_free(s);
    at_model_free(m);
}

/* Two classes split by x[0] = t: class 0 when x[0] > t, class 1 below. */
static at_model *threshold_model(float t)
{
    float weight[2] = {1.0f, -1.0f}, bias[2] = {-t, t};
    return linear_model(1, 1, 1, 2, weight, bias);
}

TEST(coin_flip_abstains)
{
    at_model *m = threshold_model(0.5f);
    REQUIRE(m);
    at_error err;
    at_smoother *s = NULL;
    const long n = 4000;
    at_smooth_options o = {.sigma = 0.25f, .n0 = 100, .n = n, .alpha = 0.001, .seed = 3};
    CHECK_OK(at_smoother_create(&s, m, &o, &err), &err);
    REQUIRE(s);
    const float x = 0.5f;
    for (int point = 0; point < 5; point++) {
        at_smooth_result r;
        CHECK_OK(at_smooth_certify(s, &x, point, &r, &err), &err);
        CHECK_EQ_INT(r.prediction, -1);
        CHECK(r.radius == 0.0);
        CHECK(r.p_lower <= 0.5);
        CHECK_CLOSE((double)r.count / n, 0.5, 5 * 0.5 / sqrt((double)n), 0);
        CHECK(r.top_class == 0 || r.top_class == 1);
        CHECK_OK(at_smooth_predict(s, &x, point, &r, &err), &err);
        CHECK_EQ_INT(r.prediction, -1);
        CHECK_EQ_INT(r.count + r.runner_up, n);
        CHECK(r.count >= r.runner_up);
        CHECK(r.p_value > 0.001);
        CHECK_CLOSE(r.p_value, at_binomial_test_half(r.count, n), 0, 1e-15);
    }
    at_smoother_free(s);
    at_model_free(m);
}

TEST(noise_is_gaussian_and_not_clipped)
{
    /* x = 0.7, threshold 1.2 = x + 2 sigma with sigma 0.25: class 0 needs noise above 2 sigma,
     * which clipping to [0, 1] would make impossible; P(class 1) = Phi(2). */
    at_model *m = threshold_model(1.2f);
    REQUIRE(m);
    at_error err;
    at_smoother *s = NULL;
    const long n = 20000;
    at_smooth_options o = {.sigma = 0.25f, .n0 = 100, .n = n, .alpha = 0.001, .seed = 9};
    CHECK_OK(at_smoother_create(&s, m, &o, &err), &err);
    REQUIRE(s);
    const float x = 0.7f;
    const double p = phi_cdf(2.0);
    at_smooth_result r;
    CHECK_OK(at_smooth_certify(s, &x, 0, &r, &err), &err);
    CHECK_EQ_INT(r.prediction, 1);
    CHECK_CLOSE((double)r.count / n, p, 5 * sqrt(p * (1 - p) / n), 0);
    CHECK(r.p_lower < (double)r.count / n);
    CHECK_CLOSE(r.p_lower, at_clopper_pearson_lower(r.count, n, 0.001), 0, 0);
    /* the smoothed classifier's true radius is 2 sigma = 0.5; the certified one is below it */
    CHECK(r.radius > 0.35 && r.radius < 0.5);
    CHECK_CLOSE(r.radius, 0.25 * at_normal_quantile(r.p_lower), 0, 1e-12);
    CHECK_OK(at_smooth_predict(s, &x, 0, &r, &err), &err);
    CHECK_EQ_INT(r.prediction, 1);
    CHECK_CLOSE((double)r.runner_up / n, 1 - p, 5 * sqrt(p * (1 - p) / n), 0);
    at_smoother_free(s);
    at_model_free(m);
}

/* Certify and predict three points of a random MLP with the given batch size and threads. */
static void run_mlp(int batch, int threads, at_smooth_result *out)
{
    at_error err;
    at_model *m = NULL;
    CHECK_OK(at_model_create(&m, "mlp-16", &(at_model_options){.in_channels = 1, .in_height = 6,
                                                               .in_width = 6, .seed = 4}, &err),
             &err);
    if (!m)
        return;
    at_smoother *s = NULL;
    at_smooth_options o = {.sigma = 0.5f, .n0 = 64, .n = 1000, .alpha = 0.01,
                           .batch_size = batch, .seed = 11};
    CHECK_OK(at_smoother_create(&s, m, &o, &err), &err);
    int saved = omp_get_max_threads();
    omp_set_num_threads(threads);
    float x[36];
    for (int p = 0; p < 3 && s; p++) {
        for (int i = 0; i < 36; i++)
            x[i] = (float)((i * 7 + p * 13) % 10) / 9.0f;
        CHECK_OK(at_smooth_certify(s, x, 100 + p, &out[2 * p], &err), &err);
        CHECK_OK(at_smooth_predict(s, x, 100 + p, &out[2 * p + 1], &err), &err);
    }
    omp_set_num_threads(saved);
    at_smoother_free(s);
    at_model_free(m);
}

TEST(results_do_not_depend_on_batch_size_or_threads)
{
    at_smooth_result a[6], b[6], c[6];
    memset(a, 0, sizeof a);
    memset(b, 0, sizeof b);
    memset(c, 0, sizeof c);
    run_mlp(500, 2, a);
    run_mlp(37, 2, b);
    run_mlp(128, 1, c);
    for (int i = 0; i < 6; i++) {
        CHECK(memcmp(&a[i], &b[i], sizeof a[i]) == 0);
        CHECK(memcmp(&a[i], &c[i], sizeof a[i]) == 0);
        CHECK(a[i].count > 0);
    }
    /* the points differ, so at least their counts should */
    CHECK(a[0].count != a[2].count || a[2].count != a[4].count || a[0].top_class != a[2].top_class);
}

TEST(bad_options_are_refused)
{
    at_model *m = threshold_model(0.5f);
    REQUIRE(m);
    at_error err;
    at_smoother *s = NULL;
    const at_smooth_options bad[] = {
        {.sigma = 0.0f},          {.sigma = -0.5f},
        {.sigma = NAN},           {.sigma = INFINITY},
        {.sigma = 0.5f, .n0 = -1}, {.sigma = 0.5f, .n = -5},
        {.sigma = 0.5f, .alpha = 1.0}, {.sigma = 0.5f, .alpha = -0.01},
        {.sigma = 0.5f, .alpha = 1.5}, {.sigma = 0.5f, .alpha = NAN},
        {.sigma = 0.5f, .batch_size = -1},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err.message[0] = '\0';
        CHECK_EQ_INT(at_smoother_create(&s, m, &bad[i], &err), AT_ERR_ARG);
        CHECK(s == NULL);
        CHECK(strstr(err.message, "smoothing:") != NULL);
    }
    /* zero fields take Cohen's defaults */
    CHECK_OK(at_smoother_create(&s, m, &(at_smooth_options){.sigma = 0.5f}, &err), &err);
    REQUIRE(s);
    const at_smooth_options *o = at_smoother_get_options(s);
    CHECK_EQ_INT(o->n0, 100);
    CHECK_EQ_INT(o->n, 100000);
    CHECK(o->alpha == 0.001);
    CHECK_EQ_INT(o->batch_size, 500);
    /* a non-finite pixel is refused, not classified */
    const float x = NAN;
    at_smooth_result r;
    CHECK_EQ_INT(at_smooth_certify(s, &x, 0, &r, &err), AT_ERR_NUMERIC);
    CHECK_EQ_INT(at_smooth_predict(s, &x, 0, &r, &err), AT_ERR_NUMERIC);
    at_smoother_free(s);
    at_model_free(m);
}

TEST_MAIN(TEST_ENTRY(clopper_pearson_closed_forms), TEST_ENTRY(clopper_pearson_matches_the_binomial_tail),
          TEST_ENTRY(binomial_test_matches_its_definition), TEST_ENTRY(normal_quantile),
          TEST_ENTRY(max_radius), TEST_ENTRY(normals_use_both_values_of_a_pair),
          TEST_ENTRY(constant_classifier_is_certified_at_the_largest_radius),
          TEST_ENTRY(coin_flip_abstains), TEST_ENTRY(noise_is_gaussian_and_not_clipped),
          TEST_ENTRY(results_do_not_depend_on_batch_size_or_threads),
          TEST_ENTRY(bad_options_are_refused))
