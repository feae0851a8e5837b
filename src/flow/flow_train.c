/* flow_train.c: maximum-likelihood training of a flow (Dinh et al., "Density estimation using
 * Real NVP", ICLR 2017, sec. 4.1): images uniformly dequantised, x = (255 x_0 + u) / 256 with
 * u ~ U[0,1) per pixel (Theis et al., 2016), the loss the mean over the batch of the negative
 * log-likelihood in bits per dimension, -log p(x) / (D log 2) + 8; test bits per dimension; and
 * samples at a temperature. */
#include "flow/flow.h"

#include <math.h>
#include <string.h>

/* log p(x) = sum_d log N(z_d) + logdet */
static double log_density(const float *z, size_t dim, double logdet)
{
    double sum = 0.0;
    for (size_t j = 0; j < dim; j++)
        sum += (double)z[j] * z[j];
    return -0.5 * sum - 0.5 * (double)dim * log(2.0 * 3.14159265358979323846) + logdet;
}

static void dequantise(float *x, size_t count, at_rng *rng)
{
    for (size_t j = 0; j < count; j++)
        x[j] = (float)((x[j] * 255.0 + at_rng_uniform(rng)) / 256.0);
}

typedef struct buffers {
    int32_t *order, *y;
    float *x, *z, *dz, *dlogdet;
    double *logdet;
} buffers;

static void buffers_free(buffers *b)
{
    at_free(b->order);
    at_free(b->y);
    at_free(b->x);
    at_free(b->z);
    at_free(b->dz);
    at_free(b->dlogdet);
    at_free(b->logdet);
}

static int buffers_make(buffers *b, const at_flow *f, const at_dataset *ds, int batch,
                        at_error *err)
{
    memset(b, 0, sizeof *b);
    if (ds->c != f->o.channels || ds->h != f->o.height || ds->w != f->o.width)
        return at_fail(err, AT_ERR_SHAPE, "the flow takes %dx%dx%d images but %s has %dx%dx%d",
                       f->o.channels, f->o.height, f->o.width, ds->name, ds->c, ds->h, ds->w);
    if (ds->n < 1 || batch < 1 || batch > f->max_batch)
        return at_fail(err, AT_ERR_ARG, "flow: need images and a batch size of 1..%d",
                       f->max_batch);
    const size_t count = (size_t)batch * f->dim;
    b->order = at_alloc((size_t)ds->n * sizeof(int32_t));
    b->y = at_alloc((size_t)batch * sizeof(int32_t));
    b->x = at_alloc(count * sizeof(float));
    b->z = at_alloc(count * sizeof(float));
    b->dz = at_alloc(count * sizeof(float));
    b->dlogdet = at_alloc((size_t)batch * sizeof(float));
    b->logdet = at_alloc((size_t)batch * sizeof(double));
    if (!b->order || !b->y || !b->x || !b->z || !b->dz || !b->dlogdet || !b->logdet) {
        buffers_free(b);
        return at_fail(err, AT_ERR_NOMEM, "out of memory");
    }
    for (int i = 0; i < ds->n; i++)
        b->order[i] = i;
    return AT_OK;
}

int at_flow_train_epoch(at_flow *f, at_optimizer *const *opts, const at_dataset *ds,
                        int batch_size, float lr, at_rng *rng, double *bpd, at_error *err)
{
    buffers b;
    int status = buffers_make(&b, f, ds, batch_size, err);
    if (status)
        return status;
    at_rng_shuffle(rng, b.order, (size_t)ds->n);
    const double scale = 1.0 / ((double)f->dim * log(2.0));
    double sum = 0.0;
    for (int first = 0; first < ds->n; first += batch_size) {
        const int n = ds->n - first < batch_size ? ds->n - first : batch_size;
        at_dataset_batch(ds, b.order + first, n, b.x, b.y, NULL, NULL);
        dequantise(b.x, (size_t)n * f->dim, rng);
        if ((status = at_flow_forward(f, b.x, n, b.z, b.logdet)))
            break;
        for (int i = 0; i < n; i++) {
            const double lp = log_density(b.z + (size_t)i * f->dim, f->dim, b.logdet[i]);
            sum += at_flow_bits_per_dim(lp, f->dim);
            b.dlogdet[i] = (float)(-scale / n);
        }
        for (size_t j = 0; j < (size_t)n * f->dim; j++)
            b.dz[j] = (float)(b.z[j] * scale / n);
        at_flow_zero_grad(f);
        if ((status = at_flow_backward(f, b.dz, b.dlogdet)))
            break;
        for (int m = 0; m < at_flow_model_count(f); m++)
            at_optimizer_step(opts[m], lr);
    }
    buffers_free(&b);
    if (status == AT_ERR_NUMERIC || (!status && !isfinite(sum)))
        return at_fail(err, AT_ERR_NUMERIC, "flow training diverged (a non-finite likelihood or "
                       "a singular 1x1 convolution); try a lower --lr");
    if (status)
        return at_fail(err, status, "flow training failed");
    *bpd = sum / ds->n;
    return AT_OK;
}

int at_flow_test_bpd(at_flow *f, const at_dataset *ds, uint64_t seed, double *bpd, at_error *err)
{
    const int batch = f->max_batch < 256 ? f->max_batch : 256;
    buffers b;
    int status = buffers_make(&b, f, ds, batch, err);
    if (status)
        return status;
    at_rng rng;
    at_rng_stream(&rng, seed, 0, 0x627064ull /* "bpd" */);
    double sum = 0.0;
    for (int first = 0; first < ds->n; first += batch) {
        const int n = ds->n - first < batch ? ds->n - first : batch;
        at_dataset_batch(ds, b.order + first, n, b.x, b.y, NULL, NULL);
        dequantise(b.x, (size_t)n * f->dim, &rng);
        if ((status = at_flow_forward(f, b.x, n, b.z, b.logdet)))
            break;
        for (int i = 0; i < n; i++)
            sum += at_flow_bits_per_dim(log_density(b.z + (size_t)i * f->dim, f->dim, b.logdet[i]),
                                        f->dim);
    }
    buffers_free(&b);
    if (status)
        return at_fail(err, status, "flow evaluation failed");
    *bpd = sum / ds->n;
    return isfinite(*bpd) ? AT_OK : at_fail(err, AT_ERR_NUMERIC, "flow: non-finite likelihood");
}

int at_flow_sample(at_flow *f, int n, float temperature, at_rng *rng, float *x, at_error *err)
{
    if (n < 1 || n > f->max_batch || !(temperature >= 0.0f))
        return at_fail(err, AT_ERR_ARG, "flow: %d samples at temperature %g", n, temperature);
    float *z = at_alloc((size_t)n * f->dim * sizeof(float));
    if (!z)
        return at_fail(err, AT_ERR_NOMEM, "out of memory");
    at_rng_normals(rng, z, (size_t)n * f->dim);
    for (size_t j = 0; j < (size_t)n * f->dim; j++)
        z[j] *= temperature;
    int status = at_flow_inverse(f, z, n, x);
    at_free(z);
    if (status)
        return at_fail(err, status, "flow: sampling failed");
    for (size_t j = 0; j < (size_t)n * f->dim; j++)
        x[j] = x[j] < 0.0f ? 0.0f : x[j] > 1.0f ? 1.0f : x[j];
    return AT_OK;
}
