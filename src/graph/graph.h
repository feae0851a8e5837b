/* graph.h: the model as a list of nodes, and the contract between the graph and its layers.
 *
 * A model is a list of nodes; node 0 is the input and the last node is the output (the logits).
 * Each node is one layer applied to the outputs of earlier nodes, so a residual connection is
 * just an `add` node with two inputs. Parameters and buffers live in slabs owned by the model;
 * a node records where its own tensors start.
 *
 * A layer kind is an entry in AT_LAYER_LIST plus one file (layers/<name>.c) that defines its
 * builder (at_add_<name>), its forward and backward, and how much per-pass memory it needs.
 *
 * A node can also apply the layer of an earlier node to another input (at_add_shared, shared.c):
 * it is a copy of that node (kind, configuration, offsets of parameters and buffers) with its own
 * input, so forward, backward and the memory plan treat it as any node of that kind, and since
 * every backward adds into the weight gradients, the gradients of all its uses sum up.
 */
#ifndef AT_GRAPH_H
#define AT_GRAPH_H

#include "advtrain.h"
#include "core/util.h"

/* Per-example shape of a node's output (channels, height, width); a vector is (features, 1, 1). */
typedef struct at_shape {
    int c, h, w;
} at_shape;

static inline size_t at_shape_numel(at_shape s) { return (size_t)s.c * (size_t)s.h * (size_t)s.w; }

/* The layer kinds: adding one is a new file and one line here. */
#define AT_LAYER_LIST(X) \
    X(input)             \
    X(conv2d)            \
    X(batchnorm2d)       \
    X(relu)              \
    X(maxpool2d)         \
    X(avgpool2d)         \
    X(flatten)           \
    X(linear)            \
    X(add)               \
    X(normalize)         \
    X(gaussian_noise)    \
    X(quantize)          \
    X(slice)             \
    X(scale)             \
    X(tanh)              \
    X(prelu)             \
    X(upsample2d)        \
    X(sigmoid)           \
    X(leaky_relu)        \
    X(softplus)          \
    X(mul)               \
    X(pad2d)

typedef enum at_layer_kind {
#define AT_LAYER_ENUM_(name) AT_LAYER_##name,
    AT_LAYER_LIST(AT_LAYER_ENUM_)
#undef AT_LAYER_ENUM_
    AT_LAYER_COUNT
} at_layer_kind;

typedef struct at_node {
    at_layer_kind kind;
    int n_inputs;
    int inputs[2];
    at_shape out;
    char name[96]; /* module path of a layer with tensors, "" otherwise */
    union {
        struct { int out_channels, kernel, stride, padding; bool bias; } conv;
        struct { float eps, momentum; bool affine; } bn; /* affine: weight and bias */
        struct { int kernel_h, kernel_w, stride; } pool; /* kernel 0 = whole image */
        struct { int out_features; bool bias; } linear;
        struct { float mean[4], std[4]; } norm;
        struct { float sigma; } noise;
        struct { int levels; } quantize;
        struct { int first; } slice; /* first channel taken; out.c of them */
        struct { float factor; } scale;
        struct { int slopes; } prelu; /* 1 (shared) or one per channel */
        struct { int factor; } upsample;
        struct { float slope; } leaky; /* negative-side slope of leaky_relu */
        struct { int top, left, bottom, right; float value; } pad;
    } p;
    size_t param_offset, n_params;   /* into the model's parameter slab */
    size_t buffer_offset, n_buffers; /* into the model's float buffer slab */
    int counter;                     /* index into the model's int64 counters, or -1 */
    bool has_upstream_params;        /* this node or one it depends on has parameters */
    int source; /* a node that applies the layer of an earlier one (at_add_shared): that node,
                   whose kind, configuration, parameters and buffers it uses; 0 otherwise */
} at_node;

/* One entry of the state_dict: where a named tensor lives. */
typedef struct at_tensor_entry {
    char name[128];
    bool is_param;
    at_dtype dtype;
    int ndim;
    int64_t shape[4];
    size_t numel;
    size_t offset; /* into params (is_param), buffers (F32) or counters (I64) */
} at_tensor_entry;

struct at_model {
    char arch[48];
    at_model_options options;
    int n_nodes, cap_nodes;
    at_node *nodes;
    int n_tensors, cap_tensors;
    at_tensor_entry *tensors;
    size_t n_params, n_buffers;
    int n_counters;
    float *params, *grads, *buffers;
    int64_t *counters;
    bool finished;
    int build_status; /* first error met while adding nodes, reported by at_model_finish */
    at_shard *shard;  /* the processes sharing its batches (shard.c), or NULL */
};

