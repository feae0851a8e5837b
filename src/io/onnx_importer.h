/* onnx_importer.h: the state of one ONNX import, shared by the file reader (onnx_import.c), the
 * helpers on its values, tensors and attributes (onnx_values.c), and the operators that become
 * layers (onnx_operators.c). */
#ifndef AT_ONNX_IMPORTER_H
#define AT_ONNX_IMPORTER_H

#include "graph/graph.h"
#include "io/onnx_shapes.h"
#include "onnx.pb-c.h"

#include <stdbool.h>

/* A named value of the graph: a layer's output (node >= 0), a constant tensor, or integers
 * computed at import (onnx_shapes.c: x.view(x.size(0), -1) exports Shape, Gather, Unsqueeze,
 * Concat and Reshape), which may hold the batch size as ONNX_BATCH. */
typedef struct onnx_value {
    const char *name;
    int node; /* the advtrain node, or -1 for a constant or integers */
    const Onnx__TensorProto *tensor; /* the constant, or NULL */
    int pad[4]; /* a Pad not applied yet (top, left, bottom, right): folded into the */
    float pad_value; /* Conv after it when zero and even, else a pad2d layer */
    const onnx_ints *ints; /* the integers when node < 0 and tensor is NULL */
} onnx_value;

/* A tensor of the file to copy into the finished model. */
typedef struct onnx_weight_copy {
    char tensor[128];
    const float *data;
    int rows, cols; /* transposed when rows > 0: data is [rows, cols], the tensor [cols, rows] */
} onnx_weight_copy;

typedef struct onnx_importer {
    const char *file;
    at_error *err;
    at_model *m;
    const Onnx__GraphProto *g;
    onnx_value *values;
    int n_values, cap_values;
    onnx_weight_copy *copies;
    int n_copies, cap_copies;
    void **owned; /* tensor data and dimension lists, freed when the import ends */
    int n_owned, cap_owned;
    bool *absorbed; /* per ONNX node: an Add taken into the MatMul before it */
} onnx_importer;

/* Errors: one line naming the file, or the file, node and operator; the status returned. */
int at_onnx_file_error(onnx_importer *im, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
int at_onnx_node_error(onnx_importer *im, const Onnx__NodeProto *node, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int at_onnx_build_error(onnx_importer *im, const Onnx__NodeProto *node, int status, int x);
int at_onnx_shape_mismatch(onnx_importer *im, const Onnx__NodeProto *node,
                           const Onnx__TensorProto *t, const char *expected);

/* The named values: layer outputs, constants and integers (find_value finds the latest). */
const onnx_value *at_onnx_find_value(const onnx_importer *im, const char *name);
int at_onnx_set_value(onnx_importer *im, const char *name, int node,
                      const Onnx__TensorProto *tensor);
int at_onnx_set_padded(onnx_importer *im, const char *name, int node, const int pad[4],
                       float value);
int at_onnx_alias(onnx_importer *im, const char *name, const onnx_value *v);
int at_onnx_set_ints(onnx_importer *im, const char *name, const onnx_ints *ints);
void *at_onnx_keep(onnx_importer *im, size_t bytes);

/* The file's tensors: FLOAT data kept until the import ends, INT64 lists, shapes. */
size_t at_onnx_tensor_numel(const Onnx__TensorProto *t);
const char *at_onnx_tensor_label(const Onnx__TensorProto *t);
const float *at_onnx_tensor_floats(onnx_importer *im, const Onnx__NodeProto *node,
                                   const Onnx__TensorProto *t, size_t *count);
int at_onnx_tensor_ints(onnx_importer *im, const Onnx__NodeProto *node, const Onnx__TensorProto *t,
                        int64_t *out, size_t cap, size_t *count);
bool at_onnx_dims_are(const Onnx__TensorProto *t, int n, const int64_t *want);
void at_onnx_dims_text(char *out, size_t cap, const Onnx__TensorProto *t);

/* A node's inputs: any value, a layer output, a constant, a list of integers. */
int at_onnx_input_value(onnx_importer *im, const Onnx__NodeProto *node, size_t k,
                        const onnx_value **out);
int at_onnx_data_input(onnx_importer *im, const Onnx__NodeProto *node, size_t k, bool fold_ok,
                       int *x, int *fold);
int at_onnx_layer_of(onnx_importer *im, const Onnx__NodeProto *node, const onnx_value *v, int *x);
int at_onnx_const_input(onnx_importer *im, const Onnx__NodeProto *node, size_t k, bool required,
                        const Onnx__TensorProto **t);
int at_onnx_int_list(onnx_importer *im, const Onnx__NodeProto *node, size_t k, int64_t *out,
                     size_t cap, size_t *count);
bool at_onnx_as_ints(const onnx_value *v, onnx_ints *out);

/* A node's attributes, and the refusal of any not in `known` (NULL-terminated). */
const Onnx__AttributeProto *at_onnx_attribute(const Onnx__NodeProto *node, const char *name);
int64_t at_onnx_attr_int(const Onnx__NodeProto *node, const char *name, int64_t fallback);
float at_onnx_attr_float(const Onnx__NodeProto *node, const char *name, float fallback);
int at_onnx_check_attributes(onnx_importer *im, const Onnx__NodeProto *node,
                             const char *const *known);
bool at_onnx_ints_all(const Onnx__NodeProto *node, const char *name, int64_t want);
int64_t at_onnx_ints_same(const Onnx__NodeProto *node, const char *name, int64_t fallback);
int at_onnx_check_auto_pad(onnx_importer *im, const Onnx__NodeProto *node);

/* A layer's name (after its weight initializer, else the node) and the tensors to copy. */
int at_onnx_layer_name(onnx_importer *im, const Onnx__NodeProto *node, int index, char *out,
                       size_t cap, const char *const *inputs, const char *const *suffixes);
int at_onnx_add_copy(onnx_importer *im, const char *layer, const char *suffix, const float *data,
                     int rows, int cols);

/* One node of the graph, in file order (onnx_operators.c). */
int at_onnx_import_node(onnx_importer *im, const Onnx__NodeProto *node, int index);

#endif
