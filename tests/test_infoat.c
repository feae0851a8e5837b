/* test_infoat.c: InfoAT pinned to its definition. With uniform weights a step is its base's
 * (pgd-at, trades) bit for bit, although the critic still learns; with the critic's weights the
 * steps differ; the critic's state changes and is saved with the run. */
#include "test.h"

#include "advtrain.h"
#include "util/train_fixtures.h"

#include <stdlib.h>

static float *run(const char *method, const char *base, bool uniform, size_t *count)
{
    at_dataset d = bands_data(64, 4);
    at_train_config c = bands_config(method);
    c.attack_steps = 3;
    if (base) {
        at_train_config_set(&c, "base", base);
        at_train_config_set(&c, "critic-width", "8");
        at_train_config_set(&c, "critic-pool", "2");
        at_train_config_set(&c, "critic-lr", "1e-2");
        at_train_config_set(&c, "uniform-weights", uniform ? "true" : "false");
    }
    float *w = bands_train(&c, &d, count);
    bands_free(&d);
    return w;
}

static void check_base(const char *base)
{
    size_t n_base, n_uniform, n_weighted;
    float *expected = run(base, NULL, false, &n_base);
    float *uniform = run("infoat", base, true, &n_uniform);
    float *weighted = run("infoat", base, false, &n_weighted);
    REQUIRE(expected && uniform && weighted);
    CHECK(n_base == n_uniform && n_base == n_weighted);
    CHECK(memcmp(expected, uniform, n_base * sizeof(float)) == 0);
    double moved = 0.0;
    for (size_t j = 0; j < n_base; j++)
        moved = fmax(moved, fabs((double)weighted[j] - expected[j]));
    CHECK(moved > 1e-5);
    free(expected);
    free(uniform);
    free(weighted);
}

TEST(uniform_weights_give_pgd_at) { check_base("pgd-at"); }
TEST(uniform_weights_give_trades) { check_base("trades"); }

TEST(the_critic_learns_and_is_part_of_the_run_state)
{
    at_dataset d = bands_data(64, 4);
    at_train_config c = bands_config("infoat");
    c.attack_steps = 2;
    at_train_config_set(&c, "critic-width", "8");
    at_trainer *t = NULL;
    at_error err;
    at_dataset val = {0};
    at_model *m = bands_mlp(1);
    CHECK_OK(at_trainer_create(&t, m, &d, &val, &c, &err), &err);
    const int cap = at_trainer_state_count(t);
    at_st_tensor *st = malloc((size_t)cap * sizeof *st);
    int n = at_trainer_state(t, st, cap);
    float before[8 * 4];
    bool found = false;
    for (int i = 0; i < n; i++)
        if (!strcmp(st[i].name, "critic.fc2.weight")) {
            REQUIRE(st[i].nbytes == sizeof(float) * 8);
            memcpy(before, st[i].data, st[i].nbytes);
            found = true;
        }
    CHECK(found);
    at_epoch_stats es;
    CHECK_OK(at_trainer_run_epoch(t, NULL, &es, &err), &err);
    n = at_trainer_state(t, st, cap);
    int critic = 0;
    for (int i = 0; i < n; i++) {
        if (!strncmp(st[i].name, "critic.", 7))
            critic++;
        if (!strcmp(st[i].name, "critic.fc2.weight"))
            CHECK(memcmp(before, st[i].data, st[i].nbytes) != 0);
    }
    /* fc1 and fc2 weight and bias, Adam's two buffers each, and its step count */
    CHECK(critic == 4 * 3 + 1);
    free(st);
    at_trainer_free(t);
    at_model_free(m);
    bands_free(&d);
}

TEST_MAIN(TEST_ENTRY(uniform_weights_give_pgd_at), TEST_ENTRY(uniform_weights_give_trades),
          TEST_ENTRY(the_critic_learns_and_is_part_of_the_run_state))
