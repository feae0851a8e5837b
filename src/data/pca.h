/* pca.h: principal components of a data set's images (pixels as floats in [0,1]), the space in
 * which the generator of gmm.c fits its mixtures. */
#ifndef AT_PCA_H
#define AT_PCA_H

#include "advtrain.h"

typedef struct at_pca {
    int d, k;          /* pixels per image, components kept */
    float *mean;       /* [d] */
    float *basis;      /* [d, k]: column j is the j-th principal direction, unit length */
    double *variance;  /* [k]: the variance along each direction, descending */
    double total;      /* the total variance (trace of the covariance) */
} at_pca;

/* The mean and the top k eigenvectors of the covariance of ds's images. Each direction's sign is
 * fixed so that its largest entry is positive, so the basis does not depend on the LAPACK build. */
int at_pca_fit(at_pca *out, const at_dataset *ds, int k, at_error *err);
void at_pca_free(at_pca *p);
/* z[n, k]: the coordinates (x - mean) U of every image of ds. */
int at_pca_project(const at_pca *p, const at_dataset *ds, float *z, at_error *err);

#endif
