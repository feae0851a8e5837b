/* onnx_export_layers.c: the ONNX operators (opset 13) computing each layer kind at inference
 * (the list: onnx_export.c). One function per kind, in a table indexed by kind. */
#include "io/onnx_exporter.h"

/* One input, one operator, no attributes. */
static int export_unary(onnx_exporter *ex, int k, const char *op)
{
    at_onnx_node(ex, op, ex->value[k],
                 (const char *[]){at_onnx_input_as(ex, k, 0, ex->rank[k]), NULL}, ex->value[k]);
    return AT_OK;
}

static int export_relu(onnx_exporter *ex, int k) { return export_unary(ex, k, "Relu"); }
static int export_sigmoid(onnx_exporter *ex, int k) { return export_unary(ex, k, "Sigmoid"); }
static int export_tanh(onnx_exporter *ex, int k) { return export_unary(ex, k, "Tanh"); }
static int export_softplus(onnx_exporter *ex, int k) { return export_unary(ex, k, "Softplus"); }

static int export_leaky_relu(onnx_exporter *ex, int k)
{
    Onnx__NodeProto *n =
        at_onnx_node(ex, "LeakyRelu", ex->value[k],
                     (const char *[]){ex->value[ex->m->nodes[k].inputs[0]], NULL}, ex->value[k]);
    at_onnx_put_float(ex, n, "alpha", ex->m->nodes[k].p.leaky.slope);
    return AT_OK;
}

static int export_conv2d(onnx_exporter *ex, int k)
{
    const at_node *node = &ex->m->nodes[k];
    const char *w, *b = "";
    int status = at_onnx_weight(ex, node, "weight", 0, NULL, &w);
    if (!status && node->p.conv.bias)
        status = at_onnx_weight(ex, node, "bias", 0, NULL, &b);
    if (status)
        return status;
    const int64_t kernel = node->p.conv.kernel, stride = node->p.conv.stride,
                  pad = node->p.conv.padding;
    Onnx__NodeProto *n = at_onnx_node(
        ex, "Conv", ex->value[k],
        (const char *[]){ex->value[node->inputs[0]], w, node->p.conv.bias ? b : NULL, NULL},
        ex->value[k]);
    at_onnx_put_ints(ex, n, "kernel_shape", 2, (int64_t[]){kernel, kernel});
    at_onnx_put_ints(ex, n, "strides", 2, (int64_t[]){stride, stride});
    at_onnx_put_ints(ex, n, "pads", 4, (int64_t[]){pad, pad, pad, pad});
    at_onnx_put_ints(ex, n, "dilations", 2, (int64_t[]){1, 1});
    at_onnx_put_int(ex, n, "group", 1);
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
        status = at_onnx_weight(ex, node, suffixes[q], 0, NULL, &t[q]);
    if (status)
        return status;
    if (!owner->p.bn.affine) {
        const int c = node->out.c;
        float *v = at_onnx_alloc(ex, 2 * (size_t)c * sizeof *v);
        if (!v)
            return AT_ERR_NOMEM;
        for (int q = 0; q < c; q++)
            v[q] = 1.0f;
        t[0] = at_onnx_text(ex, "%s.onnx_scale", owner->name);
        t[1] = at_onnx_text(ex, "%s.onnx_bias", owner->name);
        at_onnx_constant(ex, t[0], 1, (int64_t[]){c}, v);
        at_onnx_constant(ex, t[1], 1, (int64_t[]){c}, v + c);
    }
    Onnx__NodeProto *n = at_onnx_node(
        ex, "BatchNormalization", ex->value[k],
        (const char *[]){ex->value[node->inputs[0]], t[0], t[1], t[2], t[3], NULL}, ex->value[k]);
    at_onnx_put_float(ex, n, "epsilon", owner->p.bn.eps);
    /* ONNX's momentum is the share of the old statistic, PyTorch's that of the new */
    at_onnx_put_float(ex, n, "momentum", 1.0f - owner->p.bn.momentum);
    return AT_OK;
}

/* An average over the whole image is GlobalAveragePool (what the import reads as a global
 * pool); any other window, max-pooling's included, is MaxPool or AveragePool of that window. */
static int export_pool(onnx_exporter *ex, int k, bool max)
{
    const at_node *node = &ex->m->nodes[k];
    const at_shape in = at_graph_shape(ex->m, node->inputs[0]);
    const int64_t kh = node->p.pool.kernel_h, kw = node->p.pool.kernel_w, s = node->p.pool.stride;
    const char *x = ex->value[node->inputs[0]];
    if (!max && kh == in.h && kw == in.w) {
        at_onnx_node(ex, "GlobalAveragePool", ex->value[k], (const char *[]){x, NULL},
                     ex->value[k]);
        return AT_OK;
    }
    Onnx__NodeProto *n = at_onnx_node(ex, max ? "MaxPool" : "AveragePool", ex->value[k],
                                      (const char *[]){x, NULL}, ex->value[k]);
    at_onnx_put_ints(ex, n, "kernel_shape", 2, (int64_t[]){kh, kw});
    at_onnx_put_ints(ex, n, "strides", 2, (int64_t[]){s, s});
    return AT_OK;
}

