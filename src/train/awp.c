/* awp.c: adversarial weight perturbation (Wu, Xia and Wang, "Adversarial Weight Perturbation
 * Helps Robust Generalization", NeurIPS 2020, eq. 7-9, as in the authors' code): a proxy copy of
 * the weights takes one plain SGD step on minus the method's loss (an ascent step); for every
 * weight tensor of two or more dimensions, v_l = d_l ||w_l|| / ||d_l|| with d_l the proxy's
 * change; the model trains at w + gamma v and the perturbation is removed after the step. */
#include "train/method.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct at_awp {
    at_model *proxy;
    at_pass *pass[2];
    float *v;          /* gamma v, laid out like the parameter slab */
    float gamma, proxy_lr;
    bool applied;
};

int at_awp_create(at_awp **out, at_model *model, int batch, float gamma, float proxy_lr,
                  at_error *err)
{
    *out = NULL;
    at_awp *a = at_alloc(sizeof *a);
    if (!a)
        return at_fail(err, AT_ERR_NOMEM, "out of memory");
    a->gamma = gamma;
    a->proxy_lr = proxy_lr;
    char *spec = at_model_spec(model);
    int status = spec ? at_model_create_from_spec(&a->proxy, spec, err) : AT_ERR_NOMEM;
    free(spec);
    size_t count;
    at_model_params(model, &count);
    if (!status)
        status = at_pass_create(&a->pass[0], a->proxy, batch, 0, err);
    if (!status)
        status = at_pass_create(&a->pass[1], a->proxy, batch, 0, err);
    if (!status && !(a->v = at_alloc(count * sizeof(float))))
        status = at_fail(err, AT_ERR_NOMEM, "out of memory for the weight perturbation");
    if (status) {
        at_awp_free(a);
        return status;
    }
    *out = a;
    return AT_OK;
}

void at_awp_free(at_awp *a)
{
    if (!a)
        return;
    at_pass_free(a->pass[0]);
    at_pass_free(a->pass[1]);
    at_model_free(a->proxy);
    at_free(a->v);
    at_free(a);
}

at_model *at_awp_proxy(at_awp *a) { return a->proxy; }
at_pass *at_awp_pass(at_awp *a, int which) { return a->pass[which]; }
bool at_awp_active(const at_awp *a) { return a && a->applied; }

int at_awp_begin(at_awp *a, at_model *model)
{
    int status = at_model_copy_weights(a->proxy, model, NULL);
    at_model_zero_grad(a->proxy);
    return status;
}

void at_awp_perturb(at_awp *a, at_model *model)
{
    float *p = at_model_params(a->proxy, NULL);
    const float *g = at_model_grads(a->proxy, NULL);
    float *w = at_model_params(model, NULL);
    size_t count;
    at_model_params(model, &count);
    /* the proxy's ascent step: SGD on -loss */
    for (size_t i = 0; i < count; i++)
        p[i] += a->proxy_lr * g[i];
    memset(a->v, 0, count * sizeof(float));
    for (int t = 0; t < at_model_tensor_count(model); t++) {
        at_tensor_info info = at_model_tensor(model, t);
        if (!info.is_param || info.ndim < 2)
            continue; /* biases and batch-norm parameters are not perturbed */
        size_t off = (size_t)(info.data - w);
        double wn = 0.0, dn = 0.0;
        for (size_t j = 0; j < info.numel; j++) {
            double d = (double)p[off + j] - w[off + j];
            wn += (double)w[off + j] * w[off + j];
            dn += d * d;
        }
        double scale = a->gamma * sqrt(wn) / (sqrt(dn) + 1e-20);
        for (size_t j = 0; j < info.numel; j++)
            a->v[off + j] = (float)(scale * ((double)p[off + j] - w[off + j]));
    }
    for (size_t i = 0; i < count; i++)
        w[i] += a->v[i];
    a->applied = true;
}

void at_awp_restore(at_awp *a, at_model *model)
{
    if (!a->applied)
        return;
    size_t count;
    float *w = at_model_params(model, &count);
    for (size_t i = 0; i < count; i++)
        w[i] -= a->v[i];
    a->applied = false;
}

int at_awp_setup(at_method_ctx *c, int first, float proxy_lr, at_error *err)
{
    const bool on = c->opt[first] != 0.0;
    if (!on && (c->opt_given[first + 1] || c->opt_given[first + 2]))
        return at_fail(err, AT_ERR_ARG, "awp-gamma and awp-warmup need --awp");
    if (!on)
        return AT_OK;
    return at_awp_create(&c->awp, c->model, c->batch, (float)c->opt[first + 1], proxy_lr, err);
}

/* The preset warm-up also waits for the network to leave chance: in the epoch before, a training
 * accuracy of at least 1.5 / classes (the tool's stall threshold) and a training loss below
 * ln(classes), the cross-entropy of a uniform guess. A perturbation of every layer towards a
 * higher loss, on a network still at that guess, can hold it there for the whole run (SmallCNN on
 * Fashion-MNIST after a 25-step warm-up epoch with 16% accuracy at loss 2.31: 9.0% clean test
 * accuracy after 50 steps, plain PGD-AT 25.3%; docs/RESULTS.md). An --awp-warmup given is the
 * schedule as given. */
bool at_awp_now(const at_method_ctx *c, int first)
{
    if (!c->awp || c->epoch < (int)c->opt[first + 2])
        return false;
    return c->opt_given[first + 2] || (c->last_train_acc >= 1.5 / c->num_classes &&
                                       c->last_train_loss >= 0.0 &&
                                       c->last_train_loss < log((double)c->num_classes));
}
