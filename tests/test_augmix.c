/* test_augmix.c: the Jensen-Shannon consistency loss (0 for identical distributions, ln 2 for
 * two disjoint ones, gradients equal to central differences, also where the mixture's clamp
 * binds), AugRmixAT's mixing (inside the eps-ball around x, convex or a box), and the augmix and
 * augrmixat methods: short runs that train, augmix's clean cross-entropy part equal to standard
 * training, and options that do not apply refused. */
#include "test.h"

#include "advtrain.h"
#include "train/method.h"
#include "util/train_fixtures.h"

#include <stdlib.h>

/* --- Jensen-Shannon ------------------------------------------------------------------------ */

TEST(jsd_is_zero_for_identical_and_ln2_for_disjoint_distributions)
{
    const float z[2 * 4] = {0.3f, -1.0f, 2.0f, 0.5f, -0.2f, 0.0f, 0.7f, 1.5f};
    const float *const same[3] = {z, z, z};
    float g0[8], g1[8], g2[8];
    float *const grads[3] = {g0, g1, g2};
    float per[2];
    CHECK_CLOSE(at_loss_jsd(same, 3, 2, 2, 4, NULL, per, grads), 0.0, 1e-12, 0);
    for (int j = 0; j < 8; j++)
        CHECK(fabsf(g0[j]) < 1e-7f && fabsf(g1[j]) < 1e-7f && fabsf(g2[j]) < 1e-7f);
    /* p = (1, 0), q = (0, 1): M = (1/2, 1/2), JS = ln 2 */
    const float p[2] = {20.0f, -20.0f}, q[2] = {-20.0f, 20.0f};
    const float *const disjoint[2] = {p, q};
    CHECK_CLOSE(at_loss_jsd(disjoint, 2, 1, 1, 2, NULL, NULL, NULL), log(2.0), 1e-9, 0);
    /* weights: (1/n) sum_i w_i JS_i */
    const float w[2] = {0.5f, 3.0f};
    const float other[8] = {1.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, -2.0f};
    const float *const pair[2] = {z, other};
    const double plain = at_loss_jsd(pair, 2, 2, 2, 4, NULL, per, NULL);
    const double weighted = at_loss_jsd(pair, 2, 2, 2, 4, w, NULL, NULL);
    CHECK_CLOSE(plain, 0.5 * (per[0] + per[1]), 1e-7, 1e-6);
    CHECK_CLOSE(weighted, 0.5 * (0.5 * per[0] + 3.0 * per[1]), 1e-7, 1e-6);
    CHECK(isnan(at_loss_jsd(pair, AT_JSD_MAX + 1, 2, 2, 4, NULL, NULL, NULL)));
}

/* every logit's gradient against central differences of the loss (computed in double; a step
 * of 2^-10 is exact on these floats) */
static void check_gradient(float *z[], int m, int n, int k, const float *weights)
{
    float *g[AT_JSD_MAX];
    for (int j = 0; j < m; j++)
        g[j] = malloc((size_t)n * k * sizeof(float));
    const float *const *cz = (const float *const *)z;
    at_loss_jsd(cz, m, n, n, k, weights, NULL, g);
    const float h = 1.0f / 1024.0f;
    double largest = 0.0;
    for (int j = 0; j < m; j++)
        for (int i = 0; i < n * k; i++) {
            const float saved = z[j][i];
            z[j][i] = saved + h;
            const double up = at_loss_jsd(cz, m, n, n, k, weights, NULL, NULL);
            z[j][i] = saved - h;
            const double down = at_loss_jsd(cz, m, n, n, k, weights, NULL, NULL);
            z[j][i] = saved;
            const double fd = (up - down) / (2.0 * h);
            largest = fmax(largest, fabs(fd));
            CHECK_CLOSE(g[j][i], fd, 1e-7, 1e-3);
        }
    CHECK(largest > 1e-3); /* the gradient is not trivially zero */
    for (int j = 0; j < m; j++)
        free(g[j]);
}

TEST(jsd_gradients_match_central_differences)
{
    enum { N = 3, K = 5 };
    at_rng rng;
    at_rng_seed(&rng, 11);
    float a[N * K], b[N * K], c[N * K], d[N * K];
    float *z[4] = {a, b, c, d};
    for (int j = 0; j < 4; j++)
        for (int i = 0; i < N * K; i++)
            z[j][i] = (float)(int)(at_rng_normal(&rng) * 512) / 256.0f;
    const float w[N] = {1.0f, 0.25f, 2.0f};
    check_gradient(z, 3, N, K, NULL);
    check_gradient(z, 3, N, K, w);
    check_gradient(z, 2, N, K, NULL);
    check_gradient(z, 4, N, K, w);
    /* class 0 far below the rest in every distribution: the mixture's clamp at 1e-7 binds there
     * and passes no gradient */
    for (int j = 0; j < 3; j++)
        for (int i = 0; i < N; i++)
            z[j][i * K] = -24.0f;
    check_gradient(z, 3, N, K, w);
}

