/* square.c: the Square attack (Andriushchenko, Croce, Flammarion and Hein, "Square Attack: a
 * query-efficient black-box adversarial attack via random search", ECCV 2020, Algorithms 1-3),
 * Linf and L2, as in the authors' code. A random search that sees only the model's logits:
 *   start: Linf, vertical stripes x +- eps (one sign per channel and column); L2, a grid of
 *   bumps of side h/5 with random signs, rescaled to ||delta||_2 = eps;
 *   each iteration proposes a change to one random s x s window, s = round(sqrt(p h w)), with p
 *   halved after 10, 50, 200, 500, 1000, 2000, 4000, 6000 and 8000 of every 10000 queries:
 *   Linf, the window becomes x +- eps with a new random sign per channel; L2, a centred bump with
 *   a random sign per channel is added to the window, the mass of a second window is moved into
 *   it, and delta is rescaled to ||delta||_2 = eps;
 *   a proposal is kept when it raises the attack loss (the default CW loss is minus the margin
 *   z_y - max_{i != y} z_i; targeted, z_t - max_{i != t} z_i) or reaches misclassification
 *   (the target); an example stops searching as soon as it does.
 * Each iteration is one forward pass over the examples still searched, compacted into one batch.
 * `queries` bounds the forward passes per example and restart, the clean check included in the
 * first. Restarts run again on the points still robust; the highest-loss point is kept. */
#include "attack/attack.h"

#include <math.h>
#include <string.h>

/* Per example: clean x, best point and proposal (images, rows compacted to the examples still
 * searched), and seven scalars: the restart's best loss, the loss of the returned point, and
 * five int32 slots (restart members, example of each row, label and target of each row, and
 * whether the example is still robust). */
static size_t square_workspace(const at_attack *a, size_t image) { return 3 * image + 7; }

typedef struct square_buffers {
    float *clean, *best, *proposal; /* [max_batch, image], row j = example active[j] */
    float *loss_now;                /* by example: the best loss of this restart */
    float *loss_kept;               /* by example: the loss of the point in x_adv */
    int32_t *members;               /* the examples of this restart, in order */
    int32_t *active;                /* the example of each row */
    int32_t *labels, *targets;      /* of each row, as at_attack_evaluate wants them */
    int32_t *robust;                /* by example: not fooled yet */
} square_buffers;

static square_buffers carve(at_attack *a)
{
    const size_t stride = (size_t)a->max_batch * a->image;
    const int mb = a->max_batch;
    square_buffers b;
    b.clean = a->work;
    b.best = b.clean + stride;
    b.proposal = b.best + stride;
    b.loss_now = b.proposal + stride;
    b.loss_kept = b.loss_now + mb;
    /* int32 and float have the same size: the last five scalar slots hold the index arrays */
    b.members = (int32_t *)(b.loss_kept + mb);
    b.active = b.members + mb;
    b.labels = b.active + mb;
    b.targets = b.labels + mb;
    b.robust = b.targets + mb;
    return b;
}

/* Success as the framework judges it (first largest logit, like at_count_correct): any other
 * class than the label, or the target when targeted. */
static bool succeeded(const at_attack *a, int row, int32_t label, int32_t target)
{
    const float *z = a->logits + (size_t)row * a->classes;
    int best = 0;
    for (int j = 1; j < a->classes; j++)
        if (z[j] > z[best])
            best = j;
    return a->o.targeted ? best == target : best != label;
}

/* The authors' schedule of p for a budget of `queries`, rescaled to 10000 queries. */
static double p_schedule(double p_init, long iter, long queries)
{
    static const int halvings[9] = {10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000};
    const long long it = (long long)iter * 10000 / queries;
    double p = p_init;
    for (int k = 0; k < 9 && it > halvings[k]; k++)
        p /= 2.0;
    return p;
}

/* Linf window side: round(sqrt(p h w)) (Python's round, half to even), at least 1 and, as the
 * authors, at most one less than the image so the window keeps room to move. */
