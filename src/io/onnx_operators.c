/* onnx_operators.c: each ONNX operator an import supports, as the layers it becomes (the list
 * and its limits: onnx_import.c). A node that cannot be computed exactly is refused by name. */
#include "io/onnx_importer.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

/* A layer's weight and optional bias: the layer's name, made from the initializers' names, and
 * their data. */
typedef struct weight_bias {
    char name[96];
    const float *weight, *bias;
} weight_bias;

static int read_weight_bias(onnx_importer *im, const Onnx__NodeProto *node, int index,
                            const Onnx__TensorProto *w, const char *w_name,
                            const Onnx__TensorProto *b, const char *b_name, weight_bias *out)
{
    const char *inputs[2] = {w_name, b ? b_name : NULL};
    static const char *const suffixes[] = {"weight", "bias", NULL};
    int status = at_onnx_layer_name(im, node, index, out->name, sizeof out->name, inputs, suffixes);
    if (status)
        return status;
    size_t n;
    out->bias = NULL;
    out->weight = at_onnx_tensor_floats(im, node, w, &n);
    if (!out->weight || (b && !(out->bias = at_onnx_tensor_floats(im, node, b, &n))))
        return im->err->status;
    return AT_OK;
}

/* Copies them into the layer just added under that name (at_onnx_add_copy: a weight stored as
 * [rows, cols] is transposed when rows > 0). */
static int copy_weight_bias(onnx_importer *im, const weight_bias *wb, int rows, int cols)
{
    int status = at_onnx_add_copy(im, wb->name, "weight", wb->weight, rows, cols);
    if (!status && wb->bias)
        status = at_onnx_add_copy(im, wb->name, "bias", wb->bias, 0, 0);
    return status;
}

static int import_conv(onnx_importer *im, const Onnx__NodeProto *node, int index)
{
    static const char *const known[] = {"kernel_shape", "strides",  "pads", "dilations",
                                        "group",        "auto_pad", NULL};
    int x, pad, status;
    const Onnx__TensorProto *w, *b;
    if ((status = at_onnx_check_attributes(im, node, known)) ||
        (status = at_onnx_check_auto_pad(im, node)) ||
        (status = at_onnx_data_input(im, node, 0, true, &x, &pad)) ||
        (status = at_onnx_const_input(im, node, 1, true, &w)) ||
        (status = at_onnx_const_input(im, node, 2, false, &b)))
        return status;
    if (at_onnx_attr_int(node, "group", 1) != 1)
        return at_onnx_node_error(im, node, "grouped convolution (group %lld) is not supported",
                                  (long long)at_onnx_attr_int(node, "group", 1));
    if (!at_onnx_ints_all(node, "dilations", 1))
        return at_onnx_node_error(im, node, "dilated convolution is not supported");
    at_shape in = at_graph_shape(im->m, x);
    if (w->n_dims != 4 || w->dims[1] != in.c) {
        char text[64];
        snprintf(text, sizeof text, "the input has %d channels", in.c);
        return at_onnx_shape_mismatch(im, node, w, text);
    }
    if (w->dims[2] != w->dims[3])
        return at_onnx_node_error(im, node, "kernel %lldx%lld is not square (not supported)",
                                  (long long)w->dims[2], (long long)w->dims[3]);
    const int oc = (int)w->dims[0], k = (int)w->dims[2];
    const Onnx__AttributeProto *ks = at_onnx_attribute(node, "kernel_shape");
    if (ks && (ks->n_ints != 2 || ks->ints[0] != k || ks->ints[1] != k))
        return at_onnx_node_error(im, node, "kernel_shape does not match weight %s",
                                  at_onnx_tensor_label(w));
    int64_t stride = at_onnx_ints_same(node, "strides", 1),
            pads = at_onnx_ints_same(node, "pads", 0);
    if (stride < 1)
        return at_onnx_node_error(im, node, "unequal strides are not supported");
    if (pads < 0) { /* uneven padding ("same" with an even kernel or stride): a pad2d layer */
        const Onnx__AttributeProto *p = at_onnx_attribute(node, "pads");
        bool valid = p->n_ints == 4;
        for (size_t q = 0; q < p->n_ints && valid; q++)
            valid = p->ints[q] >= 0 && p->ints[q] <= 65536;
        if (!valid)
            return at_onnx_node_error(im, node, "pads must be 4 values, none negative");
        x = at_add_pad2d(im->m, x, (int)p->ints[0] + pad, (int)p->ints[1] + pad,
                         (int)p->ints[2] + pad, (int)p->ints[3] + pad, 0.0f);
        if (x < 0)
            return at_onnx_build_error(im, node, x, 0);
        pads = pad = 0;
    }
    if (b && !at_onnx_dims_are(b, 1, (int64_t[]){oc}))
        return at_onnx_shape_mismatch(im, node, b, "the convolution has that many output channels");
    weight_bias wb;
    const char *bias_name = b ? node->input[2] : NULL;
    if ((status = read_weight_bias(im, node, index, w, node->input[1], b, bias_name, &wb)))
        return status;
    int y = at_add_conv2d(im->m, x, wb.name, oc, k, (int)stride, (int)(pads + pad), b != NULL);
    if (y < 0)
        return at_onnx_build_error(im, node, y, x);
    if ((status = copy_weight_bias(im, &wb, 0, 0)))
        return status;
    return at_onnx_set_value(im, node->output[0], y, NULL);
}

