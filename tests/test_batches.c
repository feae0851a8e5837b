/* test_batches.c: what a training batch holds, each feature pinned to its definition. An OOD
 * weight of 0 trains like the base method (to rounding: its rows make the batch longer); CutMix with an empty box too; so does a
 * budget schedule that cannot move (one curriculum stage, a stochastic or adaptive range of one
 * value), and extra data at a ratio of 0. Then the features themselves: the curriculum's
 * staircase, adaptive budgets moving by +-rate eps within their bounds, batch repetition with
 * independently augmented copies, extra rows with smoothed labels, CutMix's box and targets, OOD
 * images, and the errors for options that do not apply. */
#include "test.h"

#include "advtrain.h"
#include "train/batch.h"
#include "util/train_fixtures.h"

#include <stdlib.h>

enum { N = 64, K = BANDS_K, IMAGE = BANDS_HW * BANDS_HW };

/* Trains `cfg` and `base` from the same start on the same data; checks the weights are (or are
 * not) the same: bit-identical with tolerance 0, else within tolerance x the largest weight. */
static void compare_runs_within(const at_train_config *base, const at_train_config *cfg,
                                const at_dataset *d, bool same, double tolerance,
                                const char *what)
{
    size_t n1 = 0, n2 = 0;
    float *a = bands_train(base, d, &n1), *b = bands_train(cfg, d, &n2);
    if (!a || !b || n1 != n2) {
        TEST_FAIL_("%s: a run failed", what);
    } else {
        double largest = 0.0, worst = 0.0;
        for (size_t i = 0; i < n1; i++) {
            largest = fmax(largest, fabs(a[i]));
            worst = fmax(worst, fabs((double)a[i] - b[i]));
        }
        const bool equal = tolerance == 0.0 ? memcmp(a, b, n1 * sizeof(float)) == 0
                                            : worst <= tolerance * largest;
        if (equal != same)
            TEST_FAIL_("%s: the weights %s (largest difference %.3g, largest weight %.3g)", what,
                       same ? "differ" : "are the same", worst, largest);
    }
    free(a);
    free(b);
}

static void compare_runs(const at_train_config *base, const at_train_config *cfg,
                         const at_dataset *d, bool same, const char *what)
{
    compare_runs_within(base, cfg, d, same, 0.0, what);
}

/* bands_config, with free-at replaying twice over 4 epochs (its preset needs 8k epochs) */
static at_train_config config(const char *method)
{
    at_train_config c = bands_config(method);
    if (!strcmp(method, "free-at")) {
        c.epochs = 4;
        at_train_config_set(&c, "replays", "2");
    }
    return c;
}

static const char *const adversarial[] = {"pgd-at", "trades", "fgsm-rs", "free-at"};
#define N_ADVERSARIAL (int)(sizeof adversarial / sizeof adversarial[0])

TEST(an_ood_weight_of_zero_is_the_base_method)
{
    at_dataset d = bands_data(N, 1);
    for (int i = 0; i < N_ADVERSARIAL; i++) {
        at_train_config base = config(adversarial[i]), ood = base;
        for (int source = AT_OOD_GAUSSIAN; source <= AT_OOD_TEXTURES; source++) {
            ood.ood = (at_ood_source)source;
            ood.ood_weight = 0.0f;
            char what[96];
            snprintf(what, sizeof what, "%s with %s OOD rows of weight 0", adversarial[i],
                     at_ood_source_name(ood.ood));
            /* the rows of weight 0 add nothing, but a longer batch cuts the rows into other
             * units of the sums over the batch (at_reduce_units): the same up to rounding.
             * TRADES amplifies it: its attack takes signed steps from x + 0.001 N(0,1), where
             * the KL's gradient is tiny and a rounding can flip a sign (measured: 2.9e-5 of the
             * largest weight on one processor, 1e-7 for the other methods; weight 5 moves the
             * weights by 0.3 of it) */
            compare_runs_within(&base, &ood, &d, true, 1e-3, what);
        }
        ood.ood_weight = 5.0f;
        compare_runs_within(&base, &ood, &d, false, 1e-4, "OOD rows of weight 5");
    }
    bands_free(&d);
}

TEST(cutmix_with_an_empty_box_is_the_base_method)
{
    at_dataset d = bands_data(N, 2);
    const char *methods[] = {"standard", "pgd-at", "trades", "fgsm-rs", "iat"};
    for (int i = 0; i < 5; i++) {
        at_train_config base = bands_config(methods[i]), cut = base;
        cut.cutmix = true;
        cut.cutmix_alpha = 0.0f;
        compare_runs(&base, &cut, &d, true, methods[i]);
        cut.cutmix_alpha = 1.0f;
        compare_runs(&base, &cut, &d, false, methods[i]);
    }
    bands_free(&d);
}

