/* conv2d.c: 2-d convolution (PyTorch nn.Conv2d without groups or dilation).
 *
 *   x [n, C, H, W], weight [OC, C, k, k], bias [OC] -> y [n, OC, OH, OW],
 *   OH = (H + 2p - k) / s + 1 (floor), likewise OW.
 *
 * Each image is one matrix product: y_i [OC, OH*OW] = W [OC, C*k*k] . col_i [C*k*k, OH*OW], where
 * col_i = im2col(x_i) (a 1x1 stride-1 convolution uses x_i itself). Backward:
 *   dcol_i = W^T . dy_i, then dx_i += col2im(dcol_i)           (per image, in parallel)
 *   dW += sum_i dy_i . col_i^T,  dbias += sum_i sum_pixels dy_i  (the batch is cut into the units
 *   of at_reduce_units, each unit's partial sum is computed by one thread, and the partial sums
 *   are added in unit order, so the result does not depend on the number of threads).
 * Where the processor and the shape allow it (kernels/conv_direct.c), no column matrix is made:
 * the forward convolves the padded input directly; the input gradient of a stride-1 convolution
 * is the convolution of the output gradient padded by k - 1 - p with the flipped,
 * channel-transposed weights; the weight gradient of a 3x3 convolution is summed pixel by pixel
 * from the input and the transposed output gradient (same units, same order of addition). A 3x3
 * stride-1 convolution with a multiple of 16 input channels and an even output size runs all
 * three through Winograd's minimal filtering instead (kernels/conv_winograd.c), 4 multiplications
 * per output where the direct kernel does 9. The paths round differently, so results are
 * reproducible for a given processor, whatever the thread count, but not between processors with
 * and without AVX-512.
 */
#include "graph/graph.h"
#include "kernels/kernels.h"

#include <math.h>
#include <string.h>

int at_add_conv2d(at_model *m, int input, const char *name, int out_channels, int kernel,
                  int stride, int padding, bool bias)
{
    at_node *node = at_graph_append(m, AT_LAYER_conv2d, &input, 1, name);
    if (!node)
        return m->build_status;
    at_shape in = at_graph_shape(m, input);
    if (out_channels < 1 || kernel < 1 || stride < 1 || padding < 0 || padding > 65536)
        return at_graph_error(m, AT_ERR_ARG);
    int oh = (in.h + 2 * padding - kernel) / stride + 1;
    int ow = (in.w + 2 * padding - kernel) / stride + 1;
    if (in.h + 2 * padding < kernel || in.w + 2 * padding < kernel || oh < 1 || ow < 1)
        return at_graph_error(m, AT_ERR_SHAPE);
    node->p.conv.out_channels = out_channels;
    node->p.conv.kernel = kernel;
    node->p.conv.stride = stride;
    node->p.conv.padding = padding;
    node->p.conv.bias = bias;
    node->out = (at_shape){out_channels, oh, ow};
    int64_t wshape[4] = {out_channels, in.c, kernel, kernel};
    int status = at_graph_declare(m, node, "weight", true, AT_F32, 4, wshape);
    if (status == AT_OK && bias) {
        int64_t bshape[1] = {out_channels};
        status = at_graph_declare(m, node, "bias", true, AT_F32, 1, bshape);
    }
    return status ? status : at_graph_index(m, node);
}

static at_conv_geom geometry(const at_node *node, at_shape in)
{
    at_conv_geom g = {in.c, in.h, in.w, node->p.conv.kernel, node->p.conv.stride,
                      node->p.conv.padding, node->out.h, node->out.w};
    return g;
}

static bool is_pointwise(const at_node *node)
{
    return node->p.conv.kernel == 1 && node->p.conv.stride == 1 && node->p.conv.padding == 0;
}

