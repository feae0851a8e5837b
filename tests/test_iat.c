/* test_iat.c: interpolated adversarial training pinned to its definition, and the node hooks that
 * manifold mixup runs through. With lambda fixed at 1 (alpha 0) and no clean branch, iat's step is
 * pgd-at's; with lambda 1 and the clean branch at half weight, one SGD step is the mean of a
 * standard step and a pgd-at step; a hook that mixes a hidden node's rows has the gradient finite
 * differences give. */
#include "test.h"

#include "advtrain.h"
#include "util/train_fixtures.h"

#include <stdlib.h>

/* --- hooks: mixing the rows of a hidden node (lambda h_i + (1 - lambda) h_partner(i)) ------ */

typedef struct mix {
    float lambda;
    const int32_t *partner, *inverse;
    float scratch[4 * 128]; /* N rows of the widest hooked node (2 x 6 x 6) */
} mix;

static void mix_rows(float *v, int n, size_t per, float lambda, const int32_t *partner, float *scratch)
{
    memcpy(scratch, v, (size_t)n * per * sizeof(float));
    for (int i = 0; i < n; i++)
        for (size_t j = 0; j < per; j++)
            v[(size_t)i * per + j] = lambda * scratch[(size_t)i * per + j] +
                                     (1.0f - lambda) * scratch[(size_t)partner[i] * per + j];
}

static void fwd(void *user, float *out, int n, size_t per)
{
    mix *m = user;
    mix_rows(out, n, per, m->lambda, m->partner, m->scratch);
}

static void bwd(void *user, float *grad, int n, size_t per)
{
    mix *m = user;
    mix_rows(grad, n, per, m->lambda, m->inverse, m->scratch);
}

/* sum_ij r_ij z_ij at x, with the hook at `node` */
static double linear_loss(at_pass *p, const float *x, int n, const float *r)
{
    at_forward(p, x, n, AT_BN_TRAIN);
    const float *z = at_pass_logits(p);
    double l = 0.0;
    for (int j = 0; j < n * 3; j++)
        l += (double)r[j] * z[j];
    return l;
}

/* Whether d loss / d *v by central differences matches `analytic`: 1 when it does, 0 when the
 * differences at two step sizes disagree (a kink within reach: not checked); a mismatch
 * otherwise is a failure. */
static int fd_agrees(at_pass *p, const float *x, int n, const float *r, float *v, float analytic)
{
    const float saved = *v;
    double fd[2];
    const double steps[2] = {1e-3, 2.5e-4};
    for (int s = 0; s < 2; s++) {
        *v = saved + (float)steps[s];
        double lp = linear_loss(p, x, n, r);
        *v = saved - (float)steps[s];
        double lm = linear_loss(p, x, n, r);
        fd[s] = (lp - lm) / (2 * steps[s]);
    }
    *v = saved;
    if (fabs(fd[0] - fd[1]) > 5e-4 + 2e-2 * fabs(fd[0]))
        return 0;
    CHECK_CLOSE(analytic, fd[0], 1e-3, 2e-2);
    return 1;
}

