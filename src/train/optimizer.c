/* optimizer.c: the table of optimisers, and what every kind shares: the options checked once,
 * the state buffers (one per name, laid out like the parameter slab, zero at the start as
 * PyTorch's lazily created state is), the step count, and copies of the state for a roll-back. */
#include "train/optimizer.h"

#include <math.h>
#include <string.h>

extern const at_optimizer_algo at_optimizer_sgd, at_optimizer_adam, at_optimizer_adamw;

/* In the order of at_optimizer_kind. */
static const at_optimizer_algo *const optimizer_table[] = {
    &at_optimizer_sgd, &at_optimizer_adam, &at_optimizer_adamw,
};
#define N_OPTIMIZERS (int)(sizeof optimizer_table / sizeof optimizer_table[0])

static const at_optimizer_algo *find(at_optimizer_kind kind)
{
    for (int i = 0; i < N_OPTIMIZERS; i++)
        if (optimizer_table[i]->kind == kind)
            return optimizer_table[i];
    return NULL;
}

const char *at_optimizer_kind_name(at_optimizer_kind kind)
{
    const at_optimizer_algo *a = find(kind);
    return a ? a->name : "unknown";
}

at_optimizer_options at_optimizer_defaults(at_optimizer_kind kind)
{
    at_optimizer_options o = {.kind = kind};
    if (kind == AT_OPTIMIZER_ADAM || kind == AT_OPTIMIZER_ADAMW) {
        o.beta1 = 0.9;
        o.beta2 = 0.999;
        o.eps = 1e-8;
    }
    if (kind == AT_OPTIMIZER_ADAMW)
        o.weight_decay = 1e-2;
    return o;
}

/* A field the kind does not read is an error, never silently ignored. */
static int check_options(const at_optimizer_algo *a, const at_optimizer_options *o, at_error *err)
{
    if (!(o->weight_decay >= 0.0 && isfinite(o->weight_decay)))
        return at_fail(err, AT_ERR_ARG, "weight decay %g must be >= 0", o->weight_decay);
    const struct { bool set; unsigned use; const char *what; } fields[] = {
        {o->momentum != 0.0, AT_OPT_USES_MOMENTUM, "momentum"},
        {o->nesterov, AT_OPT_USES_MOMENTUM, "Nesterov momentum"},
        {o->beta1 != 0.0, AT_OPT_USES_MOMENTS, "beta1"},
        {o->beta2 != 0.0, AT_OPT_USES_MOMENTS, "beta2"},
        {o->eps != 0.0, AT_OPT_USES_MOMENTS, "eps"},
    };
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        if (fields[i].set && !(a->uses & fields[i].use))
            return at_fail(err, AT_ERR_ARG, "optimizer %s does not use %s", a->name, fields[i].what);
    return a->check ? a->check(o, err) : AT_OK;
}

int at_optimizer_create(at_optimizer **out, at_model *model, const at_optimizer_options *options,
                        at_error *err)
{
    *out = NULL;
    const at_optimizer_algo *a = find(options->kind);
    if (!a)
        return at_fail(err, AT_ERR_ARG, "unknown optimizer kind %d", (int)options->kind);
    int status = check_options(a, options, err);
    if (status)
        return status;
    at_optimizer *o = at_alloc(sizeof *o);
    if (!o)
        return at_fail(err, AT_ERR_NOMEM, "out of memory");
    o->algo = a;
    o->model = model;
    o->options = *options;
    at_model_params(model, &o->count);
    for (int s = 0; s < a->n_state && o->count; s++)
        if (!(o->state[s] = at_alloc(o->count * sizeof(float)))) {
            at_optimizer_free(o);
            return at_fail(err, AT_ERR_NOMEM, "out of memory for the optimizer's %s", a->state[s]);
        }
    *out = o;
    return AT_OK;
}

void at_optimizer_free(at_optimizer *opt)
{
    if (!opt)
        return;
    for (int s = 0; s < AT_OPTIMIZER_MAX_STATE; s++)
        at_free(opt->state[s]);
    at_free(opt);
}

const at_optimizer_options *at_optimizer_get_options(const at_optimizer *opt)
{
    return &opt->options;
}

void at_optimizer_step(at_optimizer *opt, float lr)
{
    if (opt->algo->counts_steps)
        opt->steps++;
    opt->algo->step(opt, lr);
}

int at_optimizer_state_count(const at_optimizer *opt) { return opt->algo->n_state; }

at_optimizer_state_info at_optimizer_state(at_optimizer *opt, int index)
{
    if (index < 0 || index >= opt->algo->n_state)
        return (at_optimizer_state_info){NULL, NULL, 0};
    return (at_optimizer_state_info){opt->algo->state[index], opt->state[index], opt->count};
}

int64_t at_optimizer_steps(const at_optimizer *opt)
{
    return opt->algo->counts_steps ? opt->steps : -1;
}

int at_optimizer_set_steps(at_optimizer *opt, int64_t steps, at_error *err)
{
    if (!opt->algo->counts_steps)
        return at_fail(err, AT_ERR_ARG, "optimizer %s keeps no step count", opt->algo->name);
    if (steps < 0)
        return at_fail(err, AT_ERR_ARG, "step count %lld must be >= 0", (long long)steps);
    opt->steps = steps;
    return AT_OK;
}

int at_optimizer_copy_state(at_optimizer *dst, const at_optimizer *src, at_error *err)
{
    if (dst->algo != src->algo || dst->count != src->count)
        return at_fail(err, AT_ERR_ARG, "cannot copy the state of optimizer %s over %zu parameters "
                       "to optimizer %s over %zu", src->algo->name, src->count, dst->algo->name,
                       dst->count);
    for (int s = 0; s < src->algo->n_state && src->count; s++)
        memcpy(dst->state[s], src->state[s], src->count * sizeof(float));
    dst->steps = src->steps;
    return AT_OK;
}
