/* coupling.c: the affine coupling layer of RealNVP (Dinh, Sohl-Dickstein and Bengio, "Density
 * estimation using Real NVP", ICLR 2017, eq. 6-8) with a channel-wise mask: x = (x_a, x_b), the
 * first c/2 channels and the rest; (raw, t) = NN(x_a); s = tanh(raw) (the bounded log-scale, a
 * reconstruction detail: RealNVP scales a tanh, Glow uses sigmoid(raw + 2));
 *   y_a = x_a,  y_b = x_b exp(s) + t,  log|det dy/dx| = sum s;
 *   inverse: x_a = y_a,  x_b = (y_b - t) exp(-s).
 * NN is Glow's coupling network (Kingma and Dhariwal, NeurIPS 2018, sec. 3.3): conv3x3 c/2 -> F,
 * ReLU, conv1x1 F -> F, ReLU, conv3x3 F -> 2 (c - c/2), the last initialised to zero so that each
 * coupling starts as the identity. It is an engine model with its own pass. */
#include "flow/flow.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

int at_flow_coupling_create(at_flow_step *s, int hidden, int max_batch, uint64_t seed,
                            at_error *err)
{
    const int ca = s->c / 2, cb = s->c - ca;
    at_model *m;
    int status = at_model_begin(&m, ca, s->h, s->w, err);
    if (status)
        return status;
    int x = at_add_relu(m, at_add_conv2d(m, 0, "conv1", hidden, 3, 1, 1, true));
    x = at_add_relu(m, at_add_conv2d(m, x, "conv2", hidden, 1, 1, 0, true));
    x = at_add_conv2d(m, x, "out", 2 * cb, 3, 1, 1, true);
    at_add_flatten(m, x);
    if ((status = at_model_finish(m, seed, err))) {
        at_model_free(m);
        return status;
    }
    for (int i = 0; i < at_model_tensor_count(m); i++) {
        at_tensor_info t = at_model_tensor(m, i);
        if (!strncmp(t.name, "out.", 4))
            memset(t.data, 0, t.numel * sizeof(float));
    }
    s->net = m;
    const size_t pixels = (size_t)s->h * s->w;
    s->net_in = at_alloc((size_t)max_batch * ca * pixels * sizeof(float));
    s->s = at_alloc((size_t)max_batch * cb * pixels * sizeof(float));
    s->dnet = at_alloc((size_t)max_batch * 2 * cb * pixels * sizeof(float));
    if (!s->net_in || !s->s || !s->dnet)
        return at_fail(err, AT_ERR_NOMEM, "out of memory for a coupling layer");
    return at_pass_create(&s->pass, m, max_batch, 0, err);
}

/* Runs the network on the first half of `in` (x_a = y_a) and fills s; t is the output's second
 * half (returned). */
static int run_net(at_flow_step *s, const float *in, int n, const float **t)
{
    const int ca = s->c / 2, cb = s->c - ca;
    const size_t pixels = (size_t)s->h * s->w, image = (size_t)s->c * pixels;
    for (int i = 0; i < n; i++)
        memcpy(s->net_in + (size_t)i * ca * pixels, in + (size_t)i * image,
               (size_t)ca * pixels * sizeof(float));
    int status = at_forward(s->pass, s->net_in, n, AT_BN_EVAL);
    if (status)
        return status;
    const float *out = at_pass_logits(s->pass);
    const size_t half = (size_t)cb * pixels;
    for (int i = 0; i < n; i++)
        for (size_t j = 0; j < half; j++)
            s->s[(size_t)i * half + j] = tanhf(out[(size_t)i * 2 * half + j]);
    *t = out;
    return AT_OK;
}

int at_flow_coupling_forward(at_flow_step *s, const float *x, float *y, int n, double *logdet)
{
    const int ca = s->c / 2, cb = s->c - ca;
    const size_t pixels = (size_t)s->h * s->w, image = (size_t)s->c * pixels;
    const size_t a = (size_t)ca * pixels, half = (size_t)cb * pixels;
    const float *out;
    int status = run_net(s, x, n, &out);
    if (status)
        return status;
    for (int i = 0; i < n; i++) {
        const float *xi = x + (size_t)i * image, *si = s->s + (size_t)i * half;
        const float *ti = out + (size_t)i * 2 * half + half;
        float *yi = y + (size_t)i * image;
        memcpy(yi, xi, a * sizeof(float));
        double sum = 0.0;
        for (size_t j = 0; j < half; j++) {
            yi[a + j] = xi[a + j] * expf(si[j]) + ti[j];
            sum += si[j];
        }
        if (logdet)
            logdet[i] += sum;
    }
    return AT_OK;
}

