/* cmd_report.c: `advtrain report RUN_DIR`: one self-contained HTML page (no scripts, no external
 * files: figures inline as SVG, examples as an embedded PNG) from what a run left behind
 * (log.jsonl, report.json, run.cfg, checkpoints) and any evaluation reports in the directory
 * (eval*.json): training curves with the early-stopping epoch, accuracy against eps, the
 * per-attack breakdown with confidence intervals and validity checks, reliability diagrams of
 * the clean and adversarial calibration (Guo et al. 2017), a grid of adversarial
 * examples, and the exact configuration, seed, code version and data hashes. The figures are
 * also left as files in RUN_DIR/figures. */
#include "cli.h"
#include "plots.h"

#include <dirent.h>
#include <math.h>
#include <nettle/base64.h>
#include <stdlib.h>
#include <string.h>

typedef struct report_opts {
    const char *out, *data_dir;
    int examples;
} report_opts;

static report_opts opts = {.examples = 8};

static const cli_option options[] = {
    {"out", CLI_STRING, &opts.out, 0, 0, NULL, "FILE", "the page; default RUN_DIR/report.html"},
    {"data-dir", CLI_STRING, &opts.data_dir, 0, 0, NULL, "DIR", "where the run's data set is, for the examples"},
    {"examples", CLI_INT, &opts.examples, 0, 64, NULL, "N", "adversarial examples shown (0 = none); default 8"},
};

static const cli_command command = {
    "report", "Make one self-contained HTML page (and SVG/PNG figures) from a run directory.\n"
              "  advtrain report runs/at",
    "advtrain report RUN_DIR [options]", options, sizeof options / sizeof options[0]};

/* dir/name into out; a path that does not fit becomes "" (opening it then fails cleanly). */
static void join(char *out, size_t cap, const char *dir, const char *name)
{
    size_t a = strlen(dir), b = strlen(name);
    if (a + 1 + b + 1 > cap) {
        out[0] = '\0';
        return;
    }
    memcpy(out, dir, a);
    out[a] = '/';
    memcpy(out + a + 1, name, b + 1);
}

/* Text of a whole file (malloc'd), or NULL. */
static char *slurp(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) {
        buf[n] = '\0';
        if (size)
            *size = (size_t)n;
    }
    return buf;
}

static void html_text(FILE *out, const char *s)
{
    for (; s && *s; s++)
        switch (*s) {
        case '<': fputs("&lt;", out); break;
        case '>': fputs("&gt;", out); break;
        case '&': fputs("&amp;", out); break;
        case '"': fputs("&quot;", out); break;
        default: fputc(*s, out);
        }
}

static void embed_file(FILE *out, const char *path)
{
    char *text = slurp(path, NULL);
    if (text)
        fputs(strstr(text, "<svg") ? strstr(text, "<svg") : text, out);
    free(text);
}

static void embed_png(FILE *out, const char *path)
{
    size_t n;
    char *bytes = slurp(path, &n);
    if (!bytes)
        return;
    char *encoded = malloc(BASE64_ENCODE_RAW_LENGTH(n) + 1);
    if (encoded) {
        base64_encode_raw(encoded, n, (const uint8_t *)bytes);
        encoded[BASE64_ENCODE_RAW_LENGTH(n)] = '\0';
        fprintf(out, "<img alt=\"clean, adversarial and perturbation\" src=\"data:image/png;base64,%s\">",
                encoded);
    }
    free(encoded);
    free(bytes);
}

static double number(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    return json_is_number(v) ? json_number_value(v) : NAN;
}

