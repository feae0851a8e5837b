/* method.h: a training method is one entry in a table: how one batch becomes a loss and weight
 * gradients. The trainer owns everything else (epochs, data order, schedule, optimiser steps,
 * validation), so a method file holds only what differs between methods. */
#ifndef AT_METHOD_H
#define AT_METHOD_H

#include "advtrain.h"

typedef struct at_method_ctx {
    at_model *model;
    at_pass *pass;            /* planned for the training batch size */
    const at_train_config *config;
    at_rng *rng;              /* this epoch's stream for the method's own randomness */
    float *dlogits;           /* [batch, classes] scratch */
    int num_classes;
} at_method_ctx;

typedef struct at_method {
    const char *name;
    const char *description;
    /* Accumulates the weight gradients of one batch into the (zeroed) model gradients and
     * reports the batch's mean training loss and number of correct predictions. */
    int (*step)(at_method_ctx *ctx, const float *x, const int32_t *y, int n, double *loss,
                int *correct);
} at_method;

const at_method *at_method_find(const char *name);

#endif