/* --- AugRmixAT's mixing ---------------------------------------------------------------------- */

TEST(rmix_stays_in_the_eps_ball_around_x)
{
    enum { C = 3, H = 8, W = 8, IMG = C * H * W };
    float x[IMG], aug[IMG], adv[IMG], out[IMG];
    at_rng rng;
    at_rng_seed(&rng, 12);
    const float eps = 8.0f / 255.0f;
    for (int trial = 0; trial < 20; trial++) {
        for (int j = 0; j < IMG; j++) {
            x[j] = (float)at_rng_uniform(&rng);
            aug[j] = (float)at_rng_uniform(&rng); /* far from x */
            adv[j] = fminf(fmaxf(x[j] + (at_rng_uniform(&rng) < 0.5 ? -eps : eps), 0.0f), 1.0f);
        }
        for (int mask = 0; mask <= 1; mask++) {
            at_rmix_example(x, aug, adv, out, C, H, W, mask, 1.0, AT_NORM_LINF, eps, &rng);
            for (int j = 0; j < IMG; j++) {
                CHECK(fabsf(out[j] - x[j]) <= eps * (1 + 1e-6f));
                CHECK(out[j] >= 0.0f && out[j] <= 1.0f);
            }
            at_rmix_example(x, aug, adv, out, C, H, W, mask, 1.0, AT_NORM_L2, 0.5f, &rng);
            double sq = 0.0;
            for (int j = 0; j < IMG; j++) {
                sq += ((double)out[j] - x[j]) * ((double)out[j] - x[j]);
                CHECK(out[j] >= 0.0f && out[j] <= 1.0f);
            }
            CHECK(sqrt(sq) <= 0.5 * (1 + 1e-5));
        }
    }
    /* unprojected: convex mixing lies between the two images; a mask takes each pixel from one,
     * x_adv inside one box (the same in every channel) */
    int boxes = 0;
    for (int trial = 0; trial < 20; trial++) {
        at_rmix_example(x, aug, adv, out, C, H, W, false, 1.0, AT_NORM_LINF, -1.0f, &rng);
        for (int j = 0; j < IMG; j++)
            CHECK(out[j] >= fminf(aug[j], adv[j]) - 1e-6f && out[j] <= fmaxf(aug[j], adv[j]) + 1e-6f);
        at_rmix_example(x, aug, adv, out, C, H, W, true, 1.0, AT_NORM_LINF, -1.0f, &rng);
        int r0 = H, r1 = -1, c0 = W, c1 = -1, from_adv = 0;
        for (int j = 0; j < IMG; j++) {
            CHECK(out[j] == aug[j] || out[j] == adv[j]);
            if (out[j] == adv[j] && out[j] != aug[j]) {
                const int p = j % (H * W), r = p / W, col = p % W;
                r0 = r < r0 ? r : r0, r1 = r > r1 ? r : r1;
                c0 = col < c0 ? col : c0, c1 = col > c1 ? col : c1;
                from_adv++;
            }
        }
        if (from_adv) {
            CHECK_EQ_INT(from_adv, C * (r1 - r0 + 1) * (c1 - c0 + 1)); /* a filled box */
            boxes++;
        }
    }
    CHECK(boxes > 5);
}

/* --- the methods -------------------------------------------------------------------------- */

static double largest_change(const float *a, const float *b, size_t n)
{
    double d = 0.0;
    for (size_t j = 0; j < n; j++)
        d = fmax(d, fabs((double)a[j] - b[j]));
    return d;
}

TEST(augmix_trains_and_its_clean_part_is_standard_training)
{
    at_dataset d = bands_data(64, 1);
    at_model *init = bands_mlp(1);
    REQUIRE(init);
    size_t n0;
    const float *theta0 = at_model_params(init, &n0);
    at_train_config std = bands_config("standard"), amx = bands_config("augmix");
    std.epochs = amx.epochs = 1;
    amx.eps = 0.0f;
    size_t n;
    float *a = bands_train(&std, &d, &n);
    float *b = bands_train(&amx, &d, &n);
    at_train_config_set(&amx, "jsd-weight", "0");
    float *c = bands_train(&amx, &d, &n);
    at_train_config plain = amx;
    plain.n_method_options = 0;
    at_train_config_set(&plain, "no-jsd", "true");
    float *e = bands_train(&plain, &d, &n);
    REQUIRE(a && b && c && e && n == n0);
    for (size_t j = 0; j < n; j++)
        CHECK(isfinite(b[j]) && isfinite(e[j]));
    CHECK(largest_change(b, theta0, n) > 1e-3); /* the weights moved */
    CHECK(largest_change(e, theta0, n) > 1e-3);
    /* the MLP has no batch norm: with lambda 0 the three-branch batch gives the clean CE's
     * gradient, i.e. standard training's step */
    CHECK(largest_change(c, a, n) < 1e-5);
    CHECK(largest_change(b, a, n) > 1e-4); /* the JS term does change the step */
    CHECK(largest_change(e, a, n) > 1e-4); /* so do the augmented images */
    free(a);
    free(b);
    free(c);
    free(e);
    at_model_free(init);
    bands_free(&d);
}

