/* test_ada.c: AdA pinned to its definition. The weight gradient chained from the classifier's
 * input gradient into the autoencoder's weights matches central finite differences of the loss
 * written out here; the projection keeps every layer in its relative ball and leaves a delta
 * inside untouched; the attack raises the loss; with nu = 0 the augmented image is c_phi(x)
 * exactly and a training step is a step on c_phi(x) (clean part 0) or on x (clean part 1);
 * autoencoder training lowers the reconstruction error and writes a file ada trains with; bad
 * autoencoder files and options are refused with their name in the message. */
#include "test.h"

#include "advtrain.h"
#include "train/method.h"
#include "util/train_fixtures.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

enum { N = 16, IMAGE = BANDS_HW * BANDS_HW, K = BANDS_K, WIDTH = 3 };

static void images(const at_dataset *d, float *x, int32_t *y)
{
    for (int j = 0; j < N * IMAGE; j++)
        x[j] = d->images[j] / 255.0f;
    for (int i = 0; i < N; i++)
        y[i] = d->labels[i];
}

static at_model *autoencoder(uint64_t seed)
{
    at_model *ae = NULL;
    at_error err;
    CHECK_OK(at_autoencoder_create(&ae, 1, BANDS_HW, BANDS_HW, WIDTH, seed, &err), &err);
    return ae;
}

/* Weights times `factor`: an untrained autoencoder's output hardly depends on its weights and a
 * fresh classifier's loss hardly on its input, which would leave gradients at the level of
 * float rounding in the loss; larger weights make both sensitive. */
static at_model *scaled(at_model *m, float factor)
{
    size_t n;
    float *w = at_model_params(m, &n);
    for (size_t j = 0; j < n; j++)
        w[j] *= factor;
    return m;
}

/* CE(f(c_theta(x)), y) written out in double from the logits, theta the twin's weights. */
static double chain_loss(at_pass *ae, at_pass *f, const float *x, const int32_t *y)
{
    at_forward(ae, x, N, AT_BN_EVAL);
    at_forward(f, at_pass_logits(ae), N, AT_BN_EVAL);
    const float *z = at_pass_logits(f);
    double loss = 0.0;
    for (int i = 0; i < N; i++) {
        double top = z[i * K];
        for (int k = 1; k < K; k++)
            top = fmax(top, z[i * K + k]);
        double sum = 0.0;
        for (int k = 0; k < K; k++)
            sum += exp(z[i * K + k] - top);
        loss += top + log(sum) - z[i * K + y[i]];
    }
    return loss / N;
}

typedef struct chain {
    at_dataset d;
    float x[N * IMAGE], x_hat[N * IMAGE], dlogits[N * K];
    int32_t y[N];
    at_model *f, *twin;
    at_pass *fp, *twin_pass;
    at_ada *ada;
    at_ce_target t;
} chain;

static void chain_open(chain *c)
{
    at_error err;
    c->d = bands_data(N, 7);
    images(&c->d, c->x, c->y);
    c->f = scaled(bands_mlp(2), 8.0f);
    c->twin = scaled(autoencoder(5), 2.0f);
    CHECK_OK(at_pass_create(&c->fp, c->f, N, 0, &err), &err);
    CHECK_OK(at_pass_create(&c->twin_pass, c->twin, N, 0, &err), &err);
    CHECK_OK(at_ada_create(&c->ada, scaled(autoencoder(5), 2.0f), N, &err), &err);
    c->t = (at_ce_target){.labels = c->y};
}

static void chain_close(chain *c)
{
    at_ada_free(c->ada);
    at_pass_free(c->fp);
    at_pass_free(c->twin_pass);
    at_model_free(c->f);
    at_model_free(c->twin);
    bands_free(&c->d);
}

/* the twin's weights set to phi + delta */
static void set_twin(chain *c)
{
    size_t count, n;
    const float *delta = at_ada_delta(c->ada, &count);
    const float *phi = at_model_params(at_ada_autoencoder(c->ada), &n);
    float *theta = at_model_params(c->twin, &n);
    for (size_t j = 0; j < count; j++)
        theta[j] = phi[j] + delta[j];
}

