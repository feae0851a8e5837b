/* test_fgsm_sdi.c: FGSM-SDI pinned to its definition. A generator that outputs zero and never
 * learns makes the step FGSM from a zero start with the label-smoothed loss (written out here);
 * with a period longer than the run the generator never changes; and the generator's weight
 * gradient, the classifier's input gradient chained through the clips into the generator,
 * matches finite differences of the loss written out here. */
#include "test.h"

#include "advtrain.h"
#include "train/method.h"
#include "util/train_fixtures.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

enum { N = 16, IMAGE = BANDS_HW * BANDS_HW, K = BANDS_K, WIDTH = 4 };

static at_train_config one_plain_step(void)
{
    at_train_config c = bands_config("fgsm-sdi");
    c.epochs = 1;
    c.batch_size = N;
    c.lr = (at_lr_schedule){.kind = AT_LR_CONSTANT, .base = 1.0f};
    c.optimizer = (at_optimizer_options){0};
    at_train_config_set(&c, "generator-width", "4");
    return c;
}

static void images(const at_dataset *d, float *x, int32_t *y)
{
    for (int j = 0; j < N * IMAGE; j++)
        x[j] = d->images[j] / 255.0f;
    for (int i = 0; i < N; i++)
        y[i] = d->labels[i];
}

static float clamp(float v, float lo, float hi) { return v < lo ? lo : v > hi ? hi : v; }
static float sign(float v) { return v > 0 ? 1.0f : v < 0 ? -1.0f : 0.0f; }

/* input gradient of the plain cross-entropy at x */
static const float *input_grad(at_pass *p, const float *x, const int32_t *y)
{
    float dlogits[N * K];
    at_forward(p, x, N, AT_BN_TRAIN);
    at_loss_cross_entropy(at_pass_logits(p), N, K, &(at_ce_target){.labels = y}, NULL, dlogits);
    at_backward(p, dlogits, AT_GRAD_INPUT);
    return at_pass_input_grad(p);
}

static at_ce_target smoothed(const int32_t *y)
{
    return (at_ce_target){.labels = y, .label_smoothing = 0.1f * K / (K - 1)};
}

TEST(a_zero_generator_that_never_learns_is_fgsm_from_a_zero_start)
{
    at_dataset d = bands_data(N, 5);
    at_train_config c = one_plain_step();
    at_train_config_set(&c, "generator-init", "zero");
    at_train_config_set(&c, "sdi-period", "1000");
    size_t count;
    float *trained = bands_train(&c, &d, &count);
    REQUIRE(trained);

    at_model *m = bands_mlp(1);
    at_error err;
    at_pass *p = NULL;
    CHECK_OK(at_pass_create(&p, m, N, 0, &err), &err);
    float x[N * IMAGE], x_adv[N * IMAGE], dlogits[N * K];
    int32_t y[N];
    images(&d, x, y);
    const float *g = input_grad(p, x, y);
    for (int j = 0; j < N * IMAGE; j++) /* FGSM of step eps (the preset alpha = eps) */
        x_adv[j] = clamp(x[j] + c.eps * sign(g[j]), 0.0f, 1.0f);
    at_forward(p, x_adv, N, AT_BN_TRAIN);
    const at_ce_target t = smoothed(y);
    at_loss_cross_entropy(at_pass_logits(p), N, K, &t, NULL, dlogits);
    at_model_zero_grad(m);
    at_backward(p, dlogits, AT_GRAD_WEIGHTS);
    double largest;
    CHECK(sgd_step_gap(m, trained, &largest) < 1e-5);
    CHECK(largest > 1e-3);

    /* a generator that outputs something moves the start, hence the step */
    at_train_config_set(&c, "generator-init", "random");
    float *random = bands_train(&c, &d, &count);
    REQUIRE(random);
    double moved = 0.0;
    for (size_t j = 0; j < count; j++)
        moved = fmax(moved, fabs((double)random[j] - trained[j]));
    CHECK(moved > 1e-4);
    free(random);
    at_pass_free(p);
    at_model_free(m);
    free(trained);
    bands_free(&d);
}

/* The generator's tensors (and optimiser state) in the trainer's checkpoint state, copied. */
static float *generator_state(at_trainer *t, size_t *bytes)
{
    const int cap = at_trainer_state_count(t);
    at_st_tensor *st = malloc((size_t)cap * sizeof *st);
    const int n = at_trainer_state(t, st, cap);
    size_t total = 0;
    for (int i = 0; i < n; i++)
        if (!strncmp(st[i].name, "generator.", 10))
            total += st[i].nbytes;
    char *out = malloc(total), *at = out;
    for (int i = 0; i < n; i++)
        if (!strncmp(st[i].name, "generator.", 10)) {
            memcpy(at, st[i].data, st[i].nbytes);
            at += st[i].nbytes;
        }
    free(st);
    *bytes = total;
    return (float *)out;
}

