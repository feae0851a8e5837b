/* coreset_greedy.c: greedy maximisation of the facility-location function of CRAIG (coreset.h)
 *   F(S) = sum_i max_{j in S} (d_max - d_ij),
 * kept in distance form: with m_i = min(d_max, min_{k in S} d_ik), the gain of adding j is
 * sum_i max(0, m_i - d_ij), the same quantity as F(S + j) - F(S) without the subtraction from
 * d_max that would round away small distances.
 *
 * Lazy evaluation (Minoux, "Accelerated greedy algorithms for maximizing submodular set
 * functions", 1978): F is submodular, so a gain computed at an earlier step bounds the gain now
 * from above. A max-heap holds those bounds; the top is re-evaluated until a gain computed at the
 * current step is on top, and that point is the one plain greedy would take. This holds exactly in
 * floating point too: each term max(0, m_i - d_ij) can only fall as m_i falls (rounding is
 * monotone) and the sum adds the terms in a fixed order, so a stale gain is never below a fresh
 * one. Ties go to the lower index in the heap's order as in plain greedy's argmax. */
#include "train/coreset.h"

#include "kernels/kernels.h" /* AT_MULTIVERSION */

AT_MULTIVERSION
double at_coreset_gain(const float *restrict row, const float *restrict m, int n)
{
    /* sixteen partial sums, lane l taking the terms i = l mod 16: vectorisable without
     * reordering any sum, so every processor and instruction set gives the same bits */
    enum { LANES = 16, CHUNK = 256 };
    double acc[LANES] = {0};
    float t[CHUNK];
    for (int i0 = 0; i0 < n; i0 += CHUNK) {
        const int len = n - i0 < CHUNK ? n - i0 : CHUNK;
        for (int i = 0; i < len; i++) {
            float v = m[i0 + i] - row[i0 + i];
            t[i] = v > 0.0f ? v : 0.0f;
        }
        for (int i = len; i < CHUNK; i++)
            t[i] = 0.0f; /* adding +0 leaves a partial sum (never -0) as it is */
        for (int i = 0; i < CHUNK; i += LANES)
            for (int l = 0; l < LANES; l++)
                acc[l] += (double)t[i + l];
    }
    for (int half = LANES / 2; half > 0; half /= 2)
        for (int l = 0; l < half; l++)
            acc[l] += acc[l + half];
    return acc[0];
}

/* The heap's order: the larger gain first, then the lower index. */
static bool before(const double *gain, int32_t a, int32_t b)
{
    return gain[a] > gain[b] || (gain[a] == gain[b] && a < b);
}

static void sift_down(int32_t *heap, int size, int at, const double *gain)
{
    for (;;) {
        int best = at, l = 2 * at + 1, r = l + 1;
        if (l < size && before(gain, heap[l], heap[best]))
            best = l;
        if (r < size && before(gain, heap[r], heap[best]))
            best = r;
        if (best == at)
            return;
        int32_t t = heap[at];
        heap[at] = heap[best];
        heap[best] = t;
        at = best;
    }
}

/* Adds j: moves the points now nearest to j (or as near, j being the lower index) and lowers m. */
AT_MULTIVERSION
static void take(const float *restrict row, int32_t j, int n, float *restrict m,
                 int32_t *restrict assign)
{
    for (int i = 0; i < n; i++) {
        float dist = row[i];
        bool nearer = assign[i] < 0 || dist < m[i] || (dist == m[i] && j < assign[i]);
        assign[i] = nearer ? j : assign[i];
        m[i] = dist < m[i] ? dist : m[i];
    }
}

int at_coreset_greedy(const float *d, int n, float d_max, int budget, int32_t *order,
                      int32_t *assign)
{
    float *m = at_alloc((size_t)n * sizeof(float));
    double *gain = at_alloc((size_t)n * sizeof(double));
    int32_t *heap = at_alloc((size_t)n * sizeof(int32_t));
    int32_t *step = at_alloc((size_t)n * sizeof(int32_t)); /* the step each gain was computed at */
    if (!m || !gain || !heap || !step) {
        at_free(m);
        at_free(gain);
        at_free(heap);
        at_free(step);
        return AT_ERR_NOMEM;
    }
    for (int i = 0; i < n; i++) {
        m[i] = d_max;
        assign[i] = -1;
        heap[i] = i;
    }
    /* the first gains, one row each (d is symmetric, so row j holds d_ij for every i) */
#pragma omp parallel for schedule(static)
    for (int j = 0; j < n; j++)
        gain[j] = at_coreset_gain(d + (size_t)j * n, m, n);
    for (int at = n / 2 - 1; at >= 0; at--)
        sift_down(heap, n, at, gain);
    int size = n;
    for (int s = 0; s < budget;) {
        int32_t j = heap[0];
        if (step[j] == s) {
            order[s++] = j;
            take(d + (size_t)j * n, j, n, m, assign);
            heap[0] = heap[--size];
        } else {
            gain[j] = at_coreset_gain(d + (size_t)j * n, m, n);
            step[j] = s;
        }
        sift_down(heap, size, 0, gain);
    }
    for (int s = 0; s < budget; s++)
        assign[order[s]] = order[s];
    at_free(m);
    at_free(gain);
    at_free(heap);
    at_free(step);
    return AT_OK;
}
