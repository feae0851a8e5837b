/* refnet.c: the double-precision reference of each layer kind (see refnet.h). Written for
 * clarity, not speed: one loop nest per layer, straight from each layer's definition. */
#include "util/refnet.h"

#include "graph/graph.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int refnet_init(refnet *r, const at_model *m)
{
    memset(r, 0, sizeof *r);
    r->model = m;
    r->n_params = m->n_params;
    r->n_buffers = m->n_buffers;
    r->params = calloc(m->n_params + 1, sizeof(double));
    r->buffers = calloc(m->n_buffers + 1, sizeof(double));
    if (!r->params || !r->buffers)
        return -1;
    for (size_t i = 0; i < m->n_params; i++)
        r->params[i] = m->params[i];
    for (size_t i = 0; i < m->n_buffers; i++)
        r->buffers[i] = m->buffers[i];
    return 0;
}

void refnet_free(refnet *r)
{
    free(r->params);
    free(r->buffers);
}

static uint64_t mix(uint64_t h, uint64_t v) { return (h ^ v) * 0x100000001b3ull + 0x9e37; }

void refnet_forward(const refnet *r, const double *x, int n, at_bn_mode mode, double *logits,
                    uint64_t *pattern)
{
    const at_model *m = r->model;
    double **out = calloc((size_t)m->n_nodes, sizeof(double *));
    uint64_t hash = 1469598103934665603ull;
    for (int k = 0; k < m->n_nodes; k++)
        out[k] = calloc(at_shape_numel(m->nodes[k].out) * (size_t)n + 1, sizeof(double));
    memcpy(out[0], x, at_shape_numel(m->nodes[0].out) * (size_t)n * sizeof(double));

    for (int k = 1; k < m->n_nodes; k++) {
        const at_node *node = &m->nodes[k];
        const at_shape is = m->nodes[node->inputs[0]].out, os = node->out;
        const double *in = out[node->inputs[0]];
        double *y = out[k];
        /* a shared node (at_add_shared) reads its source's parameters: a finite difference of
         * one of them sees every use */
        const double *w = r->params + node->param_offset;
        const size_t in_size = at_shape_numel(is), out_size = at_shape_numel(os);
        switch (node->kind) {
        case AT_LAYER_input:
            break;
        case AT_LAYER_conv2d: {
            const int kk = node->p.conv.kernel, s = node->p.conv.stride, p = node->p.conv.padding;
            const double *bias = node->p.conv.bias ? w + (size_t)os.c * is.c * kk * kk : NULL;
            for (int i = 0; i < n; i++)
                for (int o = 0; o < os.c; o++)
                    for (int oy = 0; oy < os.h; oy++)
                        for (int ox = 0; ox < os.w; ox++) {
                            double sum = bias ? bias[o] : 0.0;
                            for (int c = 0; c < is.c; c++)
                                for (int ky = 0; ky < kk; ky++)
                                    for (int kx = 0; kx < kk; kx++) {
                                        int iy = oy * s - p + ky, ix = ox * s - p + kx;
                                        if (iy < 0 || iy >= is.h || ix < 0 || ix >= is.w)
                                            continue;
                                        sum += w[((size_t)(o * is.c + c) * kk + ky) * kk + kx] *
                                               in[i * in_size + ((size_t)c * is.h + iy) * is.w + ix];
                                    }
                            y[i * out_size + ((size_t)o * os.h + oy) * os.w + ox] = sum;
                        }
            break;
        }
        case AT_LAYER_batchnorm2d: {
            const size_t plane = (size_t)is.h * is.w;
            const bool affine = node->p.bn.affine; /* gamma = w, beta = w + is.c */
            const double *rmean = r->buffers + node->buffer_offset, *rvar = rmean + is.c;
            for (int c = 0; c < is.c; c++) {
                double mean, var;
                if (mode == AT_BN_EVAL) {
                    mean = rmean[c];
                    var = rvar[c];
                } else {
                    double sum = 0.0, sq = 0.0;
                    for (int i = 0; i < n; i++)
                        for (size_t j = 0; j < plane; j++)
                            sum += in[i * in_size + c * plane + j];
                    mean = sum / ((double)n * plane);
                    for (int i = 0; i < n; i++)
                        for (size_t j = 0; j < plane; j++) {
                            double d = in[i * in_size + c * plane + j] - mean;
                            sq += d * d;
                        }
                    var = sq / ((double)n * plane);
                }
                double rstd = 1.0 / sqrt(var + node->p.bn.eps);
                for (int i = 0; i < n; i++)
                    for (size_t j = 0; j < plane; j++)
                        y[i * out_size + c * plane + j] =
                            (affine ? w[c] : 1.0) * (in[i * in_size + c * plane + j] - mean) *
                                rstd + (affine ? w[is.c + c] : 0.0);
            }
            break;
        }
        case AT_LAYER_relu:
            for (size_t j = 0; j < in_size * n; j++) {
                y[j] = in[j] > 0 ? in[j] : 0.0;
                hash = mix(hash, in[j] > 0);
            }
            break;
        case AT_LAYER_maxpool2d:
        case AT_LAYER_avgpool2d: {
            const int kh = node->p.pool.kernel_h, kw = node->p.pool.kernel_w, s = node->p.pool.stride;
            for (int i = 0; i < n; i++)
                for (int c = 0; c < is.c; c++)
                    for (int oy = 0; oy < os.h; oy++)
                        for (int ox = 0; ox < os.w; ox++) {
                            const double *plane = in + i * in_size + (size_t)c * is.h * is.w;
                            double best = -INFINITY, sum = 0.0;
                            int best_at = 0;
                            for (int ky = 0; ky < kh; ky++)
                                for (int kx = 0; kx < kw; kx++) {
                                    double v = plane[(oy * s + ky) * is.w + ox * s + kx];
                                    sum += v;
                                    if (v > best) {
                                        best = v;
                                        best_at = ky * kw + kx;
                                    }
                                }
                            double *dst = &y[i * out_size + ((size_t)c * os.h + oy) * os.w + ox];
                            if (node->kind == AT_LAYER_maxpool2d) {
                                *dst = best;
                                hash = mix(hash, (uint64_t)best_at);
                            } else {
                                *dst = sum / (kh * kw);
                            }
                        }
            break;
        }
        case AT_LAYER_flatten:
            memcpy(y, in, in_size * n * sizeof(double));
            break;
        case AT_LAYER_linear: {
            const int nin = is.c, nout = os.c;
            const double *bias = node->p.linear.bias ? w + (size_t)nin * nout : NULL;
            for (int i = 0; i < n; i++)
                for (int o = 0; o < nout; o++) {
                    double sum = bias ? bias[o] : 0.0;
                    for (int j = 0; j < nin; j++)
                        sum += w[(size_t)o * nin + j] * in[(size_t)i * nin + j];
                    y[(size_t)i * nout + o] = sum;
                }
            break;
        }
        case AT_LAYER_add: {
            const double *b = out[node->inputs[1]];
            for (size_t j = 0; j < in_size * n; j++)
                y[j] = in[j] + b[j];
            break;
        }
        case AT_LAYER_normalize: {
            const size_t plane = (size_t)is.h * is.w;
            for (int i = 0; i < n; i++)
                for (int c = 0; c < is.c; c++)
                    for (size_t j = 0; j < plane; j++)
                        y[i * in_size + c * plane + j] =
                            (in[i * in_size + c * plane + j] - (double)node->p.norm.mean[c]) /
                            (double)node->p.norm.std[c];
            break;
        }
        case AT_LAYER_gaussian_noise:
            /* the reference has no noise stream: it is the noiseless model (sigma must be 0
             * for a comparison) */
            memcpy(y, in, in_size * n * sizeof(double));
            break;
        case AT_LAYER_quantize: {
            const double steps = node->p.quantize.levels - 1;
            for (size_t j = 0; j < in_size * n; j++)
                y[j] = nearbyint(in[j] * steps) / steps;
            break;
        }
        case AT_LAYER_slice: {
            const size_t offset = (size_t)node->p.slice.first * is.h * is.w;
            for (int i = 0; i < n; i++)
                for (size_t j = 0; j < out_size; j++)
                    y[i * out_size + j] = in[i * in_size + offset + j];
            break;
        }
        case AT_LAYER_scale:
            for (size_t j = 0; j < in_size * n; j++)
                y[j] = (double)node->p.scale.factor * in[j];
            break;
        case AT_LAYER_tanh:
            for (size_t j = 0; j < in_size * n; j++)
                y[j] = tanh(in[j]);
            break;
        case AT_LAYER_prelu: {
            const size_t plane = (size_t)is.h * is.w;
            for (int i = 0; i < n; i++)
                for (int c = 0; c < is.c; c++) {
                    const double a = w[node->p.prelu.slopes == 1 ? 0 : c];
                    for (size_t j = 0; j < plane; j++) {
                        const double v = in[i * in_size + c * plane + j];
                        y[i * in_size + c * plane + j] = v > 0 ? v : a * v;
                        hash = mix(hash, v > 0);
                    }
                }
            break;
        }
        case AT_LAYER_sigmoid:
            for (size_t j = 0; j < in_size * n; j++)
                y[j] = 1.0 / (1.0 + exp(-in[j]));
            break;
        case AT_LAYER_upsample2d: {
            const int s = node->p.upsample.factor;
            for (int i = 0; i < n; i++)
                for (int c = 0; c < is.c; c++)
                    for (int oy = 0; oy < os.h; oy++)
                        for (int ox = 0; ox < os.w; ox++)
                            y[i * out_size + ((size_t)c * os.h + oy) * os.w + ox] =
                                in[i * in_size + ((size_t)c * is.h + oy / s) * is.w + ox / s];
            break;
        }
        case AT_LAYER_leaky_relu:
            for (size_t j = 0; j < in_size * n; j++)
                y[j] = in[j] > 0 ? in[j] : (double)node->p.leaky.slope * in[j];
            break;
        case AT_LAYER_softplus:
            for (size_t j = 0; j < in_size * n; j++)
                y[j] = log1p(exp(in[j]));
            break;
        case AT_LAYER_mul: {
            const double *b = out[node->inputs[1]];
            for (size_t j = 0; j < in_size * n; j++)
                y[j] = in[j] * b[j];
            break;
        }
        case AT_LAYER_pad2d: {
            const int top = node->p.pad.top, left = node->p.pad.left;
            for (int i = 0; i < n; i++)
                for (int c = 0; c < is.c; c++)
                    for (int oy = 0; oy < os.h; oy++)
                        for (int ox = 0; ox < os.w; ox++) {
                            const int sy = oy - top, sx = ox - left;
                            y[i * out_size + ((size_t)c * os.h + oy) * os.w + ox] =
                                sy >= 0 && sy < is.h && sx >= 0 && sx < is.w
                                    ? in[i * in_size + ((size_t)c * is.h + sy) * is.w + sx]
                                    : (double)node->p.pad.value;
                        }
            break;
        }
        case AT_LAYER_COUNT:
            break;
        }
    }
    int last = m->n_nodes - 1;
    memcpy(logits, out[last], at_shape_numel(m->nodes[last].out) * (size_t)n * sizeof(double));
    if (pattern)
        *pattern = hash;
    for (int k = 0; k < m->n_nodes; k++)
        free(out[k]);
    free(out);
}