static int export_maxpool2d(onnx_exporter *ex, int k) { return export_pool(ex, k, true); }
static int export_avgpool2d(onnx_exporter *ex, int k) { return export_pool(ex, k, false); }

static int export_flatten(onnx_exporter *ex, int k)
{
    Onnx__NodeProto *n =
        at_onnx_node(ex, "Flatten", ex->value[k],
                     (const char *[]){ex->value[ex->m->nodes[k].inputs[0]], NULL}, ex->value[k]);
    at_onnx_put_int(ex, n, "axis", 1);
    return AT_OK;
}

/* nn.Linear: y = x W^T + b, W stored [out, in]: Gemm with transB 1. */
static int export_linear(onnx_exporter *ex, int k)
{
    const at_node *node = &ex->m->nodes[k];
    const char *w, *b = NULL;
    int status = at_onnx_weight(ex, node, "weight", 0, NULL, &w);
    if (!status && node->p.linear.bias)
        status = at_onnx_weight(ex, node, "bias", 0, NULL, &b);
    if (status)
        return status;
    Onnx__NodeProto *n =
        at_onnx_node(ex, "Gemm", ex->value[k],
                     (const char *[]){at_onnx_input_as(ex, k, 0, 2), w, b, NULL}, ex->value[k]);
    at_onnx_put_int(ex, n, "transB", 1);
    return AT_OK;
}

static int export_binary(onnx_exporter *ex, int k, const char *op)
{
    at_onnx_node(ex, op, ex->value[k],
                 (const char *[]){at_onnx_input_as(ex, k, 0, ex->rank[k]),
                                  at_onnx_input_as(ex, k, 1, ex->rank[k]), NULL},
                 ex->value[k]);
    return AT_OK;
}

static int export_add(onnx_exporter *ex, int k) { return export_binary(ex, k, "Add"); }
static int export_mul(onnx_exporter *ex, int k) { return export_binary(ex, k, "Mul"); }

/* A per-channel constant laid out to broadcast over node k's output (ONNX's multidirectional
 * broadcasting aligns trailing dimensions): [C, 1, 1], or [C] on a vector. [1, C, 1, 1] is
 * equally valid, but OpenCV 4.6's dnn fails on it before a Flatten with batches of more than one. */
static const char *channel_constant(onnx_exporter *ex, int k, const char *what, const float *v)
{
    const int c = ex->m->nodes[k].out.c;
    const char *name = at_onnx_text(ex, "%s.%s", ex->value[k], what);
    if (ex->rank[k] == 4)
        at_onnx_constant(ex, name, 3, (int64_t[]){c, 1, 1}, v);
    else
        at_onnx_constant(ex, name, 1, (int64_t[]){c}, v);
    return name;
}

/* (x - mean) / std per channel: Sub, then Div. */
static int export_normalize(onnx_exporter *ex, int k)
{
    const at_node *node = &ex->m->nodes[k];
    const char *mean = channel_constant(ex, k, "mean", node->p.norm.mean),
               *std = channel_constant(ex, k, "std", node->p.norm.std),
               *centred = at_onnx_text(ex, "%s_centred", ex->value[k]);
    at_onnx_node(ex, "Sub", centred, (const char *[]){ex->value[node->inputs[0]], mean, NULL},
                 centred);
    at_onnx_node(ex, "Div", ex->value[k], (const char *[]){centred, std, NULL}, ex->value[k]);
    return AT_OK;
}

static int export_scale(onnx_exporter *ex, int k)
{
    const char *factor = at_onnx_text(ex, "%s.factor", ex->value[k]);
    at_onnx_constant(ex, factor, 1, (int64_t[]){1}, &ex->m->nodes[k].p.scale.factor);
    at_onnx_node(ex, "Mul", ex->value[k],
                 (const char *[]){ex->value[ex->m->nodes[k].inputs[0]], factor, NULL},
                 ex->value[k]);
    return AT_OK;
}

static int export_prelu(onnx_exporter *ex, int k)
{
    const at_node *node = &ex->m->nodes[k];
    const at_node *owner = node->source ? &ex->m->nodes[node->source] : node;
    const int64_t slopes = owner->p.prelu.slopes;
    const char *w;
    int status = ex->rank[k] == 4 && slopes > 1
                     ? at_onnx_weight(ex, node, "weight", 3, (int64_t[]){slopes, 1, 1}, &w)
                     : at_onnx_weight(ex, node, "weight", 1, (int64_t[]){slopes}, &w);
    if (status)
        return status;
    at_onnx_node(ex, "PRelu", ex->value[k], (const char *[]){ex->value[node->inputs[0]], w, NULL},
                 ex->value[k]);
    return AT_OK;
}

