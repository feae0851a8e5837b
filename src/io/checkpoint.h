/* checkpoint.h: what the trainer needs from checkpoint.c beyond the public API. */
#ifndef AT_CHECKPOINT_H
#define AT_CHECKPOINT_H

#include "core/util.h"

/* The weights to fine-tune from: at_checkpoint_load with sgd NULL (an advtrain checkpoint's
 * optimiser and trainer.* tensors passed over, any other tensor the model lacks an error), and a
 * file that describes its model ("model" metadata) must normalise inputs as `model` does. A
 * failed load leaves the model as it was. */
int at_checkpoint_load_init(const char *path, at_model *model, at_error *err);

#endif