static int side_linf(double p, int h, int w)
{
    int s = (int)nearbyint(sqrt(p * h * w));
    int most = (h < w ? h : w) - 1;
    s = s > most ? most : s;
    return s < 1 ? 1 : s;
}

/* L2 window side: at least 3 and odd so the bump has a centre; capped at the image (the authors'
 * code fails when the odd side outgrows a tiny image). */
static int side_l2(double p, int h, int w)
{
    int s = (int)nearbyint(sqrt(p * h * w));
    s = s < 3 ? 3 : s;
    s += s % 2 == 0;
    int most = h < w ? h : w;
    return s > most ? most : s;
}

static float clamp01(float v) { return v < 0.0f ? 0.0f : (v > 1.0f ? 1.0f : v); }

static float random_sign(at_rng *rng) { return at_rng_below(rng, 2) ? 1.0f : -1.0f; }

/* One half of the authors' bump on a rows x cols block (row stride `stride`): concentric
 * rectangles around the centre, the r-th adding 1/(r+1)^2, so the mass falls off like a
 * Gaussian; unit L2 norm times `sign`. */
static void bump_half(float *out, int stride, int rows, int cols, float sign)
{
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++)
            out[r * stride + c] = 0.0f;
    const int top0 = rows / 2, left0 = cols / 2;
    const int rings = (rows / 2 > cols / 2 ? rows / 2 : cols / 2) + 1;
    for (int k = 0; k < rings; k++) {
        int top = top0 - k, left = left0 - k;
        int r0 = top > 0 ? top : 0, c0 = left > 0 ? left : 0;
        int r1 = top + 2 * k + 1 < rows ? top + 2 * k + 1 : rows;
        int c1 = left + 2 * k + 1 < cols ? left + 2 * k + 1 : cols;
        float add = 1.0f / (float)((k + 1) * (k + 1));
        for (int r = r0; r < r1; r++)
            for (int c = c0; c < c1; c++)
                out[r * stride + c] += add;
    }
    double sq = 0.0;
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++)
            sq += (double)out[r * stride + c] * out[r * stride + c];
    float scale = sq > 0.0 ? (float)(sign / sqrt(sq)) : 0.0f;
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++)
            out[r * stride + c] *= scale;
}

/* The authors' s x s L2 proposal shape: positive rectangles in the upper half, negative in the
 * lower half, unit L2 norm, transposed with probability 1/2. */
static void make_bump(float *eta, int s, at_rng *rng)
{
    bump_half(eta, s, s / 2, s, 1.0f);
    bump_half(eta + (size_t)(s / 2) * s, s, s - s / 2, s, -1.0f);
    double sq = 0.0;
    for (int j = 0; j < s * s; j++)
        sq += (double)eta[j] * eta[j];
    float scale = sq > 0.0 ? (float)(1.0 / sqrt(sq)) : 0.0f;
    for (int j = 0; j < s * s; j++)
        eta[j] *= scale;
    if (at_rng_uniform(rng) > 0.5)
        for (int r = 0; r < s; r++)
            for (int c = r + 1; c < s; c++) {
                float t = eta[r * s + c];
                eta[r * s + c] = eta[c * s + r];
                eta[c * s + r] = t;
            }
}

/* delta (in v) -> clamp(x + eps delta / ||delta||_2, 0, 1), as the authors, then pulled into the
 * ball should float rounding have put it an ulp outside. */
static void l2_point(const float *x, float *v, float eps, size_t image, float *scratch)
{
    double sq = 0.0;
    for (size_t j = 0; j < image; j++)
        sq += (double)v[j] * v[j];
    float scale = (float)(eps / (sqrt(sq) + 1e-12));
    for (size_t j = 0; j < image; j++)
        v[j] = clamp01(x[j] + v[j] * scale);
    at_attack_project(AT_NORM_L2, eps, NULL, x, v, 1, image, scratch);
}

