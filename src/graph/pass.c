/* pass.c: the memory of one forward/backward pass, planned once, and the two walks over the
 * graph (forward in node order, backward in reverse). */
#include "graph/pass.h"

#include <string.h>

/* A node's output gradient is needed when something upstream of it wants a gradient: the input
 * (when the input gradient is asked for) or a parameter (when weight gradients are). */
static bool needs_grad(const at_model *m, int node, unsigned what)
{
    if (what & AT_GRAD_INPUT)
        return true;
    return (what & AT_GRAD_WEIGHTS) && m->nodes[node].has_upstream_params;
}

int at_pass_create(at_pass **out, at_model *m, int max_batch, unsigned flags, at_error *err)
{
    *out = NULL;
    if (!m->finished)
        return at_fail(err, AT_ERR_STATE, "the model is not finished");
    if (max_batch < 1 || max_batch > (1 << 20))
        return at_fail(err, AT_ERR_ARG, "batch size %d out of range 1..%d", max_batch, 1 << 20);
    if (flags & ~(unsigned)(AT_PASS_FORWARD_ONLY | AT_PASS_KEEP_ALL | AT_PASS_NO_WEIGHT_GRADS))
        return at_fail(err, AT_ERR_ARG, "unknown pass flags %#x", flags);
    const int nn = m->n_nodes;
    const int workers = at_max_threads();
    const bool with_grads = !(flags & AT_PASS_FORWARD_ONLY);
    for (int i = 0; i < nn; i++) {
        size_t per;
        if (!at_mul_size(at_shape_numel(m->nodes[i].out), (size_t)max_batch, &per) || per > ((size_t)1 << 40))
            return at_fail(err, AT_ERR_NOMEM, "batch of %d is too large for this model", max_batch);
    }

    /* Size everything first, then make one allocation. */
    at_memory_plan plan;
    if (at_memory_plan_build(&plan, m, max_batch, flags))
        return at_fail(err, AT_ERR_NOMEM, "out of memory planning a pass");
    size_t cache_bytes = 0, scratch = 0, shared = 0;
    for (int i = 1; i < nn; i++) {
        const at_node *node = &m->nodes[i];
        const at_layer_ops *ops = at_layer_ops_of(node->kind);
        at_shape in[2] = {m->nodes[node->inputs[0]].out, {0, 0, 0}};
        if (node->n_inputs > 1)
            in[1] = m->nodes[node->inputs[1]].out;
        if (ops->cache_bytes)
            cache_bytes += (ops->cache_bytes(node, in, max_batch) + 63) & ~(size_t)63;
        if (ops->scratch_floats) {
            size_t s = at_round_floats(ops->scratch_floats(node, in, max_batch));
            if (s > scratch)
                scratch = s;
        }
        if (ops->shared_floats) {
            bool weight_grads = with_grads && !(flags & AT_PASS_NO_WEIGHT_GRADS);
            size_t s = at_round_floats(ops->shared_floats(node, in, max_batch, weight_grads));
            if (s > shared)
                shared = s;
        }
    }
    size_t bytes = (plan.total_floats + scratch * (size_t)workers + shared) * sizeof(float) + cache_bytes;
    size_t table_bytes = (size_t)nn * (3 * sizeof(void *) + sizeof(float *) + sizeof(bool));

    at_pass *p = at_alloc(sizeof *p);
    void *tables = at_alloc(table_bytes);
    void *slab = at_alloc(bytes);
    at_node_hook *hooks = at_alloc((size_t)nn * sizeof *hooks);
    float **saved = at_alloc((size_t)nn * sizeof *saved);
    if (!p || !tables || (bytes && !slab) || !hooks || !saved) {
        at_free(p);
        at_free(tables);
        at_free(slab);
        at_free(hooks);
        at_free(saved);
        at_memory_plan_free(&plan);
        return at_fail(err, AT_ERR_NOMEM, "out of memory planning a pass (%zu MiB)", bytes >> 20);
    }
    p->model = m;
    p->max_batch = max_batch;
    p->flags = flags;
    p->workers = workers;
    p->out = tables;
    p->grad = p->out + nn;
    p->cache = (void **)(p->grad + nn);
    p->perturbation = (const float **)(p->cache + nn);
    p->fused = (bool *)(p->perturbation + nn);
    p->slab = slab;
    p->hooks = hooks;
    p->saved = saved;
    p->plan = plan;
    at_rng_seed(&p->rng, 0);

    float *base = slab;
    for (int i = 0; i < nn; i++) {
        p->out[i] = base + plan.out_offset[i];
        p->grad[i] = plan.grad_offset[i] == SIZE_MAX ? NULL : base + plan.grad_offset[i];
    }
    char *cursor = (char *)(base + plan.total_floats);
    p->scratch = (float *)cursor;
    p->scratch_floats = scratch;
    cursor += scratch * (size_t)workers * sizeof(float);
    p->shared = (float *)cursor;
    cursor += shared * sizeof(float);
    for (int i = 1; i < nn; i++) {
        const at_node *node = &m->nodes[i];
        const at_layer_ops *ops = at_layer_ops_of(node->kind);
        at_shape in[2] = {m->nodes[node->inputs[0]].out, {0, 0, 0}};
        if (node->n_inputs > 1)
            in[1] = m->nodes[node->inputs[1]].out;
        size_t cb = ops->cache_bytes ? (ops->cache_bytes(node, in, max_batch) + 63) & ~(size_t)63 : 0;
        p->cache[i] = cb ? cursor : NULL;
        cursor += cb;
    }
    *out = p;
    return AT_OK;
}

