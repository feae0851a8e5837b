/* onnx_emit.c: the protobuf-c structs of an ONNX export (onnx_exporter.h): nodes, attributes
 * and initializers, every allocation kept until the export ends. */
#include "io/onnx_exporter.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
void *at_onnx_alloc(onnx_exporter *ex, size_t bytes)
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

char *at_onnx_text(onnx_exporter *ex, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *s = n >= 0 ? at_onnx_alloc(ex, (size_t)n + 1) : NULL;
    if (s) {
        va_start(ap, fmt);
        vsnprintf(s, (size_t)n + 1, fmt, ap);
        va_end(ap);
    }
    return s ? s : "";
}

/* A node reading `inputs` (NULL-terminated; "" for an omitted optional one) into `output`. */
Onnx__NodeProto *at_onnx_node(onnx_exporter *ex, const char *op, const char *name,
                              const char *const *inputs, const char *output)
{
    Onnx__NodeProto *n = at_onnx_alloc(ex, sizeof *n);
    size_t count = 0;
    while (inputs[count])
        count++;
    char **in = at_onnx_alloc(ex, count * sizeof *in), **out = at_onnx_alloc(ex, sizeof *out);
    Onnx__AttributeProto **attrs = at_onnx_alloc(ex, 8 * sizeof *attrs);
    if (!n || !in || !out || !attrs ||
        !grow((void **)&ex->nodes, &ex->cap_nodes, ex->n_nodes, sizeof *ex->nodes)) {
        ex->out_of_memory = true;
        return NULL;
    }
    onnx__node_proto__init(n);
    n->op_type = (char *)op;
    n->name = at_onnx_text(ex, "%s", name);
    for (size_t k = 0; k < count; k++)
        in[k] = at_onnx_text(ex, "%s", inputs[k]);
    n->input = in;
    n->n_input = count;
    out[0] = at_onnx_text(ex, "%s", output);
    n->output = out;
    n->n_output = 1;
    n->attribute = attrs; /* room for the few attributes an operator here takes */
    ex->nodes[ex->n_nodes++] = n;
    return n;
}

static Onnx__AttributeProto *attribute(onnx_exporter *ex, Onnx__NodeProto *n, const char *name,
                                       Onnx__AttributeProto__AttributeType type)
{
    Onnx__AttributeProto *a = n ? at_onnx_alloc(ex, sizeof *a) : NULL;
    if (!a)
        return NULL;
    onnx__attribute_proto__init(a);
    a->name = (char *)name;
    a->has_type = 1;
    a->type = type;
    n->attribute[n->n_attribute++] = a;
    return a;
}

void at_onnx_put_int(onnx_exporter *ex, Onnx__NodeProto *n, const char *name, int64_t v)
{
    Onnx__AttributeProto *a = attribute(ex, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT);
    if (a) {
        a->has_i = 1;
        a->i = v;
    }
}

void at_onnx_put_float(onnx_exporter *ex, Onnx__NodeProto *n, const char *name, float v)
{
    Onnx__AttributeProto *a = attribute(ex, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT);
    if (a) {
        a->has_f = 1;
        a->f = v;
    }
}

void at_onnx_put_ints(onnx_exporter *ex, Onnx__NodeProto *n, const char *name, size_t count,
                      const int64_t *v)
{
    Onnx__AttributeProto *a = attribute(ex, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS);
    int64_t *ints = a ? at_onnx_alloc(ex, count * sizeof *ints) : NULL;
    if (ints) {
        memcpy(ints, v, count * sizeof *ints);
        a->ints = ints;
        a->n_ints = count;
    }
}

void at_onnx_put_string(onnx_exporter *ex, Onnx__NodeProto *n, const char *name, const char *v)
{
    Onnx__AttributeProto *a = attribute(ex, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING);
    if (a) {
        a->has_s = 1;
        a->s.data = (uint8_t *)at_onnx_text(ex, "%s", v);
        a->s.len = strlen(v);
    }
}

static Onnx__TensorProto *initializer(onnx_exporter *ex, const char *name, int ndim,
                                      const int64_t *dims, Onnx__TensorProto__DataType type)
{
    Onnx__TensorProto *t = at_onnx_alloc(ex, sizeof *t);
    int64_t *d = at_onnx_alloc(ex, (size_t)(ndim > 0 ? ndim : 1) * sizeof *d);
    if (!t || !d || !grow((void **)&ex->inits, &ex->cap_inits, ex->n_inits, sizeof *ex->inits)) {
        ex->out_of_memory = true;
        return NULL;
    }
    onnx__tensor_proto__init(t);
    if (ndim > 0) /* a scalar has no dimensions (dims may be NULL) */
        memcpy(d, dims, (size_t)ndim * sizeof *d);
    t->name = at_onnx_text(ex, "%s", name);
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
void at_onnx_constant(onnx_exporter *ex, const char *name, int ndim, const int64_t *dims,
                      const float *data)
{
    Onnx__TensorProto *t = initializer(ex, name, ndim, dims, ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT);
    size_t n = numel_of(ndim, dims);
    float *copy = t ? at_onnx_alloc(ex, n * sizeof *copy) : NULL;
    if (copy) {
        memcpy(copy, data, n * sizeof *copy);
        t->float_data = copy;
        t->n_float_data = n;
    }
}

void at_onnx_constant_ints(onnx_exporter *ex, const char *name, int64_t count, const int64_t *data)
{
    Onnx__TensorProto *t =
        initializer(ex, name, 1, (int64_t[]){count}, ONNX__TENSOR_PROTO__DATA_TYPE__INT64);
    int64_t *copy = t ? at_onnx_alloc(ex, (size_t)count * sizeof *copy) : NULL;
    if (copy) {
        memcpy(copy, data, (size_t)count * sizeof *copy);
        t->int64_data = copy;
        t->n_int64_data = (size_t)count;
    }
}

/* The layer's tensor "<layer>.<suffix>" as an initializer of that name, its data the model's
 * own (not copied: the model outlives the export), with ONNX's layout `dims` when given (a
 * per-channel PReLU slope broadcasts over NCHW as [C, 1, 1]), else the tensor's shape. */
int at_onnx_weight(onnx_exporter *ex, const at_node *node, const char *suffix, int ndim,
                   const int64_t *dims, const char **name)
{
    const at_node *owner = node->source ? &ex->m->nodes[node->source] : node;
    char full[160];
    snprintf(full, sizeof full, "%s.%s", owner->name, suffix);
    *name = at_onnx_text(ex, "%s", full);
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

/* Node k's input j as a tensor of rank `want` (4 or 2): a [N, C, 1, 1] value read as [N, C]
 * goes through a Flatten. */
const char *at_onnx_input_as(onnx_exporter *ex, int k, int j, int want)
{
    const int x = ex->m->nodes[k].inputs[j];
    if (ex->rank[x] == want || want == 4)
        return ex->value[x];
    const char *flat = at_onnx_text(ex, "%s_flat_%d_%d", ex->value[x], k, j);
    Onnx__NodeProto *n =
        at_onnx_node(ex, "Flatten", flat, (const char *[]){ex->value[x], NULL}, flat);
    at_onnx_put_int(ex, n, "axis", 1);
    return flat;
}

int at_onnx_refuse(onnx_exporter *ex, int k, const char *why)
{
    return at_fail(ex->err, AT_ERR_ARG, "%s: model '%s': layer %d (%s%s%s) %s; not exported",
                   ex->path, ex->m->arch, k, at_layer_name(ex->m->nodes[k].kind),
                   ex->m->nodes[k].name[0] ? " " : "", ex->m->nodes[k].name, why);
}