/* The forward as the direct kernel sees it: the padded input, no padding left to apply. */
static at_conv_geom padded_geometry(const at_node *node, at_shape in)
{
    const int p = node->p.conv.padding;
    at_conv_geom g = {in.c, in.h + 2 * p, in.w + 2 * p, node->p.conv.kernel, node->p.conv.stride,
                      0, node->out.h, node->out.w};
    return g;
}

/* The input gradient as a stride-1 convolution of the output gradient padded by k - 1 - p. */
static at_conv_geom transposed_geometry(const at_node *node, at_shape in)
{
    const int q = node->p.conv.kernel - 1 - node->p.conv.padding;
    at_conv_geom g = {node->p.conv.out_channels, node->out.h + 2 * q, node->out.w + 2 * q,
                      node->p.conv.kernel, 1, 0, in.h, in.w};
    return g;
}

static bool direct_forward(const at_node *node, at_shape in)
{
    at_conv_geom g = padded_geometry(node, in);
    return !is_pointwise(node) && at_conv_direct_supported(&g, node->p.conv.out_channels);
}

static bool winograd_forward(const at_node *node, at_shape in)
{
    at_conv_geom g = padded_geometry(node, in);
    return at_conv_winograd_supported(&g, node->p.conv.out_channels);
}

static bool direct_weight_grad(const at_node *node, at_shape in)
{
    return node->p.conv.kernel == 3 && direct_forward(node, in);
}

static bool direct_backward(const at_node *node, at_shape in)
{
    if (is_pointwise(node) || node->p.conv.stride != 1 || node->p.conv.padding >= node->p.conv.kernel)
        return false;
    at_conv_geom g = transposed_geometry(node, in);
    return at_conv_direct_supported(&g, in.c);
}

static bool winograd_backward(const at_node *node, at_shape in)
{
    if (node->p.conv.stride != 1 || node->p.conv.padding >= node->p.conv.kernel)
        return false;
    at_conv_geom g = transposed_geometry(node, in);
    return at_conv_winograd_supported(&g, in.c);
}

/* One unit's partial weight and bias gradient: per (output, input) channel pair the k*k taps,
 * or Winograd's 16 sums (turned into the 3x3 taps once the units are added up). */
static size_t gradient_floats(const at_node *node, at_shape in)
{
    const int taps = winograd_forward(node, in) ? 16 : node->p.conv.kernel * node->p.conv.kernel;
    return (size_t)node->p.conv.out_channels * in.c * taps;
}

static size_t partial_floats(const at_node *node, at_shape in)
{
    return at_round_floats(gradient_floats(node, in) + (size_t)node->p.conv.out_channels);
}

/* per worker: one image's columns, or its padded input or padded output gradient (followed by
 * the Winograd kernel's scratch when it runs) */
static size_t work_floats(const at_node *node, const at_shape *in)
{
    if (is_pointwise(node))
        return 0;
    size_t ckk = (size_t)in[0].c * node->p.conv.kernel * node->p.conv.kernel;
    size_t floats = ckk * node->out.h * node->out.w;
    at_conv_geom f = padded_geometry(node, in[0]);
    size_t padded_in = (size_t)f.channels * f.height * f.width;
    floats = padded_in > floats ? padded_in : floats;
    if (winograd_forward(node, in[0])) {
        size_t winograd = padded_in + at_conv_winograd_work_floats(&f);
        floats = winograd > floats ? winograd : floats;
    }
    size_t weight_path = (node->p.conv.padding ? padded_in : 0) +
                         (size_t)node->p.conv.out_channels * node->out.h * node->out.w;
    if (winograd_forward(node, in[0]))
        weight_path += at_conv_winograd_weight_grad_work_floats(&f, node->p.conv.out_channels);
    floats = weight_path > floats ? weight_path : floats;
    if (node->p.conv.padding < node->p.conv.kernel) {
        at_conv_geom b = transposed_geometry(node, in[0]);
        size_t padded_dy = (size_t)b.channels * b.height * b.width;
        floats = padded_dy > floats ? padded_dy : floats;
        if (winograd_backward(node, in[0])) {
            size_t winograd = padded_dy + at_conv_winograd_work_floats(&b);
            floats = winograd > floats ? winograd : floats;
        }
    }
    return floats;
}

