/* cmd_robustify.c: `advtrain robustify`: preemptive image robustification (Moon, An and Song,
 * "Preemptive Image Robustification for Protecting Users against Man-in-the-Middle Adversarial
 * Attacks", AAAI 2022, eq. 2): move each of the first N images of a split inside its delta-ball so
 * that the model's own prediction survives a PGD attacker of budget eps around the new image.
 * Writes a safetensors file with the originals "x", the robustified images "x_r", the labels "y"
 * and the predictions the robustification protected ("pred"), with --reconstruct also the
 * reconstruction attack's images "x_rec", and a PNG grid of x, x_r and their difference. */
#include "plots.h"
#include "robustify_eval.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

typedef struct robustify_opts {
    const char *data, *data_dir, *model, *checkpoint, *split, *out, *png, *json, *norm;
    int n, grid, batch_size, threads, seed;
    bool quiet;
    cli_robustify_args r;
} robustify_opts;

static robustify_opts opts = {.data = "fashion-mnist", .split = "test", .n = 100, .grid = 8,
                              .batch_size = 100, .r = {.iters = -1, .steps = -1}};

static const cli_option options[] = {
    {"checkpoint", CLI_STRING, &opts.checkpoint, 0, 0, NULL, "FILE", "the model whose predictions are protected (required)"},
    {"model", CLI_STRING, &opts.model, 0, 0, NULL, "ARCH", "architecture of a weights-only FILE"},
    {"data", CLI_STRING, &opts.data, 0, 0, NULL, "NAME", "data set; default fashion-mnist"},
    {"data-dir", CLI_STRING, &opts.data_dir, 0, 0, NULL, "DIR", "read the data set from DIR"},
    {"split", CLI_CHOICE, &opts.split, 0, 0, "test|train", NULL, "which split; default test"},
    {"n", CLI_INT, &opts.n, 1, 1000000, NULL, "N", "robustify the first N examples; default 100"},
    {"norm", CLI_CHOICE, &opts.norm, 0, 0, "linf|l2", NULL, "norm of delta and eps; default linf"},
    CLI_ROBUSTIFY_OPTIONS(opts.r, "eps", "the man-in-the-middle's budget the inner PGD assumes (required)"),
    {"batch-size", CLI_INT, &opts.batch_size, 1, 65536, NULL, "N", "images robustified together; default 100"},
    {"seed", CLI_INT, &opts.seed, 0, 2147483647, NULL, "N", "seed of the random starts; default 0"},
    {"out", CLI_STRING, &opts.out, 0, 0, NULL, "FILE", "the images (safetensors; required)"},
    {"png", CLI_STRING, &opts.png, 0, 0, NULL, "FILE", "PNG grid of original, robustified and difference"},
    {"grid", CLI_INT, &opts.grid, 1, 64, NULL, "N", "rows of the PNG grid; default 8"},
    {"json", CLI_STRING, &opts.json, 0, 0, NULL, "FILE", "write what was measured to FILE"},
    {"threads", CLI_INT, &opts.threads, 1, 1024, NULL, "N", "threads (default: all cores)"},
    {"quiet", CLI_FLAG, &opts.quiet, 0, 0, NULL, NULL, "no progress line"},
};

static const cli_command command = {
    "robustify",
    "Preemptive robustification (Moon et al., AAAI 2022): move each image inside its delta-ball so\n"
    "that the model's own prediction survives PGD of budget eps around it (tanh box and RMSprop for\n"
    "linf, projected steps for l2; the inner PGD's increments held constant). Example:\n"
    "  advtrain robustify --checkpoint M --delta 0.1 --eps 0.1 --iters 100 --out robust.safetensors\n"
    "Evaluate the man-in-the-middle protocol with 'advtrain eval --robustify'.",
    "advtrain robustify --checkpoint FILE --delta D --eps E --out FILE [options]", options,
    sizeof options / sizeof options[0]};