static int import_batchnorm(onnx_importer *im, const Onnx__NodeProto *node, int index)
{
    static const char *const known[] = {"epsilon", "momentum", "training_mode", "spatial", NULL};
    static const char *const suffixes[] = {"weight", "bias", "running_mean", "running_var", NULL};
    int x, status;
    const Onnx__TensorProto *t[4];
    if ((status = at_onnx_check_attributes(im, node, known)) ||
        (status = at_onnx_data_input(im, node, 0, false, &x, NULL)))
        return status;
    for (int k = 0; k < 4; k++)
        if ((status = at_onnx_const_input(im, node, (size_t)k + 1, true, &t[k])))
            return status;
    if (at_onnx_attr_int(node, "spatial", 1) != 1)
        return at_onnx_node_error(im, node, "spatial 0 is not supported");
    const int c = at_graph_shape(im->m, x).c;
    const float *data[4];
    for (int k = 0; k < 4; k++) {
        size_t n;
        if (!at_onnx_dims_are(t[k], 1, (int64_t[]){c}))
            return at_onnx_shape_mismatch(im, node, t[k], "the input's channels do not match it");
        if (!(data[k] = at_onnx_tensor_floats(im, node, t[k], &n)))
            return im->err->status;
    }
    float eps = at_onnx_attr_float(node, "epsilon", 1e-5f),
          momentum = at_onnx_attr_float(node, "momentum", 0.9f);
    if (!(eps > 0.0f) || !(momentum >= 0.0f && momentum <= 1.0f))
        return at_onnx_node_error(im, node, "epsilon %g or momentum %g out of range", eps,
                                  momentum);
    char name[96];
    const char *inputs[4] = {node->input[1], node->input[2], node->input[3], node->input[4]};
    if ((status = at_onnx_layer_name(im, node, index, name, sizeof name, inputs, suffixes)))
        return status;
    int y = at_add_batchnorm2d(im->m, x, name);
    if (y < 0)
        return at_onnx_build_error(im, node, y, x);
    im->m->nodes[y].p.bn.eps = eps;
    im->m->nodes[y].p.bn.momentum =
        1.0f - momentum; /* ONNX keeps `momentum` of the old onnx_value */
    for (int k = 0; k < 4; k++)
        if ((status = at_onnx_add_copy(im, name, suffixes[k], data[k], 0, 0)))
            return status;
    return at_onnx_set_value(im, node->output[0], y, NULL);
}

