/* evaluate.c: clean accuracy and loss over a whole data set, batch norm in eval mode, with one
 * forward-only pass, and optionally the calibration of the same outputs. */
#include "core/util.h"

int at_evaluate_clean_calibrated(at_model *model, const at_dataset *ds, int batch_size,
                                 long *correct, double *mean_loss, at_calibration *cal,
                                 at_error *err)
{
    *correct = 0;
    if (mean_loss)
        *mean_loss = 0.0;
    if (ds->n < 1)
        return at_fail(err, AT_ERR_ARG, "%s: no examples to evaluate", ds->name);
    if (batch_size < 1)
        batch_size = 500;
    if (batch_size > ds->n)
        batch_size = ds->n;
    int c, h, w;
    at_model_input_shape(model, &c, &h, &w);
    if (ds->c != c || ds->h != h || ds->w != w)
        return at_fail(err, AT_ERR_SHAPE, "model %s takes %dx%dx%d inputs but %s has %dx%dx%d images",
                       at_model_arch(model), c, h, w, ds->name, ds->c, ds->h, ds->w);
    const int k = at_model_num_classes(model);
    at_pass *pass = NULL;
    int status = at_pass_create(&pass, model, batch_size, AT_PASS_FORWARD_ONLY, err);
    if (status)
        return status;
    float *x = at_alloc((size_t)batch_size * c * h * w * sizeof(float));
    int32_t *y = at_alloc((size_t)batch_size * sizeof(int32_t));
    int32_t *idx = at_alloc((size_t)batch_size * sizeof(int32_t));
    if (!x || !y || !idx) {
        status = at_fail(err, AT_ERR_NOMEM, "out of memory");
        goto done;
    }
    double loss_sum = 0.0;
    for (int first = 0; first < ds->n; first += batch_size) {
        int n = ds->n - first < batch_size ? ds->n - first : batch_size;
        for (int i = 0; i < n; i++)
            idx[i] = first + i;
        at_dataset_batch(ds, idx, n, x, y, NULL, NULL);
        at_forward(pass, x, n, AT_BN_EVAL);
        const float *logits = at_pass_logits(pass);
        *correct += at_count_correct(logits, n, k, y, NULL);
        if (cal && (status = at_calibration_add_logits(cal, logits, n, k, y, err)))
            goto done;
        if (mean_loss)
            loss_sum += (double)at_loss_cross_entropy(logits, n, k, &(at_ce_target){.labels = y},
                                                      NULL, NULL) * n;
    }
    if (mean_loss)
        *mean_loss = loss_sum / ds->n;
done:
    at_free(x);
    at_free(y);
    at_free(idx);
    at_pass_free(pass);
    return status;
}

int at_evaluate_clean(at_model *model, const at_dataset *ds, int batch_size, long *correct,
                      double *mean_loss, at_error *err)
{
    return at_evaluate_clean_calibrated(model, ds, batch_size, correct, mean_loss, NULL, err);
}
