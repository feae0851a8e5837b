/* test_calibration.c: expected calibration error (Guo et al., ICML 2017). Ten predictions whose
 * ECE, MCE, NLL and Brier score are worked out by hand; a perfectly calibrated set (ECE 0) and an
 * over-confident one (ECE = the known gap); the right-closed bin edges, with a confidence of 1 in
 * the last bin; logits and probabilities agreeing; merging parts; the errors; and the evaluation
 * cascade's calibrations matching the outputs recomputed here on each point's final input. */
#include "test.h"

#include "advtrain.h"
#include "core/util.h"
#include "util/fixtures.h"

#include <math.h>

/* Row i of a k-class probability table: confidence c on class 0, the rest shared equally;
 * the label is 0 (a correct prediction) or 1 (a wrong one). */
static void row(float *p, int32_t *y, int k, double c, bool correct)
{
    p[0] = (float)c;
    for (int j = 1; j < k; j++)
        p[j] = (float)((1.0 - c) / (k - 1));
    *y = correct ? 0 : 1;
}

/* The ten predictions of the hand computation: (confidence, correct). */
static const double CONF[10] = {0.3, 0.35, 0.5, 0.55, 0.45, 0.7, 0.65, 0.9, 0.95, 1.0};
static const bool OK[10] = {1, 0, 1, 0, 0, 1, 1, 1, 0, 1};

TEST(ten_predictions_by_hand)
{
    enum { K = 4, N = 10 };
    float p[N * K];
    int32_t y[N];
    for (int i = 0; i < N; i++)
        row(p + i * K, &y[i], K, CONF[i], OK[i]);
    at_calibration cal;
    at_error err;
    CHECK_OK(at_calibration_init(&cal, 5, &err), &err);
    CHECK_OK(at_calibration_add_probs(&cal, p, N, K, y, &err), &err);
    /* Five bins (0,.2] (.2,.4] (.4,.6] (.6,.8] (.8,1]:
     *   bin 1: 0.3 ok, 0.35 wrong           acc 1/2, conf 0.325, gap 0.175,   weight 2/10
     *   bin 2: 0.5 ok, 0.55, 0.45 wrong     acc 1/3, conf 0.5,   gap 1/6,     weight 3/10
     *   bin 3: 0.7 ok, 0.65 ok              acc 1,   conf 0.675, gap 0.325,   weight 2/10
     *   bin 4: 0.9 ok, 0.95 wrong, 1.0 ok   acc 2/3, conf 0.95,  gap 0.28333, weight 3/10
     * ECE = 0.035 + 0.05 + 0.065 + 0.085 = 0.235; MCE = 0.325. */
    const long counts[5] = {0, 2, 3, 2, 3}, correct[5] = {0, 1, 1, 2, 2};
    for (int m = 0; m < 5; m++) {
        CHECK_EQ_INT(cal.bin_count[m], counts[m]);
        CHECK_EQ_INT(cal.bin_correct[m], correct[m]);
    }
    CHECK_CLOSE(cal.bin_confidence[3], 0.7 + 0.65, 1e-6, 0);
    CHECK_CLOSE(at_calibration_ece(&cal), 0.235, 1e-6, 0);
    CHECK_CLOSE(at_calibration_mce(&cal), 0.325, 1e-6, 0);
    CHECK_EQ_INT(cal.n, 10);
    CHECK_EQ_INT(cal.correct, 6);
    CHECK_CLOSE(cal.confidence_sum / cal.n, 0.635, 1e-6, 0);
    /* NLL and Brier from their definitions: the label's probability is c when correct and
     * (1 - c) / 3 when wrong; Brier sums (p_j - [j = y])^2 over the four classes. */
    double nll = 0, brier = 0;
    for (int i = 0; i < N; i++) {
        double c = CONF[i], rest = (1 - c) / 3;
        nll -= log(OK[i] ? c : rest);
        brier += OK[i] ? (1 - c) * (1 - c) + 3 * rest * rest
                       : c * c + (rest - 1) * (rest - 1) + 2 * rest * rest;
    }
    CHECK_CLOSE(cal.nll_sum / cal.n, nll / N, 1e-6, 0);
    CHECK_CLOSE(cal.brier_sum / cal.n, brier / N, 1e-6, 0);

    /* the same rows as logits (log-probabilities; the row of confidence 1 would need -inf, so
     * rows 0..8 only): the softmax gives back the probabilities */
    at_calibration a, b;
    CHECK_OK(at_calibration_init(&a, 5, &err), &err);
    CHECK_OK(at_calibration_init(&b, 5, &err), &err);
    float z[N * K];
    for (int i = 0; i < (N - 1) * K; i++)
        z[i] = logf(p[i]) + 3.0f; /* a shift leaves the softmax alone */
    CHECK_OK(at_calibration_add_probs(&a, p, N - 1, K, y, &err), &err);
    CHECK_OK(at_calibration_add_logits(&b, z, N - 1, K, y, &err), &err);
    CHECK_EQ_INT(b.n, 9);
    CHECK_EQ_INT(b.correct, a.correct);
    CHECK_CLOSE(at_calibration_ece(&b), at_calibration_ece(&a), 1e-6, 0);
    CHECK_CLOSE(b.nll_sum, a.nll_sum, 1e-5, 0);
    CHECK_CLOSE(b.brier_sum, a.brier_sum, 1e-6, 0);
    for (int m = 0; m < 5; m++)
        CHECK_EQ_INT(b.bin_count[m], a.bin_count[m]);

    /* merging two halves gives the whole */
    at_calibration h1, h2;
    CHECK_OK(at_calibration_init(&h1, 5, &err), &err);
    CHECK_OK(at_calibration_init(&h2, 5, &err), &err);
    CHECK_OK(at_calibration_add_probs(&h1, p, 4, K, y, &err), &err);
    CHECK_OK(at_calibration_add_probs(&h2, p + 4 * K, N - 4, K, y + 4, &err), &err);
    CHECK_OK(at_calibration_merge(&h1, &h2, &err), &err);
    CHECK_EQ_INT(h1.n, 10);
    CHECK_CLOSE(at_calibration_ece(&h1), 0.235, 1e-6, 0);
    CHECK_CLOSE(h1.nll_sum, cal.nll_sum, 1e-9, 1e-12);
    at_calibration_free(&h1);
    at_calibration_free(&h2);
    at_calibration_free(&a);
    at_calibration_free(&b);
    at_calibration_free(&cal);
}