static void init_linf(const at_attack *a, const float *x, float *out, int h, int w, at_rng *rng)
{
    const size_t plane = (size_t)h * w;
    const int channels = (int)(a->image / plane);
    for (int ch = 0; ch < channels; ch++)
        for (int col = 0; col < w; col++) {
            float step = random_sign(rng) * a->o.eps;
            for (int row = 0; row < h; row++) {
                size_t j = ch * plane + (size_t)row * w + col;
                out[j] = clamp01(x[j] + step);
            }
        }
}

/* A grid of bumps of side h/5 (starting (h - 5 side)/2 in, as the authors), each with a random
 * sign per channel, rescaled to the sphere. */
static void init_l2(at_attack *a, const float *x, float *out, int h, int w, at_rng *rng)
{
    const size_t plane = (size_t)h * w;
    const int channels = (int)(a->image / plane);
    int s = h / 5 > 1 ? h / 5 : 1;
    s = s > w ? w : s; /* a bump must fit the scratch image (tall, narrow inputs) */
    const int start = h - 5 * s > 0 ? (h - 5 * s) / 2 : 0;
    float *eta = a->scratch; /* s * s <= h * w floats */
    memset(out, 0, a->image * sizeof(float));
    for (int bi = 0, top = start; bi < h / s; bi++, top += s)
        for (int bj = 0, left = start; bj < w / s; bj++, left += s) {
            make_bump(eta, s, rng);
            for (int ch = 0; ch < channels; ch++) {
                float sign = random_sign(rng);
                for (int r = 0; r < s && top + r < h; r++)
                    for (int c = 0; c < s && left + c < w; c++)
                        out[ch * plane + (size_t)(top + r) * w + left + c] += sign * eta[r * s + c];
            }
        }
    l2_point(x, out, a->o.eps, a->image, a->scratch);
}

/* Linf proposal: the best point with one s x s window set to x +- eps, one sign per channel;
 * redrawn (as the authors) while the window would not change, which would waste a query. */
static void propose_linf(const at_attack *a, const float *x, const float *best, float *out,
                         double p, int h, int w, at_rng *rng)
{
    const size_t plane = (size_t)h * w;
    const int channels = (int)(a->image / plane);
    const int s = side_linf(p, h, w);
    const int top = (int)at_rng_below(rng, (uint32_t)(h - s + 1));
    const int left = (int)at_rng_below(rng, (uint32_t)(w - s + 1));
    memcpy(out, best, a->image * sizeof(float));
    /* bounded: where eps is below float resolution no sign changes anything */
    for (int attempt = 0; attempt < 64; attempt++) {
        bool changed = false;
        for (int ch = 0; ch < channels; ch++) {
            float step = random_sign(rng) * a->o.eps;
            for (int r = top; r < top + s; r++)
                for (int c = left; c < left + s; c++) {
                    size_t j = ch * plane + (size_t)r * w + c;
                    out[j] = clamp01(x[j] + step);
                    changed |= out[j] != best[j];
                }
        }
        if (changed)
            break;
    }
}

/* L2 proposal (Algorithm 3): per channel, window 1 gets a random-signed bump plus its own
 * normalised content, scaled to the mass it and window 2 held plus a share of the unused budget;
 * window 2 (outside window 1) is emptied; then delta is rescaled to the sphere. */