/* Pad's pads are [n_begin, c_begin, h_begin, w_begin, n_end, c_end, h_end, w_end]. */
static int export_pad2d(onnx_exporter *ex, int k)
{
    const at_node *node = &ex->m->nodes[k];
    const char *pads = at_onnx_text(ex, "%s.pads", ex->value[k]),
               *value = at_onnx_text(ex, "%s.value", ex->value[k]);
    const int64_t p[8] = {0, 0, node->p.pad.top,    node->p.pad.left,
                          0, 0, node->p.pad.bottom, node->p.pad.right};
    at_onnx_constant_ints(ex, pads, 8, p);
    at_onnx_constant(ex, value, 0, NULL, &node->p.pad.value);
    Onnx__NodeProto *n =
        at_onnx_node(ex, "Pad", ex->value[k],
                     (const char *[]){ex->value[node->inputs[0]], pads, value, NULL}, ex->value[k]);
    at_onnx_put_string(ex, n, "mode", "constant");
    return AT_OK;
}

static int export_slice(onnx_exporter *ex, int k)
{
    const at_node *node = &ex->m->nodes[k];
    const int64_t first = node->p.slice.first, end = first + node->out.c, axis = 1;
    const char *starts = at_onnx_text(ex, "%s.starts", ex->value[k]),
               *ends = at_onnx_text(ex, "%s.ends", ex->value[k]),
               *axes = at_onnx_text(ex, "%s.axes", ex->value[k]);
    at_onnx_constant_ints(ex, starts, 1, &first);
    at_onnx_constant_ints(ex, ends, 1, &end);
    at_onnx_constant_ints(ex, axes, 1, &axis);
    at_onnx_node(ex, "Slice", ex->value[k],
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
    const char *scales = at_onnx_text(ex, "%s.scales", ex->value[k]);
    at_onnx_constant(ex, scales, 1, (int64_t[]){4}, scale);
    Onnx__NodeProto *n =
        at_onnx_node(ex, "Resize", ex->value[k],
                     (const char *[]){ex->value[node->inputs[0]], "", scales, NULL}, ex->value[k]);
    at_onnx_put_string(ex, n, "mode", "nearest");
    at_onnx_put_string(ex, n, "coordinate_transformation_mode", "asymmetric");
    at_onnx_put_string(ex, n, "nearest_mode", "floor");
    return AT_OK;
}

/* round(x * (L - 1)) / (L - 1); ONNX's Round rounds half to even, as nearbyintf does. */
static int export_quantize(onnx_exporter *ex, int k)
{
    const float steps = (float)(ex->m->nodes[k].p.quantize.levels - 1);
    const char *v = ex->value[k], *s = at_onnx_text(ex, "%s.steps", v),
               *scaled = at_onnx_text(ex, "%s_scaled", v),
               *rounded = at_onnx_text(ex, "%s_rounded", v);
    at_onnx_constant(ex, s, 1, (int64_t[]){1}, &steps);
    at_onnx_node(ex, "Mul", scaled, (const char *[]){ex->value[ex->m->nodes[k].inputs[0]], s, NULL},
                 scaled);
    at_onnx_node(ex, "Round", rounded, (const char *[]){scaled, NULL}, rounded);
    at_onnx_node(ex, "Div", v, (const char *[]){rounded, s, NULL}, v);
    return AT_OK;
}

static int export_gaussian_noise(onnx_exporter *ex, int k)
{
    if (ex->m->nodes[k].p.noise.sigma != 0.0f)
        return at_onnx_refuse(ex, k,
                              "adds fresh random noise at every forward, which has no fixed ONNX "
                              "equivalent");
    return export_unary(ex, k, "Identity");
}

static int export_input(onnx_exporter *ex, int k)
{
    return at_onnx_refuse(ex, k, "is an input inside the graph");
}

/* The operators of each layer kind, named after AT_LAYER_LIST: a new kind does not build until
 * it says here what it becomes (or why it is refused). */
#define AT_EXPORT_ENTRY_(name) [AT_LAYER_##name] = export_##name,
static const at_onnx_layer_fn exporters[AT_LAYER_COUNT] = {AT_LAYER_LIST(AT_EXPORT_ENTRY_)};
#undef AT_EXPORT_ENTRY_

at_onnx_layer_fn at_onnx_layer_exporter(at_layer_kind kind) { return exporters[kind]; }
