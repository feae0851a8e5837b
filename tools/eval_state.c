/* eval_state.c: see eval_state.h. */
#include "eval_state.h"

#include <stdlib.h>
#include <string.h>

static json_t *stats_json_core(const at_attack_stats *s);

/* JSA's budgets (zero for every other attack) ride along in an object of their own */
static json_t *stats_json(const at_attack_stats *s)
{
    json_t *j = stats_json_core(s);
    json_object_set_new(j, "joint", json_pack("{s:f,s:f,s:f}", "latent", s->max_latent_linf,
                                              "pixel", s->max_pixel_linf, "reconstruction",
                                              s->max_reconstruction));
    return j;
}

static json_t *stats_json_core(const at_attack_stats *s)
{
    json_t *losses = json_array(), *counts = json_array();
    for (int t = 0; t <= s->steps; t++) {
        json_array_append_new(losses, json_real(s->loss_sum[t]));
        json_array_append_new(counts, json_integer(s->loss_count[t]));
    }
    json_t *j = json_pack("{s:I,s:I,s:f,s:f,s:f,s:I,s:f,s:f,s:f,s:I,s:I,s:I,s:I,s:I,s:I,s:i,s:i,s:o,s:o}",
                     "points", (json_int_t)s->points, "fooled", (json_int_t)s->fooled,
                     "max_linf", s->max_linf, "max_l2", s->max_l2, "max_l1", s->max_l1,
                     "out_of_range", (json_int_t)s->out_of_range, "eval_max_linf", s->eval_max_linf,
                     "eval_max_l2", s->eval_max_l2, "eval_max_l1", s->eval_max_l1,
                     "eval_out_of_range", (json_int_t)s->eval_out_of_range,
                     "nonfinite_outputs", (json_int_t)s->nonfinite_outputs,
                     "gradient_evals", (json_int_t)s->gradient_evals,
                     "forward_evals", (json_int_t)s->forward_evals,
                     "zero_gradients", (json_int_t)s->zero_gradients,
                     "nonfinite_gradients", (json_int_t)s->nonfinite_gradients,
                     "bn_mode", (int)s->bn_mode, "steps", s->steps, "loss_sum", losses,
                     "loss_count", counts);
    if (j && s->iwd_points) /* the IWD attack's measurements (absent from older state files) */
        json_object_set_new(j, "iwd", json_pack("{s:I,s:f,s:f,s:I}", "points",
                                                (json_int_t)s->iwd_points, "sum", s->iwd_sum,
                                                "max", s->iwd_max, "over_budget",
                                                (json_int_t)s->iwd_over_budget));
    return j;
}

static int stats_from_json(json_t *j, at_attack_stats *s)
{
    json_int_t points, fooled, oor, eoor, nfo, ge, fe, zg, nfg;
    int bn, steps;
    json_t *losses, *counts;
    memset(s, 0, sizeof *s);
    if (json_unpack(j, "{s:I,s:I,s:F,s:F,s:F,s:I,s:F,s:F,s:F,s:I,s:I,s:I,s:I,s:I,s:I,s:i,s:i,s:o,s:o}",
                    "points", &points, "fooled", &fooled, "max_linf", &s->max_linf, "max_l2",
                    &s->max_l2, "max_l1", &s->max_l1, "out_of_range", &oor, "eval_max_linf",
                    &s->eval_max_linf, "eval_max_l2", &s->eval_max_l2, "eval_max_l1",
                    &s->eval_max_l1, "eval_out_of_range", &eoor, "nonfinite_outputs", &nfo,
                    "gradient_evals", &ge, "forward_evals", &fe, "zero_gradients", &zg,
                    "nonfinite_gradients", &nfg, "bn_mode", &bn, "steps", &steps, "loss_sum",
                    &losses, "loss_count", &counts) ||
        steps < 0 || steps > AT_STATS_MAX_STEPS || (int)json_array_size(losses) != steps + 1 ||
        (int)json_array_size(counts) != steps + 1)
        return -1;
    json_t *joint = json_object_get(j, "joint");
    if (joint && json_unpack(joint, "{s:F,s:F,s:F}", "latent", &s->max_latent_linf, "pixel",
                             &s->max_pixel_linf, "reconstruction", &s->max_reconstruction))
        return -1;
    s->points = points;
    s->fooled = fooled;
    s->out_of_range = oor;
    s->eval_out_of_range = eoor;
    s->nonfinite_outputs = nfo;
    s->gradient_evals = ge;
    s->forward_evals = fe;
    s->zero_gradients = zg;
    s->nonfinite_gradients = nfg;
    s->bn_mode = (at_bn_mode)bn;
    s->steps = steps;
    json_t *iwd = json_object_get(j, "iwd");
    if (iwd) {
        json_int_t ip = 0, io = 0;
        if (json_unpack(iwd, "{s:I,s:F,s:F,s:I}", "points", &ip, "sum", &s->iwd_sum, "max",
                        &s->iwd_max, "over_budget", &io))
            return -1;
        s->iwd_points = ip;
        s->iwd_over_budget = io;
    }
    for (int t = 0; t <= steps; t++) {
        s->loss_sum[t] = json_number_value(json_array_get(losses, (size_t)t));
        s->loss_count[t] = (long)json_integer_value(json_array_get(counts, (size_t)t));
    }
    return 0;
}

