/* test_optimizer.c: Adam and AdamW against their defining formulas (Kingma and Ba, Algorithm 1;
 * Loshchilov and Hutter, Algorithm 2) evaluated here in double precision, step by step, with
 * weight decay, a learning rate that changes between steps and gradients of both signs and of
 * zero; then the options each kind refuses, its state as checkpoints see it, and copies of that
 * state. (SGD's update is checked in test_losses.c.) */
#include "test.h"

#include "advtrain.h"

#include <math.h>

enum { N = 6, STEPS = 3 };

/* A linear layer 1 -> 3 with bias: six parameters, weight then bias, in one slab. */
static at_model *six_parameters(void)
{
    at_model *m = NULL;
    at_error err;
    CHECK_OK(at_model_begin(&m, 1, 1, 1, &err), &err);
    if (!m)
        return NULL;
    at_add_linear(m, 0, "fc", 3, true);
    CHECK_OK(at_model_finish(m, 0, &err), &err);
    size_t n;
    at_model_params(m, &n);
    CHECK_EQ_INT(n, N);
    return m;
}

static const double w0[N] = {1.0, -2.0, 0.5, 0.0, 3.0, -0.25};
static const double grads[STEPS][N] = {
    {0.5, 0.25, -1.0, 0.0, 2.0, -0.001},
    {-0.5, 0.3, -0.8, 0.0, 1.5, 0.002},
    {0.1, 0.35, 0.4, 0.0, -4.0, 0.0},
};
static const float lrs[STEPS] = {0.1f, 0.05f, 0.025f};

/* The update as the papers write it, in double precision: the expected weights and moments
 * after each step. */
static void reference(const at_optimizer_options *o, double w[STEPS][N], double m_out[STEPS][N],
                      double v_out[STEPS][N])
{
    double x[N], m[N] = {0}, v[N] = {0};
    memcpy(x, w0, sizeof x);
    for (int t = 1; t <= STEPS; t++) {
        const double lr = lrs[t - 1];
        for (int i = 0; i < N; i++) {
            double g = grads[t - 1][i];
            if (o->kind == AT_OPTIMIZER_ADAMW)
                x[i] -= lr * o->weight_decay * x[i]; /* Algorithm 2, line 12: eta lambda theta */
            else
                g += o->weight_decay * x[i];         /* Algorithm 1 on the L2-regularised loss */
            m[i] = o->beta1 * m[i] + (1 - o->beta1) * g;
            v[i] = o->beta2 * v[i] + (1 - o->beta2) * g * g;
            const double m_hat = m[i] / (1 - pow(o->beta1, t));
            const double v_hat = v[i] / (1 - pow(o->beta2, t));
            x[i] -= lr * m_hat / (sqrt(v_hat) + o->eps);
            w[t - 1][i] = x[i];
            m_out[t - 1][i] = m[i];
            v_out[t - 1][i] = v[i];
        }
    }
}

static void check_against_reference(const at_optimizer_options *o)
{
    double w[STEPS][N], m[STEPS][N], v[STEPS][N];
    reference(o, w, m, v);
    at_model *model = six_parameters();
    REQUIRE(model);
    float *x = at_model_params(model, NULL), *g = at_model_grads(model, NULL);
    for (int i = 0; i < N; i++)
        x[i] = (float)w0[i];
    at_optimizer *opt = NULL;
    at_error err;
    CHECK_OK(at_optimizer_create(&opt, model, o, &err), &err);
    if (!opt) {
        at_model_free(model);
        return;
    }
    CHECK_EQ_INT(at_optimizer_steps(opt), 0);
    const float *exp_avg = at_optimizer_state(opt, 0).data;
    const float *exp_avg_sq = at_optimizer_state(opt, 1).data;
    for (int t = 0; t < STEPS; t++) {
        for (int i = 0; i < N; i++)
            g[i] = (float)grads[t][i];
        at_optimizer_step(opt, lrs[t]);
        CHECK_EQ_INT(at_optimizer_steps(opt), t + 1);
        for (int i = 0; i < N; i++) {
            CHECK_CLOSE(x[i], w[t][i], 1e-6, 1e-6);
            CHECK_CLOSE(exp_avg[i], m[t][i], 1e-9, 1e-6);
            CHECK_CLOSE(exp_avg_sq[i], v[t][i], 1e-12, 1e-6);
        }
    }
    at_optimizer_free(opt);
    at_model_free(model);
}