/* Training curves from log.jsonl: loss, and accuracies with the best epoch marked. */
static int training_figures(const char *dir, json_t *epochs, const char *fig_dir, at_error *err)
{
    size_t n = json_array_size(epochs);
    if (n == 0)
        return 0;
    double *x = calloc(n, sizeof(double)), *v[5];
    for (int k = 0; k < 5; k++)
        v[k] = calloc(n, sizeof(double));
    int best = -1;
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_array_get(epochs, i);
        x[i] = number(e, "epoch");
        v[0][i] = number(e, "train_loss");
        v[1][i] = number(e, "train_acc");
        v[2][i] = number(e, "val_acc");
        v[3][i] = number(e, "val_robust_acc");
        v[4][i] = json_is_true(json_object_get(e, "best")) ? v[3][i] : NAN;
        if (json_is_true(json_object_get(e, "best")))
            best = (int)i;
    }
    char path[4096];
    plot_series loss = {"training loss", v[0], NULL, NULL};
    join(path, sizeof path, fig_dir, "loss.svg");
    int status = plot_svg_lines(path, "training loss per epoch", "epoch", "loss", x, (int)n, &loss, 1, err);
    plot_series acc[4] = {{"train", v[1], NULL, NULL}, {"val clean", v[2], NULL, NULL},
                          {"val PGD-10", v[3], NULL, NULL}, {"best so far", v[4], NULL, NULL}};
    join(path, sizeof path, fig_dir, "accuracy.svg");
    if (!status)
        status = plot_svg_lines(path, best >= 0 ? "accuracy per epoch (best: marked)" : "accuracy per epoch",
                                "epoch", "accuracy", x, (int)n, acc, 4, err);
    free(x);
    for (int k = 0; k < 5; k++)
        free(v[k]);
    (void)dir;
    return status;
}

static void accuracy_cell(FILE *out, json_t *acc)
{
    json_t *ci = json_object_get(acc, "ci95");
    fprintf(out, "<td>%.2f%%</td><td>[%.2f, %.2f]</td><td>%lld / %lld</td>", 100 * number(acc, "accuracy"),
            100 * json_number_value(json_array_get(ci, 0)), 100 * json_number_value(json_array_get(ci, 1)),
            (long long)json_integer_value(json_object_get(acc, "correct")),
            (long long)json_integer_value(json_object_get(acc, "n")));
}

/* A cascade (final suite or an eval report): per attack, what it broke and the checks. */
static void cascade_table(FILE *out, json_t *c, const char *title)
{
    json_t *attacks = json_object_get(c, "attacks");
    if (!json_is_array(attacks))
        return;
    fprintf(out, "<h3>");
    html_text(out, title);
    fprintf(out, "</h3>\n<table><tr><th>after</th><th>accuracy</th><th>95%% CI</th><th>points</th>"
                 "<th>broke</th><th>max L&infin;</th><th>max L2</th><th>outside [0,1]</th><th>BN</th>"
                 "<th>zero gradients</th><th>seconds</th></tr>\n<tr><td>clean</td>");
    accuracy_cell(out, json_object_get(c, "clean"));
    fprintf(out, "<td></td><td></td><td></td><td></td><td>eval</td><td></td><td></td></tr>\n");
    size_t i;
    json_t *a;
    json_array_foreach(attacks, i, a) {
        json_t *m = json_object_get(a, "max_perturbation");
        fprintf(out, "<tr><td>");
        html_text(out, json_string_value(json_object_get(a, "name")));
        fprintf(out, "</td>");
        accuracy_cell(out, json_object_get(a, "robust_after"));
        fprintf(out, "<td>%lld</td><td>%.4g</td><td>%.4g</td><td>%lld</td><td>%s</td><td>%lld / %lld</td>"
                     "<td>%.1f</td></tr>\n",
                (long long)json_integer_value(json_object_get(a, "broken")), number(m, "linf"),
                number(m, "l2"), (long long)json_integer_value(json_object_get(a, "outputs_outside_0_1")),
                json_string_value(json_object_get(a, "bn_mode")),
                (long long)json_integer_value(json_object_get(a, "zero_gradients")),
                (long long)json_integer_value(json_object_get(a, "gradient_evaluations")),
                number(a, "seconds"));
    }
    fprintf(out, "</table>\n");
    json_t *flags = json_object_get(c, "flags");
    if (json_is_array(flags) && json_array_size(flags)) {
        fprintf(out, "<ul class=\"flags\">");
        json_array_foreach(flags, i, a) {
            fprintf(out, "<li><b>");
            html_text(out, json_string_value(json_object_get(a, "id")));
            fprintf(out, "</b>: ");
            html_text(out, json_string_value(json_object_get(a, "message")));
            fprintf(out, "</li>");
        }
        fprintf(out, "</ul>\n");
    } else if (json_is_array(flags)) {
        fprintf(out, "<p class=\"ok\">No flags: every attack stayed in the threat model and saw "
                     "gradients.</p>\n");
    }
}

