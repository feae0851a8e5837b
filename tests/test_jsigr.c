/* test_jsigr.c: J-SIGR pinned to its definition. With both penalty weights 0 it trains exactly as
 * standard training; the backward pass it runs several times on one forward gives the same
 * gradients each time; and the weight gradient of its input-gradient penalty (double
 * backpropagation by finite differences) matches central differences over the weights of the
 * penalty itself. (The PyTorch tier checks it against exact double backpropagation.) */
#include "test.h"

#include "advtrain.h"
#include "util/train_fixtures.h"

#include <stdlib.h>

TEST(jsigr_with_zero_weights_is_standard_training)
{
    at_dataset d = bands_data(64, 1);
    at_train_config std = bands_config("standard"), js = bands_config("jsigr");
    js.eps = 0.0f;
    at_train_config_set(&js, "jacobian-weight", "0");
    at_train_config_set(&js, "selective-weight", "0");
    size_t n1, n2;
    float *a = bands_train(&std, &d, &n1), *b = bands_train(&js, &d, &n2);
    REQUIRE(a && b && n1 == n2);
    CHECK(memcmp(a, b, n1 * sizeof(float)) == 0);
    /* each penalty changes the step */
    at_train_config_set(&js, "selective-weight", "1");
    float *c = bands_train(&js, &d, &n2);
    at_train_config_set(&js, "selective-weight", "0");
    at_train_config_set(&js, "jacobian-weight", "0.1");
    float *e = bands_train(&js, &d, &n2);
    CHECK(c && memcmp(a, c, n1 * sizeof(float)) != 0);
    CHECK(e && memcmp(a, e, n1 * sizeof(float)) != 0);
    free(a);
    free(b);
    free(c);
    free(e);
    bands_free(&d);
}

TEST(a_second_backward_on_one_forward_gives_the_same_gradient)
{
    at_model *m = bands_mlp(2);
    REQUIRE(m);
    at_pass *p = NULL;
    at_error err;
    CHECK_OK(at_pass_create(&p, m, 4, AT_PASS_NO_WEIGHT_GRADS, &err), &err);
    REQUIRE(p);
    float x[4 * 64], d1[16] = {0}, d2[16], g[4 * 64];
    at_rng rng;
    at_rng_seed(&rng, 5);
    for (int j = 0; j < 4 * 64; j++)
        x[j] = (float)at_rng_uniform(&rng);
    for (int j = 0; j < 16; j++)
        d2[j] = (float)at_rng_normal(&rng);
    d1[1] = 1.0f;
    CHECK_OK(at_forward(p, x, 4, AT_BN_BATCH_STATS), NULL);
    CHECK_OK(at_backward(p, d2, AT_GRAD_INPUT), NULL);
    memcpy(g, at_pass_input_grad(p), sizeof g);
    CHECK_OK(at_backward(p, d1, AT_GRAD_INPUT), NULL); /* another gradient in between */
    CHECK_OK(at_backward(p, d2, AT_GRAD_INPUT), NULL);
    CHECK(memcmp(g, at_pass_input_grad(p), sizeof g) == 0);
    at_pass_free(p);
    at_model_free(m);
}

/* P(theta) = (1/n) sum_i ||grad_x CE_i||^2 on the batch x (float, through the library) */
static double penalty(at_model *m, at_pass *p, const float *x, const int32_t *y, int n)
{
    float dlogits[16 * BANDS_K];
    at_forward(p, x, n, AT_BN_BATCH_STATS);
    at_loss_cross_entropy(at_pass_logits(p), n, BANDS_K, &(at_ce_target){.labels = y}, NULL,
                          dlogits);
    for (int j = 0; j < n * BANDS_K; j++)
        dlogits[j] *= (float)n; /* the gradient of each example's own loss */
    at_backward(p, dlogits, AT_GRAD_INPUT);
    const float *g = at_pass_input_grad(p);
    double sum = 0.0;
    for (int j = 0; j < n * BANDS_HW * BANDS_HW; j++)
        sum += (double)g[j] * g[j];
    (void)m;
    return sum / n;
}

