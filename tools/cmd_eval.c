/* cmd_eval.c: `advtrain eval`: load a checkpoint (an advtrain checkpoint, or a weights-only
 * safetensors file with PyTorch names plus --model) and measure it on a data split: clean
 * accuracy, and with --attack or --suite a cascade of attacks whose report proves itself
 * (measured perturbation norms, range, BN mode, gradient counts, loss per step, flags), and the
 * calibration (expected calibration error, Guo et al. 2017) on the clean inputs and on the
 * cascade's final adversarial inputs. */
#include "attack_args.h"
#include "eval_corruptions.h"
#include "eval_report.h"
#include "eval_shards.h"
#include "eval_state.h"
#include "plots.h"
#include "ranks.h"
#include "robustify_eval.h"

#include <errno.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct eval_opts {
    const char *data, *data_dir, *model, *checkpoint, *split, *json, *svg, *points_file;
    const char *surrogate, *surrogate_model, *state, *baseline, *corruptions;
    int batch_size, n, threads, stop_after, calibration_bins;
    cli_float_list mean, std, curve;
    bool no_checks, quiet, robustify;
    const char *robustify_png;
    cli_attack_args attack;
    cli_robustify_args r;
} eval_opts;

static eval_opts opts = {.data = "fashion-mnist", .split = "test", .batch_size = 500,
                         .calibration_bins = AT_CALIBRATION_DEFAULT_BINS,
                         .r = {.iters = -1, .steps = -1}};

static const cli_option options[] = {
    {"checkpoint", CLI_STRING, &opts.checkpoint, 0, 0, NULL, "FILE", "safetensors file to evaluate (required)"},
    {"model", CLI_STRING, &opts.model, 0, 0, NULL, "ARCH", "architecture; needed when FILE holds weights only"},
    {"data", CLI_STRING, &opts.data, 0, 0, NULL, "NAME", "data set; default fashion-mnist"},
    {"data-dir", CLI_STRING, &opts.data_dir, 0, 0, NULL, "DIR", "read the data set from DIR instead of its default directory"},
    {"split", CLI_CHOICE, &opts.split, 0, 0, "test|train", NULL, "which split; default test"},
    {"n", CLI_INT, &opts.n, 1, 100000000, NULL, "N", "evaluate the first N examples only"},
    {"batch-size", CLI_INT, &opts.batch_size, 1, 65536, NULL, "N", "batch size; default 500"},
    {"mean", CLI_FLOAT_LIST, &opts.mean, -1000, 1000, NULL, "M1,..", "weights-only files: input normalisation mean (with --std)"},
    {"std", CLI_FLOAT_LIST, &opts.std, 1e-6, 1000, NULL, "S1,..", "weights-only files: input normalisation std"},
    CLI_ATTACK_OPTIONS(opts.attack),
    {"curve", CLI_FLOAT_LIST, &opts.curve, 0, 1e6, NULL, "E1,E2,..", "robust accuracy at each of these budgets"},
    {"calibration-bins", CLI_INT, &opts.calibration_bins, 1, AT_CALIBRATION_MAX_BINS, NULL, "M", "equal-width confidence bins of the calibration error; default 15"},
    {"svg", CLI_STRING, &opts.svg, 0, 0, NULL, "FILE", "plot the --curve as SVG"},
    {"surrogate", CLI_STRING, &opts.surrogate, 0, 0, NULL, "FILE", "transfer attack: craft on this checkpoint, judge on --checkpoint"},
    {"surrogate-model", CLI_STRING, &opts.surrogate_model, 0, 0, NULL, "ARCH", "architecture of a weights-only --surrogate"},
    {"baseline", CLI_STRING, &opts.baseline, 0, 0, NULL, "FILE", "--suite corruptions: mCE against this checkpoint"},
    {"corruptions", CLI_STRING, &opts.corruptions, 0, 0, NULL, "A,B,..", "--suite corruptions: these only (advtrain list corruptions)"},
    {"robustify", CLI_FLAG, &opts.robustify, 0, 0, NULL, NULL, "man-in-the-middle protocol (Moon et al.): also robustify the points, then attack them with the same cascade"},
    CLI_ROBUSTIFY_OPTIONS(opts.r, "robustify-eps", "--robustify: the attacker's budget the robustification assumes; default --eps"),
    {"robustify-png", CLI_STRING, &opts.robustify_png, 0, 0, NULL, "FILE", "--robustify: PNG grid of original, robustified and difference"},
    {"no-checks", CLI_FLAG, &opts.no_checks, 0, 0, NULL, NULL, "skip the sanity checks (large eps, more steps)"},
    {"points", CLI_STRING, &opts.points_file, 0, 0, NULL, "FILE", "write each point's outcome (CSV)"},
    {"state", CLI_STRING, &opts.state, 0, 0, NULL, "FILE", "resumable: keep progress in FILE and continue from it"},
    {"stop-after", CLI_INT, &opts.stop_after, 1, 100000000, NULL, "N", "with --state: evaluate at most N more points, then stop"},
    {"json", CLI_STRING, &opts.json, 0, 0, NULL, "FILE", "write the report to FILE"},
    {"threads", CLI_INT, &opts.threads, 1, 1024, NULL, "N", "threads (default: all cores)"},
    {"quiet", CLI_FLAG, &opts.quiet, 0, 0, NULL, NULL, "no progress line"},
};

