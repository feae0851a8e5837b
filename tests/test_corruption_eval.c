/* test_corruption_eval.c: a model's accuracy under a corruption does not depend on how the images
 * are batched or on the number of threads (each image has its own stream), the images as they are
 * give the clean accuracy, and the predictions are the model's on at_corrupt_images' output. */
#include "test.h"

#include "advtrain.h"
#include "util/train_fixtures.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

enum { N = 37, IMAGE = BANDS_HW * BANDS_HW, K = BANDS_K };

TEST(batches_and_threads_do_not_change_the_result)
{
    at_dataset d = bands_data(N, 3);
    at_model *m = bands_mlp(2);
    REQUIRE(m);
    at_error err;
    const int glass = at_corruption_find("glass_blur");
    REQUIRE(glass >= 0);
    uint8_t a[N], b[N];
    float la[N * K], lb[N * K];
    long ca, cb;
    CHECK_OK(at_eval_corrupted(m, &d, glass, 3, 9, 500, a, la, &ca, &err), &err);
    const int threads = omp_get_max_threads();
    omp_set_num_threads(1);
    CHECK_OK(at_eval_corrupted(m, &d, glass, 3, 9, 5, b, lb, &cb, &err), &err);
    omp_set_num_threads(threads);
    /* the same images: the same predictions (the logits up to the GEMM's blocking) */
    CHECK(ca == cb && memcmp(a, b, N) == 0);
    for (int j = 0; j < N * K; j++)
        CHECK_CLOSE(la[j], lb[j], 1e-5, 1e-5);

    /* the logits are the model's own on the corrupted images */
    float x[N * IMAGE];
    for (int j = 0; j < N * IMAGE; j++)
        x[j] = d.images[j] / 255.0f;
    CHECK_OK(at_corrupt_images(glass, 3, x, N, 1, BANDS_HW, BANDS_HW, 9, 0, &err), &err);
    at_pass *p = NULL;
    CHECK_OK(at_pass_create(&p, m, N, AT_PASS_FORWARD_ONLY, &err), &err);
    at_forward(p, x, N, AT_BN_EVAL);
    CHECK(memcmp(at_pass_logits(p), la, sizeof la) == 0);
    at_pass_free(p);

    /* as they are: the clean accuracy */
    long clean, plain;
    double loss;
    CHECK_OK(at_evaluate_clean(m, &d, 8, &clean, &loss, &err), &err);
    CHECK_OK(at_eval_corrupted(m, &d, -1, 0, 0, 8, NULL, NULL, &plain, &err), &err);
    CHECK(clean == plain);
    /* and a bad corruption or severity is an error, not a crash */
    CHECK(at_eval_corrupted(m, &d, at_corruption_count(), 1, 0, 8, NULL, NULL, &plain, &err) < 0);
    CHECK(at_eval_corrupted(m, &d, glass, 6, 0, 8, NULL, NULL, &plain, &err) < 0);
    at_model_free(m);
    bands_free(&d);
}

TEST_MAIN(TEST_ENTRY(batches_and_threads_do_not_change_the_result))
