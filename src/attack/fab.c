/* fab.c: the targeted Fast Adaptive Boundary attack, FAB-T (Croce and Hein, "Minimally distorted
 * Adversarial Examples with a Fast Adaptive Boundary Attack", ICML 2020), as run by AutoAttack's
 * standard suite and following the authors' code (autoattack/fab_base.py, fab_projections.py).
 * FAB looks for the adversarial point closest to x in the chosen norm (Linf, L2 or L1):
 *   linearise f = z_t - z_y at the iterate x_k: the boundary is f(x_k) + g.(z - x_k) = 0;
 *   d1, d2 = the smallest steps from x_k and from x onto that hyperplane inside [0,1] (exact
 *   box-constrained projections); alpha = min(max(|d1| / (|d1| + |d2|), 0), 0.1);
 *   x_{k+1} = clamp((x_k + 1.05 d1)(1 - alpha) + (x + 1.05 d2) alpha, 0, 1);
 *   when x_{k+1} is misclassified (as any class) it is kept if closer to x than the best so far,
 *   and the iterate steps back towards x: x_{k+1} = x + 0.9 (x_{k+1} - x).
 * The k-th target run attacks the class of the (k+2)-th largest clean logit, on the points still
 * robust; restart 0 starts from x, later restarts from a random point at distance eps/2 (the
 * reference scales by min(best distance, eps) / 2, and a point is restarted only while nothing
 * was found within eps, so that is eps / 2). A point is returned only when its distance is at
 * most eps; otherwise the clean x is. Like AutoAttack, FAB-T ignores o.targeted and the `target`
 * labels of a run: it always attacks the ranked targets. The loss recorded at step k is f at the
 * linearisation point (negative while robust, it rises to about 0 as the iterates reach the
 * boundary). Beyond the reference: with o.eot > 1, f and its gradient are averaged over that many
 * forwards; the projections accumulate in double precision. */
#include "attack/attack.h"

#include <math.h>
#include <string.h>

#define FAB_ALPHA_MAX 0.1f /* most weight the step from x may get */
#define FAB_ETA 1.05f      /* overshoot past the linearised boundary */
#define FAB_BETA 0.9f      /* step back towards x after a success */
#define FAB_TINY_W 1e-8    /* gradient entries at most this small do not move (as the authors) */

/* Sorting scratch of the projections: a key and the coordinate it belongs to. */
typedef struct sort_pair {
    double key;
    int32_t index;
} sort_pair;
_Static_assert(sizeof(sort_pair) % sizeof(float) == 0, "sort_pair must tile float workspace");
#define PAIR_FLOATS (sizeof(sort_pair) / sizeof(float))

typedef struct fab_buffers {
    sort_pair *sorted;        /* [image] per example */
    double *f, *best_dist;    /* z_t - z_y at the iterate; distance of the best adversarial */
    float *x, *cur, *best, *d1, *d2, *clean_logits;
    int32_t *index, *y, *target, *robust;
} fab_buffers;

/* Per example: sorting scratch, five images (x, iterate, best, d1, d2), the clean logits, two
 * doubles and four int32. The 8-byte items come first so they stay aligned. */
static size_t fab_workspace(const at_attack *a, size_t image)
{
    return PAIR_FLOATS * image + 4 + 5 * image + (size_t)a->classes + 4;
}

static fab_buffers carve(at_attack *a)
{
    const size_t nb = (size_t)a->max_batch, images = nb * a->image;
    fab_buffers b;
    b.sorted = (sort_pair *)a->work;
    b.f = (double *)(a->work + PAIR_FLOATS * images);
    b.best_dist = b.f + nb;
    b.x = (float *)(b.best_dist + nb);
    b.cur = b.x + images;
    b.best = b.cur + images;
    b.d1 = b.best + images;
    b.d2 = b.d1 + images;
    b.clean_logits = b.d2 + images;
    b.index = (int32_t *)(b.clean_logits + nb * a->classes);
    b.y = b.index + nb;
    b.target = b.y + nb;
    b.robust = b.target + nb;
    return b;
}

/* Ascending by key, ties by index: a total order, so the result never depends on the sort. */
static bool pair_less(sort_pair p, sort_pair q)
{
    return p.key < q.key || (p.key == q.key && p.index < q.index);
}

static void sift_down(sort_pair *v, size_t root, size_t n)
{
    for (size_t child; (child = 2 * root + 1) < n; root = child) {
        if (child + 1 < n && pair_less(v[child], v[child + 1]))
            child++;
        if (!pair_less(v[root], v[child]))
            return;
        sort_pair t = v[root];
        v[root] = v[child];
        v[child] = t;
    }
}

