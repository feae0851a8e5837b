/* sinkhorn.c: entropic optimal transport between two weighted point clouds by log-domain Sinkhorn
 * iterations (Cuturi, "Sinkhorn Distances", NeurIPS 2013; the log-domain, symmetric form of
 * Feydy et al., "Interpolating between Optimal Transport and MMD using Sinkhorn Divergences",
 * AISTATS 2019, section 3), and its gradient with respect to the points.
 *
 * For x [n, d] with weights a and y [m, d] with weights b, the cost is C_ij = ||x_i - y_j||^2 / d
 * (the mean squared difference per coordinate) and
 *     OT_eps(a, b) = min_P <P, C> + eps KL(P || a b^T)   over couplings P of a and b,
 * whose dual is max_{f,g} <a, f> + <b, g> - eps sum_ij a_i b_j (exp((f_i + g_j - C_ij) / eps) - 1).
 * The iterations are the dual's block maximisations in the log domain (no under- or overflow for
 * any eps > 0):
 *     T_f(g)_i = -eps log sum_j b_j exp((g_j - C_ij) / eps),  T_g(f)_j likewise,
 * averaged, f <- (f + T_f(g)) / 2 and g <- (g + T_g(f)) / 2, which makes the result exactly
 * symmetric (swapping the clouds swaps f and g bit for bit). The iterations start at the largest
 * cost as eps and halve it each iteration until it reaches eps (Feydy's "eps-scaling", factor
 * 1/2; Schmitzer, SIAM J. Sci. Comput. 2019): without it the iterations converge slowly when eps
 * is small against the costs. One last unaveraged update of both
 * ("extrapolation") gives the potentials whose dual objective is returned. That value is a lower
 * bound of OT_eps for any number of iterations (weak duality), equal to it at convergence, and
 * 0 <= OT_eps - OT_0 <= eps min(H(a), H(b)) (eps log n for uniform weights).
 *
 * The gradient is the envelope theorem's (Danskin): at the maximising potentials d OT_eps / d C_ij
 * = P_ij = a_i b_j exp((f_i + g_j - C_ij) / eps), so d/dx_i = sum_j P_ij 2 (x_i - y_j) / d. It is
 * the exact gradient of the returned dual objective with the potentials held fixed, hence of
 * OT_eps at convergence; unrolling the iterations instead would cost a stored cost matrix per
 * iteration and a backward pass through each, for a gradient of an unconverged iterate rather
 * than of the transport cost. */
#include "advtrain.h"

#include <math.h>
#include <stddef.h>

size_t at_sinkhorn_work(int n, int m)
{
    return 2 * (size_t)n * (size_t)m + 7 * ((size_t)n + (size_t)m);
}

/* out_i = -eps log sum_j w_j exp((p_j - C_ij) / eps), with C [rows, cols] read by row (by_row)
 * or by column (transposed), log w given. */
static void softmin(const double *cost, int rows, int cols, bool by_row, const double *logw,
                    const double *p, double eps, double *out)
{
    for (int i = 0; i < rows; i++) {
        double max = -INFINITY;
        for (int j = 0; j < cols; j++) {
            double c = by_row ? cost[(size_t)i * cols + j] : cost[(size_t)j * rows + i];
            double v = logw[j] + (p[j] - c) / eps;
            max = v > max ? v : max;
        }
        double sum = 0.0;
        for (int j = 0; j < cols; j++) {
            double c = by_row ? cost[(size_t)i * cols + j] : cost[(size_t)j * rows + i];
            sum += exp(logw[j] + (p[j] - c) / eps - max);
        }
        out[i] = -eps * (max + log(sum));
    }
}

/* The same softmin through the kernel K = exp(-C / eps) computed once per eps: out_i = -eps log
 * sum_j K_ij u_j - shift with u_j = w_j exp((p_j - shift) / eps), shift = max_j p_j, which
 * costs a matrix-vector product instead of an exponential per entry. The shift keeps u in
 * [0, 1]; a row whose sum is too small for full precision (costs far above eps) is recomputed in
 * the log domain. by_row: K [rows, cols] row by row, else K [cols, rows] column by column. */
static void softmin_kernel(const double *kernel, const double *cost, int rows, int cols,
                           bool by_row, const double *logw, const double *p, double eps,
                           double *u, double *out)
{
    double shift = -INFINITY;
    for (int j = 0; j < cols; j++)
        shift = p[j] > shift ? p[j] : shift;
    for (int j = 0; j < cols; j++)
        u[j] = exp(logw[j] + (p[j] - shift) / eps);
    if (by_row) {
        for (int i = 0; i < rows; i++) {
            const double *k = kernel + (size_t)i * cols;
            double sum = 0.0;
            for (int j = 0; j < cols; j++)
                sum += k[j] * u[j];
            out[i] = sum;
        }
    } else {
        for (int i = 0; i < rows; i++)
            out[i] = 0.0;
        for (int j = 0; j < cols; j++) {
            const double *k = kernel + (size_t)j * rows;
            for (int i = 0; i < rows; i++)
                out[i] += k[i] * u[j];
        }
    }
    for (int i = 0; i < rows; i++) {
        if (out[i] > 1e-200) {
            out[i] = -eps * log(out[i]) - shift;
            continue;
        }
        /* the log-domain form of this row alone */
        double max = -INFINITY, sum = 0.0;
        for (int j = 0; j < cols; j++) {
            double c = by_row ? cost[(size_t)i * cols + j] : cost[(size_t)j * rows + i];
            double v = logw[j] + (p[j] - c) / eps;
            max = v > max ? v : max;
        }
        for (int j = 0; j < cols; j++) {
            double c = by_row ? cost[(size_t)i * cols + j] : cost[(size_t)j * rows + i];
            sum += exp(logw[j] + (p[j] - c) / eps - max);
        }
        out[i] = -eps * (max + log(sum));
    }
}

