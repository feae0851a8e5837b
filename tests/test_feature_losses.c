/* test_feature_losses.c: the Gram-matrix (style) and feature (content) losses on hidden nodes. A
 * Gram matrix worked by hand; each loss's gradient against central differences of the same loss
 * written in double here; and both injected at hidden nodes of a small network, where the input
 * gradient the backward pass yields matches differences of the whole network's loss. */
#include "test.h"

#include "advtrain.h"
#include "util/train_fixtures.h"

#include <stdlib.h>

TEST(gram_matrix_by_hand)
{
    /* one example, 2 channels x 2 positions: F = [[1, 2], [3, 4]], F F^T = [[5, 11], [11, 25]] */
    const float f[4] = {1, 2, 3, 4};
    float g[4];
    CHECK_OK(at_gram_matrices(f, 1, 2, 2, g), NULL);
    CHECK_CLOSE(g[0], 2.5, 1e-7, 0);
    CHECK_CLOSE(g[1], 5.5, 1e-7, 0);
    CHECK_CLOSE(g[2], 5.5, 1e-7, 0);
    CHECK_CLOSE(g[3], 12.5, 1e-7, 0);
    /* with target G(F) the loss is 0 and so is its gradient */
    float loss = -1, grad[4] = {0};
    at_error err;
    CHECK_OK(at_loss_gram(f, g, 1, 2, 2, 1.0f, &loss, NULL, grad, &err), &err);
    CHECK_CLOSE(loss, 0.0, 1e-12, 0);
    for (int j = 0; j < 4; j++)
        CHECK_CLOSE(grad[j], 0.0, 1e-12, 0);
}

enum { N = 3, C = 4, P = 5 };

/* mean over examples of ||F F^T / P - T||_F^2, in double */
static double gram_loss_double(const double *f, const float *t)
{
    double total = 0.0;
    for (int i = 0; i < N; i++)
        for (int a = 0; a < C; a++)
            for (int b = 0; b < C; b++) {
                double g = 0.0;
                for (int p = 0; p < P; p++)
                    g += f[(i * C + a) * P + p] * f[(i * C + b) * P + p];
                double d = g / P - t[(i * C + a) * C + b];
                total += d * d;
            }
    return total / N;
}

TEST(gram_loss_gradient_matches_differences_and_adds)
{
    at_rng rng;
    at_rng_seed(&rng, 3);
    float f[N * C * P], t[N * C * C], grad[N * C * P], per[N];
    double fd[N * C * P];
    for (int j = 0; j < N * C * P; j++) {
        f[j] = (float)(at_rng_uniform(&rng) * 2 - 1);
        fd[j] = f[j];
    }
    for (int j = 0; j < N * C * C; j++)
        t[j] = (float)(at_rng_uniform(&rng) - 0.5);
    for (int j = 0; j < N * C * P; j++)
        grad[j] = 1.0f; /* the gradient is added to what is there */
    const float weight = 0.5f;
    float loss;
    at_error err;
    CHECK_OK(at_loss_gram(f, t, N, C, P, weight, &loss, per, grad, &err), &err);
    CHECK_CLOSE(loss, gram_loss_double(fd, t), 1e-6, 1e-5);
    CHECK_CLOSE((per[0] + per[1] + per[2]) / 3, loss, 1e-6, 1e-5);
    const double h = 1e-6;
    for (int j = 0; j < N * C * P; j++) {
        const double saved = fd[j];
        fd[j] = saved + h;
        double up = gram_loss_double(fd, t);
        fd[j] = saved - h;
        double down = gram_loss_double(fd, t);
        fd[j] = saved;
        CHECK_CLOSE(grad[j] - 1.0, weight * (up - down) / (2 * h), 1e-5, 1e-4);
    }
    CHECK_EQ_INT(at_loss_gram(f, t, 0, C, P, 1.0f, &loss, NULL, NULL, &err), AT_ERR_ARG);
}

