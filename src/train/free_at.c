/* free_at.c: adversarial training for free (Shafahi et al., NeurIPS 2019, Algorithm 1): each
 * minibatch is replayed m times; every replay is one forward of clip(x + delta, 0, 1) in train
 * mode and ONE backward that gives both the weight gradient (for the optimiser step) and the
 * input gradient, with which the persistent perturbation moves: delta <- clip(delta + eps
 * sign(g), -eps, eps). delta is never reset: slot i carries over to the i-th image of the next
 * minibatch. The trainer runs epochs / m passes over the data, so the number of optimiser steps
 * equals that of `epochs` epochs of standard training. */
#include "train/method.h"

#include "attack/attack.h"

enum { REPLAYS };
static const at_option_info free_at_options[] = {
    [REPLAYS] = {"replays", AT_OPTION_INT, 1, 64, NULL, "8",
                 "times each minibatch is replayed, m (epochs must be a multiple)"},
};

static int free_at_setup(at_method_ctx *c, at_error *err)
{
    const int m = (int)c->opt[REPLAYS], epochs = c->config->epochs;
    if (epochs % m != 0)
        return at_fail(err, AT_ERR_ARG,
                       "free-at replays each minibatch %d times and runs epochs / %d passes: "
                       "epochs (%d) must be a multiple of %d", m, m, epochs, m);
    c->replays = m;
    return AT_OK;
}

static int free_at_step(at_method_ctx *c, const at_batch *b, double *loss)
{
    const float *x = b->x;
    const int n = b->n;
    const size_t count = (size_t)n * c->image;
    /* x + delta projected to [0,1]; delta itself stays in the eps-ball */
    for (size_t j = 0; j < count; j++) {
        float v = x[j] + c->delta[j];
        c->x_adv[j] = v < 0.0f ? 0.0f : (v > 1.0f ? 1.0f : v);
    }
    int status = at_forward(c->train, c->x_adv, n, AT_BN_TRAIN);
    if (status)
        return status;
    *loss = at_method_ce(c, b, at_pass_logits(c->train), c->dlogits);
    if ((status = at_backward(c->train, c->dlogits, AT_GRAD_WEIGHTS | AT_GRAD_INPUT)))
        return status;
    at_attack_direction(c->config->norm, at_pass_input_grad(c->train), c->dir, n, c->image);
    /* delta moves by eps along the direction and back onto the eps-ball around 0 */
    for (int i = 0; i < n; i++) {
        const float eps = b->eps ? b->eps[i] : c->eps;
        float *d = c->delta + (size_t)i * c->image;
        const float *dir = c->dir + (size_t)i * c->image;
        for (size_t j = 0; j < c->image; j++)
            d[j] += eps * dir[j];
        if (c->config->norm == AT_NORM_LINF) {
            for (size_t j = 0; j < c->image; j++)
                d[j] = d[j] < -eps ? -eps : (d[j] > eps ? eps : d[j]);
        } else {
            double l2 = at_norm_of(AT_NORM_L2, d, c->image);
            float scale = l2 > eps ? (float)(eps / l2) : 1.0f;
            for (size_t j = 0; j < c->image; j++)
                d[j] *= scale;
        }
    }
    return AT_OK;
}

const at_method at_method_free_at = {
    .name = "free-at",
    .row_draws = true,
    .description = "free adversarial training: m replays per minibatch, persistent perturbation, "
                   "one backward (Shafahi et al., 2019)",
    .uses = AT_USES_EPS,
    .options = free_at_options,
    .n_options = AT_OPTION_LEN(free_at_options),
    .setup = free_at_setup,
    .step = free_at_step,
};
