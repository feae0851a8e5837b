/* sgd.c: stochastic gradient descent with momentum, Nesterov momentum and coupled weight decay,
 * step for step as torch.optim.SGD with dampening 0:
 *   g = grad + wd * w
 *   buf = momentum * buf + g            (buf starts at 0, so the first buf is g)
 *   d = nesterov ? g + momentum * buf : buf
 *   w = w - lr * d
 * The state is the momentum buffer ("momentum", kept even when momentum is 0 so that every SGD
 * checkpoint has the same tensors). */
#include "train/optimizer.h"

static int sgd_check(const at_optimizer_options *o, at_error *err)
{
    if (!(o->momentum >= 0.0 && o->momentum < 1.0))
        return at_fail(err, AT_ERR_ARG, "momentum %g out of range [0, 1)", o->momentum);
    if (o->nesterov && o->momentum == 0.0)
        return at_fail(err, AT_ERR_ARG, "Nesterov momentum needs a momentum > 0");
    return AT_OK;
}

static void sgd_step(at_optimizer *opt, float lr)
{
    float *w = at_model_params(opt->model, NULL);
    const float *grad = at_model_grads(opt->model, NULL);
    /* PyTorch rounds its Python-float hyperparameters to the tensor's float32 */
    const float mu = (float)opt->options.momentum, wd = (float)opt->options.weight_decay;
    const bool nesterov = opt->options.nesterov;
    float *buf = opt->state[0];
    const long count = (long)opt->count;
#pragma omp parallel for schedule(static)
    for (long i = 0; i < count; i++) {
        float g = grad[i] + wd * w[i];
        float d = g;
        if (mu != 0.0f) {
            buf[i] = mu * buf[i] + g;
            d = nesterov ? g + mu * buf[i] : buf[i];
        }
        w[i] -= lr * d;
    }
}

const at_optimizer_algo at_optimizer_sgd = {
    .kind = AT_OPTIMIZER_SGD,
    .name = "sgd",
    .uses = AT_OPT_USES_MOMENTUM,
    .state = {"momentum"},
    .n_state = 1,
    .check = sgd_check,
    .step = sgd_step,
};
