/* gmm.c: a generator of synthetic training images: per class, a mixture of Gaussians in a PCA
 * space of the training images.
 *
 * Gowal et al. ("Improving Robustness using Generated Data", NeurIPS 2021) add images from a
 * generative model to adversarial training, and report that even samples of a class-conditional
 * Gaussian fitted to the training set help a little; a DDPM, their best generator, is out of reach
 * here. This is the Gaussian baseline made somewhat sharper: the images are projected onto their
 * top principal directions, where each class gets a mixture of a few diagonal Gaussians (em.c).
 * A sample picks a class uniformly among the classes the data has, a component by its weight,
 * z ~ N(mu, diag sigma^2), and decodes x = mean + U z, clamped to [0,1] and rounded to 8 bits.
 * Its label is the class it was drawn for; the paper relabels generated images with a classifier
 * (pseudo-labels), which `advtrain generate --labeller` does.
 *
 * Each class is fitted from its own seed, drawn from the caller's rng in class order, so the
 * classes can be fitted in parallel and the result does not depend on the number of threads.
 */
#include "core/util.h"
#include "data/em.h"
#include "data/pca.h"
#include "kernels/kernels.h"

#include <math.h>
#include <string.h>

enum { GMM_DIMS = 64, GMM_COMPONENTS = 5, GMM_ITERATIONS = 50, SAMPLE_BLOCK = 256 };

struct at_gmm {
    at_gmm_options options;  /* defaults filled in */
    int c, h, w, classes;
    at_pca pca;
    int n_present;           /* classes with at least one example */
    int32_t *present;        /* [n_present] */
    int *used;               /* [classes]: components fitted (fewer when a class is small) */
    double *weight;          /* [classes, components] */
    double *mean, *sd;       /* [classes, components, dims] */
    double *loglik;          /* [iterations + 1]: mean per example over every class */
};

void at_gmm_free(at_gmm *g)
{
    if (!g)
        return;
    at_pca_free(&g->pca);
    at_free(g->present);
    at_free(g->used);
    at_free(g->weight);
    at_free(g->mean);
    at_free(g->sd);
    at_free(g->loglik);
    at_free(g);
}

const at_gmm_options *at_gmm_get_options(const at_gmm *g) { return &g->options; }

static int check_options(const at_dataset *ds, const at_gmm_options *in, at_gmm_options *o,
                         at_error *err)
{
    const int d = ds->c * ds->h * ds->w;
    *o = in ? *in : (at_gmm_options){0};
    if (!o->dims)
        o->dims = d < GMM_DIMS ? d : GMM_DIMS;
    if (!o->components)
        o->components = GMM_COMPONENTS;
    if (!o->iterations)
        o->iterations = GMM_ITERATIONS;
    if (o->dims < 1 || o->dims > d)
        return at_fail(err, AT_ERR_ARG, "%s: %d PCA dimensions; its images have %d pixels",
                       ds->name, o->dims, d);
    if (o->components < 1 || o->components > 1000)
        return at_fail(err, AT_ERR_ARG, "%d mixture components (1 to 1000)", o->components);
    if (o->iterations < 1 || o->iterations > 100000)
        return at_fail(err, AT_ERR_ARG, "%d EM iterations (1 to 100000)", o->iterations);
    if (ds->n < 1 || ds->num_classes < 1)
        return at_fail(err, AT_ERR_ARG, "%s: no examples to fit a generator to", ds->name);
    return AT_OK;
}

/* The PCA coordinates of every example, grouped by class: z[n, dims] in class order, class k's
 * examples from first[k] to first[k + 1]. */
static int group_by_class(const at_gmm *g, const at_dataset *ds, float *z, int *first,
                          at_error *err)
{
    const int k = g->options.dims;
    float *all = at_alloc((size_t)ds->n * k * sizeof(float));
    if (!all)
        return at_fail(err, AT_ERR_NOMEM, "%s: out of memory for the PCA coordinates", ds->name);
    int status = at_pca_project(&g->pca, ds, all, err);
    for (int i = 0; i <= g->classes; i++)
        first[i] = 0;
    for (int i = 0; i < ds->n; i++)
        first[ds->labels[i] + 1]++;
    for (int i = 0; i < g->classes; i++)
        first[i + 1] += first[i];
    int *next = at_alloc((size_t)g->classes * sizeof(int));
    if (!next && !status)
        status = at_fail(err, AT_ERR_NOMEM, "%s: out of memory", ds->name);
    if (!status)
        memcpy(next, first, (size_t)g->classes * sizeof(int));
    for (int i = 0; !status && i < ds->n; i++)
        memcpy(z + (size_t)next[ds->labels[i]]++ * k, all + (size_t)i * k, (size_t)k * sizeof(float));
    at_free(all);
    at_free(next);
    return status;
}

