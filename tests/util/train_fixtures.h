/* train_fixtures.h: what the training-method tests share: a small learnable data set, a small
 * MLP for it, a short training configuration, and a run that returns the trained weights. */
#ifndef AT_TEST_TRAIN_FIXTURES_H
#define AT_TEST_TRAIN_FIXTURES_H

#include "advtrain.h"

enum { BANDS_HW = 8, BANDS_K = 4 };

/* n images of 1x8x8; class k has a bright band in row block k, plus noise. Free with
 * bands_free. */
at_dataset bands_data(int n, uint64_t seed);
void bands_free(at_dataset *d);
/* mlp-16 for the bands. */
at_model *bands_mlp(uint64_t seed);
/* 2 epochs, batch 16, cosine lr 0.1, momentum 0.9, wd 5e-4, seed 3; eps 0.05 unless standard. */
at_train_config bands_config(const char *method);
/* Trains a fresh bands_mlp(1) with cfg; returns its parameters (malloc'd) and their count, or
 * NULL when the trainer refused the configuration (its message on stderr). */
float *bands_train(const at_train_config *cfg, const at_dataset *train, size_t *count);
/* The same run on a given model (freed here). */
float *train_model(at_model *m, const at_train_config *cfg, const at_dataset *train,
                   size_t *count);
/* conv 3x3 (2 channels, seed 5) -> relu -> maxpool 2 -> flatten -> linear 3, on 1x6x6 inputs:
 * nodes 1 conv, 2 relu, 3 maxpool, 4 flatten, 5 linear. */
at_model *small_conv_model(void);

/* One SGD step of learning rate 1 done by hand on m (its gradients in place) against a trainer's
 * result: the largest |theta - grad - trained| over the parameters, and in *largest the largest
 * |grad| (so a test can tell the step was not empty). */
double sgd_step_gap(at_model *m, const float *trained, double *largest);

#endif