static long count_equal(const int32_t *a, const int32_t *b, int n)
{
    long k = 0;
    for (int i = 0; i < n; i++)
        k += a[i] == b[i];
    return k;
}

int cmd_robustify(int argc, char **argv)
{
    int status = cli_parse(&command, argc, argv, NULL);
    if (status)
        return status < 0 ? 0 : status;
    if (!opts.checkpoint || !opts.out)
        return cli_error("robustify", EXIT_USAGE, "--checkpoint and --out are required\nusage: %s",
                         command.usage);
    if (!(opts.r.eps > 0.0) && opts.r.steps != 0)
        return cli_error("robustify", EXIT_USAGE, "--eps must be given and > 0 (the attacker's budget)");
    opts.r.norm = opts.norm;
    at_robustify_options o, orec;
    if ((status = cli_robustify_options("robustify", &opts.r, opts.r.eps, &o)))
        return status;
    orec = o;
    orec.reconstruct = true;
    if (opts.r.rec_delta > 0.0)
        orec.delta = (float)opts.r.rec_delta;
    if (opts.threads)
        omp_set_num_threads(opts.threads);
    at_dataset ds = {0};
    at_model *model = NULL;
    at_error err;
    float *x = NULL, *xr = NULL, *xrec = NULL;
    int32_t *y = NULL, *pred = NULL, *pred_r = NULL, *pred_rec = NULL;
    json_t *report = NULL;
    if ((status = cli_open_dataset("robustify", opts.data, opts.data_dir, opts.split, &ds)))
        return status;
    if ((status = cli_load_model("robustify", opts.checkpoint, opts.model, &ds, &model)))
        goto done;
    const int n = opts.n < ds.n ? opts.n : ds.n;
    const size_t image = (size_t)ds.c * ds.h * ds.w, bytes = (size_t)n * image * sizeof(float);
    x = malloc(bytes);
    xr = malloc(bytes);
    xrec = opts.r.reconstruct ? malloc(bytes) : NULL;
    y = malloc((size_t)n * sizeof(int32_t));
    pred = malloc((size_t)n * sizeof(int32_t));
    pred_r = malloc((size_t)n * sizeof(int32_t));
    pred_rec = malloc((size_t)n * sizeof(int32_t));
    if (!x || !xr || (opts.r.reconstruct && !xrec) || !y || !pred || !pred_r || !pred_rec) {
        status = cli_error("robustify", EXIT_WORK_FAILED, "out of memory");
        goto done;
    }
    for (int i = 0; i < n; i++)
        pred[i] = i;
    at_dataset_batch(&ds, pred, n, x, y, NULL, NULL);
    at_robustify_stats st, strec = {0};
    double start = cli_now();
    if ((status = cli_robustify_images("robustify", model, &o, x, n, opts.batch_size,
                                       (uint64_t)opts.seed, opts.quiet, xr, pred, &st)) ||
        (status = cli_predict("robustify", model, xr, n, pred_r)))
        goto done;
    const double seconds = cli_now() - start;
    printf("robustified %d points of %s/%s (%s, delta %g, eps %g, %d x PGD-%d) in %.1f s\n", n,
           ds.name, opts.split, at_norm_name(o.norm), o.delta, o.eps, o.iters, o.steps, seconds);
    printf("  measured ||x_r - x||: max linf %.6f, max l2 %.6f; %ld values outside [0,1], %ld "
           "non-finite\n", st.max_linf, st.max_l2, st.out_of_range, st.nonfinite);
    printf("  robust loss (CE at the inner PGD point): %.4f at the first iteration, %.4f at x_r\n",
           st.loss_first_sum / n, st.loss_last_sum / n);
    printf("  clean accuracy %.2f%% at x, %.2f%% at x_r; prediction kept on %ld/%d\n",
           100.0 * count_equal(pred, y, n) / n, 100.0 * count_equal(pred_r, y, n) / n,
           count_equal(pred, pred_r, n), n);
    report = json_pack("{s:s, s:s, s:s, s:i, s:f}", "command", "robustify", "checkpoint",
                       opts.checkpoint, "data", ds.name, "n", n, "seconds", seconds);
    json_object_set_new(report, "robustify", cli_robustify_stats_json(&o, &st, n));
    json_object_set_new(report, "clean_accuracy_x", json_real((double)count_equal(pred, y, n) / n));
    json_object_set_new(report, "clean_accuracy_x_r", json_real((double)count_equal(pred_r, y, n) / n));
    if (opts.r.reconstruct) {
        if ((status = cli_robustify_images("robustify", model, &orec, xr, n, opts.batch_size,
                                           (uint64_t)opts.seed + 1, opts.quiet, xrec, NULL,
                                           &strec)) ||
            (status = cli_predict("robustify", model, xrec, n, pred_rec)))
            goto done;
        printf("  reconstruction attack (delta %g around x_r): robust loss %.4f -> %.4f, clean "
               "accuracy %.2f%% at x_rec, max linf ||x_rec - x_r|| %.6f\n", orec.delta,
               strec.loss_first_sum / n, strec.loss_last_sum / n,
               100.0 * count_equal(pred_rec, y, n) / n, strec.max_linf);
        json_object_set_new(report, "reconstruction", cli_robustify_stats_json(&orec, &strec, n));
        json_object_set_new(report, "clean_accuracy_x_rec",
                            json_real((double)count_equal(pred_rec, y, n) / n));
    }
    at_st_writer *w = NULL;
    int64_t xshape[4] = {n, ds.c, ds.h, ds.w}, yshape[1] = {n};
    char delta_text[32], eps_text[32];
    snprintf(delta_text, sizeof delta_text, "%g", o.delta);
    snprintf(eps_text, sizeof eps_text, "%g", o.eps);
    if (at_st_writer_create(&w, &err) ||
        at_st_writer_add(w, "x", "F32", 4, xshape, x, bytes, &err) ||
        at_st_writer_add(w, "x_r", "F32", 4, xshape, xr, bytes, &err) ||
        (xrec && at_st_writer_add(w, "x_rec", "F32", 4, xshape, xrec, bytes, &err)) ||
        at_st_writer_add(w, "y", "I32", 1, yshape, y, (size_t)n * 4, &err) ||
        at_st_writer_add(w, "pred", "I32", 1, yshape, pred, (size_t)n * 4, &err) ||
        at_st_writer_meta(w, "norm", at_norm_name(o.norm), &err) ||
        at_st_writer_meta(w, "delta", delta_text, &err) ||
        at_st_writer_meta(w, "eps", eps_text, &err) ||
        at_st_writer_meta(w, "checkpoint", opts.checkpoint, &err) ||
        at_st_writer_save(w, opts.out, &err)) {
        at_st_writer_free(w);
        status = cli_error("robustify", EXIT_WORK_FAILED, "%s", err.message);
        goto done;
    }
    at_st_writer_free(w);
    if (opts.png && plot_png_grid(opts.png, x, xr, opts.grid < n ? opts.grid : n, ds.c, ds.h, ds.w,
                                  ds.h < 64 ? 4 : 2, &err)) {
        status = cli_error("robustify", EXIT_WORK_FAILED, "%s", err.message);
        goto done;
    }
    if (opts.json && cli_write_json(opts.json, report, &err)) {
        status = cli_error("robustify", EXIT_WORK_FAILED, "%s", err.message);
        goto done;
    }
    printf("wrote %s%s%s\n", opts.out, opts.png ? " and " : "", opts.png ? opts.png : "");
    status = st.out_of_range || st.nonfinite
                 ? cli_error("robustify", EXIT_WORK_FAILED, "%ld robustified values outside [0,1] "
                             "or not finite", st.out_of_range + st.nonfinite)
                 : 0;
done:
    json_decref(report);
    free(x);
    free(xr);
    free(xrec);
    free(y);
    free(pred);
    free(pred_r);
    free(pred_rec);
    at_model_free(model);
    at_dataset_free(&ds);
    return status;
}
