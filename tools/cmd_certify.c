/* cmd_certify.c: `advtrain certify`: certified L2 robustness of the Gaussian-smoothed version of a
 * checkpoint (Cohen, Rosenfeld and Kolter, ICML 2019), as SmoothMix (Jeong et al., NeurIPS 2021)
 * reports it: CERTIFY on each point, then the certified accuracy at each radius (the share of
 * points classified correctly with a certified radius at least that large), the average
 * certified radius (ACR, the mean of R 1[correct]) and the abstention rate. With --predict,
 * PREDICT instead: the smoothed classifier's accuracy and abstentions, no radii. The noisy
 * forward rate is printed beside the model's plain forward rate, measured on the same pass
 * shape between the points, so the cost of sampling shows. With --state the run can be stopped
 * and continued (certify_state.h). */
#include "certify_state.h"
#include "cli.h"
#include "eval_report.h"
#include "ranks.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

typedef struct certify_opts {
    const char *data, *data_dir, *model, *checkpoint, *split, *json, *state;
    int n_points, skip, n0, n, batch_size, threads, stop_after;
    double sigma, alpha;
    int seed;
    cli_float_list radii;
    bool predict, quiet;
} certify_opts;

static certify_opts opts = {.data = "fashion-mnist", .split = "test", .n_points = 500, .skip = 1,
                            .n0 = 100, .n = 100000, .alpha = 0.001, .batch_size = 500,
                            .radii = {5, {0.0, 0.25, 0.5, 0.75, 1.0}}};

static const cli_option options[] = {
    {"checkpoint", CLI_STRING, &opts.checkpoint, 0, 0, NULL, "FILE", "model to smooth (required)"},
    {"model", CLI_STRING, &opts.model, 0, 0, NULL, "ARCH", "architecture of a weights-only FILE"},
    {"data", CLI_STRING, &opts.data, 0, 0, NULL, "NAME", "data set; default fashion-mnist"},
    {"data-dir", CLI_STRING, &opts.data_dir, 0, 0, NULL, "DIR", "read the data set from DIR"},
    {"split", CLI_CHOICE, &opts.split, 0, 0, "test|train", NULL, "which split; default test"},
    {"n-points", CLI_INT, &opts.n_points, 1, 100000000, NULL, "P", "how many test points; default 500"},
    {"skip", CLI_INT, &opts.skip, 1, 1000000, NULL, "K", "every K-th example (0, K, 2K, ...); default 1"},
    {"sigma", CLI_FLOAT, &opts.sigma, 0, 1000, NULL, "S", "noise std on [0,1] pixels, > 0 (required)"},
    {"n0", CLI_INT, &opts.n0, 0, 1000000000, NULL, "N", "draws that choose the class; default 100"},
    {"n", CLI_INT, &opts.n, 0, 1000000000, NULL, "N", "noise draws per point (Cohen's n); default 100000"},
    {"alpha", CLI_FLOAT, &opts.alpha, 0, 1, NULL, "A", "failure probability, in (0,1); default 0.001"},
    {"batch-size", CLI_INT, &opts.batch_size, 1, 65536, NULL, "N", "noisy copies per forward; default 500"},
    {"seed", CLI_INT, &opts.seed, 0, 2147483647, NULL, "K", "noise seed; default 0"},
    {"radii", CLI_FLOAT_LIST, &opts.radii, 0, 1e6, NULL, "R1,..", "radii of the certified accuracy; default 0,0.25,0.5,0.75,1"},
    {"predict", CLI_FLAG, &opts.predict, 0, 0, NULL, NULL, "run PREDICT (abstaining prediction) instead of CERTIFY"},
    {"json", CLI_STRING, &opts.json, 0, 0, NULL, "FILE", "write the results and every point's record to FILE"},
    {"state", CLI_STRING, &opts.state, 0, 0, NULL, "FILE", "resumable: keep every finished point in FILE and continue from it"},
    {"stop-after", CLI_INT, &opts.stop_after, 1, 100000000, NULL, "N", "with --state: certify at most N more points, then stop"},
    {"threads", CLI_INT, &opts.threads, 1, 1024, NULL, "N", "threads (default: all cores)"},
    {"quiet", CLI_FLAG, &opts.quiet, 0, 0, NULL, NULL, "no progress line"},
};

