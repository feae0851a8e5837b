/* reference_dump.c: runs one forward and backward pass of an advtrain model for the reference
 * tier, which compares every number with PyTorch's.
 *
 *   reference_dump --model ARCH --weights W.safetensors --input IN.safetensors --bn train|eval
 *                  --out OUT.safetensors [--mean m1,m2,m3 --std s1,s2,s3]
 *
 * IN holds "x" [n, c, h, w] F32 and "y" [n] I64. OUT receives "logits", "loss" (mean
 * cross-entropy, shape [1]), "input_grad", "grad.<parameter>" for every parameter, and
 * "after.<buffer>" for every float buffer after the forward (the running statistics), and
 * "relu.NNN", the output of the NNN-th ReLU node in graph order, from which the comparison takes
 * each unit's active/inactive state.
 *
 * With --attack fgsm|pgd --eps E [--steps S --step-size A], OUT also receives "x_adv": the attack
 * from the clean point (no random start), cross-entropy, batch norm in eval mode.
 *
 * ARCH is a reference architecture, or "generator-critic": a graph of the layers those do not use,
 * as torch_models.GeneratorCritic defines it (state_dict names included).
 *
 * With --optimizer sgd|adam|adamw [--weight-decay W], OUT also receives "stepped.<parameter>":
 * the weights of W.safetensors after three steps of that optimiser (its defaults otherwise) whose
 * gradients are this pass's scaled by 1, -0.5 and 2, at learning rates 1e-3, 5e-4 and 2e-3. */
#include "advtrain.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(const char *msg, const char *detail)
{
    fprintf(stderr, "reference_dump: %s%s%s\n", msg, detail ? ": " : "", detail ? detail : "");
    return 1;
}

static int parse_list(const char *s, float *out)
{
    int n = 0;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", s);
    for (char *tok = strtok(buf, ","); tok && n < 4; tok = strtok(NULL, ","))
        out[n++] = strtof(tok, NULL);
    return n;
}

/* A perturbation generator (conv, batch norm without affine parameters, PReLU per channel, conv,
 * tanh) and a critic reading its output (conv stride 2, PReLU with one slope, linear). */
static int generator_critic(at_model **out, const at_model_options *o, at_error *err)
{
    at_model *m = NULL;
    int status = at_model_begin(&m, o->in_channels, o->in_height, o->in_width, err);
    if (status)
        return status;
    int x = at_add_conv2d(m, 0, "gen.0", 8, 3, 1, 1, false);
    x = at_add_batchnorm2d_affine(m, x, "gen.1", false);
    x = at_add_prelu(m, x, "gen.2", 8);
    x = at_add_conv2d(m, x, "gen.3", o->in_channels, 3, 1, 1, true);
    x = at_add_tanh(m, x);
    x = at_add_conv2d(m, x, "critic.0", 8, 3, 2, 1, true);
    x = at_add_prelu(m, x, "critic.1", 1);
    at_add_linear(m, at_add_flatten(m, x), "critic.3", 10, true);
    status = at_model_finish(m, 0, err);
    if (status)
        at_model_free(m);
    else
        *out = m;
    return status;
}