/* Everything a layer's forward or backward sees. Pointers into the pass and the model. */
typedef struct at_layer_ctx {
    const at_node *node;
    int n;                  /* examples in this batch */
    int workers;            /* threads the pass planned scratch for */
    at_shape in_shape[2];
    const float *x[2];      /* input activations [n, in_shape] */
    float *y;               /* output activation [n, out] */
    void *cache;            /* this node's per-pass cache */
    float *scratch;         /* workspace, scratch_floats per worker */
    size_t scratch_floats;
    float *shared;          /* workspace shared by all workers (shared_floats of the layer) */
    float *w;               /* this node's parameters (weight, then bias) */
    float *dw;              /* and their gradients */
    float *buf;             /* this node's float buffers */
    int64_t *counter;       /* this node's counter (batch norm) */
    at_bn_mode bn_mode;
    at_rng *rng;            /* the pass's random stream (stochastic layers) */
    int max_batch;          /* the pass's: bounds the units of a reduction (at_layer_units) */
    at_shard *shard;        /* the model's, or NULL: one process holds the whole batch */
    /* backward only */
    const float *dy;        /* gradient of the output */
    float *dx[2];           /* gradients of the inputs to accumulate into; NULL = not needed */
    bool weight_grads;      /* accumulate into dw */
    /* Set when the ReLU that alone consumes this node is fused into it (at_layer_ops.fuses_relu):
     * forward writes relu(output) to y, which is then the ReLU's output; backward gets the ReLU's
     * output gradient as dy and its output here, and applies ReLU's backward itself. */
    const float *relu_out;
    /* Set in a pass following a frozen activation pattern (at_pass_freeze_pattern): this node's
     * decisions (what its capture_pattern wrote) to apply in forward and backward instead of
     * those its own input would make. */
    const void *pattern;
} at_layer_ctx;

/* What a layer's backward reads besides its output gradient (the memory plan keeps these). */
enum { AT_READS_INPUT = 1, AT_READS_OUTPUT = 2, AT_READS_INPUT_FOR_WEIGHTS = 4 };

typedef struct at_layer_ops {
    const char *name;
    unsigned backward_reads;
    bool fuses_relu; /* can apply a ReLU that follows it (at_layer_ctx.relu_out) */
    bool updates_buffers; /* forward writes its buffers (running statistics): not shareable */
    /* bytes of per-pass cache and floats of per-worker scratch for batches of max_batch */
    size_t (*cache_bytes)(const at_node *node, const at_shape *in, int max_batch);
    size_t (*scratch_floats)(const at_node *node, const at_shape *in, int max_batch);
    /* floats of workspace shared by the workers, for passes with or without weight gradients */
    size_t (*shared_floats)(const at_node *node, const at_shape *in, int max_batch,
                            bool weight_grads);
    void (*forward)(const at_layer_ctx *c);
    void (*backward)(const at_layer_ctx *c);
    /* A piecewise-linear layer (ReLU, max-pool, PReLU) lists which piece each element is on, so
     * that another pass can follow it (at_pass_freeze_pattern): bytes of those decisions for
     * max_batch examples, and a copy of them from a pass's last forward (c is the layer's view
     * of it, as its backward would see it: x, y, cache). Its forward and backward then apply
     * c->pattern when set. NULL for smooth and linear layers. */
    size_t (*pattern_bytes)(const at_node *node, const at_shape *in, int max_batch);
    void (*capture_pattern)(const at_layer_ctx *c, void *pattern);
    /* PyTorch's default initialisation of this layer's parameters and buffers */
    void (*init)(const at_node *node, const at_shape *in, float *w, float *buf, at_rng *rng);
} at_layer_ops;

const at_layer_ops *at_layer_ops_of(at_layer_kind kind);

/* Where each node's output and output gradient live in a pass (memory_plan.c). Offsets are in
 * floats from the start of the pass's activation area; SIZE_MAX means no buffer. */
typedef struct at_memory_plan {
    size_t *out_offset, *grad_offset;
    bool *out_kept, *grad_kept; /* dedicated (readable after forward / backward) */
    int *last_consumer;          /* the highest node reading each node's output */
    bool *fusable;               /* node runs the ReLU that follows it (its only consumer) */
    size_t total_floats;
} at_memory_plan;

