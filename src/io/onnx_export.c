/* onnx_export.c: an advtrain model as an ONNX file (onnx.proto, opset 13) for inference in any
 * ONNX runtime, built from the protobuf-c structs generated from Debian's onnx.proto.
 *
 * The graph input "input" is float [N, C, H, W] and the output "logits" float [N, K], N being
 * the symbolic dimension "N". Each node of the advtrain graph becomes the ONNX operators that
 * compute it in inference mode (operator definitions: https://onnx.ai/onnx/operators/):
 *   conv2d -> Conv (bias as its third input), batchnorm2d -> BatchNormalization on the running
 *   statistics (ONNX momentum = 1 - PyTorch's), relu, leaky_relu, sigmoid, tanh, softplus,
 *   prelu -> Relu, LeakyRelu, Sigmoid, Tanh, Softplus, PRelu; add, mul -> Add, Mul;
 *   maxpool2d -> MaxPool; avgpool2d -> AveragePool, or GlobalAveragePool when its window is the
 *   whole image; flatten -> Flatten; linear -> Gemm (transB 1, nn.Linear's layout); normalize ->
 *   Sub and Div by [1, C, 1, 1] constants; scale -> Mul by a constant; pad2d -> Pad (constant);
 *   slice -> Slice of channels; upsample2d -> Resize (nearest, asymmetric coordinates, floor:
 *   exactly y[oy, ox] = x[oy / s, ox / s]); quantize -> Mul, Round, Div (Round rounds half to
 *   even, as the layer's nearbyintf does); gaussian_noise of sigma 0 -> Identity.
 * A layer with no inference meaning in ONNX (noise drawn at every forward) fails with one line
 * naming the layer and the model; no file is written then.
 *
 * Weights are initializers under the model's own tensor names (PyTorch state_dict names), so
 * at_model_import_onnx names the layers as the model did. The file is written to a temporary
 * file beside the target and renamed over it, so a reader never sees half a file. */
#include "graph/graph.h"
#include "onnx.pb-c.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define OPSET 13
#define IR_VERSION 7 /* the IR of ONNX 1.8, which introduced opset 13 */

typedef struct onnx_exporter {
    const at_model *m;
    const char *path;
    at_error *err;
    Onnx__NodeProto **nodes;
    size_t n_nodes, cap_nodes;
    Onnx__TensorProto **inits;
    size_t n_inits, cap_inits;
    void **owned; /* every allocation, freed when the export ends */
    size_t n_owned, cap_owned;
    char **value; /* per advtrain node: the name of its ONNX output */
    int *rank;    /* per advtrain node: 4 (NCHW) or 2 ([N, features], after Flatten or Gemm) */
    bool out_of_memory;
} onnx_exporter;

static bool grow(void **items, size_t *cap, size_t n, size_t size)
{
    if (n < *cap)
        return true;
    size_t more = *cap ? 2 * *cap : 16;
    void *p = realloc(*items, more * size);
    if (!p)
        return false;
    *items = p;
    *cap = more;
    return true;
}

/* Zeroed memory that lives until the export ends; NULL (remembered) when out of memory. */
static void *keep(onnx_exporter *ex, size_t bytes)
{
    void *p = calloc(1, bytes ? bytes : 1);
    if (!p || !grow((void **)&ex->owned, &ex->cap_owned, ex->n_owned, sizeof *ex->owned)) {
        free(p);
        ex->out_of_memory = true;
        return NULL;
    }
    ex->owned[ex->n_owned++] = p;
    return p;
}