/* Adversarial examples of the run's final model (PGD-20 at the training eps) as a PNG grid. */
static int examples_png(const char *dir, json_t *train_report, const char *png, at_error *err)
{
    json_t *config = json_object_get(train_report, "config");
    double eps = number(config, "eps");
    const char *data = json_string_value(json_object_get(config, "data"));
    if (!(eps > 0) || !data || opts.examples == 0)
        return 1; /* nothing to show */
    char path[4096];
    join(path, sizeof path, dir, "best.safetensors");
    FILE *probe = fopen(path, "rb");
    if (probe)
        fclose(probe);
    else
        join(path, sizeof path, dir, "last.safetensors");
    at_safetensors *st = NULL;
    at_model *model = NULL;
    at_dataset ds = {0};
    at_attack *attack = NULL;
    int status = at_st_open(&st, path, err);
    const char *spec = st ? at_st_meta(st, "model") : NULL;
    if (!status && !spec) {
        snprintf(err->message, sizeof err->message, "%.400s does not describe its model", path);
        status = err->status = AT_ERR_FORMAT;
    }
    if (!status)
        status = at_model_create_from_spec(&model, spec, err);
    if (!status)
        status = at_checkpoint_load(path, model, NULL, NULL, err);
    if (!status)
        status = at_dataset_open(&ds, data, opts.data_dir, "test", err);
    int n = opts.examples < ds.n ? opts.examples : ds.n;
    at_attack_options o = {.norm = !strcmp(json_string_value(json_object_get(config, "norm")) ?
                                               json_string_value(json_object_get(config, "norm")) : "linf", "l2")
                                       ? AT_NORM_L2 : AT_NORM_LINF,
                           .eps = (float)eps, .steps = 20, .step_size = (float)eps / 10};
    if (!status)
        status = at_attack_create(&attack, "pgd", model, n, &o, err);
    size_t image = (size_t)ds.c * ds.h * ds.w;
    float *x = status ? NULL : malloc((size_t)n * image * sizeof(float));
    float *adv = status ? NULL : malloc((size_t)n * image * sizeof(float));
    int32_t y[64], idx[64];
    uint64_t seeds[64];
    if (!status && x && adv) {
        for (int i = 0; i < n; i++)
            idx[i] = i;
        at_dataset_batch(&ds, idx, n, x, y, NULL, NULL);
        at_attack_seeds(0, 0, n, seeds);
        status = at_attack_run(attack, x, y, NULL, n, seeds, adv, NULL);
        if (!status)
            status = plot_png_grid(png, x, adv, n, ds.c, ds.h, ds.w, ds.h < 64 ? 4 : 2, err);
    }
    free(x);
    free(adv);
    at_attack_free(attack);
    at_dataset_free(&ds);
    at_model_free(model);
    at_st_free(st);
    return status;
}

static void curve_figure(json_t *eval, const char *svg, const char *label, at_error *err)
{
    json_t *curve = json_object_get(eval, "curve");
    size_t n = json_array_size(curve);
    if (n < 1 || n > 64)
        return;
    double x[64], y[64], lo[64], hi[64];
    for (size_t i = 0; i < n; i++) {
        json_t *p = json_array_get(curve, i), *ci = json_object_get(p, "ci95");
        x[i] = number(p, "eps");
        y[i] = number(p, "accuracy");
        lo[i] = json_number_value(json_array_get(ci, 0));
        hi[i] = json_number_value(json_array_get(ci, 1));
    }
    plot_series s = {label, y, lo, hi};
    plot_svg_lines(svg, "robust accuracy against eps (95% CI shaded)", "eps", "accuracy", x, (int)n,
                   &s, 1, err);
}