TEST(a_mixing_hook_has_the_gradient_of_the_mixed_function)
{
    enum { N = 4 };
    at_model *m = small_conv_model();
    REQUIRE(m);
    at_pass *keep = NULL, *plain = NULL;
    at_error err;
    CHECK_OK(at_pass_create(&keep, m, N, AT_PASS_KEEP_ALL, &err), &err);
    CHECK_OK(at_pass_create(&plain, m, N, 0, &err), &err);
    REQUIRE(keep && plain);
    const int32_t partner[N] = {2, 0, 3, 1}, inverse[N] = {1, 3, 0, 2};
    mix mx = {.lambda = 0.3f, .partner = partner, .inverse = inverse};
    const at_node_hook hook = {fwd, bwd, &mx};
    /* a hidden node needs a pass that keeps every node */
    CHECK_EQ_INT(at_pass_set_hook(plain, 3, &hook), AT_ERR_STATE);
    CHECK_OK(at_pass_set_hook(keep, 3, &hook), NULL); /* the maxpool's output */
    float x[N * 36], r[N * 3];
    at_rng rng;
    at_rng_seed(&rng, 9);
    for (int j = 0; j < N * 36; j++)
        x[j] = (float)at_rng_uniform(&rng);
    for (int j = 0; j < N * 3; j++)
        r[j] = (float)(at_rng_uniform(&rng) - 0.5);

    /* the forward is the mix of the unmixed features: logits_i = W (lambda h_i + (1-lambda) h_p) + b
     * = lambda z_i + (1 - lambda) z_p for the unhooked logits z (the rest is linear) */
    at_forward(plain, x, N, AT_BN_TRAIN);
    float z[N * 3];
    memcpy(z, at_pass_logits(plain), sizeof z);
    at_forward(keep, x, N, AT_BN_TRAIN);
    const float *zm = at_pass_logits(keep);
    for (int i = 0; i < N; i++)
        for (int j = 0; j < 3; j++)
            CHECK_CLOSE(zm[i * 3 + j], 0.3 * z[i * 3 + j] + 0.7 * z[partner[i] * 3 + j], 1e-5, 1e-5);

    /* input and weight gradients against central differences of the hooked loss, at the
     * max-pool and at the ReLU (whose backward reads the output it produced, not the mix) */
    for (int node = 3; node >= 2; node--) {
        CHECK_OK(at_pass_set_hook(keep, 3, NULL), NULL);
        CHECK_OK(at_pass_set_hook(keep, node, &hook), NULL);
        at_forward(keep, x, N, AT_BN_TRAIN);
        at_model_zero_grad(m);
        CHECK_OK(at_backward(keep, r, AT_GRAD_INPUT | AT_GRAD_WEIGHTS), NULL);
        float gx[N * 36], gw[64];
        size_t count;
        float *w = at_model_params(m, &count);
        memcpy(gx, at_pass_input_grad(keep), sizeof gx);
        memcpy(gw, at_model_grads(m, NULL), (count < 64 ? count : 64) * sizeof(float));
        int tried = 0, checked = 0;
        for (int j = 0; j < N * 36; j += 5)
            checked += fd_agrees(keep, x, N, r, &x[j], gx[j]), tried++;
        for (size_t j = 0; j < count && j < 64; j += 3)
            checked += fd_agrees(keep, x, N, r, &w[j], gw[j]), tried++;
        /* coordinates next to a ReLU or max-pool kink are passed over; most are not */
        CHECK(checked >= tried * 3 / 4);
    }
    CHECK_OK(at_pass_set_hook(keep, 2, NULL), NULL);
    at_forward(keep, x, N, AT_BN_TRAIN);
    CHECK(memcmp(at_pass_logits(keep), z, sizeof z) == 0);
    at_pass_free(keep);
    at_pass_free(plain);
    at_model_free(m);
}

/* --- iat against pgd-at and standard training ------------------------------------------- */

TEST(iat_with_lambda_one_and_no_clean_branch_is_pgd_at)
{
    at_dataset d = bands_data(64, 1);
    at_train_config pgd = bands_config("pgd-at"), iat = bands_config("iat");
    iat.attack_steps = 10; /* pgd-at's preset (iat's is 7) */
    at_train_config_set(&iat, "mix-alpha", "0");
    at_train_config_set(&iat, "clean-weight", "0");
    size_t n1, n2;
    float *a = bands_train(&pgd, &d, &n1), *b = bands_train(&iat, &d, &n2);
    REQUIRE(a && b);
    CHECK(memcmp(a, b, n1 * sizeof(float)) == 0);
    /* mixing changes the step */
    at_train_config_set(&iat, "mix-alpha", "1");
    float *c = bands_train(&iat, &d, &n2);
    CHECK(c && memcmp(a, c, n1 * sizeof(float)) != 0);
    free(a);
    free(b);
    free(c);
    bands_free(&d);
}

