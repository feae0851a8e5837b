/* advtrain.h: the public API of libadvtrain, a C11 toolkit for adversarially robust deep learning.
 *
 * The pieces, in the order a program meets them:
 *
 *   at_model    an architecture (a list of nodes, each a layer and the indices of its inputs) with
 *               its parameters and buffers in one slab, named as the PyTorch state_dict of the
 *               reference definition, and their gradients in a second slab.
 *   at_pass     everything one forward pass keeps for its backward pass, planned once for a maximum
 *               batch size. Several passes over one model can be alive at once (clean and
 *               adversarial passes for TRADES, m noisy passes for randomized smoothing).
 *   at_forward  runs a pass with a batch-norm mode chosen per call; at_backward yields the gradient
 *               w.r.t. the input, the weights, or both, and accumulates weight gradients.
 *   losses      cross-entropy (hard, soft, smoothed labels, per-example weights) and KL divergence.
 *   at_optimizer SGD (momentum, Nesterov), Adam or AdamW for one model's parameters;
 *               at_lr_schedule gives the rate.
 *   at_dataset  images as uint8 NCHW with labels, loaded from IDX (MNIST, Fashion-MNIST),
 *               CIFAR binary files or folders of PNG/JPEG images, split, shuffled and augmented
 *               deterministically from a seed.
 *   checkpoints safetensors files with PyTorch names, written atomically.
 *   at_train    the training loop: epochs, schedule, validation, checkpoints, resume, and
 *               fine-tuning from a checkpoint's or a PyTorch state_dict's weights.
 *
 * A minimal training step:
 *
 *   at_model *m; at_pass *p; at_optimizer *opt; at_error err;
 *   at_model_create(&m, "smallcnn", NULL, &err);
 *   at_pass_create(&p, m, 128, 0, &err);
 *   at_optimizer_options o = at_optimizer_defaults(AT_OPTIMIZER_SGD);
 *   o.momentum = 0.9;
 *   o.weight_decay = 5e-4;
 *   at_optimizer_create(&opt, m, &o, &err);
 *   at_model_zero_grad(m);
 *   at_forward(p, x, 128, AT_BN_TRAIN);
 *   at_loss_cross_entropy(at_pass_logits(p), 128, 10, &(at_ce_target){.labels = y}, NULL, dlogits);
 *   at_backward(p, dlogits, AT_GRAD_WEIGHTS);
 *   at_optimizer_step(opt, 0.05f);
 *
 * Conventions:
 *   - Tensors are float32, row-major, NCHW. Images are in [0,1]; a model that wants normalised
 *     inputs carries the normalisation as its first layer, so perturbation budgets are always
 *     measured on [0,1] pixels.
 *   - Fallible functions return 0 or a negative at_status and, when `err` is not NULL, fill it with
 *     a one-line message naming the file or option at fault. The library never prints or exits.
 *   - Every random draw comes from an at_rng passed in by the caller; there is no hidden state.
 *   - Results are bit-identical for a fixed seed whatever the number of OpenMP threads: work is
 *     split into units fixed by the batch size, and every reduction runs in a fixed order.
 */
#ifndef ADVTRAIN_H
#define ADVTRAIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define AT_VERSION_STRING "0.1.0"

/* ------------------------------------------------------------------------------------------------
 * Status codes and errors
 */

/* One list gives the enum, the names and the messages, so they cannot drift apart. */
#define AT_STATUS_LIST(X)                                        \
    X(AT_OK, 0, "success")                                       \
    X(AT_ERR_NOMEM, -1, "out of memory")                         \
    X(AT_ERR_ARG, -2, "invalid argument")                        \
    X(AT_ERR_IO, -3, "input/output error")                       \
    X(AT_ERR_FORMAT, -4, "malformed or corrupt file")            \
    X(AT_ERR_SHAPE, -5, "shape mismatch")                        \
    X(AT_ERR_NOTFOUND, -6, "not found")                          \
    X(AT_ERR_NUMERIC, -7, "non-finite value")                    \
    X(AT_ERR_STATE, -8, "call out of order")

typedef enum at_status {
#define AT_STATUS_ENUM_(name, code, text) name = code,
    AT_STATUS_LIST(AT_STATUS_ENUM_)
#undef AT_STATUS_ENUM_
} at_status;

/* The message of a status code ("out of memory"). */
const char *at_status_string(int status);

/* Filled by a failing call: the status and a one-line message such as
 * "data/train-images-idx3-ubyte.gz: truncated: header promises 47040016 bytes, file has 1000". */
typedef struct at_error {
    int status;
    char message[512];
} at_error;

/* ------------------------------------------------------------------------------------------------
 * Random numbers: xoshiro256** (Blackman and Vigna), seeded through splitmix64. The state is four
 * words the caller owns, so it can be saved in a checkpoint and restored exactly.
 */
typedef struct at_rng {
    uint64_t s[4];
} at_rng;

void at_rng_seed(at_rng *rng, uint64_t seed);
/* An independent stream for (seed, a, b), e.g. (run seed, epoch, purpose): lets a run resume at an
 * epoch boundary with the same randomness as an uninterrupted run. */
void at_rng_stream(at_rng *rng, uint64_t seed, uint64_t a, uint64_t b);
uint64_t at_rng_next(at_rng *rng);
double at_rng_uniform(at_rng *rng);            /* [0, 1) with 53 random bits */
uint32_t at_rng_below(at_rng *rng, uint32_t n); /* uniform on 0..n-1, unbiased */
double at_rng_normal(at_rng *rng);             /* standard normal (Box-Muller) */
/* n standard normals into out, both values of each Box-Muller pair (the first of each pair is
 * what at_rng_normal would return from the same state); an odd last one takes a pair of its own. */
void at_rng_normals(at_rng *rng, float *out, size_t n);
void at_rng_shuffle(at_rng *rng, int32_t *items, size_t n); /* Fisher-Yates */
/* Gamma(shape, 1) by Marsaglia and Tsang's method (shape > 0), and Beta(a, b) as the ratio
 * G_a / (G_a + G_b) of two of them. */
double at_rng_gamma(at_rng *rng, double shape);
double at_rng_beta(at_rng *rng, double a, double b);

/* ------------------------------------------------------------------------------------------------
 * Models
 */
typedef struct at_model at_model;

/* Batch-norm behaviour, chosen per forward call (the methods disagree on which mode an attack
 * should use, so the caller states it and the report records it). Eval is 0, so a
 * zero-initialised options struct attacks the model as it will be deployed. */
typedef enum at_bn_mode {
    AT_BN_EVAL = 0,        /* running statistics */
    AT_BN_TRAIN = 1,       /* batch statistics; running statistics updated */
    AT_BN_BATCH_STATS = 2  /* batch statistics; running statistics left alone */
} at_bn_mode;
const char *at_bn_mode_name(at_bn_mode mode); /* "train", "batch-stats", "eval" */

/* Options of at_model_create; a zero field takes the architecture's default. */
typedef struct at_model_options {
    int num_classes;               /* default 10 */
    int in_channels;               /* default: 1 for smallcnn, 8 (frames) for smallcnn-clip, 3
                                      otherwise */
    int in_height, in_width;       /* default: 28x28 for smallcnn(-clip), 32x32 otherwise */
    int normalize;                 /* nonzero: first layer subtracts mean and divides by std */
    float mean[4], std[4];         /* per input channel, used when normalize is set */
    int input_levels;              /* > 1: quantise inputs to this many levels (a masking defence) */
    float input_noise;             /* > 0: add Gaussian noise of this std to inputs (randomised) */
    uint64_t seed;                 /* initialisation seed */
} at_model_options;

/* Builds a reference architecture by name: "smallcnn" (TRADES, one input channel),
 * "smallcnn-clip" (SmallCNN on each frame of a clip whose frames are the input channels, logits
 * averaged; SmallCNN's state_dict), "preact-resnet18" (Rice et al.), "wrn-D-W" (WideResNet as in
 * RobustBench, e.g. "wrn-34-10"), "linear" (multinomial logistic regression on the flattened
 * input), "mlp-H" (one hidden ReLU layer of H units). Initialisation follows each reference
 * definition. */
int at_model_create(at_model **out, const char *arch, const at_model_options *options,
                    at_error *err);
void at_model_free(at_model *model);

/* The architectures at_model_create knows, for listings: name pattern and one-line description.
 * Returns false past the end. */
bool at_arch_info(int index, const char **name, const char **description);

/* The name the model was created with ("smallcnn", "wrn-34-10", or "custom"). */
const char *at_model_arch(const at_model *model);
const at_model_options *at_model_get_options(const at_model *model);
int at_model_num_classes(const at_model *model);
void at_model_input_shape(const at_model *model, int *c, int *h, int *w);

/* Building a custom graph. at_model_begin makes node 0, the input; each at_add_* appends a node
 * whose inputs are earlier nodes and returns its index (or a negative status); the last node
 * added is the output. `name` is the PyTorch module path of a layer with parameters, e.g.
 * "layer1.0.conv1"; its tensors are named "<name>.weight", "<name>.bias", ... After the last node,
 * at_model_finish allocates and initialises the parameters. */
int at_model_begin(at_model **out, int channels, int height, int width, at_error *err);
int at_add_conv2d(at_model *m, int input, const char *name, int out_channels, int kernel,
                  int stride, int padding, bool bias);
int at_add_batchnorm2d(at_model *m, int input, const char *name);
/* With affine false, nn.BatchNorm2d(affine=False): y = (x - mean) / sqrt(var + eps) alone, no
 * "<name>.weight" or "<name>.bias" (running_mean, running_var and num_batches_tracked as with
 * affine, and the same batch-norm modes); with affine true, at_add_batchnorm2d. */
int at_add_batchnorm2d_affine(at_model *m, int input, const char *name, bool affine);
int at_add_relu(at_model *m, int input);
/* nn.Tanh: y = tanh(x) (a generator's last layer). */
int at_add_tanh(at_model *m, int input);
/* nn.PReLU: y = x if x > 0, else a * x, with learnable slopes "<name>.weight" [num_parameters],
 * initialised to 0.25: num_parameters 1 (one slope) or the input's channels (one per channel, dim
 * 1 of NCHW or of [n, features]); AT_ERR_ARG otherwise. */
int at_add_prelu(at_model *m, int input, const char *name, int num_parameters);
/* nn.Sigmoid: y = 1 / (1 + exp(-x)) (an autoencoder's last layer: an image in [0,1]). */
int at_add_sigmoid(at_model *m, int input);
/* nn.LeakyReLU(negative_slope): y = x if x > 0, else negative_slope * x (a fixed slope). */
int at_add_leaky_relu(at_model *m, int input, float negative_slope);
/* nn.Softplus (beta 1): y = log(1 + exp(x)). */
int at_add_softplus(at_model *m, int input);
/* y = a * b elementwise for two nodes of one shape (SiLU as at_add_mul(x, at_add_sigmoid(x))). */
int at_add_mul(at_model *m, int input_a, int input_b);
/* nn.ConstantPad2d((left, right, top, bottom), value): each plane grows by top + bottom rows and
 * left + right columns of `value` (-FLT_MAX before a max-pool stands for PyTorch's padding). */
int at_add_pad2d(at_model *m, int input, int top, int left, int bottom, int right, float value);
/* nn.Upsample(scale_factor=factor, mode="nearest"): each pixel becomes a factor x factor block
 * (1..64; AT_ERR_ARG otherwise). */
