/* test_sat.c: stylized max-margin AT pinned to its definition. With its style and content weights
 * at 0, the class term "toward" and no random start, its adversary is a targeted PGD to the
 * target's class, and one SGD step equals the gradient of CE(f(x'), y) + gamma max(0, ||h(x') -
 * h(x)|| - ||h(x') - h(x_t)|| + m) written out here; the style and content terms change it. */
#include "test.h"

#include "advtrain.h"
#include "util/train_fixtures.h"

#include <stdlib.h>

enum { N = 16, IMAGE = BANDS_HW * BANDS_HW, K = BANDS_K };

/* Two distinct images, 8 copies each (labels 0 and 1): whatever the batch order, each example's
 * target (the next example of another class) is a copy of the other image. */
static at_dataset two_images(void)
{
    at_dataset d = bands_data(N, 5);
    for (int i = 0; i < N; i++) {
        memcpy(d.images + (size_t)i * IMAGE, d.images + (size_t)(i < N / 2 ? 0 : 1) * IMAGE,
               IMAGE);
        d.labels[i] = i < N / 2 ? 0 : 1;
    }
    return d;
}

static at_train_config one_plain_step(const char *method)
{
    at_train_config c = bands_config(method);
    c.epochs = 1;
    c.lr = (at_lr_schedule){.kind = AT_LR_CONSTANT, .base = 1.0f};
    c.optimizer = (at_optimizer_options){0};
    return c;
}

/* d/dz of gamma * hinge for the triplet (a, s, t), added into ga, gs, gt (scaled by `scale`) */
static double triplet(const float *a, const float *s, const float *t, double gamma, double m,
                      double scale, double *ga, double *gs, double *gt)
{
    double ds = 0, dt = 0;
    for (int j = 0; j < K; j++) {
        ds += ((double)a[j] - s[j]) * ((double)a[j] - s[j]);
        dt += ((double)a[j] - t[j]) * ((double)a[j] - t[j]);
    }
    ds = sqrt(ds);
    dt = sqrt(dt);
    double h = ds - dt + m;
    if (h <= 0)
        return 0.0;
    for (int j = 0; j < K; j++) {
        double us = ((double)a[j] - s[j]) / ds, ut = ((double)a[j] - t[j]) / dt;
        ga[j] += scale * gamma * (us - ut);
        gs[j] -= scale * gamma * us;
        gt[j] += scale * gamma * ut;
    }
    return gamma * h;
}