TEST(the_penalty_weight_gradient_matches_differences_of_the_penalty)
{
    enum { N = 16 };
    at_dataset d = bands_data(N, 7);
    /* one step of plain SGD at rate 1 over the one batch: theta_0 - theta_1 is the gradient */
    at_train_config std = bands_config("standard"), js = bands_config("jsigr");
    std.epochs = js.epochs = 1;
    std.lr = js.lr = (at_lr_schedule){.kind = AT_LR_CONSTANT, .base = 1.0f};
    std.optimizer = js.optimizer = (at_optimizer_options){0};
    js.eps = 0.0f;
    at_train_config_set(&js, "jacobian-weight", "0");
    at_train_config_set(&js, "mask-fraction", "1"); /* M = 1: the plain input-gradient norm */
    at_train_config_set(&js, "fd-step", "0.001");
    size_t count;
    float *a = bands_train(&std, &d, &count), *b = bands_train(&js, &d, &count);
    REQUIRE(a && b);
    /* the penalty's gradient is the difference of the two steps: (theta_std - theta_js) */
    at_model *m = bands_mlp(1);
    at_pass *p = NULL;
    at_error err;
    CHECK_OK(at_pass_create(&p, m, N, AT_PASS_NO_WEIGHT_GRADS, &err), &err);
    float x[N * BANDS_HW * BANDS_HW];
    for (int j = 0; j < N * BANDS_HW * BANDS_HW; j++)
        x[j] = d.images[j] / 255.0f;
    float *theta = at_model_params(m, &count);
    double err2 = 0.0, norm2 = 0.0;
    int checked = 0;
    for (size_t j = 0; j < count; j++) {
        const float saved = theta[j];
        double fd[2];
        const double steps[2] = {2e-3, 1e-3};
        for (int s = 0; s < 2; s++) {
            theta[j] = saved + (float)steps[s];
            double up = penalty(m, p, x, d.labels, N);
            theta[j] = saved - (float)steps[s];
            double down = penalty(m, p, x, d.labels, N);
            fd[s] = (up - down) / (2 * steps[s]);
        }
        theta[j] = saved;
        if (fabs(fd[0] - fd[1]) > 1e-4 + 2e-2 * fabs(fd[0]))
            continue; /* a ReLU kink within reach */
        const double analytic = (double)a[j] - b[j];
        err2 += (analytic - fd[1]) * (analytic - fd[1]);
        norm2 += fd[1] * fd[1];
        checked++;
    }
    CHECK(checked > (int)count / 2);
    CHECK(norm2 > 1e-8); /* the penalty moves the weights: the comparison means something */
    CHECK(sqrt(err2 / norm2) < 2e-2);
    printf("  penalty gradient: relative error %.2e over %d of %zu weights\n",
           sqrt(err2 / norm2), checked, count);
    at_pass_free(p);
    at_model_free(m);
    free(a);
    free(b);
    bands_free(&d);
}

TEST(jsigr_refuses_what_it_does_not_use)
{
    at_dataset d = bands_data(16, 1);
    at_train_config js = bands_config("jsigr"); /* eps is set: J-SIGR has no attack */
    size_t count;
    CHECK(bands_train(&js, &d, &count) == NULL);
    js.eps = 0.0f;
    at_train_config_set(&js, "occlusion-patch", "9"); /* larger than the 8x8 image */
    CHECK(bands_train(&js, &d, &count) == NULL);
    bands_free(&d);
}

TEST_MAIN(TEST_ENTRY(jsigr_with_zero_weights_is_standard_training),
          TEST_ENTRY(a_second_backward_on_one_forward_gives_the_same_gradient),
          TEST_ENTRY(the_penalty_weight_gradient_matches_differences_of_the_penalty),
          TEST_ENTRY(jsigr_refuses_what_it_does_not_use))
