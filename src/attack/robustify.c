/* robustify.c: preemptive image robustification (Moon, An and Song, "Preemptive Image
 * Robustification for Protecting Users against Man-in-the-Middle Adversarial Attacks", AAAI 2022,
 * eq. 2 and Algorithm 1): min over x_r in the delta-ball around x of the robust loss
 * max over x' in the eps-ball around x_r of CE(f(x'), f(x)), the model's own prediction as label.
 *
 * The inner max is PGD (the attack framework's random start, direction and norms) whose increments
 * are constants: x' depends on x_r only through the additive path and the masks of the
 * projection onto the eps-ball and of the clamp to [0,1], so dx'/dx_r is diagonal and is carried
 * along the steps (D_0 = [start not clamped]; D_{t+1} = [not clamped] (s D_t + 1 - s), s = 1 inside
 * the ball, 0 on a Linf face, eps/||c - x_r|| for an L2 renormalisation, treated as constant).
 * Linf reparameterises x_r = lo + (tanh(w) + 1)(hi - lo)/2 inside the delta-box and takes RMSprop
 * steps on w (the authors' defenses/preempt_robust_linf.py); L2 takes projected normalised steps
 * on x_r (their preempt_robust_l2.py steps the raw gradient: reconstruction). The smoothing
 * variant averages every gradient and loss over Gaussian draws; `reconstruct` flips the sign. */
#include "attack/attack.h"

#include <math.h>
#include <string.h>

struct at_robustifier {
    at_robustify_options o;
    at_model *model;
    at_pass *pass;
    int max_batch, classes;
    size_t image;
    float *v, *ms, *gv, *x_r, *x_adv, *mask, *dir, *grad, *gsum, *noisy, *dlogits, *loss, *lsum;
    float *scratch;
    int32_t *y;
    at_rng *rngs;
    at_robustify_stats stats;
};

void at_robustify_defaults(at_robustify_options *o, at_norm norm, float delta, float eps)
{
    *o = (at_robustify_options){.norm = norm, .delta = delta, .eps = eps, .iters = 100,
                                .steps = 20, .step_size = eps / 4, .rms_alpha = 0.99f,
                                .lr = norm == AT_NORM_L2 ? delta / 10 : 0.1f};
}

void at_robustify_free(at_robustifier *r)
{
    if (!r)
        return;
    at_pass_free(r->pass);
    float *bufs[] = {r->v, r->ms, r->gv, r->x_r, r->x_adv, r->mask, r->dir, r->grad, r->gsum, r->noisy,
                     r->dlogits, r->loss, r->lsum, r->scratch};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        at_free(bufs[i]);
    at_free(r->y);
    at_free(r->rngs);
    at_free(r);
}

static int check_options(const at_robustify_options *o, at_error *err)
{
    if (o->norm != AT_NORM_LINF && o->norm != AT_NORM_L2)
        return at_fail(err, AT_ERR_ARG, "robustify: the norm must be linf or l2");
    if (!(o->delta > 0.0f && isfinite(o->delta)))
        return at_fail(err, AT_ERR_ARG, "robustify: delta must be > 0 (got %g)", o->delta);
    if (!(o->eps >= 0.0f && isfinite(o->eps)))
        return at_fail(err, AT_ERR_ARG, "robustify: eps must be >= 0 (got %g)", o->eps);
    if (o->iters < 0 || o->iters > 1000000 || o->steps < 0 || o->steps > 100000)
        return at_fail(err, AT_ERR_ARG, "robustify: iters and steps must be >= 0");
    if (o->steps > 0 && !(o->step_size > 0.0f && isfinite(o->step_size)))
        return at_fail(err, AT_ERR_ARG, "robustify: the inner step size must be > 0 (got %g)",
                       o->step_size);
    if (!(o->lr > 0.0f && isfinite(o->lr)))
        return at_fail(err, AT_ERR_ARG, "robustify: the learning rate must be > 0 (got %g)", o->lr);
    if (!(o->rms_alpha >= 0.0f && o->rms_alpha < 1.0f))
        return at_fail(err, AT_ERR_ARG, "robustify: the RMSprop decay must be in [0, 1) (got %g)",
                       o->rms_alpha);
    if (o->noise_samples < 0 || o->noise_samples > 10000)
        return at_fail(err, AT_ERR_ARG, "robustify: noise samples must be in [0, 10000]");
    if (o->noise_samples > 0 && !(o->noise_sigma > 0.0f && isfinite(o->noise_sigma)))
        return at_fail(err, AT_ERR_ARG, "robustify: the noise sigma must be > 0 (got %g)",
                       o->noise_sigma);
    return AT_OK;
}