TEST(the_weight_gradient_through_the_chain_matches_finite_differences)
{
    chain c;
    chain_open(&c);
    at_rng rng;
    at_rng_seed(&rng, 11);
    at_ada_init(c.ada, 0.2, &rng);
    double loss;
    CHECK_OK(at_ada_gradient(c.ada, c.fp, AT_BN_EVAL, c.x, &c.t, N, c.x_hat, c.dlogits, &loss),
             NULL);
    set_twin(&c);
    CHECK(fabs(loss - chain_loss(c.twin_pass, c.fp, c.x, c.y)) < 1e-5);
    size_t count;
    const float *g = at_model_grads(at_ada_autoencoder(c.ada), &count);
    float *theta = at_model_params(c.twin, &count);
    /* every layer of weights (conv weights, not biases), on its largest entries */
    int layers_checked = 0;
    for (int l = 0; l < at_ada_layers(c.ada); l += 2) {
        size_t first, size;
        double norm, largest = 0.0, err2 = 0.0, norm2 = 0.0;
        at_ada_layer(c.ada, l, &first, &size, &norm);
        for (size_t j = 0; j < size; j++)
            largest = fmax(largest, fabs(g[first + j]));
        int checked = 0;
        for (size_t j = 0; j < size && checked < 12; j++) {
            const size_t k = first + j;
            if (fabs(g[k]) < 0.3 * largest)
                continue;
            const float keep = theta[k];
            const double h = 1e-2 * fmax(fabs(keep), 0.05);
            theta[k] = keep + (float)h;
            const double up_step = (double)theta[k] - keep;
            const double up = chain_loss(c.twin_pass, c.fp, c.x, c.y);
            theta[k] = keep - (float)h;
            const double down_step = (double)keep - theta[k];
            const double down = chain_loss(c.twin_pass, c.fp, c.x, c.y);
            theta[k] = keep;
            const double numeric = (up - down) / (up_step + down_step);
            err2 += (numeric - g[k]) * (numeric - g[k]);
            norm2 += (double)g[k] * g[k];
            checked++;
        }
        printf("  layer %d: %d entries, relative error %.3g\n", l, checked, sqrt(err2 / norm2));
        CHECK(checked >= 1 && largest > 0.0);
        CHECK(sqrt(err2 / norm2) < 1e-2);
        layers_checked++;
    }
    CHECK(layers_checked == 6);
    chain_close(&c);
}

static double layer_norm(const float *v, size_t n)
{
    double s = 0.0;
    for (size_t j = 0; j < n; j++)
        s += (double)v[j] * v[j];
    return sqrt(s);
}

TEST(the_projection_keeps_every_layer_in_its_ball_and_leaves_a_delta_inside_alone)
{
    chain c;
    chain_open(&c);
    const double nu = 0.3;
    size_t count;
    float *delta = at_ada_delta(c.ada, &count);
    at_rng rng;
    at_rng_seed(&rng, 4);
    /* even layers far outside (10 radii), odd layers inside (a quarter of a radius) */
    for (int l = 0; l < at_ada_layers(c.ada); l++) {
        size_t first, size;
        double norm;
        at_ada_layer(c.ada, l, &first, &size, &norm);
        for (size_t j = 0; j < size; j++)
            delta[first + j] = (float)at_rng_normal(&rng);
        const double want = (l % 2 == 0 ? 10.0 : 0.25) * nu * norm;
        const double scale = want / layer_norm(delta + first, size);
        for (size_t j = 0; j < size; j++)
            delta[first + j] *= (float)scale;
    }
    float *before = malloc(count * sizeof(float));
    memcpy(before, delta, count * sizeof(float));
    at_ada_project(c.ada, nu);
    for (int l = 0; l < at_ada_layers(c.ada); l++) {
        size_t first, size;
        double norm;
        at_ada_layer(c.ada, l, &first, &size, &norm);
        CHECK(norm > 0.0);
        const double length = layer_norm(delta + first, size);
        CHECK(length <= nu * norm * (1.0 + 1e-6));
        if (l % 2 == 0) /* onto the sphere, in the same direction */
            CHECK(fabs(length - nu * norm) < 1e-5 * nu * norm &&
                  delta[first] * before[first] >= 0.0f);
        else
            CHECK(memcmp(delta + first, before + first, size * sizeof(float)) == 0);
    }
    /* a random start is inside too */
    at_ada_init(c.ada, nu, &rng);
    for (int l = 0; l < at_ada_layers(c.ada); l++) {
        size_t first, size;
        double norm;
        at_ada_layer(c.ada, l, &first, &size, &norm);
        CHECK(layer_norm(delta + first, size) <= nu * norm * (1.0 + 1e-6));
    }
    free(before);
    chain_close(&c);
}

