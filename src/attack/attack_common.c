/* attack_common.c: what every attack shares: evaluating the loss and input gradient (with EOT),
 * projecting onto the threat model, ascent directions and random starts. */
#include "attack/attack.h"

#include <math.h>
#include <string.h>

/* Measures every evaluated point against the clean one: the report shows the threat model held
 * along the whole search, not only for the returned point. */
static void measure_evaluated(at_attack *a, const float *x, const float *x_eval, int n)
{
    at_attack_stats *s = &a->stats;
    for (int i = 0; i < n; i++) {
        const float *xi = x + (size_t)i * a->image, *ei = x_eval + (size_t)i * a->image;
        double linf = 0.0, l2 = 0.0, l1 = 0.0;
        for (size_t j = 0; j < a->image; j++) {
            double d = fabs((double)ei[j] - xi[j]);
            linf = d > linf ? d : linf;
            l2 += d * d;
            l1 += d;
            s->eval_out_of_range += !(ei[j] >= 0.0f && ei[j] <= 1.0f);
        }
        l2 = sqrt(l2);
        s->eval_max_linf = linf > s->eval_max_linf ? linf : s->eval_max_linf;
        s->eval_max_l2 = l2 > s->eval_max_l2 ? l2 : s->eval_max_l2;
        s->eval_max_l1 = l1 > s->eval_max_l1 ? l1 : s->eval_max_l1;
    }
}

int at_attack_evaluate(at_attack *a, const float *x, const float *x_eval, const int32_t *y,
                       const int32_t *target, int n, at_attack_loss loss, bool targeted,
                       bool want_grad)
{
    const int k = a->classes;
    const size_t count = (size_t)n * a->image;
    measure_evaluated(a, x, x_eval, n);
    const int samples = want_grad && a->o.eot > 1 ? a->o.eot : 1;
    if (want_grad && samples > 1)
        memset(a->grad, 0, count * sizeof(float));
    for (int s = 0; s < samples; s++) {
        int status = at_forward(a->pass, x_eval, n, a->o.bn_mode);
        if (status)
            return status;
        const float *logits = at_pass_logits(a->pass);
        memcpy(a->logits, logits, (size_t)n * k * sizeof(float));
        if (a->soft_targets && !targeted &&
            (loss == AT_ATTACK_LOSS_CE || (loss == AT_ATTACK_LOSS_DEFAULT &&
                                           a->ops->default_loss == AT_ATTACK_LOSS_CE)))
            at_attack_loss_soft_ce(logits, n, k, a->soft_targets, a->loss,
                                   want_grad ? a->dlogits : NULL);
        else
            at_attack_loss_eval(loss, targeted, logits, n, k, y, target, a->loss,
                                want_grad ? a->dlogits : NULL);
        if (!want_grad) {
            a->stats.forward_evals += n;
            break;
        }
        status = at_backward(a->pass, a->dlogits, AT_GRAD_INPUT);
        if (status)
            return status;
        const float *g = at_pass_input_grad(a->pass);
        if (samples == 1)
            memcpy(a->grad, g, count * sizeof(float));
        else
            for (size_t j = 0; j < count; j++)
                a->grad[j] += g[j] / (float)samples;
        a->stats.gradient_evals += n;
    }
    at_count_correct(a->logits, n, k, y, a->correct);
    if (want_grad)
        at_attack_count_gradients(a, n);
    return AT_OK;
}

void at_attack_count_gradients(at_attack *a, int n)
{
    for (int i = 0; i < n; i++) {
        const float *g = a->grad + (size_t)i * a->image;
        bool zero = true, finite = true;
        for (size_t j = 0; j < a->image; j++) {
            zero &= g[j] == 0.0f;
            finite &= isfinite(g[j]);
        }
        a->stats.zero_gradients += zero;
        a->stats.nonfinite_gradients += !finite;
    }
}

int32_t at_attack_ranked_class(const float *z, int k, int rank)
{
    int32_t order[4096];
    for (int j = 0; j < k; j++)
        order[j] = j;
    for (int r = 0; r < rank; r++) /* partial selection sort: ranks are small */
        for (int j = r + 1; j < k; j++)
            if (z[order[j]] > z[order[r]]) {
                int32_t t = order[r];
                order[r] = order[j];
                order[j] = t;
            }
    return order[rank - 1];
}