static int fit_classes(at_gmm *g, const float *z, const int *first, at_rng *rng, at_error *err)
{
    const int classes = g->classes, m = g->options.components, k = g->options.dims;
    const int steps = g->options.iterations + 1;
    uint64_t *seeds = at_alloc((size_t)classes * sizeof(uint64_t));
    double *loglik = at_alloc((size_t)classes * steps * sizeof(double));
    int *status = at_alloc((size_t)classes * sizeof(int));
    at_error *errors = at_alloc((size_t)classes * sizeof(at_error));
    int result = AT_OK;
    if (!seeds || !loglik || !status || !errors) {
        result = at_fail(err, AT_ERR_NOMEM, "out of memory fitting the mixtures");
        goto done;
    }
    for (int c = 0; c < classes; c++)
        seeds[c] = at_rng_next(rng);
#pragma omp parallel for schedule(dynamic, 1)
    for (int c = 0; c < classes; c++) {
        const int n = first[c + 1] - first[c];
        g->used[c] = n < m ? n : m;
        if (n == 0)
            continue;
        at_rng r;
        at_rng_seed(&r, seeds[c]);
        at_mixture mix = {g->used[c], k, g->weight + (size_t)c * m, g->mean + (size_t)c * m * k,
                          g->sd + (size_t)c * m * k};
        status[c] = at_em_fit(&mix, z + (size_t)first[c] * k, n, g->options.iterations, &r,
                              loglik + (size_t)c * steps, &errors[c]);
        for (size_t j = 0; j < (size_t)mix.m * k; j++)
            mix.var[j] = sqrt(mix.var[j]); /* the fit's variances become standard deviations */
    }
    for (int c = 0; c < classes && !result; c++)
        if (status[c])
            result = at_fail(err, status[c], "class %d: %s", c, errors[c].message);
    for (int t = 0; t < steps && !result; t++) {
        double total = 0.0;
        for (int c = 0; c < classes; c++)
            total += loglik[(size_t)c * steps + t];
        g->loglik[t] = total / first[classes];
    }
done:
    at_free(seeds);
    at_free(loglik);
    at_free(status);
    at_free(errors);
    return result;
}

int at_gmm_fit(at_gmm **out, const at_dataset *ds, const at_gmm_options *options, at_rng *rng,
               at_error *err)
{
    *out = NULL;
    at_gmm_options o;
    int status = check_options(ds, options, &o, err);
    if (status)
        return status;
    for (int i = 0; i < ds->n; i++)
        if (ds->labels[i] < 0 || ds->labels[i] >= ds->num_classes)
            return at_fail(err, AT_ERR_ARG, "%s: label %d of example %d is out of range [0, %d)",
                           ds->name, ds->labels[i], i, ds->num_classes);
    at_gmm *g = at_alloc(sizeof *g);
    const size_t per_class = (size_t)o.components * o.dims;
    const int classes = ds->num_classes;
    float *z = at_alloc((size_t)ds->n * o.dims * sizeof(float));
    int *first = at_alloc(((size_t)classes + 1) * sizeof(int));
    if (g) {
        g->options = o;
        g->c = ds->c;
        g->h = ds->h;
        g->w = ds->w;
        g->classes = classes;
        g->present = at_alloc((size_t)classes * sizeof(int32_t));
        g->used = at_alloc((size_t)classes * sizeof(int));
        g->weight = at_alloc((size_t)classes * o.components * sizeof(double));
        g->mean = at_alloc((size_t)classes * per_class * sizeof(double));
        g->sd = at_alloc((size_t)classes * per_class * sizeof(double));
        g->loglik = at_alloc(((size_t)o.iterations + 1) * sizeof(double));
    }
    if (!g || !z || !first || !g->present || !g->used || !g->weight || !g->mean || !g->sd ||
        !g->loglik)
        status = at_fail(err, AT_ERR_NOMEM, "%s: out of memory for the generator", ds->name);
    if (!status)
        status = at_pca_fit(&g->pca, ds, o.dims, err);
    if (!status)
        status = group_by_class(g, ds, z, first, err);
    if (!status)
        status = fit_classes(g, z, first, rng, err);
    for (int c = 0; !status && c < classes; c++)
        if (first[c + 1] > first[c])
            g->present[g->n_present++] = c;
    at_free(z);
    at_free(first);
    if (status) {
        at_gmm_free(g);
        return status;
    }
    *out = g;
    return AT_OK;
}