/* per worker: the above, then one image's output gradient through a fused ReLU */
static size_t conv_scratch(const at_node *node, const at_shape *in, int max_batch)
{
    return at_round_floats(work_floats(node, in)) + at_shape_numel(node->out);
}

/* Image i's output gradient; through the fused ReLU's backward when there is one (the values
 * relu.c's backward writes into a zeroed gradient). */
static const float *image_dy(const at_layer_ctx *c, int i)
{
    const size_t count = at_shape_numel(c->node->out);
    const float *dyi = c->dy + (size_t)i * count;
    if (!c->relu_out)
        return dyi;
    float *masked = c->scratch + (size_t)at_thread_id() * c->scratch_floats +
                    at_round_floats(work_floats(c->node, c->in_shape));
    at_relu_grad_kernel(c->relu_out + (size_t)i * count, dyi, masked, count);
    return masked;
}

/* shared: the weights packed for the direct or Winograd kernel, or the partial weight gradients
 * of every unit of the batch (never needed at the same time) */
static size_t conv_shared(const at_node *node, const at_shape *in, int max_batch, bool weight_grads)
{
    const bool winograd = winograd_forward(node, in[0]) || winograd_backward(node, in[0]);
    size_t packed = (size_t)node->p.conv.out_channels * in[0].c *
                    (winograd ? 16 : node->p.conv.kernel * node->p.conv.kernel);
    size_t partial = partial_floats(node, in[0]);
    size_t partials = weight_grads ? (size_t)at_reduce_units(max_batch, partial) * partial : 0;
    return packed > partials ? packed : partials;
}

/* PyTorch's default: kaiming_uniform_(a=sqrt(5)) for the weight, i.e. U(-b, b) with
 * b = 1/sqrt(fan_in), and the bias from the same bound. */
static void conv_init(const at_node *node, const at_shape *in, float *w, float *buf, at_rng *rng)
{
    size_t fan_in = (size_t)in->c * node->p.conv.kernel * node->p.conv.kernel;
    size_t count = fan_in * node->p.conv.out_channels;
    double bound = 1.0 / sqrt((double)fan_in);
    for (size_t i = 0; i < count; i++)
        w[i] = (float)((2.0 * at_rng_uniform(rng) - 1.0) * bound);
    if (node->p.conv.bias)
        for (int o = 0; o < node->p.conv.out_channels; o++)
            w[count + o] = (float)((2.0 * at_rng_uniform(rng) - 1.0) * bound);
}

/* The weights in the direct or Winograd kernel's layout, into the shared workspace. */
static void pack_weights(const at_layer_ctx *c, bool transposed, bool winograd)
{
    const int oc = c->node->p.conv.out_channels, channels = c->in_shape[0].c;
    const int blocks = (transposed ? channels : oc) / 32;
#pragma omp parallel for schedule(static) num_threads(at_team(c->workers))
    for (int b = 0; b < blocks; b++) {
        if (winograd)
            at_conv_winograd_pack(c->w, oc, channels, transposed, b, c->shared);
        else
            at_conv_direct_pack(c->w, oc, channels, c->node->p.conv.kernel, transposed, b,
                                c->shared);
    }
}

