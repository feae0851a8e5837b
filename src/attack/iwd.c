/* iwd.c: the internal Wasserstein distance attack (Wang et al., "Internal Wasserstein Distance for
 * Adversarial Attack and Defense", arXiv 2103.07598, the IWD attack: fool the classifier while
 * staying close to the image in IWD, a semantic budget that allows larger pixel changes than an
 * Lp ball). No code was published; this is a reconstruction. From x plus uniform noise of 0.001
 * (none with no_random_start), `steps` ascent steps on
 *     J(x') = L(f(x'), y) - lambda S(x, x')        (L: CE or the CW margin, S: at_iwd_distance)
 * along the sign (Linf) or the normalised gradient (L2), each projected onto the pixel bound
 * ||x' - x|| <= eps (eps 1 with Linf: no bound) and [0,1]. The point returned is, among the
 * iterates (the start included) with S <= iwd_budget (any S when the budget is 0), the fooling
 * one of least IWD, or when none fools the model the one of highest loss L; x itself when no
 * iterate is within the budget. The patch positions of
 * each example are drawn once per run from its stream, so S is one function along the search.
 * The loss the statistics record per step is J. */
#include "attack/attack.h"

#include <math.h>
#include <string.h>

/* One distance (with its Sinkhorn buffers) per thread: the examples' distances run in parallel,
 * each example's on its own, so the result does not depend on the number of threads. */
typedef struct iwd_state {
    int threads;
    at_iwd **iwd;
} iwd_state;

static void iwd_free_state(void *p)
{
    iwd_state *s = p;
    if (!s)
        return;
    for (int t = 0; s->iwd && t < s->threads; t++)
        at_iwd_free(s->iwd[t]);
    at_free(s->iwd);
    at_free(s);
}

static int iwd_setup(at_attack *a, at_error *err)
{
    at_attack_options *o = &a->o;
    if (o->iwd_lambda == 0.0f)
        o->iwd_lambda = 10.0f;
    if (!(o->iwd_lambda > 0.0f) || !isfinite(o->iwd_lambda))
        return at_fail(err, AT_ERR_ARG, "iwd-lambda must be > 0 (got %g)", o->iwd_lambda);
    if (!(o->iwd_budget >= 0.0f) || !isfinite(o->iwd_budget))
        return at_fail(err, AT_ERR_ARG, "iwd-budget must be >= 0 (got %g)", o->iwd_budget);
    if (o->norm == AT_NORM_L1)
        return at_fail(err, AT_ERR_ARG, "iwd does not support the L1 norm");
    if (o->loss != AT_ATTACK_LOSS_CE && o->loss != AT_ATTACK_LOSS_CW)
        return at_fail(err, AT_ERR_ARG, "iwd: the loss must be ce or cw");
    iwd_state *s = at_alloc(sizeof *s);
    if (!s)
        return at_fail(err, AT_ERR_NOMEM, "out of memory");
    a->state = s;
    int c, h, w;
    at_model_input_shape(a->model, &c, &h, &w);
    s->threads = at_max_threads() > 0 ? at_max_threads() : 1;
    s->iwd = at_alloc((size_t)s->threads * sizeof(at_iwd *));
    if (!s->iwd)
        return at_fail(err, AT_ERR_NOMEM, "out of memory");
    for (int t = 0; t < s->threads; t++) {
        int status = at_iwd_create(&s->iwd[t], &o->iwd, c, h, w, err);
        if (status)
            return status;
    }
    o->iwd = *at_iwd_get_options(s->iwd[0]);
    return AT_OK;
}

/* current, best, direction, IWD gradient: one image each; then per example the self term of x,
 * the best point's IWD, loss and success, the IWD now, and its patch seed (6 doubles) */
static size_t iwd_workspace(const at_attack *a, size_t image)
{
    (void)a;
    return 4 * image + 6 * sizeof(double) / sizeof(float);
}

