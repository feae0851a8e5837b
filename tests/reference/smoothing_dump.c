/* smoothing_dump.c: the statistics of randomized smoothing, for the reference tier to compare
 * with SciPy. Reads queries from stdin, one per line, and prints one value per line (%.17g):
 *
 *   cp K N ALPHA      at_clopper_pearson_lower(K, N, ALPHA)
 *   binom K N         at_binomial_test_half(K, N)
 *   ppf P             at_normal_quantile(P)
 *   rmax SIGMA N A    at_smooth_max_radius(SIGMA, N, A) */
#include "advtrain.h"

#include <stdio.h>
#include <string.h>

int main(void)
{
    char line[256], what[16];
    while (fgets(line, sizeof line, stdin)) {
        long k, n;
        double a, b;
        if (sscanf(line, "%15s", what) != 1)
            continue;
        if (strcmp(what, "cp") == 0 && sscanf(line, "%*s %ld %ld %lf", &k, &n, &a) == 3)
            printf("%.17g\n", at_clopper_pearson_lower(k, n, a));
        else if (strcmp(what, "binom") == 0 && sscanf(line, "%*s %ld %ld", &k, &n) == 2)
            printf("%.17g\n", at_binomial_test_half(k, n));
        else if (strcmp(what, "ppf") == 0 && sscanf(line, "%*s %lf", &a) == 1)
            printf("%.17g\n", at_normal_quantile(a));
        else if (strcmp(what, "rmax") == 0 && sscanf(line, "%*s %lf %ld %lf", &a, &n, &b) == 3)
            printf("%.17g\n", at_smooth_max_radius(a, n, b));
        else {
            fprintf(stderr, "smoothing_dump: cannot read '%s'\n", strtok(line, "\n"));
            return 2;
        }
    }
    return 0;
}