TEST(the_attack_raises_the_loss_and_stays_in_the_ball)
{
    chain c;
    chain_open(&c);
    const double nu = 0.5;
    at_rng rng;
    double start, end;
    at_rng_seed(&rng, 21);
    at_ada_init(c.ada, nu, &rng);
    CHECK_OK(at_ada_gradient(c.ada, c.fp, AT_BN_EVAL, c.x, &c.t, N, c.x_hat, c.dlogits, &start),
             NULL);
    at_rng_seed(&rng, 21); /* the same start */
    CHECK_OK(at_ada_attack(c.ada, c.fp, AT_BN_EVAL, c.x, &c.t, N, nu, 5, 0.5, &rng, c.x_hat,
                           c.dlogits), NULL);
    float x_hat[N * IMAGE];
    memcpy(x_hat, c.x_hat, sizeof x_hat);
    CHECK_OK(at_ada_gradient(c.ada, c.fp, AT_BN_EVAL, c.x, &c.t, N, c.x_hat, c.dlogits, &end),
             NULL);
    printf("  loss %.5f at the random start, %.5f after 5 steps\n", start, end);
    CHECK(end > start);
    CHECK(memcmp(x_hat, c.x_hat, sizeof x_hat) == 0); /* the attack returns c at its delta */
    size_t count;
    const float *delta = at_ada_delta(c.ada, &count);
    for (int l = 0; l < at_ada_layers(c.ada); l++) {
        size_t first, size;
        double norm;
        at_ada_layer(c.ada, l, &first, &size, &norm);
        CHECK(layer_norm(delta + first, size) <= nu * norm * (1.0 + 1e-6));
    }
    chain_close(&c);
}

TEST(with_nu_zero_the_augmented_image_is_the_reconstruction)
{
    chain c;
    chain_open(&c);
    at_rng rng;
    at_rng_seed(&rng, 2);
    CHECK_OK(at_ada_attack(c.ada, c.fp, AT_BN_EVAL, c.x, &c.t, N, 0.0, 3, 0.5, &rng, c.x_hat,
                           c.dlogits), NULL);
    at_forward(c.twin_pass, c.x, N, AT_BN_EVAL); /* the twin holds phi */
    CHECK(memcmp(at_pass_logits(c.twin_pass), c.x_hat, sizeof c.x_hat) == 0);
    chain_close(&c);
}

/* A temporary autoencoder file of the bands' shape (or `hw`) and its directory. */
static void save_autoencoder(at_model *ae, char *dir, char *path, size_t cap)
{
    at_error err;
    REQUIRE(mkdtemp(dir));
    snprintf(path, cap, "%s/autoencoder.safetensors", dir);
    CHECK_OK(at_autoencoder_save(path, ae, &err), &err);
}

static at_train_config ada_config(const char *path, const char *clean_part)
{
    at_train_config c = bands_config("ada");
    c.eps = 0.0f;
    c.epochs = 1;
    c.batch_size = N;
    c.lr = (at_lr_schedule){.kind = AT_LR_CONSTANT, .base = 1.0f};
    c.optimizer = (at_optimizer_options){0};
    c.autoencoder = path;
    at_train_config_set(&c, "ada-nu", "0");
    at_train_config_set(&c, "ada-clean-part", clean_part);
    return c;
}