TEST(iat_with_lambda_one_averages_a_clean_and_an_adversarial_step)
{
    /* one batch, one step, no momentum yet: the update is linear in the gradient */
    at_dataset d = bands_data(16, 2);
    at_train_config std = bands_config("standard"), pgd = bands_config("pgd-at"),
                    iat = bands_config("iat");
    std.epochs = pgd.epochs = iat.epochs = 1;
    iat.attack_steps = 10;
    at_train_config_set(&iat, "mix-alpha", "0");
    size_t n;
    float *a = bands_train(&std, &d, &n), *b = bands_train(&pgd, &d, &n),
          *c = bands_train(&iat, &d, &n);
    REQUIRE(a && b && c);
    double worst = 0.0, moved = 0.0;
    for (size_t j = 0; j < n; j++) {
        worst = fmax(worst, fabs(c[j] - 0.5 * ((double)a[j] + b[j])));
        moved = fmax(moved, fabs((double)a[j] - b[j]));
    }
    CHECK(worst < 1e-6);
    CHECK(moved > 1e-4); /* the two steps differ, so the mean is a real check */
    free(a);
    free(b);
    free(c);
    bands_free(&d);
}

TEST(manifold_mixup_trains_a_convolutional_model)
{
    /* SmallCNN has two block ends (its max-pools) besides the input */
    at_dataset d = {.n = 32, .c = 1, .h = 28, .w = 28, .num_classes = 10};
    d.images = malloc(32 * 784);
    d.labels = malloc(32 * sizeof(int32_t));
    at_rng rng;
    at_rng_seed(&rng, 4);
    for (int i = 0; i < 32 * 784; i++)
        d.images[i] = (uint8_t)at_rng_below(&rng, 256);
    for (int i = 0; i < 32; i++)
        d.labels[i] = i % 10;
    at_model *m = NULL;
    at_error err;
    CHECK_OK(at_model_create(&m, "smallcnn", NULL, &err), &err);
    at_train_config cfg = {.method = "iat", .epochs = 1, .batch_size = 16,
                           .lr = {.kind = AT_LR_CONSTANT, .base = 0.01f}, .eps = 0.1f,
                           .attack_steps = 2, .seed = 1, .eval_batch_size = 32};
    at_train_config_set(&cfg, "mix", "manifold");
    at_trainer *t = NULL;
    at_dataset val = {0};
    CHECK_OK(at_trainer_create(&t, m, &d, &val, &cfg, &err), &err);
    REQUIRE(t);
    char text[32];
    const at_option_info *info;
    CHECK(at_trainer_method_option(t, 1, &info, text, sizeof text));
    CHECK_STR_EQ(info->name, "mix-alpha");
    CHECK_STR_EQ(text, "2"); /* manifold mixup's preset */
    at_epoch_stats st;
    CHECK_OK(at_trainer_run_epoch(t, NULL, &st, &err), &err);
    CHECK(isfinite(st.train_loss) && st.train_loss > 0.0);
    at_trainer_free(t);
    /* mix-blocks belongs to manifold mixup */
    at_train_config bad = cfg;
    bad.n_method_options = 0;
    at_train_config_set(&bad, "mix-blocks", "1");
    CHECK_EQ_INT(at_trainer_create(&t, m, &d, &val, &bad, &err), AT_ERR_ARG);
    CHECK(strstr(err.message, "mix-blocks") != NULL);
    at_model_free(m);
    free(d.images);
    free(d.labels);
}

TEST_MAIN(TEST_ENTRY(a_mixing_hook_has_the_gradient_of_the_mixed_function),
          TEST_ENTRY(iat_with_lambda_one_and_no_clean_branch_is_pgd_at),
          TEST_ENTRY(iat_with_lambda_one_averages_a_clean_and_an_adversarial_step),
          TEST_ENTRY(manifold_mixup_trains_a_convolutional_model))