static char *text(onnx_exporter *ex, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static char *text(onnx_exporter *ex, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *s = n >= 0 ? keep(ex, (size_t)n + 1) : NULL;
    if (s) {
        va_start(ap, fmt);
        vsnprintf(s, (size_t)n + 1, fmt, ap);
        va_end(ap);
    }
    return s ? s : "";
}

/* A node reading `inputs` (NULL-terminated; "" for an omitted optional one) into `output`. */
static Onnx__NodeProto *add_node(onnx_exporter *ex, const char *op, const char *name,
                                 const char *const *inputs, const char *output)
{
    Onnx__NodeProto *n = keep(ex, sizeof *n);
    size_t count = 0;
    while (inputs[count])
        count++;
    char **in = keep(ex, count * sizeof *in), **out = keep(ex, sizeof *out);
    Onnx__AttributeProto **attrs = keep(ex, 8 * sizeof *attrs);
    if (!n || !in || !out || !attrs ||
        !grow((void **)&ex->nodes, &ex->cap_nodes, ex->n_nodes, sizeof *ex->nodes)) {
        ex->out_of_memory = true;
        return NULL;
    }
    onnx__node_proto__init(n);
    n->op_type = (char *)op;
    n->name = text(ex, "%s", name);
    for (size_t k = 0; k < count; k++)
        in[k] = text(ex, "%s", inputs[k]);
    n->input = in;
    n->n_input = count;
    out[0] = text(ex, "%s", output);
    n->output = out;
    n->n_output = 1;
    n->attribute = attrs; /* room for the few attributes an operator here takes */
    ex->nodes[ex->n_nodes++] = n;
    return n;
}

static Onnx__AttributeProto *attribute(onnx_exporter *ex, Onnx__NodeProto *n, const char *name,
                                       Onnx__AttributeProto__AttributeType type)
{
    Onnx__AttributeProto *a = n ? keep(ex, sizeof *a) : NULL;
    if (!a)
        return NULL;
    onnx__attribute_proto__init(a);
    a->name = (char *)name;
    a->has_type = 1;
    a->type = type;
    n->attribute[n->n_attribute++] = a;
    return a;
}

static void attr_int(onnx_exporter *ex, Onnx__NodeProto *n, const char *name, int64_t v)
{
    Onnx__AttributeProto *a = attribute(ex, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT);
    if (a) {
        a->has_i = 1;
        a->i = v;
    }
}

static void attr_float(onnx_exporter *ex, Onnx__NodeProto *n, const char *name, float v)
{
    Onnx__AttributeProto *a =
        attribute(ex, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT);
    if (a) {
        a->has_f = 1;
        a->f = v;
    }
}

static void attr_ints(onnx_exporter *ex, Onnx__NodeProto *n, const char *name, size_t count,
                      const int64_t *v)
{
    Onnx__AttributeProto *a = attribute(ex, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS);
    int64_t *ints = a ? keep(ex, count * sizeof *ints) : NULL;
    if (ints) {
        memcpy(ints, v, count * sizeof *ints);
        a->ints = ints;
        a->n_ints = count;
    }
}

static void attr_string(onnx_exporter *ex, Onnx__NodeProto *n, const char *name, const char *v)
{
    Onnx__AttributeProto *a =
        attribute(ex, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING);
    if (a) {
        a->has_s = 1;
        a->s.data = (uint8_t *)text(ex, "%s", v);
        a->s.len = strlen(v);
    }
}

static Onnx__TensorProto *initializer(onnx_exporter *ex, const char *name, int ndim,
                                      const int64_t *dims, Onnx__TensorProto__DataType type)
{
    Onnx__TensorProto *t = keep(ex, sizeof *t);
    int64_t *d = keep(ex, (size_t)(ndim > 0 ? ndim : 1) * sizeof *d);
    if (!t || !d || !grow((void **)&ex->inits, &ex->cap_inits, ex->n_inits, sizeof *ex->inits)) {
        ex->out_of_memory = true;
        return NULL;
    }
    onnx__tensor_proto__init(t);
    memcpy(d, dims, (size_t)ndim * sizeof *d);
    t->name = text(ex, "%s", name);
    t->dims = d;
    t->n_dims = (size_t)ndim;
    t->has_data_type = 1;
    t->data_type = type;
    ex->inits[ex->n_inits++] = t;
    return t;
}

static size_t numel_of(int ndim, const int64_t *dims)
{
    size_t n = 1;
    for (int d = 0; d < ndim; d++)
        n *= (size_t)dims[d];
    return n;
}

/* A float constant of this export (copied). */
static void const_floats(onnx_exporter *ex, const char *name, int ndim, const int64_t *dims,
                         const float *data)
{
    Onnx__TensorProto *t = initializer(ex, name, ndim, dims, ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT);
    size_t n = numel_of(ndim, dims);
    float *copy = t ? keep(ex, n * sizeof *copy) : NULL;
    if (copy) {
        memcpy(copy, data, n * sizeof *copy);
        t->float_data = copy;
        t->n_float_data = n;
    }
}

static void const_ints(onnx_exporter *ex, const char *name, int64_t count, const int64_t *data)
{
    Onnx__TensorProto *t =
        initializer(ex, name, 1, (int64_t[]){count}, ONNX__TENSOR_PROTO__DATA_TYPE__INT64);
    int64_t *copy = t ? keep(ex, (size_t)count * sizeof *copy) : NULL;
    if (copy) {
        memcpy(copy, data, (size_t)count * sizeof *copy);
        t->int64_data = copy;
        t->n_int64_data = (size_t)count;
    }
}

/* The layer's tensor "<layer>.<suffix>" as an initializer of that name, its data the model's
 * own (not copied: the model outlives the export), with ONNX's layout `dims` when given (a
 * per-channel PReLU slope broadcasts over NCHW as [C, 1, 1]), else the tensor's shape. */
static int model_tensor(onnx_exporter *ex, const at_node *node, const char *suffix, int ndim,
                        const int64_t *dims, const char **name)
{
    const at_node *owner = node->source ? &ex->m->nodes[node->source] : node;
    char full[160];
    snprintf(full, sizeof full, "%s.%s", owner->name, suffix);
    *name = text(ex, "%s", full);
    for (size_t i = 0; i < ex->n_inits; i++) /* a shared layer's second use reads it again */
        if (strcmp(ex->inits[i]->name, full) == 0)
            return AT_OK;
    int k = at_model_find_tensor(ex->m, full);
    if (k < 0)
        return at_fail(ex->err, AT_ERR_STATE, "%s: model '%s' has no tensor %s", ex->path,
                       ex->m->arch, full);
    at_tensor_info info = at_model_tensor(ex->m, k);
    Onnx__TensorProto *t = initializer(ex, full, dims ? ndim : info.ndim, dims ? dims : info.shape,
                                       ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT);
    if (t) {
        t->float_data = info.data;
        t->n_float_data = info.numel;
    }
    return AT_OK;
}

static bool name_taken(const onnx_exporter *ex, int k, const char *name)
{
    if (strcmp(name, "input") == 0 || strcmp(name, "logits") == 0)
        return true;
    for (int j = 0; j < k; j++)
        if (strcmp(ex->value[j], name) == 0)
            return true;
    return false;
}

/* The name the ONNX graph gives node k's output (and the ONNX node computing it): the layer's
 * name, else its kind and index; never one given before, nor the graph's input or output. */
static char *value_name(onnx_exporter *ex, int k)
{
    const at_node *node = &ex->m->nodes[k];
    if (k == 0)
        return text(ex, "input");
    char *name = node->name[0] && !node->source ? text(ex, "%s", node->name)
                                                : text(ex, "%s_%d", at_layer_name(node->kind), k);
    if (name_taken(ex, k, name))
        name = text(ex, "%s_%d", name, k);
    return name;
}

/* Node k's input j as a tensor of rank `want` (4 or 2): a [N, C, 1, 1] value read as [N, C]
 * goes through a Flatten. */
static const char *input_of(onnx_exporter *ex, int k, int j, int want)
{
    const int x = ex->m->nodes[k].inputs[j];
    if (ex->rank[x] == want || want == 4)
        return ex->value[x];
    const char *flat = text(ex, "%s_flat_%d", ex->value[x], k);
    Onnx__NodeProto *n = add_node(ex, "Flatten", flat, (const char *[]){ex->value[x], NULL}, flat);
    attr_int(ex, n, "axis", 1);
    return flat;
}

typedef int (*export_fn)(onnx_exporter *ex, int k);

static int unsupported(onnx_exporter *ex, int k, const char *why)
{
    return at_fail(ex->err, AT_ERR_ARG, "%s: model '%s': layer %d (%s%s%s) %s; not exported",
                   ex->path, ex->m->arch, k, at_layer_name(ex->m->nodes[k].kind),
                   ex->m->nodes[k].name[0] ? " " : "", ex->m->nodes[k].name, why);
}

/* One input, one operator, no attributes. */
static int export_unary(onnx_exporter *ex, int k, const char *op)
{
    add_node(ex, op, ex->value[k], (const char *[]){input_of(ex, k, 0, ex->rank[k]), NULL},
             ex->value[k]);
    return AT_OK;
}

static int export_relu(onnx_exporter *ex, int k) { return export_unary(ex, k, "Relu"); }
static int export_sigmoid(onnx_exporter *ex, int k) { return export_unary(ex, k, "Sigmoid"); }
static int export_tanh(onnx_exporter *ex, int k) { return export_unary(ex, k, "Tanh"); }
static int export_softplus(onnx_exporter *ex, int k) { return export_unary(ex, k, "Softplus"); }

static int export_leaky_relu(onnx_exporter *ex, int k)
{
    Onnx__NodeProto *n = add_node(ex, "LeakyRelu", ex->value[k],
                                  (const char *[]){ex->value[ex->m->nodes[k].inputs[0]], NULL},
                                  ex->value[k]);
    attr_float(ex, n, "alpha", ex->m->nodes[k].p.leaky.slope);
    return AT_OK;
}

static int export_conv2d(onnx_exporter *ex, int k)
{
    const at_node *node = &ex->m->nodes[k];
    const char *w, *b = "";
    int status = model_tensor(ex, node, "weight", 0, NULL, &w);
    if (!status && node->p.conv.bias)
        status = model_tensor(ex, node, "bias", 0, NULL, &b);
    if (status)
        return status;
    const int64_t kernel = node->p.conv.kernel, stride = node->p.conv.stride,
                  pad = node->p.conv.padding;
    Onnx__NodeProto *n =
        add_node(ex, "Conv", ex->value[k],
                 (const char *[]){ex->value[node->inputs[0]], w, node->p.conv.bias ? b : NULL, NULL},
                 ex->value[k]);
    attr_ints(ex, n, "kernel_shape", 2, (int64_t[]){kernel, kernel});
    attr_ints(ex, n, "strides", 2, (int64_t[]){stride, stride});
    attr_ints(ex, n, "pads", 4, (int64_t[]){pad, pad, pad, pad});
    attr_ints(ex, n, "dilations", 2, (int64_t[]){1, 1});
    attr_int(ex, n, "group", 1);
    return AT_OK;
}

/* Inference semantics: y = scale * (x - running_mean) / sqrt(running_var + eps) + bias. A layer
 * without affine parameters gets constant ones and zeros. */
static int export_batchnorm2d(onnx_exporter *ex, int k)
{
    const at_node *node = &ex->m->nodes[k];
    const at_node *owner = node->source ? &ex->m->nodes[node->source] : node;
    const char *t[4];
    int status = AT_OK;
    static const char *const suffixes[4] = {"weight", "bias", "running_mean", "running_var"};
    for (int q = owner->p.bn.affine ? 0 : 2; q < 4 && !status; q++)
        status = model_tensor(ex, node, suffixes[q], 0, NULL, &t[q]);
    if (status)
        return status;
    if (!owner->p.bn.affine) {
        const int c = node->out.c;
        float *v = keep(ex, 2 * (size_t)c * sizeof *v);
        if (!v)
            return AT_ERR_NOMEM;
        for (int q = 0; q < c; q++)
            v[q] = 1.0f;
        t[0] = text(ex, "%s.onnx_scale", owner->name);
        t[1] = text(ex, "%s.onnx_bias", owner->name);
        const_floats(ex, t[0], 1, (int64_t[]){c}, v);
        const_floats(ex, t[1], 1, (int64_t[]){c}, v + c);
    }
    Onnx__NodeProto *n =
        add_node(ex, "BatchNormalization", ex->value[k],
                 (const char *[]){ex->value[node->inputs[0]], t[0], t[1], t[2], t[3], NULL},
                 ex->value[k]);
    attr_float(ex, n, "epsilon", owner->p.bn.eps);
    attr_float(ex, n, "momentum", 1.0f - owner->p.bn.momentum); /* ONNX keeps the old share */
    return AT_OK;
}

static int export_pool(onnx_exporter *ex, int k, bool max)
{
    const at_node *node = &ex->m->nodes[k];
    const at_shape in = at_graph_shape(ex->m, node->inputs[0]);
    const int64_t kh = node->p.pool.kernel_h, kw = node->p.pool.kernel_w, s = node->p.pool.stride;
    const bool global = kh == in.h && kw == in.w;
    const char *x = ex->value[node->inputs[0]];
    if (global)
        return add_node(ex, max ? "GlobalMaxPool" : "GlobalAveragePool", ex->value[k],
                        (const char *[]){x, NULL}, ex->value[k])
            ? AT_OK
            : AT_ERR_NOMEM;
    Onnx__NodeProto *n = add_node(ex, max ? "MaxPool" : "AveragePool", ex->value[k],
                                  (const char *[]){x, NULL}, ex->value[k]);
    attr_ints(ex, n, "kernel_shape", 2, (int64_t[]){kh, kw});
    attr_ints(ex, n, "strides", 2, (int64_t[]){s, s});
    return AT_OK;
}

static int export_maxpool2d(onnx_exporter *ex, int k) { return export_pool(ex, k, true); }
static int export_avgpool2d(onnx_exporter *ex, int k) { return export_pool(ex, k, false); }

static int export_flatten(onnx_exporter *ex, int k)
{
    Onnx__NodeProto *n =
        add_node(ex, "Flatten", ex->value[k],
                 (const char *[]){ex->value[ex->m->nodes[k].inputs[0]], NULL}, ex->value[k]);
    attr_int(ex, n, "axis", 1);
    return AT_OK;
}

/* nn.Linear: y = x W^T + b, W stored [out, in]: Gemm with transB 1. */
static int export_linear(onnx_exporter *ex, int k)
{
    const at_node *node = &ex->m->nodes[k];
    const char *w, *b = NULL;
    int status = model_tensor(ex, node, "weight", 0, NULL, &w);
    if (!status && node->p.linear.bias)
        status = model_tensor(ex, node, "bias", 0, NULL, &b);
    if (status)
        return status;
    Onnx__NodeProto *n = add_node(ex, "Gemm", ex->value[k],
                                  (const char *[]){input_of(ex, k, 0, 2), w, b, NULL},
                                  ex->value[k]);
    attr_int(ex, n, "transB", 1);
    return AT_OK;
}

static int export_binary(onnx_exporter *ex, int k, const char *op)
{
    add_node(ex, op, ex->value[k],
             (const char *[]){input_of(ex, k, 0, ex->rank[k]), input_of(ex, k, 1, ex->rank[k]),
                              NULL},
             ex->value[k]);
    return AT_OK;
}

static int export_add(onnx_exporter *ex, int k) { return export_binary(ex, k, "Add"); }
static int export_mul(onnx_exporter *ex, int k) { return export_binary(ex, k, "Mul"); }

/* A per-channel constant laid out to broadcast over node k's output: [1, C, 1, 1] or [1, C]. */
static const char *channel_constant(onnx_exporter *ex, int k, const char *what, const float *v)
{
    const int c = ex->m->nodes[k].out.c;
    const char *name = text(ex, "%s.%s", ex->value[k], what);
    if (ex->rank[k] == 4)
        const_floats(ex, name, 4, (int64_t[]){1, c, 1, 1}, v);
    else
        const_floats(ex, name, 2, (int64_t[]){1, c}, v);
    return name;
}

/* (x - mean) / std per channel: Sub, then Div. */
static int export_normalize(onnx_exporter *ex, int k)
{
    const at_node *node = &ex->m->nodes[k];
    const char *mean = channel_constant(ex, k, "mean", node->p.norm.mean),
               *std = channel_constant(ex, k, "std", node->p.norm.std),
               *centred = text(ex, "%s_centred", ex->value[k]);
    add_node(ex, "Sub", centred, (const char *[]){ex->value[node->inputs[0]], mean, NULL},
             centred);
    add_node(ex, "Div", ex->value[k], (const char *[]){centred, std, NULL}, ex->value[k]);
    return AT_OK;
}

static int export_scale(onnx_exporter *ex, int k)
{
    const char *factor = text(ex, "%s.factor", ex->value[k]);
    const_floats(ex, factor, 1, (int64_t[]){1}, &ex->m->nodes[k].p.scale.factor);
    add_node(ex, "Mul", ex->value[k],
             (const char *[]){ex->value[ex->m->nodes[k].inputs[0]], factor, NULL}, ex->value[k]);
    return AT_OK;
}

static int export_prelu(onnx_exporter *ex, int k)
{
    const at_node *node = &ex->m->nodes[k];
    const at_node *owner = node->source ? &ex->m->nodes[node->source] : node;
    const int64_t slopes = owner->p.prelu.slopes;
    const char *w;
    int status = ex->rank[k] == 4 && slopes > 1
        ? model_tensor(ex, node, "weight", 3, (int64_t[]){slopes, 1, 1}, &w)
        : model_tensor(ex, node, "weight", 1, (int64_t[]){slopes}, &w);
    if (status)
        return status;
    add_node(ex, "PRelu", ex->value[k], (const char *[]){ex->value[node->inputs[0]], w, NULL},
             ex->value[k]);
    return AT_OK;
}

/* Pad's pads are [n_begin, c_begin, h_begin, w_begin, n_end, c_end, h_end, w_end]. */
static int export_pad2d(onnx_exporter *ex, int k)
{
    const at_node *node = &ex->m->nodes[k];
    const char *pads = text(ex, "%s.pads", ex->value[k]),
               *value = text(ex, "%s.value", ex->value[k]);
    const int64_t p[8] = {0, 0, node->p.pad.top, node->p.pad.left,
                          0, 0, node->p.pad.bottom, node->p.pad.right};
    const_ints(ex, pads, 8, p);
    const_floats(ex, value, 0, NULL, &node->p.pad.value);
    Onnx__NodeProto *n =
        add_node(ex, "Pad", ex->value[k],
                 (const char *[]){ex->value[node->inputs[0]], pads, value, NULL}, ex->value[k]);
    attr_string(ex, n, "mode", "constant");
    return AT_OK;
}

static int export_slice(onnx_exporter *ex, int k)
{
    const at_node *node = &ex->m->nodes[k];
    const int64_t first = node->p.slice.first, end = first + node->out.c, axis = 1;
    const char *starts = text(ex, "%s.starts", ex->value[k]),
               *ends = text(ex, "%s.ends", ex->value[k]),
               *axes = text(ex, "%s.axes", ex->value[k]);
    const_ints(ex, starts, 1, &first);
    const_ints(ex, ends, 1, &end);
    const_ints(ex, axes, 1, &axis);
    add_node(ex, "Slice", ex->value[k],
             (const char *[]){ex->value[node->inputs[0]], starts, ends, axes, NULL},
             ex->value[k]);
    return AT_OK;
}

/* y[oy, ox] = x[floor(oy / s), floor(ox / s)]: Resize's asymmetric coordinates (x_original =
 * x_resized / scale) with nearest_mode floor. */
static int export_upsample2d(onnx_exporter *ex, int k)
{
    const at_node *node = &ex->m->nodes[k];
    const float f = (float)node->p.upsample.factor, scale[4] = {1.0f, 1.0f, f, f};
    const char *scales = text(ex, "%s.scales", ex->value[k]);
    const_floats(ex, scales, 1, (int64_t[]){4}, scale);
    Onnx__NodeProto *n =
        add_node(ex, "Resize", ex->value[k],
                 (const char *[]){ex->value[node->inputs[0]], "", scales, NULL}, ex->value[k]);
    attr_string(ex, n, "mode", "nearest");
    attr_string(ex, n, "coordinate_transformation_mode", "asymmetric");
    attr_string(ex, n, "nearest_mode", "floor");
    return AT_OK;
}

/* round(x * (L - 1)) / (L - 1); ONNX's Round rounds half to even, as nearbyintf does. */
static int export_quantize(onnx_exporter *ex, int k)
{
    const float steps = (float)(ex->m->nodes[k].p.quantize.levels - 1);
    const char *v = ex->value[k], *s = text(ex, "%s.steps", v),
               *scaled = text(ex, "%s_scaled", v), *rounded = text(ex, "%s_rounded", v);
    const_floats(ex, s, 1, (int64_t[]){1}, &steps);
    add_node(ex, "Mul", scaled, (const char *[]){ex->value[ex->m->nodes[k].inputs[0]], s, NULL},
             scaled);
    add_node(ex, "Round", rounded, (const char *[]){scaled, NULL}, rounded);
    add_node(ex, "Div", v, (const char *[]){rounded, s, NULL}, v);
    return AT_OK;
}

static int export_gaussian_noise(onnx_exporter *ex, int k)
{
    if (ex->m->nodes[k].p.noise.sigma != 0.0f)
        return unsupported(ex, k,
                           "adds fresh random noise at every forward, which has no fixed ONNX "
                           "equivalent");
    return export_unary(ex, k, "Identity");
}

static int export_input(onnx_exporter *ex, int k)
{
    return unsupported(ex, k, "is an input inside the graph");
}

/* The operators of each layer kind, in AT_LAYER_LIST's order of names. */
#define AT_EXPORT_ENTRY_(name) [AT_LAYER_##name] = export_##name,
static const export_fn exporters[AT_LAYER_COUNT] = {AT_LAYER_LIST(AT_EXPORT_ENTRY_)};
#undef AT_EXPORT_ENTRY_

/* Float [N, dims...] with N symbolic. */
static Onnx__ValueInfoProto *graph_value(onnx_exporter *ex, const char *name, int ndim,
                                         const int64_t *dims)
{
    Onnx__ValueInfoProto *v = keep(ex, sizeof *v);
    Onnx__TypeProto *type = keep(ex, sizeof *type);
    Onnx__TypeProto__Tensor *tensor = keep(ex, sizeof *tensor);
    Onnx__TensorShapeProto *shape = keep(ex, sizeof *shape);
    Onnx__TensorShapeProto__Dimension **list = keep(ex, (size_t)(ndim + 1) * sizeof *list);
    if (!v || !type || !tensor || !shape || !list)
        return NULL;
    onnx__value_info_proto__init(v);
    onnx__type_proto__init(type);
    onnx__type_proto__tensor__init(tensor);
    onnx__tensor_shape_proto__init(shape);
    v->name = (char *)name;
    v->type = type;
    type->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    type->tensor_type = tensor;
    tensor->has_elem_type = 1;
    tensor->elem_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    tensor->shape = shape;
    shape->dim = list;
    shape->n_dim = (size_t)ndim + 1;
    for (int d = 0; d <= ndim; d++) {
        Onnx__TensorShapeProto__Dimension *dim = keep(ex, sizeof *dim);
        if (!dim)
            return NULL;
        onnx__tensor_shape_proto__dimension__init(dim);
        if (d == 0) {
            dim->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
            dim->dim_param = "N";
        } else {
            dim->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
            dim->dim_value = dims[d - 1];
        }
        list[d] = dim;
    }
    return v;
}

/* The graph: every node in order (the model's order is topological), the last one's output
 * renamed "logits" and flattened to [N, K] when it is still [N, K, 1, 1]. */
static int build_graph(onnx_exporter *ex, Onnx__GraphProto *g)
{
    const at_model *m = ex->m;
    ex->value = keep(ex, (size_t)m->n_nodes * sizeof *ex->value);
    ex->rank = keep(ex, (size_t)m->n_nodes * sizeof *ex->rank);
    if (!ex->value || !ex->rank)
        return AT_ERR_NOMEM;
    const int last = m->n_nodes - 1;
    const at_shape in = m->nodes[0].out, out = m->nodes[last].out;
    if (out.h != 1 || out.w != 1)
        return at_fail(ex->err, AT_ERR_SHAPE, "%s: model '%s' computes %dx%dx%d, not logits",
                       ex->path, m->arch, out.c, out.h, out.w);
    ex->value[0] = value_name(ex, 0);
    ex->rank[0] = 4;
    for (int k = 1; k <= last && !ex->out_of_memory; k++) {
        const at_node *node = &m->nodes[k];
        const at_layer_kind kind = node->kind;
        ex->rank[k] = kind == AT_LAYER_flatten || kind == AT_LAYER_linear ? 2
            : node->n_inputs == 2 ? (ex->rank[node->inputs[0]] == 2 || ex->rank[node->inputs[1]] == 2
                                         ? 2
                                         : 4)
                                  : ex->rank[node->inputs[0]];
        ex->value[k] = k == last && ex->rank[k] == 2 ? text(ex, "logits") : value_name(ex, k);
        if (ex->rank[k] == 2 && (node->out.h != 1 || node->out.w != 1))
            return unsupported(ex, k, "reads a flattened vector as an image");
        if ((kind == AT_LAYER_pad2d || kind == AT_LAYER_upsample2d || kind == AT_LAYER_conv2d ||
             kind == AT_LAYER_maxpool2d || kind == AT_LAYER_avgpool2d) &&
            ex->rank[k] == 2)
            return unsupported(ex, k, "acts on an image but reads a flattened vector");
        int status = exporters[kind](ex, k);
        if (status)
            return status;
    }
    const char *logits = ex->value[last];
    if (ex->rank[last] == 4) {
        Onnx__NodeProto *n = add_node(ex, "Flatten", "logits", (const char *[]){logits, NULL},
                                      "logits");
        attr_int(ex, n, "axis", 1);
    }
    Onnx__ValueInfoProto **io = keep(ex, 2 * sizeof *io);
    if (!io || ex->out_of_memory)
        return AT_ERR_NOMEM;
    io[0] = graph_value(ex, ex->value[0], 3, (int64_t[]){in.c, in.h, in.w});
    io[1] = graph_value(ex, "logits", 1, (int64_t[]){out.c});
    if (!io[0] || !io[1])
        return AT_ERR_NOMEM;
    g->name = text(ex, "%s", m->arch);
    g->node = ex->nodes;
    g->n_node = ex->n_nodes;
    g->initializer = ex->inits;
    g->n_initializer = ex->n_inits;
    g->input = &io[0];
    g->n_input = 1;
    g->output = &io[1];
    g->n_output = 1;
    return AT_OK;
}

/* Temporary file beside the target, synced, then renamed over it. */
static int write_atomically(const char *path, const uint8_t *bytes, size_t size, at_error *err)
{
    size_t cap = strlen(path) + 32;
    char *tmp = malloc(cap);
    if (!tmp)
        return at_fail(err, AT_ERR_NOMEM, "%s: out of memory", path);
    snprintf(tmp, cap, "%s.tmp.%ld", path, (long)getpid());
    int status = AT_OK;
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        status = at_fail(err, AT_ERR_IO, "%s: cannot create %s: %s", path, tmp, strerror(errno));
    } else {
        if (fwrite(bytes, 1, size, f) != size || fflush(f) != 0 || fsync(fileno(f)) != 0)
            status = at_fail(err, AT_ERR_IO, "%s: writing %s failed: %s", path, tmp,
                             strerror(errno));
        if (fclose(f) != 0 && status == AT_OK)
            status = at_fail(err, AT_ERR_IO, "%s: closing %s failed: %s", path, tmp,
                             strerror(errno));
        if (status == AT_OK && rename(tmp, path) != 0)
            status = at_fail(err, AT_ERR_IO, "%s: cannot rename %s over it: %s", path, tmp,
                             strerror(errno));
        if (status != AT_OK)
            remove(tmp);
    }
    free(tmp);
    return status;
}

