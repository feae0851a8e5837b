/* batch.c: composing what one training step sees: real images in the epoch's order (from the
 * whole training set or a weighted coreset pool), batch repetition, extra data, CutMix, OOD rows,
 * loss weights and per-example budgets (layout in batch.h). Every draw comes from a stream of
 * the run seed and the epoch number, one stream per purpose, so a resumed run composes the same
 * batches and turning one feature on does not change the randomness of another. */
#include "train/batch.h"

#include <math.h>
#include <string.h>

/* Purposes of the per-epoch random streams (see at_rng_stream); 1-4 are the trainer's. */
enum { STREAM_SHUFFLE = 1, STREAM_AUGMENT = 2, STREAM_EXTRA = 5, STREAM_CUTMIX = 6, STREAM_OOD = 7 };

struct at_batch_maker {
    const at_dataset *train;
    at_train_config c;
    int classes;
    size_t image;
    bool plain;             /* no repetition and no extra rows: the last batch is partial */
    int batch;              /* B */
    int groups, distinct;   /* K repetition groups of D images */
    int extra_rows, ood_rows;
    int rows;               /* the most rows of a batch */
    int32_t *pool;          /* training-set indices of the pool, or NULL: all of them */
    float *pool_weight;     /* or NULL: all 1 */
    int pool_n;
    int32_t *order, *extra_order;
    int32_t *idx;           /* [rows]: training-set index of each real row */
    int32_t *pos;           /* [rows]: pool position of each real row */
    float *x, *soft, *weight, *eps_rows, *scratch;
    int32_t *y, *iscratch;
    float *budget;          /* [N]: adaptive budgets */
    at_rng augment, cutmix, ood;
    int epoch;
    int made_distinct;      /* D of the batch made last */
};

static bool augmenting(const at_augment *a) { return a->crop_padding > 0 || a->hflip; }

void at_batch_maker_free(at_batch_maker *m)
{
    if (!m)
        return;
    at_free(m->pool);
    at_free(m->pool_weight);
    at_free(m->order);
    at_free(m->extra_order);
    at_free(m->idx);
    at_free(m->pos);
    at_free(m->x);
    at_free(m->soft);
    at_free(m->weight);
    at_free(m->eps_rows);
    at_free(m->scratch);
    at_free(m->y);
    at_free(m->iscratch);
    at_free(m->budget);
    at_free(m);
}

static bool same_shape(const at_dataset *a, const at_dataset *b)
{
    return a->c == b->c && a->h == b->h && a->w == b->w;
}

static int check(const at_dataset *train, const at_train_config *c, int classes, at_error *err)
{
    if (c->repeat < 0 || c->repeat > 64)
        return at_fail(err, AT_ERR_ARG, "repeat %d out of range 1..64", c->repeat);
    if (c->repeat > 1 && c->batch_size % c->repeat != 0 && !c->extra)
        return at_fail(err, AT_ERR_ARG, "batch size %d is not a multiple of repeat %d",
                       c->batch_size, c->repeat);
    if (!(c->cutmix_alpha >= 0.0f && c->cutmix_alpha <= 100.0f) || (c->cutmix_alpha && !c->cutmix))
        return at_fail(err, AT_ERR_ARG, "cutmix alpha %g needs cutmix and must be in [0, 100]",
                       c->cutmix_alpha);
    if (c->extra) {
        if (!same_shape(c->extra, train) || c->extra->n < 1)
            return at_fail(err, AT_ERR_SHAPE, "extra data %s has %d images of %dx%dx%d, the "
                           "training set %dx%dx%d", c->extra->name, c->extra->n, c->extra->c,
                           c->extra->h, c->extra->w, train->c, train->h, train->w);
        if (c->extra->num_classes > classes)
            return at_fail(err, AT_ERR_SHAPE, "extra data %s has %d classes, the model %d",
                           c->extra->name, c->extra->num_classes, classes);
        if (!(c->extra_ratio >= 0.0f && c->extra_ratio < 1.0f))
            return at_fail(err, AT_ERR_ARG, "extra ratio %g out of range [0, 1)", c->extra_ratio);
    } else if (c->extra_ratio != 0.0f || c->extra_smoothing != 0.0f) {
        return at_fail(err, AT_ERR_ARG, "extra ratio and smoothing need extra data");
    }
    if (!(c->extra_smoothing >= 0.0f && c->extra_smoothing <= 1.0f))
        return at_fail(err, AT_ERR_ARG, "extra smoothing %g out of range [0, 1]", c->extra_smoothing);
    if (c->ood == AT_OOD_NONE && (c->ood_weight != 0.0f || c->ood_batch != 0 || c->ood_data))
        return at_fail(err, AT_ERR_ARG, "ood weight and batch need an OOD source");
    if (c->ood == AT_OOD_DATA && (!c->ood_data || !same_shape(c->ood_data, train) || c->ood_data->n < 1))
        return at_fail(err, AT_ERR_SHAPE, "OOD data %s must hold images of the training set's "
                       "shape (%dx%dx%d)", c->ood_data ? c->ood_data->name : "(none)", train->c,
                       train->h, train->w);
    if (!(c->ood_weight >= 0.0f && c->ood_weight <= 1e6f) || c->ood_batch < 0 || c->ood_batch > 65536)
        return at_fail(err, AT_ERR_ARG, "ood weight must be in [0, 1e6] and ood batch in 0..65536");
    return AT_OK;
}

