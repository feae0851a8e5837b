/* robust_eval.c: the evaluation cascade. For each batch of points: the clean prediction (batch
 * norm in eval mode); then each attack in turn on the points still classified correctly, judged
 * by the model in eval mode. A point is robust only if it survives every attack: the per-point
 * worst case over the suite, as in AutoAttack (Croce and Hein, ICML 2020). The judge's outputs
 * are also binned for calibration: on the clean inputs, and on each point's final input of the
 * cascade (kept as the judge's logits, so no extra forward pass is needed). */
#include "core/util.h"

#include <string.h>
#include <time.h>

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

void at_attack_stats_merge(at_attack_stats *into, const at_attack_stats *from)
{
    into->points += from->points;
    into->fooled += from->fooled;
    into->max_linf = from->max_linf > into->max_linf ? from->max_linf : into->max_linf;
    into->max_l2 = from->max_l2 > into->max_l2 ? from->max_l2 : into->max_l2;
    into->max_l1 = from->max_l1 > into->max_l1 ? from->max_l1 : into->max_l1;
    into->out_of_range += from->out_of_range;
    into->eval_max_linf = from->eval_max_linf > into->eval_max_linf ? from->eval_max_linf : into->eval_max_linf;
    into->eval_max_l2 = from->eval_max_l2 > into->eval_max_l2 ? from->eval_max_l2 : into->eval_max_l2;
    into->eval_max_l1 = from->eval_max_l1 > into->eval_max_l1 ? from->eval_max_l1 : into->eval_max_l1;
    into->eval_out_of_range += from->eval_out_of_range;
    into->nonfinite_outputs += from->nonfinite_outputs;
    into->gradient_evals += from->gradient_evals;
    into->forward_evals += from->forward_evals;
    into->zero_gradients += from->zero_gradients;
    into->nonfinite_gradients += from->nonfinite_gradients;
    into->max_latent_linf = from->max_latent_linf > into->max_latent_linf ? from->max_latent_linf : into->max_latent_linf;
    into->max_pixel_linf = from->max_pixel_linf > into->max_pixel_linf ? from->max_pixel_linf : into->max_pixel_linf;
    into->max_reconstruction = from->max_reconstruction > into->max_reconstruction ? from->max_reconstruction : into->max_reconstruction;
    into->bn_mode = from->bn_mode;
    into->iwd_points += from->iwd_points;
    into->iwd_sum += from->iwd_sum;
    into->iwd_max = from->iwd_max > into->iwd_max ? from->iwd_max : into->iwd_max;
    into->iwd_over_budget += from->iwd_over_budget;
    into->steps = from->steps > into->steps ? from->steps : into->steps;
    for (int t = 0; t <= AT_STATS_MAX_STEPS; t++) {
        into->loss_sum[t] += from->loss_sum[t];
        into->loss_count[t] += from->loss_count[t];
    }
}

void at_eval_result_free(at_eval_result *r)
{
    if (r) {
        at_free(r->outcome);
        r->outcome = NULL;
        at_calibration_free(&r->clean_calibration);
        at_calibration_free(&r->adversarial_calibration);
    }
}

typedef struct eval_buffers {
    float *x, *sub_x, *adv;
    float *final_logits; /* [batch, k]: the judge's logits at each point's latest input */
    int32_t *y, *sub_y, *index, *idx;
    uint64_t *seeds;
    uint8_t *fooled, *correct;
} eval_buffers;

static void free_buffers(eval_buffers *b)
{
    at_free(b->x);
    at_free(b->sub_x);
    at_free(b->adv);
    at_free(b->final_logits);
    at_free(b->y);
    at_free(b->sub_y);
    at_free(b->index);
    at_free(b->idx);
    at_free(b->seeds);
    at_free(b->fooled);
    at_free(b->correct);
}