/* Gemm (A B^T + C with transB 1, as nn.Linear exports) and MatMul followed by an Add of [out]. */
static int import_linear(onnx_importer *im, const Onnx__NodeProto *node, int index, bool gemm)
{
    static const char *const known_gemm[] = {"alpha", "beta", "transA", "transB", NULL};
    static const char *const none[] = {NULL};
    int x, status;
    const Onnx__TensorProto *w, *b = NULL;
    if ((status = at_onnx_check_attributes(im, node, gemm ? known_gemm : none)) ||
        (status = at_onnx_data_input(im, node, 0, false, &x, NULL)) ||
        (status = at_onnx_const_input(im, node, 1, true, &w)) ||
        (gemm && (status = at_onnx_const_input(im, node, 2, false, &b))))
        return status;
    if (gemm &&
        (at_onnx_attr_int(node, "transA", 0) != 0 ||
         at_onnx_attr_float(node, "alpha", 1.0f) != 1.0f ||
         at_onnx_attr_float(node, "beta", 1.0f) != 1.0f))
        return at_onnx_node_error(im, node, "only transA 0, alpha 1 and beta 1 are supported");
    const bool transposed = !gemm || at_onnx_attr_int(node, "transB", 0) == 0; /* w is [in, out] */
    at_shape in = at_graph_shape(im->m, x);
    if (in.h != 1 || in.w != 1)
        return at_onnx_node_error(im, node, "its input has shape %dx%dx%d; flatten it first", in.c,
                                  in.h, in.w);
    if (w->n_dims != 2 || w->dims[transposed ? 0 : 1] != in.c) {
        char text[64];
        snprintf(text, sizeof text, "the input has %d features", in.c);
        return at_onnx_shape_mismatch(im, node, w, text);
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
            const onnx_value *v =
                at_onnx_find_value(im, add->input[strcmp(add->input[0], node->output[0]) == 0]);
            if (v && v->node < 0 && v->tensor && at_onnx_tensor_numel(v->tensor) == (size_t)out &&
                (v->tensor->n_dims == 1 || (v->tensor->n_dims == 2 && v->tensor->dims[0] == 1))) {
                b = v->tensor;
                bias_name = v->name;
                absorbed = reader;
            }
        }
    }
    if (b && at_onnx_tensor_numel(b) != (size_t)out)
        return at_onnx_shape_mismatch(im, node, b, "the layer has that many outputs");
    weight_bias wb;
    if ((status = read_weight_bias(im, node, index, w, node->input[1], b, bias_name, &wb)))
        return status;
    int y = at_add_linear(im->m, x, wb.name, out, b != NULL);
    if (y < 0)
        return at_onnx_build_error(im, node, y, x);
    if ((status = copy_weight_bias(im, &wb, transposed ? in.c : 0, out)))
        return status;
    if (absorbed >= 0) {
        im->absorbed[absorbed] = true;
        if ((status = at_onnx_set_value(im, im->g->node[absorbed]->output[0], y, NULL)))
            return status;
    }
    return at_onnx_set_value(im, node->output[0], y, NULL);
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
    bool layout = at_onnx_dims_are(t, 3, (int64_t[]){s.c, 1, 1}) ||
        at_onnx_dims_are(t, 4, (int64_t[]){1, s.c, 1, 1});
    if (s.h == 1 && s.w == 1)
        layout = layout || at_onnx_dims_are(t, 1, (int64_t[]){s.c}) ||
            at_onnx_dims_are(t, 2, (int64_t[]){1, s.c});
    for (int c = 0; layout && c < s.c; c++)
        out[c] = data[c];
    return layout;
}

/* Add, Sub, Mul, Div: of two nodes (Add, Mul), or of a node and a constant (input
 * normalisation: x - mean, x / std, and the like). */