static void conv_forward(const at_layer_ctx *c)
{
    const at_node *node = c->node;
    const at_conv_geom g = geometry(node, c->in_shape[0]);
    const int oc = node->p.conv.out_channels;
    const int ckk = g.channels * g.kernel * g.kernel;
    const int pixels = g.out_height * g.out_width;
    const size_t in_size = at_shape_numel(c->in_shape[0]), out_size = at_shape_numel(node->out);
    const float *bias = node->p.conv.bias ? c->w + (size_t)oc * ckk : NULL;
    const bool pointwise = is_pointwise(node);
    if (direct_forward(node, c->in_shape[0])) {
        const at_conv_geom pg = padded_geometry(node, c->in_shape[0]);
        const int pad = g.padding;
        const bool winograd = winograd_forward(node, c->in_shape[0]);
        const size_t padded_floats = (size_t)pg.channels * pg.height * pg.width;
        const at_conv_output output = c->relu_out ? AT_CONV_SET_RELU : AT_CONV_SET;
        pack_weights(c, false, winograd);
#pragma omp parallel for schedule(static) num_threads(at_team(c->workers))
        for (int i = 0; i < c->n; i++) {
            float *scratch = c->scratch + (size_t)at_thread_id() * c->scratch_floats;
            const float *xi = c->x[0] + (size_t)i * in_size;
            float *yi = c->y + (size_t)i * out_size;
            if (pad) {
                at_pad_planes(g.channels, g.height, g.width, pad, xi, scratch);
                xi = scratch;
            }
            if (winograd)
                at_conv_winograd(&pg, oc, xi, c->shared, bias, output, yi, scratch + padded_floats);
            else
                at_conv_direct(&pg, oc, xi, c->shared, bias, output, yi);
        }
        return;
    }
#pragma omp parallel for schedule(static) num_threads(at_team(c->workers))
    for (int i = 0; i < c->n; i++) {
        float *col = c->scratch + (size_t)at_thread_id() * c->scratch_floats;
        const float *xi = c->x[0] + (size_t)i * in_size;
        float *yi = c->y + (size_t)i * out_size;
        if (!pointwise) {
            at_im2col(&g, xi, col);
            xi = col;
        }
        at_gemm(false, false, oc, pixels, ckk, 1.0f, c->w, ckk, xi, pixels, 0.0f, yi, pixels);
        if (bias)
            for (int o = 0; o < oc; o++)
                for (int j = 0; j < pixels; j++)
                    yi[(size_t)o * pixels + j] += bias[o];
        if (c->relu_out) /* ReLU's rule: a NaN passes through */
            for (size_t j = 0; j < out_size; j++)
                yi[j] = yi[j] < 0.0f ? 0.0f : yi[j];
    }
}

static void conv_backward_input(const at_layer_ctx *c)
{
    const at_node *node = c->node;
    const at_conv_geom g = geometry(node, c->in_shape[0]);
    const int oc = node->p.conv.out_channels;
    const int ckk = g.channels * g.kernel * g.kernel;
    const int pixels = g.out_height * g.out_width;
    const size_t in_size = at_shape_numel(c->in_shape[0]);
    const bool pointwise = is_pointwise(node);
    if (direct_backward(node, c->in_shape[0])) {
        const at_conv_geom tg = transposed_geometry(node, c->in_shape[0]);
        const int q = g.kernel - 1 - g.padding;
        const bool winograd = winograd_backward(node, c->in_shape[0]);
        const size_t padded_floats = (size_t)tg.channels * tg.height * tg.width;
        pack_weights(c, true, winograd);
#pragma omp parallel for schedule(static) num_threads(at_team(c->workers))
        for (int i = 0; i < c->n; i++) {
            float *scratch = c->scratch + (size_t)at_thread_id() * c->scratch_floats;
            const float *dyi = image_dy(c, i);
            float *dxi = c->dx[0] + (size_t)i * in_size;
            if (q) {
                at_pad_planes(oc, g.out_height, g.out_width, q, dyi, scratch);
                dyi = scratch;
            }
            if (winograd)
                at_conv_winograd(&tg, g.channels, dyi, c->shared, NULL, AT_CONV_ADD, dxi,
                                 scratch + padded_floats);
            else
                at_conv_direct(&tg, g.channels, dyi, c->shared, NULL, AT_CONV_ADD, dxi);
        }
        return;
    }
#pragma omp parallel for schedule(static) num_threads(at_team(c->workers))
    for (int i = 0; i < c->n; i++) {
        float *dcol = c->scratch + (size_t)at_thread_id() * c->scratch_floats;
        const float *dyi = image_dy(c, i);
        float *dxi = c->dx[0] + (size_t)i * in_size;
        if (pointwise) {
            at_gemm(true, false, ckk, pixels, oc, 1.0f, c->w, ckk, dyi, pixels, 1.0f, dxi, pixels);
        } else {
            at_gemm(true, false, ckk, pixels, oc, 1.0f, c->w, ckk, dyi, pixels, 0.0f, dcol, pixels);
            at_col2im(&g, dcol, dxi);
        }
    }
}

