/* standard.c: standard (non-adversarial) training: minimise the cross-entropy of the clean
 * batch, batch norm in train mode. */
#include "train/method.h"

static int standard_step(at_method_ctx *c, const float *x, const int32_t *y, int n, double *loss,
                         int *correct)
{
    int status = at_forward(c->train, x, n, AT_BN_TRAIN);
    if (status)
        return status;
    const float *logits = at_pass_logits(c->train);
    *loss = at_loss_cross_entropy(logits, n, c->num_classes, &(at_ce_target){.labels = y}, NULL,
                                  c->dlogits);
    *correct = at_count_correct(logits, n, c->num_classes, y, NULL);
    return at_backward(c->train, c->dlogits, AT_GRAD_WEIGHTS);
}

const at_method at_method_standard = {
    .name = "standard",
    .description = "clean training: cross-entropy on unperturbed batches",
    .step = standard_step,
};