int at_robustify_create(at_robustifier **out, at_model *model, int max_batch,
                        const at_robustify_options *options, at_error *err)
{
    *out = NULL;
    int status = check_options(options, err);
    if (status)
        return status;
    if (max_batch < 1)
        return at_fail(err, AT_ERR_ARG, "robustify: the batch must hold at least 1 image");
    at_robustifier *r = at_alloc(sizeof *r);
    if (!r)
        return at_fail(err, AT_ERR_NOMEM, "out of memory");
    memset(r, 0, sizeof *r);
    r->o = *options;
    r->model = model;
    r->max_batch = max_batch;
    r->classes = at_model_num_classes(model);
    int c, h, w;
    at_model_input_shape(model, &c, &h, &w);
    r->image = (size_t)c * h * w;
    if ((status = at_pass_create(&r->pass, model, max_batch, AT_PASS_NO_WEIGHT_GRADS, err))) {
        at_free(r);
        return status;
    }
    const size_t big = r->image * (size_t)max_batch * sizeof(float);
    float **images[] = {&r->v, &r->ms, &r->gv, &r->x_r, &r->x_adv, &r->mask, &r->dir, &r->grad, &r->gsum,
                        &r->noisy};
    bool ok = true;
    for (size_t i = 0; i < sizeof images / sizeof images[0]; i++)
        ok &= (*images[i] = at_alloc(big)) != NULL;
    r->dlogits = at_alloc((size_t)r->classes * max_batch * sizeof(float));
    r->loss = at_alloc((size_t)max_batch * sizeof(float));
    r->lsum = at_alloc((size_t)max_batch * sizeof(float));
    r->scratch = at_alloc(r->image * sizeof(float));
    r->y = at_alloc((size_t)max_batch * sizeof(int32_t));
    r->rngs = at_alloc((size_t)max_batch * sizeof(at_rng));
    if (!ok || !r->dlogits || !r->loss || !r->lsum || !r->scratch || !r->y || !r->rngs) {
        at_robustify_free(r);
        return at_fail(err, AT_ERR_NOMEM, "out of memory for robustification");
    }
    *out = r;
    return AT_OK;
}

const at_robustify_options *at_robustify_get_options(const at_robustifier *r) { return &r->o; }
const at_robustify_stats *at_robustify_get_stats(const at_robustifier *r) { return &r->stats; }

/* Per-example CE at x_eval into r->lsum and, with want_grad, its input gradient into r->gsum,
 * both averaged over the noise draws of the smoothing variant (one plain evaluation without). */
static int evaluate(at_robustifier *r, const float *x_eval, int n, bool want_grad)
{
    const at_robustify_options *o = &r->o;
    const size_t count = (size_t)n * r->image;
    const int draws = o->noise_samples > 0 ? o->noise_samples : 1;
    memset(r->lsum, 0, (size_t)n * sizeof(float));
    if (want_grad)
        memset(r->gsum, 0, count * sizeof(float));
    for (int d = 0; d < draws; d++) {
        const float *in = x_eval;
        if (o->noise_samples > 0) {
            for (int i = 0; i < n; i++)
                at_rng_normals(&r->rngs[i], r->noisy + (size_t)i * r->image, r->image);
            for (size_t j = 0; j < count; j++)
                r->noisy[j] = x_eval[j] + o->noise_sigma * r->noisy[j];
            in = r->noisy;
        }
        int status = at_forward(r->pass, in, n, AT_BN_EVAL);
        if (status)
            return status;
        at_attack_loss_eval(AT_ATTACK_LOSS_CE, false, at_pass_logits(r->pass), n, r->classes,
                            r->y, NULL, r->loss, r->dlogits);
        for (int i = 0; i < n; i++)
            r->lsum[i] += r->loss[i] / (float)draws;
        if (!want_grad)
            continue;
        if ((status = at_backward(r->pass, r->dlogits, AT_GRAD_INPUT)))
            return status;
        const float *g = at_pass_input_grad(r->pass);
        for (size_t j = 0; j < count; j++)
            r->gsum[j] += g[j] / (float)draws;
        r->stats.gradient_evals += n;
    }
    return AT_OK;
}

/* The inner PGD from x_r (labels r->y, streams r->rngs) to r->x_adv, carrying dx'/dx_r in
 * r->mask; then the robust loss into r->lsum and, with want_grad, d loss / d x_r into r->grad. */
