/* robustify_eval.c: the pieces of the man-in-the-middle protocol (Moon, An and Song, AAAI 2022)
 * that `advtrain robustify` and `advtrain eval --robustify` share: options, robustification in
 * batches, a cascade's robust accuracy on given images, and the JSON of what was measured. */
#include "robustify_eval.h"
#include "eval_report.h"
#include "plots.h"

#include <stdlib.h>
#include <string.h>

int cli_robustify_options(const char *cmd, const cli_robustify_args *a, double default_eps,
                          at_robustify_options *o)
{
    if (!(a->delta > 0.0))
        return cli_error(cmd, EXIT_USAGE, "--delta must be given and > 0 (got %g)", a->delta);
    const at_norm norm = a->norm && !strcmp(a->norm, "l2") ? AT_NORM_L2 : AT_NORM_LINF;
    if (a->norm && strcmp(a->norm, "l2") && strcmp(a->norm, "linf"))
        return cli_error(cmd, EXIT_USAGE, "robustification supports --norm linf or l2 (got %s)",
                         a->norm);
    const double eps = a->eps > 0.0 ? a->eps : default_eps;
    at_robustify_defaults(o, norm, (float)a->delta, (float)eps);
    /* 0 is a meaningful value of both: a command starts them at -1 for "the default" */
    o->iters = a->iters >= 0 ? a->iters : o->iters;
    o->steps = a->steps >= 0 ? a->steps : o->steps;
    if (a->step_size > 0.0)
        o->step_size = (float)a->step_size;
    if (a->lr > 0.0)
        o->lr = (float)a->lr;
    if (a->noise_sigma > 0.0 && !a->noise_samples)
        return cli_error(cmd, EXIT_USAGE, "--noise-sigma needs --noise-samples");
    if (a->noise_samples) {
        if (!(a->noise_sigma > 0.0))
            return cli_error(cmd, EXIT_USAGE, "--noise-samples needs --noise-sigma S > 0");
        o->noise_samples = a->noise_samples;
        o->noise_sigma = (float)a->noise_sigma;
    }
    if (a->rec_delta > 0.0 && !a->reconstruct)
        return cli_error(cmd, EXIT_USAGE, "--reconstruct-delta needs --reconstruct");
    if (o->steps > 0 && !(o->eps > 0.0f))
        return cli_error(cmd, EXIT_USAGE, "the inner PGD needs a budget: give the attacker's eps");
    o->no_random_start = a->no_random_start;
    return 0;
}

int cli_robustify_images(const char *cmd, at_model *model, const at_robustify_options *o,
                         const float *x, int n, int batch, uint64_t seed, bool quiet, float *x_r,
                         int32_t *labels, at_robustify_stats *stats)
{
    at_robustifier *r = NULL;
    at_error err;
    if (batch > n)
        batch = n;
    if (at_robustify_create(&r, model, batch, o, &err))
        return cli_error(cmd, EXIT_USAGE, "%s", err.message);
    int c, h, w;
    at_model_input_shape(model, &c, &h, &w);
    const size_t image = (size_t)c * h * w;
    uint64_t *seeds = malloc((size_t)batch * sizeof(uint64_t));
    if (!seeds) {
        at_robustify_free(r);
        return cli_error(cmd, EXIT_WORK_FAILED, "out of memory");
    }
    cli_progress progress;
    cli_progress_start(&progress, quiet);
    int status = 0;
    for (int first = 0; first < n && !status; first += batch) {
        const int m = n - first < batch ? n - first : batch;
        at_attack_seeds(seed ^ 0x726f627573746966ull /* "robustif" */, first, m, seeds);
        if (at_robustify_run(r, x + (size_t)first * image, m, seeds, x_r + (size_t)first * image,
                             labels ? labels + first : NULL))
            status = cli_error(cmd, EXIT_WORK_FAILED, "robustification failed at point %d", first);
        cli_progress_update(&progress, o->reconstruct ? "reconstructing" : "robustifying",
                            first + m, n, NULL);
    }
    cli_progress_clear(&progress);
    *stats = *at_robustify_get_stats(r);
    free(seeds);
    at_robustify_free(r);
    return status;
}

