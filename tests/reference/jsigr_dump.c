/* jsigr_dump.c: one J-SIGR step's weight gradient, for the reference tier to compare with
 * PyTorch's double backpropagation.
 *
 *   jsigr_dump --weights W.safetensors --input IN.safetensors [--fd-step H]
 *              --jacobian-weight LJ --selective-weight LS --seed S --out OUT.safetensors
 *
 * SmallCNN with the weights W, the batch IN ("x" [n, 1, 28, 28] F32, "y" [n] I64), the whole
 * input gradient penalised (mask-fraction 1) and one random projection per example drawn from a
 * stream seeded with S, as the training step draws it. OUT receives "penalty_grad.<parameter>"
 * (the weight gradient of LJ K mean ||v^T J||^2 + LS mean ||grad_x CE_i||^2: the J-SIGR step's
 * gradient minus the cross-entropy's), "v" [n, classes], the projections, and "loss". */
#include "advtrain.h"
#include "train/method.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(const char *msg, const char *detail)
{
    fprintf(stderr, "jsigr_dump: %s%s%s\n", msg, detail ? ": " : "", detail ? detail : "");
    return 1;
}

/* One J-SIGR step's weight gradient (the model's gradient slab after the step) with the given
 * penalty weights, as the trainer runs it: the method's options as a user gives them, its
 * context, its setup. */
static int step_gradient(at_model *m, const at_batch *b, size_t image, const char *h,
                         const char *lj, const char *ls, uint64_t seed, double *loss,
                         at_error *err)
{
    const int n = b->n, k = at_model_num_classes(m);
    at_train_config cfg = {.method = "jsigr"};
    if (h)
        at_train_config_set(&cfg, "fd-step", h);
    at_train_config_set(&cfg, "jacobian-weight", lj);
    at_train_config_set(&cfg, "selective-weight", ls);
    at_train_config_set(&cfg, "mask-fraction", "1");
    const at_method *method = at_method_find("jsigr");
    double opt[16];
    bool given[16];
    int status = at_method_resolve_options(method, &cfg, opt, given, err);
    if (status)
        return status;
    at_rng rng, unscored;
    at_rng_seed(&rng, seed);
    at_rng_seed(&unscored, seed + 1);
    at_method_ctx c = {.model = m, .config = &cfg, .opt = opt, .opt_given = given, .rng = &rng,
                       .rng_unscored = &unscored, .num_classes = k, .batch = n, .image = image};
    c.x_adv = calloc((size_t)n * image, sizeof(float));
    c.dir = calloc((size_t)n * image, sizeof(float));
    c.dlogits = calloc((size_t)n * k, sizeof(float));
    c.dlogits2 = calloc((size_t)n * k, sizeof(float));
    c.correct = calloc((size_t)n, 1);
    if (!(status = at_pass_create(&c.train, m, n, 0, err)) &&
        !(status = at_pass_create(&c.clean, m, n, 0, err)) &&
        !(status = at_pass_create(&c.attack_pass, m, n, AT_PASS_NO_WEIGHT_GRADS, err)) &&
        !(status = method->setup(&c, err))) {
        at_model_zero_grad(m);
        status = method->step(&c, b, loss);
    }
    if (c.free_state)
        c.free_state(c.state);
    free(c.x_adv);
    free(c.dir);
    free(c.dlogits);
    free(c.dlogits2);
    free(c.correct);
    at_pass_free(c.train);
    at_pass_free(c.clean);
    at_pass_free(c.attack_pass);
    return status;
}