static int import_arithmetic(onnx_importer *im, const Onnx__NodeProto *node)
{
    static const char *const none[] = {NULL};
    const char *op = node->op_type;
    const onnx_value *a, *b;
    int status;
    if ((status = at_onnx_check_attributes(im, node, none)) ||
        (status = at_onnx_input_value(im, node, 0, &a)) ||
        (status = at_onnx_input_value(im, node, 1, &b)))
        return status;
    if (!a || !b)
        return at_onnx_node_error(im, node, "needs two inputs");
    onnx_value pa = *a, pb = *b; /* with a pending Pad applied */
    if ((status = at_onnx_layer_of(im, node, a, &pa.node)) ||
        (status = at_onnx_layer_of(im, node, b, &pb.node)))
        return status;
    a = &pa;
    b = &pb;
    if ((a->node < 0 && b->node < 0) || (a->node < 0 && !a->tensor) || (b->node < 0 && !b->tensor))
        return at_onnx_node_error(im, node,
                                  "arithmetic on two constants or on dimensions is not "
                                  "supported");
    int y;
    if (a->node >= 0 && b->node >= 0) {
        at_shape sa = at_graph_shape(im->m, a->node), sb = at_graph_shape(im->m, b->node);
        bool add = strcmp(op, "Add") == 0, mul = strcmp(op, "Mul") == 0;
        if (!add && !mul)
            return at_onnx_node_error(im, node, "%s of two computed values is not supported", op);
        if (sa.c != sb.c || sa.h != sb.h || sa.w != sb.w)
            return at_onnx_node_error(im, node,
                                      "shapes %dx%dx%d and %dx%dx%d differ (broadcasting is not "
                                      "supported)",
                                      sa.c, sa.h, sa.w, sb.c, sb.h, sb.w);
        y = add ? at_add_add(im->m, a->node, b->node) : at_add_mul(im->m, a->node, b->node);
        if (y < 0)
            return at_onnx_build_error(im, node, y, a->node);
        return at_onnx_set_value(im, node->output[0], y, NULL);
    }
    const bool constant_first = a->node < 0;
    const onnx_value *x = constant_first ? b : a, *k = constant_first ? a : b;
    if (constant_first && (strcmp(op, "Sub") == 0 || strcmp(op, "Div") == 0))
        return at_onnx_node_error(im, node, "a constant %s a computed value is not supported",
                                  op[0] == 'S' ? "minus" : "divided by");
    size_t n;
    const float *data = at_onnx_tensor_floats(im, node, k->tensor, &n);
    if (!data)
        return im->err->status;
    at_shape s = at_graph_shape(im->m, x->node);
    float v[4], mean[4], std[4];
    const bool scalar = n == 1;
    if (!per_channel(k->tensor, data, n, s, v)) {
        if (!(scalar && (strcmp(op, "Mul") == 0 || strcmp(op, "Div") == 0))) {
            char got[96];
            at_onnx_dims_text(got, sizeof got, k->tensor);
            return at_onnx_node_error(im, node,
                                      "constant %s of shape %s does not act per channel on "
                                      "%dx%dx%d (at most 4 channels)",
                                      at_onnx_tensor_label(k->tensor), got, s.c, s.h, s.w);
        }
    }
    if (scalar && (strcmp(op, "Mul") == 0 || strcmp(op, "Div") == 0)) {
        if (!(data[0] != 0.0f) || !isfinite(data[0]))
            return at_onnx_node_error(im, node, "%s by %g is not supported", op, data[0]);
        y = at_add_scale(im->m, x->node, op[0] == 'M' ? data[0] : 1.0f / data[0]);
        if (y < 0)
            return at_onnx_build_error(im, node, y, x->node);
        return at_onnx_set_value(im, node->output[0], y, NULL);
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
            return at_onnx_node_error(im, node,
                                      "only a positive, finite per-channel %s is supported",
                                      op[0] == 'M' ? "factor" : "divisor");
    }
    y = at_add_normalize(im->m, x->node, mean, std);
    if (y < 0)
        return at_onnx_build_error(im, node, y, x->node);
    return at_onnx_set_value(im, node->output[0], y, NULL);
}

/* Extra rows (or columns) of padding after the image that make a floor-mode pool give the
 * output size of ceil_mode (PyTorch's pooling_output_shape: the last window must start inside
 * the image or its leading padding). */
static int ceil_extra(int size, int kernel, int stride, int pad)
{
    int out = (size + 2 * pad - kernel + stride - 1) / stride + 1;
    if ((out - 1) * stride >= size + pad)
        out--;
    int extra = (out - 1) * stride + kernel - (size + 2 * pad);
    return extra > 0 ? extra : 0;
}

