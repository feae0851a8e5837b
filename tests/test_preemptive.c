/* test_preemptive.c: preemptively robust training (Moon et al., AAAI 2022): a short run learns the
 * bands; the robustification step descends the loss (the paper), so the adversarial training loss
 * of a run is below the same run with the published code's ascent; --preempt-direction and
 * --preempt-delta change the run; bad values are refused. */
#include "test.h"
#include "util/train_fixtures.h"

#include "advtrain.h"

/* Trains bands_mlp(1) with cfg; returns its parameters (malloc'd; NULL when refused), the last
 * epoch's training loss and the clean accuracy of the result on `test`. */
static float *run(const at_train_config *cfg, const at_dataset *train, const at_dataset *test,
                  double *loss, double *acc)
{
    at_model *m = bands_mlp(1);
    at_dataset val = {0};
    at_trainer *t = NULL;
    at_error err;
    int status = m ? at_trainer_create(&t, m, train, &val, cfg, &err) : AT_ERR_ARG;
    at_epoch_stats st = {0};
    while (!status && at_trainer_epoch(t) < at_trainer_epochs(t))
        status = at_trainer_run_epoch(t, NULL, &st, &err);
    float *out = NULL;
    if (status) {
        fprintf(stderr, "preemptive run: %s\n", err.message);
    } else {
        size_t count;
        const float *p = at_model_params(m, &count);
        out = malloc(count * sizeof(float));
        memcpy(out, p, count * sizeof(float));
        *loss = st.train_loss;
        long correct;
        double test_loss;
        if (at_evaluate_clean(m, test, 64, &correct, &test_loss, &err))
            correct = 0;
        *acc = (double)correct / test->n;
    }
    at_trainer_free(t);
    at_model_free(m);
    return out;
}

TEST(preemptive_training_learns_and_its_step_descends)
{
    at_dataset train = bands_data(256, 21), test = bands_data(128, 22);
    at_train_config c = bands_config("preemptive");
    c.no_robust_validation = true;
    c.epochs = 3;
    double loss_down = 0, acc_down = 0, loss_up = 0, acc_up = 0;
    float *down = run(&c, &train, &test, &loss_down, &acc_down);
    REQUIRE(down);
    CHECK(acc_down >= 0.9);
    CHECK(isfinite(loss_down));
    /* the published code as written: the first step climbs the loss, so the PGD around it starts
     * from a harder point and the adversarial training loss is higher */
    CHECK_OK(at_train_config_set(&c, "preempt-direction", "ascent"), NULL);
    float *up = run(&c, &train, &test, &loss_up, &acc_up);
    REQUIRE(up);
    if (!(loss_down < loss_up))
        TEST_FAIL_("training loss with descent %.6g, with ascent %.6g", loss_down, loss_up);
    size_t count;
    at_model *m = bands_mlp(1);
    at_model_params(m, &count);
    at_model_free(m);
    CHECK(memcmp(down, up, count * sizeof(float)) != 0);
    /* a larger robustification budget makes the attacked points easier still */
    at_train_config c2 = bands_config("preemptive");
    c2.no_robust_validation = true;
    c2.epochs = 3;
    CHECK_OK(at_train_config_set(&c2, "preempt-delta", "0.2"), NULL);
    double loss_big = 0, acc_big = 0;
    float *big = run(&c2, &train, &test, &loss_big, &acc_big);
    REQUIRE(big);
    if (!(loss_big < loss_down))
        TEST_FAIL_("training loss with delta 0.2 %.6g, with delta = eps %.6g", loss_big, loss_down);
    free(down);
    free(up);
    free(big);
    bands_free(&train);
    bands_free(&test);
}

TEST(bad_preemptive_options_are_refused)
{
    at_dataset train = bands_data(32, 21);
    const char *bad[][2] = {{"preempt-delta", "0"}, {"preempt-direction", "sideways"}};
    for (int i = 0; i < 2; i++) {
        at_train_config c = bands_config("preemptive");
        c.epochs = 1;
        CHECK_OK(at_train_config_set(&c, bad[i][0], bad[i][1]), NULL);
        size_t count;
        float *p = bands_train(&c, &train, &count);
        CHECK(p == NULL);
        free(p);
    }
    at_train_config l1 = bands_config("preemptive");
    l1.norm = AT_NORM_L1;
    size_t count;
    float *p = bands_train(&l1, &train, &count);
    CHECK(p == NULL);
    free(p);
    /* another method does not take the preemptive options */
    at_train_config other = bands_config("pgd-at");
    CHECK_OK(at_train_config_set(&other, "preempt-delta", "0.1"), NULL);
    p = bands_train(&other, &train, &count);
    CHECK(p == NULL);
    free(p);
    bands_free(&train);
}

TEST_MAIN(TEST_ENTRY(preemptive_training_learns_and_its_step_descends),
          TEST_ENTRY(bad_preemptive_options_are_refused))