/* The model's verdict on x (eval mode): 1 where it predicts y. */
static int judge(at_pass *pass, const float *x, const int32_t *y, int n, int k, uint8_t *correct)
{
    int status = at_forward(pass, x, n, AT_BN_EVAL);
    if (status)
        return status;
    at_count_correct(at_pass_logits(pass), n, k, y, correct);
    return AT_OK;
}

int at_eval_robust(at_model *model, const at_dataset *ds, const at_eval_plan *plan,
                   at_eval_result *r, at_eval_progress progress, void *user, at_error *err)
{
    memset(r, 0, sizeof *r);
    if (plan->n_attacks < 0 || plan->n_attacks > AT_EVAL_MAX_ATTACKS)
        return at_fail(err, AT_ERR_ARG, "at most %d attacks in a cascade", AT_EVAL_MAX_ATTACKS);
    int c, h, w;
    at_model_input_shape(model, &c, &h, &w);
    if (ds->c != c || ds->h != h || ds->w != w)
        return at_fail(err, AT_ERR_SHAPE, "model %s takes %dx%dx%d inputs but %s has %dx%dx%d images",
                       at_model_arch(model), c, h, w, ds->name, ds->c, ds->h, ds->w);
    at_model *crafter = plan->surrogate ? plan->surrogate : model;
    if (plan->surrogate) {
        int sc, sh, sw;
        at_model_input_shape(plan->surrogate, &sc, &sh, &sw);
        if (sc != c || sh != h || sw != w ||
            at_model_num_classes(plan->surrogate) != at_model_num_classes(model))
            return at_fail(err, AT_ERR_SHAPE, "the surrogate model must take the same inputs and "
                                              "classes as the evaluated one");
    }
    const int k = at_model_num_classes(model);
    if (plan->first_point < 0 || plan->first_point >= ds->n)
        return at_fail(err, AT_ERR_ARG, "%s: first point %ld outside its %d examples", ds->name,
                       plan->first_point, ds->n);
    const long start = plan->first_point, available = ds->n - start;
    const long total = plan->points > 0 && plan->points < available ? plan->points : available;
    const int batch = (int)(plan->batch_size > 0 ? (plan->batch_size < total ? plan->batch_size : total)
                                                 : (250 < total ? 250 : total));
    const size_t image = (size_t)c * h * w;
    if (total < 1)
        return at_fail(err, AT_ERR_ARG, "%s: no points to evaluate", ds->name);

    at_attack *attacks[AT_EVAL_MAX_ATTACKS] = {NULL};
    at_pass *pass = NULL;
    eval_buffers b = {0};
    int status = at_pass_create(&pass, model, batch, AT_PASS_FORWARD_ONLY, err);
    for (int a = 0; a < plan->n_attacks && !status; a++)
        status = at_attack_create(&attacks[a], plan->attacks[a], crafter, batch, &plan->options[a],
                                  err);
    if (status)
        goto done;
    b.x = at_alloc((size_t)batch * image * sizeof(float));
    b.sub_x = at_alloc((size_t)batch * image * sizeof(float));
    b.adv = at_alloc((size_t)batch * image * sizeof(float));
    b.final_logits = at_alloc((size_t)batch * k * sizeof(float));
    b.y = at_alloc((size_t)batch * sizeof(int32_t));
    b.sub_y = at_alloc((size_t)batch * sizeof(int32_t));
    b.index = at_alloc((size_t)batch * sizeof(int32_t));
    b.idx = at_alloc((size_t)batch * sizeof(int32_t));
    b.seeds = at_alloc((size_t)batch * sizeof(uint64_t));
    b.fooled = at_alloc((size_t)batch);
    b.correct = at_alloc((size_t)batch);
    r->outcome = at_alloc((size_t)total);
    if (!b.x || !b.sub_x || !b.adv || !b.final_logits || !b.y || !b.sub_y || !b.index || !b.idx ||
        !b.seeds || !b.fooled || !b.correct || !r->outcome) {
        status = at_fail(err, AT_ERR_NOMEM, "out of memory for the evaluation");
        goto done;
    }
    const int bins = plan->calibration_bins ? plan->calibration_bins : AT_CALIBRATION_DEFAULT_BINS;
    if ((status = at_calibration_init(&r->clean_calibration, bins, err)) ||
        (plan->n_attacks > 0 &&
         (status = at_calibration_init(&r->adversarial_calibration, bins, err))))
        goto done;
    r->points = total;
    for (long first = 0; first < total; first += batch) {
        const int n = (int)(total - first < batch ? total - first : batch);
        for (int i = 0; i < n; i++)
            b.idx[i] = (int32_t)(start + first + i);
        at_dataset_batch(ds, b.idx, n, b.x, b.y, NULL, NULL);
        double t0 = now_seconds();
        if ((status = judge(pass, b.x, b.y, n, k, b.correct)))
            goto failed_forward;
        r->clean_seconds += now_seconds() - t0;
        memcpy(b.final_logits, at_pass_logits(pass), (size_t)n * k * sizeof(float));
        if ((status = at_calibration_add_logits(&r->clean_calibration, b.final_logits, n, k, b.y,
                                                err)))
            goto done;
        for (int i = 0; i < n; i++) {
            r->outcome[first + i] = b.correct[i] ? -1 : -2;
            r->clean_correct += b.correct[i];
        }
        for (int a = 0; a < plan->n_attacks; a++) {
            int m = 0;
            for (int i = 0; i < n; i++)
                if (r->outcome[first + i] == -1) {
                    b.index[m] = i;
                    b.sub_y[m] = b.y[i];
                    memcpy(b.sub_x + (size_t)m * image, b.x + (size_t)i * image, image * sizeof(float));
                    /* each point has its own stream per attack: results ignore batching */
                    at_attack_seeds(plan->seed + 0x9e3779b97f4a7c15ull * (uint64_t)(a + 1),
                                    start + first + i, 1, &b.seeds[m]);
                    m++;
                }
            if (m == 0)
                continue;
            t0 = now_seconds();
            status = at_attack_run(attacks[a], b.sub_x, b.sub_y, NULL, m, b.seeds, b.adv, b.fooled);
            if (status) {
                at_fail(err, status, "attack %s failed: %s", plan->attacks[a], at_status_string(status));
                goto done;
            }
            /* the judge is always the evaluated model in eval mode, whoever crafted x_adv */
            if ((status = judge(pass, b.adv, b.sub_y, m, k, b.correct)))
                goto failed_forward;
            r->seconds[a] += now_seconds() - t0;
            const float *logits = at_pass_logits(pass);
            for (int j = 0; j < m; j++) {
                memcpy(b.final_logits + (size_t)b.index[j] * k, logits + (size_t)j * k,
                       (size_t)k * sizeof(float));
                if (!b.correct[j]) {
                    r->outcome[first + b.index[j]] = (int8_t)a;
                    r->broken_by[a]++;
                }
            }
        }
        if (plan->n_attacks > 0 &&
            (status = at_calibration_add_logits(&r->adversarial_calibration, b.final_logits, n, k,
                                                b.y, err)))
            goto done;
        if (progress)
            progress(user, first + n, total);
    }
    for (int a = 0; a < plan->n_attacks; a++) {
        r->stats[a] = *at_attack_get_stats(attacks[a]);
        r->options[a] = *at_attack_get_options(attacks[a]);
        long broken = 0;
        for (int j = 0; j <= a; j++)
            broken += r->broken_by[j];
        r->robust_after[a] = r->clean_correct - broken;
    }
    goto done;
failed_forward:
    at_fail(err, status, "forward pass failed: %s", at_status_string(status));
done:
    for (int a = 0; a < AT_EVAL_MAX_ATTACKS; a++)
        at_attack_free(attacks[a]);
    at_pass_free(pass);
    free_buffers(&b);
    if (status)
        at_eval_result_free(r);
    return status;
}
