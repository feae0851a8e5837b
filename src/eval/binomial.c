/* binomial.c: the binomial statistics of randomized smoothing (Cohen, Rosenfeld and Kolter,
 * "Certified Adversarial Robustness via Randomized Smoothing", ICML 2019): the Clopper-Pearson
 * lower confidence bound on a success probability, used by CERTIFY, and the two-sided binomial
 * test at p = 1/2, used by PREDICT. Both rest on the regularised incomplete beta function
 * I_x(a, b), evaluated by its continued fraction (Numerical Recipes, 2nd ed., section 6.4) with
 * the modified Lentz method, all in double precision. */
#include "core/util.h"

#include <float.h>
#include <math.h>

/* The continued fraction of I_x(a, b) (NR eq. 6.4.5, without the prefactor), by Lentz's method.
 * It converges fast for x < (a + 1) / (a + b + 2), in O(sqrt(max(a, b))) terms. */
static double beta_fraction(double a, double b, double x)
{
    const double tiny = 1e-300;
    double qab = a + b, qap = a + 1.0, qam = a - 1.0;
    double c = 1.0, d = 1.0 - qab * x / qap;
    if (fabs(d) < tiny)
        d = tiny;
    d = 1.0 / d;
    double h = d;
    for (int m = 1; m <= 1000000; m++) {
        double m2 = 2.0 * m;
        double aa = m * (b - m) * x / ((qam + m2) * (a + m2)); /* even step */
        d = 1.0 + aa * d;
        if (fabs(d) < tiny)
            d = tiny;
        c = 1.0 + aa / c;
        if (fabs(c) < tiny)
            c = tiny;
        d = 1.0 / d;
        h *= d * c;
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2)); /* odd step */
        d = 1.0 + aa * d;
        if (fabs(d) < tiny)
            d = tiny;
        c = 1.0 + aa / c;
        if (fabs(c) < tiny)
            c = tiny;
        d = 1.0 / d;
        double delta = d * c;
        h *= delta;
        if (fabs(delta - 1.0) < 4.0 * DBL_EPSILON)
            break;
    }
    return h;
}

/* I_x(a, b) for a, b > 0: the fraction on whichever side of the mean converges, with the other
 * side from the symmetry I_x(a, b) = 1 - I_{1-x}(b, a) (NR eq. 6.4.10). The prefactor
 * x^a (1-x)^b / (a B(a, b)) is formed in logarithms so that n = 10^5 draws do not overflow. */
static double incomplete_beta(double x, double a, double b)
{
    if (x <= 0.0)
        return 0.0;
    if (x >= 1.0)
        return 1.0;
    double log_front = lgamma(a + b) - lgamma(a) - lgamma(b) + a * log(x) + b * log1p(-x);
    if (x < (a + 1.0) / (a + b + 2.0))
        return exp(log_front) * beta_fraction(a, b, x) / a;
    return 1.0 - exp(log_front) * beta_fraction(b, a, 1.0 - x) / b;
}

double at_clopper_pearson_lower(long k, long n, double alpha)
{
    if (n < 1 || k < 0 || k > n || !(alpha > 0.0 && alpha < 1.0))
        return NAN;
    if (k == 0)
        return 0.0;
    /* The alpha-quantile of Beta(k, n - k + 1): the p at which P(Bin(n, p) >= k) = alpha, since
     * P(Bin(n, p) >= k) = I_p(k, n - k + 1), which rises with p. Bisection keeps the root
     * bracketed whatever the shape of the curve, down to adjacent doubles. */
    const double a = (double)k, b = (double)(n - k + 1);
    double lo = 0.0, hi = 1.0;
    for (int it = 0; it < 2000; it++) {
        double mid = 0.5 * (lo + hi);
        if (mid <= lo || mid >= hi || hi - lo <= 2.0 * DBL_EPSILON * hi)
            break;
        if (incomplete_beta(mid, a, b) < alpha)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

double at_binomial_test_half(long k, long n)
{
    if (n < 1 || k < 0 || k > n)
        return NAN;
    /* Under p = 1/2 the distribution is symmetric, so the two-sided p-value (the probability of
     * an outcome no more likely than k) is twice the smaller tail, P(X <= m) with
     * m = min(k, n - k), which is I_{1/2}(n - m, m + 1). */
    long m = k < n - k ? k : n - k;
    double p = 2.0 * incomplete_beta(0.5, (double)(n - m), (double)(m + 1));
    return p < 1.0 ? p : 1.0;
}