static const cli_command command = {
    "certify",
    "Certified L2 robustness of the Gaussian-smoothed model (Cohen et al., 2019): CERTIFY on each\n"
    "point, certified accuracy at each radius, average certified radius, abstentions. Note that\n"
    "--n is the number of noise draws per point (Cohen's n), not a number of points as in\n"
    "'advtrain eval --n'; --n-points counts the points. With n draws no radius can exceed\n"
    "sigma Phi^-1(alpha^(1/n)) (3.81 sigma for n = 100000, alpha = 0.001). Example:\n"
    "  advtrain certify --checkpoint runs/smooth/last.safetensors --sigma 0.25 --n-points 500 \\\n"
    "      --skip 20 --n 100000 --json cert.json",
    "advtrain certify --checkpoint FILE --sigma S [options]", options,
    sizeof options / sizeof options[0]};

/* The model's plain forward rate, measured the way the noisy copies go through it: batches of
 * `batch` clean copies of x in a forward-only pass, eval BN mode. The batches are interleaved
 * with the points (about 1% of each point's draws), so that both rates see the same load on a
 * shared machine. */
typedef struct plain_timer {
    at_pass *pass;
    float *rows;
    int batch;
    long images;
    double seconds;
} plain_timer;

static int plain_timer_start(plain_timer *t, at_model *model, const float *x, size_t image,
                             int batch, at_error *err)
{
    memset(t, 0, sizeof *t);
    t->batch = batch;
    t->rows = malloc((size_t)batch * image * sizeof(float));
    if (!t->rows) {
        snprintf(err->message, sizeof err->message, "out of memory");
        return AT_ERR_NOMEM;
    }
    for (int i = 0; i < batch; i++)
        memcpy(t->rows + (size_t)i * image, x, image * sizeof(float));
    int status = at_pass_create(&t->pass, model, batch, AT_PASS_FORWARD_ONLY, err);
    if (!status)
        at_forward(t->pass, t->rows, batch, AT_BN_EVAL); /* warm-up, not timed */
    return status;
}

static void plain_timer_run(plain_timer *t, long draws)
{
    long batches = (draws / 100 + t->batch - 1) / t->batch;
    if (batches < 1)
        batches = 1;
    double start = cli_now();
    for (long b = 0; b < batches; b++)
        at_forward(t->pass, t->rows, t->batch, AT_BN_EVAL);
    t->seconds += cli_now() - start;
    t->images += batches * t->batch;
}

static void plain_timer_free(plain_timer *t)
{
    at_pass_free(t->pass);
    free(t->rows);
}

/* With --state, the finished points are saved at most every STATE_SECONDS (and when the run
 * stops): a killed run loses no more than that. */
enum { STATE_SECONDS = 10 };

/* Under mpirun rank r certifies the points np r / size up to np (r + 1) / size: each point's
 * noise comes from its own index (at_smooth_options), so whichever process certifies it gets
 * the same result. */
static int first_point_of(int rank, int np) { return (int)((long)np * rank / ranks_size()); }

/* Rank 0 receives every rank's results in place, and the times (noisy and plain) summed over
 * the ranks. */
static int gather_results(at_smooth_result *results, int np, double *seconds, plain_timer *plain)
{
    if (ranks_size() == 1)
        return 0;
    const int rank = ranks_rank(), from = first_point_of(rank, np), to = first_point_of(rank + 1, np);
    typedef struct times {
        double seconds, plain_seconds;
        long plain_images;
    } times;
    const times mine = {*seconds, plain->seconds, plain->images};
    const size_t n = sizeof mine + (size_t)(to - from) * sizeof *results;
    char *bytes = malloc(n);
    int status = bytes ? 0 : cli_error("certify", EXIT_WORK_FAILED, "out of memory");
    if (bytes) {
        memcpy(bytes, &mine, sizeof mine);
        memcpy(bytes + sizeof mine, results + from, n - sizeof mine);
    }
    void *all = NULL;
    size_t total = 0;
    if (!(status = ranks_agree(status, false)) && ranks_gather(bytes, n, &all, &total))
        status = cli_error("certify", EXIT_WORK_FAILED, "cannot gather the processes' results");
    free(bytes);
    if (!status && rank == 0) {
        const char *at = all;
        *seconds = plain->seconds = 0.0;
        plain->images = 0;
        for (int r = 0; r < ranks_size(); r++) {
            const int a = first_point_of(r, np), b = first_point_of(r + 1, np);
            times t;
            memcpy(&t, at, sizeof t);
            memcpy(results + a, at + sizeof t, (size_t)(b - a) * sizeof *results);
            at += sizeof t + (size_t)(b - a) * sizeof *results;
            *seconds += t.seconds;
            plain->seconds += t.plain_seconds;
            plain->images += t.plain_images;
        }
        if ((size_t)(at - (const char *)all) != total)
            status = cli_error("certify", EXIT_WORK_FAILED, "the processes' results do not fit together");
    }
    free(all);
    return status;
}