/* An accumulator's sums, exactly (reals are written with 17 significant digits). */
static json_t *calibration_state(const at_calibration *c)
{
    json_t *count = json_array(), *correct = json_array(), *confidence = json_array();
    for (int m = 0; m < c->bins; m++) {
        json_array_append_new(count, json_integer(c->bin_count[m]));
        json_array_append_new(correct, json_integer(c->bin_correct[m]));
        json_array_append_new(confidence, json_real(c->bin_confidence[m]));
    }
    return json_pack("{s:I, s:I, s:I, s:f, s:f, s:f, s:o, s:o, s:o}", "n", (json_int_t)c->n,
                     "correct", (json_int_t)c->correct, "nonfinite", (json_int_t)c->nonfinite,
                     "confidence_sum", c->confidence_sum, "nll_sum", c->nll_sum, "brier_sum",
                     c->brier_sum, "count", count, "bin_correct", correct, "confidence", confidence);
}

/* Fills an initialised accumulator from calibration_state's JSON; -1 when it does not fit. */
static int calibration_from_state(json_t *j, at_calibration *c)
{
    json_int_t n, correct, nonfinite;
    json_t *count, *bin_correct, *confidence;
    if (!j || json_unpack(j, "{s:I, s:I, s:I, s:F, s:F, s:F, s:o, s:o, s:o}", "n", &n, "correct",
                          &correct, "nonfinite", &nonfinite, "confidence_sum", &c->confidence_sum,
                          "nll_sum", &c->nll_sum, "brier_sum", &c->brier_sum, "count", &count,
                          "bin_correct", &bin_correct, "confidence", &confidence) ||
        (int)json_array_size(count) != c->bins || (int)json_array_size(bin_correct) != c->bins ||
        (int)json_array_size(confidence) != c->bins)
        return -1;
    c->n = (long)n;
    c->correct = (long)correct;
    c->nonfinite = (long)nonfinite;
    for (int m = 0; m < c->bins; m++) {
        c->bin_count[m] = (long)json_integer_value(json_array_get(count, (size_t)m));
        c->bin_correct[m] = (long)json_integer_value(json_array_get(bin_correct, (size_t)m));
        c->bin_confidence[m] = json_number_value(json_array_get(confidence, (size_t)m));
    }
    return 0;
}

/* Outcomes as a string: 'm' misclassified clean, 'r' robust, '0'+k broken by attack k. */
static char outcome_char(int8_t o) { return o == -2 ? 'm' : o == -1 ? 'r' : (char)('0' + o); }
static int8_t outcome_of(char c) { return c == 'm' ? -2 : c == 'r' ? -1 : (int8_t)(c - '0'); }

