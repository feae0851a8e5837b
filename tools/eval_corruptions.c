/* eval_corruptions.c: `advtrain eval --suite corruptions`: accuracy under each common corruption
 * at each severity (generated from the clean split by the library, or read from real CIFAR-10-C
 * files), the mean corruption accuracy, and against a baseline model the corruption errors of
 * Hendrycks and Dietterich (ICLR 2019, section 4):
 *   CE_c = sum_s E_{s,c} / sum_s E^base_{s,c},   mCE = mean_c CE_c,
 *   relative CE_c = sum_s (E_{s,c} - E_clean) / sum_s (E^base_{s,c} - E^base_clean).
 * Confidence intervals: Wilson's for each cell; for the means, over images (each image's share of
 * the 75 cells it survives is one observation, so the dependence between cells of one image is
 * respected); for (relative) mCE a paired bootstrap over images (1,000 resamples, percentiles). */
#include "eval_corruptions.h"

#include "eval_report.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { SEVERITIES = 5, BOOTSTRAP = 1000 };

/* Errors of one model: per corruption and image, how many of the 5 severities it got wrong;
 * and its clean errors per image. */
typedef struct model_errors {
    uint8_t *wrong;       /* [corruptions, n] */
    uint8_t *clean_wrong; /* [n] */
    long cell_correct[32][SEVERITIES];
    long clean_correct;
    at_calibration clean_calibration, corrupted_calibration; /* every cell together */
    double ece[32];       /* per corruption, its five severities together */
} model_errors;

static int evaluate_model(at_model *model, const at_dataset *ds, const eval_corruption_args *a,
                          const int *which, int n_which, model_errors *out, const char *label)
{
    at_error err;
    const long n = ds->n;
    const int k = at_model_num_classes(model);
    uint8_t *right = malloc((size_t)n);
    float *logits = malloc((size_t)n * k * sizeof(float));
    out->wrong = calloc((size_t)n_which * n, 1);
    out->clean_wrong = calloc((size_t)n, 1);
    if (!right || !logits || !out->wrong || !out->clean_wrong) {
        free(right);
        free(logits);
        return cli_error("eval", EXIT_WORK_FAILED, "out of memory for %ld images", n);
    }
    if (at_calibration_init(&out->clean_calibration, a->calibration_bins, &err) ||
        at_calibration_init(&out->corrupted_calibration, a->calibration_bins, &err)) {
        free(right);
        free(logits);
        return cli_error("eval", EXIT_USAGE, "%s", err.message);
    }
    cli_progress progress;
    cli_progress_start(&progress, a->quiet);
    const long cells = (long)n_which * SEVERITIES + 1;
    /* CIFAR-10-C holds no clean images: its clean accuracy (and relative mCE) is not measured */
    int status = 0;
    out->clean_correct = -1;
    if (!a->cifar_c_dir)
        status = at_eval_corrupted(model, ds, -1, 0, a->seed, a->batch_size, right, logits,
                                   &out->clean_correct, &err) ||
                 at_calibration_add_logits(&out->clean_calibration, logits, (int)n, k, ds->labels,
                                           &err);
    for (long i = 0; i < n && !status && !a->cifar_c_dir; i++)
        out->clean_wrong[i] = !right[i];
    for (int q = 0; q < n_which && !status; q++) {
        at_calibration one = {0};
        if ((status = at_calibration_init(&one, a->calibration_bins, &err)))
            break;
        for (int s = 1; s <= SEVERITIES && !status; s++) {
            char what[96];
            snprintf(what, sizeof what, "%s: %s %d", label, at_corruption_name(which[q]), s);
            cli_progress_update(&progress, what, 1 + (long)q * SEVERITIES + s - 1, cells, NULL);
            const at_dataset *cell = ds;
            at_dataset real = {0};
            int corruption = which[q];
            if (a->cifar_c_dir) { /* the published images of this cell, not generated ones */
                if ((status = at_dataset_load_cifar_c(&real, a->cifar_c_dir,
                                                      at_corruption_name(which[q]), s,
                                                      ds->num_classes, &err)))
                    break;
                if (real.n > n) { /* --n: the first n images of each cell, as of the clean set */
                    at_dataset first = {0};
                    status = at_dataset_slice(&first, &real, 0, (int)n, &err);
                    at_dataset_free(&real);
                    real = first;
                    if (status)
                        break;
                }
                if (real.n != n) {
                    cli_progress_clear(&progress);
                    free(right);
                    free(logits);
                    at_calibration_free(&one);
                    long got = real.n;
                    at_dataset_free(&real);
                    return cli_error("eval", EXIT_WORK_FAILED, "%s/%s.npy: %ld images per severity, "
                                     "expected %ld", a->cifar_c_dir, at_corruption_name(which[q]),
                                     got, n);
                }
                cell = &real;
                corruption = -1;
            }
            status = at_eval_corrupted(model, cell, corruption, s, a->seed, a->batch_size, right,
                                       logits, &out->cell_correct[q][s - 1], &err);
            if (!status)
                status = at_calibration_add_logits(&one, logits, (int)n, k, cell->labels, &err);
            for (long i = 0; i < n && !status; i++)
                out->wrong[(size_t)q * n + i] += !right[i];
            at_dataset_free(&real);
        }
        out->ece[q] = at_calibration_ece(&one);
        if (!status)
            status = at_calibration_merge(&out->corrupted_calibration, &one, &err);
        at_calibration_free(&one);
    }
    cli_progress_clear(&progress);
    free(right);
    free(logits);
    if (status)
        return cli_error("eval", EXIT_WORK_FAILED, "%s", err.message);
    return 0;
}

