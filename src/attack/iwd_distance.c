/* iwd_distance.c: the internal Wasserstein distance between two images (Wang et al., "Internal
 * Wasserstein Distance for Adversarial Attack and Defense", arXiv 2103.07598, section 3: the
 * distance between the "internal" patch distributions of two images). No code was published;
 * this is a reconstruction whose unchecked details are the options of at_iwd_options: raw pixel
 * patches (all channels) for the patch features, the debiased Sinkhorn divergence of Feydy et al.
 * (AISTATS 2019, eq. 2) for the distance, so that S(x, x) = 0 and S is symmetric,
 *     S(x, x') = OT_eps(P_x, P_x') - (OT_eps(P_x, P_x) + OT_eps(P_x', P_x')) / 2,
 * an absolute eps on the per-pixel squared patch cost, and subsampled patch positions shared by
 * both images. The gradient with respect to x' is at_sinkhorn's (envelope theorem) for the first
 * and the last term (x' on both sides there), scattered from patch coordinates back to pixels. */
#include "attack/attack.h"

#include <math.h>
#include <string.h>

struct at_iwd {
    at_iwd_options o;
    int c, h, w, d;           /* d = c patch^2 floats per patch */
    int all, n;               /* patch positions in the image, and those used */
    int32_t *order;           /* [all]: positions, the first n used */
    double *px, *py;          /* [n, d] patches of x and x' */
    double *gc, *g1, *g2;     /* [n, d] gradients: of the cross term, of the self term of x'
                                 by its first and second argument */
    double *work;
};

int at_iwd_create(at_iwd **out, const at_iwd_options *options, int channels, int height,
                  int width, at_error *err)
{
    *out = NULL;
    at_iwd_options o = options ? *options : (at_iwd_options){0};
    if (o.patch == 0)
        o.patch = 3;
    if (o.stride == 0)
        o.stride = 2;
    if (o.samples == 0)
        o.samples = 256;
    if (o.reg == 0.0f)
        o.reg = 0.01f;
    if (o.iters == 0)
        o.iters = 50;
    if (channels < 1 || height < 1 || width < 1)
        return at_fail(err, AT_ERR_SHAPE, "iwd: bad image shape %dx%dx%d", channels, height, width);
    if (o.patch < 1 || o.patch > height || o.patch > width)
        return at_fail(err, AT_ERR_ARG, "iwd-patch must be in 1..%d for %dx%d images (got %d)",
                       height < width ? height : width, height, width, o.patch);
    if (o.stride < 1 || o.stride > 1024)
        return at_fail(err, AT_ERR_ARG, "iwd-stride must be in 1..1024 (got %d)", o.stride);
    if (o.samples < 2 || o.samples > 4096)
        return at_fail(err, AT_ERR_ARG, "iwd-samples must be in 2..4096 (got %d)", o.samples);
    if (!(o.reg > 0.0f) || !isfinite(o.reg) || o.reg > 100.0f)
        return at_fail(err, AT_ERR_ARG, "iwd-reg must be in (0, 100] (got %g)", o.reg);
    if (o.iters < 1 || o.iters > 100000)
        return at_fail(err, AT_ERR_ARG, "iwd-iters must be in 1..100000 (got %d)", o.iters);
    const int rows = (height - o.patch) / o.stride + 1, cols = (width - o.patch) / o.stride + 1;
    if (rows * cols < 2)
        return at_fail(err, AT_ERR_ARG, "iwd: a %dx%d image has fewer than 2 patch positions "
                       "with iwd-patch %d and iwd-stride %d", height, width, o.patch, o.stride);
    at_iwd *w = at_alloc(sizeof *w);
    if (!w)
        return at_fail(err, AT_ERR_NOMEM, "out of memory");
    w->o = o;
    w->c = channels;
    w->h = height;
    w->w = width;
    w->d = channels * o.patch * o.patch;
    w->all = rows * cols;
    w->n = w->all < o.samples ? w->all : o.samples;
    const size_t nd = (size_t)w->n * w->d;
    w->order = at_alloc((size_t)w->all * sizeof(int32_t));
    w->px = at_alloc(nd * sizeof(double));
    w->py = at_alloc(nd * sizeof(double));
    w->gc = at_alloc(nd * sizeof(double));
    w->g1 = at_alloc(nd * sizeof(double));
    w->g2 = at_alloc(nd * sizeof(double));
    w->work = at_alloc(at_sinkhorn_work(w->n, w->n) * sizeof(double));
    if (!w->order || !w->px || !w->py || !w->gc || !w->g1 || !w->g2 || !w->work) {
        at_iwd_free(w);
        return at_fail(err, AT_ERR_NOMEM, "out of memory for the IWD of %d patches", w->n);
    }
    *out = w;
    return AT_OK;
}