void at_pass_free(at_pass *p)
{
    if (!p)
        return;
    at_free(p->slab);
    at_free(p->out);
    for (int i = 0; i < p->model->n_nodes; i++)
        at_free(p->saved[i]);
    at_free(p->saved);
    at_free(p->hooks);
    at_free(p->pattern_offset);
    at_free(p->pattern);
    at_memory_plan_free(&p->plan);
    at_free(p);
}

at_model *at_pass_model(const at_pass *p) { return p->model; }
int at_pass_batch(const at_pass *p) { return p->n; }
at_bn_mode at_pass_bn_mode(const at_pass *p) { return p->bn_mode; }

at_layer_ctx at_pass_node_ctx(const at_pass *p, int i)
{
    at_model *m = p->model;
    const at_node *node = &m->nodes[i];
    at_layer_ctx c;
    memset(&c, 0, sizeof c);
    c.node = node;
    c.n = p->n;
    c.workers = p->workers;
    for (int k = 0; k < node->n_inputs; k++) {
        c.in_shape[k] = m->nodes[node->inputs[k]].out;
        c.x[k] = p->out[node->inputs[k]];
    }
    c.y = p->out[i];
    c.cache = p->cache[i];
    c.scratch = p->scratch;
    c.scratch_floats = p->scratch_floats;
    c.shared = p->shared;
    c.w = m->params + node->param_offset;
    c.dw = m->grads + node->param_offset;
    c.buf = m->buffers + node->buffer_offset;
    c.counter = node->counter >= 0 ? m->counters + node->counter : NULL;
    c.bn_mode = p->bn_mode;
    c.rng = (at_rng *)&p->rng;
    c.max_batch = p->max_batch;
    c.shard = m->shard;
    if (p->followed && p->pattern_offset[i] != SIZE_MAX)
        c.pattern = p->pattern + p->pattern_offset[i];
    return c;
}

static void add_perturbation(float *y, const float *delta, size_t count)
{
    for (size_t j = 0; j < count; j++)
        y[j] += delta[j];
}

/* A forward hook rewrites node i's output after its layer (and perturbation) ran; the layer's
 * backward must still see what it produced, so that is kept aside. */
static void run_forward_hook(at_pass *p, int i)
{
    const at_node_hook *h = &p->hooks[i];
    if (!h->forward)
        return;
    const size_t per = at_shape_numel(p->model->nodes[i].out);
    memcpy(p->saved[i], p->out[i], per * (size_t)p->n * sizeof(float));
    h->forward(h->user, p->out[i], p->n, per);
}

int at_forward(at_pass *p, const float *x, int n, at_bn_mode mode)
{
    if (n < 1 || n > p->max_batch)
        return AT_ERR_ARG;
    if (mode != AT_BN_TRAIN && mode != AT_BN_BATCH_STATS && mode != AT_BN_EVAL)
        return AT_ERR_ARG;
    if (p->pattern_n && n != p->pattern_n)
        return AT_ERR_ARG; /* the frozen decisions are those of another batch size */
    at_model *m = p->model;
    if (at_shard_status(m->shard))
        return at_shard_status(m->shard);
    p->n = n;
    p->bn_mode = mode;
    p->followed = p->pattern_n > 0;
    size_t in_count = at_shape_numel(m->nodes[0].out) * (size_t)n;
    memcpy(p->out[0], x, in_count * sizeof(float));
    if (p->perturbation[0])
        add_perturbation(p->out[0], p->perturbation[0], in_count);
    run_forward_hook(p, 0);
    for (int i = 1; i < m->n_nodes; i++) {
        at_layer_ctx c = at_pass_node_ctx(p, i);
        /* a perturbation of the layer's own output needs that output, and a frozen ReLU its
         * input: no fusion then */
        p->fused[i] = p->plan.fusable[i] && !p->perturbation[i] && !p->followed;
        if (p->fused[i]) {
            c.y = p->out[i + 1];
            c.relu_out = p->out[i + 1];
        }
        at_layer_ops_of(m->nodes[i].kind)->forward(&c);
        if (p->fused[i])
            i++; /* the ReLU's output is written: on to its perturbation, if any */
        if (p->perturbation[i])
            add_perturbation(p->out[i], p->perturbation[i], at_shape_numel(m->nodes[i].out) * (size_t)n);
        run_forward_hook(p, i);
    }
    return at_shard_status(m->shard);
}

const float *at_pass_logits(const at_pass *p) { return p->out[p->model->n_nodes - 1]; }

