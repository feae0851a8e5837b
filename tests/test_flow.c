/* test_flow.c: the normalizing flow (src/flow/): exact inverse on Fashion-MNIST test images, the
 * log-determinant against log|det J| of a central-difference Jacobian, the inverse's latent
 * gradient and the weight gradients of the likelihood against finite differences, the file
 * round trip, and that maximum likelihood lowers the bits per dimension. Couplings are given
 * random (non-zero) output layers so that every part of every step does something. */
#include "test.h"

#include "advtrain.h"

#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

static void fill(float *v, size_t n, uint64_t seed, float lo, float hi)
{
    at_rng r;
    at_rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++)
        v[i] = lo + (hi - lo) * (float)at_rng_uniform(&r);
}

/* Random weights of the couplings' zero-initialised output layers (scaled by `amp`). */
static void randomise(at_flow *f, float amp, uint64_t seed)
{
    for (int m = 0; m < at_flow_model_count(f); m++) {
        at_model *model = at_flow_model(f, m);
        for (int i = 0; i < at_model_tensor_count(model); i++) {
            at_tensor_info t = at_model_tensor(model, i);
            if (!strncmp(t.name, "out.", 4))
                fill(t.data, t.numel, seed + 97u * (uint64_t)m + (uint64_t)i, -amp, amp);
        }
    }
}

static at_flow *small_flow(int c, int hw, bool reverse, uint64_t seed)
{
    at_flow *f = NULL;
    at_error err;
    at_flow_options o = {.channels = c, .height = hw, .width = hw, .scales = 2, .steps = 2,
                         .hidden = 6, .reverse = reverse, .seed = seed};
    CHECK_OK(at_flow_create(&f, &o, 4, &err), &err);
    if (f)
        randomise(f, 0.3f, seed);
    return f;
}

/* log |det A| of an n x n matrix (LU with partial pivoting, in double) */
static double logabsdet(double *a, int n)
{
    double sum = 0.0;
    for (int c = 0; c < n; c++) {
        int p = c;
        for (int r = c + 1; r < n; r++)
            if (fabs(a[r * n + c]) > fabs(a[p * n + c]))
                p = r;
        for (int j = 0; j < n; j++) {
            double t = a[c * n + j];
            a[c * n + j] = a[p * n + j];
            a[p * n + j] = t;
        }
        sum += log(fabs(a[c * n + c]));
        for (int r = c + 1; r < n; r++) {
            const double f = a[r * n + c] / a[c * n + c];
            for (int j = c; j < n; j++)
                a[r * n + j] -= f * a[c * n + j];
        }
    }
    return sum;
}

TEST(inverse_of_forward_is_the_identity_on_fashion_mnist_test_images)
{
    at_dataset ds;
    at_error err;
    struct stat st;
    REQUIRE(stat("/usr/share/datasets/fashion-mnist", &st) == 0);
    CHECK_OK(at_dataset_open(&ds, "fashion-mnist", NULL, "test", &err), &err);
    enum { N = 16 };
    for (int reverse = 0; reverse < 2; reverse++) {
        at_flow *f = NULL;
        at_flow_options o = {.channels = 1, .height = 28, .width = 28, .hidden = 16,
                             .reverse = reverse, .seed = 5};
        CHECK_OK(at_flow_create(&f, &o, N, &err), &err);
        REQUIRE(f);
        randomise(f, 0.2f, 11);
        const size_t dim = at_flow_dim(f);
        CHECK_EQ_INT(dim, 784);
        float *x = malloc(N * dim * sizeof(float)), *z = malloc(N * dim * sizeof(float));
        float *back = malloc(N * dim * sizeof(float));
        int32_t idx[N], y[N];
        for (int i = 0; i < N; i++)
            idx[i] = 37 * i;
        at_dataset_batch(&ds, idx, N, x, y, NULL, NULL);
        double logdet[N];
        CHECK_OK(at_flow_forward(f, x, N, z, logdet), NULL);
        CHECK_OK(at_flow_inverse(f, z, N, back), NULL);
        double worst = 0.0, zmax = 0.0;
        for (size_t j = 0; j < N * dim; j++) {
            worst = fmax(worst, fabs((double)back[j] - x[j]));
            zmax = fmax(zmax, fabs((double)z[j]));
        }
        printf("  %s mixing: max |F^-1(F(x)) - x| = %.3g (max |z| %.3g)\n",
               reverse ? "reversal" : "1x1", worst, zmax);
        CHECK(worst <= 1e-5);
        CHECK(zmax > 1.0); /* the flow did transform the image */
        free(x), free(z), free(back);
        at_flow_free(f);
    }
    at_dataset_free(&ds);
}