int main(int argc, char **argv)
{
    const char *arch = NULL, *weights = NULL, *input = NULL, *bn = "train", *out = NULL;
    const char *mean = NULL, *std = NULL, *attack = NULL, *optimizer = NULL;
    float eps = 0.0f, step_size = 0.0f;
    double weight_decay = 0.0;
    int steps = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--model")) arch = argv[i + 1];
        else if (!strcmp(argv[i], "--weights")) weights = argv[i + 1];
        else if (!strcmp(argv[i], "--input")) input = argv[i + 1];
        else if (!strcmp(argv[i], "--bn")) bn = argv[i + 1];
        else if (!strcmp(argv[i], "--out")) out = argv[i + 1];
        else if (!strcmp(argv[i], "--mean")) mean = argv[i + 1];
        else if (!strcmp(argv[i], "--std")) std = argv[i + 1];
        else if (!strcmp(argv[i], "--attack")) attack = argv[i + 1];
        else if (!strcmp(argv[i], "--eps")) eps = strtof(argv[i + 1], NULL);
        else if (!strcmp(argv[i], "--steps")) steps = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--step-size")) step_size = strtof(argv[i + 1], NULL);
        else if (!strcmp(argv[i], "--optimizer")) optimizer = argv[i + 1];
        else if (!strcmp(argv[i], "--weight-decay")) weight_decay = strtod(argv[i + 1], NULL);
        else return fail("unknown option", argv[i]);
    }
    if (!arch || !weights || !input || !out)
        return fail("usage: --model ARCH --weights W --input IN --bn train|eval --out OUT", NULL);
    at_error err;
    at_safetensors *in = NULL;
    if (at_st_open(&in, input, &err))
        return fail(err.message, NULL);
    const at_st_tensor *tx = at_st_find(in, "x"), *ty = at_st_find(in, "y");
    if (!tx || !ty || strcmp(tx->dtype, "F32") || strcmp(ty->dtype, "I64") || tx->ndim != 4)
        return fail("input needs x (F32, 4-d) and y (I64)", input);
    const int n = (int)tx->shape[0];
    at_model_options o = {.in_channels = (int)tx->shape[1], .in_height = (int)tx->shape[2],
                          .in_width = (int)tx->shape[3]};
    if (mean && std) {
        o.normalize = 1;
        if (parse_list(mean, o.mean) != o.in_channels || parse_list(std, o.std) != o.in_channels)
            return fail("--mean/--std need one value per channel", NULL);
    }
    at_model *m = NULL;
    at_pass *p = NULL;
    if ((strcmp(arch, "generator-critic") ? at_model_create(&m, arch, &o, &err)
                                          : generator_critic(&m, &o, &err)) ||
        at_checkpoint_load(weights, m, NULL, NULL, &err) ||
        at_pass_create(&p, m, n, AT_PASS_KEEP_ALL, &err))
        return fail(err.message, NULL);
    const int k = at_model_num_classes(m);
    int32_t *y = malloc((size_t)n * sizeof *y);
    for (int i = 0; i < n; i++)
        y[i] = (int32_t)((const int64_t *)ty->data)[i];
    float *dlogits = malloc((size_t)n * k * sizeof(float));
    at_model_zero_grad(m);
    at_forward(p, tx->data, n, strcmp(bn, "eval") ? AT_BN_TRAIN : AT_BN_EVAL);
    float loss = at_loss_cross_entropy(at_pass_logits(p), n, k, &(at_ce_target){.labels = y}, NULL,
                                       dlogits);
    at_backward(p, dlogits, AT_GRAD_INPUT | AT_GRAD_WEIGHTS);

    at_st_writer *w = NULL;
    if (at_st_writer_create(&w, &err))
        return fail(err.message, NULL);
    int64_t lshape[2] = {n, k}, one[1] = {1};
    at_st_writer_add(w, "logits", "F32", 2, lshape, at_pass_logits(p), (size_t)n * k * 4, &err);
    at_st_writer_add(w, "loss", "F32", 1, one, &loss, 4, &err);
    at_st_writer_add(w, "input_grad", "F32", 4, tx->shape, at_pass_input_grad(p), tx->nbytes, &err);
    char (*names)[200] = calloc((size_t)at_model_tensor_count(m), sizeof *names);
    for (int i = 0; i < at_model_tensor_count(m); i++) {
        at_tensor_info t = at_model_tensor(m, i);
        if (t.dtype != AT_F32)
            continue;
        snprintf(names[i], sizeof names[i], "%s.%s", t.is_param ? "grad" : "after", t.name);
        if (at_st_writer_add(w, names[i], "F32", t.ndim, t.shape, t.is_param ? t.grad : t.data,
                             t.numel * 4, &err))
            return fail(err.message, NULL);
    }
    char (*relu_names)[32] = calloc((size_t)at_model_node_count(m), sizeof *relu_names);
    int relus = 0;
    for (int node = 0; node < at_model_node_count(m); node++) {
        if (strcmp(at_model_node_kind(m, node), "relu") != 0)
            continue;
        int c, h, ww;
        at_model_node_shape(m, node, &c, &h, &ww);
        int64_t shape[4] = {n, c, h, ww};
        snprintf(relu_names[node], sizeof relu_names[node], "relu.%03d", relus++);
        if (at_st_writer_add(w, relu_names[node], "F32", h == 1 && ww == 1 ? 2 : 4, shape,
                             at_pass_activation(p, node), (size_t)n * c * h * ww * 4, &err))
            return fail(err.message, NULL);
    }
    /* the steps run on a second model, since the writer still points at this one's gradients */
    at_model *stepped = NULL;
    char (*stepped_names)[200] = calloc((size_t)at_model_tensor_count(m), sizeof *stepped_names);
    if (optimizer) {
        int kind = AT_OPTIMIZER_SGD;
        while (kind <= AT_OPTIMIZER_ADAMW && strcmp(at_optimizer_kind_name(kind), optimizer))
            kind++;
        if (kind > AT_OPTIMIZER_ADAMW)
            return fail("unknown optimizer", optimizer);
        at_optimizer_options oo = at_optimizer_defaults((at_optimizer_kind)kind);
        oo.weight_decay = weight_decay;
        at_optimizer *opt = NULL;
        if (at_model_create(&stepped, arch, &o, &err) ||
            at_checkpoint_load(weights, stepped, NULL, NULL, &err) ||
            at_optimizer_create(&opt, stepped, &oo, &err))
            return fail(err.message, optimizer);
        size_t count;
        float *g = at_model_grads(stepped, &count);
        const float *g0 = at_model_grads(m, NULL);
        static const float scale[3] = {1.0f, -0.5f, 2.0f}, lr[3] = {1e-3f, 5e-4f, 2e-3f};
        for (int s = 0; s < 3; s++) {
            for (size_t i = 0; i < count; i++)
                g[i] = g0[i] * scale[s];
            at_optimizer_step(opt, lr[s]);
        }
        at_optimizer_free(opt);
        for (int i = 0; i < at_model_tensor_count(stepped); i++) {
            at_tensor_info t = at_model_tensor(stepped, i);
            if (!t.is_param)
                continue;
            snprintf(stepped_names[i], sizeof stepped_names[i], "stepped.%s", t.name);
            if (at_st_writer_add(w, stepped_names[i], "F32", t.ndim, t.shape, t.data, t.numel * 4,
                                 &err))
                return fail(err.message, NULL);
        }
    }
    float *x_adv = NULL;
    if (attack) {
        at_attack *atk = NULL;
        at_attack_options ao = {.eps = eps, .steps = steps, .step_size = step_size,
                                .no_random_start = true, .loss = AT_ATTACK_LOSS_CE};
        uint64_t *seeds = calloc((size_t)n, sizeof *seeds);
        x_adv = malloc(tx->nbytes);
        if (at_attack_create(&atk, attack, m, n, &ao, &err) ||
            at_attack_run(atk, tx->data, y, NULL, n, seeds, x_adv, NULL))
            return fail(err.message, attack);
        at_attack_free(atk);
        free(seeds);
        if (at_st_writer_add(w, "x_adv", "F32", 4, tx->shape, x_adv, tx->nbytes, &err))
            return fail(err.message, NULL);
    }
    if (at_st_writer_save(w, out, &err))
        return fail(err.message, NULL);
    at_st_writer_free(w);
    free(names);
    free(relu_names);
    free(stepped_names);
    at_model_free(stepped);
    free(x_adv);
    free(y);
    free(dlogits);
    at_pass_free(p);
    at_model_free(m);
    at_st_free(in);
    return 0;
}
