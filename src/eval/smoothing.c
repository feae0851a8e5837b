/* smoothing.c: Monte Carlo evaluation of a Gaussian-smoothed classifier, Cohen, Rosenfeld and
 * Kolter, "Certified Adversarial Robustness via Randomized Smoothing" (ICML 2019), Algorithm 1
 * (PREDICT and CERTIFY), as SmoothMix (Jeong et al., NeurIPS 2021) and its predecessors certify.
 * Noisy copies x + sigma N(0, I), not clipped, go through one forward-only pass in eval BN mode,
 * a batch at a time; each copy's noise comes from its own random stream, so the counts do not
 * depend on how the draws are batched or threaded. */
#include "core/util.h"

#include <math.h>
#include <string.h>

enum { PURPOSE_SELECT = 0, PURPOSE_ESTIMATE = 1, PURPOSE_PREDICT = 2 };

struct at_smoother {
    at_model *model;
    at_pass *pass;
    at_smooth_options o;
    int k;
    size_t image;
    float *batch;   /* [batch_size, image] noisy copies */
    long *counts;   /* [k] */
};

int at_smoother_create(at_smoother **out, at_model *model, const at_smooth_options *options,
                       at_error *err)
{
    *out = NULL;
    at_smooth_options o = *options;
    if (!(o.sigma > 0.0f && isfinite(o.sigma)))
        return at_fail(err, AT_ERR_ARG, "smoothing: sigma must be positive and finite, got %g",
                       (double)o.sigma);
    if (o.n0 < 0 || o.n < 0 || o.batch_size < 0)
        return at_fail(err, AT_ERR_ARG, "smoothing: n0 (%d), n (%ld) and the batch size (%d) must "
                       "not be negative", o.n0, o.n, o.batch_size);
    if (o.alpha != 0.0 && !(o.alpha > 0.0 && o.alpha < 1.0))
        return at_fail(err, AT_ERR_ARG, "smoothing: alpha must be in (0, 1), got %g", o.alpha);
    if (o.n0 == 0)
        o.n0 = 100;
    if (o.n == 0)
        o.n = 100000;
    if (o.alpha == 0.0)
        o.alpha = 0.001;
    if (o.batch_size == 0)
        o.batch_size = 500;
    if (o.n > ((long)1 << 40))
        return at_fail(err, AT_ERR_ARG, "smoothing: n = %ld draws is too many", o.n);
    long most = o.n > o.n0 ? o.n : o.n0;
    if (o.batch_size > most)
        o.batch_size = (int)most;

    at_smoother *s = at_alloc(sizeof *s);
    if (!s)
        return at_fail(err, AT_ERR_NOMEM, "out of memory");
    int c, h, w;
    at_model_input_shape(model, &c, &h, &w);
    s->model = model;
    s->o = o;
    s->k = at_model_num_classes(model);
    s->image = (size_t)c * h * w;
    int status = at_pass_create(&s->pass, model, o.batch_size, AT_PASS_FORWARD_ONLY, err);
    if (status) {
        at_free(s);
        return status;
    }
    s->batch = at_alloc((size_t)o.batch_size * s->image * sizeof(float));
    s->counts = at_alloc((size_t)s->k * sizeof(long));
    if (!s->batch || !s->counts) {
        at_smoother_free(s);
        return at_fail(err, AT_ERR_NOMEM, "out of memory for %d noisy copies", o.batch_size);
    }
    *out = s;
    return AT_OK;
}

void at_smoother_free(at_smoother *s)
{
    if (!s)
        return;
    at_pass_free(s->pass);
    at_free(s->batch);
    at_free(s->counts);
    at_free(s);
}

const at_smooth_options *at_smoother_get_options(const at_smoother *s) { return &s->o; }