int at_batch_maker_create(at_batch_maker **out, const at_dataset *train,
                          const at_train_config *c, int classes, at_error *err)
{
    *out = NULL;
    int status = check(train, c, classes, err);
    if (status)
        return status;
    at_batch_maker *m = at_alloc(sizeof *m);
    if (!m)
        return at_fail(err, AT_ERR_NOMEM, "out of memory");
    m->train = train;
    m->c = *c;
    m->classes = classes;
    m->image = (size_t)train->c * train->h * train->w;
    m->groups = c->repeat > 1 ? c->repeat : 1;
    m->plain = m->groups == 1 && !(c->extra && c->extra_ratio > 0.0f);
    m->batch = m->plain && c->batch_size > train->n ? train->n : c->batch_size;
    if (c->extra) {
        /* E = round(R B) extra rows, at least one real image per group */
        long e = lround((double)c->extra_ratio * m->batch);
        if (e > m->batch - m->groups)
            e = m->batch - m->groups;
        e += (m->batch - e) % m->groups;
        m->extra_rows = (int)e;
    }
    m->distinct = (m->batch - m->extra_rows) / m->groups;
    m->ood_rows = c->ood == AT_OOD_NONE ? 0 : (c->ood_batch ? c->ood_batch : c->batch_size);
    m->rows = m->groups * m->distinct + m->extra_rows + m->ood_rows;
    m->pool_n = train->n;
    const size_t rows = (size_t)m->rows;
    m->order = at_alloc((size_t)train->n * sizeof(int32_t));
    m->idx = at_alloc(rows * sizeof(int32_t));
    m->pos = at_alloc(rows * sizeof(int32_t));
    m->y = at_alloc(rows * sizeof(int32_t));
    m->x = at_alloc(rows * m->image * sizeof(float));
    m->soft = at_alloc(rows * (size_t)classes * sizeof(float));
    m->weight = at_alloc(rows * sizeof(float));
    m->eps_rows = at_alloc(rows * sizeof(float));
    m->scratch = at_alloc(rows * (m->image + (size_t)classes) * sizeof(float));
    m->iscratch = at_alloc(2 * rows * sizeof(int32_t));
    if (c->extra)
        m->extra_order = at_alloc((size_t)c->extra->n * sizeof(int32_t));
    if (c->eps_schedule == AT_EPS_ADAPTIVE && (m->budget = at_alloc((size_t)train->n * sizeof(float))))
        for (int i = 0; i < train->n; i++)
            m->budget[i] = c->eps;
    if (!m->order || !m->idx || !m->pos || !m->y || !m->x || !m->soft || !m->weight ||
        !m->eps_rows || !m->scratch || !m->iscratch || (c->extra && !m->extra_order) ||
        (c->eps_schedule == AT_EPS_ADAPTIVE && !m->budget)) {
        at_batch_maker_free(m);
        return at_fail(err, AT_ERR_NOMEM, "out of memory for training batches");
    }
    *out = m;
    return AT_OK;
}

