/* test_gmm.c: the generator of synthetic training images (PCA, then a mixture of diagonal
 * Gaussians per class fitted by EM). The PCA must find a subspace the data is known to lie on;
 * EM must never lower the log-likelihood and must find the components of a known mixture;
 * samples of a class must look like that class; a seed must give the same samples whatever the
 * number of threads; and bad options are errors. */
#include "test.h"

#include "advtrain.h"
#include "data/pca.h"

#include <omp.h>
#include <stdint.h>

/* A data set of n images of 1 x s x s with labels; images and labels malloc'd. */
static at_dataset make_set(int n, int s, int classes)
{
    at_dataset ds = {.n = n, .c = 1, .h = s, .w = s, .num_classes = classes};
    snprintf(ds.name, sizeof ds.name, "synthetic");
    ds.images = calloc((size_t)n * s * s, 1);
    ds.labels = calloc((size_t)n, sizeof(int32_t));
    return ds;
}

static void free_set(at_dataset *ds)
{
    free(ds->images);
    free(ds->labels);
}

static uint8_t to_byte(double v)
{
    v = v < 0 ? 0 : v > 1 ? 1 : v;
    return (uint8_t)lrint(v * 255.0);
}

/* Class k's pattern at pixel (y, x) of an s x s image: three clearly different images. */
static double pattern(int k, int y, int x, int s)
{
    switch (k % 3) {
    case 0: return y < s / 2 ? 0.8 : 0.15;
    case 1: return x < s / 2 ? 0.75 : 0.2;
    default: return (x + y) % 2 ? 0.7 : 0.25;
    }
}

/* Classes 0..classes-1 in turn, each its pattern plus uniform noise of +-amp. */
static at_dataset pattern_set(int n, int s, int classes, double amp, uint64_t seed)
{
    at_dataset ds = make_set(n, s, classes);
    at_rng rng;
    at_rng_seed(&rng, seed);
    for (int i = 0; i < n; i++) {
        ds.labels[i] = i % classes;
        for (int p = 0; p < s * s; p++)
            ds.images[(size_t)i * s * s + p] =
                to_byte(pattern(i % classes, p / s, p % s, s) + amp * (2 * at_rng_uniform(&rng) - 1));
    }
    return ds;
}

static double distance(const uint8_t *a, const double *b, int d)
{
    double s = 0;
    for (int j = 0; j < d; j++)
        s += (a[j] / 255.0 - b[j]) * (a[j] / 255.0 - b[j]);
    return sqrt(s);
}

TEST(samples_look_like_their_class)
{
    enum { S = 8, D = S * S, CLASSES = 3, N = 600, SAMPLES = 900 };
    at_dataset ds = pattern_set(N, S, CLASSES, 0.1, 1);
    double means[CLASSES][D] = {{0}};
    for (int i = 0; i < N; i++)
        for (int j = 0; j < D; j++)
            means[ds.labels[i]][j] += ds.images[(size_t)i * D + j] / 255.0 / (N / CLASSES);
    at_gmm *g;
    at_error err;
    at_rng rng;
    at_rng_seed(&rng, 7);
    CHECK_OK(at_gmm_fit(&g, &ds, &(at_gmm_options){.dims = 8, .components = 2, .iterations = 20},
                        &rng, &err), &err);
    REQUIRE(g);
    const at_gmm_options *o = at_gmm_get_options(g);
    CHECK(o->dims == 8 && o->components == 2 && o->iterations == 20);
    static uint8_t images[SAMPLES * D];
    int32_t labels[SAMPLES];
    CHECK_OK(at_gmm_sample(g, SAMPLES, &rng, images, labels, &err), &err);
    int count[CLASSES] = {0}, nearest_own = 0;
    double own = 0, other = 1e9;
    for (int i = 0; i < SAMPLES; i++) {
        REQUIRE(labels[i] >= 0 && labels[i] < CLASSES);
        count[labels[i]]++;
        int best = 0;
        for (int k = 0; k < CLASSES; k++) {
            const double dist = distance(images + (size_t)i * D, means[k], D);
            if (dist < distance(images + (size_t)i * D, means[best], D))
                best = k;
            if (k == labels[i])
                own = dist > own ? dist : own;
            else
                other = dist < other ? dist : other;
        }
        nearest_own += best == labels[i];
    }
    printf("  per class %d %d %d; farthest from its own mean %.3f, nearest to another %.3f\n",
           count[0], count[1], count[2], own, other);
    CHECK_EQ_INT(nearest_own, SAMPLES);
    CHECK(own < other);
    for (int k = 0; k < CLASSES; k++) /* uniform over classes: 300 each, give or take */
        CHECK(count[k] > 240 && count[k] < 360);
    at_gmm_free(g);
    free_set(&ds);
}