bool at_attack_succeeded(const at_attack *a, int i, const int32_t *y, const int32_t *target)
{
    const int32_t top = at_attack_ranked_class(a->logits + (size_t)i * a->classes, a->classes, 1);
    return a->o.targeted ? top == target[i] : top != y[i];
}

void at_attack_record_loss(at_attack *a, int step, int n)
{
    if (step < 0 || step > AT_STATS_MAX_STEPS)
        return;
    double sum = 0.0;
    for (int i = 0; i < n; i++)
        sum += a->loss[i];
    a->stats.loss_sum[step] += sum;
    a->stats.loss_count[step] += n;
    if (step > a->stats.steps)
        a->stats.steps = step;
}

double at_norm_of(at_norm norm, const float *v, size_t image)
{
    double r = 0.0;
    for (size_t j = 0; j < image; j++) {
        double a = fabs((double)v[j]);
        if (norm == AT_NORM_LINF)
            r = a > r ? a : r;
        else if (norm == AT_NORM_L2)
            r += a * a;
        else
            r += a;
    }
    return norm == AT_NORM_L2 ? sqrt(r) : r;
}

/* Euclidean projection of v onto the L1 ball of radius eps (Duchi et al., ICML 2008), in place;
 * `sorted` is scratch of `image` floats. */
static void project_l1(float *v, size_t image, float eps, float *sorted)
{
    double l1 = at_norm_of(AT_NORM_L1, v, image);
    if (l1 <= eps)
        return;
    for (size_t j = 0; j < image; j++)
        sorted[j] = fabsf(v[j]);
    /* sort descending (image is at most a few thousand floats per example) */
    for (size_t gap = image / 2; gap > 0; gap /= 2)
        for (size_t i = gap; i < image; i++)
            for (size_t j = i; j >= gap && sorted[j - gap] < sorted[j]; j -= gap) {
                float t = sorted[j];
                sorted[j] = sorted[j - gap];
                sorted[j - gap] = t;
            }
    double cumsum = 0.0, theta = 0.0;
    for (size_t j = 0; j < image; j++) {
        cumsum += sorted[j];
        double t = (cumsum - eps) / (double)(j + 1);
        if (sorted[j] > t)
            theta = t;
        else
            break;
    }
    for (size_t j = 0; j < image; j++) {
        double a = fabs((double)v[j]) - theta;
        v[j] = a > 0 ? (float)copysign(a, v[j]) : 0.0f;
    }
}

void at_attack_project(at_norm norm, float eps_all, const float *eps_each, const float *x,
                       float *x_adv, int n, size_t image, float *scratch)
{
    for (int i = 0; i < n; i++) {
        const float eps = eps_each ? eps_each[i] : eps_all;
        const float *xi = x + (size_t)i * image;
        float *ai = x_adv + (size_t)i * image;
        if (norm == AT_NORM_LINF) {
            for (size_t j = 0; j < image; j++) {
                float lo = xi[j] - eps, hi = xi[j] + eps;
                float v = ai[j] < lo ? lo : (ai[j] > hi ? hi : ai[j]);
                ai[j] = v < 0.0f ? 0.0f : (v > 1.0f ? 1.0f : v);
            }
            continue;
        }
        /* delta = x_adv - x, scaled (L2) or shrunk (L1) into the ball, then the box; clamping
         * only shrinks coordinates, so the norm stays within eps. */
        for (size_t j = 0; j < image; j++)
            ai[j] -= xi[j];
        if (norm == AT_NORM_L2) {
            double l2 = at_norm_of(AT_NORM_L2, ai, image);
            if (l2 > eps) {
                float scale = (float)(eps / l2);
                for (size_t j = 0; j < image; j++)
                    ai[j] *= scale;
            }
        } else {
            project_l1(ai, image, eps, scratch);
        }
        for (size_t j = 0; j < image; j++) {
            float v = xi[j] + ai[j];
            ai[j] = v < 0.0f ? 0.0f : (v > 1.0f ? 1.0f : v);
        }
        /* float rounding of x + delta can add an ulp to the norm: pull back if needed */
        for (int pass = 0; pass < 4; pass++) {
            double norm_now = 0.0;
            for (size_t j = 0; j < image; j++) {
                double d = (double)ai[j] - xi[j];
                norm_now += norm == AT_NORM_L2 ? d * d : fabs(d);
            }
            if (norm == AT_NORM_L2)
                norm_now = sqrt(norm_now);
            if (norm_now <= eps)
                break;
            float scale = (float)(eps / norm_now * (1.0 - 1e-6));
            for (size_t j = 0; j < image; j++)
                ai[j] = xi[j] + (ai[j] - xi[j]) * scale;
        }
    }
}