static void propose_l2(at_attack *a, const float *x, const float *best, float *out, double p,
                       int h, int w, at_rng *rng)
{
    const size_t plane = (size_t)h * w, image = a->image;
    const int channels = (int)(image / plane);
    const int s = side_l2(p, h, w);
    const int top1 = (int)at_rng_below(rng, (uint32_t)(h - s + 1));
    const int left1 = (int)at_rng_below(rng, (uint32_t)(w - s + 1));
    const int top2 = (int)at_rng_below(rng, (uint32_t)(h - s + 1));
    const int left2 = (int)at_rng_below(rng, (uint32_t)(w - s + 1));
    double total = 0.0;
    for (size_t j = 0; j < image; j++) {
        out[j] = best[j] - x[j];
        total += (double)out[j] * out[j];
    }
    const double eps = a->o.eps;
    const double unused = eps * eps - total > 0.0 ? (eps * eps - total) / channels : 0.0;
    float *eta = a->scratch; /* s * s <= h * w floats */
    make_bump(eta, s, rng);
    for (int ch = 0; ch < channels; ch++) {
        float *d = out + ch * plane;
        const float sign = random_sign(rng);
        double in1 = 0.0, in2 = 0.0; /* squared mass in window 1, and in window 2 outside it */
        for (int r = top1; r < top1 + s; r++)
            for (int c = left1; c < left1 + s; c++)
                in1 += (double)d[r * w + c] * d[r * w + c];
        for (int r = top2; r < top2 + s; r++)
            for (int c = left2; c < left2 + s; c++) {
                bool in_window1 = r >= top1 && r < top1 + s && c >= left1 && c < left1 + s;
                if (!in_window1)
                    in2 += (double)d[r * w + c] * d[r * w + c];
            }
        const double inv1 = 1.0 / (sqrt(in1) + 1e-12);
        double sq = 0.0;
        for (int r = 0; r < s; r++)
            for (int c = 0; c < s; c++) {
                double t = sign * eta[r * s + c] + d[(top1 + r) * w + left1 + c] * inv1;
                sq += t * t;
            }
        const double scale = sqrt(unused + in1 + in2) / (sqrt(sq) + 1e-12);
        for (int r = 0; r < s; r++)
            for (int c = 0; c < s; c++) {
                float *v = &d[(top1 + r) * w + left1 + c];
                *v = (float)((sign * eta[r * s + c] + *v * inv1) * scale);
            }
        for (int r = top2; r < top2 + s; r++)
            for (int c = left2; c < left2 + s; c++)
                if (!(r >= top1 && r < top1 + s && c >= left1 && c < left1 + s))
                    d[r * w + c] = 0.0f;
    }
    l2_point(x, out, a->o.eps, image, a->scratch);
}

/* Takes the evaluation of rows 0..active-1: keeps improving proposals (all of them when `first`,
 * the starting points), hands fooled examples to x_adv and drops them from the rows. Returns the
 * number of rows still searched. */
static int update_rows(at_attack *a, square_buffers *b, int active, bool first, float *x_adv)
{
    const size_t image = a->image, bytes = image * sizeof(float);
    for (int j = 0; j < active; j++) {
        const int i = b->active[j];
        const bool fooled = succeeded(a, j, b->labels[j], b->targets[j]);
        const float *proposal = b->proposal + (size_t)j * image;
        if (first || fooled || a->loss[j] > b->loss_now[i]) {
            b->loss_now[i] = a->loss[j];
            memcpy(b->best + (size_t)j * image, proposal, bytes);
        }
        if (fooled) {
            b->robust[i] = 0;
            b->loss_kept[i] = a->loss[j];
            memcpy(x_adv + (size_t)i * image, proposal, bytes);
        }
    }
    int kept = 0;
    for (int j = 0; j < active; j++) {
        if (!b->robust[b->active[j]])
            continue;
        if (kept != j) {
            memcpy(b->clean + (size_t)kept * image, b->clean + (size_t)j * image, bytes);
            memcpy(b->best + (size_t)kept * image, b->best + (size_t)j * image, bytes);
            b->active[kept] = b->active[j];
            b->labels[kept] = b->labels[j];
            b->targets[kept] = b->targets[j];
        }
        kept++;
    }
    return kept;
}

/* The mean best loss of the restart's examples (fooled ones at the point that fooled them). */
static void record(at_attack *a, const square_buffers *b, int members, int slot)
{
    for (int k = 0; k < members; k++)
        a->loss[k] = b->loss_now[b->members[k]];
    at_attack_record_loss(a, slot, members);
}

