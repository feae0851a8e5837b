/* test_eval.c: the robustness evaluation on real data. An undefended SmallCNN trained on
 * Fashion-MNIST is broken by PGD-20 at eps 0.1 on at least 95% of its correct points, and the
 * AutoAttack-style cascade breaks every point PGD-20 breaks. Its cost is the training (ctest label
 * real-data: the optimised build runs it; the cascade's code paths run under the sanitizers in
 * test_eval_cascade and test_attacks).
 *
 * Six epochs on the first 10,000 training images: a real, undefended classifier (~83% test
 * accuracy). Shorter training leaves a smoother model that PGD-20 at eps 0.1 does not fully
 * break (measured: 2 epochs on 6,000 images left 23% of points robust). */
#include "test.h"
#include "util/fixtures.h"

#include "advtrain.h"

static at_model *model;
static at_dataset test_points;

TEST(setup) { model = fixture_fashion_smallcnn(10000, 6, 128, 1, 300, &test_points); }

TEST(pgd20_breaks_an_undefended_model_and_the_suite_is_never_weaker)
{
    REQUIRE(model);
    at_error err;
    const char *pgd[1] = {"pgd"};
    at_eval_plan p = fixture_linf_plan(pgd, 1, 0.1f);
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
    at_eval_plan s = fixture_linf_plan(standard, 4, 0.1f);
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

TEST_MAIN(TEST_ENTRY(setup), TEST_ENTRY(pgd20_breaks_an_undefended_model_and_the_suite_is_never_weaker))