static json_t *point_json(int index, int label, const at_smooth_result *r)
{
    json_t *p = json_pack("{s:i, s:i, s:i, s:i, s:I, s:b}", "index", index, "label", label,
                          "prediction", r->prediction, "top_class", r->top_class, "count",
                          (json_int_t)r->count, "correct", r->prediction == label);
    if (opts.predict) {
        json_object_set_new(p, "runner_up", json_integer(r->runner_up));
        json_object_set_new(p, "p_value", json_real(r->p_value));
    } else {
        json_object_set_new(p, "n0_count", json_integer(r->n0_count));
        json_object_set_new(p, "p_lower", json_real(r->p_lower));
        json_object_set_new(p, "radius", json_real(r->radius));
    }
    return p;
}

int cmd_certify(int argc, char **argv)
{
    int status = cli_parse(&command, argc, argv, NULL);
    if (status)
        return status < 0 ? 0 : status;
    if (!opts.checkpoint)
        return cli_error("certify", EXIT_USAGE, "--checkpoint FILE is required\nusage: %s", command.usage);
    if (!(opts.sigma > 0.0))
        return cli_error("certify", EXIT_USAGE, "--sigma must be given and > 0 (got %g)", opts.sigma);
    if (opts.n0 < 1)
        return cli_error("certify", EXIT_USAGE, "--n0 must be at least 1 (got %d)", opts.n0);
    if (opts.n < 1)
        return cli_error("certify", EXIT_USAGE, "--n must be at least 1 (got %d)", opts.n);
    if (!(opts.alpha > 0.0 && opts.alpha < 1.0))
        return cli_error("certify", EXIT_USAGE, "--alpha must be in (0, 1) (got %g)", opts.alpha);
    if (opts.stop_after && !opts.state)
        return cli_error("certify", EXIT_USAGE, "--stop-after needs --state (where to continue from)");
    if (opts.state && ranks_size() > 1)
        return cli_error("certify", EXIT_USAGE, "--state runs in one process, not under mpirun");
    if (opts.threads)
        omp_set_num_threads(opts.threads);

    at_dataset ds = {0};
    at_model *model = NULL;
    at_smoother *smoother = NULL;
    json_t *report = NULL, *points_json = NULL;
    float *x = NULL;
    at_smooth_result *results = NULL;
    int *index = NULL;
    char *fingerprint = NULL;
    plain_timer plain = {0};
    at_error err;
    const char *mode = opts.predict ? "predict" : "certify";
    if ((status = cli_open_dataset("certify", opts.data, opts.data_dir, opts.split, &ds)) ||
        (status = cli_load_model("certify", opts.checkpoint, opts.model, &ds, &model)))
        goto done;
    const int available = (ds.n + opts.skip - 1) / opts.skip;
    const int np = opts.n_points < available ? opts.n_points : available;
    const size_t image = (size_t)ds.c * ds.h * ds.w;
    x = malloc(image * sizeof(float));
    results = calloc((size_t)np, sizeof *results);
    index = malloc((size_t)np * sizeof *index);
    if (!x || !results || !index) {
        status = cli_error("certify", EXIT_WORK_FAILED, "out of memory");
        goto done;
    }
    at_smooth_options so = {.sigma = (float)opts.sigma, .n0 = opts.n0, .n = opts.n,
                            .alpha = opts.alpha, .batch_size = opts.batch_size,
                            .seed = (uint64_t)opts.seed};
    if (at_smoother_create(&smoother, model, &so, &err)) {
        status = cli_error("certify", EXIT_WORK_FAILED, "%s", err.message);
        goto done;
    }
    const int batch = at_smoother_get_options(smoother)->batch_size;
    char sha[65];
    if (at_file_sha256(opts.checkpoint, sha, &err)) {
        status = cli_error("certify", EXIT_WORK_FAILED, "%s", err.message);
        goto done;
    }
    /* what makes a state file reusable: the same weights, points and smoothing (not the batch
     * size or threads, which change no result) */
    json_t *fp = json_pack("{s:s, s:s, s:s, s:i, s:i, s:f, s:i, s:i, s:f, s:i, s:s}", "checkpoint",
                           sha, "data", ds.name, "split", opts.split, "points", np, "skip",
                           opts.skip, "sigma", opts.sigma, "n0", opts.n0, "n", opts.n, "alpha",
                           opts.alpha, "seed", opts.seed, "mode", mode);
    fingerprint = json_dumps(fp, JSON_COMPACT | JSON_SORT_KEYS | JSON_REAL_PRECISION(17));
    json_decref(fp);
    certify_progress progress = {0};
    if (opts.state &&
        (status = certify_state_load(opts.state, fingerprint, np, ds.num_classes, results, &progress)))
        goto done;
    if (progress.done && !opts.quiet)
        fprintf(stderr, "resuming the certification in %s after %ld of %d points\n", opts.state,
                progress.done, np);
    const double r_max = at_smooth_max_radius(opts.sigma, opts.n, opts.alpha);
    char every[32] = "";
    if (opts.skip > 1)
        snprintf(every, sizeof every, " (every %d-th)", opts.skip);
    char draws_text[64];
    if (opts.predict)
        snprintf(draws_text, sizeof draws_text, "n %d", opts.n);
    else
        snprintf(draws_text, sizeof draws_text, "n0 %d + n %d", opts.n0, opts.n);
    printf("%s: %d points of %s/%s%s, sigma %g, %s draws, alpha %g, batch %d\n", mode, np,
           ds.name, opts.split, every, opts.sigma, draws_text, opts.alpha, batch);
    if (!opts.predict)
        printf("  with n = %d no radius can exceed sigma Phi^-1(alpha^(1/n)) = %.4f (%.2f sigma)\n",
               opts.n, r_max, r_max / opts.sigma);

    int32_t label;
    int32_t first = 0;
    at_dataset_batch(&ds, &first, 1, x, &label, NULL, NULL);
    if (plain_timer_start(&plain, model, x, image, batch, &err)) {
        status = cli_error("certify", EXIT_WORK_FAILED, "%s", err.message);
        goto done;
    }

    cli_progress bar;
    cli_progress_start(&bar, opts.quiet || ranks_rank() != 0);
    const long draws = opts.predict ? (long)opts.n : (long)opts.n0 + opts.n;
    double seconds = progress.seconds;
    plain.seconds += progress.plain_seconds;
    plain.images += progress.plain_images;
    for (int i = 0; i < np; i++)
        index[i] = i * opts.skip;
    const int mine_from = opts.state ? (int)progress.done : first_point_of(ranks_rank(), np),
              mine_to = first_point_of(ranks_rank() + 1, np);
    const int stop_at = opts.stop_after && mine_to - mine_from > opts.stop_after
                            ? mine_from + opts.stop_after
                            : mine_to;
    double saved_at = cli_now();
    for (int i = mine_from; i < stop_at; i++) {
        at_dataset_batch(&ds, &index[i], 1, x, &label, NULL, NULL);
        double start = cli_now();
        int s = opts.predict ? at_smooth_predict(smoother, x, (uint64_t)index[i], &results[i], &err)
                             : at_smooth_certify(smoother, x, (uint64_t)index[i], &results[i], &err);
        seconds += cli_now() - start;
        plain_timer_run(&plain, draws);
        if (s) {
            cli_progress_clear(&bar);
            status = cli_error("certify", EXIT_WORK_FAILED, "%s", err.message);
            goto done;
        }
        cli_progress_update(&bar, mode, (long)(i - mine_from + 1) * draws,
                            (long)(stop_at - mine_from) * draws, NULL);
        if (opts.state && (i + 1 == stop_at || cli_now() - saved_at >= STATE_SECONDS)) {
            progress = (certify_progress){i + 1, seconds, plain.seconds, plain.images};
            if ((status = certify_state_save(opts.state, fingerprint, np, results, &progress)))
                goto done;
            saved_at = cli_now();
        }
    }
    cli_progress_clear(&bar);
    if (stop_at < mine_to) {
        printf("stopped after %d of %d points (state in %s); run the same command again to "
               "continue\n", stop_at, np, opts.state);
        goto done;
    }
    if ((status = gather_results(results, np, &seconds, &plain)))
        goto done;
    const double noisy_rate = np * (double)draws / seconds;
    const double plain_rate = plain.images / plain.seconds;

    long abstained = 0, correct = 0;
    double radius_sum = 0.0;
    points_json = json_array();
    for (int i = 0; i < np; i++) {
        const int y = ds.labels[index[i]];
        abstained += results[i].prediction < 0;
        if (results[i].prediction == y) {
            correct++;
            radius_sum += results[i].radius;
        }
        json_array_append_new(points_json, point_json(index[i], y, &results[i]));
    }
    double lo, hi;
    report = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:i, s:i, s:f, s:i, s:i, s:f, s:i, s:i}",
                       "command", "certify", "mode", mode, "advtrain_version",
                       cli_version(), "checkpoint", opts.checkpoint,
                       "checkpoint_sha256", sha, "data", ds.name, "points", np, "skip", opts.skip,
                       "sigma", opts.sigma, "n0", opts.n0, "n", opts.n, "alpha", opts.alpha,
                       "batch_size", batch, "seed", opts.seed);
    json_object_set_new(report, "split", json_string(opts.split));
    json_object_set_new(report, "abstained", json_integer(abstained));
    json_object_set_new(report, "abstention_rate", json_real((double)abstained / np));
    json_object_set_new(report, "seconds", json_real(seconds));
    json_object_set_new(report, "noisy_forwards_per_second", json_real(noisy_rate));
    json_object_set_new(report, "plain_forwards_per_second", json_real(plain_rate));
    if (opts.predict) {
        cli_wilson(correct, np, &lo, &hi);
        printf("  smoothed accuracy %.2f%% (95%% CI %.2f-%.2f%%, %ld/%d)\n", 100.0 * correct / np,
               100 * lo, 100 * hi, correct, np);
        json_object_set_new(report, "accuracy", cli_accuracy_json(correct, np));
    } else {
        json_t *table = json_array();
        printf("  radius    certified accuracy (95%% CI)\n");
        for (int r = 0; r < opts.radii.count; r++) {
            const double radius = opts.radii.values[r];
            long certified = 0;
            for (int i = 0; i < np; i++)
                certified += results[i].prediction == ds.labels[index[i]] &&
                             results[i].radius >= radius;
            cli_wilson(certified, np, &lo, &hi);
            printf("  %-8g  %6.2f%% (%5.2f-%5.2f%%, %ld/%d)%s\n", radius, 100.0 * certified / np,
                   100 * lo, 100 * hi, certified, np, radius > r_max ? "  beyond the largest certifiable radius" : "");
            json_t *row = cli_accuracy_json(certified, np);
            json_object_set_new(row, "radius", json_real(radius));
            json_array_append_new(table, row);
        }
        printf("  average certified radius (ACR) %.4f\n", radius_sum / np);
        json_object_set_new(report, "certified", table);
        json_object_set_new(report, "acr", json_real(radius_sum / np));
        json_object_set_new(report, "max_radius", json_real(r_max));
    }
    printf("  abstained on %ld of %d points (%.1f%%)\n", abstained, np, 100.0 * abstained / np);
    printf("  %.0f noisy images/s (noise, forward and counting; %.1f s); plain forward %.0f images/s "
           "at batch %d (%ld images between the points)\n", noisy_rate, seconds, plain_rate, batch,
           plain.images);
    json_object_set_new(report, "per_point", points_json);
    points_json = NULL;
    if (opts.json && ranks_rank() == 0 && cli_write_json(opts.json, report, &err)) {
        status = cli_error("certify", EXIT_WORK_FAILED, "%s", err.message);
        goto done;
    }
    status = 0;
done:
    json_decref(points_json);
    json_decref(report);
    at_smoother_free(smoother);
    plain_timer_free(&plain);
    at_model_free(model);
    at_dataset_free(&ds);
    free(x);
    free(results);
    free(index);
    free(fingerprint);
    return status;
}