int at_gmm_log_likelihood(const at_gmm *g, double *values, int cap)
{
    const int steps = g->options.iterations + 1;
    for (int t = 0; t < steps && t < cap; t++)
        values[t] = g->loglik[t];
    return steps;
}

int at_gmm_component(const at_gmm *g, int label, int component, double *weight,
                     float *mean_image, at_error *err)
{
    if (label < 0 || label >= g->classes || component < 0 ||
        component >= g->options.components)
        return at_fail(err, AT_ERR_ARG, "no component %d of class %d (%d classes, %d components)",
                       component, label, g->classes, g->options.components);
    const int m = g->options.components, k = g->options.dims, d = g->pca.d;
    const bool fitted = component < g->used[label];
    if (weight)
        *weight = fitted ? g->weight[(size_t)label * m + component] : 0.0;
    if (mean_image) {
        const double *mu = g->mean + ((size_t)label * m + component) * k;
        for (int j = 0; j < d; j++) {
            double v = g->pca.mean[j];
            for (int t = 0; fitted && t < k; t++)
                v += (double)g->pca.basis[(size_t)j * k + t] * mu[t];
            mean_image[j] = (float)v;
        }
    }
    return AT_OK;
}

/* One sample's class, component and coordinates z[k]. */
static int32_t draw(const at_gmm *g, at_rng *rng, float *z)
{
    const int m = g->options.components, k = g->options.dims;
    const int32_t label = g->present[at_rng_below(rng, (uint32_t)g->n_present)];
    const double *w = g->weight + (size_t)label * m;
    const int used = g->used[label];
    double u = at_rng_uniform(rng), cumulative = 0.0;
    int c = used - 1;
    for (int i = 0; i < used; i++) {
        cumulative += w[i];
        if (u < cumulative && w[i] > 0.0) {
            c = i;
            break;
        }
    }
    while (c > 0 && !(w[c] > 0.0)) /* rounding left u past the last weighted component */
        c--;
    const double *mu = g->mean + ((size_t)label * m + c) * k, *sd = g->sd + ((size_t)label * m + c) * k;
    for (int t = 0; t < k; t++)
        z[t] = (float)(mu[t] + sd[t] * at_rng_normal(rng));
    return label;
}

int at_gmm_sample(const at_gmm *g, int n, at_rng *rng, uint8_t *images, int32_t *labels,
                  at_error *err)
{
    if (n < 0 || (n > 0 && (!images || !labels)))
        return at_fail(err, AT_ERR_ARG, "at_gmm_sample: %d samples", n);
    const int k = g->options.dims, d = g->pca.d, blocks = (n + SAMPLE_BLOCK - 1) / SAMPLE_BLOCK;
    float *z = at_alloc((size_t)n * k * sizeof(float) + 1);
    float *x = at_alloc((size_t)at_max_threads() * SAMPLE_BLOCK * d * sizeof(float));
    if (!z || !x) {
        at_free(z);
        at_free(x);
        return at_fail(err, AT_ERR_NOMEM, "out of memory for %d samples", n);
    }
    /* every draw first, in order, so the samples depend on the seed alone */
    for (int i = 0; i < n; i++)
        labels[i] = draw(g, rng, z + (size_t)i * k);
#pragma omp parallel for schedule(dynamic, 1)
    for (int b = 0; b < blocks; b++) {
        const int first = b * SAMPLE_BLOCK, rows = n - first < SAMPLE_BLOCK ? n - first : SAMPLE_BLOCK;
        float *mine = x + (size_t)at_thread_id() * SAMPLE_BLOCK * d;
        at_gemm(false, true, rows, d, k, 1.0f, z + (size_t)first * k, k, g->pca.basis, k, 0.0f,
                mine, d);
        for (int i = 0; i < rows; i++)
            for (int j = 0; j < d; j++) {
                float v = g->pca.mean[j] + mine[(size_t)i * d + j];
                v = v > 0.0f ? (v < 1.0f ? v : 1.0f) : 0.0f; /* also maps NaN to 0 */
                images[(size_t)(first + i) * d + j] = (uint8_t)lrintf(v * 255.0f);
            }
    }
    at_free(z);
    at_free(x);
    return AT_OK;
}