TEST(log_determinant_equals_log_det_of_the_numerical_jacobian)
{
    for (int reverse = 0; reverse < 2; reverse++) {
        at_flow *f = small_flow(1, 4, reverse, 3 + (uint64_t)reverse);
        REQUIRE(f);
        enum { D = 16 };
        float x[D], xp[D], zp[D], zm[D], z[D];
        fill(x, D, 7, 0.1f, 0.9f);
        double logdet, ld;
        CHECK_OK(at_flow_forward(f, x, 1, z, &logdet), NULL);
        double jac[D * D];
        const float h = 1e-3f;
        for (int j = 0; j < D; j++) {
            memcpy(xp, x, sizeof x);
            xp[j] = x[j] + h;
            at_flow_forward(f, xp, 1, zp, &ld);
            xp[j] = x[j] - h;
            at_flow_forward(f, xp, 1, zm, &ld);
            const double step = (double)(x[j] + h) - (double)(x[j] - h);
            for (int i = 0; i < D; i++)
                jac[i * D + j] = ((double)zp[i] - zm[i]) / step;
        }
        const double numeric = logabsdet(jac, D);
        printf("  %s: logdet %.6f, log|det J| numerically %.6f\n", reverse ? "reversal" : "1x1",
               logdet, numeric);
        CHECK_CLOSE(logdet, numeric, 5e-3, 1e-3);
        at_flow_free(f);
    }
}

/* L(z) = sum_j c_j F^-1(z)_j */
static double inverse_loss(at_flow *f, const float *z, const float *c, size_t dim)
{
    float x[64];
    at_flow_inverse(f, z, 1, x);
    double sum = 0.0;
    for (size_t j = 0; j < dim; j++)
        sum += (double)c[j] * x[j];
    return sum;
}

TEST(latent_gradient_through_the_inverse_matches_finite_differences)
{
    for (int reverse = 0; reverse < 2; reverse++) {
        at_flow *f = small_flow(1, 4, reverse, 21 + (uint64_t)reverse);
        REQUIRE(f);
        enum { D = 16 };
        float z[D], c[D], x[D], dz[D], zp[D];
        fill(z, D, 8, -1.5f, 1.5f);
        fill(c, D, 9, -1.0f, 1.0f);
        CHECK_OK(at_flow_inverse(f, z, 1, x), NULL);
        CHECK_OK(at_flow_inverse_backward(f, c, dz), NULL);
        /* the backward pass needs the inverse it follows */
        double ld;
        at_flow_forward(f, x, 1, zp, &ld);
        CHECK_EQ_INT(at_flow_inverse_backward(f, c, dz + 0), AT_ERR_STATE);
        double worst = 0.0, norm = 0.0;
        const float h = 2e-3f;
        for (int j = 0; j < D; j++) {
            memcpy(zp, z, sizeof z);
            zp[j] = z[j] + h;
            const double up = inverse_loss(f, zp, c, D);
            zp[j] = z[j] - h;
            const double down = inverse_loss(f, zp, c, D);
            const double numeric = (up - down) / ((double)(z[j] + h) - (double)(z[j] - h));
            worst = fmax(worst, fabs(numeric - dz[j]));
            norm = fmax(norm, fabs(numeric));
        }
        printf("  %s: max |dz - finite difference| %.3g (max |dz| %.3g)\n",
               reverse ? "reversal" : "1x1", worst, norm);
        CHECK(norm > 1e-3);
        CHECK(worst <= 2e-3 * fmax(norm, 1.0));
        at_flow_free(f);
    }
}