enum { N_CALIBRATION_SETS = 3 };
static const char *const CALIBRATION_SETS[N_CALIBRATION_SETS] = {"clean", "adversarial", "corrupted"};
static const char *const CALIBRATION_TITLES[N_CALIBRATION_SETS] = {
    "reliability: clean inputs", "reliability: adversarial inputs (the cascade's final examples)",
    "reliability: corrupted inputs (every corruption and severity of the suite)"};

/* Reliability diagrams of an evaluation report's calibration tables, as
 * figures/reliability<index>-<clean|adversarial|corrupted>.svg. */
static void reliability_figures(json_t *eval, size_t index, const char *fig_dir, at_error *err)
{
    json_t *cal = json_object_get(eval, "calibration");
    for (int s = 0; s < N_CALIBRATION_SETS; s++) {
        json_t *set = json_object_get(cal, CALIBRATION_SETS[s]);
        json_t *table = json_object_get(set, "table");
        size_t bins = json_array_size(table);
        if (bins < 1 || bins > AT_CALIBRATION_MAX_BINS)
            continue;
        long *count = calloc(bins, sizeof(long));
        double *acc = calloc(bins, sizeof(double)), *conf = calloc(bins, sizeof(double));
        if (count && acc && conf) {
            for (size_t m = 0; m < bins; m++) {
                json_t *row = json_array_get(table, m);
                count[m] = (long)json_integer_value(json_object_get(row, "count"));
                acc[m] = number(row, "accuracy");
                conf[m] = number(row, "confidence");
            }
            char name[96], path[4096];
            snprintf(name, sizeof name, "reliability%zu-%s.svg", index, CALIBRATION_SETS[s]);
            join(path, sizeof path, fig_dir, name);
            plot_svg_reliability(path, CALIBRATION_TITLES[s], (int)bins, count, acc, conf, number(set, "ece"), err);
        }
        free(count);
        free(acc);
        free(conf);
    }
}

/* The calibration measures of an evaluation report and its reliability diagrams. */
static void calibration_section(FILE *out, json_t *eval, size_t index, const char *fig_dir)
{
    json_t *cal = json_object_get(eval, "calibration");
    if (!json_is_object(json_object_get(cal, "clean")) &&
        !json_is_object(json_object_get(cal, "corrupted")))
        return;
    fprintf(out, "<h3>Calibration</h3>\n<p>Expected calibration error over %lld equal-width "
                 "confidence bins (Guo et al., ICML 2017); the adversarial inputs are each point's "
                 "final example of the attack cascade (the clean input where the model was already "
                 "wrong); the corrupted ones every image under every corruption and severity of "
                 "the corruption suite.</p>\n<table><tr><th>inputs</th><th>ECE</th><th>MCE</th><th>NLL</th>"
                 "<th>Brier</th><th>accuracy</th><th>mean confidence</th><th>points</th></tr>\n",
            (long long)json_integer_value(json_object_get(cal, "bins")));
    for (int s = 0; s < N_CALIBRATION_SETS; s++) {
        json_t *set = json_object_get(cal, CALIBRATION_SETS[s]);
        if (!json_is_object(set))
            continue;
        fprintf(out, "<tr><td>%s</td><td>%.2f%%</td><td>%.2f%%</td><td>%.4f</td><td>%.4f</td>"
                     "<td>%.2f%%</td><td>%.2f%%</td><td>%lld</td></tr>\n",
                CALIBRATION_SETS[s], 100 * number(set, "ece"), 100 * number(set, "mce"),
                number(set, "nll"), number(set, "brier"), 100 * number(set, "accuracy"),
                100 * number(set, "mean_confidence"),
                (long long)json_integer_value(json_object_get(set, "n")));
    }
    fprintf(out, "</table>\n");
    for (int s = 0; s < N_CALIBRATION_SETS; s++) {
        char name[96], path[4096];
        snprintf(name, sizeof name, "reliability%zu-%s.svg", index, CALIBRATION_SETS[s]);
        join(path, sizeof path, fig_dir, name);
        FILE *probe = fopen(path, "r");
        if (probe) {
            fclose(probe);
            embed_file(out, path);
        }
    }
}

