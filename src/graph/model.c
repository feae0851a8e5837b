/* model.c: building a graph of nodes, the tensor table with PyTorch names, and the parameter,
 * gradient and buffer slabs. */
#include "graph/graph.h"

#include <stdio.h>
#include <string.h>

int at_graph_error(at_model *m, int status)
{
    if (m->build_status == 0)
        m->build_status = status;
    return status;
}

int at_model_begin(at_model **out, int channels, int height, int width, at_error *err)
{
    *out = NULL;
    if (channels < 1 || height < 1 || width < 1 || channels > 65536 || height > 65536 ||
        width > 65536)
        return at_fail(err, AT_ERR_ARG, "input shape %dx%dx%d is not a valid image shape",
                       channels, height, width);
    at_model *m = at_alloc(sizeof *m);
    if (!m)
        return at_fail(err, AT_ERR_NOMEM, "out of memory creating a model");
    at_strlcpy(m->arch, "custom", sizeof m->arch);
    m->options.in_channels = channels;
    m->options.in_height = height;
    m->options.in_width = width;
    at_node *input = at_graph_append(m, AT_LAYER_input, NULL, 0, "");
    if (!input) {
        at_model_free(m);
        return at_fail(err, AT_ERR_NOMEM, "out of memory creating a model");
    }
    input->out = (at_shape){channels, height, width};
    *out = m;
    return AT_OK;
}

void at_model_free(at_model *m)
{
    if (!m)
        return;
    at_free(m->nodes);
    at_free(m->tensors);
    at_free(m->params);
    at_free(m->grads);
    at_free(m->buffers);
    at_free(m->counters);
    at_free(m);
}

at_node *at_graph_append(at_model *m, at_layer_kind kind, const int *inputs, int n_inputs,
                         const char *name)
{
    if (m->finished) {
        at_graph_error(m, AT_ERR_STATE);
        return NULL;
    }
    for (int i = 0; i < n_inputs; i++) {
        if (inputs[i] < 0 || inputs[i] >= m->n_nodes) {
            at_graph_error(m, AT_ERR_ARG);
            return NULL;
        }
    }
    if (m->n_nodes == m->cap_nodes) {
        int cap = m->cap_nodes ? 2 * m->cap_nodes : 32;
        at_node *nodes = at_alloc((size_t)cap * sizeof *nodes);
        if (!nodes) {
            at_graph_error(m, AT_ERR_NOMEM);
            return NULL;
        }
        if (m->nodes)
            memcpy(nodes, m->nodes, (size_t)m->n_nodes * sizeof *nodes);
        at_free(m->nodes);
        m->nodes = nodes;
        m->cap_nodes = cap;
    }
    at_node *node = &m->nodes[m->n_nodes++];
    memset(node, 0, sizeof *node);
    node->kind = kind;
    node->n_inputs = n_inputs;
    for (int i = 0; i < n_inputs; i++) {
        node->inputs[i] = inputs[i];
        if (m->nodes[inputs[i]].has_upstream_params)
            node->has_upstream_params = true;
    }
    node->counter = -1;
    at_strlcpy(node->name, name ? name : "", sizeof node->name);
    return node;
}

at_shape at_graph_shape(const at_model *m, int node) { return m->nodes[node].out; }

int at_graph_index(const at_model *m, const at_node *node) { return (int)(node - m->nodes); }