static int inner(at_robustifier *r, const float *x_r, int n, bool want_grad)
{
    const at_robustify_options *o = &r->o;
    const size_t image = r->image, count = (size_t)n * image;
    float *xa = r->x_adv, *mask = r->mask;
    if (o->no_random_start || o->steps == 0)
        memcpy(xa, x_r, count * sizeof(float));
    else
        at_attack_random_start(o->norm, o->eps, NULL, x_r, xa, n, image, r->rngs, r->scratch);
    for (size_t j = 0; j < count; j++)
        mask[j] = o->no_random_start || o->steps == 0 || (xa[j] > 0.0f && xa[j] < 1.0f);
    for (int t = 0; t < o->steps; t++) {
        int status = evaluate(r, xa, n, true);
        if (status)
            return status;
        at_attack_direction(o->norm, r->gsum, r->dir, n, image);
        for (int i = 0; i < n; i++) {
            float *ai = xa + (size_t)i * image, *mi = mask + (size_t)i * image;
            const float *di = r->dir + (size_t)i * image, *ri = x_r + (size_t)i * image;
            double scale = 1.0;
            if (o->norm == AT_NORM_L2) {
                double ss = 0.0;
                for (size_t j = 0; j < image; j++) {
                    double d = (double)ai[j] + o->step_size * di[j] - ri[j];
                    ss += d * d;
                }
                scale = sqrt(ss) > o->eps ? o->eps / sqrt(ss) : 1.0;
            }
            for (size_t j = 0; j < image; j++) {
                float d = ai[j] + o->step_size * di[j] - ri[j];
                float s = (float)scale;
                if (o->norm == AT_NORM_LINF) {
                    s = fabsf(d) > o->eps ? 0.0f : 1.0f;
                    d = d > o->eps ? o->eps : (d < -o->eps ? -o->eps : d);
                } else {
                    d *= s;
                }
                float v = ri[j] + d;
                bool inside = v > 0.0f && v < 1.0f;
                ai[j] = v < 0.0f ? 0.0f : (v > 1.0f ? 1.0f : v);
                mi[j] = inside ? s * mi[j] + (1.0f - s) : 0.0f;
            }
        }
    }
    int status = evaluate(r, xa, n, want_grad);
    if (status || !want_grad)
        return status;
    for (size_t j = 0; j < count; j++)
        r->grad[j] = r->gsum[j] * mask[j];
    return AT_OK;
}

void at_robustify_box_from_w(const float *x, const float *w, size_t count, float delta,
                             float *x_r)
{
    for (size_t j = 0; j < count; j++) {
        float lo = fmaxf(x[j] - delta, 0.0f), hi = fminf(x[j] + delta, 1.0f);
        float v = lo + 0.5f * (tanhf(w[j]) + 1.0f) * (hi - lo);
        x_r[j] = v < lo ? lo : (v > hi ? hi : v);
    }
}

void at_robustify_box_to_w(const float *x, const float *x_r, size_t count, float delta, float *w)
{
    for (size_t j = 0; j < count; j++) {
        float lo = fmaxf(x[j] - delta, 0.0f), hi = fminf(x[j] + delta, 1.0f);
        double t = ((x_r[j] - lo) / (double)(hi - lo) - 0.5) * 1.999;
        w[j] = (float)atanh(t < -0.9995 ? -0.9995 : (t > 0.9995 ? 0.9995 : t));
    }
}

/* Loss and gradient w.r.t. the outer variable v of the current streams (r->rngs, r->y). */
static int outer_gradient(at_robustifier *r, const float *x, const float *v, int n, float *grad_v)
{
    const size_t count = (size_t)n * r->image;
    const float delta = r->o.delta;
    if (r->o.norm == AT_NORM_LINF)
        at_robustify_box_from_w(x, v, count, delta, r->x_r);
    else
        memcpy(r->x_r, v, count * sizeof(float));
    int status = inner(r, r->x_r, n, true);
    if (status)
        return status;
    for (size_t j = 0; j < count; j++) {
        float g = r->grad[j];
        if (r->o.norm == AT_NORM_LINF) {
            float lo = fmaxf(x[j] - delta, 0.0f), hi = fminf(x[j] + delta, 1.0f);
            float th = tanhf(v[j]);
            g *= 0.5f * (1.0f - th * th) * (hi - lo);
        }
        grad_v[j] = g;
    }
    return AT_OK;
}

int at_robustify_gradient(at_robustifier *r, const float *x, const float *v, const int32_t *y,
                          int n, const uint64_t *seeds, float *loss, float *grad_v)
{
    if (n < 1 || n > r->max_batch)
        return AT_ERR_ARG;
    memcpy(r->y, y, (size_t)n * sizeof(int32_t));
    for (int i = 0; i < n; i++)
        at_rng_seed(&r->rngs[i], seeds[i]);
    int status = outer_gradient(r, x, v, n, grad_v);
    if (!status && loss)
        memcpy(loss, r->lsum, (size_t)n * sizeof(float));
    return status;
}

