/* graph_spec.c: a model built node by node, as the list of its nodes after the input:
 *   {"op": "conv2d", "in": [0], "name": "conv1", "out_channels": 8, "kernel": 3, "stride": 1,
 *    "padding": 1, "bias": true}, {"op": "relu", "in": [1]}, {"op": "add", "in": [2, 5]}, ...
 * Node k of the list is node k + 1 of the model (node 0 is the input). Each kind records what
 * its builder takes, and batch norm its eps and momentum, so rebuilding gives the same tensors
 * under the same names in the same order. Only the kinds an imported graph uses are described. */
#include "models/graph_spec.h"

#include <math.h>
#include <string.h>

json_t *at_graph_spec_nodes(const at_model *m)
{
    json_t *list = json_array();
    for (int i = 1; i < m->n_nodes && list; i++) {
        const at_node *node = &m->nodes[i];
        json_t *d = json_object();
        json_t *in = json_array();
        for (int k = 0; k < node->n_inputs; k++)
            json_array_append_new(in, json_integer(node->inputs[k]));
        json_object_set_new(d, "op", json_string(at_layer_name(node->kind)));
        json_object_set_new(d, "in", in);
        if (node->name[0])
            json_object_set_new(d, "name", json_string(node->name));
        bool known = !node->source;
        switch (node->kind) {
        case AT_LAYER_conv2d:
            json_object_set_new(d, "out_channels", json_integer(node->p.conv.out_channels));
            json_object_set_new(d, "kernel", json_integer(node->p.conv.kernel));
            json_object_set_new(d, "stride", json_integer(node->p.conv.stride));
            json_object_set_new(d, "padding", json_integer(node->p.conv.padding));
            json_object_set_new(d, "bias", json_boolean(node->p.conv.bias));
            break;
        case AT_LAYER_batchnorm2d:
            json_object_set_new(d, "eps", json_real(node->p.bn.eps));
            json_object_set_new(d, "momentum", json_real(node->p.bn.momentum));
            known = known && node->p.bn.affine;
            break;
        case AT_LAYER_maxpool2d:
        case AT_LAYER_avgpool2d:
            json_object_set_new(d, "kernel", json_pack("[ii]", node->p.pool.kernel_h,
                                                       node->p.pool.kernel_w));
            json_object_set_new(d, "stride", json_integer(node->p.pool.stride));
            break;
        case AT_LAYER_linear:
            json_object_set_new(d, "out_features", json_integer(node->p.linear.out_features));
            json_object_set_new(d, "bias", json_boolean(node->p.linear.bias));
            break;
        case AT_LAYER_normalize: {
            json_t *mean = json_array(), *std = json_array();
            for (int c = 0; c < node->out.c; c++) {
                json_array_append_new(mean, json_real(node->p.norm.mean[c]));
                json_array_append_new(std, json_real(node->p.norm.std[c]));
            }
            json_object_set_new(d, "mean", mean);
            json_object_set_new(d, "std", std);
            break;
        }
        case AT_LAYER_scale:
            json_object_set_new(d, "factor", json_real(node->p.scale.factor));
            break;
        case AT_LAYER_leaky_relu:
            json_object_set_new(d, "slope", json_real(node->p.leaky.slope));
            break;
        case AT_LAYER_pad2d:
            json_object_set_new(d, "pad", json_pack("[iiii]", node->p.pad.top, node->p.pad.left,
                                                    node->p.pad.bottom, node->p.pad.right));
            json_object_set_new(d, "value", json_real(node->p.pad.value));
            break;
        case AT_LAYER_relu:
        case AT_LAYER_sigmoid:
        case AT_LAYER_tanh:
        case AT_LAYER_softplus:
        case AT_LAYER_flatten:
        case AT_LAYER_add:
        case AT_LAYER_mul:
            break;
        default:
            known = false;
        }
        json_array_append_new(list, d);
        if (!known) {
            json_decref(list);
            list = NULL;
        }
    }
    return list;
}

static int get_int(json_t *d, const char *key, int fallback)
{
    json_t *v = json_object_get(d, key);
    return json_is_integer(v) ? (int)json_integer_value(v) : fallback;
}

static float get_float(json_t *d, const char *key)
{
    json_t *v = json_object_get(d, key);
    return json_is_number(v) ? (float)json_number_value(v) : NAN;
}

/* An input: the index of a node already built, or -1. */
static int earlier_node(const at_model *m, json_t *v)
{
    json_int_t k = json_is_integer(v) ? json_integer_value(v) : -1;
    return k >= 0 && k < m->n_nodes ? (int)k : -1;
}