/* Heap sort: O(n log n), in place, no allocation. */
static void sort_pairs(sort_pair *v, size_t n)
{
    for (size_t i = n / 2; i-- > 0;)
        sift_down(v, i, n);
    for (size_t end = n; end-- > 1;) {
        sort_pair t = v[0];
        v[0] = v[end];
        v[end] = t;
        sift_down(v, 0, end);
    }
}

/* The three projections solve, for a point t in [0,1]^n and the hyperplane w.z = w.t - c:
 *   d = argmin ||d||_p  subject to  w.d = -c  and  0 <= t + d <= 1,
 * or, when no point of the box reaches the hyperplane, return the corner of the box that lowers
 * w.z the most. First w and c are negated when c < 0, so c >= 0 and w.z has to go down by c;
 * coordinate j then moves towards 0 when w_j > 0 and towards 1 when w_j < 0. The authors search
 * the sorted breakpoints by bisection over a batch; one example at a time, a selection (Linf,
 * L2) or a scan over the sorted ratios (L1) finds the same segment. */

/* Linf and L2 both come down to one equation: find lambda >= 0 with
 *   F(lambda) = sum_j a_j min(lambda, b_j) = c,   a_j >= 0,
 * F increasing and piecewise linear with its breakpoints at the b_j. On the segment holding the
 * solution, F(lambda) = S lambda + R, S the sum of a_j over the b_j above the solution and R the
 * sum of a_j b_j over the others. Sorting the b_j finds that segment in O(n log n); a quickselect
 * over the breakpoints finds it in O(n) expected time (the same reduction as the linear-time
 * projections onto the simplex, Duchi et al., ICML 2008): take a pivot breakpoint p, evaluate
 * F(p) from the terms still undecided plus the sums of those decided; F(p) > c puts the
 * solution below p, so every term with b_j >= p is capped (goes to S), otherwise every term with
 * b_j <= p is below the solution (goes to R); the rest is searched again. The terms are
 * reordered in place. Returns (c - R) / S, or the largest breakpoint when every term ended in R
 * (F reaches c exactly at its last breakpoint). */
typedef struct capped_term {
    double key, weight; /* b_j, a_j */
} capped_term;
_Static_assert(sizeof(capped_term) == sizeof(sort_pair), "both share the sorting scratch");

static double solve_capped_sum(capped_term *v, size_t n, double c)
{
    double capped_weight = 0.0, below_sum = 0.0, last_below = 0.0; /* S, R */
    while (n > 0) {
        /* median of three keys as the pivot */
        double a = v[0].key, b = v[n / 2].key, z = v[n - 1].key;
        double p = a < b ? (b < z ? b : (a < z ? z : a)) : (a < z ? a : (b < z ? z : b));
        /* three-way partition: [0, lt) below p, [lt, i) equal, (gt, n) above */
        size_t lt = 0, i = 0, gt = n;
        double sum_ab_below = 0.0, sum_ab_equal = 0.0, sum_a_equal = 0.0, sum_a_above = 0.0;
        while (i < gt) {
            capped_term t = v[i];
            if (t.key < p) {
                sum_ab_below += t.weight * t.key;
                v[i++] = v[lt];
                v[lt++] = t;
            } else if (t.key > p) {
                sum_a_above += t.weight;
                v[i] = v[--gt];
                v[gt] = t;
            } else {
                sum_ab_equal += t.weight * t.key;
                sum_a_equal += t.weight;
                i++;
            }
        }
        double f = (capped_weight + sum_a_equal + sum_a_above) * p + below_sum + sum_ab_below;
        if (f > c) { /* the solution lies below p */
            capped_weight += sum_a_equal + sum_a_above;
            n = lt;
        } else {
            below_sum += sum_ab_below + sum_ab_equal;
            last_below = p;
            v += gt;
            n -= gt;
        }
    }
    return capped_weight > 0.0 ? (c - below_sum) / capped_weight : last_below;
}

/* Linf: moving every coordinate by up to lambda lowers w.z by D(lambda) = sum_j |w_j| min(lambda,
 * p_j), p_j the room from t_j to its face: the capped sum above with a_j = |w_j|, b_j = p_j. If
 * even the smallest p exceeds lambda = c / sum |w|, no coordinate meets the box. */
