/* loss.h: the batch-mean losses of advtrain.h for rows that are a shard of a larger batch (data
 * parallelism): n rows given, the mean over `total` rows (total >= n; NAN or AT_ERR_ARG
 * otherwise), so that the shards' losses and gradients sum to those of the whole batch. With
 * total = n each is the public function, bit for bit. */
#ifndef AT_TRAIN_LOSS_H
#define AT_TRAIN_LOSS_H

#include "advtrain.h"

float at_loss_kl_shard(const float *logits_p, const float *logits_q, int n, int total, int k,
                       const float *weights, float *per_example, float *dlogits_p,
                       float *dlogits_q);
int at_loss_gram_shard(const float *features, const float *target_gram, int n, int total,
                       int channels, int positions, float weight, float *loss, float *per_example,
                       float *grad, at_error *err);
float at_loss_feature_distance_shard(const float *features, const float *target, int n, int total,
                                     size_t per_example_size, float weight, float *per_example,
                                     float *grad);

#endif