/* counts[c] = #{j < draws : f(x + sigma d_j) = c}, d_j from stream (seed, point, purpose, j). */
static int sample_counts(at_smoother *s, const float *x, uint64_t point, uint64_t purpose,
                         long draws, at_error *err)
{
    const size_t image = s->image;
    const float sigma = s->o.sigma;
    const int k = s->k;
    memset(s->counts, 0, (size_t)k * sizeof(long));
    for (long first = 0; first < draws; first += s->o.batch_size) {
        const int m = (int)(draws - first < s->o.batch_size ? draws - first : s->o.batch_size);
        float *batch = s->batch;
        /* A team costs more than it saves on a few small images (and far more on busy cores). */
        const bool team = (size_t)m * image >= 16384;
#pragma omp parallel for schedule(static) if (team) num_threads(at_max_threads())
        for (int i = 0; i < m; i++) {
            at_rng rng;
            at_rng_stream(&rng, s->o.seed, point, purpose << 40 | (uint64_t)(first + i));
            float *row = batch + (size_t)i * image;
            at_rng_normals(&rng, row, image);
            for (size_t j = 0; j < image; j++)
                row[j] = x[j] + sigma * row[j];
        }
        int status = at_forward(s->pass, batch, m, AT_BN_EVAL);
        if (status)
            return at_fail(err, status, "smoothing: forward pass of %d noisy copies failed", m);
        const float *logits = at_pass_logits(s->pass);
        for (int i = 0; i < m; i++) {
            const float *z = logits + (size_t)i * k;
            int best = 0;
            for (int c = 0; c < k; c++) {
                if (!isfinite(z[c]))
                    return at_fail(err, AT_ERR_NUMERIC, "smoothing: non-finite logit at point "
                                   "%llu, draw %ld", (unsigned long long)point, first + i);
                if (z[c] > z[best])
                    best = c; /* ties go to the lowest class, as numpy's argmax */
            }
            s->counts[best]++;
        }
    }
    return AT_OK;
}

static int check_input(const at_smoother *s, const float *x, uint64_t point, at_error *err)
{
    for (size_t j = 0; j < s->image; j++)
        if (!isfinite(x[j]))
            return at_fail(err, AT_ERR_NUMERIC, "smoothing: point %llu has a non-finite pixel",
                           (unsigned long long)point);
    return AT_OK;
}

/* The most frequent class, the lowest on ties; `skip` is left out (-1: none). */
static int most_frequent(const long *counts, int k, int skip)
{
    int best = -1;
    for (int c = 0; c < k; c++)
        if (c != skip && (best < 0 || counts[c] > counts[best]))
            best = c;
    return best;
}

int at_smooth_certify(at_smoother *s, const float *x, uint64_t point, at_smooth_result *r,
                      at_error *err)
{
    memset(r, 0, sizeof *r);
    r->prediction = -1;
    int status = check_input(s, x, point, err);
    if (!status)
        status = sample_counts(s, x, point, PURPOSE_SELECT, s->o.n0, err);
    if (status)
        return status;
    const int ca = most_frequent(s->counts, s->k, -1);
    r->top_class = ca;
    r->n0_count = s->counts[ca];
    if ((status = sample_counts(s, x, point, PURPOSE_ESTIMATE, s->o.n, err)))
        return status;
    r->count = s->counts[ca];
    r->p_lower = at_clopper_pearson_lower(r->count, s->o.n, s->o.alpha);
    /* pA = 1/2 would certify radius 0 only: abstain there too. */
    if (r->p_lower > 0.5) {
        r->prediction = ca;
        r->radius = s->o.sigma * at_normal_quantile(r->p_lower);
    }
    return AT_OK;
}

int at_smooth_predict(at_smoother *s, const float *x, uint64_t point, at_smooth_result *r,
                      at_error *err)
{
    memset(r, 0, sizeof *r);
    r->prediction = -1;
    int status = check_input(s, x, point, err);
    if (!status)
        status = sample_counts(s, x, point, PURPOSE_PREDICT, s->o.n, err);
    if (status)
        return status;
    const int a = most_frequent(s->counts, s->k, -1);
    const int b = s->k > 1 ? most_frequent(s->counts, s->k, a) : -1;
    r->top_class = a;
    r->count = s->counts[a];
    r->runner_up = b >= 0 ? s->counts[b] : 0;
    r->p_value = at_binomial_test_half(r->count, r->count + r->runner_up);
    if (r->p_value <= s->o.alpha)
        r->prediction = a;
    return AT_OK;
}

double at_smooth_max_radius(double sigma, long n, double alpha)
{
    if (!(sigma > 0.0) || n < 1 || !(alpha > 0.0 && alpha < 1.0))
        return NAN;
    return sigma * at_normal_quantile(exp(log(alpha) / (double)n));
}