/* L = sum_ij c_ij z_ij + sum_i d_i logdet_i over a batch of 2 */
static double forward_loss(at_flow *f, const float *x, const float *c, const float *d, size_t dim)
{
    float z[2 * 64];
    double logdet[2];
    at_flow_forward(f, x, 2, z, logdet);
    double sum = 0.0;
    for (size_t j = 0; j < 2 * dim; j++)
        sum += (double)c[j] * z[j];
    return sum + d[0] * logdet[0] + d[1] * logdet[1];
}

TEST(weight_gradients_of_the_likelihood_match_finite_differences)
{
    at_flow *f = small_flow(1, 4, false, 31);
    REQUIRE(f);
    enum { D = 16 };
    float x[2 * D], c[2 * D], z[2 * D], d[2] = {0.7f, -1.3f};
    fill(x, 2 * D, 10, 0.1f, 0.9f);
    fill(c, 2 * D, 11, -1.0f, 1.0f);
    double logdet[2];
    at_flow_zero_grad(f);
    CHECK_OK(at_flow_forward(f, x, 2, z, logdet), NULL);
    CHECK_OK(at_flow_backward(f, c, d), NULL);
    int checked = 0, bad = 0;
    for (int m = 0; m < at_flow_model_count(f); m++) {
        at_model *model = at_flow_model(f, m);
        for (int i = 0; i < at_model_tensor_count(model); i++) {
            at_tensor_info t = at_model_tensor(model, i);
            for (size_t e = 0; e < t.numel; e += t.numel / 3 + 1) {
                const float saved = t.data[e], h = 2e-3f;
                t.data[e] = saved + h;
                const double up = forward_loss(f, x, c, d, D);
                t.data[e] = saved - h;
                const double down = forward_loss(f, x, c, d, D);
                t.data[e] = saved;
                const double numeric = (up - down) / ((double)(saved + h) - (double)(saved - h));
                checked++;
                if (!(fabs(numeric - t.grad[e]) <= 3e-3 + 3e-3 * fabs(numeric))) {
                    bad++;
                    printf("  model %d %s[%zu]: %.6g vs %.6g\n", m, t.name, e, t.grad[e], numeric);
                }
            }
        }
    }
    printf("  %d weights checked, %d off\n", checked, bad);
    CHECK(checked > 40);
    CHECK_EQ_INT(bad, 0);
    at_flow_free(f);
}