int at_add_upsample2d(at_model *m, int input, int factor);
int at_add_maxpool2d(at_model *m, int input, int kernel, int stride);
int at_add_avgpool2d(at_model *m, int input, int kernel, int stride);
int at_add_global_avgpool(at_model *m, int input);
int at_add_flatten(at_model *m, int input);
int at_add_linear(at_model *m, int input, const char *name, int out_features, bool bias);
int at_add_add(at_model *m, int input_a, int input_b);
int at_add_normalize(at_model *m, int input, const float *mean, const float *std);
/* Randomised and non-differentiable input layers, for defences and for testing evaluations:
 * y = x + sigma * N(0, 1), fresh noise every forward from the pass's stream (at_pass_set_seed);
 * y = round(x * (levels - 1)) / (levels - 1), whose gradient is zero almost everywhere. */
int at_add_gaussian_noise(at_model *m, int input, float sigma);
int at_add_quantize(at_model *m, int input, int levels);
/* Channels [first_channel, first_channel + channels) of the input (a frame of a clip stored with
 * its frames as channels), and y = factor * x (with a tree of at_add_add, an average). */
int at_add_slice(at_model *m, int input, int first_channel, int channels);
int at_add_scale(at_model *m, int input, float factor);
/* Applies the layer of the earlier node `source` to `input`, which must have the shape of that
 * node's input: same kind, same configuration, the same parameters (weight sharing, e.g. one
 * frame model on every frame of a clip). It declares no tensors, so the state_dict is that of
 * the model without it, and the weight gradients of all the uses add up. A layer whose forward
 * updates buffers (batch norm's running statistics) or that has two inputs cannot be shared. */
int at_add_shared(at_model *m, int input, int source);
int at_model_finish(at_model *m, uint64_t seed, at_error *err);

/* The architecture name and options as a JSON object (arch, num_classes, input shape, mean/std),
 * which checkpoints carry under the metadata key "model" so a file says what it holds. The
 * returned string is allocated with malloc; the caller frees it. NULL when out of memory. */
char *at_model_spec(const at_model *model);
int at_model_create_from_spec(at_model **out, const char *spec, at_error *err);

/* An ONNX model file (as torch.onnx.export writes it, opsets 9 to 17) as an advtrain model with
 * its weights: arch "graph", whose spec lists its nodes, so its checkpoints describe themselves.
 * Layers with weights are named after their weight initializers ("conv1.weight" gives layer
 * "conv1"), else after their ONNX node. An operator, attribute or shape the engine cannot
 * compute exactly fails with a one-line error naming the file, the node and its operator. */
int at_model_import_onnx(at_model **out, const char *path, at_error *err);
/* The model as an ONNX file (opset 13) for inference in any ONNX runtime: input "input" float
 * [N, C, H, W], output "logits" [N, K], N symbolic; input normalisation inside the graph, batch
 * norm on its running statistics, weights as initializers under the model's tensor names. A
 * layer without a fixed inference meaning (Gaussian noise) fails with one line naming the layer
 * and the model, and nothing is written. The file is replaced atomically (temporary + rename). */
int at_model_export_onnx(const at_model *model, const char *path, at_error *err);
/* Whether a path names an ONNX file (ends in ".onnx"): what --checkpoint and --init take as one. */
bool at_is_onnx_path(const char *path);

/* Multiply-adds x 2 of the convolutions and linear layers for one example (the usual FLOP count;
 * other layers are not counted). */
double at_model_forward_flops(const at_model *model);

/* Nodes: how many, each one's layer kind ("conv2d", ...), output shape per example. */
int at_model_node_count(const at_model *model);
const char *at_model_node_kind(const at_model *model, int node);
void at_model_node_shape(const at_model *model, int node, int *c, int *h, int *w);

/* Parameters and buffers, in state_dict order, under their PyTorch names. */
typedef enum at_dtype { AT_F32 = 0, AT_I64 = 1 } at_dtype;
typedef struct at_tensor_info {
    const char *name;   /* "layer1.0.bn1.running_mean" */
    bool is_param;      /* trainable parameter (has a gradient) or buffer */
    at_dtype dtype;     /* AT_F32, or AT_I64 for num_batches_tracked */
    int ndim;
    int64_t shape[4];
    size_t numel;
    float *data;        /* AT_F32 data; NULL for AT_I64 */
    int64_t *data_i64;  /* AT_I64 data; NULL for AT_F32 */
    float *grad;        /* gradient of a parameter; NULL for buffers */
} at_tensor_info;

int at_model_tensor_count(const at_model *model);
at_tensor_info at_model_tensor(const at_model *model, int index);
int at_model_find_tensor(const at_model *model, const char *name); /* index or AT_ERR_NOTFOUND */

/* All parameters, and all gradients, as one contiguous slab each (same layout). */
float *at_model_params(at_model *model, size_t *count);
float *at_model_grads(at_model *model, size_t *count);
void at_model_zero_grad(at_model *model);
/* Copies parameters and buffers from a model of the same architecture (AWP proxy, EMA). */
int at_model_copy_weights(at_model *dst, const at_model *src, at_error *err);

/* ------------------------------------------------------------------------------------------------
 * Data parallelism: processes that train one model together each hold a shard of every batch
 * (consecutive rows) and need the sums over the whole batch that layers make: weight gradients
 * always, and batch-norm statistics when they are synchronised. The library does not talk to other
 * processes itself; the caller gives it an allgather (MPI_Allgather, say). A sum is exchanged as
 * the partial sums of the fixed units of rows a single process would use (at most 16 per layer)
 * and added in unit order, so when the shards are even (every process holds as many rows) the
 * gradients are bit-identical to those of one process running the whole batch; with uneven
 * shards each process sends the sum of its rows and they are added in rank order.
 */
typedef struct at_collective {
    int rank, ranks;
    /* Every process gives `bytes` bytes at `mine`; `all` receives everyone's, in rank order
     * (ranks x bytes). Returns 0, or non-zero when the exchange failed (a process gone). */
    int (*allgather)(void *user, const void *mine, void *all, size_t bytes);
    /* Optional (NULL: none): every process's `count` floats (doubles with `doubles`) at data
     * replaced by their sum over the processes, the same on all (MPI_Allreduce, MPI_SUM). */
    int (*allreduce)(void *user, void *data, size_t count, bool doubles);
    void *user;
} at_collective;

typedef struct at_shard at_shard;
/* sync_bn: batch norm in a batch mode uses the statistics of the whole batch, not the shard's. */
int at_shard_create(at_shard **out, const at_collective *collective, bool sync_bn, at_error *err);
void at_shard_free(at_shard *shard);
/* Whether every process holds as many rows in the batches from now on (default true). All
 * processes must say the same. */
void at_shard_set_even(at_shard *shard, bool even);
/* Sums through the collective's allreduce instead: each process adds its own units, then the
 * processes' sums are added in whatever order the allreduce takes. Less traffic than gathering
 * the units (one slab per layer instead of up to 16), the same result on every process, but not
 * one process's bits. AT_ERR_ARG when the collective has no allreduce. */
int at_shard_use_allreduce(at_shard *shard, bool on);
/* The model's passes exchange their sums through shard (NULL: one process, the default). The
 * shard is not owned; several models (a proxy, auxiliary networks) may share one. A failed
 * exchange makes at_forward and at_backward return AT_ERR_IO from then on. */
void at_model_set_shard(at_model *model, at_shard *shard);
/* The allgather of shard's collective on `bytes` bytes (the caller's own exchanges: losses,
 * per-example results): AT_OK or AT_ERR_IO. */
int at_shard_allgather(at_shard *shard, const void *mine, void *all, size_t bytes);
int at_shard_rank(const at_shard *shard);
int at_shard_ranks(const at_shard *shard);
bool at_shard_sync_bn(const at_shard *shard);

/* ------------------------------------------------------------------------------------------------
 * Passes: forward and backward
 */
typedef struct at_pass at_pass;

/* A pass keeps only what backward needs: outputs that no backward reads share memory once
 * consumed, and the gradients of hidden nodes share memory once propagated. Flags: */
enum {
    AT_PASS_FORWARD_ONLY = 1,    /* inference only: no gradient buffers at all */
    AT_PASS_KEEP_ALL = 2,        /* every node's output and gradient stays readable (hooks,
                                    feature losses, injected gradients at hidden nodes) */
    AT_PASS_NO_WEIGHT_GRADS = 4  /* backward will only be asked for AT_GRAD_INPUT (attacks):
                                    inputs kept only for weight gradients are not kept */
};
enum {
    AT_GRAD_INPUT = 1,  /* compute dL/dx (attacks) */
    AT_GRAD_WEIGHTS = 2 /* accumulate dL/dtheta into the model's gradient slab */
};

/* Plans all memory for batches of up to max_batch examples; nothing is allocated afterwards. */
int at_pass_create(at_pass **out, at_model *model, int max_batch, unsigned flags, at_error *err);
void at_pass_free(at_pass *pass);
at_model *at_pass_model(const at_pass *pass);

/* x holds n <= max_batch examples (NCHW floats). The input is copied into the pass. Returns
 * AT_ERR_ARG when n is out of range. */
int at_forward(at_pass *pass, const float *x, int n, at_bn_mode mode);
const float *at_pass_logits(const at_pass *pass); /* [n, num_classes] of the last forward */
int at_pass_batch(const at_pass *pass);           /* n of the last forward */
at_bn_mode at_pass_bn_mode(const at_pass *pass);  /* BN mode of the last forward */

/* Backward in three steps, so gradients can be injected anywhere:
 *   at_backward_begin zeroes the gradients;
 *   at_pass_grad(pass, node) is dL/d(output of node), writable (the logits' one is the last node);
 *   at_backward_run propagates from the output to the input.
 * at_pass_grad of a hidden node (neither the input nor the last) is available only in a pass
 * created with AT_PASS_KEEP_ALL; otherwise it returns NULL.
 * at_backward(pass, dlogits, what) does the three with dlogits as the output's gradient. Weight
 * gradients accumulate into the model's slab; zeroing them is at_model_zero_grad. */
void at_backward_begin(at_pass *pass);
float *at_pass_grad(at_pass *pass, int node);
int at_backward_run(at_pass *pass, unsigned what);
int at_backward(at_pass *pass, const float *dlogits, unsigned what);
const float *at_pass_input_grad(const at_pass *pass); /* dL/dx [n, c, h, w] */

/* Hooks at any node: the output activation of the last forward (hidden nodes only with
 * AT_PASS_KEEP_ALL, else NULL), and a perturbation added to a node's output during every forward
 * until cleared with NULL (the gradient w.r.t. it is at_pass_grad of that node after backward).
 * The pass reads `delta` at each forward; the caller keeps it alive. */
float *at_pass_activation(at_pass *pass, int node);
int at_pass_set_perturbation(at_pass *pass, int node, const float *delta);
/* A hook at a node: `forward` may rewrite the node's output [n, per_example] after its layer ran
 * (the layer's own backward still sees what it produced), and `backward` may rewrite the
 * gradient of that output before it flows into the layer; together they make an operation
 * between two layers without rewriting the model (manifold mixup mixes the rows of a hidden
 * node). A hidden node needs a pass created with AT_PASS_KEEP_ALL (AT_ERR_STATE otherwise); the
 * input node (0) works in any pass, its backward hook seeing the input gradient. NULL or a hook
 * without functions clears the node's. */