int cli_cascade_robust(const char *cmd, at_model *model, const at_eval_plan *plan, const float *x,
                       const int32_t *y, int n, int batch, uint8_t *correct, uint8_t *robust,
                       at_attack_stats *stats)
{
    int c, h, w;
    at_model_input_shape(model, &c, &h, &w);
    const size_t image = (size_t)c * h * w;
    if (batch > n)
        batch = n;
    at_pass *pass = NULL;
    at_error err;
    float *sub = malloc((size_t)batch * image * sizeof(float));
    float *adv = malloc((size_t)batch * image * sizeof(float));
    int32_t *ys = malloc((size_t)batch * sizeof(int32_t));
    int *which = malloc((size_t)batch * sizeof(int));
    uint64_t *seeds = malloc((size_t)batch * sizeof(uint64_t));
    uint8_t *fooled = malloc((size_t)batch);
    int status = 0;
    if (!sub || !adv || !ys || !which || !seeds || !fooled) {
        status = cli_error(cmd, EXIT_WORK_FAILED, "out of memory");
        goto done;
    }
    if (at_pass_create(&pass, model, batch, AT_PASS_FORWARD_ONLY, &err)) {
        status = cli_error(cmd, EXIT_WORK_FAILED, "%s", err.message);
        goto done;
    }
    for (int first = 0; first < n; first += batch) {
        const int m = n - first < batch ? n - first : batch;
        at_forward(pass, x + (size_t)first * image, m, AT_BN_EVAL);
        at_count_correct(at_pass_logits(pass), m, at_model_num_classes(model), y + first,
                         correct + first);
        memcpy(robust + first, correct + first, (size_t)m);
    }
    for (int a = 0; a < plan->n_attacks && !status; a++) {
        at_attack *atk = NULL;
        if (at_attack_create(&atk, plan->attacks[a], model, batch, &plan->options[a], &err)) {
            status = cli_error(cmd, EXIT_USAGE, "%s", err.message);
            break;
        }
        for (int first = 0; first < n && !status; first += batch) {
            /* the points of this batch still robust, packed */
            const int end = n - first < batch ? n : first + batch;
            int m = 0;
            for (int i = first; i < end; i++)
                if (robust[i]) {
                    memcpy(sub + (size_t)m * image, x + (size_t)i * image, image * sizeof(float));
                    ys[m] = y[i];
                    which[m++] = i;
                }
            if (!m)
                continue;
            for (int j = 0; j < m; j++)
                at_attack_seeds(plan->seed + 0x9e3779b97f4a7c15ull * (uint64_t)(a + 1), which[j],
                                1, seeds + j);
            if (at_attack_run(atk, sub, ys, NULL, m, seeds, adv, fooled))
                status = cli_error(cmd, EXIT_WORK_FAILED, "%s failed", plan->attacks[a]);
            for (int j = 0; j < m && !status; j++)
                robust[which[j]] = !fooled[j];
        }
        stats[a] = *at_attack_get_stats(atk);
        at_attack_free(atk);
    }
done:
    at_pass_free(pass);
    free(sub);
    free(adv);
    free(ys);
    free(which);
    free(seeds);
    free(fooled);
    return status;
}

json_t *cli_robustify_stats_json(const at_robustify_options *o, const at_robustify_stats *s,
                                 long points)
{
    const double measured = o->norm == AT_NORM_L2 ? s->max_l2 : s->max_linf;
    json_t *j = json_pack("{s:s, s:f, s:f, s:i, s:i, s:f, s:f, s:i, s:b}", "norm",
                          at_norm_name(o->norm), "delta", o->delta, "eps", o->eps, "iters",
                          o->iters, "inner_steps", o->steps, "inner_step_size", o->step_size,
                          "lr", o->lr, "noise_samples", o->noise_samples, "reconstruct",
                          o->reconstruct);
    json_object_set_new(j, "measured_max_linf", json_real(s->max_linf));
    json_object_set_new(j, "measured_max_l2", json_real(s->max_l2));
    json_object_set_new(j, "within_budget", json_boolean(measured <= o->delta * (1.0 + 1e-5) + 1e-6));
    json_object_set_new(j, "out_of_range", json_integer(s->out_of_range));
    json_object_set_new(j, "nonfinite", json_integer(s->nonfinite));
    json_object_set_new(j, "robust_loss_first", json_real(points ? s->loss_first_sum / points : 0.0));
    json_object_set_new(j, "robust_loss_last", json_real(points ? s->loss_last_sum / points : 0.0));
    json_object_set_new(j, "gradient_evals", json_integer(s->gradient_evals));
    return j;
}

static long count(const uint8_t *v, int n)
{
    long k = 0;
    for (int i = 0; i < n; i++)
        k += v[i];
    return k;
}

/* The cascade on one set of images: printed, and as JSON with each attack's measured norms. */
static int attack_images(at_model *model, const at_eval_plan *plan, const char *name,
                         const float *x, const int32_t *y, int n, int batch, json_t *out)
{
    uint8_t *correct = malloc((size_t)n), *robust = malloc((size_t)n);
    at_attack_stats stats[AT_EVAL_MAX_ATTACKS];
    int status = !correct || !robust
                     ? cli_error("eval", EXIT_WORK_FAILED, "out of memory")
                     : cli_cascade_robust("eval", model, plan, x, y, n, batch, correct, robust, stats);
    if (!status) {
        const long c = count(correct, n), r = count(robust, n);
        printf("    %-22s clean %6.2f%% (%ld/%d), robust %6.2f%% (%ld/%d)", name, 100.0 * c / n, c,
               n, 100.0 * r / n, r, n);
        json_t *attacks = json_array();
        for (int a = 0; a < plan->n_attacks; a++) {
            const at_attack_stats *s = &stats[a];
            const double measured = plan->options[a].norm == AT_NORM_L2   ? s->max_l2
                                    : plan->options[a].norm == AT_NORM_L1 ? s->max_l1
                                                                          : s->max_linf;
            printf("%s %s max ||x_adv - x|| %.6f", a ? "," : ";", plan->attacks[a], measured);
            json_array_append_new(attacks,
                                  json_pack("{s:s, s:i, s:i, s:f, s:i, s:i}", "attack",
                                            plan->attacks[a], "points", (int)s->points, "fooled",
                                            (int)s->fooled, "measured_max_norm", measured,
                                            "out_of_range", (int)s->out_of_range,
                                            "nonfinite_outputs", (int)s->nonfinite_outputs));
        }
        printf("\n");
        json_object_set_new(out, name, json_pack("{s:o, s:o, s:o}", "clean",
                                                 cli_accuracy_json(c, n), "robust",
                                                 cli_accuracy_json(r, n), "attacks", attacks));
    }
    free(correct);
    free(robust);
    return status;
}

