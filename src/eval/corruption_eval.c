/* corruption_eval.c: a model's predictions on a data set under one common corruption at one
 * severity (corruptions.c), the benchmark of Hendrycks and Dietterich (ICLR 2019) made from the
 * clean test set, or on a data set as it is (a real CIFAR-10-C cell, or the clean images). */
#include "advtrain.h"
#include "core/util.h"

#include <string.h>

int at_eval_corrupted(at_model *model, const at_dataset *ds, int corruption, int severity,
                      uint64_t seed, int batch_size, uint8_t *correct, float *logits_out,
                      long *n_correct, at_error *err)
{
    *n_correct = 0;
    if (ds->n < 1)
        return at_fail(err, AT_ERR_ARG, "%s: no examples to evaluate", ds->name);
    if (corruption >= at_corruption_count())
        return at_fail(err, AT_ERR_ARG, "corruption %d: there are %d", corruption,
                       at_corruption_count());
    int c, h, w;
    at_model_input_shape(model, &c, &h, &w);
    if (ds->c != c || ds->h != h || ds->w != w)
        return at_fail(err, AT_ERR_SHAPE, "model %s takes %dx%dx%d inputs but %s has %dx%dx%d images",
                       at_model_arch(model), c, h, w, ds->name, ds->c, ds->h, ds->w);
    if (batch_size < 1)
        batch_size = 500;
    if (batch_size > ds->n)
        batch_size = ds->n;
    const int k = at_model_num_classes(model);
    const size_t image = (size_t)c * h * w;
    at_pass *pass = NULL;
    int status = at_pass_create(&pass, model, batch_size, AT_PASS_FORWARD_ONLY, err);
    if (status)
        return status;
    float *x = at_alloc((size_t)batch_size * image * sizeof(float));
    int32_t *y = at_alloc((size_t)batch_size * sizeof(int32_t));
    int32_t *idx = at_alloc((size_t)batch_size * sizeof(int32_t));
    uint8_t *right = at_alloc((size_t)batch_size);
    if (!x || !y || !idx || !right) {
        status = at_fail(err, AT_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (int first = 0; first < ds->n && !status; first += batch_size) {
        const int n = ds->n - first < batch_size ? ds->n - first : batch_size;
        for (int i = 0; i < n; i++)
            idx[i] = first + i;
        at_dataset_batch(ds, idx, n, x, y, NULL, NULL);
        if (corruption >= 0) {
            /* each image has its own stream (at_corrupt_images), so the threads may split them
             * any way; the first failure is kept */
            int failed = 0;
            at_error first_err = {0};
#pragma omp parallel for schedule(dynamic, 8)
            for (int i = 0; i < n; i++) {
                at_error e;
                if (at_corrupt_images(corruption, severity, x + (size_t)i * image, 1, c, h, w, seed,
                                      (long)first + i, &e) < 0) {
#pragma omp critical
                    if (!failed) {
                        failed = e.status ? e.status : AT_ERR_ARG;
                        first_err = e;
                    }
                }
            }
            if (failed) {
                status = at_fail(err, failed, "%s", first_err.message);
                break;
            }
        }
        if ((status = at_forward(pass, x, n, AT_BN_EVAL)))
            break;
        const float *logits = at_pass_logits(pass);
        *n_correct += at_count_correct(logits, n, k, y, right);
        if (correct)
            memcpy(correct + first, right, (size_t)n);
        if (logits_out)
            memcpy(logits_out + (size_t)first * k, logits, (size_t)n * k * sizeof(float));
    }
done:
    at_free(x);
    at_free(y);
    at_free(idx);
    at_free(right);
    at_pass_free(pass);
    return status;
}