TEST(adam_follows_algorithm_1)
{
    at_optimizer_options o = at_optimizer_defaults(AT_OPTIMIZER_ADAM);
    o.weight_decay = 0.1;
    check_against_reference(&o);
    /* other betas, and an eps large enough to matter */
    o = (at_optimizer_options){.kind = AT_OPTIMIZER_ADAM, .beta1 = 0.5, .beta2 = 0.9, .eps = 0.1,
                               .weight_decay = 0.05};
    check_against_reference(&o);
    /* beta1 = 0 is a choice (RMSprop with bias correction), not "the default" */
    o = (at_optimizer_options){.kind = AT_OPTIMIZER_ADAM, .beta2 = 0.99, .eps = 1e-8};
    check_against_reference(&o);
}

TEST(adamw_follows_algorithm_2)
{
    at_optimizer_options o = at_optimizer_defaults(AT_OPTIMIZER_ADAMW);
    CHECK_CLOSE(o.weight_decay, 1e-2, 0, 0);
    o.weight_decay = 0.1;
    check_against_reference(&o);
    o = (at_optimizer_options){.kind = AT_OPTIMIZER_ADAMW, .beta1 = 0.5, .beta2 = 0.9, .eps = 0.1,
                               .weight_decay = 0.5};
    check_against_reference(&o);
}

/* Coupled and decoupled decay differ once the moments normalise the gradient: with a zero
 * gradient, AdamW shrinks the weight by exactly lr * wd, while Adam's decay passes through the
 * moments and moves it by about lr. */
TEST(adam_and_adamw_decay_differently)
{
    at_model *model = six_parameters();
    REQUIRE(model);
    at_error err;
    const at_optimizer_kind kinds[2] = {AT_OPTIMIZER_ADAM, AT_OPTIMIZER_ADAMW};
    float after[2];
    for (int k = 0; k < 2; k++) {
        float *x = at_model_params(model, NULL);
        at_model_zero_grad(model);
        x[0] = 2.0f;
        at_optimizer_options o = at_optimizer_defaults(kinds[k]);
        o.weight_decay = 0.1;
        at_optimizer *opt = NULL;
        CHECK_OK(at_optimizer_create(&opt, model, &o, &err), &err);
        REQUIRE(opt);
        at_optimizer_step(opt, 0.01f);
        after[k] = x[0];
        at_optimizer_free(opt);
    }
    CHECK_CLOSE(after[0], 2.0 - 0.01, 1e-6, 0);
    CHECK_CLOSE(after[1], 2.0 * (1 - 0.01 * 0.1), 1e-7, 0);
    at_model_free(model);
}

TEST(defaults_and_names)
{
    at_optimizer_options o = at_optimizer_defaults(AT_OPTIMIZER_ADAM);
    CHECK(o.kind == AT_OPTIMIZER_ADAM && o.beta1 == 0.9 && o.beta2 == 0.999 && o.eps == 1e-8 &&
          o.weight_decay == 0.0 && o.momentum == 0.0 && !o.nesterov);
    o = at_optimizer_defaults(AT_OPTIMIZER_SGD);
    CHECK(o.kind == AT_OPTIMIZER_SGD && o.momentum == 0.0 && o.weight_decay == 0.0 &&
          o.beta1 == 0.0 && o.beta2 == 0.0 && o.eps == 0.0);
    CHECK_STR_EQ(at_optimizer_kind_name(AT_OPTIMIZER_SGD), "sgd");
    CHECK_STR_EQ(at_optimizer_kind_name(AT_OPTIMIZER_ADAM), "adam");
    CHECK_STR_EQ(at_optimizer_kind_name(AT_OPTIMIZER_ADAMW), "adamw");
}