typedef struct at_node_hook {
    void (*forward)(void *user, float *out, int n, size_t per_example);
    void (*backward)(void *user, float *grad, int n, size_t per_example);
    void *user;
} at_node_hook;
int at_pass_set_hook(at_pass *pass, int node, const at_node_hook *hook);
/* Seeds the pass's random stream, which stochastic layers (gaussian-noise) draw from. */
void at_pass_set_seed(at_pass *pass, uint64_t seed);
/* Makes dst follow the activation pattern of src's last forward: the active units of every ReLU,
 * the winners of every max-pool and the side of every PReLU element. From then on each forward
 * and backward of dst applies those decisions instead of its own input's, until
 * at_pass_freeze_pattern(dst, NULL) clears them; a later call replaces them. With the pattern
 * frozen a piecewise-linear network is linear in its input on the whole space (x's piece,
 * extended), so differences of dst's gradients between x and x + h d are derivatives of that one
 * function, which is what double backpropagation computes (it treats ReLU masks and max-pool
 * indices as constants); at x itself dst computes what src did. Smooth layers (batch norm, tanh,
 * softmax in a loss) stay smooth, so only their curvature remains; quantize and gaussian-noise
 * are not frozen.
 * Call it any time between src's forward and src's next one (src == dst is allowed). src must
 * be a pass of the same model that kept its outputs (not AT_PASS_FORWARD_ONLY; AT_ERR_STATE, as
 * before src's first forward), with at most dst's max_batch examples (AT_ERR_ARG, as for
 * another model); while frozen dst accepts only batches of that size (at_forward: AT_ERR_ARG).
 * The storage, sized for dst's max_batch, is allocated at the first call (AT_ERR_NOMEM). A
 * frozen pass fuses no ReLU into the layer before it, so it runs a little slower. */
int at_pass_freeze_pattern(at_pass *dst, const at_pass *src);

/* ------------------------------------------------------------------------------------------------
 * Losses. Both average over the batch: loss = (1/n) sum_i w_i l_i. dlogits (may be NULL) gets
 * d loss / d logits; per_example (may be NULL) gets l_i, unweighted.
 */
typedef struct at_ce_target {
    const int32_t *labels;      /* hard labels [n], or NULL to use soft_targets */
    const float *soft_targets;  /* [n, k] probability rows */
    float label_smoothing;      /* target = (1 - s) * target + s / k */
    const float *weights;       /* per-example weights [n], or NULL for all 1 */
    int total;                  /* rows of the whole batch the mean is over, when the n rows
                                   are a part of it (data parallelism); 0 = n. NAN below n */
} at_ce_target;

float at_loss_cross_entropy(const float *logits, int n, int k, const at_ce_target *target,
                            float *per_example, float *dlogits);

/* KL(softmax(p) || softmax(q)) per row, summed over classes and averaged over rows (PyTorch's
 * "batchmean"). dlogits_p and dlogits_q (each may be NULL) get its gradient w.r.t. each side. */
float at_loss_kl(const float *logits_p, const float *logits_q, int n, int k, const float *weights,
                 float *per_example, float *dlogits_p, float *dlogits_q);

/* Losses on a hidden node's output (style and content terms), features [n, channels, positions]
 * from at_pass_activation. Each averages its per-example loss over the batch; grad (may be NULL)
 * gets weight * d loss / d features ADDED to it, so several losses can share a node: add into
 * at_pass_grad(pass, node) between at_backward_begin and at_backward_run.
 * at_gram_matrices: gram [n, channels, channels] = F F^T / positions per example.
 * at_loss_gram: ||G(F) - target_gram||_F^2 per example (target_gram [n, channels, channels]).
 * at_loss_feature_distance: ||F - target||^2 per example. */
int at_gram_matrices(const float *features, int n, int channels, int positions, float *gram);
int at_loss_gram(const float *features, const float *target_gram, int n, int channels,
                 int positions, float weight, float *loss, float *per_example, float *grad,
                 at_error *err);
float at_loss_feature_distance(const float *features, const float *target, int n,
                               size_t per_example_size, float weight, float *per_example,
                               float *grad);

/* Number of rows whose arg-max equals the label; `correct` (may be NULL) gets 0/1 per row. */
int at_count_correct(const float *logits, int n, int k, const int32_t *labels, uint8_t *correct);

/* ------------------------------------------------------------------------------------------------
 * Optimisers and learning-rate schedules. An optimiser belongs to one model (the classifier, or any
 * other network trained beside it) and updates its parameter slab from its gradient slab, step for
 * step as PyTorch 1.13's torch.optim class of the same name.
 */
typedef enum at_optimizer_kind {
    AT_OPTIMIZER_SGD = 0,  /* torch.optim.SGD with dampening 0 */
    AT_OPTIMIZER_ADAM = 1, /* torch.optim.Adam (Kingma and Ba), amsgrad off */
    AT_OPTIMIZER_ADAMW = 2 /* torch.optim.AdamW (Loshchilov and Hutter), amsgrad off */
} at_optimizer_kind;
const char *at_optimizer_kind_name(at_optimizer_kind kind); /* "sgd", "adam", "adamw" */

/* Every field is taken as it is (a beta of 0 is a real choice): start from
 * at_optimizer_defaults(kind) and change what differs. A field the kind does not use must stay 0;
 * at_optimizer_create refuses it rather than ignore it. Numbers are doubles because PyTorch
 * computes 1 - beta, the bias corrections and 1 - lr * wd in double precision. */
typedef struct at_optimizer_options {
    at_optimizer_kind kind;
    double weight_decay;  /* SGD, Adam: coupled L2, g += wd * w; AdamW: decoupled, w *= 1 - lr wd */
    double momentum;      /* SGD: in [0, 1); 0 = plain SGD */
    bool nesterov;        /* SGD: Nesterov momentum (needs momentum > 0) */
    double beta1, beta2;  /* Adam, AdamW: decay of the gradient's and the squared gradient's
                             running averages, in [0, 1) */
    double eps;           /* Adam, AdamW: added to the denominator, > 0 */
} at_optimizer_options;

/* PyTorch's defaults: SGD momentum 0, weight decay 0; Adam betas (0.9, 0.999), eps 1e-8, weight
 * decay 0; AdamW the same with weight decay 1e-2. */
at_optimizer_options at_optimizer_defaults(at_optimizer_kind kind);

/* An optimiser updates `model`, which must outlive it; its state starts at zero, as PyTorch's. */
typedef struct at_optimizer at_optimizer;
int at_optimizer_create(at_optimizer **out, at_model *model, const at_optimizer_options *options,
                        at_error *err);
void at_optimizer_free(at_optimizer *opt);
const at_optimizer_options *at_optimizer_get_options(const at_optimizer *opt);
/* One update of every parameter of the model from its gradient slab, at learning rate lr. */
void at_optimizer_step(at_optimizer *opt, float lr);

/* The state a checkpoint must carry for a run to continue exactly: buffers laid out like the
 * parameter slab (at_model_params), by name ("momentum", SGD's momentum buffer; "exp_avg" and
 * "exp_avg_sq", Adam's and AdamW's moments under PyTorch's names), and for Adam and AdamW the
 * step count t of the bias correction. */
typedef struct at_optimizer_state_info {
    const char *name;
    float *data;
    size_t count;
} at_optimizer_state_info;
int at_optimizer_state_count(const at_optimizer *opt);
at_optimizer_state_info at_optimizer_state(at_optimizer *opt, int index);
/* Steps taken (t) by Adam and AdamW; -1 for SGD, whose update does not depend on it. Setting it
 * is AT_ERR_ARG for SGD or a negative count. */
int64_t at_optimizer_steps(const at_optimizer *opt);
int at_optimizer_set_steps(at_optimizer *opt, int64_t steps, at_error *err);
/* Copies the state of an optimiser of the same kind over a model of the same size (a snapshot
 * to roll back to); AT_ERR_ARG otherwise. */
int at_optimizer_copy_state(at_optimizer *dst, const at_optimizer *src, at_error *err);

typedef enum at_lr_kind {
    AT_LR_CONSTANT = 0,
    AT_LR_PIECEWISE = 1, /* base * gamma^(number of milestones passed), milestones in epochs */
    AT_LR_COSINE = 2,    /* linear warm-up, then base * (1 + cos(pi t)) / 2 */
    AT_LR_CYCLIC = 3     /* one-cycle: 0 -> base at `peak` of the run -> 0 (Wong et al.) */
} at_lr_kind;

typedef struct at_lr_schedule {
    at_lr_kind kind;
    float base;
    float warmup_epochs;   /* cosine: epochs of linear warm-up from 0 */
    int n_milestones;
    float milestones[8];   /* piecewise: epochs (may be fractional) */
    float gamma;           /* piecewise: factor per milestone (0 means 0.1) */
    float peak;            /* cyclic: fraction of the run at the peak (0 means 0.5) */
} at_lr_schedule;

/* Learning rate for 0-based iteration `iter` of a run of `epochs` epochs of `iters_per_epoch`. */
float at_lr_at(const at_lr_schedule *s, long iter, long iters_per_epoch, int epochs);
const char *at_lr_kind_name(at_lr_kind kind);

/* ------------------------------------------------------------------------------------------------
 * Attacks. An attack is planned once for a model and a batch size (at_attack_create), then run on
 * batches. Every attack keeps its outputs inside the threat model: ||x_adv - x|| <= eps in the
 * chosen norm and x_adv in [0,1], and reports what it measured so a report can prove it.
 */
typedef enum at_norm { AT_NORM_LINF = 0, AT_NORM_L2 = 1, AT_NORM_L1 = 2 } at_norm;
const char *at_norm_name(at_norm norm); /* "linf", "l2", "l1" */

/* The loss a gradient attack ascends. */
typedef enum at_attack_loss {
    AT_ATTACK_LOSS_DEFAULT = 0, /* the attack's own (CE for PGD, FGSM and APGD-CE) */
    AT_ATTACK_LOSS_CE = 1,      /* cross-entropy */
    AT_ATTACK_LOSS_CW = 2,      /* Carlini-Wagner margin: max_{i != y} z_i - z_y */
    AT_ATTACK_LOSS_DLR = 3      /* difference of logits ratio (Croce and Hein, 2020) */
} at_attack_loss;

/* The internal Wasserstein distance (IWD) between two images (Wang et al., "Internal Wasserstein
 * Distance for Adversarial Attack and Defense", arXiv 2103.07598; no code was published, so the
 * details below are a reconstruction with these presets): each image is the uniform distribution
 * over its patch x patch patches (all channels, `stride` apart), and the distance is the debiased
 * Sinkhorn divergence S(x, x') = OT_reg(P_x, P_x') - (OT_reg(P_x, P_x) + OT_reg(P_x', P_x')) / 2
 * with the cost ||p - p'||^2 / (channels patch^2) (at_sinkhorn). S(x, x) = 0 and S is symmetric.
 * Fields at 0 take the presets. */
typedef struct at_iwd_options {
    int patch;                /* side of a patch; 0 = 3 */
    int stride;               /* between patch positions; 0 = 2 */
    int samples;              /* patch positions kept when an image has more, drawn without
                                 replacement from the distance's seed, the same positions in both
                                 images; 0 = 256 */
    float reg;                /* Sinkhorn's eps on that per-pixel cost; 0 = 0.01 */
    int iters;                /* Sinkhorn iterations; 0 = 50 */
} at_iwd_options;

typedef struct at_attack_options {
    at_norm norm;
    float eps;                /* budget on [0,1] pixels */
    int steps;                /* iterations; 0 = the attack's default */
    float step_size;          /* PGD: absolute step; 0 = 2.5 * eps / steps */
    int restarts;             /* 0 = 1; the worst case over restarts is kept per example */
    bool no_random_start;     /* PGD: start from x itself */
    at_attack_loss loss;
    int targets;              /* APGD-T, FAB-T: target classes per point; 0 = min(9, classes - 1) */
    bool targeted;            /* PGD, FGSM: move towards the `target` labels given to the run */
    at_bn_mode bn_mode;       /* batch-norm mode of every attack pass; 0 = eval */
    int eot;                  /* gradients averaged per step (expectation over transformation) */
    int queries;              /* Square: forward passes per point; 0 = 5000 */
    float p_init;             /* Square: initial fraction of pixels changed; 0 = 0.8 */
    bool early_stop;          /* stop changing a point once it is misclassified */
    /* IWD attack (iwd): ascends L(f(x'), y) - lambda S(x, x') by signed (Linf) or normalised (L2)
     * steps inside the pixel bound eps (1 with Linf: none); iwd_budget > 0 keeps only points
     * with S <= iwd_budget */
    at_iwd_options iwd;
    float iwd_lambda;         /* 0 = 10 */
    float iwd_budget;         /* 0 = no budget */
    struct at_flow *flow;     /* JSA: the normalizing flow whose inverse decodes the latent */
    float eps_z;              /* JSA: Linf budget of the latent perturbation (eps: the pixel one) */
    float step_size_z;        /* JSA: latent step; 0 = 2.5 * eps_z / steps */
} at_attack_options;