/* Appends one described node; a negative status for a malformed description. */
static int add_node(at_model *m, json_t *d)
{
    const char *op = json_string_value(json_object_get(d, "op"));
    const char *name = json_string_value(json_object_get(d, "name"));
    json_t *in = json_object_get(d, "in");
    if (!op || !json_is_array(in) || json_array_size(in) < 1 || json_array_size(in) > 2)
        return AT_ERR_FORMAT;
    const bool two = json_array_size(in) == 2;
    const int x = earlier_node(m, json_array_get(in, 0));
    const int y = two ? earlier_node(m, json_array_get(in, 1)) : 0;
    if (x < 0 || y < 0)
        return AT_ERR_FORMAT;
    const bool bias = json_is_true(json_object_get(d, "bias"));
    if (!strcmp(op, "conv2d") && name && !two)
        return at_add_conv2d(m, x, name, get_int(d, "out_channels", 0), get_int(d, "kernel", 0),
                             get_int(d, "stride", 0), get_int(d, "padding", -1), bias);
    if (!strcmp(op, "batchnorm2d") && name && !two) {
        int k = at_add_batchnorm2d(m, x, name);
        float eps = get_float(d, "eps"), momentum = get_float(d, "momentum");
        if (k < 0)
            return k;
        if (!(eps > 0.0f) || !(momentum >= 0.0f && momentum <= 1.0f))
            return AT_ERR_FORMAT;
        m->nodes[k].p.bn.eps = eps;
        m->nodes[k].p.bn.momentum = momentum;
        return k;
    }
    if ((!strcmp(op, "maxpool2d") || !strcmp(op, "avgpool2d")) && !two) {
        json_t *k = json_object_get(d, "kernel");
        int kh = json_is_array(k) ? (int)json_integer_value(json_array_get(k, 0)) : 0;
        int kw = json_is_array(k) ? (int)json_integer_value(json_array_get(k, 1)) : 0;
        int stride = get_int(d, "stride", 0);
        if (!strcmp(op, "maxpool2d"))
            return kh == kw ? at_add_maxpool2d(m, x, kh, stride) : AT_ERR_FORMAT;
        at_shape s = at_graph_shape(m, x);
        if (kh == s.h && kw == s.w && stride == 1)
            return at_add_global_avgpool(m, x);
        return kh == kw ? at_add_avgpool2d(m, x, kh, stride) : AT_ERR_FORMAT;
    }
    if (!strcmp(op, "linear") && name && !two)
        return at_add_linear(m, x, name, get_int(d, "out_features", 0), bias);
    if (!strcmp(op, "normalize") && !two) {
        json_t *mean = json_object_get(d, "mean"), *std = json_object_get(d, "std");
        float mv[4], sv[4];
        int c = at_graph_shape(m, x).c;
        if (c > 4 || !json_is_array(mean) || !json_is_array(std) ||
            (int)json_array_size(mean) != c || (int)json_array_size(std) != c)
            return AT_ERR_FORMAT;
        for (int i = 0; i < c; i++) {
            mv[i] = (float)json_number_value(json_array_get(mean, (size_t)i));
            sv[i] = (float)json_number_value(json_array_get(std, (size_t)i));
        }
        return at_add_normalize(m, x, mv, sv);
    }
    if (!strcmp(op, "scale") && !two)
        return at_add_scale(m, x, get_float(d, "factor"));
    if (!strcmp(op, "leaky_relu") && !two)
        return at_add_leaky_relu(m, x, get_float(d, "slope"));
    if (!strcmp(op, "pad2d") && !two) {
        json_t *pad = json_object_get(d, "pad");
        int q[4];
        for (int i = 0; i < 4; i++)
            q[i] = json_array_size(pad) == 4 && json_is_integer(json_array_get(pad, (size_t)i))
                       ? (int)json_integer_value(json_array_get(pad, (size_t)i))
                       : -1;
        return at_add_pad2d(m, x, q[0], q[1], q[2], q[3], get_float(d, "value"));
    }
    if (!strcmp(op, "relu") && !two)
        return at_add_relu(m, x);
    if (!strcmp(op, "sigmoid") && !two)
        return at_add_sigmoid(m, x);
    if (!strcmp(op, "tanh") && !two)
        return at_add_tanh(m, x);
    if (!strcmp(op, "softplus") && !two)
        return at_add_softplus(m, x);
    if (!strcmp(op, "flatten") && !two)
        return at_add_flatten(m, x);
    if (!strcmp(op, "add") && two)
        return at_add_add(m, x, y);
    if (!strcmp(op, "mul") && two)
        return at_add_mul(m, x, y);
    return AT_ERR_FORMAT;
}

int at_graph_spec_build(at_model **out, int channels, int height, int width, json_t *nodes,
                        at_error *err)
{
    *out = NULL;
    if (!json_is_array(nodes) || json_array_size(nodes) == 0)
        return at_fail(err, AT_ERR_FORMAT, "model description of a graph needs a list of nodes");
    at_model *m;
    int status = at_model_begin(&m, channels, height, width, err);
    if (status)
        return status;
    at_strlcpy(m->arch, AT_GRAPH_ARCH, sizeof m->arch);
    for (size_t i = 0; i < json_array_size(nodes); i++) {
        json_t *d = json_array_get(nodes, i);
        int k = json_is_object(d) ? add_node(m, d) : AT_ERR_FORMAT;
        if (k < 0) {
            const char *op = json_string_value(json_object_get(d, "op"));
            at_model_free(m);
            return at_fail(err, AT_ERR_FORMAT, "model description: node %zu (%s) is invalid: %s",
                           i + 1, op ? op : "no op", at_status_string(k));
        }
    }
    status = at_model_finish(m, 0, err);
    if (status) {
        at_model_free(m);
        return status;
    }
    *out = m;
    return AT_OK;
}
