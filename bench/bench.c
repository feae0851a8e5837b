/* bench.c: throughput of the reference workloads, batch 128 (docs/PERFORMANCE.md):
 *   W1  smallcnn, 1x28x28;   W2  preact-resnet18 with CIFAR normalisation, 3x32x32.
 * Rows: (a) inference forward, eval mode; (b) clean SGD step; (c) one PGD attack step (input
 * gradient only); (d) PGD-10 adversarial training step; (e) FGSM-RS fast-AT step. Attacks run
 * with batch norm in train mode, as the comparison program does. Prints images/s (median and
 * best), achieved GFLOP/s and peak resident memory; --json writes the same figures.
 * --onnx FILE runs the rows on an imported graph of the workload's input shape instead of the
 * built-in architecture (bench/onnx_speed.sh compares the two).
 * Row (s), run alone, is the ceiling to read the rows against: square sgemm of n = 1024 through
 * the oneDNN the library uses, on all the threads. */
#include "advtrain.h"
#include "median.h"

#include <dnnl.h>
#include <jansson.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

typedef struct workload {
    const char *name, *arch;
    int c, size;
    float eps, alpha, fgsm_alpha;
    int warmup[5], repeats[5]; /* per row a..e */
} workload;

static const workload workloads[] = {
    {"fmnist-smallcnn", "smallcnn", 1, 28, 0.1f, 0.01f, 0.125f, {5, 5, 5, 2, 3}, {30, 20, 20, 7, 15}},
    {"cifar-preactresnet18", "preact-resnet18", 3, 32, 8 / 255.f, 2 / 255.f, 10 / 255.f,
     {1, 1, 1, 0, 1}, {5, 4, 4, 3, 3}},
};

typedef struct bench {
    at_model *model;
    at_pass *train, *infer;
    at_optimizer *opt;
    float *x, *xadv, *delta, *dlogits;
    int32_t *y;
    int batch, k;
    size_t image;
    const workload *w;
    at_rng rng;
} bench;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void train_step(bench *b, const float *x)
{
    at_model_zero_grad(b->model);
    at_forward(b->train, x, b->batch, AT_BN_TRAIN);
    at_loss_cross_entropy(at_pass_logits(b->train), b->batch, b->k, &(at_ce_target){.labels = b->y},
                          NULL, b->dlogits);
    at_backward(b->train, b->dlogits, AT_GRAD_WEIGHTS);
    at_optimizer_step(b->opt, 0.01f);
}

/* L-inf PGD from a uniform random start, `steps` signed-gradient steps of alpha, projection to
 * the eps-ball and to [0,1]; the result is in b->xadv. */
static void pgd(bench *b, float eps, float alpha, int steps)
{
    const size_t count = (size_t)b->batch * b->image;
    for (size_t i = 0; i < count; i++) {
        float d = (float)((2.0 * at_rng_uniform(&b->rng) - 1.0) * eps);
        float v = fminf(fmaxf(b->x[i] + d, 0.0f), 1.0f);
        b->delta[i] = v - b->x[i];
        b->xadv[i] = v;
    }
    for (int s = 0; s < steps; s++) {
        at_forward(b->train, b->xadv, b->batch, AT_BN_TRAIN);
        at_loss_cross_entropy(at_pass_logits(b->train), b->batch, b->k,
                              &(at_ce_target){.labels = b->y}, NULL, b->dlogits);
        at_backward(b->train, b->dlogits, AT_GRAD_INPUT);
        const float *g = at_pass_input_grad(b->train);
        for (size_t i = 0; i < count; i++) {
            float d = b->delta[i] + alpha * (float)((g[i] > 0) - (g[i] < 0));
            d = fminf(fmaxf(d, -eps), eps);
            float v = fminf(fmaxf(b->x[i] + d, 0.0f), 1.0f);
            b->delta[i] = v - b->x[i];
            b->xadv[i] = v;
        }
    }
}

static void run_row(bench *b, char row)
{
    switch (row) {
    case 'a': at_forward(b->infer, b->x, b->batch, AT_BN_EVAL); break;
    case 'b': train_step(b, b->x); break;
    case 'c': pgd(b, b->w->eps, b->w->alpha, 1); break;
    case 'd': pgd(b, b->w->eps, b->w->alpha, 10); train_step(b, b->xadv); break;
    case 'e': pgd(b, b->w->eps, b->w->fgsm_alpha, 1); train_step(b, b->xadv); break;
    }
}


