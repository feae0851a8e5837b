/* sgd.c: stochastic gradient descent with momentum, Nesterov momentum and coupled weight decay,
 * step for step as torch.optim.SGD with dampening 0:
 *   g = grad + wd * w
 *   buf = momentum * buf + g            (buf starts at 0, so the first buf is g)
 *   d = nesterov ? g + momentum * buf : buf
 *   w = w - lr * d
 */
#include "core/util.h"

#include <math.h>

struct at_sgd {
    at_model *model;
    at_sgd_options options;
    float *momentum;
    size_t count;
};

int at_sgd_create(at_sgd **out, at_model *model, const at_sgd_options *options, at_error *err)
{
    *out = NULL;
    if (!(options->momentum >= 0.0f && options->momentum < 1.0f))
        return at_fail(err, AT_ERR_ARG, "momentum %g out of range [0, 1)", options->momentum);
    if (!(options->weight_decay >= 0.0f && isfinite(options->weight_decay)))
        return at_fail(err, AT_ERR_ARG, "weight decay %g must be >= 0", options->weight_decay);
    if (options->nesterov && options->momentum == 0.0f)
        return at_fail(err, AT_ERR_ARG, "Nesterov momentum needs a momentum > 0");
    at_sgd *s = at_alloc(sizeof *s);
    if (!s)
        return at_fail(err, AT_ERR_NOMEM, "out of memory");
    s->model = model;
    s->options = *options;
    at_model_params(model, &s->count);
    if (s->count) {
        s->momentum = at_alloc(s->count * sizeof(float));
        if (!s->momentum) {
            at_free(s);
            return at_fail(err, AT_ERR_NOMEM, "out of memory for the momentum buffer");
        }
    }
    *out = s;
    return AT_OK;
}

void at_sgd_free(at_sgd *s)
{
    if (!s)
        return;
    at_free(s->momentum);
    at_free(s);
}

void at_sgd_step(at_sgd *s, float lr)
{
    float *w = at_model_params(s->model, NULL);
    const float *grad = at_model_grads(s->model, NULL);
    const float mu = s->options.momentum, wd = s->options.weight_decay;
    const bool nesterov = s->options.nesterov;
    float *buf = s->momentum;
    const long count = (long)s->count;
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

float *at_sgd_momentum(at_sgd *s, size_t *count)
{
    if (count)
        *count = s->count;
    return s->momentum;
}
