/* aux_net.c: a network a method trains beside the classifier (FGSM-SDI's generator, InfoAT's
 * critic). The method builds its small model in code; this file gives it an optimiser of its
 * own, a pass, and a place in the run's checkpoint: every tensor under "<role>.<name>", its
 * optimiser's buffers under "<role>.optimizer.<state>.<name>" and Adam's step count under
 * "<role>.optimizer.step", so a resumed run continues the auxiliary network exactly as it
 * continues the classifier. */
#include "train/method.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

enum { NAME_CAP = 192 };

struct at_aux_net {
    char role[32];
    at_model *model;
    at_optimizer *optimizer;
    at_pass *pass;
    int n_state;
    at_st_tensor *state;      /* what the checkpoint holds, data pointing into the model */
    char (*names)[NAME_CAP];
    int64_t saved_steps;      /* the step count as the checkpoint writes it */
};

void at_aux_net_free(at_aux_net *a)
{
    if (!a)
        return;
    at_pass_free(a->pass);
    at_optimizer_free(a->optimizer);
    at_model_free(a->model);
    at_free(a->state);
    at_free(a->names);
    at_free(a);
}

static void add_entry(at_aux_net *a, const char *dtype, int ndim, const int64_t *shape,
                      const void *data, size_t nbytes)
{
    at_st_tensor *t = &a->state[a->n_state++];
    t->name = a->names[a->n_state - 1];
    t->dtype = dtype;
    t->ndim = ndim;
    for (int d = 0; d < ndim; d++)
        t->shape[d] = shape[d];
    t->data = data;
    t->nbytes = nbytes;
}

/* The list of checkpoint tensors, made once: the data pointers stay valid for the run. */
static int list_state(at_aux_net *a, at_error *err)
{
    const int tensors = at_model_tensor_count(a->model), states = at_optimizer_state_count(a->optimizer);
    const int cap = tensors * (1 + states) + 1;
    a->state = at_alloc((size_t)cap * sizeof *a->state);
    a->names = at_alloc((size_t)cap * sizeof *a->names);
    if (!a->state || !a->names)
        return at_fail(err, AT_ERR_NOMEM, "out of memory for the %s's state", a->role);
    size_t n_params;
    const float *params = at_model_params(a->model, &n_params);
    for (int i = 0; i < tensors; i++) {
        const at_tensor_info t = at_model_tensor(a->model, i);
        const bool i64 = t.dtype == AT_I64;
        snprintf(a->names[a->n_state], NAME_CAP, "%s.%s", a->role, t.name);
        add_entry(a, i64 ? "I64" : "F32", t.ndim, t.shape,
                  i64 ? (const void *)t.data_i64 : (const void *)t.data,
                  t.numel * (i64 ? sizeof(int64_t) : sizeof(float)));
        for (int s = 0; t.is_param && s < states; s++) {
            const at_optimizer_state_info info = at_optimizer_state(a->optimizer, s);
            snprintf(a->names[a->n_state], NAME_CAP, "%s.optimizer.%s.%s", a->role, info.name,
                     t.name);
            add_entry(a, "F32", t.ndim, t.shape, info.data + (t.data - params),
                      t.numel * sizeof(float));
        }
    }
    if (at_optimizer_steps(a->optimizer) >= 0) {
        snprintf(a->names[a->n_state], NAME_CAP, "%s.optimizer.step", a->role);
        add_entry(a, "I64", 0, NULL, &a->saved_steps, sizeof a->saved_steps);
    }
    return AT_OK;
}

int at_aux_net_create(at_aux_net **out, const char *role, at_model *model,
                      const at_optimizer_options *options, int max_batch, at_error *err)
{
    *out = NULL;
    at_aux_net *a = at_alloc(sizeof *a);
    if (!a) {
        at_model_free(model);
        return at_fail(err, AT_ERR_NOMEM, "out of memory");
    }
    snprintf(a->role, sizeof a->role, "%s", role);
    a->model = model;
    int status = at_optimizer_create(&a->optimizer, model, options, err);
    if (!status)
        status = at_pass_create(&a->pass, model, max_batch, 0, err);
    if (!status)
        status = list_state(a, err);
    if (status) {
        at_aux_net_free(a);
        return status;
    }
    *out = a;
    return AT_OK;
}

at_model *at_aux_net_model(const at_aux_net *a) { return a->model; }
at_pass *at_aux_net_pass(const at_aux_net *a) { return a->pass; }

void at_aux_net_step(at_aux_net *a, float lr)
{
    at_optimizer_step(a->optimizer, lr);
    at_model_zero_grad(a->model);
}

int at_aux_net_state(at_aux_net *a, at_st_tensor *out, int cap)
{
    a->saved_steps = at_optimizer_steps(a->optimizer);
    const int n = cap <= 0 ? 0 : a->n_state < cap ? a->n_state : cap;
    memcpy(out, a->state, (size_t)n * sizeof *out);
    return n;
}

int at_aux_net_state_count(const at_aux_net *a) { return a->n_state; }

int at_aux_net_restore(at_aux_net *a, const at_safetensors *st, at_error *err)
{
    /* check everything before changing anything: a failed restore leaves the network as it was */
    for (int i = 0; i < a->n_state; i++) {
        const at_st_tensor *want = &a->state[i], *got = at_st_find(st, want->name);
        if (!got)
            return at_fail(err, AT_ERR_NOTFOUND, "the checkpoint has no %s", want->name);
        bool same = !strcmp(got->dtype, want->dtype) && got->ndim == want->ndim &&
                    got->nbytes == want->nbytes;
        for (int d = 0; same && d < want->ndim; d++)
            same = got->shape[d] == want->shape[d];
        if (!same)
            return at_fail(err, AT_ERR_SHAPE, "the checkpoint's %s does not match the %s (%s)",
                           want->name, a->role, want->dtype);
        for (size_t j = 0; !strcmp(want->dtype, "F32") && j < want->nbytes / sizeof(float); j++) {
            float v;
            memcpy(&v, (const char *)got->data + j * sizeof v, sizeof v);
            if (!isfinite(v))
                return at_fail(err, AT_ERR_NUMERIC, "the checkpoint's %s holds a non-finite "
                               "value at index %zu", want->name, j);
        }
    }
    for (int i = 0; i < a->n_state; i++) {
        const at_st_tensor *want = &a->state[i];
        memcpy((void *)want->data, at_st_find(st, want->name)->data, want->nbytes);
    }
    if (at_optimizer_steps(a->optimizer) >= 0)
        return at_optimizer_set_steps(a->optimizer, a->saved_steps, err);
    return AT_OK;
}

int at_method_add_aux(at_method_ctx *ctx, const char *role, at_model *model,
                      const at_optimizer_options *options, int max_batch, at_aux_net **out,
                      at_error *err)
{
    *out = NULL;
    if (ctx->n_aux >= AT_MAX_AUX_NETS) {
        at_model_free(model);
        return at_fail(err, AT_ERR_STATE, "too many auxiliary networks");
    }
    int status = at_aux_net_create(out, role, model, options, max_batch, err);
    if (!status)
        ctx->aux[ctx->n_aux++] = *out;
    return status;
}
