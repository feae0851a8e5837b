/* em.c: expectation-maximisation for a mixture of Gaussians with diagonal covariances (Dempster,
 * Laird and Rubin, 1977), started from k-means++ centres (Arthur and Vassilvitskii, 2007).
 *
 * Each variance is kept above a floor, a small fraction of the points' own variance along that
 * dimension: without it a component that collapses onto a few points has a likelihood that grows
 * without bound. The floored update is still the exact maximiser of the EM objective under that
 * constraint, so the log-likelihood never decreases from one step to the next; the tests check
 * it. Sums run over the points in order, so a fit is reproducible from its seed alone.
 */
#include "data/em.h"

#include "core/util.h"

#include <math.h>

#define LOG_2PI 1.8378770664093453
/* the floor: this fraction of the points' variance along a dimension, and never below the
 * absolute value (dimensions along which every point agrees) */
static const double var_floor_relative = 1e-3, var_floor_absolute = 1e-10;
/* a component with less responsibility than this keeps its mean and variance */
static const double min_mass = 1e-10;

static double distance2(const float *a, const double *b, int k)
{
    double s = 0.0;
    for (int j = 0; j < k; j++) {
        const double t = (double)a[j] - b[j];
        s += t * t;
    }
    return s;
}

/* k-means++: the first centre uniformly among the points, each next one with probability
 * proportional to the squared distance to the nearest centre so far. d2 has n entries. */
static void seed_centres(at_mixture *mix, const float *z, int n, at_rng *rng, double *d2)
{
    const int k = mix->k;
    for (int c = 0; c < mix->m; c++) {
        int pick;
        double total = 0.0;
        for (int i = 0; c > 0 && i < n; i++)
            total += d2[i];
        if (c == 0 || !(total > 0.0)) {
            pick = (int)at_rng_below(rng, (uint32_t)n);
        } else {
            const double u = at_rng_uniform(rng) * total;
            double cumulative = 0.0;
            pick = n - 1;
            for (int i = 0; i < n; i++) {
                cumulative += d2[i];
                if (cumulative > u && d2[i] > 0.0) {
                    pick = i;
                    break;
                }
            }
        }
        double *centre = mix->mean + (size_t)c * k;
        for (int j = 0; j < k; j++)
            centre[j] = z[(size_t)pick * k + j];
        for (int i = 0; i < n; i++) {
            const double t = distance2(z + (size_t)i * k, centre, k);
            d2[i] = c == 0 || t < d2[i] ? t : d2[i];
        }
    }
}

/* Responsibilities r[n, m] of the current mixture; returns the total log-likelihood. `work`
 * holds m + m k doubles. */
static double e_step(const at_mixture *mix, const float *z, int n, double *r, double *work)
{
    const int m = mix->m, k = mix->k;
    double *constant = work, *precision = work + m;
    for (int c = 0; c < m; c++) {
        double log_det = 0.0;
        for (int j = 0; j < k; j++) {
            log_det += log(mix->var[(size_t)c * k + j]);
            precision[(size_t)c * k + j] = 1.0 / mix->var[(size_t)c * k + j];
        }
        constant[c] = mix->weight[c] > 0.0 ? log(mix->weight[c]) - 0.5 * (k * LOG_2PI + log_det)
                                           : -INFINITY;
    }
    double total = 0.0;
    for (int i = 0; i < n; i++) {
        const float *x = z + (size_t)i * k;
        double *ri = r + (size_t)i * m, best = -INFINITY;
        for (int c = 0; c < m; c++) {
            const double *mu = mix->mean + (size_t)c * k, *p = precision + (size_t)c * k;
            double q = 0.0;
            for (int j = 0; j < k; j++) {
                const double t = (double)x[j] - mu[j];
                q += t * t * p[j];
            }
            ri[c] = constant[c] - 0.5 * q;
            best = ri[c] > best ? ri[c] : best;
        }
        double s = 0.0;
        for (int c = 0; c < m; c++)
            s += exp(ri[c] - best);
        const double log_sum = best + log(s);
        for (int c = 0; c < m; c++)
            ri[c] = exp(ri[c] - log_sum);
        total += log_sum;
    }
    return total;
}

/* Weights, means and floored variances that maximise the expected log-likelihood under r. */
static void m_step(at_mixture *mix, const float *z, int n, const double *r, const double *var_floor)
{
    const int m = mix->m, k = mix->k;
    for (int c = 0; c < m; c++) {
        double mass = 0.0;
        for (int i = 0; i < n; i++)
            mass += r[(size_t)i * m + c];
        mix->weight[c] = mass / n;
        if (mass < min_mass)
            continue;
        double *mu = mix->mean + (size_t)c * k, *var = mix->var + (size_t)c * k;
        for (int j = 0; j < k; j++)
            mu[j] = var[j] = 0.0;
        for (int i = 0; i < n; i++)
            for (int j = 0; j < k; j++)
                mu[j] += r[(size_t)i * m + c] * z[(size_t)i * k + j];
        for (int j = 0; j < k; j++)
            mu[j] /= mass;
        for (int i = 0; i < n; i++)
            for (int j = 0; j < k; j++) {
                const double t = z[(size_t)i * k + j] - mu[j];
                var[j] += r[(size_t)i * m + c] * t * t;
            }
        for (int j = 0; j < k; j++)
            var[j] = var[j] / mass > var_floor[j] ? var[j] / mass : var_floor[j];
    }
}

int at_em_fit(at_mixture *mix, const float *z, int n, int iterations, at_rng *rng,
              double *loglik, at_error *err)
{
    const int m = mix->m, k = mix->k;
    if (n < m || m < 1 || k < 1 || iterations < 0)
        return at_fail(err, AT_ERR_ARG, "EM: %d components for %d points of %d dimensions", m, n,
                       k);
    double *r = at_alloc((size_t)n * m * sizeof(double));
    double *work = at_alloc(((size_t)m + (size_t)m * k + (size_t)n + 3 * (size_t)k) * sizeof(double));
    if (!r || !work) {
        at_free(r);
        at_free(work);
        return at_fail(err, AT_ERR_NOMEM, "EM: out of memory for %d points", n);
    }
    /* the points' own variance along each dimension: every component's starting spread, and a
     * fraction of it the floor */
    double *d2 = work + m + (size_t)m * k, *mean = d2 + n, *spread = mean + k, *var_floor = spread + k;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < k; j++)
            mean[j] += z[(size_t)i * k + j];
    for (int j = 0; j < k; j++)
        mean[j] /= n;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < k; j++) {
            const double t = z[(size_t)i * k + j] - mean[j];
            spread[j] += t * t / n;
        }
    for (int j = 0; j < k; j++) {
        const double f = var_floor_relative * spread[j];
        var_floor[j] = f > var_floor_absolute ? f : var_floor_absolute;
        spread[j] = spread[j] > var_floor_absolute ? spread[j] : var_floor_absolute;
    }
    for (int c = 0; c < m; c++) {
        mix->weight[c] = 1.0 / m;
        for (int j = 0; j < k; j++)
            mix->var[(size_t)c * k + j] = spread[j];
    }
    seed_centres(mix, z, n, rng, d2);
    loglik[0] = e_step(mix, z, n, r, work);
    for (int t = 1; t <= iterations; t++) {
        m_step(mix, z, n, r, var_floor);
        loglik[t] = e_step(mix, z, n, r, work);
    }
    at_free(r);
    at_free(work);
    return AT_OK;
}