TEST(options_a_kind_does_not_use_are_refused)
{
    at_model *m = six_parameters();
    REQUIRE(m);
    static const struct {
        at_optimizer_options o;
        const char *message;
    } cases[] = {
        {{.kind = AT_OPTIMIZER_SGD, .beta1 = 0.9}, "optimizer sgd does not use beta1"},
        {{.kind = AT_OPTIMIZER_SGD, .eps = 1e-8}, "optimizer sgd does not use eps"},
        {{.kind = AT_OPTIMIZER_ADAM, .momentum = 0.9, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8},
         "optimizer adam does not use momentum"},
        {{.kind = AT_OPTIMIZER_ADAMW, .nesterov = true, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8},
         "optimizer adamw does not use Nesterov momentum"},
        {{.kind = AT_OPTIMIZER_ADAM, .beta1 = 1.0, .beta2 = 0.999, .eps = 1e-8},
         "beta1 1 out of range [0, 1)"},
        {{.kind = AT_OPTIMIZER_ADAM, .beta1 = 0.9, .beta2 = -0.1, .eps = 1e-8},
         "beta2 -0.1 out of range [0, 1)"},
        {{.kind = AT_OPTIMIZER_ADAM, .beta1 = 0.9, .beta2 = 0.999}, "Adam's eps 0 must be > 0"},
        {{.kind = AT_OPTIMIZER_ADAMW, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8,
          .weight_decay = -1}, "weight decay -1 must be >= 0"},
        {{.kind = (at_optimizer_kind)7}, "unknown optimizer kind 7"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        at_optimizer *opt = (at_optimizer *)m; /* any non-NULL value: must become NULL */
        at_error err = {0, ""};
        CHECK_EQ_INT(at_optimizer_create(&opt, m, &cases[i].o, &err), AT_ERR_ARG);
        CHECK(opt == NULL);
        CHECK_STR_EQ(err.message, cases[i].message);
    }
    at_model_free(m);
}

TEST(state_for_checkpoints)
{
    at_model *m = six_parameters();
    REQUIRE(m);
    at_error err;
    at_optimizer *sgd = NULL, *adam = NULL, *adam2 = NULL, *adamw = NULL;
    at_optimizer_options o = at_optimizer_defaults(AT_OPTIMIZER_ADAM);
    CHECK_OK(at_optimizer_create(&sgd, m, &(at_optimizer_options){.momentum = 0.9}, &err), &err);
    CHECK_OK(at_optimizer_create(&adam, m, &o, &err), &err);
    CHECK_OK(at_optimizer_create(&adam2, m, &o, &err), &err);
    o.kind = AT_OPTIMIZER_ADAMW;
    CHECK_OK(at_optimizer_create(&adamw, m, &o, &err), &err);
    REQUIRE(sgd && adam && adam2 && adamw);

    CHECK_EQ_INT(at_optimizer_state_count(sgd), 1);
    CHECK_STR_EQ(at_optimizer_state(sgd, 0).name, "momentum");
    CHECK_EQ_INT(at_optimizer_state(sgd, 0).count, N);
    CHECK(at_optimizer_state(sgd, 1).name == NULL);
    CHECK_EQ_INT(at_optimizer_steps(sgd), -1);
    CHECK_EQ_INT(at_optimizer_set_steps(sgd, 3, &err), AT_ERR_ARG);
    CHECK_STR_EQ(err.message, "optimizer sgd keeps no step count");

    CHECK_EQ_INT(at_optimizer_state_count(adam), 2);
    CHECK_STR_EQ(at_optimizer_state(adam, 0).name, "exp_avg");
    CHECK_STR_EQ(at_optimizer_state(adam, 1).name, "exp_avg_sq");
    CHECK(at_optimizer_state(adam, -1).data == NULL);
    CHECK_EQ_INT(at_optimizer_set_steps(adam, -1, &err), AT_ERR_ARG);

    /* a copy continues exactly as the original */
    float *x = at_model_params(m, NULL), *g = at_model_grads(m, NULL);
    for (int i = 0; i < N; i++)
        g[i] = (float)grads[0][i];
    at_optimizer_step(adam, 0.1f);
    at_optimizer_step(adam, 0.1f);
    CHECK_OK(at_optimizer_copy_state(adam2, adam, &err), &err);
    CHECK_EQ_INT(at_optimizer_steps(adam2), 2);
    float saved[N], first[N];
    memcpy(saved, x, sizeof saved);
    at_optimizer_step(adam, 0.1f);
    memcpy(first, x, sizeof first);
    memcpy(x, saved, sizeof saved);
    at_optimizer_step(adam2, 0.1f);
    CHECK(memcmp(first, x, sizeof first) == 0);

    CHECK_EQ_INT(at_optimizer_copy_state(adamw, adam, &err), AT_ERR_ARG);
    CHECK(strstr(err.message, "optimizer adam") && strstr(err.message, "optimizer adamw"));
    CHECK_EQ_INT(at_optimizer_copy_state(sgd, adam, &err), AT_ERR_ARG);
    at_optimizer_free(sgd);
    at_optimizer_free(adam);
    at_optimizer_free(adam2);
    at_optimizer_free(adamw);
    at_model_free(m);
}

TEST_MAIN(TEST_ENTRY(adam_follows_algorithm_1), TEST_ENTRY(adamw_follows_algorithm_2),
          TEST_ENTRY(adam_and_adamw_decay_differently), TEST_ENTRY(defaults_and_names),
          TEST_ENTRY(options_a_kind_does_not_use_are_refused), TEST_ENTRY(state_for_checkpoints))