long at_batch_steps(const at_batch_maker *m) { return (m->pool_n + m->batch - 1) / m->batch; }
int at_batch_rows(const at_batch_maker *m) { return m->rows; }

long at_batch_epoch_images(const at_batch_maker *m)
{
    return m->plain ? m->pool_n : at_batch_steps(m) * m->batch;
}

int at_batch_set_pool(at_batch_maker *m, const int32_t *indices, const float *weights, int count,
                      at_error *err)
{
    at_free(m->pool);
    at_free(m->pool_weight);
    m->pool = NULL;
    m->pool_weight = NULL;
    m->pool_n = m->train->n;
    if (count == 0)
        return AT_OK;
    if (count < 0 || count > m->train->n)
        return at_fail(err, AT_ERR_ARG, "a pool of %d from %d images", count, m->train->n);
    m->pool = at_alloc((size_t)count * sizeof(int32_t));
    m->pool_weight = at_alloc((size_t)count * sizeof(float));
    if (!m->pool || !m->pool_weight)
        return at_fail(err, AT_ERR_NOMEM, "out of memory for the training pool");
    for (int i = 0; i < count; i++) {
        if (indices[i] < 0 || indices[i] >= m->train->n || !(weights[i] > 0.0f))
            return at_fail(err, AT_ERR_ARG, "pool entry %d: index %d, weight %g", i, indices[i],
                           weights[i]);
        m->pool[i] = indices[i];
        m->pool_weight[i] = weights[i];
    }
    m->pool_n = count;
    if (m->plain && m->batch > count)
        return at_fail(err, AT_ERR_ARG, "a pool of %d is smaller than a batch (%d)", count, m->batch);
    return AT_OK;
}

int at_batch_pool(const at_batch_maker *m, const int32_t **indices, const float **weights)
{
    *indices = m->pool;
    *weights = m->pool_weight;
    return m->pool ? m->pool_n : 0;
}

void at_batch_begin_epoch(at_batch_maker *m, int epoch)
{
    at_rng shuffle;
    m->epoch = epoch;
    at_rng_stream(&shuffle, m->c.seed, (uint64_t)epoch, STREAM_SHUFFLE);
    for (int i = 0; i < m->pool_n; i++)
        m->order[i] = i;
    at_rng_shuffle(&shuffle, m->order, (size_t)m->pool_n);
    if (m->c.extra) {
        at_rng_stream(&shuffle, m->c.seed, (uint64_t)epoch, STREAM_EXTRA);
        for (int i = 0; i < m->c.extra->n; i++)
            m->extra_order[i] = i;
        at_rng_shuffle(&shuffle, m->extra_order, (size_t)m->c.extra->n);
    }
    at_rng_stream(&m->augment, m->c.seed, (uint64_t)epoch, STREAM_AUGMENT);
    at_rng_stream(&m->cutmix, m->c.seed, (uint64_t)epoch, STREAM_CUTMIX);
    at_rng_stream(&m->ood, m->c.seed, (uint64_t)epoch, STREAM_OOD);
}

/* Target rows: one-hot, smoothed (extra rows), uniform (OOD rows). */
static void fill_targets(at_batch_maker *m, int real, int extra, int ood)
{
    const int k = m->classes;
    const float s = m->c.extra_smoothing;
    for (int i = 0; i < real + extra + ood; i++) {
        float *t = m->soft + (size_t)i * k;
        for (int j = 0; j < k; j++)
            t[j] = i >= real + extra ? 1.0f / k : (j == m->y[i] ? 1.0f : 0.0f);
        if (i >= real && i < real + extra && s > 0.0f)
            for (int j = 0; j < k; j++)
                t[j] = (1.0f - s) * t[j] + s / k;
    }
}

