/* onnx_shapes.c: ONNX operators (onnx/docs/Operators.md) on small int64 tensors, as exported
 * graphs use them to compute shapes and paddings: Shape (of a constant), Gather, Unsqueeze,
 * Squeeze, Concat, Cast (to int64), ConstantOfShape, Reshape, Slice, Transpose, and Add, Sub,
 * Mul, Div with broadcasting of a scalar. The symbolic batch size (ONNX_BATCH) may be moved and
 * copied but not computed with. */
#include "io/onnx_shapes.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *const OPS[] = {
    "Shape",   "Gather", "Unsqueeze", "Squeeze", "Concat", "Cast", "ConstantOfShape",
    "Reshape", "Slice",  "Transpose", "Add",     "Sub",    "Mul",  "Div",
    NULL};

int onnx_ints_op(const char *op)
{
    for (int i = 0; OPS[i]; i++)
        if (strcmp(OPS[i], op) == 0)
            return 1;
    return 0;
}

static int refuse(char *why, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int refuse(char *why, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, cap, fmt, ap);
    va_end(ap);
    return -1;
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

static void vector(onnx_ints *out, int n)
{
    memset(out, 0, sizeof *out);
    out->rank = 1;
    out->shape[0] = n;
}

/* Elementwise with a scalar (or a one-value tensor) on either side. */
static int arithmetic(char op, const onnx_ints *a, const onnx_ints *b, onnx_ints *out, char *why,
                      size_t cap)
{
    const int na = onnx_ints_count(a), nb = onnx_ints_count(b);
    if (na != nb && na != 1 && nb != 1)
        return refuse(why, cap, "integer operands of %d and %d values", na, nb);
    /* the result has the larger operand's shape (of two single values, the higher rank's) */
    *out = na > nb || (na == nb && a->rank >= b->rank) ? *a : *b;
    for (int i = 0; i < (na > nb ? na : nb); i++) {
        int64_t x = a->v[na == 1 ? 0 : i], y = b->v[nb == 1 ? 0 : i];
        if (x == ONNX_BATCH || y == ONNX_BATCH)
            return refuse(why, cap, "arithmetic on the batch size is not supported");
        if (op == 'D' && y == 0)
            return refuse(why, cap, "integer division by zero");
        /* in unsigned arithmetic: a file's overflowing constants wrap instead of being undefined */
        const uint64_t ux = (uint64_t)x, uy = (uint64_t)y;
        if (op == 'D' && x == INT64_MIN && y == -1)
            return refuse(why, cap, "integer division overflows");
        out->v[i] = op == 'A' ? (int64_t)(ux + uy)
            : op == 'S'       ? (int64_t)(ux - uy)
            : op == 'M'       ? (int64_t)(ux * uy)
                              : x / y;
    }
    return 0;
}

static int reshape(const onnx_ints *data, const onnx_ints *shape, onnx_ints *out, char *why,
                   size_t cap)
{
    const int n = onnx_ints_count(data), dims = onnx_ints_count(shape);
    if (shape->rank != 1 || dims < 1 || dims > 2)
        return refuse(why, cap, "only a reshape of integers to 1 or 2 dimensions is supported");
    int64_t s[2], known = 1;
    int unknown = -1;
    for (int d = 0; d < dims; d++) {
        s[d] = shape->v[d] == 0 ? (d < data->rank ? data->shape[d] : 1) : shape->v[d];
        if (s[d] == -1)
            unknown = d;
        else if (s[d] < 1 || s[d] > ONNX_INTS_MAX)
            return refuse(why, cap, "invalid reshape of integers");
        else
            known *= s[d];
    }
    if (unknown >= 0)
        s[unknown] = known > 0 && n % known == 0 ? n / known : -1;
    if ((dims == 1 ? s[0] : s[0] * s[1]) != n)
        return refuse(why, cap, "reshape of %d integers does not fit", n);
    *out = *data;
    out->rank = dims;
    out->shape[0] = s[0];
    out->shape[1] = dims == 2 ? s[1] : 0;
    return 0;
}

/* Slice on one axis (ONNX's clamping of starts and ends, any non-zero step). */
static int slice(const onnx_ints *const *in, int n_in, onnx_ints *out, char *why, size_t cap)
{
    const onnx_ints *data = in[0];
    if (n_in < 3 || !in[1] || !in[2] || onnx_ints_count(in[1]) != 1 ||
        onnx_ints_count(in[2]) != 1 || data->rank < 1)
        return refuse(why, cap, "only a slice of integers along one axis is supported");
    int64_t axis = n_in > 3 && in[3] ? in[3]->v[0] : 0, step = n_in > 4 && in[4] ? in[4]->v[0] : 1;
    if (axis < 0)
        axis += data->rank;
    if (axis < 0 || axis >= data->rank || step == 0)
        return refuse(why, cap, "invalid slice of integers");
    const int64_t dim = data->shape[axis];
    int64_t start = in[1]->v[0], end = in[2]->v[0];
    if (start < 0)
        start += dim;
    if (end < 0 && end > INT64_MIN + dim)
        end += dim;
    if (step > 0) {
        start = start < 0 ? 0 : start > dim ? dim : start;
        end = end < 0 ? 0 : end > dim ? dim : end;
    } else {
        start = start < 0 ? -1 : start > dim - 1 ? dim - 1 : start;
        end = end < -1 ? -1 : end > dim - 1 ? dim - 1 : end;
    }
    int64_t picked[ONNX_INTS_MAX];
    int count = 0;
    for (int64_t i = start; step > 0 ? i < end : i > end; i += step)
        picked[count++] = i;
    *out = *data;
    out->shape[axis] = count;
    const int64_t rows = data->rank == 2 ? data->shape[0] : 1,
                  cols = data->rank == 2 ? data->shape[1] : data->shape[0];
    const int64_t out_rows = data->rank == 2 ? out->shape[0] : 1,
                  out_cols = data->rank == 2 ? out->shape[1] : out->shape[0];
    for (int64_t r = 0; r < out_rows; r++)
        for (int64_t c = 0; c < out_cols; c++) {
            int64_t sr = r, sc = c;
            if (data->rank == 2 && axis == 0)
                sr = picked[r];
            else
                sc = picked[c];
            out->v[r * out_cols + c] = data->v[sr * cols + sc];
        }
    (void)rows;
    return 0;
}

int onnx_ints_eval(const Onnx__NodeProto *node, const onnx_ints *const *in, int n_in,
                   onnx_ints *out, char *why, size_t cap)
{
    const char *op = node->op_type;
    if (n_in < 1 || !in[0])
        return refuse(why, cap, "needs an input");
    const onnx_ints *a = in[0], *b = n_in > 1 ? in[1] : NULL;
    if (!strcmp(op, "Shape")) {
        vector(out, a->rank);
        for (int d = 0; d < a->rank; d++)
            out->v[d] = a->shape[d];
        return 0;
    }
    if (!strcmp(op, "Cast")) {
        if (attr_int(node, "to", 0) != ONNX__TENSOR_PROTO__DATA_TYPE__INT64)
            return refuse(why, cap, "only a cast of integers to int64 is supported");
        *out = *a;
        return 0;
    }
    if (!strcmp(op, "Gather")) {
        if (!b || attr_int(node, "axis", 0) != 0 || a->rank != 1 || b->rank > 1)
            return refuse(why, cap, "only a gather from a list of integers is supported");
        *out = *b;
        for (int i = 0; i < onnx_ints_count(b); i++) {
            int64_t at = b->v[i] < 0 ? b->v[i] + a->shape[0] : b->v[i];
            if (at < 0 || at >= a->shape[0])
                return refuse(why, cap, "index %lld is out of range", (long long)b->v[i]);
            out->v[i] = a->v[at];
        }
        return 0;
    }
    if (!strcmp(op, "Unsqueeze") || !strcmp(op, "Squeeze")) {
        /* only as shape code uses them: a scalar to [1] and back, [k] to [1, k] */
        const int n = onnx_ints_count(a);
        *out = *a;
        if (op[0] == 'U' && a->rank == 0) {
            vector(out, 1);
            out->v[0] = a->v[0];
        } else if (op[0] == 'U' && a->rank == 1) {
            out->rank = 2;
            out->shape[1] = a->shape[0];
            out->shape[0] = 1;
        } else if (op[0] == 'S' && n == 1) {
            out->rank = 0;
        } else {
            return refuse(why, cap, "this %s of integers is not supported", op);
        }
        return 0;
    }
    if (!strcmp(op, "Concat")) {
        if (attr_int(node, "axis", 0) != 0)
            return refuse(why, cap, "only a concatenation of integer lists is supported");
        vector(out, 0);
        for (int k = 0; k < n_in; k++) {
            const int n = in[k] ? onnx_ints_count(in[k]) : 0;
            if (!in[k] || in[k]->rank != 1 || out->shape[0] + n > ONNX_INTS_MAX)
                return refuse(why, cap, "only a concatenation of integer lists is supported");
            memcpy(out->v + out->shape[0], in[k]->v, (size_t)n * sizeof(int64_t));
            out->shape[0] += n;
        }
        return 0;
    }
    if (!strcmp(op, "ConstantOfShape")) {
        const Onnx__AttributeProto *value = attribute(node, "value");
        const Onnx__TensorProto *t = value ? value->t : NULL;
        int64_t fill = 0;
        if (t && t->data_type == ONNX__TENSOR_PROTO__DATA_TYPE__INT64 && t->n_int64_data == 1)
            fill = t->int64_data[0];
        else if (t && t->data_type == ONNX__TENSOR_PROTO__DATA_TYPE__INT64 && t->has_raw_data &&
                 t->raw_data.len == sizeof fill)
            memcpy(&fill, t->raw_data.data, sizeof fill);
        else if (t)
            return refuse(why, cap, "only an int64 value is supported");
        if (a->rank > 1 || onnx_ints_count(a) != 1 || a->v[0] < 0 || a->v[0] > ONNX_INTS_MAX)
            return refuse(why, cap, "only a short list of integers can be made");
        vector(out, (int)a->v[0]);
        for (int i = 0; i < (int)a->v[0]; i++)
            out->v[i] = fill;
        return 0;
    }
    if (!strcmp(op, "Reshape"))
        return b ? reshape(a, b, out, why, cap) : refuse(why, cap, "needs a shape");
    if (!strcmp(op, "Slice"))
        return slice(in, n_in, out, why, cap);
    if (!strcmp(op, "Transpose")) {
        if (a->rank != 2)
            return refuse(why, cap, "only a transpose of an integer matrix is supported");
        *out = *a;
        out->shape[0] = a->shape[1];
        out->shape[1] = a->shape[0];
        for (int64_t r = 0; r < a->shape[0]; r++)
            for (int64_t c = 0; c < a->shape[1]; c++)
                out->v[c * a->shape[0] + r] = a->v[r * a->shape[1] + c];
        return 0;
    }
    if (!b)
        return refuse(why, cap, "needs two inputs");
    return arithmetic(op[0], a, b, out, why, cap);
}