static void free_errors(model_errors *e)
{
    free(e->wrong);
    free(e->clean_wrong);
    at_calibration_free(&e->clean_calibration);
    at_calibration_free(&e->corrupted_calibration);
}

/* Mean over images of x_i, with a normal 95% interval (the images are independent). */
static void mean_ci(const double *x, long n, double *mean, double *lo, double *hi)
{
    double sum = 0, sq = 0;
    for (long i = 0; i < n; i++)
        sum += x[i];
    *mean = sum / n;
    for (long i = 0; i < n; i++)
        sq += (x[i] - *mean) * (x[i] - *mean);
    const double se = n > 1 ? sqrt(sq / (n - 1) / n) : 0.0;
    *lo = *mean - 1.96 * se;
    *hi = *mean + 1.96 * se;
}

/* (relative) mCE of f against b on the images idx[0..n-1]; NAN where a baseline sum is 0. */
static double mce(const model_errors *f, const model_errors *b, int n_which, long n_all,
                  const long *idx, long n, bool relative, double *per_corruption)
{
    double total = 0;
    int counted = 0;
    for (int q = 0; q < n_which; q++) {
        double num = 0, den = 0;
        const uint8_t *wf = f->wrong + (size_t)q * n_all, *wb = b->wrong + (size_t)q * n_all;
        for (long j = 0; j < n; j++) {
            const long i = idx ? idx[j] : j;
            num += wf[i] - (relative ? SEVERITIES * f->clean_wrong[i] : 0);
            den += wb[i] - (relative ? SEVERITIES * b->clean_wrong[i] : 0);
        }
        const double ce = den != 0 ? num / den : NAN;
        if (per_corruption)
            per_corruption[q] = ce;
        if (isfinite(ce)) {
            total += ce;
            counted++;
        }
    }
    return counted == n_which ? total / counted : NAN;
}

static int compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Percentile interval of the paired bootstrap over images. */
static void bootstrap_ci(const model_errors *f, const model_errors *b, int n_which, long n,
                         bool relative, uint64_t seed, double *lo, double *hi)
{
    long *idx = malloc((size_t)n * sizeof(long));
    double *stats = malloc(BOOTSTRAP * sizeof(double));
    *lo = *hi = NAN;
    if (!idx || !stats) {
        free(idx);
        free(stats);
        return;
    }
    at_rng rng;
    at_rng_stream(&rng, seed, 0xc0, relative);
    int kept = 0;
    for (int r = 0; r < BOOTSTRAP; r++) {
        for (long j = 0; j < n; j++)
            idx[j] = (long)at_rng_below(&rng, (uint32_t)n);
        double v = mce(f, b, n_which, n, idx, n, relative, NULL);
        if (isfinite(v))
            stats[kept++] = v;
    }
    if (kept > BOOTSTRAP / 2) {
        qsort(stats, (size_t)kept, sizeof(double), compare_doubles);
        *lo = stats[(int)(0.025 * (kept - 1))];
        *hi = stats[(int)ceil(0.975 * (kept - 1))];
    }
    free(idx);
    free(stats);
}