static void zero_grad(at_pass *p, int node)
{
    memset(p->grad[node], 0, at_shape_numel(p->model->nodes[node].out) * (size_t)p->n * sizeof(float));
}

/* Dedicated gradients are zeroed here; shared ones just before their first writer runs. */
void at_backward_begin(at_pass *p)
{
    if (p->flags & AT_PASS_FORWARD_ONLY)
        return;
    for (int i = 0; i < p->model->n_nodes; i++)
        if (p->plan.grad_kept[i])
            zero_grad(p, i);
}

float *at_pass_grad(at_pass *p, int node)
{
    if (node < 0 || node >= p->model->n_nodes || (p->flags & AT_PASS_FORWARD_ONLY) ||
        !p->plan.grad_kept[node])
        return NULL;
    return p->grad[node];
}

int at_backward_run(at_pass *p, unsigned what)
{
    if (p->flags & AT_PASS_FORWARD_ONLY)
        return AT_ERR_STATE;
    if (p->n == 0)
        return AT_ERR_STATE;
    if ((what & ~(unsigned)(AT_GRAD_INPUT | AT_GRAD_WEIGHTS)) != 0 || what == 0)
        return AT_ERR_ARG;
    if ((what & AT_GRAD_WEIGHTS) && (p->flags & AT_PASS_NO_WEIGHT_GRADS))
        return AT_ERR_ARG;
    at_model *m = p->model;
    for (int i = m->n_nodes - 1; i >= 1; i--) {
        const at_node *node = &m->nodes[i];
        if (p->fused[i - 1])
            continue; /* a fused ReLU: its layer applies its backward */
        /* a shared gradient buffer becomes this input's when its last consumer comes up */
        for (int k = 0; k < node->n_inputs; k++) {
            int j = node->inputs[k];
            if (!p->plan.grad_kept[j] && p->plan.last_consumer[j] == i && (k == 0 || node->inputs[0] != j))
                zero_grad(p, j);
        }
        if (!needs_grad(m, i, what))
            continue;
        const at_node_hook *h = &p->hooks[i];
        const size_t per = at_shape_numel(node->out);
        if (h->backward)
            h->backward(h->user, p->grad[i], p->n, per);
        if (h->forward)
            memcpy(p->out[i], p->saved[i], per * (size_t)p->n * sizeof(float));
        at_layer_ctx c = at_pass_node_ctx(p, i);
        c.dy = p->grad[i];
        if (p->fused[i]) {
            c.dy = p->grad[i + 1];
            c.relu_out = p->out[i + 1];
        }
        for (int k = 0; k < node->n_inputs; k++)
            c.dx[k] = needs_grad(m, node->inputs[k], what) ? p->grad[node->inputs[k]] : NULL;
        c.weight_grads = (what & AT_GRAD_WEIGHTS) && node->n_params > 0;
        at_layer_ops_of(node->kind)->backward(&c);
    }
    if (p->hooks[0].backward && (what & AT_GRAD_INPUT))
        p->hooks[0].backward(p->hooks[0].user, p->grad[0], p->n, at_shape_numel(m->nodes[0].out));
    return at_shard_status(m->shard);
}

int at_backward(at_pass *p, const float *dlogits, unsigned what)
{
    if (p->flags & AT_PASS_FORWARD_ONLY || p->n == 0)
        return AT_ERR_STATE;
    at_backward_begin(p);
    const at_model *m = p->model;
    int last = m->n_nodes - 1;
    memcpy(p->grad[last], dlogits, at_shape_numel(m->nodes[last].out) * (size_t)p->n * sizeof(float));
    return at_backward_run(p, what);
}

const float *at_pass_input_grad(const at_pass *p) { return p->grad[0]; }

float *at_pass_activation(at_pass *p, int node)
{
    if (node < 0 || node >= p->model->n_nodes || !p->plan.out_kept[node])
        return NULL;
    return p->out[node];
}

int at_pass_set_perturbation(at_pass *p, int node, const float *delta)
{
    if (node < 0 || node >= p->model->n_nodes)
        return AT_ERR_ARG;
    p->perturbation[node] = delta;
    return AT_OK;
}

void at_pass_set_seed(at_pass *p, uint64_t seed) { at_rng_seed(&p->rng, seed); }

int at_pass_set_hook(at_pass *p, int node, const at_node_hook *hook)
{
    const at_model *m = p->model;
    if (node < 0 || node >= m->n_nodes - 1)
        return AT_ERR_ARG;
    if (!hook || (!hook->forward && !hook->backward)) {
        memset(&p->hooks[node], 0, sizeof p->hooks[node]);
        return AT_OK;
    }
    /* a hidden node's output and gradient must be its own for the whole pass */
    if (node > 0 && !(p->flags & AT_PASS_KEEP_ALL))
        return AT_ERR_STATE;
    if (hook->forward && !p->saved[node]) {
        size_t count = at_shape_numel(m->nodes[node].out) * (size_t)p->max_batch;
        if (!(p->saved[node] = at_alloc(count * sizeof(float))))
            return AT_ERR_NOMEM;
    }
    p->hooks[node] = *hook;
    return AT_OK;
}