/* What an attack measured over every batch it ran since at_attack_reset_stats. */
#define AT_STATS_MAX_STEPS 512
typedef struct at_attack_stats {
    long points;              /* examples attacked */
    long fooled;              /* of them, misclassified by the returned x_adv */
    double max_linf, max_l2, max_l1; /* largest ||x_adv - x|| measured, per norm */
    long out_of_range;        /* returned values outside [0,1] (must be 0) */
    double eval_max_linf, eval_max_l2, eval_max_l1; /* the same over every point the attack
                                                        evaluated on its way, not just the last */
    long eval_out_of_range;
    long nonfinite_outputs;   /* returned values that are NaN or infinite (must be 0) */
    long gradient_evals;      /* input-gradient evaluations, summed over examples */
    long forward_evals;       /* forward-only evaluations, summed over examples */
    long zero_gradients;      /* gradient evaluations whose input gradient was exactly zero */
    long nonfinite_gradients; /* ... or contained NaN or infinity */
    at_bn_mode bn_mode;       /* the batch-norm mode every pass of the attack used */
    int steps;                /* loss_sum[0..steps] are filled (0 = the starting point) */
    double loss_sum[AT_STATS_MAX_STEPS + 1]; /* sum over examples of the attack loss at each step */
    long loss_count[AT_STATS_MAX_STEPS + 1];
    /* IWD attack: the IWD S(x, x_adv) of each returned point (iwd_points of them) */
    long iwd_points;
    double iwd_sum, iwd_max;
    long iwd_over_budget;     /* returned points with S > iwd_budget (must be 0) */
    /* JSA's two budgets, measured on what it returned (x_adv itself is F^-1(F(x) + dz) + dx,
     * not within eps of x), and the flow's exactness on the clean images */
    double max_latent_linf;   /* largest ||dz||_inf */
    double max_pixel_linf;    /* largest ||dx||_inf */
    double max_reconstruction;/* largest |F^-1(F(x)) - x| */
} at_attack_stats;

typedef struct at_attack at_attack;

/* name: see at_attack_info ("fgsm", "pgd", "apgd-ce", "apgd-dlr", "apgd-t", "fab-t", "square",
 * "iwd"). */
int at_attack_create(at_attack **out, const char *name, at_model *model, int max_batch,
                     const at_attack_options *options, at_error *err);
void at_attack_free(at_attack *attack);
bool at_attack_info(int index, const char **name, const char **description);
const at_attack_options *at_attack_get_options(const at_attack *attack);

/* Attacks x [n, c, h, w] with labels y; writes x_adv (may not alias x). `target` (NULL unless
 * targeted) gives target labels. seeds[i] drives the random start and search of example i, so
 * an example's result does not depend on the rest of its batch (in eval BN mode). fooled (may
 * be NULL) gets 1 for each example the model misclassifies at x_adv (in the attack's BN mode). */
int at_attack_run(at_attack *attack, const float *x, const int32_t *y, const int32_t *target,
                  int n, const uint64_t *seeds, float *x_adv, uint8_t *fooled);
/* Per-example seeds for examples first..first+n-1 of a data set under a run seed. */
void at_attack_seeds(uint64_t seed, long first, int n, uint64_t *seeds);
const at_attack_stats *at_attack_get_stats(const at_attack *attack);
void at_attack_reset_stats(at_attack *attack);

/* Entropic optimal transport between x [n, d] with weights a and y [m, d] with weights b (NULL:
 * uniform; otherwise positive and summing to 1), cost C_ij = ||x_i - y_j||^2 / d:
 * OT_eps = min_P <P, C> + eps KL(P || a b^T), by `iters` log-domain Sinkhorn iterations. Returns
 * the dual objective at the final potentials (<= OT_eps, equal at convergence; OT_eps is within
 * eps log(min(n, m)) above the unregularised cost for uniform weights), NAN for bad arguments.
 * grad_x [n, d] and grad_y [m, d] (each may be NULL) get its gradient by the envelope theorem,
 * sum_j P_ij dC_ij/dx_i; plan [n, m] (may be NULL) gets P. work holds at_sinkhorn_work(n, m)
 * doubles. */
size_t at_sinkhorn_work(int n, int m);
double at_sinkhorn(const double *x, const double *a, int n, const double *y, const double *b,
                   int m, int d, double eps, int iters, double *work, double *grad_x,
                   double *grad_y, double *plan);

/* The IWD of images of channels x height x width (see at_iwd_options). at_iwd_create checks the
 * options (an error names the one at fault) and fills in the presets. */
typedef struct at_iwd at_iwd;
int at_iwd_create(at_iwd **out, const at_iwd_options *options, int channels, int height,
                  int width, at_error *err);
void at_iwd_free(at_iwd *iwd);
const at_iwd_options *at_iwd_get_options(const at_iwd *iwd);
/* Patch positions the distance uses (after subsampling). */
int at_iwd_patches(const at_iwd *iwd);
/* S(x, x_adv) for one pair of images; seed draws the patch positions when subsampling. grad (may
 * be NULL) gets dS/dx_adv [image]. NAN when a value is not finite. */
double at_iwd_distance(at_iwd *iwd, const float *x, const float *x_adv, uint64_t seed,
                       float *grad);

/* ------------------------------------------------------------------------------------------------
 * Data sets: uint8 images in NCHW order and int32 labels, owned by the dataset.
 */
typedef struct at_dataset {
    char name[64];        /* "fashion-mnist" */
    int n, c, h, w;
    int num_classes;
    uint8_t *images;      /* [n, c, h, w] */
    int32_t *labels;      /* [n] */
    int skipped;          /* files left out as unreadable (an image folder read with skip_bad) */
} at_dataset;

void at_dataset_free(at_dataset *ds);

/* An IDX image file ([n, h, w] uint8) and its label file ([n] uint8), gzip or raw. */
int at_dataset_load_idx(at_dataset *out, const char *images_path, const char *labels_path,
                        int num_classes, at_error *err);
/* CIFAR binary batches: records of 1 (CIFAR-10) or 2 (CIFAR-100: coarse, fine) label bytes and
 * 3x32x32 pixels. With two label bytes the fine label is used. */
int at_dataset_load_cifar(at_dataset *out, const char *const *paths, int n_paths,
                          int label_bytes, at_error *err);

/* CIFAR-10-C / CIFAR-100-C (Hendrycks and Dietterich, ICLR 2019) as released: `dir` holds
 * `<corruption>.npy`, uint8 [N, 32, 32, 3] (NHWC) with the five severities stacked (severity s
 * in rows (s-1) N/5 .. s N/5 - 1; N = 50000 in the release, any positive multiple of 5 here), and
 * `labels.npy`, [N] little-endian integers (uint8 or int64 in the release). Loads the N/5 images
 * of one corruption (at_corruption_name's fifteen, or the held-out speckle_noise,
 * gaussian_blur, spatter, saturate) at one severity (1..5) as NCHW, named
 * "cifar10-c:<corruption>:<severity>" ("cifar100-c:..." for 100 classes). Errors: AT_ERR_ARG for
 * an unknown corruption or a severity outside 1..5, AT_ERR_NOTFOUND for a missing file (named),
 * AT_ERR_FORMAT for a dtype other than uint8 images / integer labels, a label outside
 * [0, num_classes), or a file shorter (or longer) than its header says, AT_ERR_SHAPE for images
 * not [N, 32, 32, 3], N not a multiple of 5, or labels not [N]. */
int at_dataset_load_cifar_c(at_dataset *out, const char *dir, const char *corruption,
                            int severity, int num_classes, at_error *err);

/* Extra training data from a file, e.g. generated images (Gowal et al., 2021):
 *   .npz          a NumPy archive (stored or deflated) with `image` (or `images`), uint8
 *                 [N, H, W, C], or [N, H, W] for one channel, and `label` (or `labels`), [N], any
 *                 little-endian integer dtype;
 *   .safetensors  `images` (or `image`) U8 [N, C, H, W] and `labels` (or `label`), [N], U8, I8,
 *                 I16, I32 or I64.
 * The images must be channels x height x width and every label in [0, num_classes). Errors:
 * AT_ERR_ARG for an unknown extension, AT_ERR_SHAPE for a shape other than the one expected or
 * image and label counts that differ, AT_ERR_FORMAT for a missing array, a wrong dtype, a label
 * out of range, no images, or a damaged file, AT_ERR_IO when it cannot be opened. The name is the
 * file's base name. */
int at_dataset_load_file(at_dataset *out, const char *path, int channels, int height, int width,
                         int num_classes, at_error *err);

/* An image folder, the layout of torchvision's ImageFolder: one sub-directory per class under the
 * split's root, the class index the position of its name in byte order, the images in it (not in
 * deeper directories) files ending in .png, .jpg or .jpeg (any case). Other files and names
 * starting with '.' are ignored. The root is dir/train or dir/test when dir holds both; else dir
 * itself, with a seeded share of each class held out as the test split (the same classes are then
 * in both splits). PNG is read by libpng, JPEG by libjpeg, whichever the file's signature says.
 * Errors, each naming the file or directory: AT_ERR_NOTFOUND for a missing directory, no class
 * directories or a class without images; AT_ERR_FORMAT for a damaged, truncated or unreadable
 * image (unless skip_bad), or one whose size differs from the first image's when no size is
 * given; AT_ERR_ARG for bad options or train/ and test/ with different classes. */
typedef struct at_image_folder_options {
    int channels;          /* 1 (grey) or 3 (colour), converted as needed; 0: the first image's */
    int height, width;     /* every image resized to this; 0, 0: the first image's size, which
                              every image must then have */
    bool crop;             /* resizing: false stretches the whole image to height x width; true
                              scales both axes alike to cover that size and cuts off the centre */
    double test_fraction;  /* without train/ and test/: the share of each class (rounded) held out
                              as the test split, in (0, 1); 0 means 0.2 */
    uint64_t split_seed;   /* which images are held out */
    bool skip_bad;         /* leave out unreadable images, counted in `skipped`, instead of failing */
} at_image_folder_options;

/* The split "train" or "test" of the image folder `dir`, named "folder". The first image (for a
 * default size or channel count) is the first of the train split, in class then file-name order,
 * so both splits agree. Images are resized by area averaging (see src/data/image_resize.c). */
int at_dataset_load_folder(at_dataset *out, const char *dir, const char *split,
                           const at_image_folder_options *options, at_error *err);
/* Options from text, comma-separated: "size=HxW", "resize=stretch|crop", "channels=1|3",
 * "test-fraction=F", "split-seed=N", "skip-bad"; NULL or "" leaves the defaults (all zero). */
int at_image_folder_parse_options(at_image_folder_options *options, const char *text,
                                  at_error *err);

/* Known data sets by name: "mnist", "fashion-mnist", "cifar10", "cifar100", and sets derived
 * from them: "fashion-mnist-clips" (8-frame clips of Fashion-MNIST, at_dataset_make_clips with
 * seed 0 for the train split and 1 for the test split), "fashion-mnist-clips-T" for T frames
 * (1..64); "cifar10-c:CORRUPTION:SEVERITY" and "cifar100-c:..." (at_dataset_load_cifar_c, test
 * split only); "folder" or "folder:OPTIONS" (at_dataset_load_folder with
 * at_image_folder_parse_options, dir required). Split "train" or "test". `dir` NULL means the default directory of that data set (of
 * the set it is derived from). */