static bool weights_ok(const double *w, int n)
{
    if (!w)
        return true;
    double s = 0.0;
    for (int i = 0; i < n; i++) {
        if (!(w[i] > 0.0) || !isfinite(w[i]))
            return false;
        s += w[i];
    }
    return fabs(s - 1.0) < 1e-6;
}

double at_sinkhorn(const double *x, const double *a, int n, const double *y, const double *b,
                   int m, int d, double eps, int iters, double *work, double *grad_x,
                   double *grad_y, double *plan)
{
    if (!x || !y || !work || n < 1 || m < 1 || d < 1 || !(eps > 0.0) || !isfinite(eps) ||
        iters < 0 || !weights_ok(a, n) || !weights_ok(b, m))
        return NAN;
    double *cost = work, *f = cost + (size_t)n * m, *g = f + n, *tf = g + m, *tg = tf + n;
    double *loga = tg + m, *logb = loga + n, *u = logb + m, *kernel = u + (n > m ? n : m);
    for (int i = 0; i < n; i++)
        loga[i] = a ? log(a[i]) : -log((double)n);
    for (int j = 0; j < m; j++)
        logb[j] = b ? log(b[j]) : -log((double)m);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < m; j++) {
            double s = 0.0;
            for (int k = 0; k < d; k++) {
                double t = x[(size_t)i * d + k] - y[(size_t)j * d + k];
                s += t * t;
            }
            cost[(size_t)i * m + j] = s / d;
        }
    for (int i = 0; i < n; i++)
        f[i] = 0.0;
    for (int j = 0; j < m; j++)
        g[j] = 0.0;
    double cmax = 0.0;
    for (size_t k = 0; k < (size_t)n * m; k++)
        cmax = cost[k] > cmax ? cost[k] : cmax;
    double e = cmax > eps ? cmax : eps; /* annealed: halved each iteration until it is eps */
    double kernel_eps = 0.0;
    for (int t = 0; t < iters; t++, e = 0.5 * e > eps ? 0.5 * e : eps) {
        if (e != kernel_eps) {
            for (size_t k = 0; k < (size_t)n * m; k++)
                kernel[k] = exp(-cost[k] / e);
            kernel_eps = e;
        }
        softmin_kernel(kernel, cost, n, m, true, logb, g, e, u, tf);
        softmin_kernel(kernel, cost, m, n, false, loga, f, e, u, tg);
        for (int i = 0; i < n; i++)
            f[i] = 0.5 * (f[i] + tf[i]);
        for (int j = 0; j < m; j++)
            g[j] = 0.5 * (g[j] + tg[j]);
    }
    if (iters > 0) { /* the last update, from the same (f, g) */
        if (kernel_eps != eps)
            for (size_t k = 0; k < (size_t)n * m; k++)
                kernel[k] = exp(-cost[k] / eps);
        softmin_kernel(kernel, cost, n, m, true, logb, g, eps, u, tf);
        softmin_kernel(kernel, cost, m, n, false, loga, f, eps, u, tg);
    } else {
        softmin(cost, n, m, true, logb, g, eps, tf);
        softmin(cost, m, n, false, loga, f, eps, tg);
    }
    if (grad_x)
        for (size_t k = 0; k < (size_t)n * d; k++)
            grad_x[k] = 0.0;
    if (grad_y)
        for (size_t k = 0; k < (size_t)m * d; k++)
            grad_y[k] = 0.0;
    double value = 0.0, mass = 0.0;
    for (int i = 0; i < n; i++)
        value += exp(loga[i]) * tf[i];
    for (int j = 0; j < m; j++)
        value += exp(logb[j]) * tg[j];
    for (int i = 0; i < n; i++)
        for (int j = 0; j < m; j++) {
            double p = exp(loga[i] + logb[j] + (tf[i] + tg[j] - cost[(size_t)i * m + j]) / eps);
            mass += p;
            if (plan)
                plan[(size_t)i * m + j] = p;
            if (!grad_x && !grad_y)
                continue;
            for (int k = 0; k < d; k++) {
                double diff = 2.0 * p * (x[(size_t)i * d + k] - y[(size_t)j * d + k]) / d;
                if (grad_x)
                    grad_x[(size_t)i * d + k] += diff;
                if (grad_y)
                    grad_y[(size_t)j * d + k] -= diff;
            }
        }
    return value - eps * (mass - 1.0);
}
