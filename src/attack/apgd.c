/* apgd.c: Auto-PGD (Croce and Hein, "Reliable evaluation of adversarial robustness with an
 * ensemble of diverse parameter-free attacks", ICML 2020, Algorithm 1), as in the authors' code:
 *   start x0 = x + eps * u / ||u|| (u uniform for Linf, Gaussian for L2), step eta = 2 eps;
 *   z = P(x_k + eta * s(grad)),  x_{k+1} = P(x_k + a (z - x_k) + (1 - a)(x_k - x_{k-1})),
 *   a = 0.75 (1 at the first step); the best-loss point and every misclassified iterate are kept;
 *   at checkpoints (after 22% of the iterations, then intervals shrinking by 3% down to 6%) eta
 *   is halved for an example, and it restarts from its best point, when the loss went up in at
 *   most 75% of the steps since the last checkpoint, or when eta was not halved last time and the
 *   best loss has not improved.
 * Three entries share this file: APGD-CE, APGD-DLR and APGD-T (targeted DLR against each of the
 * top `targets` other classes in turn). Restarts and targets run only on points still robust. */
#include "attack/attack.h"

#include <math.h>
#include <string.h>

/* Per example: x, x_adv, x_old, x_best, x_best_adv, grad_best (images), the loss of every
 * iteration (steps floats), and six scalars. */
static size_t apgd_workspace(const at_attack *a, size_t image)
{
    return 6 * image + (size_t)a->o.steps + 6;
}

typedef struct apgd_buffers {
    float *x, *adv, *old, *best, *best_adv, *grad_best, *loss_steps;
    float *step, *loss_best, *loss_best_last, *reduced_last, *robust;
    int32_t *y, *target, *index;
} apgd_buffers;

static apgd_buffers carve(at_attack *a)
{
    const size_t stride = (size_t)a->max_batch * a->image;
    float *w = a->work;
    apgd_buffers b;
    b.x = w;
    b.adv = w + stride;
    b.old = w + 2 * stride;
    b.best = w + 3 * stride;
    b.best_adv = w + 4 * stride;
    b.grad_best = w + 5 * stride;
    b.loss_steps = w + 6 * stride;
    float *s = b.loss_steps + (size_t)a->o.steps * a->max_batch;
    b.step = s;
    b.loss_best = s + a->max_batch;
    b.loss_best_last = s + 2 * a->max_batch;
    b.reduced_last = s + 3 * a->max_batch;
    b.robust = s + 4 * a->max_batch;
    /* the last scalar slot holds the int32 index, target and label arrays */
    b.index = (int32_t *)(s + 5 * a->max_batch);
    return b;
}

/* The steps of the checkpoints' bookkeeping, from the authors' code. */
typedef struct checkpoints {
    int interval, min_interval, decrease, counter;
} checkpoints;

static void step_linf(const float *x, float eps, float *adv, const float *old_diff_src,
                      const float *grad, float step, float momentum, size_t image, float *z)
{
    for (size_t j = 0; j < image; j++) {
        float s = (float)((grad[j] > 0.0f) - (grad[j] < 0.0f));
        float v = adv[j] + step * s;
        v = fminf(fmaxf(v, x[j] - eps), x[j] + eps);
        z[j] = fminf(fmaxf(v, 0.0f), 1.0f);
    }
    for (size_t j = 0; j < image; j++) {
        float v = adv[j] + (z[j] - adv[j]) * momentum + old_diff_src[j] * (1.0f - momentum);
        v = fminf(fmaxf(v, x[j] - eps), x[j] + eps);
        z[j] = fminf(fmaxf(v, 0.0f), 1.0f);
    }
}

/* P for L2: x + (v - x) * min(eps, ||v - x||) / ||v - x||, clamped to [0,1] (as the authors). */
static void project_l2(const float *x, float eps, float *v, size_t image)
{
    double n = 0.0;
    for (size_t j = 0; j < image; j++)
        n += ((double)v[j] - x[j]) * ((double)v[j] - x[j]);
    n = sqrt(n);
    double scale = n > eps ? eps / (n + 1e-12) : 1.0;
    for (size_t j = 0; j < image; j++) {
        float t = x[j] + (float)((v[j] - x[j]) * scale);
        v[j] = fminf(fmaxf(t, 0.0f), 1.0f);
    }
}

/* One run on m compacted points; fills b.robust (1 = still correctly classified), b.best_adv
 * (misclassified iterates) and b.best (highest-loss points). `step_base` is where its losses go
 * in the statistics. */