int at_flow_coupling_inverse(at_flow_step *s, const float *y, float *x, int n)
{
    const int ca = s->c / 2, cb = s->c - ca;
    const size_t pixels = (size_t)s->h * s->w, image = (size_t)s->c * pixels;
    const size_t a = (size_t)ca * pixels, half = (size_t)cb * pixels;
    const float *out;
    int status = run_net(s, y, n, &out);
    if (status)
        return status;
    for (int i = 0; i < n; i++) {
        const float *yi = y + (size_t)i * image, *si = s->s + (size_t)i * half;
        const float *ti = out + (size_t)i * 2 * half + half;
        float *xi = x + (size_t)i * image;
        memcpy(xi, yi, a * sizeof(float));
        for (size_t j = 0; j < half; j++)
            xi[a + j] = (yi[a + j] - ti[j]) * expf(-si[j]);
    }
    return AT_OK;
}

/* Back through the network: dnet holds d/d(raw, t); adds d/dx_a to grad_out's first half. */
static int net_backward(at_flow_step *s, float *grad_out, int n, bool weights)
{
    const int ca = s->c / 2;
    const size_t pixels = (size_t)s->h * s->w, image = (size_t)s->c * pixels;
    const size_t a = (size_t)ca * pixels;
    int status = at_backward(s->pass, s->dnet, AT_GRAD_INPUT | (weights ? AT_GRAD_WEIGHTS : 0u));
    if (status)
        return status;
    const float *gin = at_pass_input_grad(s->pass);
    for (int i = 0; i < n; i++)
        for (size_t j = 0; j < a; j++)
            grad_out[(size_t)i * image + j] += gin[(size_t)i * a + j];
    return AT_OK;
}

int at_flow_coupling_backward(at_flow_step *s, const float *x, const float *grad_in,
                              float *grad_out, int n, const float *dlogdet, bool weights)
{
    const int ca = s->c / 2, cb = s->c - ca;
    const size_t pixels = (size_t)s->h * s->w, image = (size_t)s->c * pixels;
    const size_t a = (size_t)ca * pixels, half = (size_t)cb * pixels;
    for (int i = 0; i < n; i++) {
        const float *xi = x + (size_t)i * image, *gi = grad_in + (size_t)i * image;
        const float *si = s->s + (size_t)i * half;
        float *go = grad_out + (size_t)i * image, *dn = s->dnet + (size_t)i * 2 * half;
        const float dld = dlogdet ? dlogdet[i] : 0.0f;
        memcpy(go, gi, a * sizeof(float));
        for (size_t j = 0; j < half; j++) {
            const float e = expf(si[j]), g = gi[a + j];
            go[a + j] = g * e;
            dn[j] = (g * xi[a + j] * e + dld) * (1.0f - si[j] * si[j]);
            dn[half + j] = g;
        }
    }
    return net_backward(s, grad_out, n, weights);
}

int at_flow_coupling_inverse_backward(at_flow_step *s, const float *x, const float *grad_in,
                                      float *grad_out, int n)
{
    const int ca = s->c / 2, cb = s->c - ca;
    const size_t pixels = (size_t)s->h * s->w, image = (size_t)s->c * pixels;
    const size_t a = (size_t)ca * pixels, half = (size_t)cb * pixels;
    for (int i = 0; i < n; i++) {
        const float *xi = x + (size_t)i * image, *gi = grad_in + (size_t)i * image;
        const float *si = s->s + (size_t)i * half;
        float *go = grad_out + (size_t)i * image, *dn = s->dnet + (size_t)i * 2 * half;
        memcpy(go, gi, a * sizeof(float));
        for (size_t j = 0; j < half; j++) {
            const float e = expf(-si[j]), g = gi[a + j];
            go[a + j] = g * e;
            dn[j] = -g * xi[a + j] * (1.0f - si[j] * si[j]);
            dn[half + j] = -g * e;
        }
    }
    return net_backward(s, grad_out, n, false);
}
