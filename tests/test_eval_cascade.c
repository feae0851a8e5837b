/* test_eval_cascade.c: the evaluation cascade's bookkeeping on a briefly trained SmallCNN
 * (Fashion-MNIST, one epoch on 2,000 images): per-point outcomes do not depend on the batch size,
 * a transfer attack from the model itself equals the direct attack, and a surrogate with other
 * weights transfers only part of its success. */
#include "test.h"
#include "util/fixtures.h"

#include "advtrain.h"

static at_model *model;
static at_dataset test_points;

TEST(setup) { model = fixture_fashion_smallcnn(2000, 1, 64, 1, 120, &test_points); }

TEST(outcomes_do_not_depend_on_the_batch_size)
{
    REQUIRE(model);
    at_error err;
    const char *names[2] = {"pgd", "apgd-ce"};
    at_eval_plan p = fixture_linf_plan(names, 2, 0.03f);
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
    at_eval_plan p = fixture_linf_plan(names, 1, 0.03f);
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

TEST_MAIN(TEST_ENTRY(setup), TEST_ENTRY(outcomes_do_not_depend_on_the_batch_size),
          TEST_ENTRY(transfer_from_the_model_itself_equals_the_direct_attack))
