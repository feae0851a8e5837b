/* normal_quantile.c: Phi^-1, the standard normal quantile, which turns a probability bound into a
 * certified radius (Cohen et al. 2019, Theorem 1: R = sigma Phi^-1(p_A)). Acklam's rational
 * approximation (relative error 1.15e-9) gives a start, and Halley steps on Phi(x) - p, with Phi
 * from erfc, take it to double precision. */
#include "core/util.h"

#include <math.h>

/* Acklam's approximation for p <= 1/2 (lower region and the lower half of the central one). */
static double acklam_lower(double p)
{
    static const double a[6] = {-3.969683028665376e+01, 2.209460984245205e+02,
                                -2.759285104469687e+02, 1.383577518672690e+02,
                                -3.066479806614716e+01, 2.506628277459239e+00};
    static const double b[5] = {-5.447609879822406e+01, 1.615858368580409e+02,
                                -1.556989798598866e+02, 6.680131188771972e+01,
                                -1.328068155288572e+01};
    static const double c[6] = {-7.784894002430293e-03, -3.223964580411365e-01,
                                -2.400758277161838e+00, -2.549732539343734e+00,
                                4.374664141464968e+00, 2.938163982698783e+00};
    static const double d[4] = {7.784695709041462e-03, 3.224671290700398e-01,
                                2.445134137142996e+00, 3.754408661907416e+00};
    if (p < 0.02425) {
        double q = sqrt(-2.0 * log(p));
        return (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
               ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1.0);
    }
    double q = p - 0.5, r = q * q;
    return (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q /
           (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1.0);
}

double at_normal_quantile(double p)
{
    if (isnan(p) || p < 0.0 || p > 1.0)
        return NAN;
    if (p == 0.0)
        return -INFINITY;
    if (p == 1.0)
        return INFINITY;
    if (p > 0.5)
        return -at_normal_quantile(1.0 - p); /* 1 - p is exact for p in [1/2, 1] (Sterbenz) */
    /* Work in the lower half, where Phi(x) = erfc(-x / sqrt 2) / 2 keeps its relative accuracy
     * deep into the tail. Halley's step converges cubically; two are plenty from 1e-9. */
    double x = acklam_lower(p);
    for (int it = 0; it < 2; it++) {
        double e = 0.5 * erfc(-x * 0.70710678118654752440) - p;
        double u = e * 2.50662827463100050242 * exp(0.5 * x * x); /* e / phi(x) */
        x -= u / (1.0 + 0.5 * x * u);
    }
    return x;
}
