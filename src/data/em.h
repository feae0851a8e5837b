/* em.h: a mixture of Gaussians with diagonal covariances fitted to points by expectation-
 * maximisation, one per class in the generator of gmm.c. */
#ifndef AT_EM_H
#define AT_EM_H

#include "advtrain.h"

typedef struct at_mixture {
    int m, k;          /* components, dimensions */
    double *weight;    /* [m], summing to 1 */
    double *mean;      /* [m, k] */
    double *var;       /* [m, k] */
} at_mixture;

/* Fits mix (m, k and the arrays set by the caller) to the n points z[n, k] (n >= m): k-means++
 * centres as the starting means, then `iterations` EM steps. loglik[t] (iterations + 1 values)
 * gets the total log-likelihood of the points after t steps. Every draw comes from rng. */
int at_em_fit(at_mixture *mix, const float *z, int n, int iterations, at_rng *rng,
              double *loglik, at_error *err);

#endif