static json_t *number_or_null(double v) { return isfinite(v) ? json_real(v) : json_null(); }

/* A ratio, or "n/a" where the baseline's errors it divides by are none (JSON: null). */
static void print_ratio(double v, int width, const char *before)
{
    if (isfinite(v))
        printf("%s%*.3f", before, width, v);
    else
        printf("%s%*s", before, width, "n/a");
}

static json_t *clean_json(long correct, long n)
{
    return correct >= 0 ? cli_accuracy_json(correct, n) : json_null();
}

/* The corruption names to run: all, or the comma-separated list of a->names. */
static int choose(const eval_corruption_args *a, int *which, int *n_which)
{
    *n_which = 0;
    if (!a->names) {
        for (int q = 0; q < at_corruption_count(); q++)
            which[(*n_which)++] = q;
        return 0;
    }
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", a->names);
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        int q = at_corruption_find(tok);
        if (q < 0)
            return cli_error("eval", EXIT_USAGE, "--corruptions: unknown corruption '%s' (advtrain "
                                                 "list corruptions)", tok);
        for (int j = 0; j < *n_which; j++)
            if (which[j] == q)
                return cli_error("eval", EXIT_USAGE, "--corruptions: '%s' given twice", tok);
        which[(*n_which)++] = q;
    }
    return 0;
}

