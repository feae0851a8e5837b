/* test_rlat.c: RLAT and Gaussian augmentation pinned to their definitions. RLAT's points on
 * PreAct ResNet-18 are the paper's six with its radii; one RLAT step equals the step written out
 * here from the paper (gradients at every point at delta = 0, one normalised or signed step, the
 * training pass with the perturbations added), in L2 and Linf and with part of the batch clean;
 * with nothing perturbed it is standard training. Gaussian augmentation with no noisy rows, or
 * with noise of sigma 0, is standard training; with noise it is not. */
#include "test.h"

#include "advtrain.h"
#include "graph/graph.h"
#include "train/method.h"
#include "util/train_fixtures.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { N = 16, IMAGE = BANDS_HW * BANDS_HW, K = BANDS_K };

TEST(points_of_preact_resnet18_are_the_papers_six)
{
    at_model *m = NULL;
    at_error err;
    CHECK_OK(at_model_create(&m, "preact-resnet18", NULL, &err), &err);
    int nodes[AT_RLAT_MAX_POINTS];
    REQUIRE(at_rlat_points(m, nodes, AT_RLAT_MAX_POINTS) == 6);
    /* the shapes of entry 6.3: input, conv1, layer1..layer4, and the multipliers n_i / 3072 /
     * (i + 1) it gives: 1, 10.67, 7.11, 2.67, 1.07, 0.44 */
    const int shapes[6][3] = {{3, 32, 32}, {64, 32, 32}, {64, 32, 32}, {128, 16, 16}, {256, 8, 8},
                              {512, 4, 4}};
    const double published[6] = {1, 10.67, 7.11, 2.67, 1.07, 0.44};
    for (int i = 0; i < 6; i++) {
        int c, h, w;
        at_model_node_shape(m, nodes[i], &c, &h, &w);
        CHECK(c == shapes[i][0] && h == shapes[i][1] && w == shapes[i][2]);
        CHECK_CLOSE((double)c * h * w / 3072.0 / (i + 1), published[i], 0.006, 0.0);
    }
    CHECK(nodes[0] == 0);
    at_model_free(m);
}

/* conv 3x3 (4) -> relu -> maxpool 2 -> conv 3x3 (4) -> relu -> maxpool 2 -> flatten -> linear 4,
 * on the 1x8x8 bands: RLAT's points are the input, conv1 and the two pooling outputs. */
static at_model *conv_model(void)
{
    at_model *m = NULL;
    at_error err;
    if (at_model_begin(&m, 1, BANDS_HW, BANDS_HW, &err))
        return NULL;
    int x = at_add_conv2d(m, 0, "conv1", 4, 3, 1, 1, true);
    x = at_add_relu(m, x);
    x = at_add_maxpool2d(m, x, 2, 2);
    x = at_add_conv2d(m, x, "conv2", 4, 3, 1, 1, true);
    x = at_add_relu(m, x);
    x = at_add_maxpool2d(m, x, 2, 2);
    x = at_add_flatten(m, x);
    at_add_linear(m, x, "fc", K, true);
    if (at_model_finish(m, 7, &err)) {
        at_model_free(m);
        return NULL;
    }
    return m;
}

static at_train_config one_step(const char *method)
{
    at_train_config c = bands_config(method);
    c.epochs = 1;
    c.batch_size = N;
    c.lr = (at_lr_schedule){.kind = AT_LR_CONSTANT, .base = 1.0f};
    c.optimizer = (at_optimizer_options){0};
    if (!strcmp(method, "rlat"))
        c.no_robust_validation = true;
    else
        c.eps = 0.0f; /* not an adversarial method */
    return c;
}

static void images(const at_dataset *d, float *x, int32_t *y)
{
    for (int j = 0; j < N * IMAGE; j++)
        x[j] = d->images[j] / 255.0f;
    for (int i = 0; i < N; i++)
        y[i] = d->labels[i];
}

/* One RLAT step written out from the paper on a fresh conv_model; its weight gradient is left in
 * the model. The first `clean` rows are not perturbed. */
