/* onnx_import.c: an ONNX model (onnx.proto, opsets 9 to 17 as torch.onnx.export writes them)
 * becomes an advtrain graph (arch "graph", models/graph_spec.c) with the file's weights.
 *
 * The file is parsed by the C code protobuf-c generates at build time from onnx.proto (Debian's
 * libonnx-dev). Nodes are taken in file order (ONNX requires a topological order) and each
 * becomes zero or more layers:
 *   Conv -> conv2d (group 1, square kernel, equal strides, one padding on all sides; a Pad of
 *   zeros before it folds into that padding), BatchNormalization -> batchnorm2d (eps, and
 *   PyTorch's momentum = 1 - ONNX momentum), Relu, LeakyRelu, Sigmoid, Tanh, Softplus,
 *   MaxPool/AveragePool (no padding), GlobalAveragePool, Gemm and MatMul (with an Add of a
 *   constant after it: its bias) -> linear, Flatten(axis 1) and Reshape to [N, -1] -> flatten,
 *   Add and Mul of two nodes -> add and mul, Sub/Div/Add/Mul by a constant scalar or per-channel
 *   vector -> normalize (mean, std) or scale, Dropout and Identity pass their input through,
 *   Constant holds a value for the nodes after it. The integer operators an export uses to
 *   compute shapes and pads (x.view(x.size(0), -1); F.pad from opset 11 on) are evaluated here
 *   (onnx_shapes.c), with the batch size kept as a symbol.
 * Anything else (an operator, an attribute value, a dynamic dimension other than the batch) is
 * refused with one line naming the node and its operator: an import never guesses.
 *
 * A layer with weights is named after its weight initializer: "conv1.weight" (with "conv1.bias")
 * gives the layer "conv1", so a graph exported from a torch module keeps its state_dict names.
 * Otherwise (eval-mode export folds batch norm into "onnx::Conv_42"-style initializers) the layer
 * takes the node's name. Gemm with transB 0 and MatMul store [in, out] weights; the layer holds
 * them transposed, as nn.Linear does. */
#include "io/onnx_shapes.h"
#include "models/graph_spec.h"
#include "onnx.pb-c.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_FILE_BYTES ((size_t)1 << 31)

/* A named value of the graph: a layer's output (node >= 0), a constant tensor, or integers
 * computed at import (onnx_shapes.c: x.view(x.size(0), -1) exports Shape, Gather, Unsqueeze,
 * Concat and Reshape), which may hold the batch size as ONNX_BATCH. */
typedef struct value {
    const char *name;
    int node;                       /* the advtrain node, or -1 for a constant or integers */
    const Onnx__TensorProto *tensor; /* the constant, or NULL */
    int pad;                        /* zero padding (Pad) still to fold into a Conv */
    const onnx_ints *ints;          /* the integers when node < 0 and tensor is NULL */
} value;

/* A tensor of the file to copy into the finished model. */
typedef struct weight_copy {
    char tensor[128];
    const float *data;
    int rows, cols; /* transposed when rows > 0: data is [rows, cols], the tensor [cols, rows] */
} weight_copy;

typedef struct importer {
    const char *file;
    at_error *err;
    at_model *m;
    const Onnx__GraphProto *g;
    value *values;
    int n_values, cap_values;
    weight_copy *copies;
    int n_copies, cap_copies;
    void **owned; /* tensor data and dimension lists, freed when the import ends */
    int n_owned, cap_owned;
    bool *absorbed; /* per ONNX node: an Add taken into the MatMul before it */
} importer;

static int grow(void **items, int *cap, int used, size_t size)
{
    if (used < *cap)
        return AT_OK;
    int next = *cap ? 2 * *cap : 32;
    void *p = realloc(*items, (size_t)next * size);
    if (!p)
        return AT_ERR_NOMEM;
    *items = p;
    *cap = next;
    return AT_OK;
}

/* Names come from the file: a control character in one must not break the one-line message. */
static int printable(at_error *err, int status)
{
    for (char *c = err->message; *c; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f)
            *c = '?';
    return status;
}