/* A table cell: the number in the format, or "n/a" where the report has none (null). */
static void number_cell(FILE *out, double v, const char *format)
{
    fprintf(out, "<td>");
    if (isfinite(v))
        fprintf(out, format, v);
    else
        fprintf(out, "n/a");
    fprintf(out, "</td>");
}

/* The corruption suite of an eval report: accuracy per corruption and severity, its mean with
 * its interval, and with a baseline the corruption errors and mCE (Hendrycks and Dietterich,
 * ICLR 2019). */
static void corruption_section(FILE *out, json_t *eval)
{
    json_t *suite = json_object_get(eval, "corruption_suite");
    json_t *rows = json_object_get(suite, "corruptions");
    if (!json_is_array(rows))
        return;
    json_t *base = json_object_get(suite, "baseline"), *ci = json_object_get(suite, "mean_accuracy_ci");
    fprintf(out, "<h3>Common corruptions</h3>\n<p>%lld images (%s), mean corruption accuracy %.2f%% "
                 "(95%% CI %.2f-%.2f%%)",
            (long long)json_integer_value(json_object_get(suite, "n")),
            json_string_value(json_object_get(suite, "source")), 100 * number(suite, "mean_accuracy"),
            100 * json_number_value(json_array_get(ci, 0)), 100 * json_number_value(json_array_get(ci, 1)));
    if (json_is_object(base)) {
        json_t *mci = json_object_get(base, "mce_ci");
        fprintf(out, "; against the baseline <code>");
        html_text(out, json_string_value(json_object_get(base, "checkpoint")));
        fprintf(out, "</code>: mCE %.3f (95%% CI %.3f-%.3f)", number(base, "mce"),
                json_number_value(json_array_get(mci, 0)), json_number_value(json_array_get(mci, 1)));
    }
    fprintf(out, ".</p>\n<table><tr><th>corruption</th><th>family</th><th>1</th><th>2</th><th>3</th>"
                 "<th>4</th><th>5</th><th>mean</th><th>ECE</th>%s</tr>\n",
            json_is_object(base) ? "<th>CE</th><th>relative CE</th>" : "");
    size_t i, s;
    json_t *row, *cell;
    json_array_foreach(rows, i, row) {
        fprintf(out, "<tr><td>");
        html_text(out, json_string_value(json_object_get(row, "corruption")));
        fprintf(out, "</td><td>");
        html_text(out, json_string_value(json_object_get(row, "family")));
        fprintf(out, "</td>");
        json_array_foreach(json_object_get(row, "severities"), s, cell)
            fprintf(out, "<td>%.2f%%</td>", 100 * number(cell, "accuracy"));
        fprintf(out, "<td>%.2f%%</td>", 100 * number(row, "accuracy"));
        number_cell(out, 100 * number(row, "ece"), "%.2f%%");
        if (json_is_object(base)) {
            number_cell(out, number(row, "ce"), "%.3f");
            number_cell(out, number(row, "relative_ce"), "%.3f");
        }
        fprintf(out, "</tr>\n");
    }
    fprintf(out, "</table>\n");
}

static json_t *read_log(const char *path)
{
    json_t *epochs = json_array();
    FILE *f = fopen(path, "r");
    if (!f)
        return epochs;
    char line[8192];
    while (fgets(line, sizeof line, f)) {
        json_error_t jerr;
        json_t *e = json_loads(line, 0, &jerr);
        if (e)
            json_array_append_new(epochs, e);
    }
    fclose(f);
    return epochs;
}