static int square_run(at_attack *a, const float *x, const int32_t *y, const int32_t *target, int n,
                      float *x_adv)
{
    const at_attack_options *o = &a->o;
    const size_t image = a->image;
    const int32_t *targets_in = o->targeted ? target : NULL;
    square_buffers b = carve(a);
    int c, h, w;
    at_model_input_shape(a->model, &c, &h, &w);

    /* points already misclassified (or at their target) are returned as they are */
    memcpy(x_adv, x, (size_t)n * image * sizeof(float));
    int status = at_attack_evaluate(a, x, x, y, targets_in, n, o->loss, o->targeted, false);
    if (status)
        return status;
    for (int i = 0; i < n; i++) {
        b.robust[i] = !succeeded(a, i, y[i], targets_in ? targets_in[i] : -1);
        b.loss_kept[i] = -INFINITY;
    }

    for (int restart = 0; restart < o->restarts; restart++) {
        const long budget = o->queries - (restart == 0); /* the clean check spent one */
        if (budget < 1)
            continue;
        int members = 0;
        for (int i = 0; i < n; i++)
            if (b.robust[i]) {
                b.members[members] = i;
                b.active[members] = i;
                b.labels[members] = y[i];
                b.targets[members] = targets_in ? targets_in[i] : -1;
                memcpy(b.clean + (size_t)members * image, x + (size_t)i * image,
                       image * sizeof(float));
                members++;
            }
        if (members == 0)
            break;
        for (int j = 0; j < members; j++) {
            float *start = b.proposal + (size_t)j * image;
            const float *xj = b.clean + (size_t)j * image;
            if (o->norm == AT_NORM_LINF)
                init_linf(a, xj, start, h, w, &a->rngs[b.active[j]]);
            else
                init_l2(a, xj, start, h, w, &a->rngs[b.active[j]]);
        }
        status = at_attack_evaluate(a, b.clean, b.proposal, b.labels,
                                    targets_in ? b.targets : NULL, members, o->loss, o->targeted,
                                    false);
        if (status)
            return status;
        int active = update_rows(a, &b, members, true, x_adv);
        record(a, &b, members, 0);

        /* budget - 1 proposals; their losses recorded at a stride that fits the statistics */
        const long proposals = budget - 1;
        const long slots = proposals < AT_STATS_MAX_STEPS ? proposals : AT_STATS_MAX_STEPS;
        long last_slot = 0;
        for (long it = 1; it <= proposals; it++) {
            if (active > 0) {
                const double p = p_schedule(o->p_init, it - 1, o->queries);
                for (int j = 0; j < active; j++) {
                    const float *xj = b.clean + (size_t)j * image;
                    const float *best = b.best + (size_t)j * image;
                    float *out = b.proposal + (size_t)j * image;
                    at_rng *rng = &a->rngs[b.active[j]];
                    if (o->norm == AT_NORM_LINF)
                        propose_linf(a, xj, best, out, p, h, w, rng);
                    else
                        propose_l2(a, xj, best, out, p, h, w, rng);
                }
                status = at_attack_evaluate(a, b.clean, b.proposal, b.labels,
                                            targets_in ? b.targets : NULL, active, o->loss,
                                            o->targeted, false);
                if (status)
                    return status;
                active = update_rows(a, &b, active, false, x_adv);
            }
            const long slot = it * slots / proposals;
            if (slot != last_slot) {
                record(a, &b, members, (int)slot);
                last_slot = slot;
            }
        }
        /* still robust: keep this restart's best point if it beats the earlier ones */
        for (int j = 0; j < active; j++) {
            const int i = b.active[j];
            if (b.loss_now[i] > b.loss_kept[i]) {
                b.loss_kept[i] = b.loss_now[i];
                memcpy(x_adv + (size_t)i * image, b.best + (size_t)j * image,
                       image * sizeof(float));
            }
        }
    }
    return AT_OK;
}

const at_attack_ops at_attack_square = {
    .name = "square",
    .description = "Square attack: black-box random search over square windows, Linf/L2 "
                   "(Andriushchenko et al., 2020)",
    .default_loss = AT_ATTACK_LOSS_CW,
    .min_classes = 2,
    .supports_l1 = false,
    .gradient_free = true,
    .workspace = square_workspace,
    .run = square_run,
};