TEST(a_schedule_that_cannot_move_is_the_fixed_budget)
{
    at_dataset d = bands_data(N, 3);
    const char *methods[] = {"pgd-at", "trades", "free-at"};
    for (int i = 0; i < 3; i++) {
        at_train_config base = config(methods[i]);
        at_train_config curriculum = base, stochastic = base, adaptive = base;
        curriculum.eps_schedule = AT_EPS_CURRICULUM;
        curriculum.eps_stages = 1;
        stochastic.eps_schedule = AT_EPS_STOCHASTIC;
        stochastic.eps_min = base.eps;
        adaptive.eps_schedule = AT_EPS_ADAPTIVE;
        adaptive.eps_min = base.eps;
        compare_runs(&base, &curriculum, &d, true, "one curriculum stage");
        compare_runs(&base, &stochastic, &d, true, "stochastic eps in [eps, eps]");
        compare_runs(&base, &adaptive, &d, true, "adaptive eps in [eps, eps]");
        /* and ones that can move change the run */
        stochastic.eps_min = 0.0f;
        adaptive.eps_min = 0.0f;
        compare_runs(&base, &stochastic, &d, false, "stochastic eps in [0, eps]");
        compare_runs(&base, &adaptive, &d, false, "adaptive eps in [0, eps]");
    }
    bands_free(&d);
}

TEST(the_curriculum_climbs_a_staircase_and_stochastic_budgets_stay_in_range)
{
    at_dataset d = bands_data(N, 4), val = {0};
    at_model *m = bands_mlp(1);
    at_train_config c = bands_config("pgd-at");
    c.epochs = 4;
    c.eps_schedule = AT_EPS_CURRICULUM;
    c.eps_stages = 2;
    at_trainer *t = NULL;
    at_error err;
    CHECK_OK(at_trainer_create(&t, m, &d, &val, &c, &err), &err);
    REQUIRE(t);
    const float expect[4] = {0.025f, 0.025f, 0.05f, 0.05f};
    for (int e = 0; e < 4; e++) {
        at_epoch_stats st;
        CHECK_OK(at_trainer_run_epoch(t, NULL, &st, &err), &err);
        CHECK_CLOSE(st.eps, expect[e], 1e-9, 0);
    }
    at_trainer_free(t);
    c.eps_schedule = AT_EPS_STOCHASTIC;
    c.eps_stages = 0;
    c.eps_min = 0.02f;
    CHECK_OK(at_trainer_create(&t, m, &d, &val, &c, &err), &err);
    REQUIRE(t);
    double seen[4];
    for (int e = 0; e < 4; e++) {
        at_epoch_stats st;
        CHECK_OK(at_trainer_run_epoch(t, NULL, &st, &err), &err);
        CHECK(st.eps >= 0.02f && st.eps <= 0.05f);
        seen[e] = st.eps;
    }
    CHECK(seen[0] != seen[1] || seen[1] != seen[2]);
    at_trainer_free(t);
    /* options of another schedule are errors */
    c.eps_schedule = AT_EPS_CURRICULUM;
    CHECK_EQ_INT(at_trainer_create(&t, m, &d, &val, &c, &err), AT_ERR_ARG);
    CHECK(strstr(err.message, "eps-min") != NULL);
    at_model_free(m);
    bands_free(&d);
}