static void project_linf(const float *t, const float *w, double c, size_t n, float *d,
                         sort_pair *scratch)
{
    capped_term *terms = (capped_term *)scratch;
    const double sign = c >= 0.0 ? 1.0 : -1.0;
    c = fabs(c);
    double reach = 0.0, w_sum = 0.0, room_min = INFINITY;
    for (size_t j = 0; j < n; j++) {
        double wj = sign * w[j], room = wj < 0.0 ? 1.0 - t[j] : t[j];
        terms[j] = (capped_term){room, fabs(wj)};
        reach += fabs(wj) * room;
        w_sum += fabs(wj);
        room_min = room < room_min ? room : room_min;
        d[j] = wj == 0.0 ? 0.0f : (wj < 0.0 ? 1.0f - t[j] : -t[j]); /* the corner */
    }
    if (!(reach > c))
        return; /* out of reach: the corner */
    double lambda = w_sum * room_min > c ? c / w_sum /* no coordinate is clipped by the box */
                                         : solve_capped_sum(terms, n, c);
    lambda = lambda > 0.0 ? lambda : 0.0;
    for (size_t j = 0; j < n; j++) {
        double wj = sign * w[j];
        if (wj < 0.0)
            d[j] = (float)fmin(lambda, 1.0 - t[j]);
        else if (wj > 0.0)
            d[j] = (float)fmax(-lambda, -(double)t[j]);
    }
}

/* L2: the KKT conditions give d_j = clip(-lambda w_j) to the box, lambda >= 0. Coordinate j
 * reaches its face at lambda = r_j, so w.d = -G(lambda) with G(lambda) = sum_j w_j^2 min(lambda,
 * r_j): the capped sum above with a_j = w_j^2, b_j = r_j. If G(r_min) > c no face is met: d =
 * -c w / ||w||^2. If G(inf) < c the hyperplane is out of reach. */
static void project_l2(const float *t, const float *w, double c, size_t n, float *d,
                       sort_pair *scratch)
{
    capped_term *terms = (capped_term *)scratch;
    const double sign = c >= 0.0 ? 1.0 : -1.0;
    c = fabs(c);
    double w2_sum = 0.0, reach = 0.0, r_min = INFINITY;
    size_t count = 0;
    for (size_t j = 0; j < n; j++) {
        double wj = sign * w[j], face = wj > 0.0 ? -(double)t[j] : 1.0 - t[j];
        w2_sum += wj * wj;
        if (fabs(wj) <= FAB_TINY_W) {
            d[j] = 0.0f;
            continue;
        }
        double r = fmin(face / -wj, 1e12);
        terms[count++] = (capped_term){r, wj * wj};
        r_min = r < r_min ? r : r_min;
        reach += wj * wj * r;
        d[j] = (float)face; /* at the face */
    }
    if (count == 0)
        return;
    double lambda;
    if (w2_sum * r_min > c) {
        lambda = c / w2_sum;
    } else {
        if (c > reach)
            return; /* out of reach: every coordinate at its face */
        lambda = solve_capped_sum(terms, count, c);
    }
    for (size_t j = 0; j < n; j++) {
        double wj = sign * w[j], face = wj > 0.0 ? -(double)t[j] : 1.0 - t[j];
        if (fabs(wj) > FAB_TINY_W && !(lambda > fmin(face / -wj, 1e12)))
            d[j] = (float)(-lambda * wj);
    }
}

/* L1: lowering w.z by one unit through coordinate j costs 1 / |w_j|, so the cheapest way moves
 * the coordinates by decreasing |w_j|, each to its face, until the next one finishes the job. */
static void project_l1(const float *t, const float *w, double c, size_t n, float *d,
                       sort_pair *sorted)
{
    const double sign = c >= 0.0 ? 1.0 : -1.0;
    c = fabs(c);
    double total = 0.0; /* change of w.z when every coordinate is at its face */
    for (size_t j = 0; j < n; j++) {
        double wj = sign * w[j], face = wj < 0.0 ? 1.0 - t[j] : -(double)t[j];
        total += wj * face;
        sorted[j] = (sort_pair){fabs(wj) > 0.0 ? fmin(1.0 / fabs(wj), 1e12) : 1e12, (int32_t)j};
        d[j] = fabs(wj) > FAB_TINY_W ? (float)face : 0.0f;
    }
    if (!(c + total < 0.0))
        return; /* out of reach: the corner */
    sort_pairs(sorted, n);
    double left = c; /* what remains to lower */
    size_t q = 0;
    for (; q < n; q++) {
        int32_t j = sorted[q].index;
        double wj = sign * w[j], face = wj < 0.0 ? 1.0 - t[j] : -(double)t[j];
        if (left + wj * face <= 0.0) {
            d[j] = fabs(wj) > FAB_TINY_W ? (float)(-left / wj) : 0.0f;
            break;
        }
        left += wj * face;
    }
    for (q++; q < n; q++)
        d[sorted[q].index] = 0.0f;
}