/* augmix's step run directly on a context built here, so its loss can be evaluated at perturbed
 * weights with the same AugMix images (the same seed). */
typedef struct step_rig {
    at_method_ctx c;
    const at_method *m;
    double opt[16];
    bool given[16];
    at_rng rng, unscored;
    at_batch b;
    float x[8 * 64];
    int32_t y[8];
} step_rig;

static int rig_create(step_rig *r, const char *jsd_weight)
{
    enum { N = 8 };
    memset(r, 0, sizeof *r);
    r->m = at_method_find("augmix");
    at_train_config cfg = {.method = "augmix"};
    at_train_config_set(&cfg, "jsd-weight", jsd_weight);
    at_error err;
    at_method_ctx *c = &r->c;
    c->model = bands_mlp(1);
    c->num_classes = BANDS_K;
    c->batch = N;
    c->image = 64;
    c->opt = r->opt;
    c->opt_given = r->given;
    c->config = &cfg;
    c->dlogits = calloc(N * BANDS_K, sizeof(float));
    c->correct = calloc(N, 1);
    c->rng = &r->rng;
    c->rng_unscored = &r->unscored;
    if (!c->model || at_method_resolve_options(r->m, &cfg, r->opt, r->given, &err) ||
        at_pass_create(&c->train, c->model, N, 0, &err) || r->m->setup(c, &err))
        return 1;
    c->config = NULL;
    /* larger weights: confident, augmentation-sensitive outputs, so the JS term is not tiny */
    size_t count;
    float *w = at_model_params(c->model, &count);
    for (size_t j = 0; j < count; j++)
        w[j] *= 3.0f;
    at_dataset d = bands_data(N, 9);
    for (int j = 0; j < N * 64; j++)
        r->x[j] = d.images[j] / 255.0f;
    memcpy(r->y, d.labels, sizeof r->y);
    bands_free(&d);
    r->b = (at_batch){.x = r->x, .y = r->y, .n = N, .scored = N, .total = N, .total_scored = N};
    return 0;
}

static void rig_free(step_rig *r)
{
    at_method_ctx *c = &r->c;
    c->free_state(c->state);
    at_pass_free(c->train);
    free(c->dlogits);
    free(c->correct);
    at_model_free(c->model);
}

static double rig_loss(step_rig *r)
{
    at_rng_seed(&r->rng, 77);
    at_model_zero_grad(r->c.model);
    double loss = NAN;
    return r->m->step(&r->c, &r->b, &loss) ? NAN : loss;
}

TEST(augmix_step_has_the_gradient_of_its_loss)
{
    /* central differences of the step's loss (fixed AugMix images) against its weight
     * gradients: every branch's gradient reaches the weights with its weight. Differences at two
     * steps that disagree mark a ReLU kink nearby: those coordinates are passed over. */
    for (int variant = 0; variant < 2; variant++) {
        step_rig r;
        REQUIRE(!rig_create(&r, variant ? "0" : "12"));
        size_t count;
        float *w = at_model_params(r.c.model, &count);
        const double loss = rig_loss(&r);
        REQUIRE(isfinite(loss));
        float *g = malloc(count * sizeof(float));
        memcpy(g, at_model_grads(r.c.model, NULL), count * sizeof(float));
        int tried = 0, agreed = 0;
        double largest = 0.0;
        for (size_t j = 0; j < count; j += 29) {
            const float saved = w[j];
            double fd[2];
            const float steps[2] = {1.0f / 256, 1.0f / 1024};
            for (int s = 0; s < 2; s++) {
                w[j] = saved + steps[s];
                const double up = rig_loss(&r);
                w[j] = saved - steps[s];
                const double down = rig_loss(&r);
                fd[s] = (up - down) / (2.0 * steps[s]);
            }
            w[j] = saved;
            tried++;
            if (fabs(fd[0] - fd[1]) > 1e-3 + 1e-2 * fabs(fd[1]))
                continue;
            agreed++;
            largest = fmax(largest, fabs(fd[1]));
            CHECK_CLOSE(g[j], fd[1], 1e-4, 1e-2);
        }
        CHECK(agreed >= tried * 3 / 4);
        CHECK(largest > 1e-2);
        free(g);
        rig_free(&r);
    }
}