static const cli_command command = {
    "eval",
    "Evaluate a checkpoint on a data split: clean accuracy, and robust accuracy under a cascade of\n"
    "attacks (each on the points still robust). Examples:\n"
    "  advtrain eval --checkpoint runs/at/last.safetensors --data fashion-mnist --json r.json\n"
    "  advtrain eval --checkpoint M --suite standard --eps 0.1 --norm linf --n 1000\n"
    "  advtrain eval --checkpoint M --attack pgd --eps 0.1 --steps 20 --step-size 0.01 --curve 0,0.05,0.1\n"
    "  advtrain eval --checkpoint M --suite corruptions --baseline STANDARD.safetensors\n"
    "  advtrain eval --checkpoint M --attack pgd --eps 0.1 --n 200 --robustify --delta 0.1 --reconstruct\n"
    "  advtrain eval --checkpoint M --suite corruptions --data cifar10-c --data-dir CIFAR-10-C/",
    "advtrain eval --checkpoint FILE [options]", options, sizeof options / sizeof options[0]};

/* The model a file describes, or the one named by `arch` for weights-only files; weights loaded. */
/* A checkpoint made by `advtrain import` names the file it came from: the report keeps that
 * source and its SHA-256 beside the checkpoint's own. */
static void add_import_source(json_t *report, const char *path)
{
    at_safetensors *st = NULL;
    at_error err;
    if (at_is_onnx_path(path) || at_st_open(&st, path, &err))
        return;
    static const char *const keys[] = {"imported_from", "imported_sha256"};
    for (int k = 0; k < 2; k++)
        if (at_st_meta(st, keys[k]))
            json_object_set_new(report, keys[k], json_string(at_st_meta(st, keys[k])));
    at_st_free(st);
}

