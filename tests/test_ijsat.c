/* test_ijsat.c: method ijsat (src/train/ijsat.c) in short runs on the bands data with a small
 * random flow: it trains (finite weights, training accuracy above chance), each of its choices
 * changes the step (latent or pixel mixup, none, TRADES stacking, the latent budget), and a
 * missing or mismatched flow and options that need each other are refused. */
#include "test.h"

#include "advtrain.h"
#include "util/train_fixtures.h"

#include <stdlib.h>
#include <unistd.h>

static char dir[] = "/tmp/advtrain-test-ijsat-XXXXXX";
static char flow_path[96], small_path[96];
static void setup(void);

static void save_flow(const char *path, int hw)
{
    at_flow *f = NULL;
    at_error err;
    CHECK_OK(at_flow_create(&f, &(at_flow_options){.channels = 1, .height = hw, .width = hw,
                                                   .steps = 1, .hidden = 4, .seed = 2},
                            1, &err), &err);
    if (!f)
        return;
    at_rng r;
    at_rng_seed(&r, 6);
    for (int m = 0; m < at_flow_model_count(f); m++) {
        at_model *model = at_flow_model(f, m);
        for (int i = 0; i < at_model_tensor_count(model); i++) {
            at_tensor_info t = at_model_tensor(model, i);
            if (!strncmp(t.name, "out.", 4))
                for (size_t e = 0; e < t.numel; e++)
                    t.data[e] = (float)(0.1 * (2.0 * at_rng_uniform(&r) - 1.0));
        }
    }
    CHECK_OK(at_flow_save(path, f, &err), &err);
    at_flow_free(f);
}

static at_train_config config(void)
{
    at_train_config c = bands_config("ijsat");
    c.flow = flow_path;
    c.attack_steps = 3;
    return c;
}

static bool differ(const float *a, const float *b, size_t n)
{
    return a && b && memcmp(a, b, n * sizeof(float)) != 0;
}

TEST(ijsat_trains_and_each_choice_changes_the_step)
{
    setup();
    at_dataset d = bands_data(64, 1);
    at_train_config c = config();
    size_t n;
    float *latent = bands_train(&c, &d, &n);
    REQUIRE(latent);
    bool finite = true;
    for (size_t j = 0; j < n; j++)
        finite &= isfinite(latent[j]);
    CHECK(finite);
    /* the trained model classifies its training images above chance (4 classes) */
    at_model *m = bands_mlp(1);
    memcpy(at_model_params(m, NULL), latent, n * sizeof(float));
    at_error err;
    double acc = 0.0, loss;
    long correct = 0;
    CHECK_OK(at_evaluate_clean(m, &d, 64, &correct, &loss, &err), &err);
    acc = (double)correct / d.n;
    printf("  training accuracy after 2 epochs of ijsat: %.2f\n", acc);
    CHECK(acc > 0.5);
    at_model_free(m);

    at_train_config pixel = config(), none = config(), trades = config(), no_z = config();
    at_train_config_set(&pixel, "ijsat-mix", "pixel");
    at_train_config_set(&none, "ijsat-mix", "none");
    at_train_config_set(&trades, "trades", "true");
    at_train_config_set(&no_z, "eps-z", "0");
    float *p = bands_train(&pixel, &d, &n), *o = bands_train(&none, &d, &n),
          *t = bands_train(&trades, &d, &n), *z = bands_train(&no_z, &d, &n);
    CHECK(differ(latent, p, n));
    CHECK(differ(latent, o, n));
    CHECK(differ(latent, t, n));
    CHECK(differ(latent, z, n));
    /* a run is determined by its seed */
    float *again = bands_train(&c, &d, &n);
    CHECK(again && !differ(latent, again, n));
    free(latent), free(p), free(o), free(t), free(z), free(again);
    bands_free(&d);
}

TEST(a_missing_or_mismatched_flow_and_lone_options_are_refused)
{
    setup();
    at_dataset d = bands_data(32, 2), val = {0};
    at_error err;
    at_trainer *t = NULL;
    at_model *m = bands_mlp(1);
    at_train_config c = config();
    c.flow = NULL;
    CHECK(at_trainer_create(&t, m, &d, &val, &c, &err) != AT_OK);
    CHECK(strstr(err.message, "needs a flow file") != NULL);
    c.flow = small_path; /* a flow for 4x4 images */
    CHECK_EQ_INT(at_trainer_create(&t, m, &d, &val, &c, &err), AT_ERR_SHAPE);
    CHECK(strstr(err.message, small_path) != NULL);
    c = config();
    at_train_config_set(&c, "beta", "3");
    CHECK_EQ_INT(at_trainer_create(&t, m, &d, &val, &c, &err), AT_ERR_ARG);
    CHECK(strstr(err.message, "beta needs --trades") != NULL);
    at_train_config pgd = bands_config("pgd-at");
    pgd.flow = flow_path;
    CHECK_EQ_INT(at_trainer_create(&t, m, &d, &val, &pgd, &err), AT_ERR_ARG);
    CHECK(strstr(err.message, "does not use a flow") != NULL);
    CHECK(!t);
    at_model_free(m);
    bands_free(&d);
}

static void setup(void)
{
    if (flow_path[0] || !mkdtemp(dir))
        return;
    snprintf(flow_path, sizeof flow_path, "%s/flow.safetensors", dir);
    snprintf(small_path, sizeof small_path, "%s/small.safetensors", dir);
    save_flow(flow_path, BANDS_HW);
    save_flow(small_path, 4);
}

static void teardown(void)
{
    remove(flow_path);
    remove(small_path);
    rmdir(dir);
}

TEST(remove_files) { teardown(); }

TEST_MAIN(TEST_ENTRY(ijsat_trains_and_each_choice_changes_the_step),
          TEST_ENTRY(a_missing_or_mismatched_flow_and_lone_options_are_refused),
          TEST_ENTRY(remove_files))
