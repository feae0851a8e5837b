/* eval_report.c: the report of a robustness evaluation, and its automatic flags, in the spirit of
 * AutoAttack's flags and of Pintor et al.'s "indicators of attack failure" (NeurIPS 2022): an
 * evaluation that cannot prove it stayed in the threat model, or whose attacks saw no gradient,
 * says so in the report rather than reporting robustness. */
#include "eval_report.h"

#include <math.h>
#include <stdarg.h>
#include <string.h>

void cli_flag(cli_flags *flags, const char *id, const char *fmt, ...)
{
    char message[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    if (!flags->list)
        flags->list = json_array();
    json_array_append_new(flags->list, json_pack("{s:s, s:s}", "id", id, "message", message));
}

json_t *cli_accuracy_json(long correct, long n)
{
    double lo, hi;
    cli_wilson(correct, n, &lo, &hi);
    return json_pack("{s:I, s:I, s:f, s:[f,f]}", "correct", (json_int_t)correct, "n", (json_int_t)n,
                     "accuracy", n > 0 ? (double)correct / n : 0.0, "ci95", lo, hi);
}

json_t *cli_calibration_json(const at_calibration *cal)
{
    const double n = (double)cal->n;
    json_t *table = json_array();
    for (int m = 0; m < cal->bins; m++) {
        const long count = cal->bin_count[m];
        json_array_append_new(table, json_pack("{s:f, s:f, s:I, s:o, s:o}", "lower", (double)m / cal->bins,
                                               "upper", (double)(m + 1) / cal->bins, "count", (json_int_t)count,
                                               "accuracy", count ? json_real((double)cal->bin_correct[m] / count) : json_null(),
                                               "confidence", count ? json_real(cal->bin_confidence[m] / count) : json_null()));
    }
    json_t *j = json_pack("{s:i, s:I, s:I}", "bins", cal->bins, "n", (json_int_t)cal->n,
                          "nonfinite", (json_int_t)cal->nonfinite);
    bool any = cal->n > 0;
    json_object_set_new(j, "accuracy", any ? json_real(cal->correct / n) : json_null());
    json_object_set_new(j, "mean_confidence", any ? json_real(cal->confidence_sum / n) : json_null());
    json_object_set_new(j, "ece", any ? json_real(at_calibration_ece(cal)) : json_null());
    json_object_set_new(j, "mce", any ? json_real(at_calibration_mce(cal)) : json_null());
    json_object_set_new(j, "nll", any ? json_real(cal->nll_sum / n) : json_null());
    json_object_set_new(j, "brier", any ? json_real(cal->brier_sum / n) : json_null());
    json_object_set_new(j, "table", table);
    return j;
}

void cli_calibration_print(FILE *out, const char *label, const at_calibration *cal)
{
    if (cal->n < 1) {
        fprintf(out, "  %-22s no finite outputs to bin\n", label);
        return;
    }
    fprintf(out, "  %-22s ECE %.2f%%, MCE %.2f%%, NLL %.4f, Brier %.4f (%d bins, mean confidence "
                 "%.2f%%)", label, 100 * at_calibration_ece(cal), 100 * at_calibration_mce(cal),
            cal->nll_sum / cal->n, cal->brier_sum / cal->n, cal->bins,
            100 * cal->confidence_sum / cal->n);
    if (cal->nonfinite)
        fprintf(out, ", %ld non-finite outputs not binned", cal->nonfinite);
    fputc('\n', out);
}

/* The calibrations cover every point unless a resumed state file predates them. */
static bool calibration_complete(const at_calibration *cal, long points)
{
    return cal->bins > 0 && cal->n + cal->nonfinite == points;
}

static const char *loss_name(at_attack_loss loss)
{
    switch (loss) {
    case AT_ATTACK_LOSS_CE: return "ce";
    case AT_ATTACK_LOSS_CW: return "cw";
    case AT_ATTACK_LOSS_DLR: return "dlr";
    default: return "default";
    }
}

/* The options an attack ran with, defaults filled in by the library. */
static json_t *options_json(const char *name, const at_attack_options *ran)
{
    const at_attack_options o = *ran;
    json_t *j = json_pack("{s:s, s:f, s:s}", "norm", at_norm_name(o.norm), "eps", o.eps, "bn_mode",
                          at_bn_mode_name(o.bn_mode));
    bool square = !strcmp(name, "square");
    if (!square)
        json_object_set_new(j, "steps", json_integer(o.steps));
    if (!strcmp(name, "pgd") || !strcmp(name, "iwd") || o.flow)
        json_object_set_new(j, "step_size", json_real(o.step_size));
    if (!strcmp(name, "iwd"))
        json_object_set_new(j, "iwd", json_pack("{s:f, s:f, s:i, s:i, s:i, s:f, s:i}", "lambda",
                                                o.iwd_lambda, "budget", o.iwd_budget, "patch",
                                                o.iwd.patch, "stride", o.iwd.stride, "samples",
                                                o.iwd.samples, "reg", o.iwd.reg, "iters",
                                                o.iwd.iters));
    if (o.flow) {
        json_object_set_new(j, "eps_z", json_real(o.eps_z));
        json_object_set_new(j, "step_size_z", json_real(o.step_size_z));
        json_object_set_new(j, "random_start", json_boolean(!o.no_random_start));
    }
    json_object_set_new(j, "restarts", json_integer(o.restarts));
    json_object_set_new(j, "loss", json_string(loss_name(o.loss)));
    json_object_set_new(j, "eot", json_integer(o.eot));
    if (square) {
        json_object_set_new(j, "queries", json_integer(o.queries));
        json_object_set_new(j, "p_init", json_real(o.p_init));
    }
    if (!strcmp(name, "apgd-t") || !strcmp(name, "fab-t"))
        json_object_set_new(j, "targets", json_integer(o.targets));
    if (!strcmp(name, "pgd")) {
        json_object_set_new(j, "random_start", json_boolean(!o.no_random_start));
        json_object_set_new(j, "early_stop", json_boolean(o.early_stop));
    }
    return j;
}

json_t *cli_eval_json(const at_eval_plan *plan, const at_eval_result *r)
{
    json_t *root = json_object();
    json_t *clean = cli_accuracy_json(r->clean_correct, r->points);
    json_object_set_new(clean, "bn_mode", json_string("eval"));
    json_object_set_new(clean, "seconds", json_real(r->clean_seconds));
    json_object_set_new(root, "clean", clean);
    json_t *attacks = json_array();
    for (int a = 0; a < plan->n_attacks; a++) {
        const at_attack_stats *s = &r->stats[a];
        json_t *j = json_object();
        json_object_set_new(j, "name", json_string(plan->attacks[a]));
        json_object_set_new(j, "options", options_json(plan->attacks[a], &r->options[a]));
        json_object_set_new(j, "bn_mode", json_string(at_bn_mode_name(s->bn_mode)));
        json_object_set_new(j, "points_attacked", json_integer(s->points));
        json_object_set_new(j, "broken", json_integer(r->broken_by[a]));
        json_object_set_new(j, "robust_after", cli_accuracy_json(r->robust_after[a], r->points));
        json_object_set_new(j, "max_perturbation",
                            json_pack("{s:f, s:f, s:f}", "linf", s->max_linf, "l2", s->max_l2, "l1", s->max_l1));
        json_object_set_new(j, "max_perturbation_of_any_evaluated_point",
                            json_pack("{s:f, s:f, s:f}", "linf", s->eval_max_linf, "l2", s->eval_max_l2,
                                      "l1", s->eval_max_l1));
        if (r->options[a].flow) /* JSA: what its two budgets measured */
            json_object_set_new(j, "joint_space",
                                json_pack("{s:f, s:f, s:f, s:f, s:f}", "max_latent_linf",
                                          s->max_latent_linf, "eps_z", r->options[a].eps_z,
                                          "max_pixel_linf", s->max_pixel_linf, "eps",
                                          r->options[a].eps, "max_flow_reconstruction_error",
                                          s->max_reconstruction));
        json_object_set_new(j, "outputs_outside_0_1", json_integer(s->out_of_range));
        json_object_set_new(j, "nonfinite_outputs", json_integer(s->nonfinite_outputs));
        json_object_set_new(j, "gradient_evaluations", json_integer(s->gradient_evals));
        json_object_set_new(j, "forward_evaluations", json_integer(s->forward_evals));
        json_object_set_new(j, "zero_gradients", json_integer(s->zero_gradients));
        json_object_set_new(j, "nonfinite_gradients", json_integer(s->nonfinite_gradients));
        json_t *curve = json_array();
        for (int t = 0; t <= s->steps; t++)
            json_array_append_new(curve, s->loss_count[t] ? json_real(s->loss_sum[t] / s->loss_count[t])
                                                          : json_null());
        json_object_set_new(j, "mean_loss_per_step", curve);
        if (s->iwd_points) /* the internal Wasserstein distance of each returned point */
            json_object_set_new(j, "iwd", json_pack("{s:I, s:f, s:f, s:I}", "points",
                                                    (json_int_t)s->iwd_points, "mean",
                                                    s->iwd_sum / s->iwd_points, "max", s->iwd_max,
                                                    "over_budget", (json_int_t)s->iwd_over_budget));
        json_object_set_new(j, "seconds", json_real(r->seconds[a]));
        json_array_append_new(attacks, j);
    }
    json_object_set_new(root, "attacks", attacks);
    long robust = plan->n_attacks ? r->robust_after[plan->n_attacks - 1] : r->clean_correct;
    json_object_set_new(root, "robust", cli_accuracy_json(robust, r->points));
    if (calibration_complete(&r->clean_calibration, r->points)) {
        json_t *cal = json_pack("{s:i, s:o}", "bins", r->clean_calibration.bins, "clean",
                                cli_calibration_json(&r->clean_calibration));
        if (calibration_complete(&r->adversarial_calibration, r->points))
            json_object_set_new(cal, "adversarial", cli_calibration_json(&r->adversarial_calibration));
        json_object_set_new(root, "calibration", cal);
    }
    return root;
}

static double bound(at_norm norm, double eps)
{
    return norm == AT_NORM_LINF ? eps + 1e-6 : eps * (1.0 + 1e-5);
}

void cli_eval_flags(const at_eval_plan *plan, const at_eval_result *r, cli_flags *flags)
{
    bool white_box_before = false;
    for (int a = 0; a < plan->n_attacks; a++) {
        const at_attack_stats *s = &r->stats[a];
        const at_attack_options *o = &plan->options[a];
        const char *name = plan->attacks[a];
        /* JSA's pixel budget bounds dx, not x_adv - x (the latent step moves x_adv along the
         * flow's manifold); its latent budget bounds dz */
        double measured = o->flow ? s->max_pixel_linf
                          : o->norm == AT_NORM_LINF ? s->max_linf
                          : o->norm == AT_NORM_L2 ? s->max_l2 : s->max_l1;
        if (o->flow && s->max_latent_linf > o->eps_z + 1e-6)
            cli_flag(flags, "threat-model-violated",
                     "%s moved the latent code by %.9g for eps-z %g", name, s->max_latent_linf,
                     o->eps_z);
        if (o->flow && s->max_reconstruction > 1e-4)
            cli_flag(flags, "flow-not-exact",
                     "%s: the flow reconstructs clean images only to %.3g (F^-1(F(x)) != x): the "
                     "latent budget is not measured from x itself", name, s->max_reconstruction);
        if (measured > bound(o->norm, o->eps) || s->out_of_range || s->nonfinite_outputs)
            cli_flag(flags, "threat-model-violated",
                     "%s returned points outside the threat model: max %s %.9g for eps %g, %ld "
                     "values outside [0,1], %ld non-finite", name, at_norm_name(o->norm), measured,
                     o->eps, s->out_of_range, s->nonfinite_outputs);
        if (s->gradient_evals && s->zero_gradients * 100 > s->gradient_evals)
            cli_flag(flags, "zero-gradients",
                     "%s: %ld of %ld input gradients were exactly zero: the loss is flat or the "
                     "model masks its gradients; do not trust white-box robustness", name,
                     s->zero_gradients, s->gradient_evals);
        if (s->iwd_over_budget)
            cli_flag(flags, "iwd-budget-violated", "%s returned %ld points with an IWD above its "
                     "budget %g", name, s->iwd_over_budget, o->iwd_budget);
        if (s->nonfinite_gradients)
            cli_flag(flags, "nonfinite-gradients", "%s: %ld input gradients contained NaN or infinity",
                     name, s->nonfinite_gradients);
        bool black_box = !strcmp(name, "square");
        if (black_box && white_box_before && r->broken_by[a] > 0)
            cli_flag(flags, "black-box-beats-white-box",
                     "the black-box Square attack broke %ld points that every white-box attack "
                     "before it missed: gradient masking is likely", r->broken_by[a]);
        white_box_before |= !black_box;
    }
}

void cli_eval_print(FILE *out, const at_eval_plan *plan, const at_eval_result *r)
{
    double lo, hi;
    cli_wilson(r->clean_correct, r->points, &lo, &hi);
    fprintf(out, "  %-22s %6.2f%%  [%5.2f, %5.2f]  (%ld/%ld, BN eval)\n", "clean accuracy",
            100.0 * r->clean_correct / r->points, 100 * lo, 100 * hi, r->clean_correct, r->points);
    for (int a = 0; a < plan->n_attacks; a++) {
        const at_attack_stats *s = &r->stats[a];
        const at_attack_options *o = &plan->options[a];
        double measured = o->norm == AT_NORM_LINF ? s->max_linf
                          : o->norm == AT_NORM_L2 ? s->max_l2 : s->max_l1;
        char label[48];
        snprintf(label, sizeof label, "after %s", plan->attacks[a]);
        cli_wilson(r->robust_after[a], r->points, &lo, &hi);
        fprintf(out, "  %-22s %6.2f%%  [%5.2f, %5.2f]  broke %ld, max %s %.4g, outside [0,1] %ld, "
                     "BN %s, %.1f s\n", label, 100.0 * r->robust_after[a] / r->points, 100 * lo,
                100 * hi, r->broken_by[a], at_norm_name(o->norm), measured, s->out_of_range,
                at_bn_mode_name(s->bn_mode), r->seconds[a]);
        if (s->iwd_points)
            fprintf(out, "  %-22s IWD of the %ld points attacked: mean %.4g, max %.4g%s\n", "",
                    s->iwd_points, s->iwd_sum / s->iwd_points, s->iwd_max,
                    s->iwd_over_budget ? " (OVER BUDGET)" : "");
        if (o->flow)
            fprintf(out, "  %-22s latent linf %.4g (eps-z %g), pixel linf %.4g (eps %g), flow "
                         "reconstruction error %.2g\n", "", s->max_latent_linf, o->eps_z,
                    s->max_pixel_linf, o->eps, s->max_reconstruction);
    }
    if (!calibration_complete(&r->clean_calibration, r->points)) {
        fprintf(out, "  calibration: not measured on every point (resumed from a state file "
                     "written without it)\n");
        return;
    }
    cli_calibration_print(out, "clean calibration", &r->clean_calibration);
    if (calibration_complete(&r->adversarial_calibration, r->points))
        cli_calibration_print(out, "adversarial calibration", &r->adversarial_calibration);
}
