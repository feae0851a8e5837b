/* test_eval.c: the robustness evaluation on real data. An undefended SmallCNN trained briefly on
 * Fashion-MNIST is broken by PGD-20 at eps 0.1 on at least 95% of its correct points, the
 * AutoAttack-style cascade breaks every point PGD-20 breaks, per-point outcomes do not depend on
 * the batch size, and a transfer attack from the model itself equals the direct attack. */
#include "test.h"

#include "advtrain.h"

#define DATA "/usr/share/datasets/fashion-mnist"

static at_model *model;
static at_dataset test_points;

/* Six epochs on the first 10,000 training images: a real, undefended classifier (~83% test
 * accuracy). Shorter training leaves a smoother model that PGD-20 at eps 0.1 does not fully
 * break (measured: 2 epochs on 6,000 images left 23% of points robust). */
static void train_model(void)
{
    at_error err;
    at_dataset full = {0}, train = {0}, val = {0}, test = {0};
    CHECK_OK(at_dataset_open(&full, "fashion-mnist", DATA, "train", &err), &err);
    CHECK_OK(at_dataset_open(&test, "fashion-mnist", DATA, "test", &err), &err);
    if (full.n == 0 || test.n == 0)
        return;
    CHECK_OK(at_dataset_slice(&train, &full, 0, 10000, &err), &err);
    CHECK_OK(at_dataset_slice(&test_points, &test, 0, 300, &err), &err);
    CHECK_OK(at_model_create(&model, "smallcnn", &(at_model_options){.seed = 1}, &err), &err);
    at_train_config cfg = {.method = "standard", .epochs = 6, .batch_size = 128,
                           .lr = {.kind = AT_LR_COSINE, .base = 0.05f},
                           .optimizer = {.momentum = 0.9f, .weight_decay = 5e-4f}, .seed = 1,
                           .eval_batch_size = 500};
    at_trainer *t = NULL;
    CHECK_OK(at_trainer_create(&t, model, &train, &val, &cfg, &err), &err);
    at_epoch_stats st;
    for (int e = 0; e < cfg.epochs && t; e++)
        CHECK_OK(at_trainer_run_epoch(t, NULL, &st, &err), &err);
    at_trainer_free(t);
    at_dataset_free(&full);
    at_dataset_free(&train);
    at_dataset_free(&val);
    at_dataset_free(&test);
}

static at_eval_plan plan_of(const char *const *names, int n, float eps)
{
    at_eval_plan p = {.n_attacks = n, .batch_size = 100, .seed = 5};
    for (int i = 0; i < n; i++) {
        p.attacks[i] = names[i];
        p.options[i] = (at_attack_options){.norm = AT_NORM_LINF, .eps = eps};
    }
    return p;
}

TEST(pgd20_breaks_an_undefended_model_and_the_suite_is_never_weaker)
{
    REQUIRE(model);
    at_error err;
    const char *pgd[1] = {"pgd"};
    at_eval_plan p = plan_of(pgd, 1, 0.1f);
    p.options[0].steps = 20;
    p.options[0].step_size = 0.01f;
    at_eval_result r_pgd, r_suite;
    CHECK_OK(at_eval_robust(model, &test_points, &p, &r_pgd, NULL, NULL, &err), &err);
    REQUIRE(r_pgd.outcome);
    printf("  clean %ld/%ld, robust after PGD-20 %ld\n", r_pgd.clean_correct, r_pgd.points,
           r_pgd.robust_after[0]);
    CHECK(r_pgd.clean_correct > r_pgd.points * 7 / 10);
    CHECK(r_pgd.broken_by[0] * 100 >= r_pgd.clean_correct * 95);

    const char *standard[4] = {"apgd-ce", "apgd-t", "fab-t", "square"};
    at_eval_plan s = plan_of(standard, 4, 0.1f);
    s.options[3].queries = 300;
    CHECK_OK(at_eval_robust(model, &test_points, &s, &r_suite, NULL, NULL, &err), &err);
    REQUIRE(r_suite.outcome);
    long weaker = 0;
    for (long i = 0; i < r_pgd.points; i++)
        weaker += r_pgd.outcome[i] >= 0 && r_suite.outcome[i] == -1;
    CHECK_EQ_INT(weaker, 0);
    CHECK(r_suite.robust_after[3] <= r_pgd.robust_after[0]);
    /* bookkeeping: the cascade's counts add up */
    long broken = 0;
    for (int a = 0; a < 4; a++) {
        broken += r_suite.broken_by[a];
        CHECK_EQ_INT(r_suite.robust_after[a], r_suite.clean_correct - broken);
        CHECK(r_suite.stats[a].out_of_range == 0);
        CHECK(r_suite.stats[a].max_linf <= 0.1 + 1e-6);
    }
    at_eval_result_free(&r_pgd);
    at_eval_result_free(&r_suite);
}

TEST(outcomes_do_not_depend_on_the_batch_size)
{
    REQUIRE(model);
    at_error err;
    const char *names[2] = {"pgd", "apgd-ce"};
    at_eval_plan p = plan_of(names, 2, 0.03f);
    p.options[0].steps = 10;
    p.options[1].steps = 20;
    at_eval_result a, b;
    p.points = 120;
    p.batch_size = 7;
    CHECK_OK(at_eval_robust(model, &test_points, &p, &a, NULL, NULL, &err), &err);
    p.batch_size = 64;
    CHECK_OK(at_eval_robust(model, &test_points, &p, &b, NULL, NULL, &err), &err);
    REQUIRE(a.outcome && b.outcome);
    CHECK(memcmp(a.outcome, b.outcome, 120) == 0);
    CHECK_EQ_INT(a.robust_after[1], b.robust_after[1]);
    at_eval_result_free(&a);
    at_eval_result_free(&b);
}

TEST(transfer_from_the_model_itself_equals_the_direct_attack)
{
    REQUIRE(model);
    at_error err;
    const char *names[1] = {"pgd"};
    at_eval_plan p = plan_of(names, 1, 0.03f);
    p.options[0].steps = 10;
    p.points = 100;
    at_eval_result direct, transfer;
    CHECK_OK(at_eval_robust(model, &test_points, &p, &direct, NULL, NULL, &err), &err);
    p.surrogate = model;
    CHECK_OK(at_eval_robust(model, &test_points, &p, &transfer, NULL, NULL, &err), &err);
    REQUIRE(direct.outcome && transfer.outcome);
    CHECK(memcmp(direct.outcome, transfer.outcome, 100) == 0);
    /* a surrogate with other weights transfers only part of its success */
    at_model *other = NULL;
    CHECK_OK(at_model_create(&other, "smallcnn", &(at_model_options){.seed = 77}, &err), &err);
    at_eval_result weak;
    p.surrogate = other;
    CHECK_OK(at_eval_robust(model, &test_points, &p, &weak, NULL, NULL, &err), &err);
    CHECK(weak.robust_after[0] > direct.robust_after[0]);
    at_eval_result_free(&direct);
    at_eval_result_free(&transfer);
    at_eval_result_free(&weak);
    at_model_free(other);
}

static void setup_and_run(void)
{
    train_model();
}

TEST(setup) { setup_and_run(); }

TEST_MAIN(TEST_ENTRY(setup), TEST_ENTRY(pgd20_breaks_an_undefended_model_and_the_suite_is_never_weaker),
          TEST_ENTRY(outcomes_do_not_depend_on_the_batch_size),
          TEST_ENTRY(transfer_from_the_model_itself_equals_the_direct_attack))