int cli_eval_mitm(at_model *model, const at_dataset *ds, const at_eval_plan *plan,
                  const cli_robustify_args *a, int batch, bool quiet, const char *png,
                  json_t *report)
{
    at_robustify_options o, orec;
    int status = cli_robustify_options("eval", a, plan->options[0].eps, &o);
    if (status)
        return status;
    if (o.norm != plan->options[0].norm)
        return cli_error("eval", EXIT_USAGE, "--robustify needs the attack's --norm to be linf or l2");
    orec = o;
    orec.reconstruct = true;
    if (a->rec_delta > 0.0)
        orec.delta = (float)a->rec_delta;
    const int n = ds->n;
    const size_t image = (size_t)ds->c * ds->h * ds->w, bytes = (size_t)n * image * sizeof(float);
    float *x = malloc(bytes), *xr = malloc(bytes), *xrec = a->reconstruct ? malloc(bytes) : NULL;
    int32_t *y = malloc((size_t)n * sizeof(int32_t)), *idx = malloc((size_t)n * sizeof(int32_t));
    json_t *out = json_object();
    if (!x || !xr || (a->reconstruct && !xrec) || !y || !idx) {
        status = cli_error("eval", EXIT_WORK_FAILED, "out of memory");
        goto done;
    }
    for (int i = 0; i < n; i++)
        idx[i] = i;
    at_dataset_batch(ds, idx, n, x, y, NULL, NULL);
    at_robustify_stats st, strec;
    double start = cli_now();
    if ((status = cli_robustify_images("eval", model, &o, x, n, batch, plan->seed, quiet, xr, NULL,
                                       &st)))
        goto done;
    const double seconds = cli_now() - start;
    const bool ok = (o.norm == AT_NORM_L2 ? st.max_l2 : st.max_linf) <= o.delta * (1 + 1e-5) + 1e-6 &&
                    !st.out_of_range && !st.nonfinite;
    printf("man in the middle (Moon et al.): robustified %d points, %s delta %g against eps %g, "
           "%d x PGD-%d, %.1f s\n", n, at_norm_name(o.norm), o.delta, o.eps, o.iters, o.steps,
           seconds);
    printf("    measured ||x_r - x||: max linf %.6f, max l2 %.6f, %ld outside [0,1]: %s\n",
           st.max_linf, st.max_l2, st.out_of_range, ok ? "within the budget" : "VIOLATED");
    printf("    robust loss %.4f at the first iteration, %.4f at x_r\n", st.loss_first_sum / n,
           st.loss_last_sum / n);
    json_object_set_new(out, "robustification", cli_robustify_stats_json(&o, &st, n));
    json_object_set_new(out, "seconds", json_real(seconds));
    if ((status = attack_images(model, plan, "original", x, y, n, batch, out)) ||
        (status = attack_images(model, plan, "robustified", xr, y, n, batch, out)))
        goto done;
    if (a->reconstruct) {
        if ((status = cli_robustify_images("eval", model, &orec, xr, n, batch, plan->seed + 1, quiet,
                                           xrec, NULL, &strec)))
            goto done;
        printf("    reconstruction attack: delta %g around x_r, robust loss %.4f -> %.4f, measured "
               "max linf ||x_rec - x_r|| %.6f, max l2 %.6f\n", orec.delta,
               strec.loss_first_sum / n, strec.loss_last_sum / n, strec.max_linf, strec.max_l2);
        json_object_set_new(out, "reconstruction_attack", cli_robustify_stats_json(&orec, &strec, n));
        if ((status = attack_images(model, plan, "reconstructed", xrec, y, n, batch, out)))
            goto done;
    }
    at_error err;
    if (png && plot_png_grid(png, x, xr, n < 8 ? n : 8, ds->c, ds->h, ds->w, ds->h < 64 ? 4 : 2,
                             &err)) {
        status = cli_error("eval", EXIT_WORK_FAILED, "%s", err.message);
        goto done;
    }
    json_object_set(report, "robustify", out);
    status = ok ? 0 : EXIT_WORK_FAILED;
done:
    json_decref(out);
    free(x);
    free(xr);
    free(xrec);
    free(y);
    free(idx);
    return status;
}