TEST(with_nu_zero_a_training_step_is_a_step_on_the_reconstruction_or_the_clean_batch)
{
    char dir[] = "/tmp/advtrain-test-ada-XXXXXX", path[96];
    at_model *ae = autoencoder(8);
    save_autoencoder(ae, dir, path, sizeof path);
    at_dataset d = bands_data(N, 5);
    float x[N * IMAGE], dlogits[N * K];
    int32_t y[N];
    images(&d, x, y);
    at_error err;
    at_pass *aep = NULL, *p = NULL;
    CHECK_OK(at_pass_create(&aep, ae, N, 0, &err), &err);
    at_forward(aep, x, N, AT_BN_EVAL);
    const float *inputs[2] = {at_pass_logits(aep), x}; /* clean part 0, then 1 */
    const char *parts[2] = {"0", "1"};
    for (int k = 0; k < 2; k++) {
        at_train_config c = ada_config(path, parts[k]);
        size_t count;
        float *trained = bands_train(&c, &d, &count);
        REQUIRE(trained);
        at_model *m = bands_mlp(1);
        CHECK_OK(at_pass_create(&p, m, N, 0, &err), &err);
        at_forward(p, inputs[k], N, AT_BN_TRAIN);
        at_loss_cross_entropy(at_pass_logits(p), N, K, &(at_ce_target){.labels = y}, NULL, dlogits);
        at_model_zero_grad(m);
        at_backward(p, dlogits, AT_GRAD_WEIGHTS);
        double largest;
        const double gap = sgd_step_gap(m, trained, &largest);
        printf("  clean part %s: step gap %.2g (largest gradient %.2g)\n", parts[k], gap, largest);
        CHECK(gap < 1e-5 && largest > 1e-3);
        at_pass_free(p);
        at_model_free(m);
        free(trained);
    }
    remove(path);
    rmdir(dir);
    at_pass_free(aep);
    at_model_free(ae);
    bands_free(&d);
}

TEST(autoencoder_training_lowers_the_error_and_writes_a_file_ada_trains_with)
{
    at_dataset d = bands_data(64, 9);
    at_error err;
    at_model *ae = autoencoder(1);
    at_pass *pass = NULL;
    at_optimizer *adam = NULL;
    at_optimizer_options o = at_optimizer_defaults(AT_OPTIMIZER_ADAM);
    CHECK_OK(at_pass_create(&pass, ae, 16, 0, &err), &err);
    CHECK_OK(at_optimizer_create(&adam, ae, &o, &err), &err);
    double before, after, epoch_mse[2];
    CHECK_OK(at_autoencoder_mse(ae, &d, 32, &before, &err), &err);
    at_rng rng;
    at_rng_seed(&rng, 1);
    for (int e = 0; e < 2; e++)
        CHECK_OK(at_autoencoder_train_epoch(pass, adam, &d, 16, 1e-2f, &rng, &epoch_mse[e], &err),
                 &err);
    CHECK_OK(at_autoencoder_mse(ae, &d, 32, &after, &err), &err);
    printf("  reconstruction mse %.5f before, %.5f after 2 epochs\n", before, after);
    CHECK(after < 0.8 * before);
    CHECK(epoch_mse[1] < epoch_mse[0]);

    char dir[] = "/tmp/advtrain-test-ada-XXXXXX", path[96];
    save_autoencoder(ae, dir, path, sizeof path);
    at_model *loaded = NULL; /* the file rebuilds the same network */
    CHECK_OK(at_autoencoder_load(&loaded, path, &err), &err);
    size_t n1, n2;
    const float *w1 = at_model_params(ae, &n1), *w2 = at_model_params(loaded, &n2);
    CHECK(n1 == n2 && memcmp(w1, w2, n1 * sizeof(float)) == 0);
    at_model_free(loaded);

    at_train_config c = bands_config("ada");
    c.eps = 0.0f;
    c.epochs = 1;
    c.autoencoder = path;
    at_trainer *t = NULL;
    at_dataset val = {0};
    at_model *m = bands_mlp(1);
    size_t count;
    const float *initial = at_model_params(m, &count);
    float *start = malloc(count * sizeof(float));
    memcpy(start, initial, count * sizeof(float));
    CHECK_OK(at_trainer_create(&t, m, &d, &val, &c, &err), &err);
    at_epoch_stats st;
    CHECK_OK(at_trainer_run_epoch(t, NULL, &st, &err), &err);
    CHECK(isfinite(st.train_loss) && st.train_loss > 0.0);
    CHECK(memcmp(start, at_model_params(m, &count), count * sizeof(float)) != 0);
    free(start);
    at_trainer_free(t);
    at_model_free(m);
    remove(path);
    rmdir(dir);
    at_optimizer_free(adam);
    at_pass_free(pass);
    at_model_free(ae);
    bands_free(&d);
}