TEST(adaptive_budgets_move_by_the_rate_within_their_bounds)
{
    at_dataset d = bands_data(N, 5);
    at_train_config c = bands_config("pgd-at");
    c.eps = 0.1f;
    c.eps_schedule = AT_EPS_ADAPTIVE;
    c.eps_min = 0.07f;
    c.eps_rate = 0.1f;
    at_batch_maker *m = NULL;
    at_error err;
    CHECK_OK(at_batch_maker_create(&m, &d, &c, K, &err), &err);
    REQUIRE(m);
    at_batch_begin_epoch(m, 0);
    at_batch b;
    at_batch_make(m, 0, c.eps, &b);
    REQUIRE(b.eps);
    uint8_t correct[16];
    for (int i = 0; i < b.n; i++) {
        CHECK_CLOSE(b.eps[i], 0.1f, 1e-9, 0); /* every budget starts at eps */
        correct[i] = (uint8_t)(i % 2);
    }
    int count;
    float *budget = at_batch_budgets(m, &count);
    CHECK_EQ_INT(count, N);
    for (int round = 1; round <= 4; round++) {
        at_batch_update_budgets(m, correct);
        int down = 0;
        for (int i = 0; i < N; i++)
            down += budget[i] < 0.1f;
        CHECK_EQ_INT(down, 8); /* the 8 broken rows of the batch; the robust ones stay at eps */
        for (int i = 0; i < N; i++)
            CHECK(budget[i] >= 0.07f - 1e-7f && budget[i] <= 0.1f);
        if (round == 1)
            for (int i = 0; i < N; i++)
                CHECK(budget[i] == 0.1f || fabsf(budget[i] - 0.09f) < 1e-6f);
    }
    /* four steps of -0.01 from 0.1 would reach 0.06: the lower bound holds it at 0.07 */
    int at_floor = 0;
    for (int i = 0; i < N; i++)
        at_floor += fabsf(budget[i] - 0.07f) < 1e-6f;
    CHECK_EQ_INT(at_floor, 8);
    /* the next batch carries each row's own budget */
    at_batch_make(m, 0, c.eps, &b);
    for (int i = 0; i < b.n; i++)
        CHECK_CLOSE(b.eps[i], i % 2 ? 0.1f : 0.07f, 1e-6, 0);
    at_batch_maker_free(m);
    bands_free(&d);
}

TEST(repeated_images_are_copies_augmented_independently)
{
    at_dataset d = bands_data(N, 6);
    at_train_config c = bands_config("standard");
    c.repeat = 4;
    c.augment.crop_padding = 2;
    at_batch_maker *m = NULL;
    at_error err;
    CHECK_OK(at_batch_maker_create(&m, &d, &c, K, &err), &err);
    REQUIRE(m);
    CHECK_EQ_INT(at_batch_steps(m), N / 16); /* an epoch keeps its number of steps */
    at_batch_begin_epoch(m, 0);
    at_batch b;
    at_batch_make(m, 1, 0.0f, &b);
    CHECK_EQ_INT(b.n, 16);
    CHECK_EQ_INT(b.scored, 16);
    int differ = 0;
    for (int g = 0; g < 4; g++)
        for (int r = 1; r < 4; r++) {
            CHECK_EQ_INT(b.y[r * 4 + g], b.y[g]);
            differ += memcmp(b.x + (size_t)(r * 4 + g) * IMAGE, b.x + (size_t)g * IMAGE,
                             IMAGE * sizeof(float)) != 0;
        }
    CHECK(differ >= 8); /* most copies cropped differently */
    at_batch_maker_free(m);
    c.batch_size = 18; /* not a multiple of 4 */
    CHECK_EQ_INT(at_batch_maker_create(&m, &d, &c, K, &err), AT_ERR_ARG);
    bands_free(&d);
}

TEST(extra_rows_carry_smoothed_labels_and_a_ratio_of_zero_is_no_extra_data)
{
    at_dataset d = bands_data(N + 8, 7), extra = bands_data(40, 8);
    snprintf(extra.name, sizeof extra.name, "extra");
    at_train_config base = bands_config("pgd-at"), with = base;
    with.extra = &extra;
    with.extra_ratio = 0.0f;
    with.extra_smoothing = 0.1f;
    compare_runs(&base, &with, &d, true, "extra data at ratio 0");
    with.extra_ratio = 0.5f;
    compare_runs(&base, &with, &d, false, "extra data at ratio 0.5");
    at_batch_maker *m = NULL;
    at_error err;
    CHECK_OK(at_batch_maker_create(&m, &d, &with, K, &err), &err);
    REQUIRE(m);
    at_batch_begin_epoch(m, 0);
    at_batch b;
    at_batch_make(m, 0, 0.05f, &b);
    CHECK_EQ_INT(b.n, 16);
    REQUIRE(b.soft);
    for (int i = 0; i < 16; i++) {
        const float *t = b.soft + (size_t)i * K;
        float top = i < 8 ? 1.0f : 0.9f + 0.1f / K, rest = i < 8 ? 0.0f : 0.1f / K;
        for (int j = 0; j < K; j++)
            CHECK_CLOSE(t[j], j == b.y[i] ? top : rest, 1e-7, 0);
    }
    at_batch_maker_free(m);
    /* an extra set of another shape is refused */
    at_dataset wrong = extra;
    wrong.h = 4;
    with.extra = &wrong;
    CHECK_EQ_INT(at_batch_maker_create(&m, &d, &with, K, &err), AT_ERR_SHAPE);
    CHECK(strstr(err.message, "extra") != NULL);
    bands_free(&extra);
    bands_free(&d);
}