int at_model_export_onnx(const at_model *m, const char *path, at_error *err)
{
    if (!m || !path)
        return at_fail(err, AT_ERR_ARG, "at_model_export_onnx: NULL argument");
    if (!m->finished || m->n_nodes < 2)
        return at_fail(err, AT_ERR_STATE, "%s: the model is not finished", path);
    onnx_exporter ex = {.m = m, .path = path, .err = err};
    Onnx__ModelProto model;
    Onnx__OperatorSetIdProto opset, *opsets[1] = {&opset};
    Onnx__GraphProto graph;
    onnx__model_proto__init(&model);
    onnx__operator_set_id_proto__init(&opset);
    onnx__graph_proto__init(&graph);
    opset.domain = "";
    opset.has_version = 1;
    opset.version = OPSET;
    model.has_ir_version = 1;
    model.ir_version = IR_VERSION;
    model.producer_name = "advtrain";
    model.producer_version = AT_VERSION_STRING;
    model.opset_import = opsets;
    model.n_opset_import = 1;
    model.graph = &graph;
    int status = build_graph(&ex, &graph);
    if (ex.out_of_memory && (!status || status == AT_ERR_NOMEM))
        status = at_fail(err, AT_ERR_NOMEM, "%s: out of memory", path);
    uint8_t *bytes = NULL;
    if (!status) {
        size_t size = onnx__model_proto__get_packed_size(&model);
        bytes = malloc(size ? size : 1);
        status = bytes ? write_atomically(path, bytes, onnx__model_proto__pack(&model, bytes), err)
                       : at_fail(err, AT_ERR_NOMEM, "%s: out of memory (%zu bytes)", path, size);
    }
    free(bytes);
    for (size_t i = 0; i < ex.n_owned; i++)
        free(ex.owned[i]);
    free(ex.owned);
    free(ex.nodes);
    free(ex.inits);
    return status;
}