/* at_trainer_create's status and message for an ada run on `path` (or another method). */
static int trainer_error(const char *method, const char *path, at_error *err)
{
    at_dataset d = bands_data(N, 3);
    at_train_config c = bands_config(method);
    c.eps = 0.0f;
    c.autoencoder = path;
    at_trainer *t = NULL;
    at_dataset val = {0};
    at_model *m = bands_mlp(1);
    const int status = at_trainer_create(&t, m, &d, &val, &c, err);
    at_trainer_free(t);
    at_model_free(m);
    bands_free(&d);
    return status;
}

TEST(bad_autoencoders_and_options_are_refused)
{
    at_error err;
    at_model *ae = NULL;
    CHECK_EQ_INT(at_autoencoder_create(&ae, 1, 30, 30, 4, 0, &err), AT_ERR_SHAPE);
    CHECK(ae == NULL && strstr(err.message, "multiples of 4"));

    char dir[] = "/tmp/advtrain-test-ada-XXXXXX", path[96], other[128];
    CHECK_OK(at_autoencoder_create(&ae, 1, 12, 12, 2, 0, &err), &err);
    save_autoencoder(ae, dir, path, sizeof path); /* 12x12: not the bands' 8x8 */
    CHECK_EQ_INT(trainer_error("ada", path, &err), AT_ERR_SHAPE);
    CHECK(strstr(err.message, path) && strstr(err.message, "1x12x12"));

    snprintf(other, sizeof other, "%s/missing.safetensors", dir);
    CHECK_EQ_INT(trainer_error("ada", other, &err), AT_ERR_IO);
    CHECK(strstr(err.message, other) != NULL);

    FILE *f = fopen(other, "wb"); /* junk */
    REQUIRE(f);
    fputs("this is not a safetensors file at all", f);
    fclose(f);
    CHECK(trainer_error("ada", other, &err) == AT_ERR_FORMAT);
    CHECK(strstr(err.message, other) != NULL);

    at_model *m = bands_mlp(1); /* a classifier's checkpoint is no autoencoder */
    CHECK_OK(at_checkpoint_save(other, m, NULL, NULL, 0, &err), &err);
    CHECK_EQ_INT(trainer_error("ada", other, &err), AT_ERR_FORMAT);
    CHECK(strstr(err.message, "not an autoencoder") != NULL);
    at_model_free(m);

    /* a file whose metadata promises another network than its tensors hold */
    at_model *wide = NULL;
    CHECK_OK(at_autoencoder_create(&wide, 1, 8, 8, 3, 0, &err), &err);
    at_kv meta = {"autoencoder", "{\"channels\":1,\"height\":8,\"width\":8,\"features\":2}"};
    CHECK_OK(at_checkpoint_save(other, wide, NULL, &meta, 1, &err), &err);
    CHECK(trainer_error("ada", other, &err) == AT_ERR_SHAPE);
    at_model_free(wide);

    CHECK_EQ_INT(trainer_error("ada", NULL, &err), AT_ERR_ARG);
    CHECK(strstr(err.message, "needs an autoencoder") != NULL);
    CHECK_EQ_INT(trainer_error("standard", path, &err), AT_ERR_ARG);
    CHECK(strstr(err.message, "does not use an autoencoder") != NULL);
    remove(other);
    remove(path);
    rmdir(dir);
    at_model_free(ae);
}

TEST_MAIN(TEST_ENTRY(the_weight_gradient_through_the_chain_matches_finite_differences),
          TEST_ENTRY(the_projection_keeps_every_layer_in_its_ball_and_leaves_a_delta_inside_alone),
          TEST_ENTRY(the_attack_raises_the_loss_and_stays_in_the_ball),
          TEST_ENTRY(with_nu_zero_the_augmented_image_is_the_reconstruction),
          TEST_ENTRY(with_nu_zero_a_training_step_is_a_step_on_the_reconstruction_or_the_clean_batch),
          TEST_ENTRY(autoencoder_training_lowers_the_error_and_writes_a_file_ada_trains_with),
          TEST_ENTRY(bad_autoencoders_and_options_are_refused))
