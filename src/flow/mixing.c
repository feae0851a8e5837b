/* mixing.c: the invertible 1x1 convolution of Glow (Kingma and Dhariwal, "Glow: Generative Flow
 * with Invertible 1x1 Convolutions", NeurIPS 2018, sec. 3.2, table 1): y = W x at every pixel,
 * log-determinant h w log|det W|, initialised to a random rotation; or, as in RealNVP, a fixed
 * channel reversal (W the anti-identity). W^-1 and log|det W| come from an LU factorisation with
 * partial pivoting in double, redone before every use (c <= 64, so it costs nothing). */
#include "flow/flow.h"

#include <math.h>
#include <string.h>

static float *weight(const at_flow_step *s) { return at_model_tensor(s->mix, 0).data; }
static float *weight_grad(const at_flow_step *s) { return at_model_tensor(s->mix, 0).grad; }

int at_flow_mix_prepare(at_flow_step *s)
{
    const int c = s->c;
    const float *w = weight(s);
    double a[AT_FLOW_MAX_CHANNELS * AT_FLOW_MAX_CHANNELS], *inv = s->winv;
    for (int i = 0; i < c * c; i++)
        a[i] = w[i];
    for (int i = 0; i < c; i++)
        for (int j = 0; j < c; j++)
            inv[i * c + j] = i == j;
    double logabsdet = 0.0;
    /* Gauss-Jordan elimination with partial pivoting: a -> I, inv -> a^-1 */
    for (int col = 0; col < c; col++) {
        int piv = col;
        for (int r = col + 1; r < c; r++)
            if (fabs(a[r * c + col]) > fabs(a[piv * c + col]))
                piv = r;
        const double p = a[piv * c + col];
        if (!(fabs(p) > 1e-12) || !isfinite(p))
            return AT_ERR_NUMERIC;
        if (piv != col)
            for (int j = 0; j < c; j++) {
                double t = a[col * c + j];
                a[col * c + j] = a[piv * c + j];
                a[piv * c + j] = t;
                t = inv[col * c + j];
                inv[col * c + j] = inv[piv * c + j];
                inv[piv * c + j] = t;
            }
        logabsdet += log(fabs(p));
        for (int j = 0; j < c; j++) {
            a[col * c + j] /= p;
            inv[col * c + j] /= p;
        }
        for (int r = 0; r < c; r++) {
            if (r == col)
                continue;
            const double f = a[r * c + col];
            if (f == 0.0)
                continue;
            for (int j = 0; j < c; j++) {
                a[r * c + j] -= f * a[col * c + j];
                inv[r * c + j] -= f * inv[col * c + j];
            }
        }
    }
    for (int i = 0; i < c * c; i++)
        s->winv_f[i] = (float)inv[i];
    s->logabsdet = logabsdet;
    return AT_OK;
}

/* y[o] = sum_i m[o][i] x[i] at every pixel (m row-major c x c; transposed: m[i][o]) */
static void apply(const float *m, bool transpose, const float *x, float *y, int n, int c,
                  size_t pixels)
{
    const size_t image = (size_t)c * pixels;
#pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++) {
        const float *xi = x + (size_t)i * image;
        float *yi = y + (size_t)i * image;
        for (int o = 0; o < c; o++) {
            float *yo = yi + (size_t)o * pixels;
            memset(yo, 0, pixels * sizeof(float));
            for (int k = 0; k < c; k++) {
                const float m_ok = transpose ? m[k * c + o] : m[o * c + k];
                const float *xk = xi + (size_t)k * pixels;
                for (size_t p = 0; p < pixels; p++)
                    yo[p] += m_ok * xk[p];
            }
        }
    }
}

void at_flow_mix_forward(const at_flow_step *s, const float *x, float *y, int n, bool inverse)
{
    apply(inverse ? s->winv_f : weight(s), false, x, y, n, s->c, (size_t)s->h * s->w);
}

void at_flow_mix_backward(at_flow_step *s, const float *x, const float *grad_in, float *grad_out,
                          int n, bool inverse, const float *dlogdet, bool weights)
{
    const int c = s->c;
    const size_t pixels = (size_t)s->h * s->w, image = (size_t)c * pixels;
    apply(inverse ? s->winv_f : weight(s), true, grad_in, grad_out, n, c, pixels);
    if (!weights || inverse)
        return;
    float *dw = weight_grad(s);
    for (int o = 0; o < c; o++)
        for (int k = 0; k < c; k++) {
            double sum = 0.0;
            for (int i = 0; i < n; i++) {
                const float *g = grad_in + (size_t)i * image + (size_t)o * pixels;
                const float *xi = x + (size_t)i * image + (size_t)k * pixels;
                for (size_t p = 0; p < pixels; p++)
                    sum += (double)g[p] * xi[p];
            }
            dw[o * c + k] += (float)sum;
        }
    if (dlogdet) {
        double total = 0.0;
        for (int i = 0; i < n; i++)
            total += dlogdet[i];
        /* d log|det W| / dW = W^-T */
        for (int o = 0; o < c; o++)
            for (int k = 0; k < c; k++)
                dw[o * c + k] += (float)(total * (double)pixels * s->winv[k * c + o]);
    }
}

void at_flow_mix_init(at_flow_step *s, at_rng *rng, bool reverse)
{
    const int c = s->c;
    float *w = weight(s);
    if (reverse) {
        for (int o = 0; o < c; o++)
            for (int k = 0; k < c; k++)
                w[o * c + k] = k == c - 1 - o;
        return;
    }
    /* Gram-Schmidt on Gaussian rows: a random orthogonal matrix */
    double q[AT_FLOW_MAX_CHANNELS * AT_FLOW_MAX_CHANNELS];
    for (int o = 0; o < c; o++) {
        double *r = q + o * c, norm;
        do {
            for (int k = 0; k < c; k++)
                r[k] = at_rng_normal(rng);
            for (int p = 0; p < o; p++) {
                double dot = 0.0;
                for (int k = 0; k < c; k++)
                    dot += r[k] * q[p * c + k];
                for (int k = 0; k < c; k++)
                    r[k] -= dot * q[p * c + k];
            }
            norm = 0.0;
            for (int k = 0; k < c; k++)
                norm += r[k] * r[k];
            norm = sqrt(norm);
        } while (norm < 1e-6);
        for (int k = 0; k < c; k++)
            r[k] /= norm;
    }
    for (int i = 0; i < c * c; i++)
        w[i] = (float)q[i];
}
