/* onnx_builder.c: small ONNX files from the generated protobuf-c structs (onnx_builder.h). */
#include "util/onnx_builder.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>


static void value_info(onnx_builder *b, int k, const char *name, int ndim, const int64_t *dims)
{
    onnx__value_info_proto__init(&b->io[k]);
    onnx__type_proto__init(&b->types[k]);
    onnx__type_proto__tensor__init(&b->tensor_types[k]);
    onnx__tensor_shape_proto__init(&b->shapes[k]);
    b->io[k].name = (char *)name;
    b->io[k].type = &b->types[k];
    b->types[k].value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    b->types[k].tensor_type = &b->tensor_types[k];
    b->tensor_types[k].has_elem_type = 1;
    b->tensor_types[k].elem_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    b->tensor_types[k].shape = &b->shapes[k];
    b->shapes[k].n_dim = (size_t)ndim;
    b->shapes[k].dim = b->dim_list[k];
    for (int d = 0; d < ndim; d++) {
        onnx__tensor_shape_proto__dimension__init(&b->dims[k][d]);
        b->dim_list[k][d] = &b->dims[k][d];
        if (dims[d] < 0) {
            b->dims[k][d].value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
            b->dims[k][d].dim_param = d == 0 ? "n" : "h";
        } else {
            b->dims[k][d].value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
            b->dims[k][d].dim_value = dims[d];
        }
    }
}

/* Input "x" [n, c, h, w] (n dynamic), output "logits" [n, classes], opset 13. */
void onnx_begin(onnx_builder *b, int c, int h, int w, int classes)
{
    memset(b, 0, sizeof *b);
    onnx__model_proto__init(&b->model);
    onnx__operator_set_id_proto__init(&b->opset);
    onnx__graph_proto__init(&b->graph);
    b->model.has_ir_version = 1;
    b->model.ir_version = 8;
    b->opset.has_version = 1;
    b->opset.version = 13;
    b->opsets[0] = &b->opset;
    b->model.n_opset_import = 1;
    b->model.opset_import = b->opsets;
    b->model.graph = &b->graph;
    b->graph.name = "test";
    b->graph.node = b->node_list;
    b->graph.initializer = b->init_list;
    value_info(b, 0, "x", 4, (int64_t[]){-1, c, h, w});
    value_info(b, 1, "logits", 2, (int64_t[]){-1, classes});
    b->inputs[0] = &b->io[0];
    b->outputs[0] = &b->io[1];
    b->graph.n_input = b->graph.n_output = 1;
    b->graph.input = b->inputs;
    b->graph.output = b->outputs;
}

void onnx_initializer(onnx_builder *b, const char *name, int ndim, const int64_t *dims,
                        const float *data)
{
    Onnx__TensorProto *t = &b->inits[b->graph.n_initializer];
    onnx__tensor_proto__init(t);
    size_t n = 1;
    for (int d = 0; d < ndim; d++) {
        b->init_dims[b->graph.n_initializer][d] = dims[d];
        n *= (size_t)dims[d];
    }
    t->name = (char *)name;
    t->n_dims = (size_t)ndim;
    t->dims = b->init_dims[b->graph.n_initializer];
    t->has_data_type = 1;
    t->data_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    t->n_float_data = n;
    t->float_data = (float *)data;
    b->init_list[b->graph.n_initializer++] = t;
}

void onnx_initializer_i64(onnx_builder *b, const char *name, int ndim, const int64_t *dims,
                            const int64_t *data)
{
    onnx_initializer(b, name, ndim, dims, NULL);
    Onnx__TensorProto *t = &b->inits[b->graph.n_initializer - 1];
    t->data_type = ONNX__TENSOR_PROTO__DATA_TYPE__INT64;
    t->n_float_data = 0;
    t->n_int64_data = ndim ? (size_t)dims[0] : 1;
    t->int64_data = (int64_t *)data;
}

/* A node reading the named inputs ("" for an omitted optional one) into one output. */
Onnx__NodeProto *onnx_node(onnx_builder *b, const char *op, const char *name, const char *in0,
                             const char *in1, const char *in2, const char *out)
{
    int k = (int)b->graph.n_node++;
    Onnx__NodeProto *n = &b->nodes[k];
    onnx__node_proto__init(n);
    n->op_type = (char *)op;
    n->name = (char *)name;
    const char *ins[3] = {in0, in1, in2};
    for (int i = 0; i < 3 && ins[i]; i++)
        b->node_io[k][n->n_input++] = (char *)ins[i];
    n->input = b->node_io[k];
    b->node_io[k][7] = (char *)out;
    n->output = &b->node_io[k][7];
    n->n_output = 1;
    n->attribute = b->attr_list[k];
    b->node_list[k] = n;
    return n;
}

Onnx__AttributeProto *onnx_attribute(onnx_builder *b, Onnx__NodeProto *n, const char *name)
{
    Onnx__AttributeProto *a = &b->attrs[b->n_attrs++];
    onnx__attribute_proto__init(a);
    a->name = (char *)name;
    a->has_type = 1;
    n->attribute[n->n_attribute++] = a;
    return a;
}

void onnx_attr_ints(onnx_builder *b, Onnx__NodeProto *n, const char *name, int count, int64_t v)
{
    Onnx__AttributeProto *a = onnx_attribute(b, n, name);
    a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS;
    int64_t *ints = b->attr_ints[a - b->attrs];
    for (int i = 0; i < count; i++)
        ints[i] = v;
    a->n_ints = (size_t)count;
    a->ints = ints;
}

void onnx_attr_int(onnx_builder *b, Onnx__NodeProto *n, const char *name, int64_t v)
{
    Onnx__AttributeProto *a = onnx_attribute(b, n, name);
    a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT;
    a->has_i = 1;
    a->i = v;
}

void onnx_attr_float(onnx_builder *b, Onnx__NodeProto *n, const char *name, float v)
{
    Onnx__AttributeProto *a = onnx_attribute(b, n, name);
    a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT;
    a->has_f = 1;
    a->f = v;
}

void onnx_write_bytes(const char *path, const uint8_t *bytes, size_t size)
{
    FILE *f = fopen(path, "wb");
    if (f) {
        fwrite(bytes, 1, size, f);
        fclose(f);
    }
}

void onnx_write_model(onnx_builder *b, const char *path)
{
    size_t size = onnx__model_proto__get_packed_size(&b->model);
    uint8_t *bytes = malloc(size);
    if (!bytes)
        return;
    onnx__model_proto__pack(&b->model, bytes);
    onnx_write_bytes(path, bytes, size);
    free(bytes);
}