/* The generator's state before and after a run of `period`. */
static bool generator_changes(const char *period)
{
    at_dataset d = bands_data(64, 2);
    at_train_config c = bands_config("fgsm-sdi");
    at_train_config_set(&c, "generator-width", "4");
    at_train_config_set(&c, "sdi-period", period);
    at_trainer *t = NULL;
    at_error err;
    at_dataset val = {0};
    at_model *m = bands_mlp(1);
    CHECK_OK(at_trainer_create(&t, m, &d, &val, &c, &err), &err);
    size_t bytes, bytes_after;
    float *before = generator_state(t, &bytes);
    while (at_trainer_epoch(t) < at_trainer_epochs(t)) {
        at_epoch_stats st;
        CHECK_OK(at_trainer_run_epoch(t, NULL, &st, &err), &err);
    }
    float *after = generator_state(t, &bytes_after);
    CHECK(bytes > 1000 && bytes == bytes_after);
    const bool changed = memcmp(before, after, bytes) != 0;
    free(before);
    free(after);
    at_trainer_free(t);
    at_model_free(m);
    bands_free(&d);
    return changed;
}

TEST(a_period_longer_than_the_run_leaves_the_generator_unchanged)
{
    /* 2 epochs of 4 batches: a period of 9 never comes; 8 comes once, at the last batch */
    CHECK(!generator_changes("9"));
    CHECK(generator_changes("8"));
}

/* LS-CE(f(x'), y) of FGSM-SDI with generator g, written out (batch statistics in g). */
static double sdi_loss(at_pass *gp, at_pass *p, const float *x, const int32_t *y, float eps)
{
    static float in[N * 2 * IMAGE], x1[N * IMAGE], eta0[N * IMAGE], x_adv[N * IMAGE];
    const float *g0 = input_grad(p, x, y);
    for (int i = 0; i < N; i++)
        for (int j = 0; j < IMAGE; j++) {
            in[(i * 2) * IMAGE + j] = x[i * IMAGE + j];
            in[(i * 2 + 1) * IMAGE + j] = sign(g0[i * IMAGE + j]);
        }
    at_forward(gp, in, N, AT_BN_BATCH_STATS);
    const float *t = at_pass_logits(gp);
    for (int j = 0; j < N * IMAGE; j++) {
        eta0[j] = eps * t[j];
        x1[j] = clamp(x[j] + eta0[j], 0.0f, 1.0f);
    }
    const float *g1 = input_grad(p, x1, y);
    for (int j = 0; j < N * IMAGE; j++)
        x_adv[j] = clamp(x[j] + clamp(eta0[j] + eps * sign(g1[j]), -eps, eps), 0.0f, 1.0f);
    at_forward(p, x_adv, N, AT_BN_TRAIN);
    const at_ce_target target = smoothed(y);
    return at_loss_cross_entropy(at_pass_logits(p), N, K, &target, NULL, NULL);
}

TEST(the_generator_gradient_chained_through_the_classifier_matches_finite_differences)
{
    at_dataset d = bands_data(N, 7);
    at_train_config c = one_plain_step();
    at_train_config_set(&c, "sdi-period", "1");
    at_train_config_set(&c, "generator-optimizer", "sgd");
    at_train_config_set(&c, "generator-lr", "1");
    at_train_config_set(&c, "generator-weight-decay", "0");
    at_trainer *t = NULL;
    at_error err;
    at_dataset val = {0};
    at_model *m = bands_mlp(1);
    CHECK_OK(at_trainer_create(&t, m, &d, &val, &c, &err), &err);

    /* the same generator, given the trainer's initial weights */
    at_model *g = NULL;
    CHECK_OK(at_sdi_generator(&g, 1, BANDS_HW, BANDS_HW, WIDTH, false, 99, &err), &err);
    size_t n_params;
    float *theta = at_model_params(g, &n_params);
    const int cap = at_trainer_state_count(t);
    at_st_tensor *st = malloc((size_t)cap * sizeof *st);
    const int n_state = at_trainer_state(t, st, cap);
    for (int i = 0; i < at_model_tensor_count(g); i++) {
        at_tensor_info info = at_model_tensor(g, i);
        char name[128];
        snprintf(name, sizeof name, "generator.%s", info.name);
        bool found = false;
        for (int s = 0; s < n_state && !found; s++)
            if (!strcmp(st[s].name, name) && info.dtype == AT_F32) {
                memcpy(info.data, st[s].data, st[s].nbytes);
                found = true;
            }
        CHECK(found || info.dtype == AT_I64);
    }
    float *before = malloc(n_params * sizeof(float));
    memcpy(before, theta, n_params * sizeof(float));

    at_model *f = bands_mlp(1); /* the classifier as the trainer starts it */
    at_pass *gp = NULL, *p = NULL;
    CHECK_OK(at_pass_create(&gp, g, N, 0, &err), &err);
    CHECK_OK(at_pass_create(&p, f, N, 0, &err), &err);
    float x[N * IMAGE];
    int32_t y[N];
    images(&d, x, y);

    at_epoch_stats es;
    CHECK_OK(at_trainer_run_epoch(t, NULL, &es, &err), &err);
    at_trainer_state(t, st, cap); /* the generator after its one SGD step of lr 1 */
    float *after = malloc(n_params * sizeof(float));
    memcpy(after, before, n_params * sizeof(float));
    for (int i = 0; i < at_model_tensor_count(g); i++) {
        at_tensor_info info = at_model_tensor(g, i);
        char name[128];
        snprintf(name, sizeof name, "generator.%s", info.name);
        for (int s = 0; s < n_state; s++)
            if (info.is_param && !strcmp(st[s].name, name))
                memcpy(after + (info.data - theta), st[s].data, st[s].nbytes);
    }
    /* the ascent step: after - before = d L / d theta; checked on the largest entries */
    double err2 = 0.0, norm2 = 0.0;
    int checked = 0;
    const double h = 1e-3;
    for (size_t k = 0; k < n_params; k++) {
        const double analytic = (double)after[k] - before[k];
        if (fabs(analytic) < 2e-3)
            continue;
        theta[k] = before[k] + (float)h;
        const double step_up = (double)theta[k] - before[k];
        const double up = sdi_loss(gp, p, x, y, c.eps);
        theta[k] = before[k] - (float)h;
        const double step_down = (double)before[k] - theta[k];
        const double down = sdi_loss(gp, p, x, y, c.eps);
        theta[k] = before[k];
        const double numeric = (up - down) / (step_up + step_down);
        err2 += (numeric - analytic) * (numeric - analytic);
        norm2 += analytic * analytic;
        checked++;
    }
    printf("  %d generator weights, relative error %.3g\n", checked, sqrt(err2 / norm2));
    CHECK(checked >= 20);
    CHECK(sqrt(err2 / norm2) < 2e-2);
    free(before);
    free(after);
    free(st);
    at_pass_free(gp);
    at_pass_free(p);
    at_model_free(g);
    at_model_free(f);
    at_trainer_free(t);
    at_model_free(m);
    bands_free(&d);
}