TEST(cutmix_pastes_the_partners_box_and_mixes_targets_by_area)
{
    enum { n = 6, k = 3, h = 8, w = 8 };
    float x[n * h * w], soft[n * k], scratch[n * (h * w + k)];
    int32_t y[n], iscratch[2 * n];
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < h * w; j++)
            x[i * h * w + j] = (float)i; /* image i is all i */
        y[i] = i % k;
        for (int j = 0; j < k; j++)
            soft[i * k + j] = j == y[i];
    }
    at_rng rng;
    at_rng_seed(&rng, 11);
    at_cutmix(x, soft, y, n, k, 1, h, w, 1.0f, &rng, scratch, iscratch);
    for (int i = 0; i < n; i++) {
        /* the pixels of another image make up the box; the targets weigh each by its area */
        int own = 0, partner = -1;
        for (int j = 0; j < h * w; j++) {
            if (x[i * h * w + j] == (float)i)
                own++;
            else
                partner = (int)x[i * h * w + j];
        }
        float kept = (float)own / (h * w), sum = 0.0f;
        for (int j = 0; j < k; j++)
            sum += soft[i * k + j];
        CHECK_CLOSE(sum, 1.0, 1e-6, 0);
        if (partner >= 0 && partner % k != i % k) {
            CHECK_CLOSE(soft[i * k + i % k], kept, 1e-6, 0);
            CHECK_CLOSE(soft[i * k + partner % k], 1.0f - kept, 1e-6, 0);
            CHECK_EQ_INT(y[i], kept >= 0.5f ? i % k : partner % k);
        }
    }
}

TEST(ood_images_are_in_range_and_reproducible)
{
    at_dataset d = bands_data(N, 9);
    float a[8 * IMAGE], b[8 * IMAGE];
    for (int source = AT_OOD_GAUSSIAN; source <= AT_OOD_DATA; source++) {
        at_rng r1, r2;
        at_rng_seed(&r1, 3);
        at_rng_seed(&r2, 3);
        at_ood_fill((at_ood_source)source, &d, &d, 8, a, &r1);
        at_ood_fill((at_ood_source)source, &d, &d, 8, b, &r2);
        CHECK(memcmp(a, b, sizeof a) == 0);
        double mean = 0.0;
        for (int j = 0; j < 8 * IMAGE; j++) {
            CHECK(a[j] >= 0.0f && a[j] <= 1.0f);
            mean += a[j];
        }
        CHECK(mean > 0.0);
    }
    /* a shuffled image holds its source's pixels, rearranged */
    at_rng r;
    at_rng_seed(&r, 5);
    at_ood_fill(AT_OOD_SHUFFLE, &d, NULL, 1, a, &r);
    at_rng_seed(&r, 5);
    const uint8_t *src = d.images + (size_t)at_rng_below(&r, N) * IMAGE;
    double s1 = 0.0, s2 = 0.0;
    int moved = 0;
    for (int j = 0; j < IMAGE; j++) {
        s1 += a[j];
        s2 += src[j] / 255.0;
        moved += a[j] != src[j] / 255.0f;
    }
    CHECK_CLOSE(s1, s2, 1e-4, 0);
    CHECK(moved > 0);
    bands_free(&d);
}

TEST(a_coreset_of_everything_is_full_training)
{
    at_dataset d = bands_data(N, 11);
    const char *methods[] = {"pgd-at", "trades"};
    for (int i = 0; i < 2; i++) {
        at_train_config base = config(methods[i]), core = base;
        base.epochs = core.epochs = 3;
        core.coreset = 1.0f;
        core.coreset_period = 1;
        core.coreset_warmup = core.coreset_start = -1;
        compare_runs(&base, &core, &d, true, "a coreset of fraction 1");
        core.coreset = 0.5f;
        compare_runs(&base, &core, &d, false, "a coreset of fraction 0.5");
    }
    bands_free(&d);
}