static int import_pool(onnx_importer *im, const Onnx__NodeProto *node, bool max)
{
    static const char *const known[] = {"kernel_shape",  "strides",           "pads",
                                        "dilations",     "ceil_mode",         "auto_pad",
                                        "storage_order", "count_include_pad", NULL};
    int x, status;
    if ((status = at_onnx_check_attributes(im, node, known)) ||
        (status = at_onnx_check_auto_pad(im, node)) ||
        (status = at_onnx_data_input(im, node, 0, false, &x, NULL)))
        return status;
    const Onnx__AttributeProto *ks = at_onnx_attribute(node, "kernel_shape");
    if (!ks || ks->n_ints != 2 || ks->ints[0] != ks->ints[1] || ks->ints[0] < 1 ||
        ks->ints[0] > 65536)
        return at_onnx_node_error(im, node, "only a square 2-d kernel_shape is supported");
    const int k = (int)ks->ints[0];
    int64_t stride = at_onnx_ints_same(node, "strides", 1);
    if (stride < 1 || stride > 65536)
        return at_onnx_node_error(im, node, "unequal strides are not supported");
    const bool ceil_mode = at_onnx_attr_int(node, "ceil_mode", 0) != 0;
    if (!at_onnx_ints_all(node, "dilations", 1) || at_onnx_attr_int(node, "storage_order", 0) != 0)
        return at_onnx_node_error(im, node, "dilations and storage_order are not supported");
    if (ceil_mode && !max)
        return at_onnx_node_error(im, node, "ceil_mode is supported for MaxPool only");
    /* pads [top, left, bottom, right]: a pad2d layer before the pool, of -FLT_MAX (PyTorch's
     * max-pool padding, never the maximum: at most half a window, as PyTorch requires, leaves a
     * real element in every window) or of zeros an average counts (count_include_pad); with
     * ceil_mode, more of -FLT_MAX after the image */
    const Onnx__AttributeProto *pads = at_onnx_attribute(node, "pads");
    int pad[4] = {0, 0, 0, 0};
    if (pads && !at_onnx_ints_all(node, "pads", 0)) {
        bool valid = pads->n_ints == 4;
        for (size_t q = 0; q < pads->n_ints && valid; q++)
            valid = pads->ints[q] >= 0 && 2 * pads->ints[q] <= k;
        if (!valid)
            return at_onnx_node_error(im, node,
                                      "padding must be 4 values of at most half the "
                                      "kernel size");
        if (!max && at_onnx_attr_int(node, "count_include_pad", 0) != 1)
            return at_onnx_node_error(im, node,
                                      "padding not counted in the average "
                                      "(count_include_pad 0) is not supported");
        for (int q = 0; q < 4; q++)
            pad[q] = (int)pads->ints[q];
    }
    if (ceil_mode) {
        if (pad[0] != pad[2] || pad[1] != pad[3])
            return at_onnx_node_error(im, node, "ceil_mode with uneven padding is not supported");
        at_shape s = at_graph_shape(im->m, x);
        pad[2] += ceil_extra(s.h, k, (int)stride, pad[0]);
        pad[3] += ceil_extra(s.w, k, (int)stride, pad[1]);
    }
    if (pad[0] || pad[1] || pad[2] || pad[3]) {
        int padded = at_add_pad2d(im->m, x, pad[0], pad[1], pad[2], pad[3], max ? -FLT_MAX : 0.0f);
        if (padded < 0)
            return at_onnx_build_error(im, node, padded, x);
        x = padded;
    }
    int y = max ? at_add_maxpool2d(im->m, x, k, (int)stride)
                : at_add_avgpool2d(im->m, x, k, (int)stride);
    if (y < 0)
        return at_onnx_build_error(im, node, y, x);
    return at_onnx_set_value(im, node->output[0], y, NULL);
}

/* Pad of a constant on height and width, kept on the value: a Conv after it takes zeros alike
 * on every side as its own padding, anything else reads it through a pad2d layer. */