void at_iwd_free(at_iwd *w)
{
    if (!w)
        return;
    at_free(w->order);
    at_free(w->px);
    at_free(w->py);
    at_free(w->gc);
    at_free(w->g1);
    at_free(w->g2);
    at_free(w->work);
    at_free(w);
}

const at_iwd_options *at_iwd_get_options(const at_iwd *w) { return &w->o; }
int at_iwd_patches(const at_iwd *w) { return w->n; }

/* The positions in use: all of them in raster order, or n drawn without replacement. */
static void choose_positions(at_iwd *w, uint64_t seed)
{
    for (int i = 0; i < w->all; i++)
        w->order[i] = i;
    if (w->n == w->all)
        return;
    at_rng rng;
    at_rng_seed(&rng, seed);
    for (int i = 0; i < w->n; i++) { /* the first n steps of a Fisher-Yates shuffle */
        int j = i + (int)at_rng_below(&rng, (uint32_t)(w->all - i));
        int32_t t = w->order[i];
        w->order[i] = w->order[j];
        w->order[j] = t;
    }
}

/* Pixel offset of coordinate k of patch position `pos`. */
static size_t pixel(const at_iwd *w, int pos, int k)
{
    const int cols = (w->w - w->o.patch) / w->o.stride + 1, p = w->o.patch;
    const int r0 = pos / cols * w->o.stride, c0 = pos % cols * w->o.stride;
    const int ch = k / (p * p), dy = k / p % p, dx = k % p;
    return ((size_t)ch * w->h + r0 + dy) * w->w + c0 + dx;
}

static void extract(const at_iwd *w, const float *img, double *patches)
{
    for (int i = 0; i < w->n; i++)
        for (int k = 0; k < w->d; k++)
            patches[(size_t)i * w->d + k] = img[pixel(w, w->order[i], k)];
}

double at_iwd_self(at_iwd *w, const float *x, uint64_t seed)
{
    choose_positions(w, seed);
    extract(w, x, w->px);
    return at_sinkhorn(w->px, NULL, w->n, w->px, NULL, w->n, w->d, w->o.reg, w->o.iters, w->work,
                       NULL, NULL, NULL);
}

double at_iwd_distance(at_iwd *w, const float *x, const float *x_adv, uint64_t seed, float *grad)
{
    return at_iwd_divergence(w, x, NAN, x_adv, seed, grad);
}

double at_iwd_divergence(at_iwd *w, const float *x, double self_x, const float *x_adv,
                         uint64_t seed, float *grad)
{
    const size_t image = (size_t)w->c * w->h * w->w;
    const int n = w->n, d = w->d, iters = w->o.iters;
    const double eps = w->o.reg;
    if (isnan(self_x))
        self_x = at_iwd_self(w, x, seed);
    else
        choose_positions(w, seed);
    extract(w, x, w->px);
    extract(w, x_adv, w->py);
    double cross = at_sinkhorn(w->px, NULL, n, w->py, NULL, n, d, eps, iters, w->work, NULL,
                               grad ? w->gc : NULL, NULL);
    double self_y = at_sinkhorn(w->py, NULL, n, w->py, NULL, n, d, eps, iters, w->work,
                                grad ? w->g1 : NULL, grad ? w->g2 : NULL, NULL);
    double s = cross - 0.5 * (self_x + self_y);
    if (grad) {
        memset(grad, 0, image * sizeof(float));
        for (int i = 0; i < n; i++)
            for (int k = 0; k < d; k++) {
                size_t q = (size_t)i * d + k;
                grad[pixel(w, w->order[i], k)] += (float)(w->gc[q] - 0.5 * (w->g1[q] + w->g2[q]));
            }
    }
    return isfinite(s) ? s : NAN;
}