int cli_eval_corruptions(at_model *model, at_model *baseline, const at_dataset *ds,
                         const eval_corruption_args *a, json_t *report)
{
    int which[32], n_which;
    int status = choose(a, which, &n_which);
    if (status)
        return status;
    const long n = ds->n;
    model_errors f = {0}, b = {0};
    double *share = malloc((size_t)n * sizeof(double));
    double *ce = malloc(32 * sizeof(double)), *rce = malloc(32 * sizeof(double));
    if (!share || !ce || !rce) {
        status = cli_error("eval", EXIT_WORK_FAILED, "out of memory");
        goto done;
    }
    if ((status = evaluate_model(model, ds, a, which, n_which, &f, "model")) ||
        (baseline && (status = evaluate_model(baseline, ds, a, which, n_which, &b, "baseline"))))
        goto done;

    const int cells = n_which * SEVERITIES;
    for (long i = 0; i < n; i++) {
        long right = 0;
        for (int q = 0; q < n_which; q++)
            right += SEVERITIES - f.wrong[(size_t)q * n + i];
        share[i] = (double)right / cells;
    }
    double mean, lo, hi;
    mean_ci(share, n, &mean, &lo, &hi);
    double mce_value = NAN, mce_lo = NAN, mce_hi = NAN, rmce = NAN, rmce_lo = NAN, rmce_hi = NAN;
    if (baseline) {
        mce_value = mce(&f, &b, n_which, n, NULL, n, false, ce);
        bootstrap_ci(&f, &b, n_which, n, false, a->seed, &mce_lo, &mce_hi);
        for (int q = 0; q < n_which; q++)
            rce[q] = NAN;
        if (f.clean_correct >= 0) {
            rmce = mce(&f, &b, n_which, n, NULL, n, true, rce);
            bootstrap_ci(&f, &b, n_which, n, true, a->seed, &rmce_lo, &rmce_hi);
        }
    }

    printf("common corruptions (%s, seed %llu), accuracy %% at severity 1..5:\n",
           a->cifar_c_dir ? "CIFAR-10-C files" : "generated", (unsigned long long)a->seed);
    printf("  %-18s %7s %7s %7s %7s %7s %7s%s\n", "corruption", "1", "2", "3", "4", "5", "mean",
           baseline ? "      CE  rel. CE" : "");
    json_t *rows = json_array();
    for (int q = 0; q < n_which; q++) {
        const char *name = at_corruption_name(which[q]);
        json_t *sev = json_array();
        long total = 0;
        printf("  %-18s", name);
        for (int s = 0; s < SEVERITIES; s++) {
            const long c = f.cell_correct[q][s];
            total += c;
            printf(" %7.2f", 100.0 * c / n);
            json_array_append_new(sev, cli_accuracy_json(c, n));
        }
        printf(" %7.2f", 100.0 * total / (SEVERITIES * n));
        json_t *row = json_pack("{s:s, s:s, s:o, s:f, s:o}", "corruption", name, "family",
                                at_corruption_family(which[q]), "severities", sev, "accuracy",
                                (double)total / (SEVERITIES * n), "ece", number_or_null(f.ece[q]));
        if (baseline) {
            print_ratio(ce[q], 7, " ");
            print_ratio(rce[q], 7, " ");
            json_object_set_new(row, "ce", number_or_null(ce[q]));
            json_object_set_new(row, "relative_ce", number_or_null(rce[q]));
        }
        printf("\n");
        json_array_append_new(rows, row);
    }
    if (f.clean_correct >= 0)
        printf("  clean accuracy %.2f%%;", 100.0 * f.clean_correct / n);
    printf("  mean corruption accuracy %.2f%% (95%% CI %.2f-%.2f%%, %d corruptions x 5 "
           "severities, %ld images)\n", 100 * mean, 100 * lo, 100 * hi, n_which, n);
    json_t *out = json_pack("{s:s, s:I, s:i, s:o, s:o, s:f, s:[f,f]}", "source",
                            a->cifar_c_dir ? "cifar10-c" : "generated", "seed", (json_int_t)a->seed, "n",
                            (int)n, "clean", clean_json(f.clean_correct, n), "corruptions",
                            rows, "mean_accuracy", mean, "mean_accuracy_ci", lo, hi);
    if (a->cifar_c_dir)
        json_object_set_new(out, "cifar_c_dir", json_string(a->cifar_c_dir));
    if (baseline) {
        printf("  against the baseline %s: mCE", a->baseline_path);
        print_ratio(mce_value, 0, " ");
        print_ratio(mce_lo, 0, " (95% CI ");
        print_ratio(mce_hi, 0, "-");
        printf(")");
        if (b.clean_correct >= 0) {
            print_ratio(rmce, 0, ", relative mCE ");
            print_ratio(rmce_lo, 0, " (");
            print_ratio(rmce_hi, 0, "-");
            printf("); baseline clean accuracy %.2f%%", 100.0 * b.clean_correct / n);
        }
        printf("\n");
        json_t *base = json_pack("{s:s, s:o, s:o, s:[o,o], s:o, s:[o,o]}", "checkpoint",
                                 a->baseline_path, "clean", clean_json(b.clean_correct, n),
                                 "mce", number_or_null(mce_value), "mce_ci",
                                 number_or_null(mce_lo), number_or_null(mce_hi), "relative_mce",
                                 number_or_null(rmce), "relative_mce_ci", number_or_null(rmce_lo),
                                 number_or_null(rmce_hi));
        json_object_set_new(out, "baseline", base);
    }
    json_object_set_new(report, "corruption_suite", out);
    /* beside the attack cascade's: the report page draws each set's reliability diagram */
    if (f.clean_correct >= 0)
        cli_calibration_print(stdout, "clean calibration", &f.clean_calibration);
    cli_calibration_print(stdout, "corrupted calibration", &f.corrupted_calibration);
    json_t *cal = json_pack("{s:i, s:o}", "bins", a->calibration_bins, "corrupted",
                            cli_calibration_json(&f.corrupted_calibration));
    if (f.clean_correct >= 0)
        json_object_set_new(cal, "clean", cli_calibration_json(&f.clean_calibration));
    json_object_set_new(report, "calibration", cal);
done:
    free(share);
    free(ce);
    free(rce);
    free_errors(&f);
    free_errors(&b);
    return status;
}