static int import_pad(onnx_importer *im, const Onnx__NodeProto *node)
{
    static const char *const known[] = {"mode", "pads", "value", NULL};
    int x, status;
    if ((status = at_onnx_check_attributes(im, node, known)) ||
        (status = at_onnx_data_input(im, node, 0, false, &x, NULL)))
        return status;
    const Onnx__AttributeProto *mode = at_onnx_attribute(node, "mode");
    if (mode && !(mode->s.len == 8 && memcmp(mode->s.data, "constant", 8) == 0))
        return at_onnx_node_error(im, node, "only constant padding is supported");
    int64_t pads[8];
    size_t n = 0;
    float value = 0.0f;
    const Onnx__AttributeProto *p = at_onnx_attribute(node, "pads");
    if (p) { /* opset < 11 */
        n = p->n_ints;
        if (n > 8)
            return at_onnx_node_error(im, node, "pads has %zu values", n);
        memcpy(pads, p->ints, n * sizeof *pads);
        value = at_onnx_attr_float(node, "value", 0.0f);
    } else {
        const Onnx__TensorProto *fill;
        if ((status = at_onnx_int_list(im, node, 1, pads, 8, &n)) ||
            (status = at_onnx_const_input(im, node, 2, false, &fill)))
            return status;
        if (node->n_input > 3 && node->input[3][0])
            return at_onnx_node_error(im, node, "the axes input is not supported");
        size_t nv;
        const float *v = fill ? at_onnx_tensor_floats(im, node, fill, &nv) : NULL;
        if (fill && !v)
            return im->err->status;
        if (fill && nv != 1)
            return at_onnx_node_error(im, node, "the constant value must be a scalar");
        value = v ? v[0] : 0.0f;
    }
    if (!isfinite(value))
        return at_onnx_node_error(im, node, "padding with %g is not supported", value);
    /* [n_begin, c_begin, h_begin, w_begin, n_end, c_end, h_end, w_end] */
    const int pad[4] = {(int)pads[2], (int)pads[3], (int)pads[6], (int)pads[7]};
    bool valid = n == 8 && !pads[0] && !pads[1] && !pads[4] && !pads[5];
    for (int k = 2; k < 8 && valid; k++)
        valid = pads[k] >= 0 && pads[k] <= 65536;
    if (!valid)
        return at_onnx_node_error(im, node,
                                  "only padding of the height and width (not negative) is "
                                  "supported");
    return at_onnx_set_padded(im, node->output[0], x, pad, value);
}

static int import_flatten(onnx_importer *im, const Onnx__NodeProto *node, bool reshape)
{
    static const char *const flatten_known[] = {"axis", NULL};
    static const char *const reshape_known[] = {"allowzero", NULL};
    int x, status;
    if ((status = at_onnx_check_attributes(im, node, reshape ? reshape_known : flatten_known)) ||
        (status = at_onnx_data_input(im, node, 0, false, &x, NULL)))
        return status;
    size_t numel = at_shape_numel(at_graph_shape(im->m, x));
    if (reshape) {
        int64_t shape[8];
        size_t n;
        if ((status = at_onnx_int_list(im, node, 1, shape, 8, &n)))
            return status;
        bool flat = n == 2 && (shape[0] >= -1 || shape[0] == ONNX_BATCH) &&
            at_onnx_attr_int(node, "allowzero", 0) == 0 &&
            (shape[1] == -1 || shape[1] == (int64_t)numel) && !(shape[0] == -1 && shape[1] == -1);
        if (!flat)
            return at_onnx_node_error(im, node,
                                      "only a reshape to [N, -1] (flattening) is supported");
    } else if (at_onnx_attr_int(node, "axis", 1) != 1) {
        return at_onnx_node_error(im, node, "only axis 1 is supported");
    }
    int y = at_add_flatten(im->m, x);
    if (y < 0)
        return at_onnx_build_error(im, node, y, x);
    return at_onnx_set_value(im, node->output[0], y, NULL);
}

