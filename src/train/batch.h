/* batch.h: composing what one training step sees (batch.c). A batch is laid out as
 *
 *   [ real rows: K repetition groups of D images ][ E extra rows ][ O out-of-distribution rows ]
 *
 * Real images come from the training set (or the coreset pool) in the epoch's shuffled order;
 * each of the K groups holds the same D images, augmented independently (batch repetition,
 * Rebuffi et al. 2021); CutMix mixes within each group and within the extra rows; extra rows
 * come from a second data set with smoothed labels (Gowal et al. 2021); OOD rows have uniform
 * targets and their own loss weight (Lee et al. 2021). With none of these, a batch is the plain
 * minibatch of the epoch's order, the last one partial. */
#ifndef AT_BATCH_H
#define AT_BATCH_H

#include "train/method.h"

typedef struct at_batch_maker at_batch_maker;

int at_batch_maker_create(at_batch_maker **out, const at_dataset *train,
                          const at_train_config *c, int num_classes, at_error *err);
void at_batch_maker_free(at_batch_maker *m);
/* Optimiser steps of an epoch (over the current pool), and the most rows a batch can have. */
long at_batch_steps(const at_batch_maker *m);
int at_batch_rows(const at_batch_maker *m);
/* In-distribution rows of an epoch (its images, repeats and extra rows counted). */
long at_batch_epoch_images(const at_batch_maker *m);

/* Trains on a weighted subset from now on (indices into the training set, ascending; weights
 * > 0), or on the whole set again with count 0. */
int at_batch_set_pool(at_batch_maker *m, const int32_t *indices, const float *weights, int count,
                      at_error *err);
int at_batch_pool(const at_batch_maker *m, const int32_t **indices, const float **weights);

/* Shuffles for epoch `epoch` (0-based) and resets its random streams. */
void at_batch_begin_epoch(at_batch_maker *m, int epoch);
/* Batch b (0-based) of the epoch; the pointers stay valid until the next call. `eps` is the
 * budget of rows without one of their own (extra, OOD, every row unless adaptive). */
void at_batch_make(at_batch_maker *m, long b, float eps, at_batch *out);

/* Adaptive budgets (AT_EPS_ADAPTIVE): after a step, each real image's budget moves by
 * +-rate eps according to correct[row] of its first copy. */
void at_batch_update_budgets(at_batch_maker *m, const uint8_t *correct);
/* The per-image budgets ([N], NULL unless adaptive), for checkpoints. */
float *at_batch_budgets(at_batch_maker *m, int *count);

/* CutMix (Yun et al., ICCV 2019) on rows [0, n) of x (and their target rows `soft`, [n, k]): one
 * lambda ~ Beta(alpha, alpha) (alpha 0: lambda = 1), one box of side sqrt(1 - lambda) per
 * dimension centred uniformly and clipped at the borders, one random pairing; row i gets its
 * partner's box and the targets lambda' t_i + (1 - lambda') t_partner with lambda' the share
 * of the image outside the box; y[i] becomes the label with the larger share. scratch holds n
 * images and n target rows, iscratch 2n integers. */
void at_cutmix(float *x, float *soft, int32_t *y, int n, int k, int c, int h, int w, float alpha,
               at_rng *rng, float *scratch, int32_t *iscratch);

/* Out-of-distribution images (ood.c): n images of the training set's shape into x. */
void at_ood_fill(at_ood_source source, const at_dataset *train, const at_dataset *data, int n,
                 float *x, at_rng *rng);

#endif
