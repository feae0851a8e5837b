/* test_smoothmix.c: SmoothMix pinned to its definition on a tiny problem. With noise too small
 * to matter and the mix loss off, a step is the cross-entropy step at its clean side: x itself,
 * or (mix-step 1) the one-step adversary written out here: x + alpha g / ||g||, clipped to
 * [0, 1], g the gradient of the cross-entropy (the smoothed loss -log F_y with one copy). The
 * mix loss changes the step; impossible options are refused. */
#include "test.h"

#include "advtrain.h"
#include "util/train_fixtures.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { N = 16, IMAGE = BANDS_HW * BANDS_HW, K = BANDS_K };

static at_train_config one_step(const char *eta, const char *steps, const char *mix_step)
{
    at_train_config c = bands_config("smoothmix");
    c.eps = 0.0f;
    c.epochs = 1;
    c.batch_size = N;
    c.lr = (at_lr_schedule){.kind = AT_LR_CONSTANT, .base = 1.0f};
    c.optimizer = (at_optimizer_options){0};
    at_train_config_set(&c, "smooth-sigma", "1e-6");
    at_train_config_set(&c, "num-noise", "1");
    at_train_config_set(&c, "smoothmix-warmup", "0");
    at_train_config_set(&c, "smoothmix-alpha", "0.5");
    at_train_config_set(&c, "smoothmix-eta", eta);
    at_train_config_set(&c, "smoothmix-steps", steps);
    at_train_config_set(&c, "mix-step", mix_step);
    return c;
}

/* The cross-entropy step at x, or at the one-step adversary of alpha 0.5, on a fresh model. */
static double gap_to_step_by_hand(const float *trained, bool one_step_adversary,
                                  const at_dataset *d)
{
    at_model *m = bands_mlp(1);
    at_error err;
    at_pass *p = NULL;
    if (!m || at_pass_create(&p, m, N, 0, &err))
        return INFINITY;
    float x[N * IMAGE], dlogits[N * K];
    int32_t y[N];
    for (int j = 0; j < N * IMAGE; j++)
        x[j] = d->images[j] / 255.0f;
    for (int i = 0; i < N; i++)
        y[i] = d->labels[i];
    const at_ce_target t = {.labels = y};
    if (one_step_adversary) {
        at_forward(p, x, N, AT_BN_EVAL);
        at_loss_cross_entropy(at_pass_logits(p), N, K, &t, NULL, dlogits);
        at_backward(p, dlogits, AT_GRAD_INPUT);
        const float *g = at_pass_input_grad(p);
        float step[N * IMAGE];
        for (int i = 0; i < N; i++) {
            double sq = 0;
            for (int j = 0; j < IMAGE; j++)
                sq += (double)g[i * IMAGE + j] * g[i * IMAGE + j];
            for (int j = 0; j < IMAGE; j++)
                step[i * IMAGE + j] = (float)(0.5 * g[i * IMAGE + j] / sqrt(sq));
        }
        for (int j = 0; j < N * IMAGE; j++)
            x[j] = fminf(fmaxf(x[j] + step[j], 0.0f), 1.0f);
    }
    at_forward(p, x, N, AT_BN_TRAIN);
    at_loss_cross_entropy(at_pass_logits(p), N, K, &t, NULL, dlogits);
    at_model_zero_grad(m);
    at_backward(p, dlogits, AT_GRAD_WEIGHTS);
    double largest;
    const double gap = sgd_step_gap(m, trained, &largest);
    at_pass_free(p);
    at_model_free(m);
    return largest > 1e-3 ? gap : INFINITY;
}

/* The trainer shuffles; the batch is the whole set, and a mean over it does not depend on the
 * order. */
TEST(without_the_mix_loss_it_is_cross_entropy_at_x)
{
    at_dataset d = bands_data(N, 5);
    at_train_config c = one_step("0", "2", "0");
    size_t count;
    float *trained = bands_train(&c, &d, &count);
    REQUIRE(trained);
    CHECK(gap_to_step_by_hand(trained, false, &d) < 1e-4);
    free(trained);
    bands_free(&d);
}

TEST(mix_step_one_takes_the_one_step_adversary_as_the_clean_side)
{
    at_dataset d = bands_data(N, 5);
    at_train_config c = one_step("0", "1", "1");
    size_t count;
    float *trained = bands_train(&c, &d, &count);
    REQUIRE(trained);
    CHECK(gap_to_step_by_hand(trained, true, &d) < 1e-4);
    CHECK(gap_to_step_by_hand(trained, false, &d) > 1e-3); /* and the adversary moved it */
    free(trained);
    bands_free(&d);
}

TEST(the_mix_loss_changes_the_step)
{
    at_dataset d = bands_data(N, 5);
    at_train_config off = one_step("0", "2", "0"), on = one_step("5", "2", "0");
    size_t n_off, n_on;
    float *a = bands_train(&off, &d, &n_off), *b = bands_train(&on, &d, &n_on);
    REQUIRE(a && b && n_off == n_on);
    double moved = 0;
    for (size_t j = 0; j < n_on; j++) {
        CHECK(isfinite(b[j]));
        moved = fmax(moved, fabs((double)a[j] - b[j]));
    }
    CHECK(moved > 1e-5);
    free(a);
    free(b);
    bands_free(&d);
}

TEST(impossible_options_are_refused)
{
    at_dataset d = bands_data(N, 5);
    size_t count;
    at_train_config c = one_step("1", "2", "3"); /* mix-step past the last step */
    CHECK(bands_train(&c, &d, &count) == NULL);
    at_train_config s = one_step("1", "2", "0");
    at_train_config_set(&s, "smooth-sigma", "0");
    CHECK(bands_train(&s, &d, &count) == NULL);
    at_train_config e = one_step("1", "2", "0");
    e.eps = 0.1f; /* SmoothMix has no eps ball */
    CHECK(bands_train(&e, &d, &count) == NULL);
    bands_free(&d);
}

TEST_MAIN(TEST_ENTRY(without_the_mix_loss_it_is_cross_entropy_at_x),
          TEST_ENTRY(mix_step_one_takes_the_one_step_adversary_as_the_clean_side),
          TEST_ENTRY(the_mix_loss_changes_the_step), TEST_ENTRY(impossible_options_are_refused))
