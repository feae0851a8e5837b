/* coreset.c: CRAIG's selection, one class at a time (coreset.h): the class's gradient errors
 * e_i = p_i - onehot(y_i) and embeddings gathered together, their distance matrix
 * (coreset_distance.c), the lazy greedy (coreset_greedy.c), and the weights gamma_j = the size of
 * the cluster of points nearest to j. The distance matrix of one class at a time is kept whole
 * (4 n_c^2 bytes: 144 MB for 6000 points): the greedy reads one of its rows per gain, and
 * recomputing a row from the embeddings would cost H times as much each time. */
#include "train/coreset.h"

#include <math.h>

/* Gradients whose squared norms exceed this could overflow float sums of products. */
#define AT_CORESET_MAX_NORM2 1e18

void at_coreset_budgets(const int *sizes, int classes, int total, int *budgets)
{
    long long n = 0;
    for (int c = 0; c < classes; c++)
        n += sizes[c];
    /* largest remainders on the exact quotas total * size / n */
    int given = 0;
    for (int c = 0; c < classes; c++) {
        budgets[c] = (int)((long long)total * sizes[c] / n);
        given += budgets[c];
    }
    for (; given < total; given++) {
        int best = -1;
        long long best_rem = -1;
        for (int c = 0; c < classes; c++) {
            long long rem = (long long)total * sizes[c] % n;
            if (budgets[c] == (int)((long long)total * sizes[c] / n) && rem > best_rem) {
                best = c;
                best_rem = rem;
            }
        }
        budgets[best]++;
    }
    /* at least 1 for every non-empty class, from the class furthest above its quota: the largest
     * budget * n - total * size */
    for (int c = 0; c < classes; c++) {
        if (sizes[c] == 0 || budgets[c] > 0)
            continue;
        int from = -1;
        long long most = 0;
        for (int o = 0; o < classes; o++) {
            long long over = (long long)budgets[o] * n - (long long)total * sizes[o];
            if (budgets[o] > 1 && (from < 0 || over > most)) {
                from = o;
                most = over;
            }
        }
        budgets[from]--;
        budgets[c] = 1;
    }
}

static int check_input(const at_coreset_input *in, double fraction, const int32_t *selected,
                       const float *weights, at_error *err)
{
    if (!in || !selected || !weights || !in->probs || !in->labels)
        return at_fail(err, AT_ERR_ARG, "coreset: NULL input or output");
    if (!(fraction > 0.0 && fraction <= 1.0))
        return at_fail(err, AT_ERR_ARG, "coreset: fraction %g is outside (0, 1]", fraction);
    if (in->n < 1 || in->classes < 1)
        return at_fail(err, AT_ERR_ARG, "coreset: %d points of %d classes", in->n, in->classes);
    if (!in->bias_only && (!in->embeddings || in->embed < 1))
        return at_fail(err, AT_ERR_ARG, "coreset: the full gradient needs embeddings");
    for (int i = 0; i < in->n; i++) {
        if (in->labels[i] < 0 || in->labels[i] >= in->classes)
            return at_fail(err, AT_ERR_ARG, "coreset: label %d of point %d is outside [0, %d)",
                           (int)in->labels[i], i, in->classes);
        double a = 0.0, b = 0.0;
        for (int k = 0; k < in->classes; k++) {
            double p = in->probs[(size_t)i * in->classes + k] - (k == in->labels[i]);
            a += p * p;
        }
        if (!in->bias_only)
            for (int k = 0; k < in->embed; k++)
                b += (double)in->embeddings[(size_t)i * in->embed + k] *
                     in->embeddings[(size_t)i * in->embed + k];
        if (!isfinite(a) || !isfinite(b))
            return at_fail(err, AT_ERR_NUMERIC, "coreset: non-finite %s at point %d",
                           isfinite(a) ? "embedding" : "probability", i);
        if (a > AT_CORESET_MAX_NORM2 || b > AT_CORESET_MAX_NORM2)
            return at_fail(err, AT_ERR_NUMERIC, "coreset: the %s of point %d is too large",
                           a > AT_CORESET_MAX_NORM2 ? "probability" : "embedding", i);
    }
    return AT_OK;
}

typedef struct class_work {
    int32_t *members;      /* [n]: the points of each class in turn, ascending */
    float *e, *h, *d;      /* one class: [n_c, K], [n_c, H], [n_c, n_c] */
    int32_t *order, *assign;
} class_work;

