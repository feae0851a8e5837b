/* flow.h: the inside of a normalizing flow (flow.c): its steps, the tensors one call keeps for
 * the backward pass, and the operations each file implements (coupling.c, mixing.c, squeeze.c).
 * A step is an invertible 1x1 convolution (Kingma and Dhariwal, "Glow", NeurIPS 2018, sec. 3.2)
 * followed by an affine coupling layer (Dinh, Sohl-Dickstein and Bengio, "Density estimation
 * using Real NVP", ICLR 2017, eq. 6-7). */
#ifndef AT_FLOW_INTERNAL_H
#define AT_FLOW_INTERNAL_H

#include "advtrain.h"
#include "core/util.h"

enum { AT_FLOW_MAX_CHANNELS = 64, AT_FLOW_MAX_SCALES = 4, AT_FLOW_MAX_STEPS = 16 };

typedef struct at_flow_step {
    int c, h, w;               /* the tensor's shape at this step */
    at_model *mix;             /* holds "mix.weight" [c, c, 1, 1] (the 1x1 convolution W) */
    double winv[AT_FLOW_MAX_CHANNELS * AT_FLOW_MAX_CHANNELS]; /* W^-1, row-major */
    float winv_f[AT_FLOW_MAX_CHANNELS * AT_FLOW_MAX_CHANNELS];
    double logabsdet;          /* log |det W| */
    at_model *net;             /* the coupling network: c/2 channels in, 2 (c - c/2) out */
    at_pass *pass;
    float *net_in;             /* [max_batch, c/2, h, w]: the network's input */
    float *s;                  /* [max_batch, c - c/2, h, w]: the log-scales tanh(raw) */
    float *dnet;               /* [max_batch, 2 (c - c/2), h, w]: gradient of its output */
} at_flow_step;

/* Tensors of scale l: t[0] the squeezed input, t[2k+1] after step k's 1x1 convolution, t[2k+2]
 * after its coupling; each [max_batch, c, h, w] of that scale. */
typedef struct at_flow_scale {
    int c, h, w;               /* after the squeeze */
    size_t size;               /* c h w */
    float **t;                 /* 2 steps + 1 tensors */
    float *g[2];               /* gradients, one tensor being propagated and one spare */
    size_t z_offset;           /* where its factored-out half (or, last, all of it) sits in z */
    size_t z_size;
} at_flow_scale;

enum { AT_FLOW_LAST_NONE = 0, AT_FLOW_LAST_FORWARD, AT_FLOW_LAST_INVERSE };

struct at_flow {
    at_flow_options o;
    int max_batch, n;          /* n of the last call */
    int last;                  /* which direction the last call ran (for the backward passes) */
    size_t dim;
    at_flow_scale scales[AT_FLOW_MAX_SCALES];
    at_flow_step *steps;       /* scales x steps, scale-major */
    float *h0;                 /* [max_batch, dim]: the logit-space image */
    float *gh;                 /* [max_batch, dim]: a gradient at image resolution */
    double *logdet;            /* [max_batch] of the last forward */
};

/* squeeze.c: space-to-depth by 2 ([c, h, w] -> [4c, h/2, w/2]; out channel 4c' + 2dy + dx holds
 * in[c', 2i + dy, 2j + dx]) and its inverse, for n examples. Both are permutations, so the
 * gradient of one is the other applied to the gradient. */
void at_flow_squeeze(const float *in, float *out, int n, int c, int h, int w);
void at_flow_unsqueeze(const float *in, float *out, int n, int c, int h, int w);

/* mixing.c: y = W x at every pixel (forward), x = W^-1 y (inverse), and their backward passes.
 * at_flow_mix_prepare computes W^-1 and log|det W| (AT_ERR_NUMERIC when W is singular). */
int at_flow_mix_prepare(at_flow_step *s);
void at_flow_mix_forward(const at_flow_step *s, const float *x, float *y, int n, bool inverse);
/* dx = W^T dy (forward) or dy = W^-T dx (inverse): grad_in is the gradient of the call's output,
 * grad_out gets that of its input. With weights (forward only): dW += sum dy x^T, plus
 * h w sum_i dlogdet_i W^-T for the log-determinant h w log|det W| of example i. */
void at_flow_mix_backward(at_flow_step *s, const float *x, const float *grad_in, float *grad_out,
                          int n, bool inverse, const float *dlogdet, bool weights);
/* Random rotation (Glow's initialisation) or, with `reverse`, the channel reversal. */
void at_flow_mix_init(at_flow_step *s, at_rng *rng, bool reverse);

/* coupling.c: x = (x_a, x_b) by channels (the first c/2, the rest); (s, t) = NN(x_a) with
 * s = tanh(raw); y_a = x_a, y_b = x_b exp(s) + t; log-det sum(s). */
int at_flow_coupling_create(at_flow_step *s, int hidden, int max_batch, uint64_t seed,
                            at_error *err);
int at_flow_coupling_forward(at_flow_step *s, const float *x, float *y, int n, double *logdet);
int at_flow_coupling_inverse(at_flow_step *s, const float *y, float *x, int n);
/* After a forward (x its input): grad_in = dL/dy -> grad_out = dL/dx, weight gradients
 * accumulated when `weights`, dlogdet [n] the gradient of each example's log-det. */
int at_flow_coupling_backward(at_flow_step *s, const float *x, const float *grad_in,
                              float *grad_out, int n, const float *dlogdet, bool weights);
/* After an inverse (x its output): grad_in = dL/dx -> grad_out = dL/dy; no weight gradients. */
int at_flow_coupling_inverse_backward(at_flow_step *s, const float *x, const float *grad_in,
                                      float *grad_out, int n);

#endif