static int load_model(const char *path, const char *arch, const at_dataset *ds, at_model **model)
{
    at_error err;
    at_safetensors *st = NULL;
    *model = NULL;
    if (at_is_onnx_path(path)) { /* the graph and its weights, from the file */
        if (arch || opts.mean.count || opts.std.count)
            return cli_error("eval", EXIT_USAGE, "%s describes its model: drop --model, --mean "
                             "and --std", path);
        if (at_model_import_onnx(model, path, &err))
            return cli_error("eval", EXIT_WORK_FAILED, "%s", err.message);
        return cli_check_model_data("eval", path, ds, model);
    }
    if (at_st_open(&st, path, &err))
        return cli_error("eval", EXIT_WORK_FAILED, "%s", err.message);
    const char *spec = at_st_meta(st, "model");
    int status = 0;
    if (spec && !arch && !opts.mean.count) {
        if (at_model_create_from_spec(model, spec, &err))
            status = cli_error("eval", EXIT_WORK_FAILED, "%s: %s", path, err.message);
    } else if (!arch) {
        status = cli_error("eval", EXIT_USAGE, "%s holds weights only; name its architecture with --model", path);
    } else {
        at_model_options mo = {.num_classes = ds->num_classes, .in_channels = ds->c,
                               .in_height = ds->h, .in_width = ds->w};
        if (opts.mean.count || opts.std.count) {
            if (opts.mean.count != ds->c || opts.std.count != ds->c)
                status = cli_error("eval", EXIT_USAGE, "--mean and --std need %d value(s) each", ds->c);
            mo.normalize = 1;
            for (int i = 0; i < ds->c && i < 4; i++) {
                mo.mean[i] = (float)opts.mean.values[i];
                mo.std[i] = (float)opts.std.values[i];
            }
        }
        if (!status && at_model_create(model, arch, &mo, &err))
            status = cli_error("eval", EXIT_USAGE, "%s", err.message);
    }
    at_st_free(st);
    if (!status && at_checkpoint_load(path, *model, NULL, NULL, &err))
        status = cli_error("eval", EXIT_WORK_FAILED, "%s", err.message);
    int c, h, w;
    if (!status) {
        at_model_input_shape(*model, &c, &h, &w);
        if (c != ds->c || h != ds->h || w != ds->w || at_model_num_classes(*model) < ds->num_classes)
            status = cli_error("eval", EXIT_WORK_FAILED,
                               "%s: the model takes %dx%dx%d inputs with %d classes, %s has %dx%dx%d with %d",
                               path, c, h, w, at_model_num_classes(*model), ds->name, ds->c, ds->h,
                               ds->w, ds->num_classes);
    }
    if (status) {
        at_model_free(*model);
        *model = NULL;
    }
    return status;
}

/* Runs one cascade at budget eps; the result belongs to the caller. */
static int run_cascade(at_model *model, at_model *surrogate, const at_dataset *ds, double eps,
                       int points, const cli_attack_args *args, at_eval_plan *plan,
                       at_eval_result *result)
{
    cli_attack_args with_batch = *args;
    with_batch.batch = opts.batch_size;
    int status = cli_attack_plan("eval", &with_batch, eps, plan);
    if (status)
        return status;
    plan->points = points;
    plan->batch_size = opts.batch_size;
    plan->surrogate = surrogate;
    plan->calibration_bins = opts.calibration_bins;
    /* batch by batch, shared among the processes of an mpirun job (one without mpirun) */
    return cli_eval_sharded(model, ds, plan, result, opts.quiet);
}

/* Sanity checks on a few points: a correct attack breaks any model at a budget that allows any
 * image, and more steps of the same attack never raise robust accuracy. */