TEST(perfectly_calibrated_gives_zero)
{
    /* in each bin the accuracy equals the confidence: 0.5 (1 of 2 right), 0.6 (3 of 5), 0.75 (3
     * of 4), 1.0 (3 of 3) */
    enum { K = 2, N = 14 };
    const double conf[4] = {0.5, 0.6, 0.75, 1.0};
    const int rows[4] = {2, 5, 4, 3}, right[4] = {1, 3, 3, 3};
    float p[N * K];
    int32_t y[N];
    int i = 0;
    for (int g = 0; g < 4; g++)
        for (int r = 0; r < rows[g]; r++, i++)
            row(p + i * K, &y[i], K, conf[g], r < right[g]);
    at_calibration cal;
    at_error err;
    CHECK_OK(at_calibration_init(&cal, 10, &err), &err);
    CHECK_OK(at_calibration_add_probs(&cal, p, N, K, y, &err), &err);
    /* at 0.5 of two classes class 0 is still the prediction (the first maximum) */
    CHECK_EQ_INT(cal.correct, 10);
    CHECK_CLOSE(at_calibration_ece(&cal), 0.0, 1e-7, 0);
    CHECK_CLOSE(at_calibration_mce(&cal), 0.0, 1e-7, 0);
    at_calibration_free(&cal);
}

TEST(over_confident_gives_the_gap)
{
    /* 20 predictions at confidence 0.9 over 10 classes, 12 right: accuracy 0.6, ECE 0.3 */
    enum { K = 10, N = 20 };
    float z[N * K];
    int32_t y[N];
    for (int i = 0; i < N; i++) {
        z[i * K] = logf(0.9f);
        for (int j = 1; j < K; j++)
            z[i * K + j] = logf(0.1f / 9);
        y[i] = i < 12 ? 0 : 1 + i % 9;
    }
    at_calibration cal;
    at_error err;
    CHECK_OK(at_calibration_init(&cal, AT_CALIBRATION_DEFAULT_BINS, &err), &err);
    CHECK_OK(at_calibration_add_logits(&cal, z, N, K, y, &err), &err);
    CHECK_CLOSE(at_calibration_ece(&cal), 0.3, 1e-6, 0);
    CHECK_CLOSE(at_calibration_mce(&cal), 0.3, 1e-6, 0);
    CHECK_EQ_INT(cal.bin_count[13], 20); /* 0.9 in (13/15, 14/15] */
    CHECK_CLOSE(cal.nll_sum / N, -(12 * log(0.9) + 8 * log(0.1 / 9)) / N, 1e-5, 0);
    at_calibration_free(&cal);
}