/* The weight gradient through the direct or Winograd kernel: each unit's partial sum is kept in
 * the packed layout (vector stores), and unpacked while the units are added up. */
static void conv_backward_weights_direct(const at_layer_ctx *c)
{
    const at_node *node = c->node;
    const at_conv_geom g = geometry(node, c->in_shape[0]), pg = padded_geometry(node, c->in_shape[0]);
    const int oc = node->p.conv.out_channels, pad = g.padding;
    const int ckk = g.channels * g.kernel * g.kernel;
    const int pixels = g.out_height * g.out_width;
    const size_t in_size = at_shape_numel(c->in_shape[0]);
    const bool bias = node->p.conv.bias;
    const size_t wcount = (size_t)oc * ckk, count = wcount + (bias ? (size_t)oc : 0);
    const bool winograd = winograd_forward(node, c->in_shape[0]);
    const size_t grad_count = gradient_floats(node, c->in_shape[0]); /* the bias follows */
    const size_t stride = partial_floats(node, c->in_shape[0]);
    const size_t padded_floats = pad ? (size_t)pg.channels * pg.height * pg.width : 0;
    const at_units split = at_layer_units(c, stride);
    const int per_unit = split.per_unit;
#pragma omp parallel for schedule(static) num_threads(at_team(c->workers))
    for (int u = 0; u < split.count; u++) {
        float *padded = c->scratch + (size_t)at_thread_id() * c->scratch_floats;
        float *dyt = padded + padded_floats, *work = dyt + (size_t)oc * pixels;
        float *partial = c->shared + (size_t)u * stride;
        float *bias_partial = bias ? partial + grad_count : NULL;
        int first = u * per_unit, last = first + per_unit < c->n ? first + per_unit : c->n;
        memset(partial, 0, (grad_count + (bias ? (size_t)oc : 0)) * sizeof(float));
        for (int i = first; i < last; i++) {
            const float *xi = c->x[0] + (size_t)i * in_size;
            if (pad) {
                at_pad_planes(g.channels, g.height, g.width, pad, xi, padded);
                xi = padded;
            }
            at_transpose(oc, pixels, image_dy(c, i), dyt);
            if (winograd)
                at_conv_winograd_weight_grad(&pg, oc, xi, dyt, partial, bias_partial, work);
            else
                at_conv_direct_weight_grad(&pg, oc, xi, dyt, partial, bias_partial);
        }
    }
    /* every unit is done: the units of the whole batch (other processes' too), in order */
    int units;
    const float *parts = at_layer_gather(c, c->shared, split, stride * sizeof(float), false, &units);
    if (!parts)
        return;
#pragma omp parallel num_threads(at_team(c->workers))
    {
        if (winograd) {
            /* the units' sums added into the first unit's, then channel pair (o, c): its 16
             * sums at [xi][o / 32][c][o % 32] (at_conv_winograd_pack) turned into 3x3 taps */
#pragma omp for schedule(static)
            for (size_t j = 0; j < grad_count; j++) {
                float s = parts[j];
                for (int u = 1; u < units; u++)
                    s += parts[(size_t)u * stride + j];
                c->shared[j] = s;
            }
            const size_t xi_stride = (size_t)oc * g.channels;
#pragma omp for schedule(static)
            for (size_t pair = 0; pair < (size_t)oc * g.channels; pair++) {
                const size_t o = pair / g.channels, ch = pair % g.channels;
                const size_t at = ((o / 32) * g.channels + ch) * 32 + o % 32;
                float sums[16], taps[9];
                for (int xi = 0; xi < 16; xi++)
                    sums[xi] = c->shared[xi * xi_stride + at];
                at_conv_winograd_weight_from_grad(sums, taps);
                for (int t = 0; t < 9; t++)
                    c->dw[pair * 9 + t] += taps[t];
            }
        }
#pragma omp for schedule(static)
        for (size_t j = winograd ? wcount : 0; j < count; j++) {
            /* weight j = (o, c, ky, kx) sits at [o / 32][c, ky, kx][o % 32] (at_conv_direct_pack);
             * the bias after all weights */
            size_t o = j / ckk;
            size_t packed = j < wcount ? ((o / 32) * ckk + j % ckk) * 32 + o % 32 : grad_count + (j - wcount);
            float s = c->dw[j];
            for (int u = 0; u < units; u++)
                s += parts[(size_t)u * stride + packed];
            c->dw[j] = s;
        }
    }
}