static int single_run(at_attack *a, apgd_buffers *b, int m, bool targeted)
{
    const at_attack_options *o = &a->o;
    const size_t image = a->image;
    const int iters = o->steps;
    /* start on the sphere (L2) or near a corner of the box (Linf) */
    for (int i = 0; i < m; i++) {
        float *ai = b->adv + (size_t)i * image;
        const float *xi = b->x + (size_t)i * image;
        at_rng *rng = &a->rngs[b->index[i]];
        double len = 0.0;
        for (size_t j = 0; j < image; j++) {
            ai[j] = o->norm == AT_NORM_LINF ? (float)(2.0 * at_rng_uniform(rng) - 1.0)
                                            : (float)at_rng_normal(rng);
            double v = fabs((double)ai[j]);
            len = o->norm == AT_NORM_LINF ? (v > len ? v : len) : len + v * v;
        }
        if (o->norm == AT_NORM_L2)
            len = sqrt(len);
        for (size_t j = 0; j < image; j++) {
            float v = xi[j] + (float)(o->eps * ai[j] / (len + 1e-12));
            ai[j] = fminf(fmaxf(v, 0.0f), 1.0f);
        }
    }
    const size_t count = (size_t)m * image;
    memcpy(b->best, b->adv, count * sizeof(float));
    memcpy(b->best_adv, b->adv, count * sizeof(float));
    int status = at_attack_evaluate(a, b->x, b->adv, b->y, b->target, m, o->loss, targeted, true);
    if (status)
        return status;
    at_attack_record_loss(a, 0, m);
    memcpy(b->grad_best, a->grad, count * sizeof(float));
    for (int i = 0; i < m; i++) {
        b->robust[i] = a->correct[i];
        b->loss_best[i] = a->loss[i];
        b->loss_best_last[i] = a->loss[i];
        b->reduced_last[i] = 1.0f;
        b->step[i] = 2.0f * o->eps;
    }
    memcpy(b->old, b->adv, count * sizeof(float));
    memset(b->loss_steps, 0, (size_t)iters * a->max_batch * sizeof(float));
    checkpoints cp = {iters * 22 / 100 > 1 ? iters * 22 / 100 : 1,
                      iters * 6 / 100 > 1 ? iters * 6 / 100 : 1,
                      iters * 3 / 100 > 1 ? iters * 3 / 100 : 1, 0};
    float *z = a->scratch;

    for (int it = 0; it < iters; it++) {
        const float momentum = it > 0 ? 0.75f : 1.0f;
        for (int i = 0; i < m; i++) {
            const size_t off = (size_t)i * image;
            float *adv = b->adv + off, *old = b->old + off;
            const float *xi = b->x + off, *g = a->grad + off;
            /* old becomes x_k - x_{k-1} for the momentum term, then the new x_{k-1} */
            for (size_t j = 0; j < image; j++)
                old[j] = adv[j] - old[j];
            if (o->norm == AT_NORM_LINF) {
                step_linf(xi, o->eps, adv, old, g, b->step[i], momentum, image, z);
            } else {
                double gn = 0.0;
                for (size_t j = 0; j < image; j++)
                    gn += (double)g[j] * g[j];
                float inv = (float)(1.0 / (sqrt(gn) + 1e-12));
                for (size_t j = 0; j < image; j++)
                    z[j] = adv[j] + b->step[i] * g[j] * inv;
                project_l2(xi, o->eps, z, image);
                for (size_t j = 0; j < image; j++)
                    z[j] = adv[j] + (z[j] - adv[j]) * momentum + old[j] * (1.0f - momentum);
                project_l2(xi, o->eps, z, image);
            }
            memcpy(old, adv, image * sizeof(float));
            memcpy(adv, z, image * sizeof(float));
        }
        status = at_attack_evaluate(a, b->x, b->adv, b->y, b->target, m, o->loss, targeted, true);
        if (status)
            return status;
        at_attack_record_loss(a, it + 1, m);
        float *steps_now = b->loss_steps + (size_t)it * a->max_batch;
        for (int i = 0; i < m; i++) {
            const size_t off = (size_t)i * image;
            if (!a->correct[i]) {
                b->robust[i] = 0.0f;
                memcpy(b->best_adv + off, b->adv + off, image * sizeof(float));
            }
            steps_now[i] = a->loss[i];
            if (a->loss[i] > b->loss_best[i]) {
                b->loss_best[i] = a->loss[i];
                memcpy(b->best + off, b->adv + off, image * sizeof(float));
                memcpy(b->grad_best + off, a->grad + off, image * sizeof(float));
            }
        }
        if (++cp.counter < cp.interval)
            continue;
        /* checkpoint: count the loss increases over the last interval (the authors compare the
         * first one with the last slot of the loss history, which is still 0 there) */
        for (int i = 0; i < m; i++) {
            int increases = 0;
            for (int c = 0; c < cp.interval; c++) {
                int now = it - c, before = now - 1 < 0 ? iters - 1 : now - 1;
                increases += b->loss_steps[(size_t)now * a->max_batch + i] >
                             b->loss_steps[(size_t)before * a->max_batch + i];
            }
            bool oscillating = increases <= cp.interval * 0.75f;
            bool stalled = b->reduced_last[i] == 0.0f && b->loss_best_last[i] >= b->loss_best[i];
            bool reduce = oscillating || stalled;
            b->reduced_last[i] = reduce ? 1.0f : 0.0f;
            b->loss_best_last[i] = b->loss_best[i];
            if (reduce) {
                const size_t off = (size_t)i * image;
                b->step[i] /= 2.0f;
                memcpy(b->adv + off, b->best + off, image * sizeof(float));
                memcpy(a->grad + off, b->grad_best + off, image * sizeof(float));
            }
        }
        cp.interval = cp.interval - cp.decrease > cp.min_interval ? cp.interval - cp.decrease
                                                                   : cp.min_interval;
        cp.counter = 0;
    }
    return AT_OK;
}