int at_graph_declare(at_model *m, at_node *node, const char *suffix, bool is_param, at_dtype dtype,
                     int ndim, const int64_t *shape)
{
    if (m->n_tensors == m->cap_tensors) {
        int cap = m->cap_tensors ? 2 * m->cap_tensors : 64;
        at_tensor_entry *t = at_alloc((size_t)cap * sizeof *t);
        if (!t)
            return at_graph_error(m, AT_ERR_NOMEM);
        if (m->tensors)
            memcpy(t, m->tensors, (size_t)m->n_tensors * sizeof *t);
        at_free(m->tensors);
        m->tensors = t;
        m->cap_tensors = cap;
    }
    at_tensor_entry *e = &m->tensors[m->n_tensors];
    int len = snprintf(e->name, sizeof e->name, "%s.%s", node->name, suffix);
    if (len < 0 || (size_t)len >= sizeof e->name || node->name[0] == '\0')
        return at_graph_error(m, AT_ERR_ARG);
    for (int i = 0; i < m->n_tensors; i++)
        if (strcmp(m->tensors[i].name, e->name) == 0)
            return at_graph_error(m, AT_ERR_ARG); /* two layers with one name */
    e->is_param = is_param;
    e->dtype = dtype;
    e->ndim = ndim;
    e->numel = 1;
    for (int i = 0; i < ndim; i++) {
        e->shape[i] = shape[i];
        e->numel *= (size_t)shape[i];
    }
    if (is_param) {
        if (node->n_params == 0)
            node->param_offset = m->n_params;
        e->offset = m->n_params;
        m->n_params += e->numel;
        node->n_params += e->numel;
        node->has_upstream_params = true;
    } else if (dtype == AT_F32) {
        if (node->n_buffers == 0)
            node->buffer_offset = m->n_buffers;
        e->offset = m->n_buffers;
        m->n_buffers += e->numel;
        node->n_buffers += e->numel;
    } else {
        e->offset = (size_t)m->n_counters;
        node->counter = m->n_counters;
        m->n_counters += (int)e->numel;
    }
    m->n_tensors++;
    return AT_OK;
}

int at_model_finish(at_model *m, uint64_t seed, at_error *err)
{
    if (m->finished)
        return at_fail(err, AT_ERR_STATE, "model is already finished");
    if (m->build_status)
        return at_fail(err, m->build_status, "building the model failed: %s",
                       at_status_string(m->build_status));
    if (m->n_nodes < 2)
        return at_fail(err, AT_ERR_ARG, "model has no layers");
    at_shape out = m->nodes[m->n_nodes - 1].out;
    if (out.h != 1 || out.w != 1)
        return at_fail(err, AT_ERR_SHAPE, "the last layer must output a vector of logits, got %dx%dx%d",
                       out.c, out.h, out.w);
    m->params = at_alloc(m->n_params * sizeof(float));
    m->grads = at_alloc(m->n_params * sizeof(float));
    m->buffers = at_alloc(m->n_buffers * sizeof(float));
    m->counters = at_alloc((size_t)m->n_counters * sizeof(int64_t));
    if ((m->n_params && (!m->params || !m->grads)) || (m->n_buffers && !m->buffers) ||
        (m->n_counters && !m->counters))
        return at_fail(err, AT_ERR_NOMEM, "out of memory allocating %zu parameters", m->n_params);
    m->options.num_classes = out.c;
    at_rng rng;
    at_rng_seed(&rng, seed);
    m->options.seed = seed;
    for (int i = 1; i < m->n_nodes; i++) {
        const at_node *node = &m->nodes[i];
        const at_layer_ops *ops = at_layer_ops_of(node->kind);
        if (ops->init && !node->source) /* a shared node's parameters are its source's */
            /* a model without buffers (or parameters) has a NULL slab: no offset into it */
            ops->init(node, &m->nodes[node->inputs[0]].out,
                      m->params ? m->params + node->param_offset : NULL,
                      m->buffers ? m->buffers + node->buffer_offset : NULL, &rng);
    }
    m->finished = true;
    return AT_OK;
}

const char *at_model_arch(const at_model *m) { return m->arch; }
const at_model_options *at_model_get_options(const at_model *m) { return &m->options; }
int at_model_num_classes(const at_model *m) { return m->nodes[m->n_nodes - 1].out.c; }

void at_model_input_shape(const at_model *m, int *c, int *h, int *w)
{
    at_model_node_shape(m, 0, c, h, w);
}

double at_model_forward_flops(const at_model *m)
{
    double flops = 0.0;
    for (int i = 1; i < m->n_nodes; i++) {
        const at_node *node = &m->nodes[i];
        const at_shape in = m->nodes[node->inputs[0]].out;
        if (node->kind == AT_LAYER_conv2d)
            flops += 2.0 * at_shape_numel(node->out) * in.c * node->p.conv.kernel * node->p.conv.kernel;
        else if (node->kind == AT_LAYER_linear)
            flops += 2.0 * node->out.c * in.c;
    }
    return flops;
}