TEST(sat_without_style_and_content_is_targeted_pgd_at_with_the_margin)
{
    at_dataset d = two_images();
    at_train_config sat = one_plain_step("sat");
    at_train_config_set(&sat, "style-weight", "0");
    at_train_config_set(&sat, "content-weight", "0");
    at_train_config_set(&sat, "class-term", "toward");
    at_train_config_set(&sat, "random-start", "false");
    at_train_config_set(&sat, "margin", "2");
    size_t count;
    float *trained = bands_train(&sat, &d, &count);
    REQUIRE(trained);

    /* the same step by hand on the two distinct images */
    at_model *m = bands_mlp(1);
    at_error err;
    at_attack *pgd = NULL;
    const at_attack_options o = {.norm = AT_NORM_LINF, .eps = sat.eps, .steps = 10,
                                 .step_size = sat.eps / 4, .no_random_start = true,
                                 .targeted = true, .bn_mode = AT_BN_EVAL,
                                 .loss = AT_ATTACK_LOSS_CE};
    CHECK_OK(at_attack_create(&pgd, "pgd", m, 2, &o, &err), &err);
    float x[2 * IMAGE], x_adv[2 * IMAGE];
    for (int j = 0; j < IMAGE; j++) {
        x[j] = d.images[j] / 255.0f;
        x[IMAGE + j] = d.images[(size_t)(N - 1) * IMAGE + j] / 255.0f;
    }
    const int32_t y[2] = {0, 1}, target[2] = {1, 0};
    const uint64_t seeds[2] = {1, 2};
    CHECK_OK(at_attack_run(pgd, x, y, target, 2, seeds, x_adv, NULL), NULL);
    at_pass *adv = NULL, *clean = NULL;
    CHECK_OK(at_pass_create(&adv, m, 2, 0, &err), &err);
    CHECK_OK(at_pass_create(&clean, m, 2, 0, &err), &err);
    at_forward(adv, x_adv, 2, AT_BN_TRAIN);
    at_forward(clean, x, 2, AT_BN_TRAIN);
    const float *za = at_pass_logits(adv), *zc = at_pass_logits(clean);
    float da[2 * K], dc[2 * K];
    at_loss_cross_entropy(za, 2, K, &(at_ce_target){.labels = y}, NULL, da);
    double ga[2 * K] = {0}, gc[2 * K] = {0};
    double hinge = 0.0;
    for (int i = 0; i < 2; i++) /* the batch mean over 16 copies is the mean over the 2 */
        hinge += triplet(za + i * K, zc + i * K, zc + (1 - i) * K, 1.0, 2.0, 0.5, ga + i * K,
                         gc + i * K, gc + (1 - i) * K);
    CHECK(hinge > 0); /* the margin term is active, so it is checked */
    for (int j = 0; j < 2 * K; j++) {
        da[j] += (float)ga[j];
        dc[j] = (float)gc[j];
    }
    at_model_zero_grad(m);
    at_backward(adv, da, AT_GRAD_WEIGHTS);
    at_backward(clean, dc, AT_GRAD_WEIGHTS);
    double largest;
    CHECK(sgd_step_gap(m, trained, &largest) < 1e-5);
    CHECK(largest > 1e-3);

    /* the style and content pulls change the adversary, hence the step */
    at_train_config_set(&sat, "style-weight", "1");
    float *styled = bands_train(&sat, &d, &count);
    at_train_config_set(&sat, "style-weight", "0");
    at_train_config_set(&sat, "content-weight", "1");
    float *content = bands_train(&sat, &d, &count);
    CHECK(styled == NULL); /* an MLP has no block end to take features at */
    CHECK(content == NULL);
    free(styled);
    free(content);
    at_pass_free(adv);
    at_pass_free(clean);
    at_attack_free(pgd);
    at_model_free(m);
    free(trained);
    bands_free(&d);
}

/* conv (4 ch) -> relu -> maxpool -> conv (4 ch) -> relu -> maxpool -> flatten -> linear: two
 * block ends for the style and content terms */
static at_model *two_block_cnn(void)
{
    at_model *m = NULL;
    at_error err;
    CHECK_OK(at_model_begin(&m, 1, BANDS_HW, BANDS_HW, &err), &err);
    int x = at_add_conv2d(m, 0, "conv1", 4, 3, 1, 1, true);
    x = at_add_maxpool2d(m, at_add_relu(m, x), 2, 2);
    x = at_add_conv2d(m, x, "conv2", 4, 3, 1, 1, true);
    x = at_add_maxpool2d(m, at_add_relu(m, x), 2, 2);
    at_add_linear(m, at_add_flatten(m, x), "fc", K, true);
    CHECK_OK(at_model_finish(m, 3, &err), &err);
    return m;
}

TEST(style_and_content_terms_change_the_adversary_of_a_cnn)
{
    at_dataset d = bands_data(32, 3);
    at_train_config plain = bands_config("sat");
    plain.epochs = 1;
    at_train_config_set(&plain, "style-weight", "0");
    at_train_config_set(&plain, "content-weight", "0");
    at_train_config styled = plain, content = plain;
    at_train_config_set(&styled, "style-weight", "1");
    at_train_config_set(&content, "content-weight", "1");
    size_t count;
    float *a = train_model(two_block_cnn(), &plain, &d, &count);
    float *b = train_model(two_block_cnn(), &styled, &d, &count);
    float *c = train_model(two_block_cnn(), &content, &d, &count);
    float *again = train_model(two_block_cnn(), &styled, &d, &count);
    REQUIRE(a && b && c && again);
    CHECK(memcmp(a, b, count * sizeof(float)) != 0);
    CHECK(memcmp(a, c, count * sizeof(float)) != 0);
    CHECK(memcmp(b, again, count * sizeof(float)) == 0); /* deterministic */
    for (size_t j = 0; j < count; j++)
        CHECK(isfinite(b[j]) && isfinite(c[j]));
    free(a);
    free(b);
    free(c);
    free(again);
    bands_free(&d);
}

TEST_MAIN(TEST_ENTRY(sat_without_style_and_content_is_targeted_pgd_at_with_the_margin),
          TEST_ENTRY(style_and_content_terms_change_the_adversary_of_a_cnn))