/* Row (s): GFLOP/s of C = A B for square n x n float matrices, 2 n^3 FLOP a call, median of 15
 * calls after 3 warm-up calls. */
static json_t *sgemm_ceiling(int threads)
{
    enum { N = 1024, WARM = 3, REPS = 15 };
    float *a = malloc(sizeof(float) * N * N), *b = malloc(sizeof(float) * N * N),
          *c = malloc(sizeof(float) * N * N);
    for (int i = 0; i < N * N; i++) {
        a[i] = (float)(i % 7) * 0.1f;
        b[i] = (float)(i % 5) * 0.1f;
    }
    double t[REPS];
    for (int i = 0; i < WARM + REPS; i++) {
        double t0 = now();
        dnnl_sgemm('N', 'N', N, N, N, 1.0f, a, N, b, N, 0.0f, c, N);
        if (i >= WARM)
            t[i - WARM] = now() - t0;
    }
    free(a);
    free(b);
    free(c);
    const double flop = 2.0 * N * N * N, median = median_of(t, REPS);
    printf("(s) sgemm ceiling, n=%d, oneDNN, %d threads  %6.1f GFLOP/s (median)  %6.1f (best)\n", N,
           threads, flop / median / 1e9, flop / t[0] / 1e9);
    return json_pack("{s:s, s:f, s:f, s:i}", "desc", "sgemm ceiling n=1024 (oneDNN)", "gflops",
                     flop / median / 1e9, "gflops_best", flop / t[0] / 1e9, "repeats", (int)REPS);
}