TEST(feature_distance_gradient_matches_differences)
{
    at_rng rng;
    at_rng_seed(&rng, 4);
    float f[N * 7], b[N * 7], grad[N * 7] = {0}, per[N];
    for (int j = 0; j < N * 7; j++) {
        f[j] = (float)at_rng_uniform(&rng);
        b[j] = (float)at_rng_uniform(&rng);
    }
    double expected = 0.0;
    for (int j = 0; j < N * 7; j++)
        expected += ((double)f[j] - b[j]) * ((double)f[j] - b[j]);
    float loss = at_loss_feature_distance(f, b, N, 7, 2.0f, per, grad);
    CHECK_CLOSE(loss, expected / N, 1e-7, 1e-6);
    CHECK_CLOSE(per[0] + per[1] + per[2], expected, 1e-7, 1e-6);
    /* d/df_j of 2 * (1/N) sum (f - b)^2 is 4 (f_j - b_j) / N: the loss is quadratic, so the
     * central difference is exact up to rounding */
    for (int j = 0; j < N * 7; j++) {
        double h = 1e-3, up = 0, down = 0;
        for (int k = 0; k < N * 7; k++) {
            double d = (double)f[k] - b[k];
            up += (k == j ? d + h : d) * (k == j ? d + h : d);
            down += (k == j ? d - h : d) * (k == j ? d - h : d);
        }
        CHECK_CLOSE(grad[j], 2.0 * (up - down) / (2 * h) / N, 1e-6, 1e-5);
    }
}

/* --- injected at hidden nodes of small_conv_model (relu: node 2, maxpool: node 3) --- */

enum { B = 2, RELU_NODE = 2, POOL_NODE = 3 };


typedef struct targets {
    float gram[B * 2 * 2];     /* at the relu: 2 channels */
    float content[B * 2 * 9];  /* at the maxpool: 2 x 3 x 3 */
} targets;

/* style at the relu plus half the content distance at the maxpool; with `inject`, their
 * gradients are added at those nodes */
static double hidden_loss(at_pass *p, const float *x, const targets *t, bool inject)
{
    at_forward(p, x, B, AT_BN_EVAL);
    float style;
    at_error err;
    float *g_relu = NULL, *g_pool = NULL;
    if (inject) {
        at_backward_begin(p);
        g_relu = at_pass_grad(p, RELU_NODE);
        g_pool = at_pass_grad(p, POOL_NODE);
    }
    CHECK_OK(at_loss_gram(at_pass_activation(p, RELU_NODE), t->gram, B, 2, 36, 1.0f, &style, NULL,
                          g_relu, &err),
             &err);
    float content = at_loss_feature_distance(at_pass_activation(p, POOL_NODE), t->content, B, 18,
                                             0.5f, NULL, g_pool);
    return (double)style + 0.5 * content;
}

TEST(losses_injected_at_hidden_nodes_give_the_input_gradient)
{
    at_model *m = small_conv_model();
    REQUIRE(m);
    at_pass *p = NULL;
    at_error err;
    CHECK_OK(at_pass_create(&p, m, B, AT_PASS_KEEP_ALL, &err), &err);
    REQUIRE(p);
    at_rng rng;
    at_rng_seed(&rng, 11);
    float x[B * 36];
    targets t;
    for (int j = 0; j < B * 36; j++)
        x[j] = (float)at_rng_uniform(&rng);
    for (int j = 0; j < B * 4; j++)
        t.gram[j] = (float)(at_rng_uniform(&rng) * 0.2);
    for (int j = 0; j < B * 18; j++)
        t.content[j] = (float)at_rng_uniform(&rng);
    REQUIRE(at_pass_grad(p, RELU_NODE) && at_pass_grad(p, POOL_NODE));
    hidden_loss(p, x, &t, true);
    /* the logits' gradient stays zero: only the injected gradients flow */
    CHECK_OK(at_backward_run(p, AT_GRAD_INPUT), NULL);
    float analytic[B * 36];
    memcpy(analytic, at_pass_input_grad(p), sizeof analytic);
    int checked = 0;
    for (int j = 0; j < B * 36; j++) {
        const float saved = x[j];
        double fd[2];
        const double steps[2] = {1e-3, 2.5e-4};
        for (int s = 0; s < 2; s++) {
            x[j] = saved + (float)steps[s];
            double up = hidden_loss(p, x, &t, false);
            x[j] = saved - (float)steps[s];
            double down = hidden_loss(p, x, &t, false);
            fd[s] = (up - down) / (2 * steps[s]);
        }
        x[j] = saved;
        /* a ReLU or max-pool kink within reach makes the two step sizes disagree: not checked */
        if (fabs(fd[0] - fd[1]) > 5e-4 + 2e-2 * fabs(fd[0]))
            continue;
        CHECK_CLOSE(analytic[j], fd[0], 1e-3, 2e-2);
        checked++;
    }
    CHECK(checked > B * 36 / 2);
    at_pass_free(p);
    at_model_free(m);
}

TEST_MAIN(TEST_ENTRY(gram_matrix_by_hand), TEST_ENTRY(gram_loss_gradient_matches_differences_and_adds),
          TEST_ENTRY(feature_distance_gradient_matches_differences),
          TEST_ENTRY(losses_injected_at_hidden_nodes_give_the_input_gradient))