static void write_page(FILE *out, const char *dir, json_t *train, json_t *epochs, json_t *evals,
                       const char *fig_dir, bool have_examples)
{
    json_t *config = json_object_get(train, "config"), *final = json_object_get(train, "final");
    char path[4096];
    fprintf(out, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<title>advtrain "
                 "report: ");
    html_text(out, dir);
    fprintf(out, "</title>\n<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;"
                 "color:#222}table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;"
                 "padding:4px 8px;text-align:right}th{background:#eef}h2{border-bottom:2px solid #88a}"
                 ".flags li{color:#a00}.ok{color:#070}pre{background:#f4f4f4;padding:1em;overflow:auto}"
                 "img{image-rendering:pixelated;max-width:100%%}</style></head><body>\n");
    fprintf(out, "<h1>advtrain report: ");
    html_text(out, dir);
    fprintf(out, "</h1>\n");
    if (config) {
        fprintf(out, "<p>Method <b>");
        html_text(out, json_string_value(json_object_get(config, "method")));
        fprintf(out, "</b>, model <b>");
        html_text(out, json_string_value(json_object_get(config, "model")));
        fprintf(out, "</b>, data <b>");
        html_text(out, json_string_value(json_object_get(config, "data")));
        fprintf(out, "</b>, %lld epochs", (long long)json_integer_value(json_object_get(config, "epochs")));
        if (number(config, "eps") > 0)
            fprintf(out, ", training eps %g (%s)", number(config, "eps"),
                    json_string_value(json_object_get(config, "norm")));
        fprintf(out, ", seed %lld", (long long)json_integer_value(json_object_get(config, "seed")));
        if (json_is_string(json_object_get(config, "init"))) {
            fprintf(out, ", fine-tuned from <code>");
            html_text(out, json_string_value(json_object_get(config, "init")));
            fprintf(out, "</code>");
        }
        fprintf(out, ".</p>\n");
    }
    const char *warning = json_string_value(json_object_get(train, "warning"));
    if (warning) {
        fprintf(out, "<ul class=\"flags\"><li>Warning: ");
        html_text(out, warning);
        fprintf(out, "</li></ul>\n");
    }
    if (final) {
        fprintf(out, "<h2>Final evaluation</h2>\n<p>Weights: ");
        html_text(out, json_string_value(json_object_get(final, "weights")));
        if (json_object_get(final, "epoch"))
            fprintf(out, " (epoch %lld, chosen by validation PGD-10 accuracy)",
                    (long long)json_integer_value(json_object_get(final, "epoch")));
        fprintf(out, ". Test set, batch norm in eval mode.</p>\n<table><tr><th>measure</th><th>accuracy</th>"
                     "<th>95%% CI</th><th>correct / points</th></tr>\n<tr><td>clean</td>");
        accuracy_cell(out, json_object_get(final, "clean"));
        fprintf(out, "</tr>\n");
        json_t *pgd = json_object_get(final, "pgd20"), *suite = json_object_get(final, "suite");
        if (pgd) {
            fprintf(out, "<tr><td>PGD-20</td>");
            accuracy_cell(out, json_object_get(pgd, "robust"));
            fprintf(out, "</tr>\n");
        }
        if (suite) {
            fprintf(out, "<tr><td>attack suite</td>");
            accuracy_cell(out, json_object_get(suite, "robust"));
            fprintf(out, "</tr>\n");
        }
        fprintf(out, "</table>\n");
        if (pgd)
            cascade_table(out, pgd, "PGD-20: validity checks");
        if (suite)
            cascade_table(out, suite, "Attack suite: per-attack breakdown (each attack on the points "
                                      "still robust)");
    }
    if (json_array_size(epochs)) {
        fprintf(out, "<h2>Training</h2>\n");
        join(path, sizeof path, fig_dir, "accuracy.svg");
        embed_file(out, path);
        join(path, sizeof path, fig_dir, "loss.svg");
        embed_file(out, path);
        fprintf(out, "<table><tr><th>epoch</th><th>loss</th><th>train acc</th><th>val clean</th>"
                     "<th>val PGD-10</th><th>best</th><th>eps</th><th>lr</th><th>seconds</th></tr>\n");
        size_t i;
        json_t *e;
        json_array_foreach(epochs, i, e) {
            fprintf(out, "<tr><td>%lld</td><td>%.4f</td><td>%.2f%%</td><td>%.2f%%</td><td>%.2f%%</td>"
                         "<td>%s</td><td>%.3g</td><td>%.3g</td><td>%.1f</td></tr>\n",
                    (long long)json_integer_value(json_object_get(e, "epoch")), number(e, "train_loss"),
                    100 * number(e, "train_acc"), 100 * number(e, "val_acc"),
                    100 * number(e, "val_robust_acc"),
                    json_is_true(json_object_get(e, "best")) ? "&#9733;" : "", number(e, "eps"),
                    number(e, "lr"), number(e, "seconds"));
        }
        fprintf(out, "</table>\n");
    }
    size_t i;
    json_t *ev;
    json_array_foreach(evals, i, ev) {
        fprintf(out, "<h2>Evaluation: ");
        html_text(out, json_string_value(json_object_get(ev, "file")));
        fprintf(out, "</h2>\n<p>Checkpoint ");
        html_text(out, json_string_value(json_object_get(ev, "checkpoint")));
        fprintf(out, " (SHA-256 <code>");
        html_text(out, json_string_value(json_object_get(ev, "checkpoint_sha256")));
        fprintf(out, "</code>)");
        if (json_object_get(ev, "imported_from")) {
            fprintf(out, ", imported from ");
            html_text(out, json_string_value(json_object_get(ev, "imported_from")));
            fprintf(out, " (SHA-256 <code>");
            html_text(out, json_string_value(json_object_get(ev, "imported_sha256")));
            fprintf(out, "</code>)");
        }
        fprintf(out, ", data <code>");
        html_text(out, json_string_value(json_object_get(ev, "data_sha256")));
        fprintf(out, "</code>.</p>\n");
        cascade_table(out, ev, "Per-attack breakdown");
        char name[64];
        snprintf(name, sizeof name, "curve%zu.svg", i);
        join(path, sizeof path, fig_dir, name);
        FILE *probe = fopen(path, "r");
        if (probe) {
            fclose(probe);
            embed_file(out, path);
        }
        corruption_section(out, ev);
        calibration_section(out, ev, i, fig_dir);
    }
    if (have_examples) {
        fprintf(out, "<h2>Adversarial examples</h2>\n<p>Columns: clean, adversarial (PGD-20 at the "
                     "training eps), perturbation (grey = 0, amplified).</p>\n");
        join(path, sizeof path, fig_dir, "examples.png");
        embed_png(out, path);
    }
    fprintf(out, "<h2>Reproducibility</h2>\n<table>");
    static const char *const keys[] = {"advtrain_version", "train_data_sha256", "test_data_sha256",
                                       "checkpoint_sha256", "best_checkpoint_sha256", "init",
                                       "init_sha256", NULL};
    for (int k = 0; keys[k]; k++)
        if (json_object_get(train, keys[k])) {
            fprintf(out, "<tr><th>%s</th><td><code>", keys[k]);
            html_text(out, json_string_value(json_object_get(train, keys[k])));
            fprintf(out, "</code></td></tr>\n");
        }
    fprintf(out, "</table>\n<h3>Configuration (run.cfg: <code>advtrain train --config run.cfg</code> "
                 "replays the run)</h3>\n<pre>");
    join(path, sizeof path, dir, "run.cfg");
    char *cfg = slurp(path, NULL);
    html_text(out, cfg ? cfg : "(no run.cfg)");
    free(cfg);
    fprintf(out, "</pre>\n");
    json_t *settings = json_object_get(train, "method_settings");
    if (json_object_size(settings)) {
        fprintf(out, "<h3>Method settings, presets filled in</h3>\n<pre>");
        char *text = json_dumps(settings, JSON_INDENT(1) | JSON_SORT_KEYS | JSON_REAL_PRECISION(6));
        html_text(out, text ? text : "");
        free(text);
        fprintf(out, "</pre>\n");
    }
    fprintf(out, "</body></html>\n");
}