static void conv_backward_weights(const at_layer_ctx *c)
{
    const at_node *node = c->node;
    const at_conv_geom g = geometry(node, c->in_shape[0]);
    const int oc = node->p.conv.out_channels;
    const int ckk = g.channels * g.kernel * g.kernel;
    const int pixels = g.out_height * g.out_width;
    const size_t in_size = at_shape_numel(c->in_shape[0]);
    const bool pointwise = is_pointwise(node), bias = node->p.conv.bias;
    const size_t wcount = (size_t)oc * ckk, count = wcount + (bias ? (size_t)oc : 0);
    const size_t stride = partial_floats(node, c->in_shape[0]);
    const at_units split = at_layer_units(c, stride);
    const int per_unit = split.per_unit;
#pragma omp parallel for schedule(static) num_threads(at_team(c->workers))
    for (int u = 0; u < split.count; u++) {
        float *col = c->scratch + (size_t)at_thread_id() * c->scratch_floats;
        float *partial = c->shared + (size_t)u * stride;
        int first = u * per_unit, last = first + per_unit < c->n ? first + per_unit : c->n;
        if (first >= last)
            memset(partial, 0, count * sizeof(float));
        for (int i = first; i < last; i++) {
            const float *xi = c->x[0] + (size_t)i * in_size;
            const float *dyi = image_dy(c, i);
            if (!pointwise) {
                at_im2col(&g, xi, col);
                xi = col;
            }
            at_gemm(false, true, oc, ckk, pixels, 1.0f, dyi, pixels, xi, pixels,
                    i == first ? 0.0f : 1.0f, partial, ckk);
            if (bias)
                for (int o = 0; o < oc; o++) {
                    float s = 0.0f;
                    for (int j = 0; j < pixels; j++)
                        s += dyi[(size_t)o * pixels + j];
                    partial[wcount + o] = (i == first ? 0.0f : partial[wcount + o]) + s;
                }
        }
    }
    /* every unit is done: sum the units of the whole batch (other processes' too) in order */
    at_layer_add_units(c, split, stride, count);
}

static void conv_backward(const at_layer_ctx *c)
{
    if (c->dx[0])
        conv_backward_input(c);
    if (c->weight_grads && direct_weight_grad(c->node, c->in_shape[0]))
        conv_backward_weights_direct(c);
    else if (c->weight_grads)
        conv_backward_weights(c);
}

const at_layer_ops at_layer_conv2d = {
    .name = "conv2d",
    .backward_reads = AT_READS_INPUT_FOR_WEIGHTS,
    .fuses_relu = true,
    .scratch_floats = conv_scratch,
    .shared_floats = conv_shared,
    .forward = conv_forward,
    .backward = conv_backward,
    .init = conv_init,
};
