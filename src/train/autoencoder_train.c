/* autoencoder_train.c: training an autoencoder (models/autoencoder.c) to reconstruct a data
 * set's images, the stand-in for AdA's pretrained image-to-image networks: the loss is the mean
 * squared error over every pixel of the batch, (1/(n P)) sum (c(x) - x)^2, minimised by the
 * caller's optimiser. The order of each epoch comes from the caller's generator, so a run is
 * determined by its seed. */
#include "core/util.h"

#include <math.h>
#include <stdlib.h>

int at_autoencoder_train_epoch(at_pass *pass, at_optimizer *opt, const at_dataset *ds,
                               int batch_size, float lr, at_rng *rng, double *mse, at_error *err)
{
    at_model *ae = at_pass_model(pass);
    int c, h, w;
    at_model_input_shape(ae, &c, &h, &w);
    if (ds->c != c || ds->h != h || ds->w != w)
        return at_fail(err, AT_ERR_SHAPE, "the autoencoder takes %dx%dx%d images but %s has "
                       "%dx%dx%d", c, h, w, ds->name, ds->c, ds->h, ds->w);
    if (ds->n < 1 || batch_size < 1)
        return at_fail(err, AT_ERR_ARG, "autoencoder training needs images and a batch size >= 1");
    const size_t image = (size_t)c * h * w;
    int32_t *order = at_alloc((size_t)ds->n * sizeof(int32_t));
    int32_t *y = at_alloc((size_t)batch_size * sizeof(int32_t));
    float *x = at_alloc((size_t)batch_size * image * sizeof(float));
    float *grad = at_alloc((size_t)batch_size * image * sizeof(float));
    int status = order && y && x && grad ? AT_OK : at_fail(err, AT_ERR_NOMEM, "out of memory");
    for (int i = 0; !status && i < ds->n; i++)
        order[i] = i;
    if (!status)
        at_rng_shuffle(rng, order, (size_t)ds->n);
    double sum = 0.0;
    for (int first = 0; !status && first < ds->n; first += batch_size) {
        const int n = ds->n - first < batch_size ? ds->n - first : batch_size;
        at_dataset_batch(ds, order + first, n, x, y, NULL, NULL);
        if ((status = at_forward(pass, x, n, AT_BN_TRAIN)))
            break;
        const float *out = at_pass_logits(pass);
        const size_t pixels = (size_t)n * image;
        double batch_sum = 0.0;
        for (size_t j = 0; j < pixels; j++) {
            const double d = (double)out[j] - x[j];
            batch_sum += d * d;
            grad[j] = (float)(2.0 * d / (double)pixels);
        }
        if (!isfinite(batch_sum)) {
            status = at_fail(err, AT_ERR_NUMERIC, "autoencoder training diverged (non-finite "
                             "reconstruction error): lower the learning rate");
            break;
        }
        sum += batch_sum;
        at_model_zero_grad(ae);
        if ((status = at_backward(pass, grad, AT_GRAD_WEIGHTS)))
            break;
        at_optimizer_step(opt, lr);
    }
    if (!status)
        *mse = sum / ((double)ds->n * image);
    at_free(order);
    at_free(y);
    at_free(x);
    at_free(grad);
    return status;
}

int at_autoencoder_mse(at_model *ae, const at_dataset *ds, int batch_size, double *mse,
                       at_error *err)
{
    int c, h, w;
    at_model_input_shape(ae, &c, &h, &w);
    if (ds->c != c || ds->h != h || ds->w != w)
        return at_fail(err, AT_ERR_SHAPE, "the autoencoder takes %dx%dx%d images but %s has "
                       "%dx%dx%d", c, h, w, ds->name, ds->c, ds->h, ds->w);
    if (ds->n < 1 || batch_size < 1)
        return at_fail(err, AT_ERR_ARG, "reconstruction error needs images and a batch size >= 1");
    at_pass *pass = NULL;
    int status = at_pass_create(&pass, ae, batch_size, AT_PASS_FORWARD_ONLY, err);
    if (status)
        return status;
    const size_t image = (size_t)c * h * w;
    int32_t *idx = at_alloc((size_t)batch_size * sizeof(int32_t));
    int32_t *y = at_alloc((size_t)batch_size * sizeof(int32_t));
    float *x = at_alloc((size_t)batch_size * image * sizeof(float));
    status = idx && y && x ? AT_OK : at_fail(err, AT_ERR_NOMEM, "out of memory");
    double sum = 0.0;
    for (int first = 0; !status && first < ds->n; first += batch_size) {
        const int n = ds->n - first < batch_size ? ds->n - first : batch_size;
        for (int i = 0; i < n; i++)
            idx[i] = first + i;
        at_dataset_batch(ds, idx, n, x, y, NULL, NULL);
        if ((status = at_forward(pass, x, n, AT_BN_EVAL)))
            break;
        const float *out = at_pass_logits(pass);
        for (size_t j = 0; j < (size_t)n * image; j++) {
            const double d = (double)out[j] - x[j];
            sum += d * d;
        }
    }
    if (!status)
        *mse = sum / ((double)ds->n * image);
    at_pass_free(pass);
    at_free(idx);
    at_free(y);
    at_free(x);
    return status;
}
