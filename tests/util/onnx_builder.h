/* onnx_builder.h: small ONNX files written with the protobuf-c structs generated from onnx.proto
 * (the ONNX import test and the CLI test's fixture). One builder holds every struct of a graph
 * of up to 20 nodes and 20 initializers; pointers point inside it. */
#ifndef AT_TEST_ONNX_BUILDER_H
#define AT_TEST_ONNX_BUILDER_H

#include "onnx.pb-c.h"

#include <stddef.h>
#include <stdint.h>

enum { MAX_NODES = 20, MAX_INITS = 20, MAX_ATTRS = 24 };

/* A graph under construction: every struct lives here, pointers point inside it. */
typedef struct onnx_builder {
    Onnx__ModelProto model;
    Onnx__OperatorSetIdProto opset, *opsets[1];
    Onnx__GraphProto graph;
    Onnx__NodeProto nodes[MAX_NODES], *node_list[MAX_NODES];
    char *node_io[MAX_NODES][8]; /* inputs, then the output at [7] */
    Onnx__TensorProto inits[MAX_INITS], *init_list[MAX_INITS];
    int64_t init_dims[MAX_INITS][4];
    Onnx__AttributeProto attrs[MAX_ATTRS], *attr_list[MAX_NODES][4];
    int64_t attr_ints[MAX_ATTRS][4];
    int n_attrs;
    Onnx__ValueInfoProto io[2], *inputs[1], *outputs[1];
    Onnx__TypeProto types[2];
    Onnx__TypeProto__Tensor tensor_types[2];
    Onnx__TensorShapeProto shapes[2];
    Onnx__TensorShapeProto__Dimension dims[2][4], *dim_list[2][4];
} onnx_builder;

/* Input "x" [n, c, h, w] (n dynamic), output "logits" [n, classes], IR 8, opset 13. */
void onnx_begin(onnx_builder *b, int c, int h, int w, int classes);
/* A float32 (data in float_data) or int64 initializer; the data must outlive the builder. */
void onnx_initializer(onnx_builder *b, const char *name, int ndim, const int64_t *dims,
                      const float *data);
void onnx_initializer_i64(onnx_builder *b, const char *name, int ndim, const int64_t *dims,
                          const int64_t *data);
/* A node reading the named inputs (NULL after the last) into one output. */
Onnx__NodeProto *onnx_node(onnx_builder *b, const char *op, const char *name, const char *in0,
                           const char *in1, const char *in2, const char *out);
Onnx__AttributeProto *onnx_attribute(onnx_builder *b, Onnx__NodeProto *n, const char *name);
/* ints attribute of `count` copies of v */
void onnx_attr_ints(onnx_builder *b, Onnx__NodeProto *n, const char *name, int count, int64_t v);
void onnx_attr_int(onnx_builder *b, Onnx__NodeProto *n, const char *name, int64_t v);
void onnx_attr_float(onnx_builder *b, Onnx__NodeProto *n, const char *name, float v);
void onnx_write_bytes(const char *path, const uint8_t *bytes, size_t size);
/* The model packed into a file. */
void onnx_write_model(onnx_builder *b, const char *path);

#endif