TEST(a_coreset_run_skips_its_warm_start_and_steps_through_the_subset)
{
    at_dataset d = bands_data(N, 12), val = {0};
    at_model *m = bands_mlp(1);
    at_train_config c = config("pgd-at");
    c.epochs = 6;
    c.coreset = 0.5f;
    c.coreset_period = 2;
    c.coreset_warmup = c.coreset_start = -1; /* start 3, warm-up round(0.5 x 3) = 2 */
    at_trainer *t = NULL;
    at_error err;
    CHECK_OK(at_trainer_create(&t, m, &d, &val, &c, &err), &err);
    REQUIRE(t);
    const bool skipped[6] = {false, false, true, false, false, false};
    const int chosen[6] = {0, 0, 0, 32, 0, 32};
    const long steps[6] = {4, 4, 0, 2, 2, 2};
    for (int e = 0; e < 6; e++) {
        at_epoch_stats st;
        CHECK_OK(at_trainer_run_epoch(t, NULL, &st, &err), &err);
        CHECK_EQ_INT(st.skipped, skipped[e]);
        CHECK_EQ_INT(st.coreset_size, chosen[e]);
        CHECK_EQ_INT(st.steps, steps[e]);
    }
    /* the coreset is part of the run's state: its weights are cluster sizes summing to N */
    at_st_tensor state[4];
    int n = at_trainer_state(t, state, 4);
    CHECK_EQ_INT(n, 2);
    CHECK_STR_EQ(state[0].name, "trainer.coreset_indices");
    CHECK_EQ_INT(state[0].shape[0], 32);
    double total = 0.0;
    for (int i = 0; i < 32; i++)
        total += ((const float *)state[1].data)[i];
    CHECK_CLOSE(total, N, 1e-9, 0);
    at_trainer_free(t);
    /* errors */
    c.coreset = 1.5f;
    CHECK_EQ_INT(at_trainer_create(&t, m, &d, &val, &c, &err), AT_ERR_ARG);
    c = config("standard");
    c.coreset = 0.5f;
    CHECK_EQ_INT(at_trainer_create(&t, m, &d, &val, &c, &err), AT_ERR_ARG);
    CHECK(strstr(err.message, "adversarial") != NULL);
    at_model_free(m);
    bands_free(&d);
}

TEST(options_that_do_not_apply_are_errors)
{
    at_dataset d = bands_data(N, 10), val = {0};
    at_model *m = bands_mlp(1);
    at_trainer *t = NULL;
    at_error err;
    at_train_config c = bands_config("mart");
    c.cutmix = true;
    CHECK_EQ_INT(at_trainer_create(&t, m, &d, &val, &c, &err), AT_ERR_ARG);
    CHECK(strstr(err.message, "mart") != NULL);
    c = bands_config("pgd-at");
    c.ood_weight = 2.0f; /* without a source */
    CHECK_EQ_INT(at_trainer_create(&t, m, &d, &val, &c, &err), AT_ERR_ARG);
    c = bands_config("standard");
    c.eps_schedule = AT_EPS_CURRICULUM;
    CHECK_EQ_INT(at_trainer_create(&t, m, &d, &val, &c, &err), AT_ERR_ARG);
    c = bands_config("pgd-at");
    c.eps_warmup = 1.0f;
    c.eps_schedule = AT_EPS_STOCHASTIC;
    CHECK_EQ_INT(at_trainer_create(&t, m, &d, &val, &c, &err), AT_ERR_ARG);
    c = bands_config("pgd-at");
    c.cutmix_alpha = 1.0f; /* without cutmix */
    CHECK_EQ_INT(at_trainer_create(&t, m, &d, &val, &c, &err), AT_ERR_ARG);
    at_model_free(m);
    bands_free(&d);
}

TEST_MAIN(TEST_ENTRY(an_ood_weight_of_zero_is_the_base_method),
          TEST_ENTRY(cutmix_with_an_empty_box_is_the_base_method),
          TEST_ENTRY(a_schedule_that_cannot_move_is_the_fixed_budget),
          TEST_ENTRY(the_curriculum_climbs_a_staircase_and_stochastic_budgets_stay_in_range),
          TEST_ENTRY(adaptive_budgets_move_by_the_rate_within_their_bounds),
          TEST_ENTRY(repeated_images_are_copies_augmented_independently),
          TEST_ENTRY(extra_rows_carry_smoothed_labels_and_a_ratio_of_zero_is_no_extra_data),
          TEST_ENTRY(cutmix_pastes_the_partners_box_and_mixes_targets_by_area),
          TEST_ENTRY(ood_images_are_in_range_and_reproducible),
          TEST_ENTRY(a_coreset_of_everything_is_full_training),
          TEST_ENTRY(a_coreset_run_skips_its_warm_start_and_steps_through_the_subset),
          TEST_ENTRY(options_that_do_not_apply_are_errors))
