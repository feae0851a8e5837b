/* onnx_import.c: an ONNX model (onnx.proto, opsets 9 to 17 as torch.onnx.export writes them)
 * becomes an advtrain graph (arch "graph", models/graph_spec.c) with the file's weights.
 *
 * The file is parsed by the C code protobuf-c generates at build time from onnx.proto (Debian's
 * libonnx-dev). Nodes are taken in file order (ONNX requires a topological order) and each
 * becomes zero or more layers:
 *   Conv -> conv2d (group 1, square kernel, equal strides; a Pad of zeros alike on every side
 *   before it folds into its padding, other padding is a pad2d layer before it), Pad -> pad2d
 *   (constant mode), BatchNormalization -> batchnorm2d (eps, and PyTorch's momentum = 1 - ONNX
 *   momentum), Relu, LeakyRelu, Sigmoid, Tanh, Softplus, MaxPool/AveragePool (padding as a
 *   pad2d layer of -FLT_MAX or counted zeros; MaxPool also in ceil_mode), GlobalAveragePool,
 *   Gemm and MatMul (with an Add of a constant after it: its bias) -> linear, Flatten(axis 1) and Reshape to [N, -1] -> flatten,
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
#include "io/onnx_importer.h"
#include "models/graph_spec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_FILE_BYTES ((size_t)1 << 31)

static bool is_initializer(const Onnx__GraphProto *g, const char *name)
{
    for (size_t i = 0; i < g->n_initializer; i++)
        if (g->initializer[i]->name && strcmp(g->initializer[i]->name, name) == 0)
            return true;
    return false;
}

/* The one graph input that is not an initializer: float [N, C, H, W], N alone may vary. */
static int begin_model(onnx_importer *im)
{
    const Onnx__GraphProto *g = im->g;
    const Onnx__ValueInfoProto *input = NULL;
    for (size_t i = 0; i < g->n_input; i++) {
        if (!g->input[i]->name || is_initializer(g, g->input[i]->name))
            continue;
        if (input)
            return at_onnx_file_error(im,
                                      "the graph has two inputs (%s, %s); one image input is "
                                      "supported",
                                      input->name, g->input[i]->name);
        input = g->input[i];
    }
    if (!input)
        return at_onnx_file_error(im, "the graph has no input");
    const Onnx__TypeProto *type = input->type;
    const Onnx__TensorShapeProto *shape =
        type && type->value_case == ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE && type->tensor_type
        ? type->tensor_type->shape
        : NULL;
    if (!shape || type->tensor_type->elem_type != ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT ||
        shape->n_dim != 4)
        return at_onnx_file_error(im, "input %s is not a float32 tensor [N, C, H, W]", input->name);
    int64_t dims[3];
    for (int d = 1; d < 4; d++) {
        const Onnx__TensorShapeProto__Dimension *dim = shape->dim[d];
        if (dim->value_case != ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE)
            return at_onnx_file_error(
                im, "input %s has a dynamic dimension %d (only the batch may vary)", input->name,
                d);
        dims[d - 1] = dim->dim_value;
    }
    if (at_model_begin(&im->m, dims[0] > 65536 ? 0 : (int)dims[0],
                       dims[1] > 65536 ? 0 : (int)dims[1], dims[2] > 65536 ? 0 : (int)dims[2],
                       im->err))
        return at_onnx_file_error(im, "input %s has an invalid shape", input->name);
    at_strlcpy(im->m->arch, AT_GRAPH_ARCH, sizeof im->m->arch);
    int status = at_onnx_set_value(im, input->name, 0, NULL);
    for (size_t i = 0; i < g->n_initializer && !status; i++)
        if (g->initializer[i]->name)
            status = at_onnx_set_value(im, g->initializer[i]->name, -1, g->initializer[i]);
    return status;
}

/* The graph's one output must be the last layer: logits [N, K]. */
static int check_output(onnx_importer *im)
{
    const Onnx__GraphProto *g = im->g;
    if (g->n_output != 1)
        return at_onnx_file_error(im, "the graph has %zu outputs; one (the logits) is supported",
                                  g->n_output);
    /* a proto2 string left out of the file is NULL, not "" */
    if (!g->output[0]->name)
        return at_onnx_file_error(im, "the graph's output has no name");
    const onnx_value *v = at_onnx_find_value(im, g->output[0]->name);
    if (!v || v->node < 0)
        return at_onnx_file_error(im, "output %s is not computed by the graph", g->output[0]->name);
    if (v->node != im->m->n_nodes - 1)
        return at_onnx_file_error(im,
                                  "output %s is not the last layer computed (unused branches are "
                                  "not supported)",
                                  g->output[0]->name);
    at_shape s = at_graph_shape(im->m, v->node);
    if (s.h != 1 || s.w != 1)
        return at_onnx_file_error(im, "output %s has shape %dx%dx%d, not a vector of logits",
                                  g->output[0]->name, s.c, s.h, s.w);
    const Onnx__TypeProto *type = g->output[0]->type;
    const Onnx__TensorShapeProto *shape =
        type && type->value_case == ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE && type->tensor_type
        ? type->tensor_type->shape
        : NULL;
    if (shape && shape->n_dim == 2 &&
        shape->dim[1]->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE &&
        shape->dim[1]->dim_value != s.c)
        return at_onnx_file_error(
            im, "output %s is declared with %lld classes but the graph computes %d",
            g->output[0]->name, (long long)shape->dim[1]->dim_value, s.c);
    if (shape && shape->n_dim != 2)
        return at_onnx_file_error(im, "output %s is declared with %zu dimensions, not [N, classes]",
                                  g->output[0]->name, shape->n_dim);
    return AT_OK;
}

static int copy_weights(onnx_importer *im)
{
    for (int i = 0; i < im->n_copies; i++) {
        const onnx_weight_copy *c = &im->copies[i];
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

static int check_header(onnx_importer *im, const Onnx__ModelProto *model)
{
    if (!model->has_ir_version || model->ir_version < 3 || !model->graph)
        return at_onnx_file_error(im, "not an ONNX model (no IR version or graph)");
    int64_t opset = -1;
    for (size_t i = 0; i < model->n_opset_import; i++) {
        const Onnx__OperatorSetIdProto *o = model->opset_import[i];
        if (!o->domain || !o->domain[0] || strcmp(o->domain, "ai.onnx") == 0)
            opset = o->version;
    }
    if (opset < 9 || opset > 17)
        return at_onnx_file_error(im, "opset %lld is not supported (9 to 17 are)",
                                  (long long)opset);
    return AT_OK;
}

static int import_model(onnx_importer *im, const Onnx__ModelProto *model)
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
        status = at_onnx_import_node(im, im->g->node[i], (int)i);
    if (!status)
        status = check_output(im);
    if (!status && at_model_finish(im->m, 0, im->err)) {
        char reason[sizeof im->err->message];
        at_strlcpy(reason, im->err->message, sizeof reason);
        status = at_onnx_file_error(im, "%s", reason);
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
    FILE *f;
    int opened = at_open_regular(&f, path, err);
    if (opened)
        return opened;
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
    onnx_importer im = {.file = path, .err = err};
    Onnx__ModelProto *model = size ? onnx__model_proto__unpack(NULL, size, bytes) : NULL;
    free(bytes);
    int status = model ? import_model(&im, model)
                       : at_fail(err, AT_ERR_FORMAT,
                                 "%s: not an ONNX model (not a valid protobuf "
                                 "message, or truncated)",
                                 path);
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