static int run_checks(at_model *model, const at_dataset *ds, json_t *report, cli_flags *flags)
{
    const int points = ds->n < 200 ? ds->n : 200;
    const double d = (double)ds->c * ds->h * ds->w;
    const char *norm = opts.attack.norm ? opts.attack.norm : "linf";
    double big = !strcmp(norm, "linf") ? 0.5 : !strcmp(norm, "l2") ? 0.5 * sqrt(d) : 0.5 * d;
    json_t *checks = json_object();
    cli_attack_args pgd = {.attack = "pgd", .norm = opts.attack.norm, .bn_mode = opts.attack.bn_mode,
                           .eot = opts.attack.eot, .seed = opts.attack.seed};
    at_eval_plan plan;
    at_eval_result r;
    pgd.steps = 50;
    pgd.step_size = big / 10;
    int status = run_cascade(model, NULL, ds, big, points, &pgd, &plan, &r);
    if (status)
        return status;
    long robust = r.robust_after[0];
    json_object_set_new(checks, "large_eps", json_pack("{s:s, s:f, s:i, s:o}", "attack", "pgd-50", "eps", big,
                                                       "points", points, "robust", cli_accuracy_json(robust, r.points)));
    if (robust > 2 && robust * 20 > r.clean_correct)
        cli_flag(flags, "not-broken-at-large-eps",
                 "PGD-50 at %s eps %g (any image is reachable) left %ld of %ld points robust: the "
                 "attack is not reaching the model's true worst case", norm, big, robust, r.clean_correct);
    at_eval_result_free(&r);
    if (opts.attack.eps > 0) {
        long robust_steps[2];
        const int steps[2] = {10, 50};
        for (int i = 0; i < 2; i++) {
            pgd.steps = steps[i];
            pgd.step_size = 2.5 * opts.attack.eps / steps[i];
            if ((status = run_cascade(model, NULL, ds, opts.attack.eps, points, &pgd, &plan, &r)))
                return status;
            robust_steps[i] = r.robust_after[0];
            at_eval_result_free(&r);
        }
        json_object_set_new(checks, "more_steps",
                            json_pack("{s:i, s:f, s:I, s:I}", "points", points, "eps", opts.attack.eps,
                                      "robust_pgd10", (json_int_t)robust_steps[0], "robust_pgd50",
                                      (json_int_t)robust_steps[1]));
        long slack = points / 100 > 2 ? points / 100 : 2;
        if (robust_steps[1] > robust_steps[0] + slack)
            cli_flag(flags, "more-steps-more-robust",
                     "PGD-50 left %ld points robust where PGD-10 left %ld: more steps should never "
                     "help the model; the attack is unstable or the model is randomised",
                     robust_steps[1], robust_steps[0]);
    }
    json_object_set_new(report, "checks", checks);
    return 0;
}

static int run_curve(at_model *model, at_model *surrogate, const at_dataset *ds, json_t *report,
                     cli_flags *flags)
{
    const int m = opts.curve.count;
    double x[16], acc[16], lo[16], hi[16];
    json_t *curve = json_array();
    long previous = -1;
    printf("robust accuracy against eps (%s):\n", opts.attack.suite ? opts.attack.suite : opts.attack.attack);
    for (int i = 0; i < m; i++) {
        at_eval_plan plan;
        at_eval_result r;
        int status = run_cascade(model, surrogate, ds, opts.curve.values[i], opts.n, &opts.attack,
                                 &plan, &r);
        if (status) {
            json_decref(curve);
            return status;
        }
        if (i == 0 && !json_object_get(report, "calibration")) {
            /* no cascade at --eps: the clean calibration comes from the curve's first run */
            cli_calibration_print(stdout, "clean calibration", &r.clean_calibration);
            json_object_set_new(report, "calibration",
                                json_pack("{s:i, s:o}", "bins", r.clean_calibration.bins, "clean",
                                          cli_calibration_json(&r.clean_calibration)));
        }
        long robust = plan.n_attacks ? r.robust_after[plan.n_attacks - 1] : r.clean_correct;
        x[i] = opts.curve.values[i];
        acc[i] = (double)robust / r.points;
        cli_wilson(robust, r.points, &lo[i], &hi[i]);
        printf("  eps %-8g %6.2f%%  [%5.2f, %5.2f]\n", x[i], 100 * acc[i], 100 * lo[i], 100 * hi[i]);
        json_t *pt = cli_accuracy_json(robust, r.points);
        json_object_set_new(pt, "eps", json_real(x[i]));
        if (r.adversarial_calibration.n > 0)
            json_object_set_new(pt, "ece", json_real(at_calibration_ece(&r.adversarial_calibration)));
        json_array_append_new(curve, pt);
        long slack = r.points / 200 > 1 ? r.points / 200 : 1;
        if (previous >= 0 && robust > previous + slack && x[i] > x[i - 1])
            cli_flag(flags, "accuracy-rises-with-eps",
                     "robust accuracy rose from %ld to %ld points as eps grew from %g to %g: a "
                     "larger budget contains every smaller one, so the attack is failing",
                     previous, robust, x[i - 1], x[i]);
        previous = robust;
        at_eval_result_free(&r);
    }
    json_object_set_new(report, "curve", curve);
    if (opts.svg && ranks_rank() == 0) {
        at_error err;
        plot_series s = {opts.attack.suite ? opts.attack.suite : opts.attack.attack, acc, lo, hi};
        char title[128];
        snprintf(title, sizeof title, "robust accuracy against %s eps", opts.attack.norm ? opts.attack.norm : "linf");
        if (plot_svg_lines(opts.svg, title, "eps", "accuracy", x, m, &s, 1, &err))
            return cli_error("eval", EXIT_WORK_FAILED, "%s", err.message);
    }
    return 0;
}