static int file_error(importer *im, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int file_error(importer *im, const char *fmt, ...)
{
    char text[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    return printable(im->err, at_fail(im->err, AT_ERR_FORMAT, "%s: %s", im->file, text));
}

static int node_error(importer *im, const Onnx__NodeProto *node, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int node_error(importer *im, const Onnx__NodeProto *node, const char *fmt, ...)
{
    char text[360];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    return printable(im->err, at_fail(im->err, AT_ERR_FORMAT, "%s: node '%s' (%s): %s", im->file,
                                      node->name && node->name[0] ? node->name : "(unnamed)",
                                      node->op_type ? node->op_type : "?", text));
}

static const value *find_value(const importer *im, const char *name)
{
    for (int i = im->n_values - 1; i >= 0; i--)
        if (strcmp(im->values[i].name, name) == 0)
            return &im->values[i];
    return NULL;
}

static int set_value(importer *im, const char *name, int node, const Onnx__TensorProto *tensor,
                     int pad)
{
    if (grow((void **)&im->values, &im->cap_values, im->n_values, sizeof *im->values))
        return at_fail(im->err, AT_ERR_NOMEM, "%s: out of memory", im->file);
    im->values[im->n_values++] = (value){name, node, tensor, pad, NULL};
    return AT_OK;
}

/* Memory kept until the import ends. */
static void *keep(importer *im, size_t bytes)
{
    void *p = NULL;
    if (!grow((void **)&im->owned, &im->cap_owned, im->n_owned, sizeof *im->owned) &&
        (p = malloc(bytes ? bytes : 1)))
        im->owned[im->n_owned++] = p;
    if (!p)
        at_fail(im->err, AT_ERR_NOMEM, "%s: out of memory", im->file);
    return p;
}

static int set_ints(importer *im, const char *name, const onnx_ints *ints)
{
    onnx_ints *copy = keep(im, sizeof *copy);
    if (!copy)
        return im->err->status;
    *copy = *ints;
    int status = set_value(im, name, -1, NULL, 0);
    if (!status)
        im->values[im->n_values - 1].ints = copy;
    return status;
}

static size_t tensor_numel(const Onnx__TensorProto *t)
{
    size_t n = 1;
    for (size_t d = 0; d < t->n_dims; d++) {
        if (t->dims[d] < 0 || t->dims[d] > ((int64_t)1 << 32))
            return SIZE_MAX;
        n *= (size_t)t->dims[d];
        if (n > ((size_t)1 << 34))
            return SIZE_MAX;
    }
    return n;
}

static const char *tensor_label(const Onnx__TensorProto *t)
{
    return t->name && t->name[0] ? t->name : "(constant)";
}

/* The values of a FLOAT tensor (kept until the import ends), NULL after an error. */
static const float *tensor_floats(importer *im, const Onnx__NodeProto *node,
                                  const Onnx__TensorProto *t, size_t *count)
{
    size_t n = tensor_numel(t);
    const char *name = tensor_label(t);
    if (n == SIZE_MAX) {
        node_error(im, node, "tensor %s has an invalid shape", name);
        return NULL;
    }
    if (t->has_data_location && t->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL) {
        node_error(im, node, "tensor %s is stored in an external file, which is not supported",
                   name);
        return NULL;
    }
    if (t->data_type != ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT) {
        node_error(im, node, "tensor %s has data type %d, not float32", name, (int)t->data_type);
        return NULL;
    }
    size_t have = t->has_raw_data ? t->raw_data.len / sizeof(float) : t->n_float_data;
    if ((t->has_raw_data && t->raw_data.len != n * sizeof(float)) || have != n) {
        file_error(im, "tensor %s holds %zu values but its shape has %zu", name, have, n);
        return NULL;
    }
    float *data = keep(im, n * sizeof(float));
    if (!data)
        return NULL;
    /* raw_data is little-endian IEEE float32, as is every machine advtrain runs on */
    memcpy(data, t->has_raw_data ? (const void *)t->raw_data.data : (const void *)t->float_data,
           n * sizeof(float));
    *count = n;
    return data;
}

/* The values of an INT64 tensor (Reshape's shape, Pad's pads), at most `cap` of them. */
static int tensor_ints(importer *im, const Onnx__NodeProto *node, const Onnx__TensorProto *t,
                       int64_t *out, size_t cap, size_t *count)
{
    size_t n = tensor_numel(t);
    if (t->data_type != ONNX__TENSOR_PROTO__DATA_TYPE__INT64 || n > cap)
        return node_error(im, node, "tensor %s is not a short int64 list", tensor_label(t));
    size_t have = t->has_raw_data ? t->raw_data.len / sizeof(int64_t) : t->n_int64_data;
    if ((t->has_raw_data && t->raw_data.len != n * sizeof(int64_t)) || have != n)
        return file_error(im, "tensor %s holds %zu values but its shape has %zu",
                          tensor_label(t), have, n);
    memcpy(out, t->has_raw_data ? (const void *)t->raw_data.data : (const void *)t->int64_data,
           n * sizeof(int64_t));
    *count = n;
    return AT_OK;
}

/* Input k of a node, which must exist; an empty name (an omitted optional input) is NULL. */
static int input_value(importer *im, const Onnx__NodeProto *node, size_t k, const value **out)
{
    *out = NULL;
    if (k >= node->n_input || !node->input[k][0])
        return AT_OK;
    *out = find_value(im, node->input[k]);
    if (!*out)
        return node_error(im, node, "input '%s' is neither an initializer nor the output of an "
                          "earlier node", node->input[k]);
    return AT_OK;
}

/* Input k as a layer's output (not a constant, no Pad pending unless `pad_ok`). */
static int data_input(importer *im, const Onnx__NodeProto *node, size_t k, bool pad_ok, int *x,
                      int *pad)
{
    const value *v;
    int status = input_value(im, node, k, &v);
    if (status)
        return status;
    if (!v || v->node < 0)
        return node_error(im, node, "input %zu must be computed from the model input, not a "
                          "constant", k);
    if (v->pad && !pad_ok)
        return node_error(im, node, "a Pad before it can only fold into a Conv");
    *x = v->node;
    if (pad)
        *pad = v->pad;
    return AT_OK;
}

/* Input k as a constant (initializer or Constant output); optional inputs may be absent. */
static int const_input(importer *im, const Onnx__NodeProto *node, size_t k, bool required,
                       const Onnx__TensorProto **t)
{
    const value *v;
    *t = NULL;
    int status = input_value(im, node, k, &v);
    if (status)
        return status;
    if (!v) {
        if (required)
            return node_error(im, node, "input %zu is missing", k);
        return AT_OK;
    }
    if (v->node >= 0 || !v->tensor)
        return node_error(im, node, "input '%s' must be an initializer or a constant",
                          node->input[k]);
    *t = v->tensor;
    return AT_OK;
}

/* Input k as a list of integers: an int64 constant, or dimensions computed from a Shape. */
static int int_list(importer *im, const Onnx__NodeProto *node, size_t k, int64_t *out,
                    size_t cap, size_t *count)
{
    const value *v;
    int status = input_value(im, node, k, &v);
    if (status)
        return status;
    if (!v || v->node >= 0)
        return node_error(im, node, "input %zu must be a constant list of integers", k);
    if (v->tensor)
        return tensor_ints(im, node, v->tensor, out, cap, count);
    const int n = onnx_ints_count(v->ints);
    if ((size_t)n > cap)
        return node_error(im, node, "input %zu has too many values", k);
    memcpy(out, v->ints->v, (size_t)n * sizeof *out);
    *count = (size_t)n;
    return AT_OK;
}

/* A value as integers: computed ones, or a short int64 constant; false for anything else. */
static bool as_ints(const value *v, onnx_ints *out)
{
    if (v->node >= 0)
        return false;
    if (v->ints) {
        *out = *v->ints;
        return true;
    }
    const Onnx__TensorProto *t = v->tensor;
    size_t n = tensor_numel(t);
    if (t->data_type != ONNX__TENSOR_PROTO__DATA_TYPE__INT64 || t->n_dims > 2 ||
        n > ONNX_INTS_MAX || (t->has_raw_data ? t->raw_data.len != n * sizeof(int64_t)
                                              : t->n_int64_data != n))
        return false;
    memset(out, 0, sizeof *out);
    out->rank = (int)t->n_dims;
    for (size_t d = 0; d < t->n_dims; d++)
        out->shape[d] = t->dims[d];
    memcpy(out->v, t->has_raw_data ? (const void *)t->raw_data.data : (const void *)t->int64_data,
           n * sizeof(int64_t));
    return true;
}

static const Onnx__AttributeProto *attribute(const Onnx__NodeProto *node, const char *name)
{
    for (size_t i = 0; i < node->n_attribute; i++)
        if (node->attribute[i]->name && strcmp(node->attribute[i]->name, name) == 0)
            return node->attribute[i];
    return NULL;
}

static int64_t attr_int(const Onnx__NodeProto *node, const char *name, int64_t fallback)
{
    const Onnx__AttributeProto *a = attribute(node, name);
    return a ? a->i : fallback;
}

static float attr_float(const Onnx__NodeProto *node, const char *name, float fallback)
{
    const Onnx__AttributeProto *a = attribute(node, name);
    return a ? a->f : fallback;
}

/* Every attribute of the node must be one of `known` (a NULL-terminated list). */
static int check_attributes(importer *im, const Onnx__NodeProto *node, const char *const *known)
{
    for (size_t i = 0; i < node->n_attribute; i++) {
        const char *name = node->attribute[i]->name ? node->attribute[i]->name : "";
        bool found = false;
        for (int k = 0; known[k] && !found; k++)
            found = strcmp(known[k], name) == 0;
        if (!found)
            return node_error(im, node, "attribute '%s' is not supported", name);
    }
    return AT_OK;
}

/* An ints attribute whose values are all `value` (or absent). */
static bool ints_all(const Onnx__NodeProto *node, const char *name, int64_t want)
{
    const Onnx__AttributeProto *a = attribute(node, name);
    for (size_t i = 0; a && i < a->n_ints; i++)
        if (a->ints[i] != want)
            return false;
    return true;
}

/* An ints attribute whose values are all equal: that value (fallback when absent), or -1. */
static int64_t ints_same(const Onnx__NodeProto *node, const char *name, int64_t fallback)
{
    const Onnx__AttributeProto *a = attribute(node, name);
    if (!a || a->n_ints == 0)
        return fallback;
    for (size_t i = 1; i < a->n_ints; i++)
        if (a->ints[i] != a->ints[0])
            return -1;
    return a->ints[0];
}

static int check_auto_pad(importer *im, const Onnx__NodeProto *node)
{
    const Onnx__AttributeProto *a = attribute(node, "auto_pad");
    if (a && !(a->s.len == 6 && memcmp(a->s.data, "NOTSET", 6) == 0))
        return node_error(im, node, "auto_pad other than NOTSET is not supported");
    return AT_OK;
}

static int build_error(importer *im, const Onnx__NodeProto *node, int status, int x)
{
    at_shape s = at_graph_shape(im->m, x);
    return node_error(im, node, "cannot be built on an input of shape %dx%dx%d: %s", s.c, s.h,
                      s.w, at_status_string(status));
}

/* The layer's name: the weight initializer's module path when the other tensors follow it
 * ("<path>.weight", "<path>.bias", ...), the node's name otherwise. */
static int layer_name(importer *im, const Onnx__NodeProto *node, int index, char *out,
                      size_t cap, const char *const *inputs, const char *const *suffixes)
{
    const char *weight = inputs[0];
    size_t len = strlen(weight);
    bool follows = len > 7 && strcmp(weight + len - 7, ".weight") == 0 && len - 7 < cap;
    for (int k = 1; follows && suffixes[k]; k++) {
        if (!inputs[k] || !inputs[k][0])
            continue;
        follows = strncmp(inputs[k], weight, len - 7) == 0 &&
                  inputs[k][len - 7] == '.' && strcmp(inputs[k] + len - 6, suffixes[k]) == 0;
    }
    int n;
    if (follows)
        n = snprintf(out, cap, "%.*s", (int)(len - 7), weight);
    else if (node->name && node->name[0])
        n = snprintf(out, cap, "%s", node->name);
    else
        n = snprintf(out, cap, "%s_%d", node->op_type, index);
    if (n < 0 || (size_t)n >= cap)
        return node_error(im, node, "its name is too long for a layer (%zu bytes at most)", cap - 1);
    char tensor[160];
    snprintf(tensor, sizeof tensor, "%s.%s", out, suffixes[0]);
    if (at_model_find_tensor(im->m, tensor) >= 0)
        return node_error(im, node, "a second layer named '%s' (a shared initializer is not "
                          "supported)", out);
    return AT_OK;
}

static int add_copy(importer *im, const char *layer, const char *suffix, const float *data,
                    int rows, int cols)
{
    if (grow((void **)&im->copies, &im->cap_copies, im->n_copies, sizeof *im->copies))
        return at_fail(im->err, AT_ERR_NOMEM, "%s: out of memory", im->file);
    weight_copy *c = &im->copies[im->n_copies++];
    snprintf(c->tensor, sizeof c->tensor, "%s.%s", layer, suffix);
    c->data = data;
    c->rows = rows;
    c->cols = cols;
    return AT_OK;
}

static bool dims_are(const Onnx__TensorProto *t, int n, const int64_t *want)
{
    if ((int)t->n_dims != n)
        return false;
    for (int i = 0; i < n; i++)
        if (t->dims[i] != want[i])
            return false;
    return true;
}

static void dims_text(char *out, size_t cap, const Onnx__TensorProto *t)
{
    size_t used = (size_t)snprintf(out, cap, "[");
    for (size_t i = 0; i < t->n_dims && used < cap; i++)
        used += (size_t)snprintf(out + used, cap - used, "%s%lld", i ? ", " : "",
                                 (long long)t->dims[i]);
    if (used < cap)
        snprintf(out + used, cap - used, "]");
}

static int shape_mismatch(importer *im, const Onnx__NodeProto *node, const Onnx__TensorProto *t,
                          const char *expected)
{
    char got[96];
    dims_text(got, sizeof got, t);
    return node_error(im, node, "tensor %s has shape %s but %s", tensor_label(t), got, expected);
}

static int import_conv(importer *im, const Onnx__NodeProto *node, int index)
{
    static const char *const known[] = {"kernel_shape", "strides", "pads", "dilations", "group",
                                        "auto_pad", NULL};
    int x, pad, status;
    const Onnx__TensorProto *w, *b;
    if ((status = check_attributes(im, node, known)) || (status = check_auto_pad(im, node)) ||
        (status = data_input(im, node, 0, true, &x, &pad)) ||
        (status = const_input(im, node, 1, true, &w)) ||
        (status = const_input(im, node, 2, false, &b)))
        return status;
    if (attr_int(node, "group", 1) != 1)
        return node_error(im, node, "grouped convolution (group %lld) is not supported",
                          (long long)attr_int(node, "group", 1));
    if (!ints_all(node, "dilations", 1))
        return node_error(im, node, "dilated convolution is not supported");
    at_shape in = at_graph_shape(im->m, x);
    if (w->n_dims != 4 || w->dims[1] != in.c) {
        char text[64];
        snprintf(text, sizeof text, "the input has %d channels", in.c);
        return shape_mismatch(im, node, w, text);
    }
    if (w->dims[2] != w->dims[3])
        return node_error(im, node, "kernel %lldx%lld is not square (not supported)",
                          (long long)w->dims[2], (long long)w->dims[3]);
    const int oc = (int)w->dims[0], k = (int)w->dims[2];
    const Onnx__AttributeProto *ks = attribute(node, "kernel_shape");
    if (ks && (ks->n_ints != 2 || ks->ints[0] != k || ks->ints[1] != k))
        return node_error(im, node, "kernel_shape does not match weight %s", tensor_label(w));
    int64_t stride = ints_same(node, "strides", 1), pads = ints_same(node, "pads", 0);
    if (stride < 1)
        return node_error(im, node, "unequal strides are not supported");
    if (pads < 0)
        return node_error(im, node, "asymmetric padding is not supported");
    if (b && !dims_are(b, 1, (int64_t[]){oc}))
        return shape_mismatch(im, node, b, "the convolution has that many output channels");
    char name[96];
    const char *inputs[2] = {node->input[1], b ? node->input[2] : NULL};
    static const char *const suffixes[] = {"weight", "bias", NULL};
    if ((status = layer_name(im, node, index, name, sizeof name, inputs, suffixes)))
        return status;
    size_t nw, nb;
    const float *wd = tensor_floats(im, node, w, &nw), *bd = NULL;
    if (!wd || (b && !(bd = tensor_floats(im, node, b, &nb))))
        return im->err->status;
    int y = at_add_conv2d(im->m, x, name, oc, k, (int)stride, (int)(pads + pad), b != NULL);
    if (y < 0)
        return build_error(im, node, y, x);
    if ((status = add_copy(im, name, "weight", wd, 0, 0)) ||
        (b && (status = add_copy(im, name, "bias", bd, 0, 0))))
        return status;
    return set_value(im, node->output[0], y, NULL, 0);
}

static int import_batchnorm(importer *im, const Onnx__NodeProto *node, int index)
{
    static const char *const known[] = {"epsilon", "momentum", "training_mode", "spatial", NULL};
    static const char *const suffixes[] = {"weight", "bias", "running_mean", "running_var", NULL};
    int x, status;
    const Onnx__TensorProto *t[4];
    if ((status = check_attributes(im, node, known)) ||
        (status = data_input(im, node, 0, false, &x, NULL)))
        return status;
    for (int k = 0; k < 4; k++)
        if ((status = const_input(im, node, (size_t)k + 1, true, &t[k])))
            return status;
    if (attr_int(node, "spatial", 1) != 1)
        return node_error(im, node, "spatial 0 is not supported");
    const int c = at_graph_shape(im->m, x).c;
    const float *data[4];
    for (int k = 0; k < 4; k++) {
        size_t n;
        if (!dims_are(t[k], 1, (int64_t[]){c}))
            return shape_mismatch(im, node, t[k], "the input's channels do not match it");
        if (!(data[k] = tensor_floats(im, node, t[k], &n)))
            return im->err->status;
    }
    float eps = attr_float(node, "epsilon", 1e-5f), momentum = attr_float(node, "momentum", 0.9f);
    if (!(eps > 0.0f) || !(momentum >= 0.0f && momentum <= 1.0f))
        return node_error(im, node, "epsilon %g or momentum %g out of range", eps, momentum);
    char name[96];
    const char *inputs[4] = {node->input[1], node->input[2], node->input[3], node->input[4]};
    if ((status = layer_name(im, node, index, name, sizeof name, inputs, suffixes)))
        return status;
    int y = at_add_batchnorm2d(im->m, x, name);
    if (y < 0)
        return build_error(im, node, y, x);
    im->m->nodes[y].p.bn.eps = eps;
    im->m->nodes[y].p.bn.momentum = 1.0f - momentum; /* ONNX keeps `momentum` of the old value */
    for (int k = 0; k < 4; k++)
        if ((status = add_copy(im, name, suffixes[k], data[k], 0, 0)))
            return status;
    return set_value(im, node->output[0], y, NULL, 0);
}

/* Gemm (A B^T + C with transB 1, as nn.Linear exports) and MatMul followed by an Add of [out]. */
static int import_linear(importer *im, const Onnx__NodeProto *node, int index, bool gemm)
{
    static const char *const known_gemm[] = {"alpha", "beta", "transA", "transB", NULL};
    static const char *const none[] = {NULL};
    int x, status;
    const Onnx__TensorProto *w, *b = NULL;
    if ((status = check_attributes(im, node, gemm ? known_gemm : none)) ||
        (status = data_input(im, node, 0, false, &x, NULL)) ||
        (status = const_input(im, node, 1, true, &w)) ||
        (gemm && (status = const_input(im, node, 2, false, &b))))
        return status;
    if (gemm && (attr_int(node, "transA", 0) != 0 || attr_float(node, "alpha", 1.0f) != 1.0f ||
                 attr_float(node, "beta", 1.0f) != 1.0f))
        return node_error(im, node, "only transA 0, alpha 1 and beta 1 are supported");
    const bool transposed = !gemm || attr_int(node, "transB", 0) == 0; /* w is [in, out] */
    at_shape in = at_graph_shape(im->m, x);
    if (in.h != 1 || in.w != 1)
        return node_error(im, node, "its input has shape %dx%dx%d; flatten it first", in.c, in.h,
                          in.w);
    if (w->n_dims != 2 || w->dims[transposed ? 0 : 1] != in.c) {
        char text[64];
        snprintf(text, sizeof text, "the input has %d features", in.c);
        return shape_mismatch(im, node, w, text);
    }
    const int out = (int)w->dims[transposed ? 1 : 0];
    const char *bias_name = b ? node->input[2] : NULL;
    int absorbed = -1;
    if (!gemm) { /* the one node reading the product, when it adds a constant [out] */
        int readers = 0, reader = -1;
        for (size_t j = (size_t)index + 1; j < im->g->n_node; j++)
            for (size_t q = 0; q < im->g->node[j]->n_input; q++)
                if (strcmp(im->g->node[j]->input[q], node->output[0]) == 0) {
                    readers++;
                    reader = (int)j;
                }
        const Onnx__NodeProto *add = readers == 1 ? im->g->node[reader] : NULL;
        if (add && strcmp(add->op_type, "Add") == 0 && add->n_input == 2) {
            const value *v = find_value(im, add->input[strcmp(add->input[0], node->output[0]) == 0]);
            if (v && v->node < 0 && v->tensor && tensor_numel(v->tensor) == (size_t)out &&
                (v->tensor->n_dims == 1 || (v->tensor->n_dims == 2 && v->tensor->dims[0] == 1))) {
                b = v->tensor;
                bias_name = v->name;
                absorbed = reader;
            }
        }
    }
    if (b && tensor_numel(b) != (size_t)out)
        return shape_mismatch(im, node, b, "the layer has that many outputs");
    char name[96];
    const char *inputs[2] = {node->input[1], bias_name};
    static const char *const suffixes[] = {"weight", "bias", NULL};
    if ((status = layer_name(im, node, index, name, sizeof name, inputs, suffixes)))
        return status;
    size_t nw, nb;
    const float *wd = tensor_floats(im, node, w, &nw), *bd = NULL;
    if (!wd || (b && !(bd = tensor_floats(im, node, b, &nb))))
        return im->err->status;
    int y = at_add_linear(im->m, x, name, out, b != NULL);
    if (y < 0)
        return build_error(im, node, y, x);
    if ((status = add_copy(im, name, "weight", wd, transposed ? in.c : 0, out)) ||
        (b && (status = add_copy(im, name, "bias", bd, 0, 0))))
        return status;
    if (absorbed >= 0) {
        im->absorbed[absorbed] = true;
        if ((status = set_value(im, im->g->node[absorbed]->output[0], y, NULL, 0)))
            return status;
    }
    return set_value(im, node->output[0], y, NULL, 0);
}

/* A constant that acts per channel on a node of shape s: a scalar, or C values laid out as
 * [C, 1, 1] or [1, C, 1, 1] (or [C], [1, C] on a vector). Fills c values; false otherwise. */
static bool per_channel(const Onnx__TensorProto *t, const float *data, size_t n, at_shape s,
                        float *out)
{
    if (n == 1) {
        for (int c = 0; c < s.c && c < 4; c++)
            out[c] = data[0];
        return s.c <= 4;
    }
    if (n != (size_t)s.c || s.c > 4)
        return false;
    bool layout = dims_are(t, 3, (int64_t[]){s.c, 1, 1}) || dims_are(t, 4, (int64_t[]){1, s.c, 1, 1});
    if (s.h == 1 && s.w == 1)
        layout = layout || dims_are(t, 1, (int64_t[]){s.c}) || dims_are(t, 2, (int64_t[]){1, s.c});
    for (int c = 0; layout && c < s.c; c++)
        out[c] = data[c];
    return layout;
}

/* Add, Sub, Mul, Div: of two nodes (Add, Mul), or of a node and a constant (input
 * normalisation: x - mean, x / std, and the like). */
static int import_arithmetic(importer *im, const Onnx__NodeProto *node)
{
    static const char *const none[] = {NULL};
    const char *op = node->op_type;
    const value *a, *b;
    int status;
    if ((status = check_attributes(im, node, none)) ||
        (status = input_value(im, node, 0, &a)) || (status = input_value(im, node, 1, &b)))
        return status;
    if (!a || !b)
        return node_error(im, node, "needs two inputs");
    if (a->pad || b->pad)
        return node_error(im, node, "a Pad before it can only fold into a Conv");
    if ((a->node < 0 && b->node < 0) || (a->node < 0 && !a->tensor) || (b->node < 0 && !b->tensor))
        return node_error(im, node, "arithmetic on two constants or on dimensions is not "
                          "supported");
    int y;
    if (a->node >= 0 && b->node >= 0) {
        at_shape sa = at_graph_shape(im->m, a->node), sb = at_graph_shape(im->m, b->node);
        bool add = strcmp(op, "Add") == 0, mul = strcmp(op, "Mul") == 0;
        if (!add && !mul)
            return node_error(im, node, "%s of two computed values is not supported", op);
        if (sa.c != sb.c || sa.h != sb.h || sa.w != sb.w)
            return node_error(im, node, "shapes %dx%dx%d and %dx%dx%d differ (broadcasting is not "
                              "supported)", sa.c, sa.h, sa.w, sb.c, sb.h, sb.w);
        y = add ? at_add_add(im->m, a->node, b->node) : at_add_mul(im->m, a->node, b->node);
        if (y < 0)
            return build_error(im, node, y, a->node);
        return set_value(im, node->output[0], y, NULL, 0);
    }
    const bool constant_first = a->node < 0;
    const value *x = constant_first ? b : a, *k = constant_first ? a : b;
    if (constant_first && (strcmp(op, "Sub") == 0 || strcmp(op, "Div") == 0))
        return node_error(im, node, "a constant %s a computed value is not supported",
                          op[0] == 'S' ? "minus" : "divided by");
    size_t n;
    const float *data = tensor_floats(im, node, k->tensor, &n);
    if (!data)
        return im->err->status;
    at_shape s = at_graph_shape(im->m, x->node);
    float v[4], mean[4], std[4];
    const bool scalar = n == 1;
    if (!per_channel(k->tensor, data, n, s, v)) {
        if (!(scalar && (strcmp(op, "Mul") == 0 || strcmp(op, "Div") == 0))) {
            char got[96];
            dims_text(got, sizeof got, k->tensor);
            return node_error(im, node, "constant %s of shape %s does not act per channel on "
                              "%dx%dx%d (at most 4 channels)", tensor_label(k->tensor), got, s.c,
                              s.h, s.w);
        }
    }
    if (scalar && (strcmp(op, "Mul") == 0 || strcmp(op, "Div") == 0)) {
        if (!(data[0] != 0.0f) || !isfinite(data[0]))
            return node_error(im, node, "%s by %g is not supported", op, data[0]);
        y = at_add_scale(im->m, x->node, op[0] == 'M' ? data[0] : 1.0f / data[0]);
        if (y < 0)
            return build_error(im, node, y, x->node);
        return set_value(im, node->output[0], y, NULL, 0);
    }
    /* (x - mean) / std with one of the two trivial */
    for (int c = 0; c < s.c; c++) {
        mean[c] = 0.0f;
        std[c] = 1.0f;
        switch (op[0]) {
        case 'A': mean[c] = -v[c]; break;
        case 'S': mean[c] = v[c]; break;
        case 'M': std[c] = 1.0f / v[c]; break;
        case 'D': std[c] = v[c]; break;
        }
        if (!(std[c] > 0.0f) || !isfinite(std[c]) || !isfinite(mean[c]))
            return node_error(im, node, "only a positive, finite per-channel %s is supported",
                              op[0] == 'M' ? "factor" : "divisor");
    }
    y = at_add_normalize(im->m, x->node, mean, std);
    if (y < 0)
        return build_error(im, node, y, x->node);
    return set_value(im, node->output[0], y, NULL, 0);
}

static int import_pool(importer *im, const Onnx__NodeProto *node, bool max)
{
    static const char *const known[] = {"kernel_shape", "strides", "pads", "dilations",
                                        "ceil_mode", "auto_pad", "storage_order",
                                        "count_include_pad", NULL};
    int x, status;
    if ((status = check_attributes(im, node, known)) || (status = check_auto_pad(im, node)) ||
        (status = data_input(im, node, 0, false, &x, NULL)))
        return status;
    const Onnx__AttributeProto *ks = attribute(node, "kernel_shape");
    if (!ks || ks->n_ints != 2 || ks->ints[0] != ks->ints[1] || ks->ints[0] < 1)
        return node_error(im, node, "only a square 2-d kernel_shape is supported");
    int64_t stride = ints_same(node, "strides", 1);
    if (stride < 1)
        return node_error(im, node, "unequal strides are not supported");
    if (!ints_all(node, "pads", 0))
        return node_error(im, node, "padding is not supported");
    if (!ints_all(node, "dilations", 1) || attr_int(node, "ceil_mode", 0) != 0 ||
        attr_int(node, "storage_order", 0) != 0)
        return node_error(im, node, "dilations, ceil_mode and storage_order are not supported");
    int y = max ? at_add_maxpool2d(im->m, x, (int)ks->ints[0], (int)stride)
                : at_add_avgpool2d(im->m, x, (int)ks->ints[0], (int)stride);
    if (y < 0)
        return build_error(im, node, y, x);
    return set_value(im, node->output[0], y, NULL, 0);
}

/* Pad of zeros on height and width alike, kept on the value until a Conv takes it. */
static int import_pad(importer *im, const Onnx__NodeProto *node)
{
    static const char *const known[] = {"mode", "pads", "value", NULL};
    int x, pad, status;
    if ((status = check_attributes(im, node, known)) ||
        (status = data_input(im, node, 0, true, &x, &pad)))
        return status;
    const Onnx__AttributeProto *mode = attribute(node, "mode");
    if (mode && !(mode->s.len == 8 && memcmp(mode->s.data, "constant", 8) == 0))
        return node_error(im, node, "only constant padding is supported");
    int64_t pads[8];
    size_t n = 0;
    const Onnx__AttributeProto *p = attribute(node, "pads");
    if (p) { /* opset < 11 */
        n = p->n_ints;
        if (n > 8)
            return node_error(im, node, "pads has %zu values", n);
        memcpy(pads, p->ints, n * sizeof *pads);
        if (attr_float(node, "value", 0.0f) != 0.0f)
            return node_error(im, node, "only zero padding is supported");
    } else {
        const Onnx__TensorProto *fill;
        if ((status = int_list(im, node, 1, pads, 8, &n)) ||
            (status = const_input(im, node, 2, false, &fill)))
            return status;
        if (node->n_input > 3 && node->input[3][0])
            return node_error(im, node, "the axes input is not supported");
        size_t nv;
        const float *v = fill ? tensor_floats(im, node, fill, &nv) : NULL;
        if (fill && (!v || nv != 1 || v[0] != 0.0f))
            return v ? node_error(im, node, "only zero padding is supported") : im->err->status;
    }
    /* [n_begin, c_begin, h_begin, w_begin, n_end, c_end, h_end, w_end] */
    if (n != 8 || pads[0] || pads[1] || pads[4] || pads[5] || pads[2] != pads[3] ||
        pads[2] != pads[6] || pads[2] != pads[7] || pads[2] < 0 || pads[2] > 65536)
        return node_error(im, node, "only the same zero padding on all four sides of the image is "
                          "supported");
    return set_value(im, node->output[0], x, NULL, pad + (int)pads[2]);
}

static int import_flatten(importer *im, const Onnx__NodeProto *node, bool reshape)
{
    static const char *const flatten_known[] = {"axis", NULL};
    static const char *const reshape_known[] = {"allowzero", NULL};
    int x, status;
    if ((status = check_attributes(im, node, reshape ? reshape_known : flatten_known)) ||
        (status = data_input(im, node, 0, false, &x, NULL)))
        return status;
    size_t numel = at_shape_numel(at_graph_shape(im->m, x));
    if (reshape) {
        int64_t shape[8];
        size_t n;
        if ((status = int_list(im, node, 1, shape, 8, &n)))
            return status;
        bool flat = n == 2 && (shape[0] >= -1 || shape[0] == ONNX_BATCH) &&
                    attr_int(node, "allowzero", 0) == 0 &&
                    (shape[1] == -1 || shape[1] == (int64_t)numel) &&
                    !(shape[0] == -1 && shape[1] == -1);
        if (!flat)
            return node_error(im, node, "only a reshape to [N, -1] (flattening) is supported");
    } else if (attr_int(node, "axis", 1) != 1) {
        return node_error(im, node, "only axis 1 is supported");
    }
    int y = at_add_flatten(im->m, x);
    if (y < 0)
        return build_error(im, node, y, x);
    return set_value(im, node->output[0], y, NULL, 0);
}

/* Relu, LeakyRelu, Sigmoid, Tanh, Softplus, GlobalAveragePool: one input, one layer. */
static int import_unary(importer *im, const Onnx__NodeProto *node)
{
    static const char *const leaky_known[] = {"alpha", NULL};
    static const char *const none[] = {NULL};
    const char *op = node->op_type;
    const bool leaky = strcmp(op, "LeakyRelu") == 0;
    int x, status;
    if ((status = check_attributes(im, node, leaky ? leaky_known : none)) ||
        (status = data_input(im, node, 0, false, &x, NULL)))
        return status;
    int y;
    if (leaky)
        y = at_add_leaky_relu(im->m, x, attr_float(node, "alpha", 0.01f));
    else if (strcmp(op, "Relu") == 0)
        y = at_add_relu(im->m, x);
    else if (strcmp(op, "Sigmoid") == 0)
        y = at_add_sigmoid(im->m, x);
    else if (strcmp(op, "Tanh") == 0)
        y = at_add_tanh(im->m, x);
    else if (strcmp(op, "Softplus") == 0)
        y = at_add_softplus(im->m, x);
    else
        y = at_add_global_avgpool(im->m, x);
    if (y < 0)
        return build_error(im, node, y, x);
    return set_value(im, node->output[0], y, NULL, 0);
}

/* Identity and Dropout (at inference, and its mask unused): the output is the input. */
static int import_pass_through(importer *im, const Onnx__NodeProto *node)
{
    static const char *const known[] = {"ratio", "seed", NULL};
    const value *v;
    int status;
    if ((status = check_attributes(im, node, known)) || (status = input_value(im, node, 0, &v)))
        return status;
    if (!v)
        return node_error(im, node, "needs an input");
    return set_value(im, node->output[0], v->node, v->tensor, v->pad);
}

static int import_constant(importer *im, const Onnx__NodeProto *node)
{
    static const char *const known[] = {"value", NULL};
    int status = check_attributes(im, node, known);
    if (status)
        return status;
    const Onnx__AttributeProto *a = attribute(node, "value");
    if (!a || !a->t)
        return node_error(im, node, "only a tensor 'value' is supported");
    return set_value(im, node->output[0], -1, a->t, 0);
}

/* The rank ONNX gives a layer's output: 2 after a flatten or a linear layer (and the
 * element-wise layers after them), 4 from the image input on. */
static int onnx_rank(const at_model *m, int k)
{
    while (k > 0 && m->nodes[k].kind != AT_LAYER_flatten && m->nodes[k].kind != AT_LAYER_linear &&
           m->nodes[k].kind != AT_LAYER_conv2d)
        k = m->nodes[k].inputs[0];
    return k > 0 && m->nodes[k].kind != AT_LAYER_conv2d ? 2 : 4;
}

/* An operator on integers (onnx_shapes.c), and Shape of a layer's output: the dimensions of
 * its ONNX tensor with the batch size as ONNX_BATCH. false in *done when an input is neither. */
static int import_ints(importer *im, const Onnx__NodeProto *node, bool *done)
{
    onnx_ints in[6], out;
    const onnx_ints *ptr[6] = {NULL};
    int status;
    *done = false;
    if (node->n_input > 6)
        return AT_OK;
    if (!strcmp(node->op_type, "Shape") && node->n_input == 1) {
        const value *v;
        if ((status = input_value(im, node, 0, &v)))
            return status;
        if (v && v->node >= 0) {
            *done = true;
            if (attribute(node, "start") || attribute(node, "end"))
                return node_error(im, node, "start and end are not supported");
            at_shape s = at_graph_shape(im->m, v->node);
            memset(&out, 0, sizeof out);
            out.rank = 1;
            out.shape[0] = onnx_rank(im->m, v->node);
            out.v[0] = ONNX_BATCH;
            out.v[1] = s.c;
            out.v[2] = s.h;
            out.v[3] = s.w;
            return set_ints(im, node->output[0], &out);
        }
    }
    for (size_t k = 0; k < node->n_input; k++) {
        const value *v;
        if ((status = input_value(im, node, k, &v)))
            return status;
        if (v && !as_ints(v, &in[k]))
            return AT_OK;
        ptr[k] = v ? &in[k] : NULL;
    }
    *done = true;
    char why[200];
    if (onnx_ints_eval(node, ptr, (int)node->n_input, &out, why, sizeof why))
        return node_error(im, node, "%s", why);
    return set_ints(im, node->output[0], &out);
}

static int import_node(importer *im, const Onnx__NodeProto *node, int index)
{
    const char *op = node->op_type ? node->op_type : "";
    if (node->domain && node->domain[0] && strcmp(node->domain, "ai.onnx") != 0)
        return node_error(im, node, "operator domain '%s' is not supported", node->domain);
    if (node->n_output < 1 || !node->output[0][0])
        return node_error(im, node, "has no output");
    if (im->absorbed[index])
        return AT_OK; /* the bias of the MatMul before it */
    if (onnx_ints_op(op)) { /* on integers: shapes and paddings */
        bool done;
        int status = import_ints(im, node, &done);
        if (status || done)
            return status;
    }
    if (!strcmp(op, "Conv"))
        return import_conv(im, node, index);
    if (!strcmp(op, "BatchNormalization"))
        return import_batchnorm(im, node, index);
    if (!strcmp(op, "Gemm") || !strcmp(op, "MatMul"))
        return import_linear(im, node, index, op[0] == 'G');
    if (!strcmp(op, "Add") || !strcmp(op, "Sub") || !strcmp(op, "Mul") || !strcmp(op, "Div"))
        return import_arithmetic(im, node);
    if (!strcmp(op, "MaxPool") || !strcmp(op, "AveragePool"))
        return import_pool(im, node, op[0] == 'M');
    if (!strcmp(op, "Pad"))
        return import_pad(im, node);
    if (!strcmp(op, "Flatten") || !strcmp(op, "Reshape"))
        return import_flatten(im, node, op[0] == 'R');
    if (!strcmp(op, "Relu") || !strcmp(op, "LeakyRelu") || !strcmp(op, "Sigmoid") ||
        !strcmp(op, "Tanh") || !strcmp(op, "Softplus") || !strcmp(op, "GlobalAveragePool"))
        return import_unary(im, node);
    if (!strcmp(op, "Identity") || !strcmp(op, "Dropout"))
        return import_pass_through(im, node);
    if (!strcmp(op, "Constant"))
        return import_constant(im, node);
    if (onnx_ints_op(op))
        return node_error(im, node, "operator %s is supported on integers only (shapes, pads)",
                          op);
    return node_error(im, node, "operator %s is not supported", op);
}

static bool is_initializer(const Onnx__GraphProto *g, const char *name)
{
    for (size_t i = 0; i < g->n_initializer; i++)
        if (g->initializer[i]->name && strcmp(g->initializer[i]->name, name) == 0)
            return true;
    return false;
}

/* The one graph input that is not an initializer: float [N, C, H, W], N alone may vary. */
static int begin_model(importer *im)
{
    const Onnx__GraphProto *g = im->g;
    const Onnx__ValueInfoProto *input = NULL;
    for (size_t i = 0; i < g->n_input; i++) {
        if (!g->input[i]->name || is_initializer(g, g->input[i]->name))
            continue;
        if (input)
            return file_error(im, "the graph has two inputs (%s, %s); one image input is "
                              "supported", input->name, g->input[i]->name);
        input = g->input[i];
    }
    if (!input)
        return file_error(im, "the graph has no input");
    const Onnx__TypeProto *type = input->type;
    const Onnx__TensorShapeProto *shape =
        type && type->value_case == ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE && type->tensor_type
            ? type->tensor_type->shape : NULL;
    if (!shape || type->tensor_type->elem_type != ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT ||
        shape->n_dim != 4)
        return file_error(im, "input %s is not a float32 tensor [N, C, H, W]", input->name);
    int64_t dims[3];
    for (int d = 1; d < 4; d++) {
        const Onnx__TensorShapeProto__Dimension *dim = shape->dim[d];
        if (dim->value_case != ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE)
            return file_error(im, "input %s has a dynamic dimension %d (only the batch may vary)",
                              input->name, d);
        dims[d - 1] = dim->dim_value;
    }
    if (at_model_begin(&im->m, dims[0] > 65536 ? 0 : (int)dims[0],
                       dims[1] > 65536 ? 0 : (int)dims[1], dims[2] > 65536 ? 0 : (int)dims[2],
                       im->err))
        return file_error(im, "input %s has an invalid shape", input->name);
    at_strlcpy(im->m->arch, AT_GRAPH_ARCH, sizeof im->m->arch);
    int status = set_value(im, input->name, 0, NULL, 0);
    for (size_t i = 0; i < g->n_initializer && !status; i++)
        if (g->initializer[i]->name)
            status = set_value(im, g->initializer[i]->name, -1, g->initializer[i], 0);
    return status;
}

/* The graph's one output must be the last layer: logits [N, K]. */
static int check_output(importer *im)
{
    const Onnx__GraphProto *g = im->g;
    if (g->n_output != 1)
        return file_error(im, "the graph has %zu outputs; one (the logits) is supported",
                          g->n_output);
    const value *v = find_value(im, g->output[0]->name);
    if (!v || v->node < 0)
        return file_error(im, "output %s is not computed by the graph", g->output[0]->name);
    if (v->node != im->m->n_nodes - 1)
        return file_error(im, "output %s is not the last layer computed (unused branches are "
                          "not supported)", g->output[0]->name);
    at_shape s = at_graph_shape(im->m, v->node);
    if (s.h != 1 || s.w != 1)
        return file_error(im, "output %s has shape %dx%dx%d, not a vector of logits",
                          g->output[0]->name, s.c, s.h, s.w);
    const Onnx__TypeProto *type = g->output[0]->type;
    const Onnx__TensorShapeProto *shape =
        type && type->value_case == ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE && type->tensor_type
            ? type->tensor_type->shape : NULL;
    if (shape && shape->n_dim == 2 &&
        shape->dim[1]->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE &&
        shape->dim[1]->dim_value != s.c)
        return file_error(im, "output %s is declared with %lld classes but the graph computes %d",
                          g->output[0]->name, (long long)shape->dim[1]->dim_value, s.c);
    if (shape && shape->n_dim != 2)
        return file_error(im, "output %s is declared with %zu dimensions, not [N, classes]",
                          g->output[0]->name, shape->n_dim);
    return AT_OK;
}

static int copy_weights(importer *im)
{
    for (int i = 0; i < im->n_copies; i++) {
        const weight_copy *c = &im->copies[i];
        int k = at_model_find_tensor(im->m, c->tensor);
        if (k < 0)
            return at_fail(im->err, AT_ERR_STATE, "%s: tensor %s was not declared", im->file,
                           c->tensor);
        at_tensor_info t = at_model_tensor(im->m, k);
        if (c->rows > 0) /* [rows, cols] -> [cols, rows] */
            for (int r = 0; r < c->rows; r++)
                for (int q = 0; q < c->cols; q++)
                    t.data[(size_t)q * c->rows + r] = c->data[(size_t)r * c->cols + q];
        else
            memcpy(t.data, c->data, t.numel * sizeof(float));
    }
    return AT_OK;
}

static int check_header(importer *im, const Onnx__ModelProto *model)
{
    if (!model->has_ir_version || model->ir_version < 3 || !model->graph)
        return file_error(im, "not an ONNX model (no IR version or graph)");
    int64_t opset = -1;
    for (size_t i = 0; i < model->n_opset_import; i++) {
        const Onnx__OperatorSetIdProto *o = model->opset_import[i];
        if (!o->domain || !o->domain[0] || strcmp(o->domain, "ai.onnx") == 0)
            opset = o->version;
    }
    if (opset < 9 || opset > 17)
        return file_error(im, "opset %lld is not supported (9 to 17 are)", (long long)opset);
    return AT_OK;
}

static int import_model(importer *im, const Onnx__ModelProto *model)
{
    int status = check_header(im, model);
    if (status)
        return status;
    im->g = model->graph;
    im->absorbed = calloc(im->g->n_node + 1, sizeof *im->absorbed);
    if (!im->absorbed)
        return at_fail(im->err, AT_ERR_NOMEM, "%s: out of memory", im->file);
    if ((status = begin_model(im)))
        return status;
    for (size_t i = 0; i < im->g->n_node && !status; i++)
        status = import_node(im, im->g->node[i], (int)i);
    if (!status)
        status = check_output(im);
    if (!status && at_model_finish(im->m, 0, im->err)) {
        char reason[sizeof im->err->message];
        at_strlcpy(reason, im->err->message, sizeof reason);
        status = file_error(im, "%s", reason);
    }
    if (!status)
        status = copy_weights(im);
    return status;
}

int at_model_import_onnx(at_model **out, const char *path, at_error *err)
{
    *out = NULL;
    if (!path)
        return at_fail(err, AT_ERR_ARG, "at_model_import_onnx: path is NULL");
    FILE *f = fopen(path, "rb");
    if (!f)
        return at_fail(err, AT_ERR_IO, "%s: cannot open", path);
    uint8_t *bytes = NULL;
    size_t size = 0, cap = 0;
    for (;;) {
        if (size == cap) {
            cap = cap ? 2 * cap : 1 << 16;
            uint8_t *more = cap <= MAX_FILE_BYTES ? realloc(bytes, cap) : NULL;
            if (!more) {
                free(bytes);
                fclose(f);
                return at_fail(err, AT_ERR_NOMEM, "%s: too large to read", path);
            }
            bytes = more;
        }
        size_t got = fread(bytes + size, 1, cap - size, f);
        size += got;
        if (got == 0)
            break;
    }
    bool failed = ferror(f) != 0;
    fclose(f);
    if (failed) {
        free(bytes);
        return at_fail(err, AT_ERR_IO, "%s: read error", path);
    }
    importer im = {.file = path, .err = err};
    Onnx__ModelProto *model = size ? onnx__model_proto__unpack(NULL, size, bytes) : NULL;
    free(bytes);
    int status = model ? import_model(&im, model)
                       : at_fail(err, AT_ERR_FORMAT, "%s: not an ONNX model (not a valid protobuf "
                                 "message, or truncated)", path);
    if (model)
        onnx__model_proto__free_unpacked(model, NULL);
    for (int i = 0; i < im.n_owned; i++)
        free(im.owned[i]);
    free(im.owned);
    free(im.values);
    free(im.copies);
    free(im.absorbed);
    if (status) {
        at_model_free(im.m);
        return status;
    }
    *out = im.m;
    return AT_OK;
}

bool at_is_onnx_path(const char *path)
{
    size_t n = path ? strlen(path) : 0;
    return n > 5 && strcmp(path + n - 5, ".onnx") == 0;
}