int at_dataset_open(at_dataset *out, const char *name, const char *dir, const char *split,
                    at_error *err);
bool at_dataset_info(int index, const char **name, const char **default_dir,
                     const char **description);

/* Copies examples [start, start + count) into a new dataset (validation split, subsets). */
int at_dataset_slice(at_dataset *out, const at_dataset *src, int start, int count, at_error *err);
/* Splits off `val_count` examples chosen by `seed` (a held-out validation set) and keeps the rest
 * in their original order. */
int at_dataset_split(at_dataset *train, at_dataset *val, const at_dataset *src, int val_count,
                     uint64_t seed, at_error *err);

/* Video clips of a moving item (a stand-in for video data): for each image of src (C x H x W, H
 * and W even and >= 4), its item, the image halved (each pixel the rounded mean of a 2x2 block),
 * moves in an H x W frame of zeros from a random start at a random constant integer velocity
 * (each component in -3..3, not both 0), bouncing off the edges. Clip i is `frames` (1..64)
 * frames stored as one image of frames * C channels, frame t in channels t*C .. t*C + C - 1, with
 * the label of image i. It depends only on (seed, i, image i), in integer arithmetic: the same
 * bytes on every machine. The name is "<src name>-clips". */
int at_dataset_make_clips(at_dataset *out, const at_dataset *src, int frames, uint64_t seed,
                          at_error *err);

/* Augmentation applied while filling a batch. */
typedef struct at_augment {
    int crop_padding;  /* random crop after zero padding of this many pixels; 0 = none */
    bool hflip;        /* random horizontal flip with probability 1/2 */
} at_augment;

/* Converts examples idx[0..n) to floats in [0,1] (x: [n, c, h, w]) and labels (y: [n]);
 * rng drives the augmentation and may be NULL when aug is NULL. */
void at_dataset_batch(const at_dataset *ds, const int32_t *idx, int n, float *x, int32_t *y,
                      const at_augment *aug, at_rng *rng);

/* ------------------------------------------------------------------------------------------------
 * Generated data: a class-conditional generator of synthetic training images, the stand-in here
 * for the generative models of Gowal et al., "Improving Robustness using Generated Data" (NeurIPS
 * 2021), who report that even class-conditional Gaussian samples help adversarial training. The
 * images are projected onto their top principal directions; each class gets a mixture of
 * Gaussians with diagonal covariances there, fitted by EM from k-means++ starts.
 */
typedef struct at_gmm at_gmm;

/* A zero field takes the default: 64 PCA dimensions (at most the number of pixels), 5 components
 * per class, 50 EM iterations. A class with fewer examples than components gets one component
 * per example. */
typedef struct at_gmm_options {
    int dims;
    int components;
    int iterations;
} at_gmm_options;

/* Fits the generator to ds's images and labels; the draws of the k-means++ starts come from rng.
 * The result does not depend on the number of threads. */
int at_gmm_fit(at_gmm **out, const at_dataset *ds, const at_gmm_options *options, at_rng *rng,
               at_error *err);
void at_gmm_free(at_gmm *g);
const at_gmm_options *at_gmm_get_options(const at_gmm *g); /* defaults filled in */
/* n samples: images uint8 [n, c, h, w] of ds's shape and the class each was drawn for. A class is
 * drawn uniformly among the classes ds had examples of (not by their frequency), a component by
 * its weight, z ~ N(mu, diag sigma^2); the image is mean + U z, clamped to [0,1] and rounded. */
int at_gmm_sample(const at_gmm *g, int n, at_rng *rng, uint8_t *images, int32_t *labels,
                  at_error *err);
/* The mean log-likelihood per training example (in PCA coordinates) after 0, 1, ..., iterations
 * EM steps: fills up to `cap` values and returns iterations + 1. EM never lowers it. */
int at_gmm_log_likelihood(const at_gmm *g, double *values, int cap);
/* Component `component` of class `label`: its weight in the class and its mean as an image
 * (c * h * w floats, mean + U mu, not clamped). Either output may be NULL. */
int at_gmm_component(const at_gmm *g, int label, int component, double *weight,
                     float *mean_image, at_error *err);

/* ------------------------------------------------------------------------------------------------
 * Common corruptions: the 15 corruptions of CIFAR-10-C at 5 severities (Hendrycks and Dietterich,
 * ICLR 2019), following the published definitions and severity tables, for grey and colour images
 * of any size.
 */
int at_corruption_count(void);
const char *at_corruption_name(int i);   /* "gaussian_noise", ..., "jpeg_compression"; NULL past the end */
const char *at_corruption_family(int i); /* "noise", "blur", "weather" or "digital" */
const char *at_corruption_note(int i);   /* how it departs from the published definition, or NULL */
int at_corruption_find(const char *name); /* its index, or AT_ERR_NOTFOUND */
/* Corrupts n images [n, c, h, w] (c = 1 or 3, pixels in [0, 1]) in place at severity 1..5. Image
 * i draws from its own stream of (seed, first_index + i, corruption, severity), so an image gets
 * the same corruption in any batch, with any number of threads, on any machine. */
int at_corrupt_images(int corruption, int severity, float *images, int n, int c, int h, int w,
                      uint64_t seed, long first_index, at_error *err);
/* The model's predictions (BN in eval mode) on ds's images under one corruption at a severity,
 * image i corrupted as at_corrupt_images with first_index i; corruption -1 takes the images as
 * they are (a real CIFAR-10-C cell, or the clean set). n_correct gets the number right; correct
 * [ds->n] (may be NULL) 0/1 per image and logits [ds->n, classes] (may be NULL) the outputs. */
int at_eval_corrupted(at_model *model, const at_dataset *ds, int corruption, int severity,
                      uint64_t seed, int batch_size, uint8_t *correct, float *logits,
                      long *n_correct, at_error *err);

/* ------------------------------------------------------------------------------------------------
 * Calibration (Guo et al., "On Calibration of Modern Neural Networks", ICML 2017): does the
 * model's confidence (its largest softmax probability) match its accuracy? Predictions are
 * accumulated batch by batch, from logits or probabilities [n, k] and labels, into M equal-width
 * bins of confidence I_m = ((m-1)/M, m/M] (right-closed: a confidence of exactly 1 is in the last
 * bin), for any set of inputs: clean, adversarial, corrupted.
 *   ECE = sum_m |B_m| / n * |acc(B_m) - conf(B_m)|,  MCE = max over non-empty bins of the same gap.
 * The accumulator also sums the negative log-likelihood -log p_y and the Brier score
 * sum_j (p_j - [j = y])^2 (both averaged by dividing by n). All sums are in double, in row order.
 */
#define AT_CALIBRATION_MAX_BINS 1000
#define AT_CALIBRATION_DEFAULT_BINS 15 /* Guo et al.'s M */

typedef struct at_calibration {
    int bins;                 /* M; 0 when not initialised (or freed) */
    long n;                   /* rows binned */
    long correct;             /* of them, arg-max equal to the label (the first maximum) */
    long nonfinite;           /* rows of logits with NaN or infinity: counted here, not binned */
    double confidence_sum;    /* sum of confidences */
    double nll_sum;           /* sum of -log p_y */
    double brier_sum;         /* sum of sum_j (p_j - [j = y])^2 */
    long *bin_count;          /* [bins]: |B_m| */
    long *bin_correct;        /* [bins]: correct rows in B_m (acc(B_m) = correct / count) */
    double *bin_confidence;   /* [bins]: sum of confidences in B_m (conf(B_m) = sum / count) */
} at_calibration;

/* An empty accumulator of `bins` bins (1..AT_CALIBRATION_MAX_BINS, else AT_ERR_ARG). A
 * zero-initialised struct may be freed without being initialised. */
int at_calibration_init(at_calibration *cal, int bins, at_error *err);
void at_calibration_free(at_calibration *cal);
/* Adds n rows of logits [n, k] (softmax taken in double); a row with a non-finite logit is
 * counted in `nonfinite` and not binned. AT_ERR_ARG for a label outside 0..k-1. */
int at_calibration_add_logits(at_calibration *cal, const float *logits, int n, int k,
                              const int32_t *labels, at_error *err);
/* Adds n rows of probabilities [n, k], each in [0, 1] and summing to 1 within 1e-3 (AT_ERR_ARG
 * otherwise); a zero probability on the label counts as 1e-12 in the NLL. */
int at_calibration_add_probs(at_calibration *cal, const float *probs, int n, int k,
                             const int32_t *labels, at_error *err);
/* into += from (the same number of bins, else AT_ERR_ARG): parts of a data set measured apart. */
int at_calibration_merge(at_calibration *into, const at_calibration *from, at_error *err);
/* ECE and MCE as fractions in [0, 1]; NaN when no row was binned. */
double at_calibration_ece(const at_calibration *cal);
double at_calibration_mce(const at_calibration *cal);
/* The bin (0..bins-1) a confidence falls in. */
int at_calibration_bin_of(double confidence, int bins);

/* ------------------------------------------------------------------------------------------------
 * Robustness evaluation: clean accuracy, then a cascade of attacks, each run only on the points
 * every earlier attack failed to break, so a point counts as robust only if it survives all of
 * them (its worst case). Every point has its own seed, so results do not depend on batching.
 */
#define AT_EVAL_MAX_ATTACKS 8

typedef struct at_eval_plan {
    int n_attacks;
    const char *attacks[AT_EVAL_MAX_ATTACKS];          /* attack names, in cascade order */
    at_attack_options options[AT_EVAL_MAX_ATTACKS];
    long first_point;         /* start at this example (resuming or splitting an evaluation) */
    int points;               /* evaluate this many examples from first_point (0 = to the end) */
    int batch_size;           /* 0 = 250 */
    uint64_t seed;
    at_model *surrogate;      /* non-NULL: attacks are crafted on it and judged on the model
                                 (a transfer attack); same input shape and classes */
    int calibration_bins;     /* bins of the result's calibrations; 0 = 15 */
} at_eval_plan;

typedef struct at_eval_result {
    long points;
    long clean_correct;
    long broken_by[AT_EVAL_MAX_ATTACKS];   /* points first broken by attack k */
    long robust_after[AT_EVAL_MAX_ATTACKS];/* points still robust after attack k */
    at_attack_stats stats[AT_EVAL_MAX_ATTACKS];
    at_attack_options options[AT_EVAL_MAX_ATTACKS]; /* as run, defaults filled in */
    double seconds[AT_EVAL_MAX_ATTACKS];
    double clean_seconds;
    int8_t *outcome;          /* per point: -2 misclassified clean, -1 robust, k broken by attack k */
    /* Calibration of the evaluated model's outputs over every point: on the clean inputs, and
     * (with at least one attack) on each point's final input of the cascade: the output of the
     * attack that broke it, of the last attack for a robust point, and the clean input itself
     * for a point misclassified clean (no attack runs on it). Its accuracy is the robust
     * accuracy. bins 0 (empty) for the adversarial one when the plan has no attack. */
    at_calibration clean_calibration;
    at_calibration adversarial_calibration;
} at_eval_result;

/* Adds the statistics of another run of the same attack (sums, maxima, per-step losses). */
void at_attack_stats_merge(at_attack_stats *into, const at_attack_stats *from);

/* Called after each batch with the points done so far. */
typedef void (*at_eval_progress)(void *user, long done, long total);

int at_eval_robust(at_model *model, const at_dataset *ds, const at_eval_plan *plan,
                   at_eval_result *result, at_eval_progress progress, void *user, at_error *err);
void at_eval_result_free(at_eval_result *result);