void at_batch_make(at_batch_maker *m, long b, float eps, at_batch *out)
{
    const at_train_config *c = &m->c;
    const int k = m->classes, K = m->groups;
    int d = m->distinct;
    if (m->plain && (long)m->pool_n - b * m->batch < d)
        d = (int)(m->pool_n - b * m->batch); /* the last, partial batch */
    const int real = K * d, extra = m->extra_rows, ood = m->ood_rows, n = real + extra + ood;
    m->made_distinct = d;
    for (int g = 0; g < d; g++) {
        int p = m->order[(b * m->distinct + g) % m->pool_n];
        for (int r = 0; r < K; r++) {
            m->pos[r * d + g] = p;
            m->idx[r * d + g] = m->pool ? m->pool[p] : p;
        }
    }
    const at_augment *aug = augmenting(&c->augment) ? &c->augment : NULL;
    at_dataset_batch(m->train, m->idx, real, m->x, m->y, aug, &m->augment);
    if (extra) {
        int32_t *eidx = m->idx + real; /* rows past `real` of idx are free */
        for (int e = 0; e < extra; e++)
            eidx[e] = m->extra_order[(b * extra + e) % c->extra->n];
        at_dataset_batch(c->extra, eidx, extra, m->x + (size_t)real * m->image, m->y + real, aug,
                         &m->augment);
    }
    if (ood) {
        at_ood_fill(c->ood, m->train, c->ood_data, ood, m->x + (size_t)(real + extra) * m->image,
                    &m->ood);
        for (int i = real + extra; i < n; i++)
            m->y[i] = 0;
    }
    const bool soft = c->cutmix || ood || (extra && c->extra_smoothing > 0.0f);
    if (soft)
        fill_targets(m, real, extra, ood);
    if (c->cutmix) {
        const int ch = m->train->c, h = m->train->h, w = m->train->w;
        for (int g = 0; g < K; g++)
            at_cutmix(m->x + (size_t)g * d * m->image, m->soft + (size_t)g * d * k, m->y + g * d, d,
                      k, ch, h, w, c->cutmix_alpha, &m->cutmix, m->scratch, m->iscratch);
        if (extra)
            at_cutmix(m->x + (size_t)real * m->image, m->soft + (size_t)real * k, m->y + real,
                      extra, k, ch, h, w, c->cutmix_alpha, &m->cutmix, m->scratch, m->iscratch);
    }
    /* loss weights: sum_i w_i l_i over the in-distribution weight sum, as factors of the
     * batch mean (1/n) sum_i weight_i l_i the losses compute */
    const bool weighted = m->pool_weight || ood;
    if (weighted) {
        double id_sum = 0.0;
        for (int i = 0; i < n; i++) {
            m->weight[i] = i < real ? (m->pool_weight ? m->pool_weight[m->pos[i]] : 1.0f)
                                    : (i < real + extra ? 1.0f : c->ood_weight);
            if (i < real + extra)
                id_sum += m->weight[i];
        }
        for (int i = 0; i < n; i++)
            m->weight[i] = (float)(m->weight[i] * n / id_sum);
    }
    if (m->budget)
        for (int i = 0; i < n; i++)
            m->eps_rows[i] = i < real ? m->budget[m->idx[i]] : eps;
    *out = (at_batch){.x = m->x, .y = m->y, .soft = soft ? m->soft : NULL,
                      .weight = weighted ? m->weight : NULL, .eps = m->budget ? m->eps_rows : NULL,
                      .n = n, .scored = real + extra, .first = 0, .total = n,
                      .total_scored = real + extra};
}

void at_batch_update_budgets(at_batch_maker *m, const uint8_t *correct)
{
    if (!m->budget)
        return;
    const float eps = m->c.eps, step = m->c.eps_rate * eps, lo = m->c.eps_min;
    /* each image once: its first copy, rows 0..D-1 of the batch made last */
    for (int g = 0; g < m->made_distinct; g++) {
        float *e = &m->budget[m->idx[g]];
        float v = *e + (correct[g] ? step : -step);
        *e = v < lo ? lo : (v > eps ? eps : v);
    }
}

float *at_batch_budgets(at_batch_maker *m, int *count)
{
    *count = m->budget ? m->train->n : 0;
    return m->budget;
}