int cmd_report(int argc, char **argv)
{
    if (argc < 2 || argv[1][0] == '-') {
        if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
            cli_help(&command, stdout);
            return 0;
        }
        return cli_error("report", EXIT_USAGE, "name a run directory\nusage: %s", command.usage);
    }
    const char *dir = argv[1];
    int status = cli_parse(&command, argc - 1, argv + 1, NULL);
    if (status)
        return status < 0 ? 0 : status;
    at_error err;
    char path[4096], fig_dir[4096], out_path[4096];
    join(path, sizeof path, dir, "report.json");
    json_error_t jerr;
    json_t *train = json_load_file(path, 0, &jerr);
    join(path, sizeof path, dir, "log.jsonl");
    json_t *epochs = read_log(path);
    if (!train && json_array_size(epochs) == 0) {
        json_decref(epochs);
        return cli_error("report", EXIT_WORK_FAILED, "%s: no report.json or log.jsonl (not a run "
                         "directory?)", dir);
    }
    if (!train)
        train = json_object();
    join(fig_dir, sizeof fig_dir, dir, "figures");
    if (cli_mkdirs(fig_dir, &err)) {
        status = cli_error("report", EXIT_WORK_FAILED, "%s", err.message);
        goto done;
    }
    if (training_figures(dir, epochs, fig_dir, &err)) {
        status = cli_error("report", EXIT_WORK_FAILED, "%s", err.message);
        goto done;
    }
    /* evaluation reports the user saved into the run directory */
    json_t *evals = json_array();
    DIR *d = opendir(dir);
    struct dirent *entry;
    while (d && (entry = readdir(d))) {
        size_t len = strlen(entry->d_name);
        if (strncmp(entry->d_name, "eval", 4) || len < 5 || strcmp(entry->d_name + len - 5, ".json"))
            continue;
        join(path, sizeof path, dir, entry->d_name);
        json_t *ev = json_load_file(path, 0, &jerr);
        if (!ev)
            continue;
        json_object_set_new(ev, "file", json_string(entry->d_name));
        char name[64];
        snprintf(name, sizeof name, "curve%zu.svg", json_array_size(evals));
        join(path, sizeof path, fig_dir, name);
        curve_figure(ev, path, entry->d_name, &err);
        reliability_figures(ev, json_array_size(evals), fig_dir, &err);
        json_array_append_new(evals, ev);
    }
    if (d)
        closedir(d);
    join(path, sizeof path, fig_dir, "examples.png");
    int ex = examples_png(dir, train, path, &err);
    if (ex < 0 || ex > 1)
        fprintf(stderr, "advtrain report: no adversarial examples: %s\n", err.message);
    snprintf(out_path, sizeof out_path, "%s", opts.out ? opts.out : "");
    if (!opts.out)
        join(out_path, sizeof out_path, dir, "report.html");
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", out_path);
    FILE *out = fopen(tmp, "w");
    if (!out) {
        json_decref(evals);
        status = cli_error("report", EXIT_WORK_FAILED, "%s: cannot write", out_path);
        goto done;
    }
    write_page(out, dir, train, epochs, evals, fig_dir, ex == 0);
    json_decref(evals);
    if (fclose(out) || rename(tmp, out_path)) {
        remove(tmp);
        status = cli_error("report", EXIT_WORK_FAILED, "%s: cannot write", out_path);
        goto done;
    }
    printf("wrote %s (figures in %s)\n", out_path, fig_dir);
    status = 0;
done:
    json_decref(train);
    json_decref(epochs);
    return status;
}