static int write_points(const char *path, const at_eval_plan *plan, const at_eval_result *r,
                        const at_dataset *ds)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return cli_error("eval", EXIT_WORK_FAILED, "%s: cannot open for writing: %s", path,
                         strerror(errno));
    fprintf(f, "index,label,outcome\n");
    for (long i = 0; i < r->points; i++) {
        int8_t o = r->outcome[i];
        fprintf(f, "%ld,%d,%s\n", i, ds->labels[i],
                o == -2 ? "misclassified" : o == -1 ? "robust" : plan->attacks[o]);
    }
    if (ferror(f) | fclose(f)) {
        remove(path); /* a cut-off list would pass for a shorter evaluation */
        return cli_error("eval", EXIT_WORK_FAILED, "%s: write failed", path);
    }
    return 0;
}

/* A --points path that can never be written (a directory) is refused before the evaluation,
 * not after an hour of attacks. */
static int check_points_path(const char *path)
{
    struct stat st;
    if (path && stat(path, &st) == 0 && S_ISDIR(st.st_mode))
        return cli_error("eval", EXIT_WORK_FAILED, "%s: cannot open for writing: %s", path,
                         strerror(EISDIR));
    return 0;
}

int cmd_eval(int argc, char **argv)
{
    int status = cli_parse(&command, argc, argv, NULL);
    if (status)
        return status < 0 ? 0 : status;
    if ((status = check_points_path(opts.points_file)))
        return status;
    if (!opts.checkpoint)
        return cli_error("eval", EXIT_USAGE, "--checkpoint FILE is required\nusage: %s", command.usage);
    /* the corruption suite is not an attack cascade: it runs alone */
    const bool corruption_suite = opts.attack.suite && !strcmp(opts.attack.suite, "corruptions");
    if (corruption_suite && (opts.attack.attack || opts.attack.eps > 0 || opts.curve.count ||
                             opts.surrogate || opts.state))
        return cli_error("eval", EXIT_USAGE, "--suite corruptions runs alone: no --attack, --eps, "
                         "--curve, --surrogate or --state");
    if (!corruption_suite && (opts.baseline || opts.corruptions))
        return cli_error("eval", EXIT_USAGE, "--baseline and --corruptions need --suite corruptions");
    if (corruption_suite)
        opts.attack.suite = NULL;
    const bool cifar_c = !strcmp(opts.data, "cifar10-c") || !strcmp(opts.data, "cifar100-c");
    if (cifar_c && (!corruption_suite || !opts.data_dir))
        return cli_error("eval", EXIT_USAGE, "--data %s: name one cell (--data %s:fog:3), or "
                         "measure them all with --suite corruptions and --data-dir DIR (the "
                         "released .npy files)", opts.data, opts.data);
    const bool attacking = cli_attack_requested(&opts.attack);
    if (attacking && opts.attack.eps <= 0 && !opts.curve.count)
        return cli_error("eval", EXIT_USAGE, "--attack and --suite need --eps (or --curve)");
    if (!attacking && (opts.attack.eps > 0 || opts.curve.count || opts.surrogate))
        return cli_error("eval", EXIT_USAGE, "--eps, --curve and --surrogate need --attack or --suite");
    if (opts.svg && !opts.curve.count)
        return cli_error("eval", EXIT_USAGE, "--svg plots the --curve: give --curve too");
    if (opts.surrogate_model && !opts.surrogate)
        return cli_error("eval", EXIT_USAGE, "--surrogate-model needs --surrogate");
    if ((opts.state || opts.stop_after) && (!attacking || !(opts.attack.eps > 0)))
        return cli_error("eval", EXIT_USAGE, "--state and --stop-after resume an attack evaluation: give --attack or --suite and --eps");
    if (opts.points_file && (!attacking || !(opts.attack.eps > 0)))
        return cli_error("eval", EXIT_USAGE, "--points records each point's outcome under attack: "
                         "give --attack or --suite and --eps");
    if (opts.stop_after && !opts.state)
        return cli_error("eval", EXIT_USAGE, "--stop-after needs --state (where to continue from)");
    if (opts.robustify && (!attacking || !(opts.attack.eps > 0) || opts.curve.count ||
                           opts.surrogate || opts.state))
        return cli_error("eval", EXIT_USAGE, "--robustify needs --attack (or --suite) and --eps, and "
                         "runs without --curve, --surrogate or --state");
    if (opts.robustify && opts.attack.norm && !strcmp(opts.attack.norm, "l1"))
        return cli_error("eval", EXIT_USAGE, "--robustify supports --norm linf or l2 (got l1)");
    if (!opts.robustify && (opts.r.delta > 0 || opts.r.eps > 0 || opts.r.iters >= 0 ||
                            opts.r.steps >= 0 || opts.r.step_size > 0 || opts.r.lr > 0 ||
                            opts.r.noise_samples || opts.r.noise_sigma > 0 ||
                            opts.r.no_random_start || opts.r.reconstruct || opts.r.rec_delta > 0 ||
                            opts.robustify_png))
        return cli_error("eval", EXIT_USAGE, "--delta, --iters, --reconstruct and the other "
                         "robustification options need --robustify");
    if (ranks_size() > 1) {
        /* what is shared among processes so far: the attack cascade, its checks and curve */
        const char *alone = corruption_suite ? "--suite corruptions"
                            : !attacking ? "a clean evaluation (no --attack or --suite)"
                            : opts.state ? "--state"
                            : opts.robustify ? "--robustify" : NULL;
        if (alone)
            return cli_error("eval", EXIT_USAGE, "%s runs as one process: start it without mpirun",
                             alone);
    }
    if (opts.threads)
        omp_set_num_threads(opts.threads);

    at_dataset ds = {0};
    at_model *model = NULL, *surrogate = NULL, *baseline = NULL;
    json_t *report = NULL;
    cli_flags flags = {0};
    at_eval_result result = {0};
    at_eval_plan plan = {0};
    at_error err;
    if (cifar_c) { /* one cell for the size and labels; the suite reads every cell */
        if (at_dataset_load_cifar_c(&ds, opts.data_dir, at_corruption_name(0), 1,
                                    !strcmp(opts.data, "cifar10-c") ? 10 : 100, &err))
            return cli_error("eval", EXIT_WORK_FAILED, "%s", err.message);
    } else if ((status = cli_open_dataset("eval", opts.data, opts.data_dir, opts.split, &ds))) {
        return status;
    }
    if (opts.n && opts.n < ds.n) {
        at_dataset sub = {0};
        if (at_dataset_slice(&sub, &ds, 0, opts.n, &err)) {
            status = cli_error("eval", EXIT_WORK_FAILED, "%s", err.message);
            goto done;
        }
        at_dataset_free(&ds);
        ds = sub;
    }
    if ((status = load_model(opts.checkpoint, opts.model, &ds, &model)))
        goto done;
    if (opts.surrogate && (status = load_model(opts.surrogate, opts.surrogate_model, &ds, &surrogate)))
        goto done;

    char *spec = at_model_spec(model);
    char checkpoint_hash[65], data_hash[65];
    if (at_file_sha256(opts.checkpoint, checkpoint_hash, &err)) {
        free(spec);
        status = cli_error("eval", EXIT_WORK_FAILED, "%s", err.message);
        goto done;
    }
    at_dataset_sha256(&ds, data_hash);
    report = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:i}", "command", "eval",
                       "advtrain_version", cli_version(), "checkpoint", opts.checkpoint,
                       "checkpoint_sha256", checkpoint_hash, "model_spec", spec ? spec : "",
                       "data", ds.name, "data_sha256", data_hash, "split", opts.split, "n", ds.n);
    free(spec);
    add_import_source(report, opts.checkpoint);
    if (!opts.quiet)
        printf("%s on %s/%s, %d points\n", opts.checkpoint, ds.name, opts.split, ds.n);
    if (corruption_suite) {
        if (opts.baseline && (status = load_model(opts.baseline, opts.model, &ds, &baseline)))
            goto done;
        eval_corruption_args ca = {.names = opts.corruptions, .cifar_c_dir = cifar_c ? opts.data_dir : NULL,
                                   .baseline_path = opts.baseline, .seed = (uint64_t)opts.attack.seed,
                                   .batch_size = opts.batch_size, .quiet = opts.quiet,
                                   .calibration_bins = opts.calibration_bins};
        if ((status = cli_eval_corruptions(model, baseline, &ds, &ca, report)))
            goto done;
    } else if (!attacking) {
        double start = cli_now(), loss;
        long correct;
        at_calibration cal = {0};
        if (at_calibration_init(&cal, opts.calibration_bins, &err) ||
            at_evaluate_clean_calibrated(model, &ds, opts.batch_size, &correct, &loss, &cal, &err)) {
            at_calibration_free(&cal);
            status = cli_error("eval", EXIT_WORK_FAILED, "%s", err.message);
            goto done;
        }
        double lo, hi;
        cli_wilson(correct, ds.n, &lo, &hi);
        printf("  clean accuracy %.2f%% (95%% CI %.2f-%.2f%%, %ld/%d), loss %.4f, BN eval mode, %.1f s\n",
               100.0 * correct / ds.n, 100 * lo, 100 * hi, correct, ds.n, loss, cli_now() - start);
        json_t *clean = cli_accuracy_json(correct, ds.n);
        json_object_set_new(clean, "loss", json_real(loss));
        json_object_set_new(clean, "bn_mode", json_string("eval"));
        json_object_set_new(report, "clean", clean);
        cli_calibration_print(stdout, "clean calibration", &cal);
        json_object_set_new(report, "calibration", json_pack("{s:i, s:o}", "bins", cal.bins, "clean",
                                                             cli_calibration_json(&cal)));
        at_calibration_free(&cal);
    }
    if (attacking && opts.attack.eps > 0 && opts.state) {
        /* what makes a state file reusable: the same weights, points and attacks */
        opts.attack.batch = opts.batch_size;
        if ((status = cli_attack_plan("eval", &opts.attack, opts.attack.eps, &plan)))
            goto done;
        plan.batch_size = opts.batch_size;
        plan.surrogate = surrogate;
        plan.calibration_bins = opts.calibration_bins;
        json_t *fp = json_pack("{s:s, s:s, s:s, s:f, s:s, s:s, s:i, s:s}", "checkpoint", checkpoint_hash,
                               "data", data_hash, "attacks", opts.attack.attack ? opts.attack.attack : opts.attack.suite,
                               "eps", opts.attack.eps, "norm", opts.attack.norm ? opts.attack.norm : "linf",
                               "bn", opts.attack.bn_mode ? opts.attack.bn_mode : "eval", "seed", opts.attack.seed,
                               "surrogate", opts.surrogate ? opts.surrogate : "");
        json_t *o = json_array();
        for (int a = 0; a < plan.n_attacks; a++) {
            const at_attack_options *ao = &plan.options[a];
            json_t *entry = json_pack("{s:i, s:f, s:i, s:i, s:i, s:i, s:i, s:f, s:b, s:b}",
                                      "steps", ao->steps, "step", ao->step_size,
                                      "restarts", ao->restarts, "loss", (int)ao->loss,
                                      "eot", ao->eot, "queries", ao->queries,
                                      "targets", ao->targets, "p", ao->p_init,
                                      "nrs", ao->no_random_start, "es", ao->early_stop);
            if (!strcmp(plan.attacks[a], "iwd")) /* only there, so other fingerprints stay */
                json_object_set_new(entry, "iwd", json_pack("{s:f, s:f, s:i, s:i, s:i, s:f, s:i}",
                                                            "lambda", ao->iwd_lambda, "budget",
                                                            ao->iwd_budget, "patch", ao->iwd.patch,
                                                            "stride", ao->iwd.stride, "samples",
                                                            ao->iwd.samples, "reg", ao->iwd.reg,
                                                            "iters", ao->iwd.iters));
            json_array_append_new(o, entry);
        }
        for (int a = 0; a < plan.n_attacks; a++)
            if (plan.options[a].flow) /* jsa: its latent budget and flow */
                json_object_set_new(json_array_get(o, (size_t)a), "z",
                                    json_pack("{s:f, s:f, s:s}", "eps", plan.options[a].eps_z,
                                              "step", plan.options[a].step_size_z, "flow",
                                              opts.attack.flow));
        json_object_set_new(fp, "options", o);
        char *fingerprint = json_dumps(fp, JSON_COMPACT | JSON_SORT_KEYS);
        json_decref(fp);
        bool finished;
        status = cli_eval_resumable(model, &ds, &plan, ds.n, opts.batch_size, opts.state, fingerprint,
                                    opts.stop_after, &result, &finished, opts.quiet);
        free(fingerprint);
        if (status)
            goto done;
        if (!finished) {
            printf("stopped after %ld of %d points; run the same command again to continue\n",
                   (long)opts.stop_after, ds.n);
            status = 0;
            goto done;
        }
    } else if (attacking && opts.attack.eps > 0) {
        if ((status = run_cascade(model, surrogate, &ds, opts.attack.eps, 0, &opts.attack, &plan, &result)))
            goto done;
    }
    if (attacking && opts.attack.eps > 0) {
        printf("%s eps %g%s:\n", opts.attack.norm ? opts.attack.norm : "linf", opts.attack.eps,
               surrogate ? " (transfer: crafted on the surrogate)" : "");
        cli_eval_print(stdout, &plan, &result);
        json_t *cascade = cli_eval_json(&plan, &result);
        json_object_set_new(cascade, "eps", json_real(opts.attack.eps));
        json_object_set_new(cascade, "norm", json_string(opts.attack.norm ? opts.attack.norm : "linf"));
        if (opts.surrogate)
            json_object_set_new(cascade, "surrogate", json_string(opts.surrogate));
        json_object_update(report, cascade);
        json_decref(cascade);
        cli_eval_flags(&plan, &result, &flags);
        if (opts.points_file && ranks_rank() == 0 &&
            (status = write_points(opts.points_file, &plan, &result, &ds)))
            goto done;
    }
    if (opts.robustify) {
        opts.r.norm = opts.attack.norm;
        if ((status = cli_eval_mitm(model, &ds, &plan, &opts.r, opts.batch_size, opts.quiet,
                                    opts.robustify_png, report)))
            goto done;
    }
    if (attacking && !opts.no_checks && !surrogate && (status = run_checks(model, &ds, report, &flags)))
        goto done;
    if (opts.curve.count && (status = run_curve(model, surrogate, &ds, report, &flags)))
        goto done;
    if (attacking) {
        json_object_set_new(report, "flags", flags.list ? json_incref(flags.list) : json_array());
        size_t i;
        json_t *f;
        if (!flags.list || json_array_size(flags.list) == 0)
            printf("flags: none\n");
        json_array_foreach(flags.list, i, f)
            printf("FLAG %s: %s\n", json_string_value(json_object_get(f, "id")),
                   json_string_value(json_object_get(f, "message")));
    }
    if (opts.json && ranks_rank() == 0 && cli_write_json(opts.json, report, &err)) {
        status = cli_error("eval", EXIT_WORK_FAILED, "%s", err.message);
        goto done;
    }
    status = 0;
done:
    json_decref(flags.list);
    json_decref(report);
    at_eval_result_free(&result);
    at_model_free(model);
    at_model_free(surrogate);
    at_model_free(baseline);
    at_dataset_free(&ds);
    return status;
}