TEST(bin_edges)
{
    /* right-closed bins ((m-1)/M, m/M]: exact multiples of 1/M close their bin */
    CHECK_EQ_INT(at_calibration_bin_of(1.0, 15), 14);
    CHECK_EQ_INT(at_calibration_bin_of(1.0, 1), 0);
    CHECK_EQ_INT(at_calibration_bin_of(0.25, 4), 0);
    CHECK_EQ_INT(at_calibration_bin_of(0.5, 4), 1);
    CHECK_EQ_INT(at_calibration_bin_of(0.75, 4), 2);
    CHECK_EQ_INT(at_calibration_bin_of(0.5000001, 4), 2);
    CHECK_EQ_INT(at_calibration_bin_of(0.0, 4), 0);
    CHECK_EQ_INT(at_calibration_bin_of(0.999, 1000), 998);
    /* a probability of exactly 1 through the accumulator */
    float p[3] = {0.0f, 1.0f, 0.0f};
    int32_t y = 1;
    at_calibration cal;
    at_error err;
    CHECK_OK(at_calibration_init(&cal, 15, &err), &err);
    CHECK_OK(at_calibration_add_probs(&cal, p, 1, 3, &y, &err), &err);
    CHECK_EQ_INT(cal.bin_count[14], 1);
    CHECK_CLOSE(at_calibration_ece(&cal), 0.0, 1e-12, 0);
    CHECK_CLOSE(cal.brier_sum, 0.0, 1e-12, 0);
    at_calibration_free(&cal);
}

TEST(errors)
{
    at_calibration cal = {0};
    at_error err;
    float p[4] = {0.5f, 0.5f, 0.7f, 0.7f};
    int32_t y[2] = {0, 2};
    CHECK_EQ_INT(at_calibration_add_probs(&cal, p, 1, 2, y, &err), AT_ERR_STATE);
    CHECK_EQ_INT(at_calibration_init(&cal, 0, &err), AT_ERR_ARG);
    CHECK(strstr(err.message, "1..1000"));
    CHECK_EQ_INT(at_calibration_init(&cal, 1001, &err), AT_ERR_ARG);
    CHECK_OK(at_calibration_init(&cal, 4, &err), &err);
    CHECK_EQ_INT(at_calibration_add_probs(&cal, p, 2, 2, y, &err), AT_ERR_ARG); /* label 2 */
    CHECK(strstr(err.message, "label 2 of row 1"));
    y[1] = 1;
    CHECK_EQ_INT(at_calibration_add_probs(&cal, p, 2, 2, y, &err), AT_ERR_ARG); /* sums to 1.4 */
    CHECK(strstr(err.message, "row 1 sum"));
    CHECK_EQ_INT(cal.n, 0); /* a refused batch adds nothing */
    float z[4] = {1.0f, NAN, 2.0f, 0.0f};
    CHECK_OK(at_calibration_add_logits(&cal, z, 2, 2, y, &err), &err);
    CHECK_EQ_INT(cal.nonfinite, 1);
    CHECK_EQ_INT(cal.n, 1);
    at_calibration other;
    CHECK_OK(at_calibration_init(&other, 5, &err), &err);
    CHECK_EQ_INT(at_calibration_merge(&cal, &other, &err), AT_ERR_ARG);
    at_calibration_free(&other);
    at_calibration_free(&cal);
    at_calibration_free(&cal); /* freeing twice is harmless */
    CHECK(isnan(at_calibration_ece(&cal)));
}

/* The cascade bins the clean outputs and each point's final input: recomputed here with FGSM
 * (deterministic) run on every point, its output kept only where the point was right clean. */