/* Same seed, same samples, whatever the number of threads; another seed, other samples. */
TEST(seed_determines_samples)
{
    enum { S = 10, D = S * S, SAMPLES = 700 };
    at_dataset ds = pattern_set(900, S, 3, 0.2, 2);
    static uint8_t images[3][SAMPLES * D];
    int32_t labels[3][SAMPLES];
    const int threads = omp_get_max_threads();
    for (int run = 0; run < 3; run++) {
        omp_set_num_threads(run == 1 ? 1 : threads > 1 ? threads : 2);
        at_rng rng;
        at_rng_seed(&rng, run == 2 ? 43 : 42);
        at_gmm *g;
        at_error err;
        CHECK_OK(at_gmm_fit(&g, &ds, &(at_gmm_options){.dims = 12, .components = 3,
                                                        .iterations = 15}, &rng, &err), &err);
        REQUIRE(g);
        CHECK_OK(at_gmm_sample(g, SAMPLES, &rng, images[run], labels[run], &err), &err);
        at_gmm_free(g);
    }
    omp_set_num_threads(threads);
    CHECK(memcmp(images[0], images[1], sizeof images[0]) == 0);
    CHECK(memcmp(labels[0], labels[1], sizeof labels[0]) == 0);
    CHECK(memcmp(images[0], images[2], sizeof images[0]) != 0);
    free_set(&ds);
}

/* Orthonormal columns b[d, r] (Gram-Schmidt on smooth patterns). */
static void subspace(double *b, int d, int r)
{
    for (int t = 0; t < r; t++) {
        double *v = b + (size_t)t * d;
        for (int j = 0; j < d; j++)
            v[j] = sin(0.37 * (t + 1) * j + t) + (t == 1 ? 0.3 : 0.0) * (j % 5);
        for (int u = 0; u < t; u++) {
            double dot = 0;
            for (int j = 0; j < d; j++)
                dot += v[j] * b[(size_t)u * d + j];
            for (int j = 0; j < d; j++)
                v[j] -= dot * b[(size_t)u * d + j];
        }
        double norm = 0;
        for (int j = 0; j < d; j++)
            norm += v[j] * v[j];
        for (int j = 0; j < d; j++)
            v[j] /= sqrt(norm);
    }
}

TEST(pca_recovers_a_subspace)
{
    enum { S = 6, D = S * S, R = 3, N = 2000 };
    static double b[R * D];
    subspace(b, D, R);
    at_dataset ds = make_set(N, S, 1);
    at_rng rng;
    at_rng_seed(&rng, 3);
    /* x = 0.5 + B a with a uniform in [-0.6, 0.6]: variance 0.12 along each direction */
    for (int i = 0; i < N; i++) {
        double a[R];
        for (int t = 0; t < R; t++)
            a[t] = 1.2 * at_rng_uniform(&rng) - 0.6;
        for (int j = 0; j < D; j++) {
            double v = 0.5;
            for (int t = 0; t < R; t++)
                v += b[(size_t)t * D + j] * a[t];
            ds.images[(size_t)i * D + j] = to_byte(v);
        }
    }
    at_pca pca;
    at_error err;
    CHECK_OK(at_pca_fit(&pca, &ds, R + 1, &err), &err);
    REQUIRE(pca.basis);
    printf("  variances %.4g %.4g %.4g, then %.3g (rounding)\n", pca.variance[0], pca.variance[1],
           pca.variance[2], pca.variance[3]);
    for (int t = 0; t < R; t++) {
        CHECK_CLOSE(pca.variance[t], 0.12, 0.02, 0);
        /* each found direction lies in the subspace: its projection onto B keeps its length */
        double kept = 0;
        for (int u = 0; u < R; u++) {
            double dot = 0;
            for (int j = 0; j < D; j++)
                dot += b[(size_t)u * D + j] * pca.basis[(size_t)j * (R + 1) + t];
            kept += dot * dot;
        }
        CHECK_CLOSE(kept, 1.0, 1e-4, 0);
    }
    CHECK(pca.variance[3] < 1e-4 * pca.variance[2]);
    CHECK(pca.variance[0] >= pca.variance[1] && pca.variance[1] >= pca.variance[2]);
    CHECK_CLOSE(pca.mean[7], 0.5, 0.02, 0);

    /* samples of a generator of R dimensions stay on the subspace too */
    at_gmm *g;
    CHECK_OK(at_gmm_fit(&g, &ds, &(at_gmm_options){.dims = R}, &rng, &err), &err);
    REQUIRE(g);
    static uint8_t images[200 * D];
    int32_t labels[200];
    CHECK_OK(at_gmm_sample(g, 200, &rng, images, labels, &err), &err);
    double worst = 0;
    for (int i = 0; i < 200; i++) {
        double x[D], off = 0;
        for (int j = 0; j < D; j++)
            x[j] = images[(size_t)i * D + j] / 255.0 - pca.mean[j];
        for (int u = 0; u < R; u++) { /* remove the part in the subspace */
            double dot = 0;
            for (int j = 0; j < D; j++)
                dot += b[(size_t)u * D + j] * x[j];
            for (int j = 0; j < D; j++)
                x[j] -= dot * b[(size_t)u * D + j];
        }
        for (int j = 0; j < D; j++)
            off += x[j] * x[j];
        worst = sqrt(off) > worst ? sqrt(off) : worst;
        CHECK_EQ_INT(labels[i], 0);
    }
    printf("  largest distance of a sample from the subspace %.4f\n", worst);
    CHECK(worst < 0.02); /* rounding to 8 bits: about 0.0011 per pixel, 0.007 over 36 */
    at_gmm_free(g);
    at_pca_free(&pca);
    free_set(&ds);
}