int main(int argc, char **argv)
{
    const char *weights = NULL, *input = NULL, *out = NULL, *h = NULL, *lj = "0.01", *ls = "1";
    uint64_t seed = 1;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--weights")) weights = argv[i + 1];
        else if (!strcmp(argv[i], "--input")) input = argv[i + 1];
        else if (!strcmp(argv[i], "--out")) out = argv[i + 1];
        else if (!strcmp(argv[i], "--fd-step")) h = argv[i + 1];
        else if (!strcmp(argv[i], "--jacobian-weight")) lj = argv[i + 1];
        else if (!strcmp(argv[i], "--selective-weight")) ls = argv[i + 1];
        else if (!strcmp(argv[i], "--seed")) seed = strtoull(argv[i + 1], NULL, 10);
        else return fail("unknown option", argv[i]);
    }
    if (!weights || !input || !out)
        return fail("usage: --weights W --input IN --out OUT [--fd-step H ...]", NULL);
    at_error err;
    at_safetensors *in = NULL;
    if (at_st_open(&in, input, &err))
        return fail(err.message, NULL);
    const at_st_tensor *tx = at_st_find(in, "x"), *ty = at_st_find(in, "y");
    if (!tx || !ty || strcmp(tx->dtype, "F32") || strcmp(ty->dtype, "I64") || tx->ndim != 4)
        return fail("input needs x (F32, 4-d) and y (I64)", input);
    const int n = (int)tx->shape[0];
    at_model *m = NULL;
    if (at_model_create(&m, "smallcnn", &(at_model_options){0}, &err) ||
        at_checkpoint_load(weights, m, NULL, NULL, &err))
        return fail(err.message, weights);
    const int k = at_model_num_classes(m);
    const size_t image = (size_t)tx->shape[1] * tx->shape[2] * tx->shape[3];

    int32_t *y = malloc((size_t)n * sizeof *y);
    for (int i = 0; i < n; i++)
        y[i] = (int32_t)((const int64_t *)ty->data)[i];
    const at_batch b = {.x = tx->data, .y = y, .n = n, .scored = n, .total = n,
                       .total_scored = n};
    /* the penalties' gradient: the step's minus the plain cross-entropy step's, both in float32
     * through the same forward at x (so a ReLU at a rounding-level kink routes both alike) */
    size_t count;
    at_model_params(m, &count);
    float *with = malloc(count * sizeof(float));
    double loss, plain_loss;
    if (step_gradient(m, &b, image, h, lj, ls, seed, &loss, &err))
        return fail(err.message, NULL);
    memcpy(with, at_model_grads(m, &count), count * sizeof(float));
    if (step_gradient(m, &b, image, h, "0", "0", seed, &plain_loss, &err))
        return fail(err.message, NULL);
    float *grads = at_model_grads(m, &count);
    for (size_t j = 0; j < count; j++)
        grads[j] = with[j] - grads[j];

    /* the projections the step drew: the same stream, drawn the same way */
    float *v = malloc((size_t)n * k * sizeof(float));
    at_rng rng;
    at_rng_seed(&rng, seed);
    for (int i = 0; i < n; i++) {
        double norm2 = 0.0;
        for (int j = 0; j < k; j++) {
            v[i * k + j] = (float)at_rng_normal(&rng);
            norm2 += (double)v[i * k + j] * v[i * k + j];
        }
        for (int j = 0; j < k; j++)
            v[i * k + j] *= (float)(1.0 / sqrt(norm2));
    }
    at_st_writer *w = NULL;
    if (at_st_writer_create(&w, &err))
        return fail(err.message, NULL);
    int64_t vshape[2] = {n, k}, one[1] = {1};
    float loss32 = (float)loss;
    at_st_writer_add(w, "v", "F32", 2, vshape, v, (size_t)n * k * 4, &err);
    at_st_writer_add(w, "loss", "F32", 1, one, &loss32, 4, &err); /* CE + penalties */
    char (*names)[200] = calloc((size_t)at_model_tensor_count(m), sizeof *names);
    for (int i = 0; i < at_model_tensor_count(m); i++) {
        at_tensor_info t = at_model_tensor(m, i);
        if (!t.is_param)
            continue;
        snprintf(names[i], sizeof names[i], "penalty_grad.%s", t.name);
        if (at_st_writer_add(w, names[i], "F32", t.ndim, t.shape, t.grad, t.numel * 4, &err))
            return fail(err.message, NULL);
    }
    if (at_st_writer_save(w, out, &err))
        return fail(err.message, NULL);
    at_st_writer_free(w);
    free(names);
    free(v);
    free(y);
    free(with);
    at_model_free(m);
    at_st_free(in);
    return 0;
}