/* A resumed run restores the generator only from a checkpoint that holds all of it, finite, with
 * the right shapes; a failed restore leaves it as it was. */
TEST(a_damaged_generator_in_a_checkpoint_is_refused)
{
    at_dataset d = bands_data(32, 6);
    at_train_config c = bands_config("fgsm-sdi");
    at_train_config_set(&c, "generator-width", "4");
    at_train_config_set(&c, "sdi-period", "1");
    at_trainer *t = NULL;
    at_error err;
    at_dataset val = {0};
    at_model *m = bands_mlp(1);
    CHECK_OK(at_trainer_create(&t, m, &d, &val, &c, &err), &err);
    at_epoch_stats es;
    CHECK_OK(at_trainer_run_epoch(t, NULL, &es, &err), &err);
    char dir[] = "/tmp/advtrain-test-sdi-XXXXXX", path[64];
    REQUIRE(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/last.safetensors", dir);
    const int cap = at_trainer_state_count(t);
    at_st_tensor *st = malloc((size_t)cap * sizeof *st);
    const int n = at_trainer_state(t, st, cap);
    size_t bytes;
    float *saved = generator_state(t, &bytes);
    int damaged = -1;
    for (int i = 0; i < n; i++)
        if (!strcmp(st[i].name, "generator.conv2.weight"))
            damaged = i;
    REQUIRE(damaged >= 0);
    float *nan = malloc(st[damaged].nbytes);
    memcpy(nan, st[damaged].data, st[damaged].nbytes);
    nan[3] = NAN;
    const at_st_tensor good = st[damaged];
    struct { const char *what; int expected; } cases[] = {{"a NaN", AT_ERR_NUMERIC},
                                                         {"a missing tensor", AT_ERR_NOTFOUND}};
    for (int k = 0; k < 2; k++) {
        int count = n;
        if (k == 0) {
            st[damaged].data = nan;
        } else {
            st[damaged] = st[n - 1]; /* drop generator.conv2.weight */
            count = n - 1;
        }
        CHECK_OK(at_checkpoint_save_with(path, m, NULL, NULL, 0, st, count, &err), &err);
        at_safetensors *file = NULL;
        CHECK_OK(at_st_open(&file, path, &err), &err);
        int status = at_trainer_restore_state(t, file, &err);
        CHECK(status == cases[k].expected);
        CHECK(strstr(err.message, "generator.conv2.weight") != NULL);
        at_st_free(file);
        size_t after_bytes;
        float *after = generator_state(t, &after_bytes);
        CHECK(after_bytes == bytes && memcmp(after, saved, bytes) == 0); /* nothing changed */
        free(after);
        st[damaged] = good;
    }
    remove(path);
    rmdir(dir);
    free(nan);
    free(saved);
    free(st);
    at_trainer_free(t);
    at_model_free(m);
    bands_free(&d);
}

TEST_MAIN(TEST_ENTRY(a_zero_generator_that_never_learns_is_fgsm_from_a_zero_start),
          TEST_ENTRY(a_period_longer_than_the_run_leaves_the_generator_unchanged),
          TEST_ENTRY(the_generator_gradient_chained_through_the_classifier_matches_finite_differences),
          TEST_ENTRY(a_damaged_generator_in_a_checkpoint_is_refused))