/* Relu, LeakyRelu, Sigmoid, Tanh, Softplus, GlobalAveragePool: one input, one layer. */
static int import_unary(onnx_importer *im, const Onnx__NodeProto *node)
{
    static const char *const leaky_known[] = {"alpha", NULL};
    static const char *const none[] = {NULL};
    const char *op = node->op_type;
    const bool leaky = strcmp(op, "LeakyRelu") == 0;
    int x, status;
    if ((status = at_onnx_check_attributes(im, node, leaky ? leaky_known : none)) ||
        (status = at_onnx_data_input(im, node, 0, false, &x, NULL)))
        return status;
    int y;
    if (leaky)
        y = at_add_leaky_relu(im->m, x, at_onnx_attr_float(node, "alpha", 0.01f));
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
        return at_onnx_build_error(im, node, y, x);
    return at_onnx_set_value(im, node->output[0], y, NULL);
}

/* Identity and Dropout (at inference, and its mask unused): the output is the input. */
static int import_pass_through(onnx_importer *im, const Onnx__NodeProto *node)
{
    static const char *const known[] = {"ratio", "seed", NULL};
    const onnx_value *v;
    int status;
    if ((status = at_onnx_check_attributes(im, node, known)) ||
        (status = at_onnx_input_value(im, node, 0, &v)))
        return status;
    if (!v)
        return at_onnx_node_error(im, node, "needs an input");
    return at_onnx_alias(im, node->output[0], v);
}

static int import_constant(onnx_importer *im, const Onnx__NodeProto *node)
{
    static const char *const known[] = {"value", NULL};
    int status = at_onnx_check_attributes(im, node, known);
    if (status)
        return status;
    const Onnx__AttributeProto *a = at_onnx_attribute(node, "value");
    if (!a || !a->t)
        return at_onnx_node_error(im, node, "only a tensor 'value' is supported");
    return at_onnx_set_value(im, node->output[0], -1, a->t);
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
static int import_ints(onnx_importer *im, const Onnx__NodeProto *node, bool *done)
{
    onnx_ints in[6], out;
    const onnx_ints *ptr[6] = {NULL};
    int status;
    *done = false;
    if (node->n_input > 6)
        return AT_OK;
    if (!strcmp(node->op_type, "Shape") && node->n_input == 1) {
        const onnx_value *v;
        if ((status = at_onnx_input_value(im, node, 0, &v)))
            return status;
        if (v && v->node >= 0) {
            *done = true;
            if (at_onnx_attribute(node, "start") || at_onnx_attribute(node, "end"))
                return at_onnx_node_error(im, node, "start and end are not supported");
            at_shape s = at_graph_shape(im->m, v->node);
            memset(&out, 0, sizeof out);
            out.rank = 1;
            out.shape[0] = onnx_rank(im->m, v->node);
            out.v[0] = ONNX_BATCH;
            out.v[1] = s.c;
            out.v[2] = s.h;
            out.v[3] = s.w;
            return at_onnx_set_ints(im, node->output[0], &out);
        }
    }
    for (size_t k = 0; k < node->n_input; k++) {
        const onnx_value *v;
        if ((status = at_onnx_input_value(im, node, k, &v)))
            return status;
        if (v && !at_onnx_as_ints(v, &in[k]))
            return AT_OK;
        ptr[k] = v ? &in[k] : NULL;
    }
    *done = true;
    char why[200];
    if (onnx_ints_eval(node, ptr, (int)node->n_input, &out, why, sizeof why))
        return at_onnx_node_error(im, node, "%s", why);
    return at_onnx_set_ints(im, node->output[0], &out);
}

int at_onnx_import_node(onnx_importer *im, const Onnx__NodeProto *node, int index)
{
    const char *op = node->op_type ? node->op_type : "";
    if (node->domain && node->domain[0] && strcmp(node->domain, "ai.onnx") != 0)
        return at_onnx_node_error(im, node, "operator domain '%s' is not supported", node->domain);
    if (node->n_output < 1 || !node->output[0][0])
        return at_onnx_node_error(im, node, "has no output");
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
        return at_onnx_node_error(im, node,
                                  "operator %s is supported on integers only (shapes, pads)", op);
    return at_onnx_node_error(im, node, "operator %s is not supported", op);
}
