/* gradcheck.h: checks a model's float forward and backward against the double reference
 * (refnet) and central finite differences of it. */
#ifndef AT_TEST_GRADCHECK_H
#define AT_TEST_GRADCHECK_H

#include "advtrain.h"

typedef enum { GC_LOSS_LINEAR, GC_LOSS_CE } gc_loss;

typedef struct gc_options {
    int n;                 /* batch */
    at_bn_mode mode;
    gc_loss loss;          /* linear: L = sum r_ij logits_ij with random r; or cross-entropy */
    int max_coords;        /* finite differences on at most this many params and inputs each */
    double tol;            /* |analytic - numeric| <= tol * max|numeric| + 1e-6 */
    uint64_t seed;
    bool randomize_params; /* overwrite parameters with N(0, 0.5^2) (BN gammas, biases) */
    bool centered_input;   /* inputs uniform on [-1, 1] instead of [0, 1] (layer tests) */
} gc_options;

typedef struct gc_report {
    double forward_max_err;   /* max |engine - reference| of logits / max |logit| */
    double input_max_err;     /* relative to max |numeric| */
    double weight_max_err;
    int input_checked, weight_checked, skipped;
} gc_report;

/* Returns the number of failures found (0 = pass) and prints each one. */
int gradcheck_model(at_model *m, const gc_options *o, gc_report *report);

#endif