/* ------------------------------------------------------------------------------------------------
 * Preemptive image robustification (Moon, An and Song, "Preemptive Image Robustification for
 * Protecting Users against Man-in-the-Middle Adversarial Attacks", AAAI 2022, eq. 2): the owner
 * of a clean image x moves it to x_r with ||x_r - x|| <= delta before anyone sees it, so that
 * the model's own prediction y^ = f(x) survives every x' with ||x' - x_r|| <= eps:
 *     min_{x_r in B_delta(x) and [0,1]}  max_{x' in B_eps(x_r) and [0,1]}  CE(f(x'), y^).
 * The inner max is PGD whose increments are held constant (a Danskin-style gradient: x' depends
 * on x_r through the additive path and the projection and clamp masks, no second order). Linf:
 * x_r = lo + (tanh(w) + 1)(hi - lo)/2 with lo = max(x - delta, 0), hi = min(x + delta, 1), and
 * RMSprop on w (the authors' code); L2: projected steps along the normalised gradient on x_r
 * itself. The model runs in eval BN mode throughout. With `reconstruct` the same loop ascends
 * the robust loss instead: an adaptive attacker's attempt to undo a robustification.
 */
typedef struct at_robustify_options {
    at_norm norm;          /* linf or l2 (l1 is refused) */
    float delta;           /* the owner's budget, > 0 */
    float eps;             /* the man-in-the-middle's budget of the inner PGD, >= 0 */
    int iters;             /* outer iterations, >= 0 */
    int steps;             /* inner PGD steps; 0: the robust loss is the loss at x_r itself */
    float step_size;       /* inner PGD step, > 0 when steps > 0 */
    float lr;              /* outer step: RMSprop's learning rate on w (linf), the length of a
                              normalised step on x_r (l2) */
    float rms_alpha;       /* RMSprop's decay of the squared gradient, in [0, 1) */
    bool no_random_start;  /* start x_r at x and every inner PGD at x_r (else uniform noise) */
    int noise_samples;     /* smoothing variant: > 0 averages every inner gradient and the outer
                              loss over this many Gaussian draws x' + sigma N(0, I) per step */
    float noise_sigma;     /* their standard deviation, > 0 when noise_samples > 0 */
    bool reconstruct;      /* ascend the robust loss (the reconstruction attack) */
} at_robustify_options;

/* The authors' settings for a norm and budgets: 100 iterations of PGD-20 with step eps/4 (their
 * 2/255 at eps 8/255; L2 0.125 at 0.5), RMSprop lr 0.1 and decay 0.99 (torch's) for linf, L2
 * steps of delta/10 [reconstruction: their code steps lr times the raw gradient], random starts,
 * no smoothing. */
void at_robustify_defaults(at_robustify_options *o, at_norm norm, float delta, float eps);

/* What the robustifier measured over every batch since it was made. */
typedef struct at_robustify_stats {
    long points;
    double max_linf, max_l2;   /* largest ||x_r - x||, per norm (<= delta in the chosen norm) */
    long out_of_range;         /* returned values outside [0,1] (must be 0) */
    long nonfinite;            /* returned values NaN or infinite (must be 0) */
    double loss_first_sum;     /* sum over points of the robust loss at the first iteration */
    double loss_last_sum;      /* ... and at the returned x_r (one more inner PGD) */
    long gradient_evals;       /* input-gradient evaluations, summed over examples */
} at_robustify_stats;

typedef struct at_robustifier at_robustifier;

int at_robustify_create(at_robustifier **out, at_model *model, int max_batch,
                        const at_robustify_options *options, at_error *err);
void at_robustify_free(at_robustifier *r);
const at_robustify_options *at_robustify_get_options(const at_robustifier *r);
const at_robustify_stats *at_robustify_get_stats(const at_robustifier *r);

/* Robustifies x [n, c, h, w] (n <= max_batch) into x_r (may not alias x) against the model's
 * predictions at x, which go to `labels` when it is not NULL. seeds[i] drives example i's random
 * draws, so its result does not depend on the rest of the batch. */
int at_robustify_run(at_robustifier *r, const float *x, int n, const uint64_t *seeds, float *x_r,
                     int32_t *labels);

/* The robust loss the outer loop minimises, per example: CE(f(x'), y) at the end of the inner
 * PGD from x (seeded by seeds[i]), averaged over the noise draws of the smoothing variant. */
int at_robustify_loss(at_robustifier *r, const float *x, const int32_t *y, int n,
                      const uint64_t *seeds, float *loss);

/* The outer variable v (w for linf, x_r itself for l2) of the images x: its robust loss per
 * example (into loss) and that loss's gradient w.r.t. v (into grad_v), with the inner PGD's
 * increments held constant (what one outer step descends; exposed for gradient checks). */
int at_robustify_gradient(at_robustifier *r, const float *x, const float *v, const int32_t *y,
                          int n, const uint64_t *seeds, float *loss, float *grad_v);
/* x_r = lo + (tanh(w) + 1)(hi - lo)/2, lo = max(x - delta, 0), hi = min(x + delta, 1) (linf's
 * map from w to the delta-box, for count floats), and its inverse (w for a point of the box,
 * scaled by 1.999 inside atanh as the authors' code, so that the box's faces stay finite). */
void at_robustify_box_from_w(const float *x, const float *w, size_t count, float delta,
                             float *x_r);
void at_robustify_box_to_w(const float *x, const float *x_r, size_t count, float delta,
                           float *w);

/* ------------------------------------------------------------------------------------------------
 * Randomized smoothing (Cohen, Rosenfeld and Kolter, "Certified Adversarial Robustness via
 * Randomized Smoothing", ICML 2019). The smoothed classifier g(x) = argmax_c P(f(x + d) = c),
 * d ~ N(0, sigma^2 I), is evaluated by Monte Carlo with the model f in eval BN mode:
 *   PREDICT  n draws; the top two classes' counts nA, nB; answer the top class when the two-sided
 *            binomial test of nA out of nA + nB at p = 1/2 has p-value <= alpha, else abstain
 *            (then g's answer differs from the one returned with probability at most alpha);
 *   CERTIFY  n0 draws pick the class cA; n fresh draws count nA of cA; pA is the Clopper-Pearson
 *            lower confidence bound on P(f(x + d) = cA) at level 1 - alpha; abstain when
 *            pA <= 1/2, else g(x + e) = cA for every ||e||_2 < R = sigma Phi^-1(pA), with
 *            probability at least 1 - alpha over the draws.
 * The noise is not clipped to [0, 1] (as in Cohen et al.). Draw j of a point comes from its own
 * stream at_rng_stream(seed, point, purpose << 40 | j) (purposes: 0 CERTIFY's selection, 1 its
 * estimation, 2 PREDICT), so results depend neither on the batch size nor on the threads.
 * With n draws no radius can exceed R_max = sigma Phi^-1(alpha^(1/n)) (all n draws agree): 3.81
 * sigma for n = 100000 and alpha = 0.001, 3.20 sigma for n = 10000, 2.46 sigma for n = 1000.
 */
typedef struct at_smooth_options {
    float sigma;              /* noise std on [0,1] pixels; > 0, required */
    int n0;                   /* CERTIFY's selection draws; 0 = 100 */
    long n;                   /* estimation draws (Cohen's n); 0 = 100000 */
    double alpha;             /* failure probability, in (0, 1); 0 = 0.001 */
    int batch_size;           /* noisy copies per forward; 0 = 500 */
    uint64_t seed;
} at_smooth_options;

typedef struct at_smooth_result {
    int prediction;           /* the class, or -1: abstain */
    int top_class;            /* the class chosen (cA, or PREDICT's most frequent), even when
                                 abstaining */
    long n0_count;            /* CERTIFY: draws of top_class among the n0 selection draws */
    long count;               /* nA: draws of top_class among the n */
    long runner_up;           /* PREDICT: nB, draws of the second most frequent class */
    double p_lower;           /* CERTIFY: pA, the lower confidence bound */
    double p_value;           /* PREDICT: the binomial test's p-value */
    double radius;            /* CERTIFY: sigma Phi^-1(pA); 0 when abstaining */
} at_smooth_result;

typedef struct at_smoother at_smoother;

/* Plans a forward-only pass of `model` (which must outlive the smoother) for the batch size.
 * AT_ERR_ARG for sigma <= 0 or not finite, negative n0, n or batch size, alpha outside (0, 1). */
int at_smoother_create(at_smoother **out, at_model *model, const at_smooth_options *options,
                       at_error *err);
void at_smoother_free(at_smoother *s);
const at_smooth_options *at_smoother_get_options(const at_smoother *s); /* defaults filled in */
/* x is one example [c, h, w]; `point` names its streams (e.g. its index in the data set).
 * AT_ERR_NUMERIC for a non-finite pixel or logit. */
int at_smooth_certify(at_smoother *s, const float *x, uint64_t point, at_smooth_result *result,
                      at_error *err);
int at_smooth_predict(at_smoother *s, const float *x, uint64_t point, at_smooth_result *result,
                      at_error *err);
/* R_max = sigma Phi^-1(alpha^(1/n)): the largest radius CERTIFY can return with n draws. */
double at_smooth_max_radius(double sigma, long n, double alpha);

/* The statistics underneath, in double precision; NAN for arguments out of range.
 * at_clopper_pearson_lower: the one-sided lower 1 - alpha confidence bound on p from k successes
 *   in n trials, the alpha-quantile of Beta(k, n - k + 1) (0 when k = 0; alpha^(1/n) when k = n).
 * at_binomial_test_half: the two-sided p-value of k successes in n trials under p = 1/2.
 * at_normal_quantile: Phi^-1(p) (-inf at 0, +inf at 1). */
double at_clopper_pearson_lower(long k, long n, double alpha);
double at_binomial_test_half(long k, long n);
double at_normal_quantile(double p);

/* ------------------------------------------------------------------------------------------------
 * safetensors files and checkpoints
 *
 * A safetensors file is an 8-byte little-endian header length, a JSON header mapping each tensor
 * name to {dtype, shape, data_offsets} (plus an optional "__metadata__" map of strings), then the
 * raw little-endian data.
 */
typedef struct at_safetensors at_safetensors;

typedef struct at_st_tensor {
    const char *name;
    const char *dtype;     /* "F32", "I64", "F64", "F16", "BF16", "U8", ... */
    int ndim;
    int64_t shape[8];
    const void *data;      /* little-endian bytes */
    size_t nbytes;
} at_st_tensor;

/* Reads and validates a whole file (header size, JSON, offsets inside the data, no overlaps). */
int at_st_open(at_safetensors **out, const char *path, at_error *err);
void at_st_free(at_safetensors *st);
int at_st_count(const at_safetensors *st);
const at_st_tensor *at_st_get(const at_safetensors *st, int index);
const at_st_tensor *at_st_find(const at_safetensors *st, const char *name);
const char *at_st_meta(const at_safetensors *st, const char *key); /* NULL when absent */

/* Writing: collect tensors and metadata, then write atomically (temp file, fsync, rename). The
 * writer keeps pointers to the data; it must stay valid until at_st_writer_save. */
typedef struct at_st_writer at_st_writer;
int at_st_writer_create(at_st_writer **out, at_error *err);
void at_st_writer_free(at_st_writer *w);
int at_st_writer_add(at_st_writer *w, const char *name, const char *dtype, int ndim,
                     const int64_t *shape, const void *data, size_t nbytes, at_error *err);
int at_st_writer_meta(at_st_writer *w, const char *key, const char *value, at_error *err);
int at_st_writer_save(at_st_writer *w, const char *path, at_error *err);

/* Loads the weights of a PyTorch state_dict saved as safetensors whose names carry `prefix`
 * before the model's names (a wrapper module: "model.", "module."; NULL for none); tensors named
 * in `ignore` (NULL-terminated, e.g. a wrapper's "mean" and "std") are passed over. The same
 * checks as at_checkpoint_load. */
