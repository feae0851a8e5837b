/* adam.c: Adam (Kingma and Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015,
 * Algorithm 1) and AdamW (Loshchilov and Hutter, "Decoupled Weight Decay Regularization", ICLR
 * 2019, Algorithm 2), step for step as torch.optim.Adam and torch.optim.AdamW of PyTorch 1.13
 * with amsgrad off. At step t = 1, 2, ... with gradient g:
 *   Adam:  g = g + wd * w                 (coupled: weight decay is part of the gradient)
 *   AdamW: w = w * (1 - lr * wd)          (decoupled: the decay bypasses the moments; PyTorch's
 *                                          lr * wd is the paper's schedule multiplier times lambda)
 *   m = beta1 * m + (1 - beta1) * g       ("exp_avg", starts at 0)
 *   v = beta2 * v + (1 - beta2) * g * g   ("exp_avg_sq", starts at 0)
 *   w = w - lr * m_hat / (sqrt(v_hat) + eps), m_hat = m / (1 - beta1^t), v_hat = v / (1 - beta2^t)
 * The last line is computed as PyTorch computes it, so that the results agree to the rounding:
 *   step_size = lr / (1 - beta1^t),  denom = sqrt(v) / sqrt(1 - beta2^t) + eps,
 *   w = w + (-step_size * m) / denom,
 * the scalars in double precision (PyTorch's Python floats) and rounded once to float, the
 * per-element arithmetic in float in PyTorch's order. */
#include "train/optimizer.h"

#include <math.h>

static int adam_check(const at_optimizer_options *o, at_error *err)
{
    if (!(o->beta1 >= 0.0 && o->beta1 < 1.0))
        return at_fail(err, AT_ERR_ARG, "beta1 %g out of range [0, 1)", o->beta1);
    if (!(o->beta2 >= 0.0 && o->beta2 < 1.0))
        return at_fail(err, AT_ERR_ARG, "beta2 %g out of range [0, 1)", o->beta2);
    /* PyTorch accepts 0, but then a parameter whose gradients were all zero divides 0 by 0 */
    if (!(o->eps > 0.0 && isfinite(o->eps)))
        return at_fail(err, AT_ERR_ARG, "Adam's eps %g must be > 0", o->eps);
    return AT_OK;
}

static void adam_update(at_optimizer *opt, float lr, bool decoupled)
{
    const at_optimizer_options *o = &opt->options;
    float *w = at_model_params(opt->model, NULL);
    const float *grad = at_model_grads(opt->model, NULL);
    float *m = opt->state[0], *v = opt->state[1];
    const double t = (double)opt->steps;
    const double bias_correction1 = 1.0 - pow(o->beta1, t);
    const double bias_correction2 = 1.0 - pow(o->beta2, t);
    const float neg_step_size = (float)-(lr / bias_correction1);
    const float bias_correction2_sqrt = (float)sqrt(bias_correction2);
    const float beta1 = (float)o->beta1, one_minus_beta1 = (float)(1.0 - o->beta1);
    const float beta2 = (float)o->beta2, one_minus_beta2 = (float)(1.0 - o->beta2);
    const float eps = (float)o->eps, wd = (float)o->weight_decay;
    const float shrink = (float)(1.0 - (double)lr * o->weight_decay);
    const bool coupled = !decoupled && o->weight_decay != 0.0;
    const long count = (long)opt->count;
#pragma omp parallel for schedule(static)
    for (long i = 0; i < count; i++) {
        float g = grad[i];
        if (decoupled)
            w[i] *= shrink;
        else if (coupled)
            g = g + wd * w[i];
        m[i] = m[i] * beta1 + one_minus_beta1 * g;
        v[i] = v[i] * beta2 + one_minus_beta2 * g * g;
        const float denom = sqrtf(v[i]) / bias_correction2_sqrt + eps;
        w[i] = w[i] + neg_step_size * m[i] / denom;
    }
}

static void adam_step(at_optimizer *opt, float lr) { adam_update(opt, lr, false); }
static void adamw_step(at_optimizer *opt, float lr) { adam_update(opt, lr, true); }

const at_optimizer_algo at_optimizer_adam = {
    .kind = AT_OPTIMIZER_ADAM,
    .name = "adam",
    .uses = AT_OPT_USES_MOMENTS,
    .state = {"exp_avg", "exp_avg_sq"},
    .n_state = 2,
    .counts_steps = true,
    .check = adam_check,
    .step = adam_step,
};

const at_optimizer_algo at_optimizer_adamw = {
    .kind = AT_OPTIMIZER_ADAMW,
    .name = "adamw",
    .uses = AT_OPT_USES_MOMENTS,
    .state = {"exp_avg", "exp_avg_sq"},
    .n_state = 2,
    .counts_steps = true,
    .check = adam_check,
    .step = adamw_step,
};