int main(int argc, char **argv)
{
    const char *which = "w1", *modes = "abcde", *json_path = NULL, *onnx_path = NULL;
    int threads = 2, batch = 128;
    double scale = 1.0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--workload") && v) which = v, i++;
        else if (!strcmp(a, "--modes") && v) modes = v, i++;
        else if (!strcmp(a, "--threads") && v) threads = atoi(v), i++;
        else if (!strcmp(a, "--batch") && v) batch = atoi(v), i++;
        else if (!strcmp(a, "--repeats-scale") && v) scale = atof(v), i++;
        else if (!strcmp(a, "--json") && v) json_path = v, i++;
        else if (!strcmp(a, "--onnx") && v) onnx_path = v, i++;
        else {
            fprintf(stderr, "usage: advtrain-bench [--workload w1|w2] [--modes abcde|s] [--threads N] "
                            "[--batch N] [--repeats-scale X] [--json FILE] [--onnx FILE]\n");
            return 2;
        }
    }
    if ((strcmp(which, "w1") && strcmp(which, "w2")) || threads < 1 || batch < 1 || scale <= 0 ||
        strspn(modes, "abcdes") != strlen(modes) || (strchr(modes, 's') && strlen(modes) > 1)) {
        fprintf(stderr, "advtrain-bench: invalid arguments\n");
        return 2;
    }
    omp_set_num_threads(threads);
    if (!strcmp(modes, "s")) {
        json_t *root = json_pack("{s:i, s:{s:o}}", "threads", threads, "results", "s",
                                 sgemm_ceiling(threads));
        int failed = json_path && json_dump_file(root, json_path, JSON_INDENT(1));
        json_decref(root);
        if (failed)
            fprintf(stderr, "advtrain-bench: cannot write %s\n", json_path);
        return failed;
    }
    const workload *w = &workloads[which[1] == '2'];
    bench b = {.batch = batch, .w = w};
    at_error err;
    at_model_options mo = {.in_channels = w->c, .in_height = w->size, .in_width = w->size};
    if (w->c == 3) {
        const float mean[3] = {0.4914f, 0.4822f, 0.4465f}, std[3] = {0.2471f, 0.2435f, 0.2616f};
        mo.normalize = 1;
        memcpy(mo.mean, mean, sizeof mean);
        memcpy(mo.std, std, sizeof std);
    }
    /* only the passes the rows need, so the peak memory of a one-row run is that row's */
    const bool infer = strchr(modes, 'a') != NULL, train = strpbrk(modes, "bcde") != NULL;
    /* --onnx: the workload's architecture as an imported graph (same input shape), to compare
     * an imported model's speed with the built-in one's */
    if ((onnx_path ? at_model_import_onnx(&b.model, onnx_path, &err)
                   : at_model_create(&b.model, w->arch, &mo, &err)) ||
        (train && at_pass_create(&b.train, b.model, batch, 0, &err)) ||
        (infer && at_pass_create(&b.infer, b.model, batch, AT_PASS_FORWARD_ONLY, &err)) ||
        at_optimizer_create(&b.opt, b.model, &(at_optimizer_options){.momentum = 0.9f, .weight_decay = 5e-4f}, &err)) {
        fprintf(stderr, "advtrain-bench: %s\n", err.message);
        return 1;
    }
    int in_c, in_h, in_w;
    at_model_input_shape(b.model, &in_c, &in_h, &in_w);
    if (in_c != w->c || in_h != w->size || in_w != w->size) {
        fprintf(stderr, "advtrain-bench: %s takes %dx%dx%d inputs, workload %s %dx%dx%d\n",
                onnx_path, in_c, in_h, in_w, which, w->c, w->size, w->size);
        return 1;
    }
    b.k = at_model_num_classes(b.model);
    b.image = (size_t)w->c * w->size * w->size;
    b.x = malloc((size_t)batch * b.image * sizeof(float));
    b.xadv = malloc((size_t)batch * b.image * sizeof(float));
    b.delta = malloc((size_t)batch * b.image * sizeof(float));
    b.dlogits = malloc((size_t)batch * b.k * sizeof(float));
    b.y = malloc((size_t)batch * sizeof(int32_t));
    at_rng_seed(&b.rng, 0);
    for (size_t i = 0; i < (size_t)batch * b.image; i++)
        b.x[i] = (float)at_rng_uniform(&b.rng);
    for (int i = 0; i < batch; i++)
        b.y[i] = (int32_t)at_rng_below(&b.rng, (uint32_t)b.k);

    static const double cost[5] = {1, 3, 2, 23, 5};
    static const char *desc[5] = {"inference forward (eval)", "clean SGD train step",
                                  "PGD attack step (input grad)", "PGD-10 AT step",
                                  "FGSM-RS fast-AT step"};
    const double flops = at_model_forward_flops(b.model);
    printf("workload %s  batch %d  threads %d  forward %.3f MFLOP/image\n", w->name, batch, threads,
           flops / 1e6);
    json_t *results = json_object();
    for (const char *m = modes; *m; m++) {
        int r = *m - 'a';
        int warm = w->warmup[r], reps = (int)ceil(w->repeats[r] * scale);
        for (int i = 0; i < warm; i++)
            run_row(&b, *m);
        double *t = malloc((size_t)reps * sizeof(double));
        for (int i = 0; i < reps; i++) {
            double t0 = now();
            run_row(&b, *m);
            t[i] = now() - t0;
        }
        double median = median_of(t, reps);
        double ips = batch / median, gflops = cost[r] * flops * ips / 1e9;
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        printf("(%c) %-30s %9.1f img/s (median) %9.1f (best)  step %8.1f ms  %6.1f GFLOP/s  "
               "peak RSS %.0f MiB\n", *m, desc[r], ips, batch / t[0], median * 1e3, gflops,
               ru.ru_maxrss / 1024.0);
        char key[2] = {*m, 0};
        json_object_set_new(results, key,
                            json_pack("{s:s, s:f, s:f, s:f, s:f, s:f, s:f, s:i, s:f}", "desc", desc[r],
                                      "images_per_s", ips, "images_per_s_best", batch / t[0],
                                      "median_s", median, "min_s", t[0], "max_s", t[reps - 1],
                                      "nominal_gflops", gflops, "repeats", reps, "peak_rss_mb",
                                      ru.ru_maxrss / 1024.0));
        free(t);
    }
    if (json_path) {
        json_t *root = json_pack("{s:s, s:i, s:i, s:f, s:o}", "workload", w->name, "batch", batch,
                                 "threads", threads, "flops_fwd_per_image", flops, "results", results);
        if (json_dump_file(root, json_path, JSON_INDENT(1))) {
            fprintf(stderr, "advtrain-bench: cannot write %s\n", json_path);
            return 1;
        }
        json_decref(root);
    } else {
        json_decref(results);
    }
    free(b.x);
    free(b.xadv);
    free(b.delta);
    free(b.dlogits);
    free(b.y);
    at_optimizer_free(b.opt);
    at_pass_free(b.train);
    at_pass_free(b.infer);
    at_model_free(b.model);
    return 0;
}