int at_checkpoint_import(const char *path, at_model *model, const char *prefix,
                         const char *const *ignore, at_error *err);

/* SHA-256 of a file, and of a data set's images and labels, as 64 lowercase hex digits; reports
 * carry them so a result names exactly what it measured. */
int at_file_sha256(const char *path, char hex[65], at_error *err);
void at_dataset_sha256(const at_dataset *ds, char hex[65]);

/* Key/value metadata of a checkpoint. */
typedef struct at_kv {
    const char *key;
    const char *value;
} at_kv;

/* Saves the model's parameters and buffers under their PyTorch names and the metadata; when opt
 * is not NULL also its state, each buffer per parameter as "optimizer.<state>.<name>"
 * ("optimizer.momentum.conv1.weight", "optimizer.exp_avg.conv1.weight"), Adam's step count as the
 * 0-dim I64 "optimizer.step", and its kind as the metadata "optimizer" ("adam"). */
int at_checkpoint_save(const char *path, const at_model *model, at_optimizer *opt,
                       const at_kv *meta, int n_meta, at_error *err);
/* The same, with tensors of a training run's own state, each named "trainer.<what>",
 * "generator.<what>" or "critic.<what>" (see at_trainer_state); loading passes over them. */
int at_checkpoint_save_with(const char *path, const at_model *model, at_optimizer *opt,
                            const at_kv *meta, int n_meta, const at_st_tensor *extra, int n_extra,
                            at_error *err);
/* Loads into an existing model. Every model tensor must be present with the right shape and
 * dtype; any other tensor is an error unless it belongs to the optimiser. A weights-only file (a
 * PyTorch state_dict saved as safetensors) loads with opt NULL. With opt, the file must hold the
 * state of an optimiser of the same kind (a file without the "optimizer" metadata, written before
 * Adam existed, holds SGD's). When `st_out` is not NULL the opened file is handed back so the
 * caller can read its metadata; free it with at_st_free. */
int at_checkpoint_load(const char *path, at_model *model, at_optimizer *opt,
                       at_safetensors **st_out, at_error *err);

/* ------------------------------------------------------------------------------------------------
 * Normalizing flows: an exactly invertible map z = F(x) between [0,1] images and latent codes of
 * the same size under a standard normal prior, the generative model of IJSAT's joint-space attack
 * (attack "jsa", method "ijsat"). Multi-scale as RealNVP (Dinh et al., ICLR 2017): a logit
 * pre-transform y = logit(alpha + (1 - 2 alpha) x), then at each scale a squeeze (2x2 pixels to
 * channels) and `steps` steps of an invertible 1x1 convolution (Glow, Kingma and Dhariwal, 2018;
 * or a fixed channel reversal) and an affine coupling layer whose network is conv3x3, ReLU,
 * conv1x1, ReLU, conv3x3 (zero-initialised); between scales half the channels are factored out
 * into z. Height and width must be multiples of 2^scales.
 */
typedef struct at_flow at_flow;
typedef struct at_flow_options {
    int channels, height, width;
    int scales;               /* 0 = 2 */
    int steps;                /* steps per scale; 0 = 4 */
    int hidden;               /* feature maps of each coupling network; 0 = 64 */
    bool reverse;             /* fixed channel reversal instead of learned 1x1 convolutions */
    float alpha;              /* logit pre-transform; 0 = 0.05 (RealNVP's CIFAR-10 value) */
    uint64_t seed;
} at_flow_options;

int at_flow_create(at_flow **out, const at_flow_options *options, int max_batch, at_error *err);
void at_flow_free(at_flow *flow);
const at_flow_options *at_flow_get_options(const at_flow *flow); /* with defaults filled in */
size_t at_flow_dim(const at_flow *flow);  /* channels x height x width, also the latent size */
int at_flow_max_batch(const at_flow *flow);
/* z = F(x) for n examples, logdet[i] = log |det dF/dx| at example i (may be NULL). */
int at_flow_forward(at_flow *flow, const float *x, int n, float *z, double *logdet);
/* x = F^-1(z); x lies in (-alpha / (1 - 2 alpha), (1 - alpha) / (1 - 2 alpha)), [0,1] for z = F(x). */
int at_flow_inverse(at_flow *flow, const float *z, int n, float *x);
/* After at_flow_forward: accumulates into the weight gradients (at_flow_model) the gradient of a
 * loss whose gradients w.r.t. z and the log-determinants are dz [n, dim] and dlogdet [n].
 * AT_ERR_STATE when the last call was not a forward. */
int at_flow_backward(at_flow *flow, const float *dz, const float *dlogdet);
/* After at_flow_inverse: dz = J_{F^-1}(z)^T dx, through the inverse, without weight gradients.
 * AT_ERR_STATE when the last call was not an inverse. */
int at_flow_inverse_backward(at_flow *flow, const float *dx, float *dz);
/* The parameter holders (each step's coupling network and 1x1 convolution, as models whose
 * tensors are the flow's), for optimisers; gradients are zeroed with at_flow_zero_grad. With
 * `reverse` the 1x1 convolutions are fixed and not listed. */
int at_flow_model_count(const at_flow *flow);
at_model *at_flow_model(at_flow *flow, int index);
void at_flow_zero_grad(at_flow *flow);
/* Negative log-likelihood of dequantised images in bits per dimension,
 * (-log p(x) / dim) / log 2 + log2(256) for the density of x in [0,1]^dim. */
double at_flow_bits_per_dim(double log_px, size_t dim);

/* Saves the weights and a "flow" metadata object describing the network (atomically); load
 * rebuilds it for batches of up to max_batch: AT_ERR_IO or AT_ERR_FORMAT for a missing, damaged
 * or other kind of file. */
int at_flow_save(const char *path, const at_flow *flow, at_error *err);
int at_flow_load(at_flow **out, const char *path, int max_batch, at_error *err);

/* One epoch of maximum likelihood: images of ds in an order drawn from rng, uniformly
 * dequantised ((255 x + u) / 256, u ~ U[0,1)), the mean bits per dimension minimised by one step
 * of each optimiser (one per at_flow_model, in that order) at rate lr; *bpd the epoch's mean. */
int at_flow_train_epoch(at_flow *flow, at_optimizer *const *opts, const at_dataset *ds,
                        int batch_size, float lr, at_rng *rng, double *bpd, at_error *err);
/* Test bits per dimension of ds (dequantisation noise from `seed`). */
int at_flow_test_bpd(at_flow *flow, const at_dataset *ds, uint64_t seed, double *bpd,
                     at_error *err);
/* n samples x = F^-1(temperature * N(0, I)) clamped to [0,1]. */
int at_flow_sample(at_flow *flow, int n, float temperature, at_rng *rng, float *x, at_error *err);

/* ------------------------------------------------------------------------------------------------
 * Autoencoders: the image-to-image network of AdA (method "ada"), a small convolutional
 * autoencoder trained on the classifier's own data: conv C->F, conv stride 2 F->2F, conv stride 2
 * 2F->2F (a 4x downsampled bottleneck), then twice nearest x2 upsampling and a conv (2F->2F,
 * 2F->F), conv F->C and a sigmoid, ReLU between; the output is the flattened image in [0,1].
 * Height and width must be multiples of 4 (AT_ERR_SHAPE otherwise).
 */
int at_autoencoder_create(at_model **out, int channels, int height, int width, int features,
                          uint64_t seed, at_error *err);
/* Writes the weights (atomically) with metadata describing the network, so that
 * at_autoencoder_load can rebuild it; AT_ERR_ARG for a model at_autoencoder_create did not make. */
int at_autoencoder_save(const char *path, const at_model *autoencoder, at_error *err);
/* Rebuilds the network a file describes and loads its weights (every tensor present, finite, of
 * the right shape): AT_ERR_IO or AT_ERR_FORMAT for a missing, damaged or other kind of file. */
int at_autoencoder_load(at_model **out, const char *path, at_error *err);

/* One epoch of reconstruction training: the images of ds in an order drawn from rng, in batches
 * of batch_size (the pass's at most), the mean squared error over every pixel of a batch
 * minimised by one optimiser step at rate lr. *mse gets the epoch's mean error (before each
 * step); AT_ERR_NUMERIC when it is not finite, AT_ERR_SHAPE for images of another shape. */
int at_autoencoder_train_epoch(at_pass *pass, at_optimizer *opt, const at_dataset *ds,
                               int batch_size, float lr, at_rng *rng, double *mse, at_error *err);
/* The mean squared reconstruction error over every pixel of ds. */
int at_autoencoder_mse(at_model *autoencoder, const at_dataset *ds, int batch_size, double *mse,
                       at_error *err);

/* ------------------------------------------------------------------------------------------------
 * Training
 */
/* A training method's own options are declared in its file, one table per method: name, type,
 * range, the paper's value as preset, and one line of help. The command line, configuration
 * files, reports and the "not used by this method" error all come from these tables; options
 * every method shares (eps, norm, attack steps and step size, attack BN mode, schedules) are
 * fields of at_train_config. */
typedef enum at_option_type {
    AT_OPTION_FLOAT = 0,
    AT_OPTION_INT = 1,
    AT_OPTION_FLAG = 2,   /* "true" or "false"; preset false unless stated */
    AT_OPTION_CHOICE = 3  /* one of `choices` ("input|manifold") */
} at_option_type;

typedef struct at_option_info {
    const char *name;     /* "beta": --beta on the command line */
    at_option_type type;
    double min, max;      /* numbers: the accepted range */
    const char *choices;  /* AT_OPTION_CHOICE: "a|b|c" */
    const char *preset;   /* the paper's value as text ("6", "input"); NULL when it is derived
                             from other settings (the help line says how) */
    const char *help;     /* one line */
} at_option_info;

/* The options of a method by index (0, 1, ...); NULL past the end or for an unknown method. */
const at_option_info *at_method_option(const char *method, int index);

/* A method option set by name, its value as text ("beta" = "3", "awp" = "true"). */
typedef struct at_option_value {
    const char *name;
    const char *value;
} at_option_value;

#define AT_MAX_METHOD_OPTIONS 16

/* Where out-of-distribution rows come from (Lee et al., "Removing Undesirable Feature
 * Contributions Using Out-of-Distribution Data", ICLR 2021): procedural images, or a data set
 * whose labels are ignored. */
typedef enum at_ood_source {
    AT_OOD_NONE = 0,
    AT_OOD_GAUSSIAN = 1,  /* per image: N(mu, sigma^2) pixels, mu ~ U(0,1), sigma ~ U(0, 0.5) */
    AT_OOD_SHUFFLE = 2,   /* a training image cut into 4x4 patches, shuffled */
    AT_OOD_TEXTURES = 3,  /* sums of random oriented sinusoidal gratings */
    AT_OOD_DATA = 4       /* images of at_train_config.ood_data */
} at_ood_source;

/* How the training budget moves (Kinfu and Vidal, "Analysis and Extensions of Adversarial
 * Training for Video Classification", 2022); the attack's step always follows eps in
 * proportion. */
typedef enum at_eps_schedule {
    AT_EPS_FIXED = 0,      /* eps (after the linear warm-up, if any) */
    AT_EPS_CURRICULUM = 1, /* a staircase: stage s of eps_stages trains at eps (s + 1) / stages */
    AT_EPS_ADAPTIVE = 2,   /* per example: starts at eps, - eps_rate eps when the attack breaks
                              it, + eps_rate eps when it does not, within [eps_min, eps] */
    AT_EPS_STOCHASTIC = 3  /* per batch: uniform on [eps_min, eps] */
} at_eps_schedule;
const char *at_eps_schedule_name(at_eps_schedule s); /* "fixed", "curriculum", ... */
const char *at_ood_source_name(at_ood_source s);     /* "none", "gaussian", ... */