static int save_state(const char *path, const char *fingerprint, long done, long total,
                      const at_eval_plan *plan, const at_eval_result *r)
{
    char *text = malloc((size_t)done + 1);
    if (!text)
        return cli_error("eval", EXIT_WORK_FAILED, "out of memory");
    for (long i = 0; i < done; i++)
        text[i] = outcome_char(r->outcome[i]);
    text[done] = '\0';
    json_t *stats = json_array(), *broken = json_array(), *seconds = json_array();
    for (int a = 0; a < plan->n_attacks; a++) {
        json_array_append_new(stats, stats_json(&r->stats[a]));
        json_array_append_new(broken, json_integer(r->broken_by[a]));
        json_array_append_new(seconds, json_real(r->seconds[a]));
    }
    json_t *state = json_pack("{s:s, s:I, s:I, s:s, s:I, s:f, s:o, s:o, s:o}", "fingerprint",
                              fingerprint, "done", (json_int_t)done, "total", (json_int_t)total,
                              "outcome", text, "clean_correct", (json_int_t)r->clean_correct,
                              "clean_seconds", r->clean_seconds, "broken_by", broken, "seconds",
                              seconds, "stats", stats);
    free(text);
    json_t *cal = json_pack("{s:i, s:o}", "bins", r->clean_calibration.bins, "clean",
                            calibration_state(&r->clean_calibration));
    if (r->adversarial_calibration.bins)
        json_object_set_new(cal, "adversarial", calibration_state(&r->adversarial_calibration));
    json_object_set_new(state, "calibration", cal);
    int status = cli_write_state("eval", path, state);
    json_decref(state);
    return status;
}

/* Loads a state with this fingerprint; returns the points done (0 when there is none). */
static long load_state(const char *path, const char *fingerprint, const at_eval_plan *plan,
                       long total, at_eval_result *r, int *status)
{
    json_t *state;
    if ((*status = cli_read_state("eval", path, "an evaluation", &state)) || !state)
        return 0;
    const char *fp = NULL, *text = NULL;
    json_int_t done = 0, saved_total = 0, clean = 0;
    json_t *broken = NULL, *seconds = NULL, *stats = NULL;
    double clean_seconds = 0;
    if (json_unpack(state, "{s:s, s:I, s:I, s:s, s:I, s:F, s:o, s:o, s:o}", "fingerprint", &fp,
                    "done", &done, "total", &saved_total, "outcome", &text, "clean_correct",
                    &clean, "clean_seconds", &clean_seconds, "broken_by", &broken, "seconds",
                    &seconds, "stats", &stats)) {
        *status = cli_error("eval", EXIT_WORK_FAILED, "%s: not an evaluation state file", path);
        json_decref(state);
        return 0;
    }
    if (strcmp(fp, fingerprint) != 0 || saved_total != total ||
        (long)strlen(text) != done || done > total ||
        (int)json_array_size(stats) != plan->n_attacks) {
        *status = cli_error("eval", EXIT_USAGE, "%s holds another evaluation (other checkpoint, data "
                            "or options); remove it or use another --state file", path);
        json_decref(state);
        return 0;
    }
    for (long i = 0; i < done; i++)
        r->outcome[i] = outcome_of(text[i]);
    r->clean_correct = clean;
    r->clean_seconds = clean_seconds;
    for (int a = 0; a < plan->n_attacks; a++) {
        r->broken_by[a] = (long)json_integer_value(json_array_get(broken, (size_t)a));
        r->seconds[a] = json_number_value(json_array_get(seconds, (size_t)a));
        if (stats_from_json(json_array_get(stats, (size_t)a), &r->stats[a])) {
            *status = cli_error("eval", EXIT_WORK_FAILED, "%s: corrupt statistics", path);
            break;
        }
    }
    /* a state written before calibration was measured has none: the calibrations then cover
     * only the points evaluated from here on, and the report leaves them out */
    json_t *cal = json_object_get(state, "calibration");
    if (!*status && cal) {
        int bins = (int)json_integer_value(json_object_get(cal, "bins"));
        if (bins != r->clean_calibration.bins)
            *status = cli_error("eval", EXIT_USAGE, "%s was started with --calibration-bins %d; "
                                "continue it with the same", path, bins);
        else if (calibration_from_state(json_object_get(cal, "clean"), &r->clean_calibration) ||
                 (r->adversarial_calibration.bins &&
                  calibration_from_state(json_object_get(cal, "adversarial"),
                                         &r->adversarial_calibration)))
            *status = cli_error("eval", EXIT_WORK_FAILED, "%s: corrupt calibration", path);
    }
    json_decref(state);
    return *status ? 0 : done;
}

