/* standard.c: standard (non-adversarial) training: minimise the cross-entropy of the clean
 * batch, batch norm in train mode. */
#include "train/method.h"

static int standard_step(at_method_ctx *c, const at_batch *b, double *loss)
{
    int status = at_forward(c->train, b->x, b->n, AT_BN_TRAIN);
    if (status)
        return status;
    *loss = at_method_ce(c, b, at_pass_logits(c->train), c->dlogits);
    return at_backward(c->train, c->dlogits, AT_GRAD_WEIGHTS);
}

const at_method at_method_standard = {
    .name = "standard",
    .row_draws = true,
    .description = "clean training: cross-entropy on unperturbed batches",
    .step = standard_step,
};