static at_model *rlat_by_hand(const at_dataset *d, float eps, at_norm norm, int clean)
{
    at_model *m = conv_model();
    at_error err;
    at_pass *p = NULL;
    if (!m || at_pass_create(&p, m, N, AT_PASS_KEEP_ALL, &err))
        return NULL;
    const int points[4] = {0, 1, 3, 6};
    const double radius[4] = {1.0, 256.0 / 64 / 2, 64.0 / 64 / 3, 16.0 / 64 / 4};
    float x[N * IMAGE], dlogits[N * K];
    int32_t y[N];
    images(d, x, y);
    const at_ce_target t = {.labels = y};
    at_forward(p, x, N, AT_BN_TRAIN);
    at_loss_cross_entropy(at_pass_logits(p), N, K, &t, NULL, dlogits);
    at_backward(p, dlogits, AT_GRAD_INPUT);
    float *delta[4] = {0};
    for (int i = 0; i < 4; i++) {
        int c, h, w;
        at_model_node_shape(m, points[i], &c, &h, &w);
        const size_t per = (size_t)c * h * w;
        const float *g = i == 0 ? at_pass_input_grad(p) : at_pass_grad(p, points[i]);
        delta[i] = calloc((size_t)N * per, sizeof(float));
        for (int r = clean; r < N; r++) {
            const float *gr = g + (size_t)r * per;
            double norm2 = 0;
            for (size_t j = 0; j < per; j++)
                norm2 += (double)gr[j] * gr[j];
            for (size_t j = 0; j < per; j++) {
                double v = norm == AT_NORM_L2 ? eps * radius[i] * gr[j] / sqrt(norm2)
                                              : fmin(eps * radius[i], eps) *
                                                    ((gr[j] > 0) - (gr[j] < 0));
                delta[i][(size_t)r * per + j] = (float)v;
            }
        }
    }
    float x_adv[N * IMAGE];
    for (int j = 0; j < N * IMAGE; j++)
        x_adv[j] = fminf(fmaxf(x[j] + delta[0][j], 0.0f), 1.0f);
    for (int i = 1; i < 4; i++)
        at_pass_set_perturbation(p, points[i], delta[i]);
    at_forward(p, x_adv, N, AT_BN_TRAIN);
    at_loss_cross_entropy(at_pass_logits(p), N, K, &t, NULL, dlogits);
    at_model_zero_grad(m);
    at_backward(p, dlogits, AT_GRAD_WEIGHTS);
    for (int i = 0; i < 4; i++)
        free(delta[i]);
    at_pass_free(p);
    return m;
}

static void check_step(at_norm norm, float eps, const char *part, int clean)
{
    at_dataset d = bands_data(N, 5);
    if (clean) /* which rows the trainer's shuffle puts first is its own: make them all alike */
        for (int i = 1; i < N; i++) {
            memcpy(d.images + (size_t)i * IMAGE, d.images, IMAGE);
            d.labels[i] = d.labels[0];
        }
    at_model *m = conv_model();
    REQUIRE(m);
    int nodes[AT_RLAT_MAX_POINTS];
    REQUIRE(at_rlat_points(m, nodes, AT_RLAT_MAX_POINTS) == 4);
    CHECK(nodes[0] == 0 && nodes[1] == 1 && nodes[2] == 3 && nodes[3] == 6);
    at_train_config c = one_step("rlat");
    c.norm = norm;
    c.eps = eps;
    if (part)
        at_train_config_set(&c, "rlat-part", part);
    size_t count;
    float *trained = train_model(m, &c, &d, &count);
    REQUIRE(trained);
    at_model *by_hand = rlat_by_hand(&d, eps, norm, clean);
    REQUIRE(by_hand);
    double largest;
    CHECK(sgd_step_gap(by_hand, trained, &largest) < 2e-5);
    CHECK(largest > 1e-3);
    at_model_free(by_hand);
    free(trained);
    bands_free(&d);
}