/* Selects `budget` points of the class whose points are members[0, size); adds the weight of
 * each to count[point]. */
static int select_class(const at_coreset_input *in, const int32_t *members, int size, int budget,
                        class_work *w, int32_t *count)
{
    const int k = in->classes, hd = in->bias_only ? 0 : in->embed;
    for (int r = 0; r < size; r++) {
        const int i = members[r];
        for (int c = 0; c < k; c++)
            w->e[(size_t)r * k + c] = in->probs[(size_t)i * k + c] - (float)(c == in->labels[i]);
        for (int c = 0; c < hd; c++)
            w->h[(size_t)r * hd + c] = in->embeddings[(size_t)i * hd + c];
    }
    float d_max;
    int status = at_coreset_distances(w->e, hd ? w->h : NULL, size, k, hd, w->d, &d_max);
    if (status == AT_OK)
        status = at_coreset_greedy(w->d, size, d_max, budget, w->order, w->assign);
    if (status != AT_OK)
        return status;
    for (int r = 0; r < size; r++)
        count[members[w->assign[r]]]++;
    return AT_OK;
}

/* Every class in turn: its members ascending (a counting sort of the labels), its selection.
 * `next` holds classes ints of scratch. */
static int select_all(const at_coreset_input *in, const int *sizes, const int *budgets,
                      class_work *w, int *next, int32_t *count)
{
    for (int c = 0, start = 0; c < in->classes; start += sizes[c++])
        next[c] = start;
    for (int i = 0; i < in->n; i++)
        w->members[next[in->labels[i]]++] = i;
    for (int c = 0, start = 0; c < in->classes; start += sizes[c++]) {
        if (sizes[c] == 0)
            continue;
        int status = select_class(in, w->members + start, sizes[c], budgets[c], w, count);
        if (status != AT_OK)
            return status;
    }
    return AT_OK;
}

int at_coreset_select(const at_coreset_input *in, double fraction, int32_t *selected,
                      float *weights, at_error *err)
{
    int status = check_input(in, fraction, selected, weights, err);
    if (status != AT_OK)
        return status;
    const int n = in->n, k = in->classes, hd = in->bias_only ? 0 : in->embed;
    int *sizes = at_alloc((size_t)k * sizeof(int)), *budgets = at_alloc((size_t)k * sizeof(int));
    int *next = at_alloc((size_t)k * sizeof(int));
    int32_t *count = at_alloc((size_t)n * sizeof(int32_t));
    class_work w = {.members = at_alloc((size_t)n * sizeof(int32_t))};
    int largest = 0, present = 0;
    size_t square = 0;
    status = AT_ERR_NOMEM;
    if (sizes && budgets && next && count && w.members) {
        for (int i = 0; i < n; i++)
            sizes[in->labels[i]]++;
        for (int c = 0; c < k; c++) {
            present += sizes[c] > 0;
            largest = sizes[c] > largest ? sizes[c] : largest;
        }
        if (at_mul_size((size_t)largest * largest, sizeof(float), &square)) {
            w.e = at_alloc((size_t)largest * k * sizeof(float));
            w.h = hd ? at_alloc((size_t)largest * hd * sizeof(float)) : NULL;
            w.d = at_alloc(square);
            w.order = at_alloc((size_t)largest * sizeof(int32_t));
            w.assign = at_alloc((size_t)largest * sizeof(int32_t));
        }
    }
    if (w.e && (w.h || !hd) && w.d && w.order && w.assign) {
        /* round(fraction n), and never fewer than one point per class present */
        int total = (int)llround(fraction * n);
        at_coreset_budgets(sizes, k, total > present ? total : present, budgets);
        status = select_all(in, sizes, budgets, &w, next, count);
    }
    int chosen = 0;
    for (int i = 0; status == AT_OK && i < n; i++)
        if (count[i] > 0) {
            selected[chosen] = i;
            weights[chosen++] = (float)count[i];
        }
    at_free(sizes);
    at_free(budgets);
    at_free(next);
    at_free(count);
    at_free(w.members);
    at_free(w.e);
    at_free(w.h);
    at_free(w.d);
    at_free(w.order);
    at_free(w.assign);
    if (status != AT_OK)
        return at_fail(err, status, "coreset: out of memory (the distances of a class of %d "
                       "points take %zu bytes)", largest, square);
    return chosen;
}