/* One epoch of cfg on a fresh bands MLP: its mean training loss, or NAN when it fails. */
static double one_epoch(const at_train_config *cfg, const at_dataset *d, at_error *err)
{
    at_model *m = bands_mlp(2);
    at_trainer *t = NULL;
    at_dataset val = {0};
    at_epoch_stats st = {0};
    int status = at_trainer_create(&t, m, d, &val, cfg, err);
    if (!status)
        status = at_trainer_run_epoch(t, NULL, &st, err);
    at_trainer_free(t);
    at_model_free(m);
    return status ? NAN : st.train_loss;
}

TEST(augrmixat_trains)
{
    at_dataset d = bands_data(64, 3);
    at_train_config cfg = bands_config("augrmixat");
    cfg.epochs = 1;
    cfg.attack_steps = 2;
    at_error err;
    const double loss = one_epoch(&cfg, &d, &err);
    CHECK(isfinite(loss) && loss > 0.0);
    at_model *init = bands_mlp(1);
    REQUIRE(init);
    size_t n;
    const float *theta0 = at_model_params(init, NULL);
    float *a = bands_train(&cfg, &d, &n);
    at_train_config_set(&cfg, "rmix-mode", "mask");
    at_train_config_set(&cfg, "attack-input", "augmix");
    float *b = bands_train(&cfg, &d, &n);
    cfg.norm = AT_NORM_L2;
    cfg.eps = 0.5f;
    at_train_config_set(&cfg, "no-rmix-project", "true");
    float *c = bands_train(&cfg, &d, &n);
    REQUIRE(a && b && c);
    CHECK(largest_change(a, theta0, n) > 1e-3);
    CHECK(largest_change(b, theta0, n) > 1e-3);
    CHECK(largest_change(c, theta0, n) > 1e-3);
    CHECK(largest_change(a, b, n) > 1e-5);
    for (size_t j = 0; j < n; j++)
        CHECK(isfinite(a[j]) && isfinite(b[j]) && isfinite(c[j]));
    free(a);
    free(b);
    free(c);
    at_model_free(init);
    bands_free(&d);
}

/* The trainer refuses cfg with an error naming `what`. */
static void refused(const at_train_config *cfg, const at_dataset *d, const char *what)
{
    at_error err = {0};
    CHECK(isnan(one_epoch(cfg, d, &err)));
    if (!strstr(err.message, what))
        TEST_FAIL_("'%s' does not name %s", err.message, what);
}

TEST(options_that_do_not_apply_are_errors)
{
    at_dataset d = bands_data(16, 4);
    at_train_config a = bands_config("augmix");
    a.eps = 0.0f;
    at_train_config bad = a;
    at_train_config_set(&bad, "beta", "6");
    refused(&bad, &d, "does not use beta");
    bad = a;
    bad.eps = 0.1f;
    refused(&bad, &d, "does not use eps");
    bad = a;
    bad.attack_steps = 3;
    refused(&bad, &d, "does not use attack steps");
    bad = a;
    at_train_config_set(&bad, "no-jsd", "true");
    at_train_config_set(&bad, "jsd-weight", "3");
    refused(&bad, &d, "jsd-weight");
    bad = a;
    at_train_config_set(&bad, "augmix-depth", "0");
    refused(&bad, &d, "augmix-depth");
    bad = a;
    at_train_config_set(&bad, "augmix-width", "17");
    refused(&bad, &d, "augmix-width");
    bad = a;
    at_train_config_set(&bad, "rmix-mode", "convex");
    refused(&bad, &d, "does not use rmix-mode");
    at_train_config r = bands_config("augrmixat");
    bad = r;
    at_train_config_set(&bad, "no-jsd", "true");
    refused(&bad, &d, "does not use no-jsd");
    bad = r;
    at_train_config_set(&bad, "rmix-mode", "stripes");
    refused(&bad, &d, "rmix-mode");
    bad = r;
    bad.eps = 0.0f;
    refused(&bad, &d, "needs eps");
    bands_free(&d);
}

TEST_MAIN(TEST_ENTRY(jsd_is_zero_for_identical_and_ln2_for_disjoint_distributions),
          TEST_ENTRY(jsd_gradients_match_central_differences),
          TEST_ENTRY(rmix_stays_in_the_eps_ball_around_x),
          TEST_ENTRY(augmix_trains_and_its_clean_part_is_standard_training),
          TEST_ENTRY(augmix_step_has_the_gradient_of_its_loss),
          TEST_ENTRY(augrmixat_trains), TEST_ENTRY(options_that_do_not_apply_are_errors))