/* Distance in double, as the framework measures the returned points. */
static double distance(at_norm norm, const float *p, const float *q, size_t image)
{
    double r = 0.0;
    for (size_t j = 0; j < image; j++) {
        double v = fabs((double)p[j] - q[j]);
        r = norm == AT_NORM_LINF ? (v > r ? v : r) : (norm == AT_NORM_L2 ? r + v * v : r + v);
    }
    return norm == AT_NORM_L2 ? sqrt(r) : r;
}

/* One FAB step for compacted example i: both projections and the biased convex combination. */
static void fab_step(const at_attack *a, const fab_buffers *b, int i)
{
    const at_norm norm = a->o.norm;
    const size_t image = a->image, off = (size_t)i * image;
    const float *x0 = b->x + off, *g = a->grad + off;
    float *cur = b->cur + off, *d1 = b->d1 + off, *d2 = b->d2 + off;
    sort_pair *sorted = b->sorted + off;
    /* the linearised boundary h(z) = f + g.(z - cur): h(cur) = f, and h(x) computed directly
     * rather than through w.x - b, which would cancel */
    double h_x = b->f[i];
    for (size_t j = 0; j < image; j++)
        h_x += (double)g[j] * ((double)x0[j] - cur[j]);
    void (*project)(const float *, const float *, double, size_t, float *, sort_pair *) =
        norm == AT_NORM_LINF ? project_linf : norm == AT_NORM_L2 ? project_l2 : project_l1;
    project(cur, g, b->f[i], image, d1, sorted);
    project(x0, g, h_x, image, d2, sorted);
    double n1 = fmax(at_norm_of(norm, d1, image), 1e-8);
    double n2 = fmax(at_norm_of(norm, d2, image), 1e-8);
    const float alpha = (float)fmin(fmax(n1 / (n1 + n2), 0.0), FAB_ALPHA_MAX);
    for (size_t j = 0; j < image; j++) {
        float v = (cur[j] + FAB_ETA * d1[j]) * (1.0f - alpha) + (x0[j] + FAB_ETA * d2[j]) * alpha;
        cur[j] = fminf(fmaxf(v, 0.0f), 1.0f);
    }
}

/* f = z_t - z_y at the iterates and its input gradient into a->grad (averaged over o.eot
 * forwards). at_attack_evaluate runs the forward (and measures the point); the backward of
 * dlogits = e_t - e_y follows on the same pass, so the pair counts as one gradient evaluation. */
static int linearise(at_attack *a, fab_buffers *b, int m)
{
    const int k = a->classes, samples = a->o.eot;
    const size_t count = (size_t)m * a->image;
    for (int s = 0; s < samples; s++) {
        int status = at_attack_evaluate(a, b->x, b->cur, b->y, NULL, m, AT_ATTACK_LOSS_CE, false,
                                        false);
        if (status)
            return status;
        a->stats.forward_evals -= m;
        a->stats.gradient_evals += m;
        memset(a->dlogits, 0, (size_t)m * k * sizeof(float));
        for (int i = 0; i < m; i++) {
            const float *z = a->logits + (size_t)i * k;
            double f = ((double)z[b->target[i]] - z[b->y[i]]) / samples;
            b->f[i] = s ? b->f[i] + f : f;
            a->dlogits[(size_t)i * k + b->target[i]] += 1.0f;
            a->dlogits[(size_t)i * k + b->y[i]] -= 1.0f;
        }
        status = at_backward(a->pass, a->dlogits, AT_GRAD_INPUT);
        if (status)
            return status;
        const float *g = at_pass_input_grad(a->pass);
        if (samples == 1)
            memcpy(a->grad, g, count * sizeof(float));
        else
            for (size_t j = 0; j < count; j++)
                a->grad[j] = s ? a->grad[j] + g[j] / (float)samples : g[j] / (float)samples;
    }
    at_attack_count_gradients(a, m);
    for (int i = 0; i < m; i++)
        a->loss[i] = (float)b->f[i];
    return AT_OK;
}

/* A start at distance eps / 2 from x along a random direction (uniform in the cube for Linf,
 * Gaussian for L2 and L1, as the authors), clamped to [0,1]. */