TEST(an_l2_step_is_the_papers) { check_step(AT_NORM_L2, 0.08f, NULL, 0); }
TEST(a_linf_step_is_the_papers) { check_step(AT_NORM_LINF, 0.05f, NULL, 0); }
TEST(the_clean_share_of_the_batch_is_not_perturbed) { check_step(AT_NORM_L2, 0.3f, "0.75", 4); }

TEST(nothing_perturbed_is_standard_training)
{
    at_dataset d = bands_data(N, 5);
    at_train_config c = one_step("rlat");
    at_train_config_set(&c, "rlat-part", "0");
    size_t n_rlat, n_standard;
    float *rlat = train_model(conv_model(), &c, &d, &n_rlat);
    at_train_config s = one_step("standard");
    float *standard = train_model(conv_model(), &s, &d, &n_standard);
    REQUIRE(rlat && standard && n_rlat == n_standard);
    CHECK(memcmp(rlat, standard, n_rlat * sizeof(float)) == 0);
    free(rlat);
    free(standard);
    bands_free(&d);
}

/* Gaussian augmentation: one step by hand needs the noise; instead, the trained weights with a
 * zero share equal standard training's, and with sigma 0 and every row noisy too (clipping a
 * clean image changes nothing). */
TEST(gaussian_without_noise_is_standard_training)
{
    at_dataset d = bands_data(N, 5);
    at_train_config s = one_step("standard");
    size_t n_standard, n_zero_part, n_zero_sigma, n_noisy;
    float *standard = bands_train(&s, &d, &n_standard);
    at_train_config c = one_step("gaussian");
    at_train_config_set(&c, "gauss-part", "0");
    float *zero_part = bands_train(&c, &d, &n_zero_part);
    at_train_config z = one_step("gaussian");
    at_train_config_set(&z, "gauss-part", "1");
    at_train_config_set(&z, "gauss-sigma", "0");
    float *zero_sigma = bands_train(&z, &d, &n_zero_sigma);
    at_train_config g = one_step("gaussian");
    float *noisy = bands_train(&g, &d, &n_noisy);
    REQUIRE(standard && zero_part && zero_sigma && noisy);
    CHECK(memcmp(standard, zero_part, n_standard * sizeof(float)) == 0);
    CHECK(memcmp(standard, zero_sigma, n_standard * sizeof(float)) == 0);
    CHECK(memcmp(standard, noisy, n_standard * sizeof(float)) != 0);
    free(standard);
    free(zero_part);
    free(zero_sigma);
    free(noisy);
    bands_free(&d);
}

TEST(the_clean_rows_are_counted_as_the_reference_code_does)
{
    CHECK(at_clean_rows(128, 0.5) == 64);
    CHECK(at_clean_rows(128, 0.9) == 12); /* int(0.1 * 128) = int(12.8) */
    CHECK(at_clean_rows(128, 1.0) == 0);
    CHECK(at_clean_rows(128, 0.0) == 128);
    CHECK(at_clean_rows(10, 0.3) == 7);
}

TEST(options_that_do_not_apply_are_refused)
{
    at_dataset d = bands_data(N, 5);
    at_train_config c = one_step("gaussian");
    at_train_config_set(&c, "rlat-part", "0.5");
    size_t count;
    CHECK(bands_train(&c, &d, &count) == NULL);
    at_train_config r = one_step("rlat");
    r.eps = 0.0f;
    CHECK(train_model(conv_model(), &r, &d, &count) == NULL);
    bands_free(&d);
}

TEST_MAIN(TEST_ENTRY(points_of_preact_resnet18_are_the_papers_six),
          TEST_ENTRY(an_l2_step_is_the_papers), TEST_ENTRY(a_linf_step_is_the_papers),
          TEST_ENTRY(the_clean_share_of_the_batch_is_not_perturbed),
          TEST_ENTRY(nothing_perturbed_is_standard_training),
          TEST_ENTRY(gaussian_without_noise_is_standard_training),
          TEST_ENTRY(the_clean_rows_are_counted_as_the_reference_code_does),
          TEST_ENTRY(options_that_do_not_apply_are_refused))
