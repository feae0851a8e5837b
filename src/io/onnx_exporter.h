/* onnx_exporter.h: the state of one ONNX export, shared by the writer of the file
 * (onnx_export.c), the helpers that build its protobuf-c structs (onnx_emit.c), and the layers'
 * operators (onnx_export_layers.c). */
#ifndef AT_ONNX_EXPORTER_H
#define AT_ONNX_EXPORTER_H

#include "graph/graph.h"
#include "onnx.pb-c.h"

#include <stdbool.h>

typedef struct onnx_exporter {
    const at_model *m;
    const char *path;
    at_error *err;
    Onnx__NodeProto **nodes;
    size_t n_nodes, cap_nodes;
    Onnx__TensorProto **inits;
    size_t n_inits, cap_inits;
    void **owned; /* every allocation, freed when the export ends */
    size_t n_owned, cap_owned;
    char **value; /* per advtrain node: the name of its ONNX output */
    int *rank;    /* per advtrain node: 4 (NCHW) or 2 ([N, features], after Flatten or Gemm) */
    bool out_of_memory;
} onnx_exporter;

/* Zeroed memory, and printf-formatted text, that live until the export ends; on failure NULL
 * (and "" for text), remembered in out_of_memory. */
void *at_onnx_alloc(onnx_exporter *ex, size_t bytes);
char *at_onnx_text(onnx_exporter *ex, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A node reading `inputs` (NULL-terminated; "" for an omitted optional one) into `output`, and
 * its attributes. */
Onnx__NodeProto *at_onnx_node(onnx_exporter *ex, const char *op, const char *name,
                              const char *const *inputs, const char *output);
void at_onnx_put_int(onnx_exporter *ex, Onnx__NodeProto *n, const char *name, int64_t v);
void at_onnx_put_float(onnx_exporter *ex, Onnx__NodeProto *n, const char *name, float v);
void at_onnx_put_ints(onnx_exporter *ex, Onnx__NodeProto *n, const char *name, size_t count,
                      const int64_t *v);
void at_onnx_put_string(onnx_exporter *ex, Onnx__NodeProto *n, const char *name, const char *v);

/* Initializers: a float or int64 constant of this export (copied), and the model's tensor
 * "<layer>.<suffix>" under that name (dims: ONNX's layout, or NULL for the tensor's shape). */
void at_onnx_constant(onnx_exporter *ex, const char *name, int ndim, const int64_t *dims,
                      const float *data);
void at_onnx_constant_ints(onnx_exporter *ex, const char *name, int64_t count, const int64_t *data);
int at_onnx_weight(onnx_exporter *ex, const at_node *node, const char *suffix, int ndim,
                   const int64_t *dims, const char **name);

/* Node k's input j as a value of rank `want`, and the one-line refusal of node k. */
const char *at_onnx_input_as(onnx_exporter *ex, int k, int j, int want);
int at_onnx_refuse(onnx_exporter *ex, int k, const char *why);

/* The operators of a layer kind: appends the ONNX nodes computing node k (its inputs' values and
 * its own value name are ex->value[...]; ex->rank[k] is set). */
typedef int (*at_onnx_layer_fn)(onnx_exporter *ex, int k);
at_onnx_layer_fn at_onnx_layer_exporter(at_layer_kind kind);

#endif