/* One class drawn from two known images, 30% and 70% of the time, with a little noise. */
TEST(em_finds_a_known_mixture)
{
    enum { S = 8, D = S * S, N = 2000 };
    at_dataset ds = make_set(N, S, 1);
    at_rng rng;
    at_rng_seed(&rng, 5);
    int in_a = 0;
    for (int i = 0; i < N; i++) {
        const bool a = at_rng_uniform(&rng) < 0.3;
        in_a += a;
        for (int p = 0; p < D; p++)
            ds.images[(size_t)i * D + p] =
                to_byte(pattern(a ? 0 : 2, p / S, p % S, S) + 0.05 * at_rng_normal(&rng));
    }
    at_gmm *g;
    at_error err;
    CHECK_OK(at_gmm_fit(&g, &ds, &(at_gmm_options){.dims = 6, .components = 2, .iterations = 30},
                        &rng, &err), &err);
    REQUIRE(g);
    double ll[31];
    CHECK_EQ_INT(at_gmm_log_likelihood(g, ll, 31), 31);
    for (int t = 1; t <= 30; t++)
        CHECK(ll[t] >= ll[t - 1] - 1e-9 * fabs(ll[t - 1]));
    printf("  log-likelihood per example %.3f at the start, %.3f after 30 steps\n", ll[0], ll[30]);
    double weight[2];
    float mean[2][D];
    for (int c = 0; c < 2; c++)
        CHECK_OK(at_gmm_component(g, 0, c, &weight[c], mean[c], &err), &err);
    const int a = weight[0] < weight[1] ? 0 : 1; /* the lighter component is the 30% one */
    CHECK_CLOSE(weight[a], (double)in_a / N, 0.01, 0);
    CHECK_CLOSE(weight[a] + weight[1 - a], 1.0, 1e-9, 0);
    double worst = 0;
    for (int p = 0; p < D; p++) {
        const double ea = fabs(mean[a][p] - pattern(0, p / S, p % S, S));
        const double eb = fabs(mean[1 - a][p] - pattern(2, p / S, p % S, S));
        worst = fmax(worst, fmax(ea, eb));
    }
    printf("  weights %.3f / %.3f (true %.3f), largest error of a mean pixel %.4f\n", weight[a],
           weight[1 - a], (double)in_a / N, worst);
    CHECK(worst < 0.02);
    CHECK_EQ_INT(at_gmm_component(g, 0, 2, NULL, NULL, &err), AT_ERR_ARG);
    CHECK_EQ_INT(at_gmm_component(g, 1, 0, NULL, NULL, &err), AT_ERR_ARG);
    at_gmm_free(g);
    free_set(&ds);
}