static int iwd_run(at_attack *a, const float *x, const int32_t *y, const int32_t *target, int n,
                   float *x_adv)
{
    const at_attack_options *o = &a->o;
    at_iwd *const *iwd = ((iwd_state *)a->state)->iwd;
    const size_t image = a->image, count = (size_t)n * image, stride = (size_t)a->max_batch * image;
    float *cur = a->work, *best = cur + stride, *dir = best + stride, *ig = dir + stride;
    double *per = (double *)(void *)(ig + stride); /* 4 image floats: 8-byte aligned */
    double *self = per, *best_s = self + a->max_batch, *best_l = best_s + a->max_batch;
    double *best_ok = best_l + a->max_batch, *s_now = best_ok + a->max_batch;
    uint64_t *seed = (uint64_t *)(void *)(s_now + a->max_batch);
    /* threads only for enough work: a parallel region costs more than a tiny Sinkhorn */
    const int patches = at_iwd_patches(iwd[0]);
    const bool parallel = (double)n * patches * patches * o->iwd.iters > 4e6;
    for (int i = 0; i < n; i++) {
        seed[i] = at_rng_next(&a->rngs[i]);
        best_ok[i] = -1.0; /* no candidate yet */
    }
#pragma omp parallel for schedule(dynamic) if (parallel)
    for (int i = 0; i < n; i++)
        self[i] = at_iwd_self(iwd[at_thread_id()], x + (size_t)i * image, seed[i]);
    memcpy(cur, x, count * sizeof(float));
    if (!o->no_random_start)
        for (int i = 0; i < n; i++)
            for (size_t j = 0; j < image; j++) {
                float *v = cur + (size_t)i * image + j;
                *v = fminf(fmaxf(*v + 0.001f * (2.0f * (float)at_rng_uniform(&a->rngs[i]) - 1.0f),
                                 0.0f), 1.0f);
            }
    for (int t = 0; t <= o->steps; t++) {
        const bool ascend = t < o->steps;
        int status = at_attack_evaluate(a, x, cur, y, target, n, o->loss, o->targeted, ascend);
        if (status)
            return status;
#pragma omp parallel for schedule(dynamic) if (parallel)
        for (int i = 0; i < n; i++)
            s_now[i] = at_iwd_divergence(iwd[at_thread_id()], x + (size_t)i * image, self[i],
                                         cur + (size_t)i * image, seed[i],
                                         ascend ? ig + (size_t)i * image : NULL);
        for (int i = 0; i < n; i++) {
            const float *ci = cur + (size_t)i * image;
            const double s = s_now[i];
            if (!isfinite(s))
                return AT_ERR_NUMERIC;
            /* the candidate: within the budget, fooling with less IWD, or a higher loss */
            const bool ok = at_attack_succeeded(a, i, y, target);
            const double l = a->loss[i];
            const bool in = o->iwd_budget == 0.0f || s <= o->iwd_budget;
            const bool better = best_ok[i] < 0.0 || (ok && (best_ok[i] == 0.0 || s < best_s[i])) ||
                                (!ok && best_ok[i] == 0.0 && l > best_l[i]);
            if (in && better) {
                memcpy(best + (size_t)i * image, ci, image * sizeof(float));
                best_s[i] = s;
                best_l[i] = l;
                best_ok[i] = ok ? 1.0 : 0.0;
            }
            a->loss[i] -= (float)(o->iwd_lambda * s); /* the objective J, for the statistics */
        }
        at_attack_record_loss(a, t, n);
        if (!ascend)
            break;
        for (size_t j = 0; j < count; j++)
            a->grad[j] -= o->iwd_lambda * ig[j];
        at_attack_direction(o->norm, a->grad, dir, n, image);
        for (size_t j = 0; j < count; j++)
            cur[j] += o->step_size * dir[j];
        at_attack_project(o->norm, o->eps, a->eps_each, x, cur, n, image, a->scratch);
    }
    for (int i = 0; i < n; i++) {
        if (best_ok[i] < 0.0) { /* nothing evaluated within the budget: x itself (S = 0) */
            memcpy(best + (size_t)i * image, x + (size_t)i * image, image * sizeof(float));
            best_s[i] = 0.0;
        }
        at_attack_stats *st = &a->stats;
        st->iwd_points++;
        st->iwd_sum += best_s[i];
        st->iwd_max = best_s[i] > st->iwd_max ? best_s[i] : st->iwd_max;
        st->iwd_over_budget += o->iwd_budget > 0.0f && best_s[i] > o->iwd_budget;
    }
    memcpy(x_adv, best, count * sizeof(float));
    return AT_OK;
}

const at_attack_ops at_attack_iwd = {
    .name = "iwd",
    .description = "internal Wasserstein distance attack: loss - lambda IWD(x, x') by Sinkhorn on "
                   "patches (Wang et al., 2021; reconstruction)",
    .default_loss = AT_ATTACK_LOSS_CE,
    .default_steps = 20,
    .min_classes = 2,
    .workspace = iwd_workspace,
    .setup = iwd_setup,
    .free_state = iwd_free_state,
    .run = iwd_run,
};
