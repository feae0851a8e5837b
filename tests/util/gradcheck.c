/* gradcheck.c: see gradcheck.h. */
#include "util/gradcheck.h"

#include "util/refnet.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct loss_ctx {
    gc_loss kind;
    int n, k;
    const double *r;       /* linear weights [n, k] */
    const int32_t *labels; /* CE labels */
} loss_ctx;

static double loss_value(const loss_ctx *l, const double *logits)
{
    double total = 0.0;
    for (int i = 0; i < l->n; i++) {
        const double *z = logits + (size_t)i * l->k;
        if (l->kind == GC_LOSS_LINEAR) {
            for (int j = 0; j < l->k; j++)
                total += l->r[(size_t)i * l->k + j] * z[j];
        } else {
            double max = z[0], sum = 0.0;
            for (int j = 1; j < l->k; j++)
                max = z[j] > max ? z[j] : max;
            for (int j = 0; j < l->k; j++)
                sum += exp(z[j] - max);
            total += -(z[l->labels[i]] - max - log(sum)) / l->n;
        }
    }
    return total;
}

static double ref_loss(const refnet *r, const double *x, const gc_options *o, const loss_ctx *l,
                       double *logits, uint64_t *pattern)
{
    refnet_forward(r, x, o->n, o->mode, logits, pattern);
    return loss_value(l, logits);
}

/* Picks up to max coordinates of [0, count): all of them, or an evenly spread random subset. */
static int pick(size_t count, int max, at_rng *rng, size_t *out)
{
    if (count <= (size_t)max) {
        for (size_t i = 0; i < count; i++)
            out[i] = i;
        return (int)count;
    }
    for (int i = 0; i < max; i++)
        out[i] = (size_t)((double)count * (i + at_rng_uniform(rng)) / max);
    return max;
}

static int compare(const char *what, const double *analytic, const double *numeric, int count,
                   double tol, double *max_err)
{
    double scale = 0.0;
    for (int i = 0; i < count; i++)
        if (!isnan(numeric[i]) && fabs(numeric[i]) > scale)
            scale = fabs(numeric[i]);
    int failures = 0;
    *max_err = 0.0;
    for (int i = 0; i < count; i++) {
        if (isnan(numeric[i]))
            continue; /* skipped: the step crossed a kink */
        double err = fabs(analytic[i] - numeric[i]);
        double rel = err / (scale + 1e-12);
        if (rel > *max_err)
            *max_err = rel;
        if (err > tol * scale + 1e-6) {
            if (failures < 5)
                fprintf(stderr, "  %s[%d]: analytic %.9g numeric %.9g\n", what, i, analytic[i],
                        numeric[i]);
            failures++;
        }
    }
    return failures;
}

