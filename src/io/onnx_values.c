/* onnx_values.c: what every operator of an ONNX import needs: its errors (one line, naming the
 * file, and for a node its name and operator), the table of named values, the file's tensors,
 * a node's inputs and attributes, and the naming of layers after their initializers. */
#include "io/onnx_importer.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

int at_onnx_file_error(onnx_importer *im, const char *fmt, ...)
{
    char text[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    return printable(im->err, at_fail(im->err, AT_ERR_FORMAT, "%s: %s", im->file, text));
}

int at_onnx_node_error(onnx_importer *im, const Onnx__NodeProto *node, const char *fmt, ...)
{
    char text[360];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    return printable(im->err,
                     at_fail(im->err, AT_ERR_FORMAT, "%s: node '%s' (%s): %s", im->file,
                             node->name && node->name[0] ? node->name : "(unnamed)",
                             node->op_type ? node->op_type : "?", text));
}

const onnx_value *at_onnx_find_value(const onnx_importer *im, const char *name)
{
    for (int i = im->n_values - 1; i >= 0; i--)
        if (strcmp(im->values[i].name, name) == 0)
            return &im->values[i];
    return NULL;
}

int at_onnx_set_value(onnx_importer *im, const char *name, int node,
                      const Onnx__TensorProto *tensor)
{
    if (grow((void **)&im->values, &im->cap_values, im->n_values, sizeof *im->values))
        return at_fail(im->err, AT_ERR_NOMEM, "%s: out of memory", im->file);
    im->values[im->n_values++] = (onnx_value){name, node, tensor, {0, 0, 0, 0}, 0.0f, NULL};
    return AT_OK;
}

int at_onnx_set_padded(onnx_importer *im, const char *name, int node, const int pad[4], float value)
{
    int status = at_onnx_set_value(im, name, node, NULL);
    if (!status) {
        memcpy(im->values[im->n_values - 1].pad, pad, 4 * sizeof *pad);
        im->values[im->n_values - 1].pad_value = value;
    }
    return status;
}

int at_onnx_alias(onnx_importer *im, const char *name, const onnx_value *v)
{
    const onnx_value copy = *v; /* v may move when the table grows */
    int status = at_onnx_set_value(im, name, copy.node, copy.tensor);
    if (!status) {
        onnx_value *alias = &im->values[im->n_values - 1];
        *alias = copy;
        alias->name = name;
    }
    return status;
}

/* Memory kept until the import ends. */
void *at_onnx_keep(onnx_importer *im, size_t bytes)
{
    void *p = NULL;
    if (!grow((void **)&im->owned, &im->cap_owned, im->n_owned, sizeof *im->owned) &&
        (p = malloc(bytes ? bytes : 1)))
        im->owned[im->n_owned++] = p;
    if (!p)
        at_fail(im->err, AT_ERR_NOMEM, "%s: out of memory", im->file);
    return p;
}

int at_onnx_set_ints(onnx_importer *im, const char *name, const onnx_ints *ints)
{
    onnx_ints *copy = at_onnx_keep(im, sizeof *copy);
    if (!copy)
        return im->err->status;
    *copy = *ints;
    int status = at_onnx_set_value(im, name, -1, NULL);
    if (!status)
        im->values[im->n_values - 1].ints = copy;
    return status;
}

size_t at_onnx_tensor_numel(const Onnx__TensorProto *t)
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

const char *at_onnx_tensor_label(const Onnx__TensorProto *t)
{
    return t->name && t->name[0] ? t->name : "(constant)";
}

/* The values of a FLOAT tensor (kept until the import ends), NULL after an error. */
const float *at_onnx_tensor_floats(onnx_importer *im, const Onnx__NodeProto *node,
                                   const Onnx__TensorProto *t, size_t *count)
{
    size_t n = at_onnx_tensor_numel(t);
    const char *name = at_onnx_tensor_label(t);
    if (n == SIZE_MAX) {
        at_onnx_node_error(im, node, "tensor %s has an invalid shape", name);
        return NULL;
    }
    if (t->has_data_location && t->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL) {
        at_onnx_node_error(im, node,
                           "tensor %s is stored in an external file, which is not supported", name);
        return NULL;
    }
    if (t->data_type != ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT) {
        at_onnx_node_error(im, node, "tensor %s has data type %d, not float32", name,
                           (int)t->data_type);
        return NULL;
    }
    size_t have = t->has_raw_data ? t->raw_data.len / sizeof(float) : t->n_float_data;
    if ((t->has_raw_data && t->raw_data.len != n * sizeof(float)) || have != n) {
        at_onnx_file_error(im, "tensor %s holds %zu values but its shape has %zu", name, have, n);
        return NULL;
    }
    float *data = at_onnx_keep(im, n * sizeof(float));
    if (!data)
        return NULL;
    /* raw_data is little-endian IEEE float32, as is every machine advtrain runs on */
    memcpy(data, t->has_raw_data ? (const void *)t->raw_data.data : (const void *)t->float_data,
           n * sizeof(float));
    *count = n;
    return data;
}

/* The values of an INT64 tensor (Reshape's shape, Pad's pads), at most `cap` of them. */
int at_onnx_tensor_ints(onnx_importer *im, const Onnx__NodeProto *node, const Onnx__TensorProto *t,
                        int64_t *out, size_t cap, size_t *count)
{
    size_t n = at_onnx_tensor_numel(t);
    if (t->data_type != ONNX__TENSOR_PROTO__DATA_TYPE__INT64 || n > cap)
        return at_onnx_node_error(im, node, "tensor %s is not a short int64 list",
                                  at_onnx_tensor_label(t));
    size_t have = t->has_raw_data ? t->raw_data.len / sizeof(int64_t) : t->n_int64_data;
    if ((t->has_raw_data && t->raw_data.len != n * sizeof(int64_t)) || have != n)
        return at_onnx_file_error(im, "tensor %s holds %zu values but its shape has %zu",
                                  at_onnx_tensor_label(t), have, n);
    memcpy(out, t->has_raw_data ? (const void *)t->raw_data.data : (const void *)t->int64_data,
           n * sizeof(int64_t));
    *count = n;
    return AT_OK;
}

/* Input k of a node, which must exist; an empty name (an omitted optional input) is NULL. */
int at_onnx_input_value(onnx_importer *im, const Onnx__NodeProto *node, size_t k,
                        const onnx_value **out)
{
    *out = NULL;
    if (k >= node->n_input || !node->input[k][0])
        return AT_OK;
    *out = at_onnx_find_value(im, node->input[k]);
    if (!*out)
        return at_onnx_node_error(im, node,
                                  "input '%s' is neither an initializer nor the output of an "
                                  "earlier node",
                                  node->input[k]);
    return AT_OK;
}

static bool padded(const onnx_value *v)
{
    return v->pad[0] || v->pad[1] || v->pad[2] || v->pad[3];
}

/* The layer computing a value: its node, after a pad2d layer for a Pad still pending. */
int at_onnx_layer_of(onnx_importer *im, const Onnx__NodeProto *node, const onnx_value *v, int *x)
{
    *x = v->node;
    if (v->node < 0 || !padded(v))
        return AT_OK;
    int y = at_add_pad2d(im->m, v->node, v->pad[0], v->pad[1], v->pad[2], v->pad[3], v->pad_value);
    if (y < 0)
        return at_onnx_build_error(im, node, y, v->node);
    *x = y;
    return AT_OK;
}

/* Input k as a layer's output (not a constant). With `fold_ok`, a pending Pad of zeros alike on
 * every side is left to the caller (*fold); any other pending Pad becomes a pad2d layer. */
int at_onnx_data_input(onnx_importer *im, const Onnx__NodeProto *node, size_t k, bool fold_ok,
                       int *x, int *fold)
{
    const onnx_value *v;
    int status = at_onnx_input_value(im, node, k, &v);
    if (status)
        return status;
    if (!v || v->node < 0)
        return at_onnx_node_error(im, node,
                                  "input %zu must be computed from the model input, not a "
                                  "constant",
                                  k);
    if (fold)
        *fold = 0;
    if (fold_ok && fold && padded(v) && v->pad_value == 0.0f && v->pad[0] == v->pad[1] &&
        v->pad[0] == v->pad[2] && v->pad[0] == v->pad[3]) {
        *x = v->node;
        *fold = v->pad[0];
        return AT_OK;
    }
    return at_onnx_layer_of(im, node, v, x);
}

/* Input k as a constant (initializer or Constant output); optional inputs may be absent. */
int at_onnx_const_input(onnx_importer *im, const Onnx__NodeProto *node, size_t k, bool required,
                        const Onnx__TensorProto **t)
{
    const onnx_value *v;
    *t = NULL;
    int status = at_onnx_input_value(im, node, k, &v);
    if (status)
        return status;
    if (!v) {
        if (required)
            return at_onnx_node_error(im, node, "input %zu is missing", k);
        return AT_OK;
    }
    if (v->node >= 0 || !v->tensor)
        return at_onnx_node_error(im, node, "input '%s' must be an initializer or a constant",
                                  node->input[k]);
    *t = v->tensor;
    return AT_OK;
}

/* Input k as a list of integers: an int64 constant, or dimensions computed from a Shape. */
int at_onnx_int_list(onnx_importer *im, const Onnx__NodeProto *node, size_t k, int64_t *out,
                     size_t cap, size_t *count)
{
    const onnx_value *v;
    int status = at_onnx_input_value(im, node, k, &v);
    if (status)
        return status;
    if (!v || v->node >= 0)
        return at_onnx_node_error(im, node, "input %zu must be a constant list of integers", k);
    if (v->tensor)
        return at_onnx_tensor_ints(im, node, v->tensor, out, cap, count);
    const int n = onnx_ints_count(v->ints);
    if ((size_t)n > cap)
        return at_onnx_node_error(im, node, "input %zu has too many values", k);
    memcpy(out, v->ints->v, (size_t)n * sizeof *out);
    *count = (size_t)n;
    return AT_OK;
}

/* A value as integers: computed ones, or a short int64 constant; false for anything else. */
bool at_onnx_as_ints(const onnx_value *v, onnx_ints *out)
{
    if (v->node >= 0)
        return false;
    if (v->ints) {
        *out = *v->ints;
        return true;
    }
    const Onnx__TensorProto *t = v->tensor;
    size_t n = at_onnx_tensor_numel(t);
    if (t->data_type != ONNX__TENSOR_PROTO__DATA_TYPE__INT64 || t->n_dims > 2 ||
        n > ONNX_INTS_MAX ||
        (t->has_raw_data ? t->raw_data.len != n * sizeof(int64_t) : t->n_int64_data != n))
        return false;
    memset(out, 0, sizeof *out);
    out->rank = (int)t->n_dims;
    for (size_t d = 0; d < t->n_dims; d++)
        out->shape[d] = t->dims[d];
    memcpy(out->v, t->has_raw_data ? (const void *)t->raw_data.data : (const void *)t->int64_data,
           n * sizeof(int64_t));
    return true;
}

const Onnx__AttributeProto *at_onnx_attribute(const Onnx__NodeProto *node, const char *name)
{
    for (size_t i = 0; i < node->n_attribute; i++)
        if (node->attribute[i]->name && strcmp(node->attribute[i]->name, name) == 0)
            return node->attribute[i];
    return NULL;
}

int64_t at_onnx_attr_int(const Onnx__NodeProto *node, const char *name, int64_t fallback)
{
    const Onnx__AttributeProto *a = at_onnx_attribute(node, name);
    return a ? a->i : fallback;
}

float at_onnx_attr_float(const Onnx__NodeProto *node, const char *name, float fallback)
{
    const Onnx__AttributeProto *a = at_onnx_attribute(node, name);
    return a ? a->f : fallback;
}

/* Every attribute of the node must be one of `known` (a NULL-terminated list). */
int at_onnx_check_attributes(onnx_importer *im, const Onnx__NodeProto *node,
                             const char *const *known)
{
    for (size_t i = 0; i < node->n_attribute; i++) {
        const char *name = node->attribute[i]->name ? node->attribute[i]->name : "";
        bool found = false;
        for (int k = 0; known[k] && !found; k++)
            found = strcmp(known[k], name) == 0;
        if (!found)
            return at_onnx_node_error(im, node, "attribute '%s' is not supported", name);
    }
    return AT_OK;
}

/* An ints attribute whose values are all `value` (or absent). */
bool at_onnx_ints_all(const Onnx__NodeProto *node, const char *name, int64_t want)
{
    const Onnx__AttributeProto *a = at_onnx_attribute(node, name);
    for (size_t i = 0; a && i < a->n_ints; i++)
        if (a->ints[i] != want)
            return false;
    return true;
}

/* An ints attribute whose values are all equal: that value (fallback when absent), or -1. */
int64_t at_onnx_ints_same(const Onnx__NodeProto *node, const char *name, int64_t fallback)
{
    const Onnx__AttributeProto *a = at_onnx_attribute(node, name);
    if (!a || a->n_ints == 0)
        return fallback;
    for (size_t i = 1; i < a->n_ints; i++)
        if (a->ints[i] != a->ints[0])
            return -1;
    return a->ints[0];
}

int at_onnx_check_auto_pad(onnx_importer *im, const Onnx__NodeProto *node)
{
    const Onnx__AttributeProto *a = at_onnx_attribute(node, "auto_pad");
    if (a && !(a->s.len == 6 && memcmp(a->s.data, "NOTSET", 6) == 0))
        return at_onnx_node_error(im, node, "auto_pad other than NOTSET is not supported");
    return AT_OK;
}

int at_onnx_build_error(onnx_importer *im, const Onnx__NodeProto *node, int status, int x)
{
    at_shape s = at_graph_shape(im->m, x);
    return at_onnx_node_error(im, node, "cannot be built on an input of shape %dx%dx%d: %s", s.c,
                              s.h, s.w, at_status_string(status));
}

/* The layer's name: the weight initializer's module path when the other tensors follow it
 * ("<path>.weight", "<path>.bias", ...), the node's name otherwise. */
int at_onnx_layer_name(onnx_importer *im, const Onnx__NodeProto *node, int index, char *out,
                       size_t cap, const char *const *inputs, const char *const *suffixes)
{
    const char *weight = inputs[0];
    size_t len = strlen(weight);
    bool follows = len > 7 && strcmp(weight + len - 7, ".weight") == 0 && len - 7 < cap;
    for (int k = 1; follows && suffixes[k]; k++) {
        if (!inputs[k] || !inputs[k][0])
            continue;
        follows = strncmp(inputs[k], weight, len - 7) == 0 && inputs[k][len - 7] == '.' &&
            strcmp(inputs[k] + len - 6, suffixes[k]) == 0;
    }
    int n;
    if (follows)
        n = snprintf(out, cap, "%.*s", (int)(len - 7), weight);
    else if (node->name && node->name[0])
        n = snprintf(out, cap, "%s", node->name);
    else
        n = snprintf(out, cap, "%s_%d", node->op_type, index);
    if (n < 0 || (size_t)n >= cap)
        return at_onnx_node_error(im, node, "its name is too long for a layer (%zu bytes at most)",
                                  cap - 1);
    char tensor[160];
    snprintf(tensor, sizeof tensor, "%s.%s", out, suffixes[0]);
    if (at_model_find_tensor(im->m, tensor) >= 0)
        return at_onnx_node_error(im, node,
                                  "a second layer named '%s' (a shared initializer is not "
                                  "supported)",
                                  out);
    return AT_OK;
}

int at_onnx_add_copy(onnx_importer *im, const char *layer, const char *suffix, const float *data,
                     int rows, int cols)
{
    if (grow((void **)&im->copies, &im->cap_copies, im->n_copies, sizeof *im->copies))
        return at_fail(im->err, AT_ERR_NOMEM, "%s: out of memory", im->file);
    onnx_weight_copy *c = &im->copies[im->n_copies++];
    snprintf(c->tensor, sizeof c->tensor, "%s.%s", layer, suffix);
    c->data = data;
    c->rows = rows;
    c->cols = cols;
    return AT_OK;
}

bool at_onnx_dims_are(const Onnx__TensorProto *t, int n, const int64_t *want)
{
    if ((int)t->n_dims != n)
        return false;
    for (int i = 0; i < n; i++)
        if (t->dims[i] != want[i])
            return false;
    return true;
}

void at_onnx_dims_text(char *out, size_t cap, const Onnx__TensorProto *t)
{
    size_t used = (size_t)snprintf(out, cap, "[");
    for (size_t i = 0; i < t->n_dims && used < cap; i++)
        used += (size_t)snprintf(out + used, cap - used, "%s%lld", i ? ", " : "",
                                 (long long)t->dims[i]);
    if (used < cap)
        snprintf(out + used, cap - used, "]");
}

int at_onnx_shape_mismatch(onnx_importer *im, const Onnx__NodeProto *node,
                           const Onnx__TensorProto *t, const char *expected)
{
    char got[96];
    at_onnx_dims_text(got, sizeof got, t);
    return at_onnx_node_error(im, node, "tensor %s has shape %s but %s", at_onnx_tensor_label(t),
                              got, expected);
}