TEST(eval_cascade_calibrations)
{
    enum { N = 40, C = 1, HW = 8, K = 5 };
    at_model *m = fixture_model("mlp-16", C, HW, K, 3);
    REQUIRE(m);
    at_dataset ds = {.name = "made", .n = N, .c = C, .h = HW, .w = HW, .num_classes = K};
    const size_t image = (size_t)C * HW * HW;
    ds.images = at_alloc(N * image);
    ds.labels = at_alloc(N * sizeof(int32_t));
    at_rng rng;
    at_rng_seed(&rng, 9);
    for (size_t i = 0; i < N * image; i++)
        ds.images[i] = (uint8_t)at_rng_below(&rng, 256);
    float *x = at_alloc(N * image * sizeof(float)), *adv = at_alloc(N * image * sizeof(float));
    int32_t idx[N], y[N];
    for (int i = 0; i < N; i++)
        idx[i] = i;
    at_dataset_batch(&ds, idx, N, x, y, NULL, NULL);
    fixture_predict(m, x, N, ds.labels);
    for (int i = 0; i < N; i += 3)
        ds.labels[i] = (ds.labels[i] + 1) % K; /* a third misclassified clean */
    at_dataset_batch(&ds, idx, N, x, y, NULL, NULL);

    at_eval_plan plan = {.n_attacks = 1, .attacks = {"fgsm"}, .batch_size = 16, .seed = 1,
                         .calibration_bins = 7};
    plan.options[0] = (at_attack_options){.norm = AT_NORM_LINF, .eps = 0.3f};
    at_eval_result r;
    at_error err;
    CHECK_OK(at_eval_robust(m, &ds, &plan, &r, NULL, NULL, &err), &err);
    REQUIRE(r.outcome);
    CHECK_EQ_INT(r.clean_calibration.bins, 7);
    CHECK_EQ_INT(r.clean_calibration.n, N);
    CHECK_EQ_INT(r.clean_calibration.correct, r.clean_correct);
    CHECK_EQ_INT(r.adversarial_calibration.n, N);
    CHECK_EQ_INT(r.adversarial_calibration.correct, r.robust_after[0]);
    CHECK(r.broken_by[0] > 0); /* the adversarial set differs from the clean one */

    at_attack *fgsm = NULL;
    CHECK_OK(at_attack_create(&fgsm, "fgsm", m, N, &plan.options[0], &err), &err);
    uint64_t seeds[N] = {0};
    CHECK_OK(at_attack_run(fgsm, x, y, NULL, N, seeds, adv, NULL), &err);
    for (int i = 0; i < N; i++)
        if (r.outcome[i] == -2)
            memcpy(adv + i * image, x + i * image, image * sizeof(float));
    at_pass *pass = NULL;
    CHECK_OK(at_pass_create(&pass, m, N, AT_PASS_FORWARD_ONLY, &err), &err);
    at_calibration clean, final;
    CHECK_OK(at_calibration_init(&clean, 7, &err), &err);
    CHECK_OK(at_calibration_init(&final, 7, &err), &err);
    at_forward(pass, x, N, AT_BN_EVAL);
    CHECK_OK(at_calibration_add_logits(&clean, at_pass_logits(pass), N, K, y, &err), &err);
    at_forward(pass, adv, N, AT_BN_EVAL);
    CHECK_OK(at_calibration_add_logits(&final, at_pass_logits(pass), N, K, y, &err), &err);
    CHECK_CLOSE(at_calibration_ece(&r.clean_calibration), at_calibration_ece(&clean), 1e-5, 0);
    CHECK_CLOSE(r.clean_calibration.nll_sum, clean.nll_sum, 1e-4, 1e-5);
    CHECK_EQ_INT(final.correct, r.robust_after[0]);
    CHECK_CLOSE(at_calibration_ece(&r.adversarial_calibration), at_calibration_ece(&final), 1e-5,
                0);
    CHECK_CLOSE(r.adversarial_calibration.nll_sum, final.nll_sum, 1e-4, 1e-5);
    CHECK_CLOSE(r.adversarial_calibration.brier_sum, final.brier_sum, 1e-4, 1e-5);
    printf("  clean ECE %.4f, adversarial ECE %.4f (%ld of %d robust)\n",
           at_calibration_ece(&clean), at_calibration_ece(&final), r.robust_after[0], N);

    /* the clean-only evaluation bins the same outputs */
    at_calibration direct;
    long correct;
    double loss;
    CHECK_OK(at_calibration_init(&direct, 7, &err), &err);
    CHECK_OK(at_evaluate_clean_calibrated(m, &ds, 16, &correct, &loss, &direct, &err), &err);
    CHECK_EQ_INT(correct, r.clean_correct);
    CHECK_EQ_INT(direct.correct, r.clean_correct);
    CHECK_CLOSE(at_calibration_ece(&direct), at_calibration_ece(&clean), 1e-5, 0);
    CHECK_CLOSE(direct.nll_sum / N, loss, 1e-5, 1e-5);

    /* no attack: no adversarial calibration */
    at_eval_result r0;
    plan.n_attacks = 0;
    CHECK_OK(at_eval_robust(m, &ds, &plan, &r0, NULL, NULL, &err), &err);
    CHECK_EQ_INT(r0.clean_calibration.n, N);
    CHECK_EQ_INT(r0.adversarial_calibration.bins, 0);
    at_eval_result_free(&r0);
    plan.calibration_bins = 1001;
    CHECK_EQ_INT(at_eval_robust(m, &ds, &plan, &r0, NULL, NULL, &err), AT_ERR_ARG);
    CHECK(r0.outcome == NULL);

    at_eval_result_free(&r);
    at_calibration_free(&direct);
    at_calibration_free(&clean);
    at_calibration_free(&final);
    at_pass_free(pass);
    at_attack_free(fgsm);
    at_free(x);
    at_free(adv);
    at_dataset_free(&ds);
    at_model_free(m);
}

TEST_MAIN(TEST_ENTRY(ten_predictions_by_hand), TEST_ENTRY(perfectly_calibrated_gives_zero),
          TEST_ENTRY(over_confident_gives_the_gap), TEST_ENTRY(bin_edges), TEST_ENTRY(errors),
          TEST_ENTRY(eval_cascade_calibrations))