int at_robustify_loss(at_robustifier *r, const float *x, const int32_t *y, int n,
                      const uint64_t *seeds, float *loss)
{
    if (n < 1 || n > r->max_batch)
        return AT_ERR_ARG;
    memcpy(r->y, y, (size_t)n * sizeof(int32_t));
    for (int i = 0; i < n; i++)
        at_rng_seed(&r->rngs[i], seeds[i]);
    int status = inner(r, x, n, false);
    if (!status)
        memcpy(loss, r->lsum, (size_t)n * sizeof(float));
    return status;
}

/* One outer step on v from its gradient g: RMSprop on w (linf), or a projected normalised step
 * on x_r (l2); downhill, or uphill for the reconstruction attack. */
static void outer_step(at_robustifier *r, const float *x, int n, const float *g)
{
    const at_robustify_options *o = &r->o;
    const size_t image = r->image, count = (size_t)n * image;
    const float sign = o->reconstruct ? -1.0f : 1.0f;
    if (o->norm == AT_NORM_LINF) {
        for (size_t j = 0; j < count; j++) {
            float gj = sign * g[j];
            r->ms[j] = o->rms_alpha * r->ms[j] + (1.0f - o->rms_alpha) * gj * gj;
            r->v[j] -= o->lr * gj / (sqrtf(r->ms[j]) + 1e-8f);
        }
        return;
    }
    for (int i = 0; i < n; i++) {
        const float *gi = g + (size_t)i * image;
        float *vi = r->v + (size_t)i * image;
        double norm = at_norm_of(AT_NORM_L2, gi, image);
        if (norm == 0.0)
            continue;
        const float step = (float)(sign * o->lr / norm);
        for (size_t j = 0; j < image; j++)
            vi[j] -= step * gi[j];
    }
    at_attack_project(AT_NORM_L2, o->delta, NULL, x, r->v, n, image, r->scratch);
}

static void measure(at_robustifier *r, const float *x, const float *x_r, int n)
{
    at_robustify_stats *s = &r->stats;
    for (int i = 0; i < n; i++) {
        const float *xi = x + (size_t)i * r->image, *ri = x_r + (size_t)i * r->image;
        double linf = 0.0, l2 = 0.0;
        for (size_t j = 0; j < r->image; j++) {
            double d = fabs((double)ri[j] - xi[j]);
            linf = d > linf ? d : linf;
            l2 += d * d;
            s->out_of_range += ri[j] < 0.0f || ri[j] > 1.0f;
            s->nonfinite += !isfinite(ri[j]);
        }
        s->max_linf = linf > s->max_linf ? linf : s->max_linf;
        s->max_l2 = sqrt(l2) > s->max_l2 ? sqrt(l2) : s->max_l2;
    }
    s->points += n;
}

int at_robustify_run(at_robustifier *r, const float *x, int n, const uint64_t *seeds, float *x_r,
                     int32_t *labels)
{
    const at_robustify_options *o = &r->o;
    if (n < 1 || n > r->max_batch)
        return AT_ERR_ARG;
    const size_t image = r->image, count = (size_t)n * image;
    int status = at_forward(r->pass, x, n, AT_BN_EVAL);
    if (status)
        return status;
    const float *z = at_pass_logits(r->pass);
    for (int i = 0; i < n; i++) {
        r->y[i] = at_attack_ranked_class(z + (size_t)i * r->classes, r->classes, 1);
        at_rng_seed(&r->rngs[i], seeds[i]);
    }
    if (labels)
        memcpy(labels, r->y, (size_t)n * sizeof(int32_t));
    /* the start: x plus uniform noise in the delta-ball (the authors' random_perturb), or x */
    float *start = r->x_adv;
    if (o->no_random_start)
        memcpy(start, x, count * sizeof(float));
    else
        at_attack_random_start(o->norm, o->delta, NULL, x, start, n, image, r->rngs, r->scratch);
    if (o->norm == AT_NORM_LINF)
        at_robustify_box_to_w(x, start, count, o->delta, r->v);
    else
        memcpy(r->v, start, count * sizeof(float));
    memset(r->ms, 0, count * sizeof(float));
    for (int it = 0; it < o->iters; it++) {
        if ((status = outer_gradient(r, x, r->v, n, r->gv)))
            return status;
        if (it == 0)
            for (int i = 0; i < n; i++)
                r->stats.loss_first_sum += r->lsum[i];
        outer_step(r, x, n, r->gv);
    }
    if (o->norm == AT_NORM_LINF)
        at_robustify_box_from_w(x, r->v, count, o->delta, x_r);
    else
        memcpy(x_r, r->v, count * sizeof(float));
    if ((status = inner(r, x_r, n, false)))
        return status;
    for (int i = 0; i < n; i++) {
        r->stats.loss_last_sum += r->lsum[i];
        if (o->iters == 0)
            r->stats.loss_first_sum += r->lsum[i];
    }
    measure(r, x, x_r, n);
    return AT_OK;
}
