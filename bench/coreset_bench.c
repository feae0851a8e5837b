/* coreset_bench.c: the time of one coreset selection (src/train/coreset.h) at the size of a
 * Fashion-MNIST or CIFAR-10 training set: N points of K classes with H-dimensional embeddings,
 * drawn around a number of centres per class (softmax of noisy logits, ReLU of noisy
 * embeddings), as the gradients of a half-trained model are. Prints the seconds of each of
 * --repeats selections at --fraction, full gradients and the bias-only proxy.
 *   advtrain-coreset-bench [--n 60000] [--classes 10] [--embed 200] [--centres 100]
 *                          [--noise 0.3] [--fraction 0.5] [--repeats 3] */
#include "advtrain.h"
#include "train/coreset.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
    int n = 60000, k = 10, h = 200, centres = 100, repeats = 3;
    double noise = 0.3, fraction = 0.5;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--n") && v) n = atoi(v), i++;
        else if (!strcmp(a, "--classes") && v) k = atoi(v), i++;
        else if (!strcmp(a, "--embed") && v) h = atoi(v), i++;
        else if (!strcmp(a, "--centres") && v) centres = atoi(v), i++;
        else if (!strcmp(a, "--noise") && v) noise = atof(v), i++;
        else if (!strcmp(a, "--fraction") && v) fraction = atof(v), i++;
        else if (!strcmp(a, "--repeats") && v) repeats = atoi(v), i++;
        else {
            fprintf(stderr, "coreset_bench: unknown option %s\n", a);
            return 2;
        }
    }
    if (n < 1 || k < 1 || k > 1000 || h < 1 || centres < 1 || repeats < 1) {
        fprintf(stderr, "coreset_bench: bad sizes\n");
        return 2;
    }
    const size_t per_centre = (size_t)k + h;
    float *probs = malloc((size_t)n * k * sizeof(float));
    float *emb = malloc((size_t)n * h * sizeof(float));
    float *centre = malloc((size_t)k * centres * per_centre * sizeof(float));
    int32_t *labels = malloc((size_t)n * sizeof(int32_t));
    int32_t *sel = malloc((size_t)n * sizeof(int32_t));
    float *w = malloc((size_t)n * sizeof(float));
    double *z = malloc((size_t)k * sizeof(double));
    if (!probs || !emb || !centre || !labels || !sel || !w || !z)
        return 1;
    at_rng r;
    at_rng_seed(&r, 1);
    for (size_t t = 0; t < (size_t)k * centres * per_centre; t++) /* logits of scale 3, then h */
        centre[t] = (float)((t % per_centre < (size_t)k ? 3.0 : 1.0) * at_rng_normal(&r));
    for (int i = 0; i < n; i++) {
        labels[i] = (int32_t)at_rng_below(&r, (uint32_t)k);
        size_t which = (size_t)labels[i] * centres + at_rng_below(&r, (uint32_t)centres);
        const float *c = centre + which * per_centre;
        double top = -INFINITY, sum = 0.0;
        for (int t = 0; t < k; t++) {
            z[t] = c[t] + noise * at_rng_normal(&r);
            top = z[t] > top ? z[t] : top;
        }
        for (int t = 0; t < k; t++)
            sum += exp(z[t] - top);
        for (int t = 0; t < k; t++)
            probs[(size_t)i * k + t] = (float)(exp(z[t] - top) / sum);
        for (int t = 0; t < h; t++)
            emb[(size_t)i * h + t] = (float)fmax(0.0, c[k + t] + noise * at_rng_normal(&r));
    }
    printf("n %d, classes %d, embed %d, centres %d per class, noise %g, fraction %g, %d threads\n",
           n, k, h, centres, noise, fraction, omp_get_max_threads());
    for (int bias = 0; bias < 2; bias++) {
        at_coreset_input in = {.n = n, .classes = k, .embed = h, .probs = probs, .labels = labels,
                               .embeddings = emb, .bias_only = bias};
        for (int rep = 0; rep < repeats; rep++) {
            at_error err;
            double t0 = now();
            int count = at_coreset_select(&in, fraction, sel, w, &err);
            double t1 = now();
            if (count < 0) {
                fprintf(stderr, "coreset_bench: %s\n", err.message);
                return 1;
            }
            float most = 0.0f;
            for (int s = 0; s < count; s++)
                most = w[s] > most ? w[s] : most;
            printf("%-9s %d points selected, largest weight %.0f: %.3f s\n",
                   bias ? "bias-only" : "full", count, most, t1 - t0);
        }
    }
    free(probs);
    free(emb);
    free(centre);
    free(labels);
    free(sel);
    free(w);
    free(z);
    return 0;
}
