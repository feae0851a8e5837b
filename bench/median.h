/* median.h: the median of repeated timings, shared by the bench programs (header only). */
#ifndef ADVTRAIN_BENCH_MEDIAN_H
#define ADVTRAIN_BENCH_MEDIAN_H

#include <stdlib.h>

static int compare_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Sorts t[0..n) in place and returns its median. */
static double median_of(double *t, int n)
{
    qsort(t, (size_t)n, sizeof *t, compare_double);
    return n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
}

#endif