int cli_eval_resumable(at_model *model, const at_dataset *ds, const at_eval_plan *plan, long total,
                       int chunk, const char *path, const char *fingerprint, long budget,
                       at_eval_result *r, bool *finished, bool quiet)
{
    memset(r, 0, sizeof *r);
    *finished = false;
    r->points = total;
    r->outcome = malloc((size_t)total);
    if (!r->outcome)
        return cli_error("eval", EXIT_WORK_FAILED, "out of memory");
    /* the options each attack runs with (defaults filled), even if nothing is left to run */
    for (int a = 0; a < plan->n_attacks; a++) {
        at_attack *probe = NULL;
        at_error err;
        if (at_attack_create(&probe, plan->attacks[a], plan->surrogate ? plan->surrogate : model, 1,
                             &plan->options[a], &err))
            return cli_error("eval", EXIT_USAGE, "%s", err.message);
        r->options[a] = *at_attack_get_options(probe);
        at_attack_free(probe);
    }
    const int bins = plan->calibration_bins ? plan->calibration_bins : AT_CALIBRATION_DEFAULT_BINS;
    at_error err;
    if (at_calibration_init(&r->clean_calibration, bins, &err) ||
        (plan->n_attacks > 0 && at_calibration_init(&r->adversarial_calibration, bins, &err)))
        return cli_error("eval", EXIT_USAGE, "%s", err.message);
    int status;
    long done = load_state(path, fingerprint, plan, total, r, &status);
    if (status)
        return status;
    if (done && !quiet)
        fprintf(stderr, "resuming the evaluation in %s after %ld of %ld points\n", path, done, total);
    long budget_left = budget > 0 ? budget : total;
    while (done < total && budget_left > 0) {
        at_eval_plan part = *plan;
        part.first_point = done;
        part.points = (int)(total - done < chunk ? total - done : chunk);
        if (part.points > budget_left)
            part.points = (int)budget_left;
        at_eval_result piece;
        if (at_eval_robust(model, ds, &part, &piece, NULL, NULL, &err))
            return cli_error("eval", EXIT_WORK_FAILED, "%s", err.message);
        memcpy(r->outcome + done, piece.outcome, (size_t)piece.points);
        if (at_calibration_merge(&r->clean_calibration, &piece.clean_calibration, &err) ||
            (plan->n_attacks > 0 &&
             at_calibration_merge(&r->adversarial_calibration, &piece.adversarial_calibration, &err))) {
            at_eval_result_free(&piece);
            return cli_error("eval", EXIT_WORK_FAILED, "%s", err.message);
        }
        r->clean_correct += piece.clean_correct;
        r->clean_seconds += piece.clean_seconds;
        for (int a = 0; a < plan->n_attacks; a++) {
            r->broken_by[a] += piece.broken_by[a];
            r->seconds[a] += piece.seconds[a];
            at_attack_stats_merge(&r->stats[a], &piece.stats[a]);
        }
        done += piece.points;
        budget_left -= piece.points;
        at_eval_result_free(&piece);
        if ((status = save_state(path, fingerprint, done, total, plan, r)))
            return status;
        if (!quiet)
            fprintf(stderr, "\revaluated %ld/%ld points (state in %s)", done, total, path);
    }
    if (!quiet)
        fputc('\n', stderr);
    long broken = 0;
    for (int a = 0; a < plan->n_attacks; a++) {
        broken += r->broken_by[a];
        r->robust_after[a] = r->clean_correct - broken;
    }
    *finished = done == total;
    return 0;
}
