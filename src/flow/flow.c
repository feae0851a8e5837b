/* flow.c: a multi-scale normalizing flow (Dinh, Sohl-Dickstein and Bengio, "Density estimation
 * using Real NVP", ICLR 2017, sec. 3.5-3.6; with the steps of Kingma and Dhariwal, "Glow",
 * NeurIPS 2018, sec. 3): x in [0,1] -> y = logit(alpha + (1 - 2 alpha) x) (RealNVP sec. 4.1), then
 * at each scale a squeeze and `steps` steps (an invertible 1x1 convolution and an affine
 * coupling), and between scales half the channels factored out into z (eq. 13-15). The prior is a
 * standard normal on all of z, so log p(x) = sum_d log N(z_d; 0, 1) + log|det dz/dx|.
 *
 * Forward and inverse keep every intermediate tensor, so the backward pass of the last call runs
 * without recomputation: after a forward, the weight gradients of a loss on (z, log-det) (maximum
 * likelihood); after an inverse, the gradient w.r.t. z of a loss on the image (the joint-space
 * attack), through the inverse's own operations, with no weight gradients. */
#include "flow/flow.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void scale_free(at_flow_scale *sc, int steps)
{
    if (sc->t)
        for (int i = 0; i < 2 * steps + 1; i++)
            at_free(sc->t[i]);
    free(sc->t);
    at_free(sc->g[0]);
    at_free(sc->g[1]);
}

void at_flow_free(at_flow *f)
{
    if (!f)
        return;
    const int total = f->o.scales * f->o.steps;
    for (int i = 0; f->steps && i < total; i++) {
        at_flow_step *s = &f->steps[i];
        at_pass_free(s->pass);
        at_model_free(s->net);
        at_model_free(s->mix);
        at_free(s->net_in);
        at_free(s->s);
        at_free(s->dnet);
    }
    free(f->steps);
    for (int l = 0; l < f->o.scales; l++)
        scale_free(&f->scales[l], f->o.steps);
    at_free(f->h0);
    at_free(f->gh);
    at_free(f->logdet);
    at_free(f);
}

static int make_mix(at_flow_step *s, at_error *err)
{
    int status = at_model_begin(&s->mix, s->c, s->h, s->w, err);
    if (status)
        return status;
    at_add_flatten(s->mix, at_add_conv2d(s->mix, 0, "mix", s->c, 1, 1, 0, false));
    return at_model_finish(s->mix, 0, err);
}