int at_model_node_count(const at_model *m) { return m->n_nodes; }

const char *at_model_node_kind(const at_model *m, int node)
{
    if (node < 0 || node >= m->n_nodes)
        return NULL;
    return at_layer_name(m->nodes[node].kind);
}

void at_model_node_shape(const at_model *m, int node, int *c, int *h, int *w)
{
    at_shape s = {0, 0, 0};
    if (node >= 0 && node < m->n_nodes)
        s = m->nodes[node].out;
    if (c)
        *c = s.c;
    if (h)
        *h = s.h;
    if (w)
        *w = s.w;
}

int at_model_tensor_count(const at_model *m) { return m->n_tensors; }

at_tensor_info at_model_tensor(const at_model *m, int index)
{
    at_tensor_info info;
    memset(&info, 0, sizeof info);
    if (index < 0 || index >= m->n_tensors)
        return info;
    const at_tensor_entry *e = &m->tensors[index];
    info.name = e->name;
    info.is_param = e->is_param;
    info.dtype = e->dtype;
    info.ndim = e->ndim;
    memcpy(info.shape, e->shape, sizeof info.shape);
    info.numel = e->numel;
    if (e->is_param) {
        info.data = m->params ? m->params + e->offset : NULL;
        info.grad = m->grads ? m->grads + e->offset : NULL;
    } else if (e->dtype == AT_F32) {
        info.data = m->buffers ? m->buffers + e->offset : NULL;
    } else {
        info.data_i64 = m->counters ? m->counters + e->offset : NULL;
    }
    return info;
}

int at_model_find_tensor(const at_model *m, const char *name)
{
    for (int i = 0; i < m->n_tensors; i++)
        if (strcmp(m->tensors[i].name, name) == 0)
            return i;
    return AT_ERR_NOTFOUND;
}

float *at_model_params(at_model *m, size_t *count)
{
    if (count)
        *count = m->n_params;
    return m->params;
}

float *at_model_grads(at_model *m, size_t *count)
{
    if (count)
        *count = m->n_params;
    return m->grads;
}

void at_model_zero_grad(at_model *m)
{
    if (m->grads)
        memset(m->grads, 0, m->n_params * sizeof(float));
}

int at_model_copy_weights(at_model *dst, const at_model *src, at_error *err)
{
    if (dst->n_params != src->n_params || dst->n_buffers != src->n_buffers ||
        dst->n_counters != src->n_counters || dst->n_tensors != src->n_tensors)
        return at_fail(err, AT_ERR_SHAPE, "cannot copy weights between different architectures (%s, %s)",
                       src->arch, dst->arch);
    for (int i = 0; i < src->n_tensors; i++)
        if (strcmp(src->tensors[i].name, dst->tensors[i].name) != 0 ||
            src->tensors[i].numel != dst->tensors[i].numel)
            return at_fail(err, AT_ERR_SHAPE, "cannot copy weights: tensor %s differs",
                           src->tensors[i].name);
    if (src->n_params)
        memcpy(dst->params, src->params, src->n_params * sizeof(float));
    if (src->n_buffers)
        memcpy(dst->buffers, src->buffers, src->n_buffers * sizeof(float));
    if (src->n_counters)
        memcpy(dst->counters, src->counters, (size_t)src->n_counters * sizeof(int64_t));
    return AT_OK;
}

bool at_graph_is_block_end(const at_model *m, int k)
{
    at_layer_kind kind = m->nodes[k].kind;
    if (kind != AT_LAYER_maxpool2d && kind != AT_LAYER_avgpool2d && kind != AT_LAYER_add)
        return false;
    for (int j = k + 1; j < m->n_nodes; j++) /* no later node reads past it */
        for (int q = 0; q < m->nodes[j].n_inputs; q++)
            if (m->nodes[j].inputs[q] < k)
                return false;
    return true;
}

const char *at_bn_mode_name(at_bn_mode mode)
{
    switch (mode) {
    case AT_BN_TRAIN: return "train";
    case AT_BN_BATCH_STATS: return "batch-stats";
    case AT_BN_EVAL: return "eval";
    }
    return "unknown";
}