/* On real images EM still never lowers the log-likelihood. */
TEST(em_on_fashion_mnist)
{
    at_dataset full, ds;
    at_error err;
    if (at_dataset_open(&full, "fashion-mnist", NULL, "test", &err)) {
        TEST_FAIL_("%s", err.message);
        return;
    }
    CHECK_OK(at_dataset_slice(&ds, &full, 0, 3000, &err), &err);
    at_dataset_free(&full);
    at_rng rng;
    at_rng_seed(&rng, 11);
    at_gmm *g;
    CHECK_OK(at_gmm_fit(&g, &ds, &(at_gmm_options){.dims = 24, .components = 4, .iterations = 25},
                        &rng, &err), &err);
    REQUIRE(g);
    double ll[26];
    CHECK_EQ_INT(at_gmm_log_likelihood(g, ll, 26), 26);
    int drops = 0;
    for (int t = 1; t <= 25; t++)
        drops += ll[t] < ll[t - 1] - 1e-9 * fabs(ll[t - 1]);
    CHECK_EQ_INT(drops, 0);
    CHECK(ll[25] > ll[0]);
    printf("  log-likelihood per example %.2f -> %.2f\n", ll[0], ll[25]);
    at_gmm_free(g);
    at_dataset_free(&ds);
}

/* Small classes get one component per example; empty classes are never drawn. */
TEST(small_and_empty_classes)
{
    enum { S = 4, D = S * S, N = 41, SAMPLES = 400 };
    at_dataset ds = pattern_set(N, S, 3, 0.1, 9);
    for (int i = 0; i < N; i++)
        ds.labels[i] = i == N - 1 ? 1 : 0; /* class 1: one image; class 2: none */
    at_rng rng;
    at_rng_seed(&rng, 1);
    at_gmm *g;
    at_error err;
    CHECK_OK(at_gmm_fit(&g, &ds, &(at_gmm_options){.components = 3}, &rng, &err), &err);
    REQUIRE(g);
    CHECK_EQ_INT(at_gmm_get_options(g)->dims, D); /* the default 64 is capped at 16 pixels */
    double w;
    CHECK_OK(at_gmm_component(g, 1, 1, &w, NULL, &err), &err);
    CHECK(w == 0.0);
    static uint8_t images[SAMPLES * D];
    int32_t labels[SAMPLES];
    CHECK_OK(at_gmm_sample(g, SAMPLES, &rng, images, labels, &err), &err);
    int count[3] = {0};
    for (int i = 0; i < SAMPLES; i++)
        count[labels[i]]++;
    CHECK_EQ_INT(count[2], 0);
    CHECK(count[0] > 150 && count[1] > 150);
    /* the one image of class 1 comes back (nearly) as it is */
    for (int i = 0; i < SAMPLES; i++)
        if (labels[i] == 1)
            for (int p = 0; p < D; p++)
                CHECK(abs(images[(size_t)i * D + p] - ds.images[(size_t)(N - 1) * D + p]) <= 1);
    CHECK_OK(at_gmm_sample(g, 0, &rng, NULL, NULL, &err), &err);
    at_gmm_free(g);
    free_set(&ds);
}

TEST(bad_options)
{
    at_dataset ds = pattern_set(30, 4, 2, 0.1, 1);
    at_rng rng;
    at_rng_seed(&rng, 1);
    at_gmm *g = (at_gmm *)&rng;
    at_error err;
    CHECK_EQ_INT(at_gmm_fit(&g, &ds, &(at_gmm_options){.dims = 17}, &rng, &err), AT_ERR_ARG);
    CHECK(g == NULL && strstr(err.message, "17 PCA dimensions") != NULL);
    CHECK_EQ_INT(at_gmm_fit(&g, &ds, &(at_gmm_options){.components = -1}, &rng, &err), AT_ERR_ARG);
    CHECK_EQ_INT(at_gmm_fit(&g, &ds, &(at_gmm_options){.iterations = -5}, &rng, &err), AT_ERR_ARG);
    ds.labels[3] = 2;
    CHECK_EQ_INT(at_gmm_fit(&g, &ds, NULL, &rng, &err), AT_ERR_ARG);
    CHECK(strstr(err.message, "label 2 of example 3") != NULL);
    ds.labels[3] = 1;
    ds.n = 0;
    CHECK_EQ_INT(at_gmm_fit(&g, &ds, NULL, &rng, &err), AT_ERR_ARG);
    ds.n = 30;
    CHECK_OK(at_gmm_fit(&g, &ds, NULL, &rng, &err), &err);
    REQUIRE(g);
    CHECK_EQ_INT(at_gmm_sample(g, -1, &rng, NULL, NULL, &err), AT_ERR_ARG);
    at_gmm_free(g);
    at_gmm_free(NULL);
    free_set(&ds);
}

TEST_MAIN(TEST_ENTRY(samples_look_like_their_class), TEST_ENTRY(seed_determines_samples),
          TEST_ENTRY(pca_recovers_a_subspace), TEST_ENTRY(em_finds_a_known_mixture),
          TEST_ENTRY(em_on_fashion_mnist), TEST_ENTRY(small_and_empty_classes),
          TEST_ENTRY(bad_options))