typedef struct at_train_config {
    const char *method;       /* see at_method_info: "standard", "pgd-at", "trades", ... */
    int epochs;
    int batch_size;
    at_lr_schedule lr;
    at_optimizer_options optimizer; /* the model's (zero-initialised: plain SGD) */
    at_augment augment;
    uint64_t seed;
    int val_size;             /* held-out validation examples taken from the training set */
    int eval_batch_size;

    /* Adversarial training. A zero field takes the method's default (the paper's); a field set
     * for a method that does not use it is an error, never silently ignored. */
    at_norm norm;
    float eps;                /* training budget (required by adversarial methods) */
    int attack_steps;         /* PGD steps of the training attack */
    float attack_step_size;   /* absolute step of the training attack */
    bool attack_bn_given;     /* attack_bn_mode overrides the method's choice */
    at_bn_mode attack_bn_mode;/* BN mode of the attack passes (Rice: train; TRADES: eval) */
    float ema;                /* > 0: evaluate an exponential moving average of the weights with
                                 decay min(ema, (1 + t) / (10 + t)) (Rebuffi et al.) */
    float eps_warmup;         /* > 0: eps grows linearly from 0 to eps over these epochs */
    bool no_robust_validation;/* adversarial methods validate PGD-10 robust accuracy each epoch;
                                 this turns it off (and with it early stopping) */
    float eval_eps;           /* budget of the robust validation; 0 = eps */
    at_eps_schedule eps_schedule;
    int eps_stages;           /* curriculum: stages over the run (0 = 4) */
    float eps_min;            /* adaptive and stochastic: the lowest budget (0) */
    float eps_rate;           /* adaptive: change per visit, as a fraction of eps (0 = 0.1) */

    /* What a batch holds (every method that takes soft targets accepts these). An epoch is
     * ceil(N / batch_size) optimiser steps whatever the batch holds, N the training images. */
    int repeat;               /* K > 1: each image K times per batch, augmented independently
                                 (batch repetition, Rebuffi et al. 2021); batch_size % K == 0 */
    bool cutmix;              /* CutMix (Yun et al. 2019) on every batch (each of the K
                                 repetition groups): one box, one pairing, label weights by
                                 area */
    float cutmix_alpha;       /* the box keeps a share lambda ~ Beta(alpha, alpha) of each
                                 image: 1 in the paper; 0 fixes lambda = 1, an empty box */
    const at_dataset *extra;  /* extra (e.g. generated) images mixed into every batch */
    float extra_ratio;        /* share of each batch from `extra` (0.7 in Gowal et al. 2021) */
    float extra_smoothing;    /* label smoothing of extra rows (0.1 there) */
    at_ood_source ood;        /* out-of-distribution rows appended to every batch (OAT) */
    const at_dataset *ood_data;/* with AT_OOD_DATA: its images (labels ignored) */
    float ood_weight;         /* their weight in the loss relative to an in-distribution row */
    int ood_batch;            /* OOD rows per batch (0 = batch_size, the paper's halves) */

    /* Adversarial coreset training (Dolatabadi, Erfani and Leckie, ECCV 2022): after
     * coreset_warmup full epochs, and from epoch coreset_start on (the epochs between are
     * skipped with the schedules' clock running: the paper's warm start), every coreset_period
     * epochs a weighted subset of this fraction of the training set is chosen by CRAIG on the
     * last-layer gradients at PGD points, and the epochs train on it, each loss weighted by its
     * cluster size. Adversarial methods only. */
    float coreset;            /* (0, 1]; 0 = off */
    int coreset_period;       /* 0 = 20 */
    int coreset_warmup;       /* -1 = round(coreset x start), the paper's T_w */
    int coreset_start;        /* -1 = floor(epochs / 2), the paper's kappa E with kappa 1/2 */
    bool coreset_bias_only;   /* distances on the bias part of the gradient alone */

    /* AdA (method "ada"): the autoencoder file (at_autoencoder_save) whose weights the
     * adversary perturbs; read when the trainer is created. Other methods refuse it. */
    const char *autoencoder;
    /* IJSAT (method "ijsat"): the normalizing flow file (at_flow_save) of the joint-space attack
     * and the latent mixup; read when the trainer is created. Other methods refuse it. */
    const char *flow;

    /* The method's own options (see at_method_option), read by at_trainer_create: a name the
     * method does not declare is an error; an option not given takes its preset. */
    int n_method_options;
    at_option_value method_options[AT_MAX_METHOD_OPTIONS];
} at_train_config;

/* Sets (or replaces) a method option of `config`; the strings must live until at_trainer_create.
 * AT_ERR_ARG when AT_MAX_METHOD_OPTIONS are already set. */
int at_train_config_set(at_train_config *config, const char *name, const char *value);

/* The training methods the trainer knows, for listings. */
bool at_method_info(int index, const char **name, const char **description);
/* The method trains against an eps-ball (it takes --eps, validates robust accuracy). */
bool at_method_is_adversarial(const char *name);

/* What the trainer reports after each epoch. */
typedef struct at_epoch_stats {
    int epoch;                /* 1-based */
    int epochs;
    double train_loss;        /* mean over the epoch's examples */
    double train_acc;         /* on the batches trained on (adversarial for adversarial methods) */
    double val_loss, val_acc; /* on the validation split; negative when there is none */
    double val_robust_acc;    /* PGD-10 accuracy on the validation split; negative when off */
    bool best;                /* the best validation (robust, else clean) accuracy so far */
    double eps;               /* training eps at the end of the epoch */
    double lr_last;
    double seconds;
    double images_per_second;
    /* fgsm-rs: PGD and FGSM accuracy on a fixed training batch, and the verdict */
    double check_pgd_acc, check_fgsm_acc;
    bool overfitting_detected; /* catastrophic overfitting: the weights were rolled back to the
                                  previous epoch and training stops */
    bool skipped;             /* a coreset warm-start epoch: no training, the clock ran */
    int coreset_size;         /* > 0: a coreset of this many images was chosen before the epoch */
    double selection_seconds; /* and the choice took this long */
    long steps;               /* optimiser steps taken in the epoch */
} at_epoch_stats;

typedef struct at_train_callbacks {
    /* after every batch: examples done in this epoch and in it */
    void (*on_batch)(void *user, int epoch, long done, long total, double loss);
    /* after every epoch; return nonzero to stop (the status becomes the return value) */
    int (*on_epoch)(void *user, const at_epoch_stats *stats);
    void *user;
} at_train_callbacks;

typedef struct at_trainer at_trainer;

/* A trainer owns the optimiser and the passes for one model and one training set. */
int at_trainer_create(at_trainer **out, at_model *model, const at_dataset *train,
                      const at_dataset *val, const at_train_config *config, at_error *err);
void at_trainer_free(at_trainer *t);
at_optimizer *at_trainer_optimizer(at_trainer *t);
/* The model to evaluate and deploy: the weight average with config.ema, else the model. */
at_model *at_trainer_eval_model(at_trainer *t);
/* The configuration with the method's defaults filled in. */
const at_train_config *at_trainer_config(const at_trainer *t);
/* The method's option `index` as the run uses it (its preset where none was given), as text:
 * "6", "true", "manifold". False past the end. */
bool at_trainer_method_option(const at_trainer *t, int index, const at_option_info **info,
                              char *text, size_t cap);
/* The run stopped early (catastrophic overfitting): no further epochs. */
bool at_trainer_stopped(const at_trainer *t);
int at_trainer_epoch(const at_trainer *t);  /* passes over the data completed */
int at_trainer_epochs(const at_trainer *t); /* passes the run makes (epochs / m for free-at) */
/* Where a run stands between epochs: what a checkpoint must carry besides the weights and the
 * optimiser for a resumed run to continue exactly (the schedule's position, the best validation
 * score so far, fgsm-rs's last overfitting-check accuracies, the last epoch's training accuracy
 * and loss, which AWP's preset warm-up waits on). */
typedef struct at_trainer_progress {
    int epochs_done;
    double best_score;            /* -1: none yet */
    double check_pgd, check_fgsm; /* -1: none yet */
    long optimizer_steps;         /* -1: epochs_done full epochs' worth */
    double last_train_acc;        /* -1: none yet */
    double last_train_loss;       /* -1: none yet */
} at_trainer_progress;
at_trainer_progress at_trainer_get_progress(const at_trainer *t);
/* After loading a checkpoint to resume (the current weights become fgsm-rs's roll-back point). */
int at_trainer_set_progress(at_trainer *t, const at_trainer_progress *p, at_error *err);
/* A run's own state besides the weights and the optimiser as tensors for
 * at_checkpoint_save_with: "trainer.*" (adaptive budgets, the coreset) and the networks a method
 * trains beside the model, "generator.*" (fgsm-sdi) and "critic.*" (infoat), each with its
 * optimiser's state; returns how many (at most cap; at_trainer_state_count is enough). The data
 * stays valid until the next epoch. */
int at_trainer_state(at_trainer *t, at_st_tensor *out, int cap);
int at_trainer_state_count(const at_trainer *t);
/* Restores that state from an opened checkpoint (at_checkpoint_load's st_out) to resume. */
int at_trainer_restore_state(at_trainer *t, const at_safetensors *st, at_error *err);
/* Fine-tuning: replaces the model's parameters and batch-norm buffers with those of `path`
 * before the first epoch (a weight average starts from them too); the optimiser, the epoch count
 * and the schedules stay fresh, unlike a resumed run. The file is an advtrain checkpoint, whose
 * optimiser and trainer.* tensors are passed over, or a PyTorch state_dict of the architecture
 * saved as safetensors (no wrapper prefix: at_checkpoint_import reads those). Every model tensor
 * must be there with its shape and dtype, and any other tensor is an error naming it; a file that
 * describes its model must normalise inputs as this model does. A failed call changes nothing;
 * AT_ERR_STATE after an epoch has run or a run was resumed past epoch 0. */
int at_trainer_init_weights(at_trainer *t, const char *path, at_error *err);
/* Data-parallel training: this process is one of the shard's ranks, each running the same
 * trainer (same data, configuration and seed) on its part of every batch. Every process composes
 * the whole batch (augmentation, CutMix, extra rows: cheap beside an attack) and runs the method
 * on its consecutive rows, the first (rows % ranks) processes holding one row more; the layers
 * sum the weight gradients over all processes (at_shard) and every process takes the same
 * optimiser step, so the replicas stay equal. Per-example results (which rows the model got
 * right: training accuracy, adaptive budgets) and the loss are exchanged after each step. A
 * method whose draws are made per row of the whole batch (docs/PARALLEL.md lists them) draws what
 * one process would; the others draw from a stream of their own per process. Without
 * synchronised batch norm each process normalises by its own rows' statistics and the running
 * statistics are rank 0's, sent to all after each step (as PyTorch's DDP does). Validation and
 * the other per-epoch work run on every process alike. A batch with fewer rows than processes is
 * passed over. */
int at_trainer_share(at_trainer *t, at_shard *shard, at_error *err);
/* Runs one epoch; fills stats. */
int at_trainer_run_epoch(at_trainer *t, const at_train_callbacks *cb, at_epoch_stats *stats,
                         at_error *err);

/* Clean accuracy and mean loss of a model over a data set, in eval BN mode. */
int at_evaluate_clean(at_model *model, const at_dataset *ds, int batch_size, long *correct,
                      double *mean_loss, at_error *err);
/* The same, also adding every output to `cal` (initialised by the caller, e.g. with
 * AT_CALIBRATION_DEFAULT_BINS; it may already hold other rows). */
int at_evaluate_clean_calibrated(at_model *model, const at_dataset *ds, int batch_size,
                                 long *correct, double *mean_loss, at_calibration *cal,
                                 at_error *err);

#ifdef __cplusplus
}
#endif
#endif /* ADVTRAIN_H */