int at_flow_create(at_flow **out, const at_flow_options *options, int max_batch, at_error *err)
{
    *out = NULL;
    at_flow_options o = options ? *options : (at_flow_options){0};
    if (!o.scales)
        o.scales = 2;
    if (!o.steps)
        o.steps = 4;
    if (!o.hidden)
        o.hidden = 64;
    if (o.alpha == 0.0f)
        o.alpha = 0.05f;
    if (o.scales < 1 || o.scales > AT_FLOW_MAX_SCALES || o.steps < 1 || o.steps > AT_FLOW_MAX_STEPS)
        return at_fail(err, AT_ERR_ARG, "flow: %d scales of %d steps, want 1..%d scales and 1..%d "
                       "steps", o.scales, o.steps, AT_FLOW_MAX_SCALES, AT_FLOW_MAX_STEPS);
    if (o.hidden < 1 || o.hidden > 1024)
        return at_fail(err, AT_ERR_ARG, "flow: %d hidden feature maps, want 1..1024", o.hidden);
    if (!(o.alpha > 0.0f && o.alpha < 0.5f))
        return at_fail(err, AT_ERR_ARG, "flow: alpha %g, want 0 < alpha < 0.5", o.alpha);
    if (max_batch < 1)
        return at_fail(err, AT_ERR_ARG, "flow: max_batch %d, want >= 1", max_batch);
    const int div = 1 << o.scales;
    if (o.channels < 1 || o.height < div || o.width < div || o.height % div || o.width % div)
        return at_fail(err, AT_ERR_SHAPE, "flow: images of %dx%dx%d; height and width must be "
                       "multiples of 2^scales = %d", o.channels, o.height, o.width, div);
    /* scale l has 4 c 2^l channels (each squeezes 4x and keeps half for the next) */
    if (o.channels * (2 << o.scales) > AT_FLOW_MAX_CHANNELS)
        return at_fail(err, AT_ERR_ARG, "flow: too many channels for %d scales", o.scales);
    at_flow *f = at_alloc(sizeof *f);
    if (!f)
        return at_fail(err, AT_ERR_NOMEM, "out of memory");
    f->o = o;
    f->max_batch = max_batch;
    f->dim = (size_t)o.channels * o.height * o.width;
    f->steps = calloc((size_t)o.scales * o.steps, sizeof *f->steps);
    f->h0 = at_alloc((size_t)max_batch * f->dim * sizeof(float));
    f->gh = at_alloc((size_t)max_batch * f->dim * sizeof(float));
    f->logdet = at_alloc((size_t)max_batch * sizeof(double));
    int status = f->steps && f->h0 && f->gh && f->logdet ? AT_OK
                 : at_fail(err, AT_ERR_NOMEM, "out of memory for a flow");
    at_rng rng;
    at_rng_stream(&rng, o.seed, 0, 0x666c6f77ull /* "flow" */);
    int c = o.channels, h = o.height, w = o.width;
    size_t z_offset = 0;
    for (int l = 0; !status && l < o.scales; l++) {
        at_flow_scale *sc = &f->scales[l];
        c *= 4, h /= 2, w /= 2;
        sc->c = c, sc->h = h, sc->w = w;
        sc->size = (size_t)c * h * w;
        sc->z_offset = z_offset;
        sc->z_size = l == o.scales - 1 ? sc->size : sc->size / 2;
        z_offset += sc->z_size;
        sc->t = calloc(2 * (size_t)o.steps + 1, sizeof *sc->t);
        if (!sc->t) {
            status = at_fail(err, AT_ERR_NOMEM, "out of memory for a flow");
            break;
        }
        for (int i = 0; i < 2 * o.steps + 1 && !status; i++)
            if (!(sc->t[i] = at_alloc((size_t)max_batch * sc->size * sizeof(float))))
                status = at_fail(err, AT_ERR_NOMEM, "out of memory for a flow");
        for (int i = 0; i < 2 && !status; i++)
            if (!(sc->g[i] = at_alloc((size_t)max_batch * sc->size * sizeof(float))))
                status = at_fail(err, AT_ERR_NOMEM, "out of memory for a flow");
        for (int k = 0; k < o.steps && !status; k++) {
            at_flow_step *s = &f->steps[l * o.steps + k];
            s->c = c, s->h = h, s->w = w;
            status = make_mix(s, err);
            if (!status) {
                at_flow_mix_init(s, &rng, o.reverse);
                status = at_flow_coupling_create(s, o.hidden, max_batch, at_rng_next(&rng), err);
            }
            if (!status && at_flow_mix_prepare(s))
                status = at_fail(err, AT_ERR_NUMERIC, "flow: a singular 1x1 convolution");
        }
        if (l < o.scales - 1)
            c /= 2; /* the other half goes on */
    }
    if (status) {
        at_flow_free(f);
        return status;
    }
    *out = f;
    return AT_OK;
}

const at_flow_options *at_flow_get_options(const at_flow *f) { return &f->o; }
size_t at_flow_dim(const at_flow *f) { return f->dim; }
int at_flow_max_batch(const at_flow *f) { return f->max_batch; }

int at_flow_model_count(const at_flow *f)
{
    return f->o.scales * f->o.steps * (f->o.reverse ? 1 : 2);
}

at_model *at_flow_model(at_flow *f, int index)
{
    const int total = f->o.scales * f->o.steps;
    if (index < 0 || index >= at_flow_model_count(f))
        return NULL;
    return index < total ? f->steps[index].net : f->steps[index - total].mix;
}

void at_flow_zero_grad(at_flow *f)
{
    for (int i = 0; i < at_flow_model_count(f); i++)
        at_model_zero_grad(at_flow_model(f, i));
}

double at_flow_bits_per_dim(double log_px, size_t dim)
{
    return -log_px / ((double)dim * log(2.0)) + 8.0;
}