int at_memory_plan_build(at_memory_plan *plan, const at_model *m, int max_batch, unsigned flags);
void at_memory_plan_free(at_memory_plan *plan);
const char *at_layer_name(at_layer_kind kind);

/* Splitting a reduction over the batch (weight gradients) into units of work: the units are
 * fixed by the batch size and the size of the partial result alone, and their partial sums are
 * added in unit order, so results do not depend on the number of threads. At most 16 units,
 * fewer (a power of two) when each partial result is large, to bound the memory they take. */
static inline int at_reduce_units(int n, size_t partial_floats)
{
    int units = n < 16 ? n : 16;
    while (units > 2 && (size_t)units * partial_floats > ((size_t)1 << 24))
        units /= 2;
    return units < 1 ? 1 : units;
}

/* A layer's sum over the batch in units (at_reduce_units), split between the processes that
 * share the batch (shard.c): this process's units, their rows, and whether they are the units
 * of the whole batch in its order (even shards whose boundaries are unit boundaries), so that
 * gathering them reproduces one process's sum bit for bit. */
typedef struct at_units {
    int count;    /* units of this process's rows: unit u holds rows [u per_unit, +per_unit) */
    int per_unit;
    bool whole;   /* they are units of the whole batch (else each process's are merged) */
} at_units;
at_units at_layer_units(const at_layer_ctx *c, size_t partial_floats);
/* The index of row 0 in the whole batch (even shards; 0 otherwise): layers whose per-row
 * results depend on a row's position in a block keep that of the whole batch. */
int at_layer_first_row(const at_layer_ctx *c);
/* Every row its own unit (a layer that keeps one partial sum per row). */
at_units at_layer_row_units(const at_layer_ctx *c);
/* After a layer computed the partial sums of its units (u.count of unit_bytes each at
 * `partials`, floats or doubles): the partial sums to add in order, and how many (*total). One
 * process: `partials` itself. Several: everyone's units in batch order, or (u.whole false)
 * every process's units summed, in rank order. NULL when the exchange failed (recorded in the
 * shard, reported by the pass). Call it outside parallel regions. */
const void *at_layer_gather(const at_layer_ctx *c, const void *partials, at_units u,
                            size_t unit_bytes, bool doubles, int *total);
/* The common case: float partial sums of `count` weight gradients, `stride` floats apart, at
 * c->shared; gathered and added in unit order into c->dw. */
void at_layer_add_units(const at_layer_ctx *c, at_units u, size_t stride, size_t count);
/* Synchronised batch norm: the shard's, or false for one process. */
bool at_layer_sync_bn(const at_layer_ctx *c);
/* The shard's first failure (AT_OK when none or no shard). */
int at_shard_status(const at_shard *s);

/* Threads for a parallel region of a pass planned for `workers` (never more than planned). */
static inline int at_team(int workers)
{
    int t = at_max_threads();
    return t < workers ? t : workers;
}

/* Element-wise layers (activations, add, mul, scale): every output element is computed from
 * its own input elements alone, so fixed blocks of the flat batch array are shared out among the
 * workers with no effect on the result. at_each_block calls fn on elements [first, first + count)
 * of each block of the layer's first input, n examples of in_shape[0]. */
typedef void (*at_block_fn)(const at_layer_ctx *c, size_t first, size_t count);
void at_each_block(const at_layer_ctx *c, at_block_fn fn);

/* Used by the builders in layers/: append a node (NULL on error, recorded in the model), then
 * declare its tensors in state_dict order. */
at_node *at_graph_append(at_model *m, at_layer_kind kind, const int *inputs, int n_inputs,
                         const char *name);
at_shape at_graph_shape(const at_model *m, int node);
int at_graph_declare(at_model *m, at_node *node, const char *suffix, bool is_param, at_dtype dtype,
                     int ndim, const int64_t *shape);
int at_graph_index(const at_model *m, const at_node *node);
/* Node k ends a block: a pooling or residual-add output that every later node reads through it
 * (none reads an earlier node), so it summarises everything before it (manifold mixup's mixing
 * points, SAT's feature depths). */
bool at_graph_is_block_end(const at_model *m, int k);
/* Records a build error (the first one wins) and returns it. */
int at_graph_error(at_model *m, int status);

#endif
