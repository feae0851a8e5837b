/* fuzz_model.h: the small model the checkpoint harness loads into and the corpus generator saves:
 * a convolution, batch norm (with its I64 num_batches_tracked), ReLU and a linear layer on 1x4x4
 * inputs, so a valid checkpoint of it is a few hundred bytes. */
#ifndef ADVTRAIN_FUZZ_MODEL_H
#define ADVTRAIN_FUZZ_MODEL_H

#include "advtrain.h"

int fuzz_model_create(at_model **out, at_error *err);

#endif