/* Copies the rows of [n, a] and [n, b] into [n, a + b] (split = false) or back (true). */
static void concat(float *joined, float *first, float *second, int n, size_t a, size_t b,
                   bool split)
{
    for (int i = 0; i < n; i++) {
        float *row = joined + (size_t)i * (a + b);
        if (split) {
            if (first)
                memcpy(first + (size_t)i * a, row, a * sizeof(float));
            memcpy(second + (size_t)i * b, row + a, b * sizeof(float));
        } else {
            memcpy(row, first + (size_t)i * a, a * sizeof(float));
            memcpy(row + a, second + (size_t)i * b, b * sizeof(float));
        }
    }
}

/* Copies example rows of a scale's [n, size] into z's [n, dim] at offset (to_z) or back. */
static void z_copy(const at_flow *f, const at_flow_scale *sc, float *t, float *z, int n, bool to_z)
{
    for (int i = 0; i < n; i++) {
        float *zi = z + (size_t)i * f->dim + sc->z_offset, *ti = t + (size_t)i * sc->size;
        if (to_z)
            memcpy(zi, ti, sc->z_size * sizeof(float));
        else
            memcpy(ti, zi, sc->z_size * sizeof(float));
    }
}

static int prepare(at_flow *f)
{
    for (int i = 0; i < f->o.scales * f->o.steps; i++)
        if (at_flow_mix_prepare(&f->steps[i]))
            return AT_ERR_NUMERIC;
    return AT_OK;
}

int at_flow_forward(at_flow *f, const float *x, int n, float *z, double *logdet)
{
    if (n < 1 || n > f->max_batch || !x || !z)
        return AT_ERR_ARG;
    int status = prepare(f);
    if (status)
        return status;
    f->last = AT_FLOW_LAST_NONE;
    f->n = n;
    const double a = f->o.alpha, span = 1.0 - 2.0 * a;
    for (int i = 0; i < n; i++) {
        double sum = 0.0;
        for (size_t j = 0; j < f->dim; j++) {
            const double p = a + span * x[(size_t)i * f->dim + j];
            f->h0[(size_t)i * f->dim + j] = (float)(log(p) - log1p(-p));
            sum += log(span) - log(p) - log1p(-p);
        }
        f->logdet[i] = sum;
    }
    const float *h = f->h0;
    for (int l = 0; l < f->o.scales; l++) {
        at_flow_scale *sc = &f->scales[l];
        at_flow_squeeze(h, sc->t[0], n, sc->c / 4, sc->h * 2, sc->w * 2);
        for (int k = 0; k < f->o.steps; k++) {
            at_flow_step *s = &f->steps[l * f->o.steps + k];
            at_flow_mix_forward(s, sc->t[2 * k], sc->t[2 * k + 1], n, false);
            const double mixdet = (double)s->h * s->w * s->logabsdet;
            for (int i = 0; i < n; i++)
                f->logdet[i] += mixdet;
            if ((status = at_flow_coupling_forward(s, sc->t[2 * k + 1], sc->t[2 * k + 2], n,
                                                   f->logdet)))
                return status;
        }
        float *top = sc->t[2 * f->o.steps];
        z_copy(f, sc, top, z, n, true);
        if (l < f->o.scales - 1) {
            /* the kept half becomes the next scale's input, in the spare gradient buffer */
            concat(top, NULL, sc->g[0], n, sc->z_size, sc->size - sc->z_size, true);
            h = sc->g[0];
        }
    }
    if (logdet)
        memcpy(logdet, f->logdet, (size_t)n * sizeof(double));
    f->last = AT_FLOW_LAST_FORWARD;
    return AT_OK;
}