static int apgd_run_targets(at_attack *a, const float *x, const int32_t *y, int n, float *x_adv,
                            bool targeted)
{
    const at_attack_options *o = &a->o;
    const size_t image = a->image;
    apgd_buffers b = carve(a);
    int32_t *index = b.index, *ys = index + a->max_batch, *ts = ys + a->max_batch;
    b.y = ys;
    b.target = ts;
    uint8_t *robust = (uint8_t *)(ts + a->max_batch);
    /* clean points that are already misclassified stay as they are */
    int status = at_attack_evaluate(a, x, x, y, NULL, n, AT_ATTACK_LOSS_CE, false, false);
    if (status)
        return status;
    memcpy(x_adv, x, (size_t)n * image * sizeof(float));
    for (int i = 0; i < n; i++)
        robust[i] = a->correct[i];
    const int rounds = targeted ? o->targets : 1;
    for (int round = 0; round < rounds; round++)
        for (int r = 0; r < o->restarts; r++) {
            int m = 0;
            for (int i = 0; i < n; i++)
                if (robust[i]) {
                    index[m] = i;
                    ys[m] = y[i];
                    memcpy(b.x + (size_t)m * image, x + (size_t)i * image, image * sizeof(float));
                    m++;
                }
            if (m == 0)
                return AT_OK;
            if (targeted) {
                status = at_attack_evaluate(a, b.x, b.x, ys, NULL, m, AT_ATTACK_LOSS_CE, false, false);
                if (status)
                    return status;
                for (int i = 0; i < m; i++)
                    ts[i] = at_attack_ranked_class(a->logits + (size_t)i * a->classes, a->classes, round + 2);
            }
            status = single_run(a, &b, m, targeted);
            if (status)
                return status;
            for (int i = 0; i < m; i++) {
                float *dst = x_adv + (size_t)index[i] * image;
                if (b.robust[i] == 0.0f) {
                    robust[index[i]] = 0;
                    memcpy(dst, b.best_adv + (size_t)i * image, image * sizeof(float));
                } else {
                    memcpy(dst, b.best + (size_t)i * image, image * sizeof(float));
                }
            }
        }
    return AT_OK;
}

/* The index arrays and the robust flags live after the six scalars: make room for them. */
static size_t apgd_workspace_all(const at_attack *a, size_t image)
{
    return apgd_workspace(a, image) + 4; /* index, label, target (int32) and flags per example */
}

static int apgd_untargeted(at_attack *a, const float *x, const int32_t *y, const int32_t *target,
                           int n, float *x_adv)
{
    return apgd_run_targets(a, x, y, n, x_adv, false);
}

static int apgd_targeted(at_attack *a, const float *x, const int32_t *y, const int32_t *target,
                         int n, float *x_adv)
{
    return apgd_run_targets(a, x, y, n, x_adv, true);
}

const at_attack_ops at_attack_apgd_ce = {
    .name = "apgd-ce",
    .description = "Auto-PGD on cross-entropy, step-size schedule and momentum (Croce and Hein, 2020)",
    .default_loss = AT_ATTACK_LOSS_CE,
    .default_steps = 100,
    .min_classes = 2,
    .workspace = apgd_workspace_all,
    .run = apgd_untargeted,
};

const at_attack_ops at_attack_apgd_dlr = {
    .name = "apgd-dlr",
    .description = "Auto-PGD on the difference-of-logits-ratio loss (Croce and Hein, 2020)",
    .default_loss = AT_ATTACK_LOSS_DLR,
    .default_steps = 100,
    .min_classes = 3,
    .workspace = apgd_workspace_all,
    .run = apgd_untargeted,
};

const at_attack_ops at_attack_apgd_t = {
    .name = "apgd-t",
    .description = "Auto-PGD, targeted DLR loss against each of the top 9 other classes (Croce and Hein, 2020)",
    .default_loss = AT_ATTACK_LOSS_DLR,
    .default_steps = 100,
    .needs_targets = true,
    .min_classes = 4,
    .workspace = apgd_workspace_all,
    .run = apgd_targeted,
};