int gradcheck_model(at_model *m, const gc_options *o, gc_report *report)
{
    at_error err;
    at_rng rng;
    at_rng_seed(&rng, o->seed);
    memset(report, 0, sizeof *report);
    int c, h, w;
    at_model_input_shape(m, &c, &h, &w);
    const int k = at_model_num_classes(m);
    const size_t in_count = (size_t)o->n * c * h * w, out_count = (size_t)o->n * k;
    size_t n_params;
    float *params = at_model_params(m, &n_params);
    if (o->randomize_params)
        for (size_t i = 0; i < n_params; i++)
            params[i] = (float)(0.5 * at_rng_normal(&rng));
    for (int t = 0; t < at_model_tensor_count(m); t++) {
        at_tensor_info info = at_model_tensor(m, t);
        if (info.dtype == AT_F32 && !info.is_param) {
            bool var = strstr(info.name, "running_var") != NULL;
            for (size_t j = 0; j < info.numel; j++)
                info.data[j] = var ? (float)(0.5 + at_rng_uniform(&rng)) : (float)(0.3 * at_rng_normal(&rng));
        }
    }

    float *xf = malloc(in_count * sizeof(float));
    double *xd = malloc(in_count * sizeof(double));
    double *r = malloc(out_count * sizeof(double));
    float *dlogits = malloc(out_count * sizeof(float));
    int32_t *labels = malloc((size_t)o->n * sizeof(int32_t));
    double *ref_logits = malloc(out_count * sizeof(double));
    for (size_t i = 0; i < in_count; i++) {
        xf[i] = (float)(o->centered_input ? 2.0 * at_rng_uniform(&rng) - 1.0 : at_rng_uniform(&rng));
        xd[i] = xf[i];
    }
    for (size_t i = 0; i < out_count; i++) {
        r[i] = (float)at_rng_normal(&rng);
        dlogits[i] = (float)r[i];
    }
    for (int i = 0; i < o->n; i++)
        labels[i] = (int32_t)at_rng_below(&rng, (uint32_t)k);
    loss_ctx l = {o->loss, o->n, k, r, labels};

    /* The refnet copies parameters and buffers before the engine's forward (which, in train
     * mode, updates the running statistics). */
    refnet ref;
    int failures = 0;
    if (refnet_init(&ref, m)) {
        fprintf(stderr, "  out of memory\n");
        return 1;
    }

    /* Engine: forward, loss gradient, backward for input and weights. */
    at_pass *pass = NULL;
    if (at_pass_create(&pass, m, o->n, 0, &err)) {
        fprintf(stderr, "  pass: %s\n", err.message);
        return 1;
    }
    at_model_zero_grad(m);
    at_forward(pass, xf, o->n, o->mode);
    const float *logits = at_pass_logits(pass);
    if (o->loss == GC_LOSS_CE)
        at_loss_cross_entropy(logits, o->n, k, &(at_ce_target){.labels = labels}, NULL, dlogits);
    at_backward(pass, dlogits, AT_GRAD_INPUT | AT_GRAD_WEIGHTS);

    /* Forward against the reference. */
    uint64_t pattern0;
    ref_loss(&ref, xd, o, &l, ref_logits, &pattern0);
    double scale = 1e-12, ferr = 0.0;
    for (size_t i = 0; i < out_count; i++)
        scale = fabs(ref_logits[i]) > scale ? fabs(ref_logits[i]) : scale;
    for (size_t i = 0; i < out_count; i++) {
        double e = fabs(logits[i] - ref_logits[i]) / scale;
        ferr = e > ferr ? e : ferr;
    }
    report->forward_max_err = ferr;
    if (ferr > 1e-5) {
        fprintf(stderr, "  forward differs from the double reference: %.3g relative\n", ferr);
        failures++;
    }

    /* Central differences of the double reference. A coordinate whose +h and -h evaluations
     * take different ReLU or max-pool branches is skipped (the derivative does not exist there). */
    const double hstep = 1e-6;
    size_t *idx = malloc(sizeof(size_t) * (size_t)(o->max_coords > 0 ? o->max_coords : 1));
    double *analytic = malloc(sizeof(double) * (size_t)o->max_coords);
    double *numeric = malloc(sizeof(double) * (size_t)o->max_coords);
    uint64_t pp, pm;

    int count = pick(in_count, o->max_coords, &rng, idx);
    const float *gx = at_pass_input_grad(pass);
    for (int i = 0; i < count; i++) {
        double saved = xd[idx[i]];
        xd[idx[i]] = saved + hstep;
        double lp = ref_loss(&ref, xd, o, &l, ref_logits, &pp);
        xd[idx[i]] = saved - hstep;
        double lm = ref_loss(&ref, xd, o, &l, ref_logits, &pm);
        xd[idx[i]] = saved;
        analytic[i] = gx[idx[i]];
        numeric[i] = (pp == pm) ? (lp - lm) / (2 * hstep) : NAN;
        report->skipped += pp != pm;
    }
    report->input_checked = count;
    failures += compare("dx", analytic, numeric, count, o->tol, &report->input_max_err);

    const float *grads = at_model_grads(m, NULL);
    count = pick(n_params, o->max_coords, &rng, idx);
    for (int i = 0; i < count; i++) {
        double saved = ref.params[idx[i]];
        ref.params[idx[i]] = saved + hstep;
        double lp = ref_loss(&ref, xd, o, &l, ref_logits, &pp);
        ref.params[idx[i]] = saved - hstep;
        double lm = ref_loss(&ref, xd, o, &l, ref_logits, &pm);
        ref.params[idx[i]] = saved;
        analytic[i] = grads[idx[i]];
        numeric[i] = (pp == pm) ? (lp - lm) / (2 * hstep) : NAN;
        report->skipped += pp != pm;
    }
    report->weight_checked = count;
    failures += compare("dw", analytic, numeric, count, o->tol, &report->weight_max_err);
    if (report->skipped * 10 > report->input_checked + report->weight_checked) {
        fprintf(stderr, "  too many coordinates at kinks: %d skipped\n", report->skipped);
        failures++;
    }

    free(idx);
    free(analytic);
    free(numeric);
    at_pass_free(pass);
    refnet_free(&ref);
    free(xf);
    free(xd);
    free(r);
    free(dlogits);
    free(labels);
    free(ref_logits);
    return failures;
}