static void random_start(at_norm norm, float eps, const float *x0, float *cur, size_t image,
                         at_rng *rng)
{
    for (size_t j = 0; j < image; j++)
        cur[j] = norm == AT_NORM_LINF ? (float)(2.0 * at_rng_uniform(rng) - 1.0)
                                      : (float)at_rng_normal(rng);
    double len = at_norm_of(norm, cur, image);
    float scale = len > 0.0 ? (float)(0.5 * eps / len) : 0.0f;
    for (size_t j = 0; j < image; j++)
        cur[j] = fminf(fmaxf(x0[j] + scale * cur[j], 0.0f), 1.0f);
}

/* One run of FAB-T on m compacted points: fills b->best and b->best_dist (INFINITY when no
 * misclassified iterate was met). */
static int single_run(at_attack *a, fab_buffers *b, int m, bool random)
{
    const at_attack_options *o = &a->o;
    const size_t image = a->image;
    for (int i = 0; i < m; i++) {
        const size_t off = (size_t)i * image;
        if (random)
            random_start(o->norm, o->eps, b->x + off, b->cur + off, image, &a->rngs[b->index[i]]);
        else
            memcpy(b->cur + off, b->x + off, image * sizeof(float));
        b->best_dist[i] = INFINITY;
    }
    for (int it = 0; it < o->steps; it++) {
        int status = linearise(a, b, m);
        if (status)
            return status;
        at_attack_record_loss(a, it, m);
        /* examples are independent, so threads cannot change the result; small work stays on
         * one thread, where a parallel region would cost more than it saves */
#pragma omp parallel for schedule(static) if (m > 1 && (size_t)m * image >= 16384)
        for (int i = 0; i < m; i++)
            fab_step(a, b, i);
        status = at_attack_evaluate(a, b->x, b->cur, b->y, NULL, m, AT_ATTACK_LOSS_CE, false,
                                    false);
        if (status)
            return status;
        for (int i = 0; i < m; i++) {
            if (a->correct[i])
                continue;
            const size_t off = (size_t)i * image;
            const float *x0 = b->x + off;
            float *cur = b->cur + off;
            double dist = distance(o->norm, cur, x0, image);
            if (dist < b->best_dist[i]) {
                b->best_dist[i] = dist;
                memcpy(b->best + off, cur, image * sizeof(float));
            }
            /* back towards x; clamped only against float rounding of the convex combination */
            for (size_t j = 0; j < image; j++)
                cur[j] = fminf(fmaxf(x0[j] + (cur[j] - x0[j]) * FAB_BETA, 0.0f), 1.0f);
        }
    }
    return AT_OK;
}

static int fab_run(at_attack *a, const float *x, const int32_t *y, const int32_t *target, int n,
                   float *x_adv)
{
    const at_attack_options *o = &a->o;
    const size_t image = a->image, k = (size_t)a->classes;
    fab_buffers b = carve(a);
    /* clean points already misclassified stay as they are; the clean logits rank the targets */
    int status = at_attack_evaluate(a, x, x, y, NULL, n, AT_ATTACK_LOSS_CE, false, false);
    if (status)
        return status;
    memcpy(x_adv, x, (size_t)n * image * sizeof(float));
    memcpy(b.clean_logits, a->logits, (size_t)n * k * sizeof(float));
    for (int i = 0; i < n; i++)
        b.robust[i] = a->correct[i];
    for (int round = 0; round < o->targets; round++)
        for (int r = 0; r < o->restarts; r++) {
            int m = 0;
            for (int i = 0; i < n; i++)
                if (b.robust[i]) {
                    b.index[m] = i;
                    b.y[m] = y[i];
                    b.target[m] = at_attack_ranked_class(b.clean_logits + i * k, (int)k, round + 2);
                    memcpy(b.x + (size_t)m * image, x + (size_t)i * image, image * sizeof(float));
                    m++;
                }
            if (m == 0)
                return AT_OK;
            status = single_run(a, &b, m, r > 0);
            if (status)
                return status;
            /* as the authors: a point counts only within the budget */
            for (int i = 0; i < m; i++)
                if (b.best_dist[i] <= o->eps) {
                    b.robust[b.index[i]] = 0;
                    memcpy(x_adv + (size_t)b.index[i] * image, b.best + (size_t)i * image,
                           image * sizeof(float));
                }
        }
    return AT_OK;
}

const at_attack_ops at_attack_fab_t = {
    .name = "fab-t",
    .description = "targeted Fast Adaptive Boundary attack, minimal Linf/L2/L1 perturbation "
                   "against the top 9 other classes (Croce and Hein, 2020)",
    .default_loss = AT_ATTACK_LOSS_CE,
    .default_steps = 100,
    .needs_targets = true,
    .min_classes = 2,
    .supports_l1 = true,
    .workspace = fab_workspace,
    .run = fab_run,
};