void at_attack_direction(at_norm norm, const float *grad, float *dir, int n, size_t image)
{
    for (int i = 0; i < n; i++) {
        const float *g = grad + (size_t)i * image;
        float *d = dir + (size_t)i * image;
        if (norm == AT_NORM_LINF) {
            for (size_t j = 0; j < image; j++)
                d[j] = (float)((g[j] > 0.0f) - (g[j] < 0.0f));
        } else if (norm == AT_NORM_L2) {
            double l2 = at_norm_of(AT_NORM_L2, g, image);
            float inv = l2 > 0.0 ? (float)(1.0 / l2) : 0.0f;
            for (size_t j = 0; j < image; j++)
                d[j] = g[j] * inv;
        } else {
            /* sparse L1 steepest ascent (Tramer and Boneh, 2019): the sign of the coordinates in
             * the top 1% of |g|, scaled so the step has L1 norm 1 */
            double max = at_norm_of(AT_NORM_LINF, g, image), lo = 0.0, hi = max;
            size_t want = image / 100 > 0 ? image / 100 : 1, count = 0;
            for (int it = 0; it < 40 && max > 0.0; it++) { /* bisect the threshold */
                double mid = 0.5 * (lo + hi);
                count = 0;
                for (size_t j = 0; j < image; j++)
                    count += fabs((double)g[j]) >= mid;
                if (count >= want)
                    lo = mid;
                else
                    hi = mid;
            }
            count = 0;
            for (size_t j = 0; j < image; j++)
                count += max > 0.0 && fabs((double)g[j]) >= lo;
            float w = count ? 1.0f / (float)count : 0.0f;
            for (size_t j = 0; j < image; j++)
                d[j] = (max > 0.0 && fabs((double)g[j]) >= lo)
                           ? w * (float)((g[j] > 0.0f) - (g[j] < 0.0f))
                           : 0.0f;
        }
    }
}

void at_attack_random_start(at_norm norm, float eps_all, const float *eps_each, const float *x,
                            float *x_adv, int n, size_t image, at_rng *rngs, float *scratch)
{
    for (int i = 0; i < n; i++) {
        const float eps = eps_each ? eps_each[i] : eps_all;
        at_rng *rng = &rngs[i];
        const float *xi = x + (size_t)i * image;
        float *ai = x_adv + (size_t)i * image;
        if (norm == AT_NORM_LINF) {
            for (size_t j = 0; j < image; j++)
                ai[j] = xi[j] + (float)((2.0 * at_rng_uniform(rng) - 1.0) * eps);
        } else {
            /* a random direction (Gaussian for L2, Laplace for L1) scaled to a uniform radius */
            for (size_t j = 0; j < image; j++) {
                double u = at_rng_uniform(rng);
                ai[j] = norm == AT_NORM_L2 ? (float)at_rng_normal(rng)
                                           : (float)((u < 0.5 ? 1 : -1) * log(1.0 - at_rng_uniform(rng)));
            }
            double len = at_norm_of(norm, ai, image);
            double radius = eps * at_rng_uniform(rng);
            float scale = len > 0 ? (float)(radius / len) : 0.0f;
            for (size_t j = 0; j < image; j++)
                ai[j] = xi[j] + ai[j] * scale;
        }
    }
    at_attack_project(norm, eps_all, eps_each, x, x_adv, n, image, scratch);
}
