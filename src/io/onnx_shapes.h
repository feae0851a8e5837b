/* onnx_shapes.h: the integer arithmetic an exported graph does on shapes and paddings (torch's
 * x.view(x.size(0), -1), F.pad's pads from opset 11 on), carried out at import on small int64
 * tensors, with the batch size kept as a symbol. */
#ifndef AT_ONNX_SHAPES_H
#define AT_ONNX_SHAPES_H

#include "onnx.pb-c.h"

#include <stddef.h>
#include <stdint.h>

/* The batch size in a list of dimensions computed from a Shape: unknown until a forward. */
#define ONNX_BATCH INT64_MIN
enum { ONNX_INTS_MAX = 16 };

/* An int64 tensor of rank 0, 1 or 2 and at most ONNX_INTS_MAX values, row-major. */
typedef struct onnx_ints {
    int rank;
    int64_t shape[2];
    int64_t v[ONNX_INTS_MAX];
} onnx_ints;

static inline int onnx_ints_count(const onnx_ints *t)
{
    return t->rank == 0 ? 1 : t->rank == 1 ? (int)t->shape[0] : (int)(t->shape[0] * t->shape[1]);
}

/* Whether onnx_ints_eval computes this operator. */
int onnx_ints_op(const char *op);

/* The node's first output from its inputs (in[k] NULL for an omitted optional input), or a
 * non-zero status with the reason in `why`. */
int onnx_ints_eval(const Onnx__NodeProto *node, const onnx_ints *const *in, int n_in,
                   onnx_ints *out, char *why, size_t cap);

#endif