TEST(a_saved_flow_loads_to_the_same_map_and_bad_files_are_refused)
{
    char dir[] = "/tmp/advtrain-test-flow-XXXXXX", path[96], other[128];
    REQUIRE(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/flow.safetensors", dir);
    at_flow *f = small_flow(1, 8, false, 41), *g = NULL;
    REQUIRE(f);
    at_error err;
    CHECK_OK(at_flow_save(path, f, &err), &err);
    CHECK_OK(at_flow_load(&g, path, 3, &err), &err);
    REQUIRE(g);
    CHECK_EQ_INT(at_flow_max_batch(g), 3);
    float x[64], z1[64], z2[64];
    fill(x, 64, 12, 0.0f, 1.0f);
    double l1, l2;
    at_flow_forward(f, x, 1, z1, &l1);
    at_flow_forward(g, x, 1, z2, &l2);
    CHECK(memcmp(z1, z2, sizeof z1) == 0 && l1 == l2);
    at_flow *bad = NULL;
    snprintf(other, sizeof other, "%s/missing.safetensors", dir);
    CHECK(at_flow_load(&bad, other, 1, &err) != AT_OK && !bad);
    CHECK(strstr(err.message, "missing.safetensors") != NULL);
    /* a safetensors file that is not a flow */
    at_model *m = NULL;
    CHECK_OK(at_model_create(&m, "linear", &(at_model_options){.in_channels = 1, .in_height = 8,
                                                               .in_width = 8}, &err), &err);
    CHECK_OK(at_checkpoint_save(other, m, NULL, NULL, 0, &err), &err);
    CHECK_EQ_INT(at_flow_load(&bad, other, 1, &err), AT_ERR_FORMAT);
    CHECK(strstr(err.message, "not a flow file") != NULL);
    at_model_free(m);
    remove(other);
    remove(path);
    rmdir(dir);
    at_flow_free(f);
    at_flow_free(g);
}

TEST(bad_shapes_and_options_are_refused)
{
    at_flow *f = NULL;
    at_error err;
    CHECK_EQ_INT(at_flow_create(&f, &(at_flow_options){.channels = 1, .height = 30, .width = 28},
                                4, &err), AT_ERR_SHAPE);
    CHECK(strstr(err.message, "multiples of 2^scales") != NULL);
    CHECK_EQ_INT(at_flow_create(&f, &(at_flow_options){.channels = 1, .height = 8, .width = 8,
                                                       .alpha = 0.6f}, 4, &err), AT_ERR_ARG);
    CHECK(!f);
}

TEST(maximum_likelihood_lowers_the_bits_per_dimension)
{
    /* 64 images of 8x8: bright squares at random places on a dark background */
    enum { N = 64, HW = 8 };
    at_dataset ds = {.n = N, .c = 1, .h = HW, .w = HW, .num_classes = 2};
    strcpy(ds.name, "squares");
    ds.images = calloc(N * HW * HW, 1);
    ds.labels = calloc(N, sizeof(int32_t));
    at_rng r;
    at_rng_seed(&r, 3);
    for (int i = 0; i < N; i++) {
        const int y0 = (int)(at_rng_uniform(&r) * 5), x0 = (int)(at_rng_uniform(&r) * 5);
        for (int y = y0; y < y0 + 3; y++)
            for (int x = x0; x < x0 + 3; x++)
                ds.images[(size_t)i * HW * HW + y * HW + x] = 230;
    }
    at_flow *f = NULL;
    at_error err;
    CHECK_OK(at_flow_create(&f, &(at_flow_options){.channels = 1, .height = HW, .width = HW,
                                                   .steps = 2, .hidden = 16, .seed = 1},
                            16, &err), &err);
    REQUIRE(f);
    at_optimizer *opts[64];
    const at_optimizer_options o = at_optimizer_defaults(AT_OPTIMIZER_ADAM);
    for (int m = 0; m < at_flow_model_count(f); m++)
        CHECK_OK(at_optimizer_create(&opts[m], at_flow_model(f, m), &o, &err), &err);
    double before, after, train;
    CHECK_OK(at_flow_test_bpd(f, &ds, 1, &before, &err), &err);
    for (int e = 0; e < 15; e++) {
        at_rng er;
        at_rng_seed(&er, (uint64_t)e);
        CHECK_OK(at_flow_train_epoch(f, opts, &ds, 16, 3e-3f, &er, &train, &err), &err);
    }
    CHECK_OK(at_flow_test_bpd(f, &ds, 1, &after, &err), &err);
    printf("  bits/dim %.3f -> %.3f\n", before, after);
    CHECK(after < before - 0.5);
    float samples[4 * HW * HW];
    CHECK_OK(at_flow_sample(f, 4, 0.7f, &r, samples, &err), &err);
    for (int j = 0; j < 4 * HW * HW; j++)
        CHECK(samples[j] >= 0.0f && samples[j] <= 1.0f);
    for (int m = 0; m < at_flow_model_count(f); m++)
        at_optimizer_free(opts[m]);
    at_flow_free(f);
    at_dataset_free(&ds);
}

TEST_MAIN(TEST_ENTRY(inverse_of_forward_is_the_identity_on_fashion_mnist_test_images),
          TEST_ENTRY(log_determinant_equals_log_det_of_the_numerical_jacobian),
          TEST_ENTRY(latent_gradient_through_the_inverse_matches_finite_differences),
          TEST_ENTRY(weight_gradients_of_the_likelihood_match_finite_differences),
          TEST_ENTRY(a_saved_flow_loads_to_the_same_map_and_bad_files_are_refused),
          TEST_ENTRY(bad_shapes_and_options_are_refused),
          TEST_ENTRY(maximum_likelihood_lowers_the_bits_per_dimension))
