/* refnet.h: a double-precision reference for every layer kind, evaluating a model's graph with
 * plain loops. Tests compare the engine's float forward with it and take central finite
 * differences of it, in double, to check the engine's backward. */
#ifndef AT_TEST_REFNET_H
#define AT_TEST_REFNET_H

#include "advtrain.h"

#include <stdint.h>

typedef struct refnet {
    const at_model *model;
    double *params;  /* copy of the model's parameter slab */
    double *buffers; /* copy of the float buffers (running statistics) */
    size_t n_params, n_buffers;
} refnet;

/* Copies the model's current parameters and buffers into double arrays. */
int refnet_init(refnet *r, const at_model *m);
void refnet_free(refnet *r);

/* Runs the graph on x [n, c, h, w] in double; logits gets [n, classes]. BN in AT_BN_EVAL uses
 * the copied running statistics, otherwise batch statistics (running statistics are never
 * updated). `pattern` (may be NULL) gets a hash of every ReLU and PReLU sign and max-pool
 * choice, so a caller can tell when a finite-difference step crossed a kink. */
void refnet_forward(const refnet *r, const double *x, int n, at_bn_mode mode, double *logits,
                    uint64_t *pattern);

#endif