int at_flow_inverse(at_flow *f, const float *z, int n, float *x)
{
    if (n < 1 || n > f->max_batch || !x || !z)
        return AT_ERR_ARG;
    int status = prepare(f);
    if (status)
        return status;
    f->last = AT_FLOW_LAST_NONE;
    f->n = n;
    const float *next = NULL; /* the image of the scale above, unsqueezed */
    for (int l = f->o.scales - 1; l >= 0; l--) {
        at_flow_scale *sc = &f->scales[l];
        float *top = sc->t[2 * f->o.steps];
        if (l == f->o.scales - 1) {
            z_copy(f, sc, top, (float *)z, n, false);
        } else {
            /* (factored-out half from z, the scale above's result) */
            for (int i = 0; i < n; i++) {
                float *row = top + (size_t)i * sc->size;
                memcpy(row, z + (size_t)i * f->dim + sc->z_offset, sc->z_size * sizeof(float));
                memcpy(row + sc->z_size, next + (size_t)i * (sc->size - sc->z_size),
                       (sc->size - sc->z_size) * sizeof(float));
            }
        }
        for (int k = f->o.steps - 1; k >= 0; k--) {
            at_flow_step *s = &f->steps[l * f->o.steps + k];
            if ((status = at_flow_coupling_inverse(s, sc->t[2 * k + 2], sc->t[2 * k + 1], n)))
                return status;
            at_flow_mix_forward(s, sc->t[2 * k + 1], sc->t[2 * k], n, true);
        }
        float *dst = l == 0 ? f->h0 : f->scales[l - 1].g[0];
        at_flow_unsqueeze(sc->t[0], dst, n, sc->c / 4, sc->h * 2, sc->w * 2);
        next = dst;
    }
    const double a = f->o.alpha, span = 1.0 - 2.0 * a;
    for (size_t j = 0; j < (size_t)n * f->dim; j++) {
        const double p = 1.0 / (1.0 + exp(-(double)f->h0[j]));
        x[j] = (float)((p - a) / span);
    }
    f->last = AT_FLOW_LAST_INVERSE;
    return AT_OK;
}

int at_flow_backward(at_flow *f, const float *dz, const float *dlogdet)
{
    if (f->last != AT_FLOW_LAST_FORWARD)
        return AT_ERR_STATE;
    const int n = f->n, S = f->o.steps;
    const float *from_above = NULL; /* gradient w.r.t. the kept half, [n, size - z_size] */
    for (int l = f->o.scales - 1; l >= 0; l--) {
        at_flow_scale *sc = &f->scales[l];
        float *g = sc->g[0], *spare = sc->g[1];
        for (int i = 0; i < n; i++) {
            float *row = g + (size_t)i * sc->size;
            memcpy(row, dz + (size_t)i * f->dim + sc->z_offset, sc->z_size * sizeof(float));
            if (from_above)
                memcpy(row + sc->z_size, from_above + (size_t)i * (sc->size - sc->z_size),
                       (sc->size - sc->z_size) * sizeof(float));
        }
        for (int k = S - 1; k >= 0; k--) {
            at_flow_step *s = &f->steps[l * S + k];
            int status = at_flow_coupling_backward(s, sc->t[2 * k + 1], g, spare, n, dlogdet, true);
            if (status)
                return status;
            at_flow_mix_backward(s, sc->t[2 * k], spare, g, n, false, dlogdet, !f->o.reverse);
        }
        if (l > 0) {
            at_flow_unsqueeze(g, f->gh, n, sc->c / 4, sc->h * 2, sc->w * 2);
            from_above = f->gh;
        }
    }
    return AT_OK;
}

int at_flow_inverse_backward(at_flow *f, const float *dx, float *dz)
{
    if (f->last != AT_FLOW_LAST_INVERSE)
        return AT_ERR_STATE;
    const int n = f->n, S = f->o.steps;
    const double a = f->o.alpha, span = 1.0 - 2.0 * a;
    for (size_t j = 0; j < (size_t)n * f->dim; j++) {
        const double p = 1.0 / (1.0 + exp(-(double)f->h0[j]));
        f->gh[j] = (float)(dx[j] * p * (1.0 - p) / span);
    }
    const float *g_img = f->gh;
    for (int l = 0; l < f->o.scales; l++) {
        at_flow_scale *sc = &f->scales[l];
        float *g = sc->g[0], *spare = sc->g[1];
        at_flow_squeeze(g_img, g, n, sc->c / 4, sc->h * 2, sc->w * 2);
        for (int k = 0; k < S; k++) {
            at_flow_step *s = &f->steps[l * S + k];
            at_flow_mix_backward(s, NULL, g, spare, n, true, NULL, false);
            int status = at_flow_coupling_inverse_backward(s, sc->t[2 * k + 1], spare, g, n);
            if (status)
                return status;
        }
        z_copy(f, sc, g, dz, n, true);
        if (l < f->o.scales - 1) {
            concat(g, NULL, spare, n, sc->z_size, sc->size - sc->z_size, true);
            g_img = spare; /* [n, c/2, h, w]: the next scale squeezes it */
        }
    }
    return AT_OK;
}
