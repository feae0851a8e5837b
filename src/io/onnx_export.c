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
 *   Sub and Div by [C, 1, 1] constants; scale -> Mul by a constant; pad2d -> Pad (constant);
 *   slice -> Slice of channels; upsample2d -> Resize (nearest, asymmetric coordinates, floor:
 *   exactly y[oy, ox] = x[oy / s, ox / s]); quantize -> Mul, Round, Div (Round rounds half to
 *   even, as the layer's nearbyintf does); gaussian_noise of sigma 0 -> Identity.
 * A layer with no inference meaning in ONNX (noise drawn at every forward) fails with one line
 * naming the layer and the model; no file is written then.
 *
 * Weights are initializers under the model's own tensor names (PyTorch state_dict names), so
 * at_model_import_onnx names the layers as the model did. The file is written atomically
 * (atomic_file.c), so a reader never sees half a file. */
#include "io/atomic_file.h"
#include "io/onnx_exporter.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OPSET 13
#define IR_VERSION 7 /* the IR of ONNX 1.8, which introduced opset 13 */
#define MAX_FILE_BYTES (((size_t)1 << 31) - 1) /* what protobuf parsers read in one message */

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
        return at_onnx_text(ex, "input");
    char *name = node->name[0] && !node->source
                     ? at_onnx_text(ex, "%s", node->name)
                     : at_onnx_text(ex, "%s_%d", at_layer_name(node->kind), k);
    if (name_taken(ex, k, name))
        name = at_onnx_text(ex, "%s_%d", name, k);
    return name;
}

/* Float [N, dims...] with N symbolic. */
static Onnx__ValueInfoProto *graph_value(onnx_exporter *ex, const char *name, int ndim,
                                         const int64_t *dims)
{
    Onnx__ValueInfoProto *v = at_onnx_alloc(ex, sizeof *v);
    Onnx__TypeProto *type = at_onnx_alloc(ex, sizeof *type);
    Onnx__TypeProto__Tensor *tensor = at_onnx_alloc(ex, sizeof *tensor);
    Onnx__TensorShapeProto *shape = at_onnx_alloc(ex, sizeof *shape);
    Onnx__TensorShapeProto__Dimension **list = at_onnx_alloc(ex, (size_t)(ndim + 1) * sizeof *list);
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
        Onnx__TensorShapeProto__Dimension *dim = at_onnx_alloc(ex, sizeof *dim);
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
    ex->value = at_onnx_alloc(ex, (size_t)m->n_nodes * sizeof *ex->value);
    ex->rank = at_onnx_alloc(ex, (size_t)m->n_nodes * sizeof *ex->rank);
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
        ex->rank[k] =
            kind == AT_LAYER_flatten || kind == AT_LAYER_linear ? 2
            : node->n_inputs == 2
                ? (ex->rank[node->inputs[0]] == 2 || ex->rank[node->inputs[1]] == 2 ? 2 : 4)
                : ex->rank[node->inputs[0]];
        ex->value[k] =
            k == last && ex->rank[k] == 2 ? at_onnx_text(ex, "logits") : value_name(ex, k);
        if (ex->rank[k] == 2 && (node->out.h != 1 || node->out.w != 1))
            return at_onnx_refuse(ex, k, "reads a flattened vector as an image");
        if ((kind == AT_LAYER_pad2d || kind == AT_LAYER_upsample2d || kind == AT_LAYER_conv2d ||
             kind == AT_LAYER_maxpool2d || kind == AT_LAYER_avgpool2d) &&
            ex->rank[k] == 2)
            return at_onnx_refuse(ex, k, "acts on an image but reads a flattened vector");
        int status = at_onnx_layer_exporter(kind)(ex, k);
        if (status)
            return status;
    }
    const char *logits = ex->value[last];
    if (ex->rank[last] == 4) {
        Onnx__NodeProto *n =
            at_onnx_node(ex, "Flatten", "logits", (const char *[]){logits, NULL}, "logits");
        at_onnx_put_int(ex, n, "axis", 1);
    }
    Onnx__ValueInfoProto **io = at_onnx_alloc(ex, 2 * sizeof *io);
    if (!io || ex->out_of_memory)
        return AT_ERR_NOMEM;
    io[0] = graph_value(ex, ex->value[0], 3, (int64_t[]){in.c, in.h, in.w});
    io[1] = graph_value(ex, "logits", 1, (int64_t[]){out.c});
    if (!io[0] || !io[1])
        return AT_ERR_NOMEM;
    g->name = at_onnx_text(ex, "%s", m->arch);
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

/* The packed model, for at_write_atomically. */
typedef struct packed_model {
    const uint8_t *bytes;
    size_t size;
} packed_model;

static int write_packed(FILE *f, const void *arg)
{
    const packed_model *packed = arg;
    return fwrite(packed->bytes, 1, packed->size, f) == packed->size ? 0 : -1;
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
        bytes = size <= MAX_FILE_BYTES ? malloc(size ? size : 1) : NULL;
        packed_model packed = {bytes, bytes ? onnx__model_proto__pack(&model, bytes) : 0};
        status = bytes ? at_write_atomically(path, write_packed, &packed, err)
                 : size > MAX_FILE_BYTES
                     ? at_fail(err, AT_ERR_ARG,
                               "%s: model '%s' needs %zu bytes, over protobuf's 2 GiB limit for "
                               "one ONNX file",
                               path, m->arch, size)
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
