/* test_methods.c: each training method pinned to its definition. TRADES with beta = 0 is clean
 * training; AWP with gamma = 0 equals its base method; Free-AT with m = 1 is FGSM-style training
 * with a persistent perturbation (checked against the same loop written with the public API);
 * MART's loss and gradients; the weight-average schedule; early stopping marks the best
 * validation robust accuracy; and no method accepts an option it does not use. */
#include "test.h"

#include "advtrain.h"
#include "train/method.h"
#include "util/train_fixtures.h"

#include <stdlib.h>

enum { N = 64, HW = BANDS_HW, K = BANDS_K };

#define make_data bands_data
#define free_data bands_free
#define mlp bands_mlp
#define base_config bands_config
#define train_params bands_train

TEST(trades_with_beta_zero_is_clean_training)
{
    at_dataset d = make_data(N, 1);
    at_train_config standard = base_config("standard"), trades = base_config("trades");
    at_train_config_set(&trades, "beta", "0");
    size_t n1, n2;
    float *a = train_params(&standard, &d, &n1), *b = train_params(&trades, &d, &n2);
    REQUIRE(a && b);
    CHECK(memcmp(a, b, n1 * sizeof(float)) == 0);
    /* and beta = 6 is not */
    at_train_config_set(&trades, "beta", "6");
    float *c = train_params(&trades, &d, &n2);
    CHECK(c && memcmp(a, c, n1 * sizeof(float)) != 0);
    free(a);
    free(b);
    free(c);
    free_data(&d);
}

TEST(awp_with_gamma_zero_equals_its_base_method)
{
    at_dataset d = make_data(N, 2);
    const char *bases[2] = {"pgd-at", "trades"};
    for (int i = 0; i < 2; i++) {
        at_train_config plain = base_config(bases[i]), awp = base_config(bases[i]);
        at_train_config_set(&awp, "awp", "true");
        at_train_config_set(&awp, "awp-gamma", "0");
        at_train_config_set(&awp, "awp-warmup", "0");
        size_t n;
        float *a = train_params(&plain, &d, &n), *b = train_params(&awp, &d, &n);
        REQUIRE(a && b);
        if (memcmp(a, b, n * sizeof(float)) != 0)
            TEST_FAIL_("%s: AWP with gamma 0 changed the weights", bases[i]);
        /* a real perturbation changes them (TRADES-AWP starts at epoch 10 by default) */
        awp = base_config(bases[i]);
        at_train_config_set(&awp, "awp", "true");
        at_train_config_set(&awp, "awp-warmup", i == 1 ? "1" : "0");
        float *c = train_params(&awp, &d, &n);
        CHECK(c && memcmp(a, c, n * sizeof(float)) != 0);
        free(a);
        free(b);
        free(c);
    }
    free_data(&d);
}

/* AWP's preset warm-up waits for an epoch above chance (accuracy at least 1.5 / classes, loss
 * below ln classes); a warm-up given is kept as given, and no epoch before the warm-up's end
 * perturbs. */
TEST(awp_preset_waits_for_an_epoch_above_chance)
{
    double opt[3] = {1, 0.01, 1};
    bool given[3] = {true, false, false};
    at_method_ctx c = {.awp = (at_awp *)opt, .opt = opt, .opt_given = given, .num_classes = 10};
    const struct {
        int epoch;
        double last_acc, last_loss;
        bool warmup_given, on;
    } cases[] = {
        {0, -1.0, -1.0, false, false}, {1, 0.149, 1.5, false, false}, {1, 0.151, 1.5, false, true},
        {1, 0.164, 2.3125, false, false}, {1, 0.164, 2.30, false, true},
        {5, 0.10, 1.0, false, false},  {5, 0.60, 1.0, false, true},   {0, 0.90, 0.3, true, false},
        {1, 0.10, 2.4, true, true},    {1, -1.0, -1.0, true, true},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        c.epoch = cases[i].epoch;
        c.last_train_acc = cases[i].last_acc;
        c.last_train_loss = cases[i].last_loss;
        given[2] = cases[i].warmup_given;
        if (at_awp_now(&c, 0) != cases[i].on)
            TEST_FAIL_("epoch %d, last accuracy %g and loss %g, warm-up %s: AWP should be %s",
                       c.epoch, c.last_train_acc, c.last_train_loss,
                       given[2] ? "given" : "preset", cases[i].on ? "on" : "off");
    }
    c.awp = NULL; /* no --awp */
    c.epoch = 5;
    c.last_train_acc = 0.9;
    c.last_train_loss = 0.3;
    CHECK(!at_awp_now(&c, 0));
}

/* Free-AT, m = 1, one minibatch per epoch: the same loop written with the public API. */
TEST(free_at_with_one_replay_is_fgsm_training_with_a_persistent_delta)
{
    const int n = 16, epochs = 3;
    at_dataset d = make_data(n, 3);
    at_train_config cfg = base_config("free-at");
    cfg.epochs = epochs;
    at_train_config_set(&cfg, "replays", "1");
    cfg.no_robust_validation = false;
    size_t count;
    float *trained = train_params(&cfg, &d, &count);
    REQUIRE(trained);

    at_model *m = mlp(1);
    at_pass *p = NULL;
    at_optimizer *opt = NULL;
    at_error err;
    CHECK_OK(at_pass_create(&p, m, n, 0, &err), &err);
    CHECK_OK(at_optimizer_create(&opt, m, &cfg.optimizer, &err), &err);
    float x[16 * HW * HW], xt[16 * HW * HW], delta[16 * HW * HW] = {0}, dlogits[16 * K];
    int32_t y[16], order[16];
    for (int e = 0; e < epochs; e++) {
        at_rng shuffle;
        at_rng_stream(&shuffle, cfg.seed, (uint64_t)e, 1); /* the trainer's shuffle stream */
        for (int i = 0; i < n; i++)
            order[i] = i;
        at_rng_shuffle(&shuffle, order, (size_t)n);
        at_dataset_batch(&d, order, n, x, y, NULL, NULL);
        for (int j = 0; j < n * HW * HW; j++)
            xt[j] = fminf(fmaxf(x[j] + delta[j], 0.0f), 1.0f);
        at_model_zero_grad(m);
        at_forward(p, xt, n, AT_BN_TRAIN);
        at_loss_cross_entropy(at_pass_logits(p), n, K, &(at_ce_target){.labels = y}, NULL, dlogits);
        at_backward(p, dlogits, AT_GRAD_WEIGHTS | AT_GRAD_INPUT);
        const float *g = at_pass_input_grad(p);
        for (int j = 0; j < n * HW * HW; j++) {
            float s = (float)((g[j] > 0) - (g[j] < 0));
            delta[j] = fminf(fmaxf(delta[j] + cfg.eps * s, -cfg.eps), cfg.eps);
        }
        at_optimizer_step(opt, at_lr_at(&cfg.lr, e, 1, epochs));
    }
    const float *manual = at_model_params(m, NULL);
    CHECK(memcmp(manual, trained, count * sizeof(float)) == 0);
    free(trained);
    at_optimizer_free(opt);
    at_pass_free(p);
    at_model_free(m);
    free_data(&d);
}

TEST(free_at_replays_and_divides_the_epochs)
{
    at_dataset d = make_data(N, 4);
    at_model *m = mlp(1);
    at_dataset val = {0};
    at_trainer *t = NULL;
    at_error err;
    at_train_config cfg = base_config("free-at");
    cfg.epochs = 8;
    at_train_config_set(&cfg, "replays", "4");
    CHECK_OK(at_trainer_create(&t, m, &d, &val, &cfg, &err), &err);
    REQUIRE(t);
    CHECK_EQ_INT(at_trainer_epochs(t), 2);
    at_trainer_free(t);
    cfg.epochs = 6;
    CHECK_EQ_INT(at_trainer_create(&t, m, &d, &val, &cfg, &err), AT_ERR_ARG);
    CHECK(strstr(err.message, "multiple") != NULL);
    at_model_free(m);
    free_data(&d);
}

TEST(mart_loss_and_gradients)
{
    const int k = 5;
    float za[5] = {0.3f, -1.0f, 2.0f, 0.5f, 0.1f}, zc[5] = {1.0f, 0.2f, -0.5f, 0.7f, 0.0f};
    float q[5], p[5], da[5], dc[5];
    const int y = 0;
    const double beta = 6.0;
    at_softmax_rows(za, 1, k, q);
    at_softmax_rows(zc, 1, k, p);
    double loss = at_mart_example(q, p, k, y, beta, da, dc);
    /* the definition, term by term: m = argmax_{j != y} q_j = 2 here */
    double kl = 0;
    for (int j = 0; j < k; j++)
        kl += p[j] * (log(p[j]) - log(q[j] + 1e-12));
    double expect = -log(q[y]) - log(1.0001 - q[2] + 1e-12) + beta * kl * (1.0000001 - p[y]);
    CHECK_CLOSE(loss, expect, 1e-6, 1e-6);
    /* gradients by central differences through both softmaxes */
    for (int side = 0; side < 2; side++)
        for (int j = 0; j < k; j++) {
            float zp[5], zm[5], qq[5], pp[5], tmp1[5], tmp2[5];
            const float *z = side ? zc : za;
            memcpy(zp, z, sizeof zp);
            memcpy(zm, z, sizeof zm);
            zp[j] += 1e-3f;
            zm[j] -= 1e-3f;
            at_softmax_rows(side ? za : zp, 1, k, qq);
            at_softmax_rows(side ? zp : zc, 1, k, pp);
            double lp = at_mart_example(qq, pp, k, y, beta, tmp1, tmp2);
            at_softmax_rows(side ? za : zm, 1, k, qq);
            at_softmax_rows(side ? zm : zc, 1, k, pp);
            double lm = at_mart_example(qq, pp, k, y, beta, tmp1, tmp2);
            CHECK_CLOSE(side ? dc[j] : da[j], (lp - lm) / 2e-3, 2e-3, 1e-2);
        }
    /* a confidently correct clean point (p_y near 1) switches the KL term off */
    float confident[5] = {12, 0, 0, 0, 0};
    at_softmax_rows(confident, 1, k, p);
    double off = at_mart_example(q, p, k, y, beta, da, dc);
    CHECK_CLOSE(off, -log(q[y]) - log(1.0001 - q[2] + 1e-12), 1e-3, 0);
}

/* Data parallelism: a batch of 2H rows split into two shards of H (rows first..first+H-1 of a
 * global batch of 2H, the first SCORED of them scored, so the second shard holds rows of both
 * kinds) must give each row what the whole batch gives it. */
enum { H = 5, SCORED = 7, IMAGE = HW * HW };

static at_batch shard_of(const at_batch *whole, int first, int n)
{
    at_batch b = *whole;
    b.x += (size_t)first * IMAGE;
    b.y += first;
    b.soft = whole->soft ? whole->soft + (size_t)first * K : NULL;
    b.weight = whole->weight ? whole->weight + first : NULL;
    b.n = n;
    b.first = first;
    const int scored = whole->total_scored - first;
    b.scored = scored < 0 ? 0 : (scored > n ? n : scored);
    return b;
}

/* pgd-at's loss (at_method_ce) and TRADES' (at_method_ce and the KL term): the shards' gradient
 * rows are the whole batch's bit for bit, and their losses sum to the whole's. */
TEST(shards_of_a_batch_give_its_loss_and_gradients)
{
    float zc[2 * H * K], za[2 * H * K], soft[2 * H * K], w[2 * H], x[2 * H * IMAGE] = {0};
    int32_t y[2 * H];
    at_rng rng;
    at_rng_seed(&rng, 11);
    for (int j = 0; j < 2 * H * K; j++) {
        zc[j] = 2.0f * (float)at_rng_normal(&rng);
        za[j] = 2.0f * (float)at_rng_normal(&rng);
    }
    at_softmax_rows(za, 2 * H, K, soft);
    for (int i = 0; i < 2 * H; i++) {
        y[i] = (int32_t)at_rng_below(&rng, K);
        w[i] = 0.25f + (float)at_rng_uniform(&rng);
    }
    uint8_t correct[2 * H];
    at_method_ctx c = {.num_classes = K, .correct = correct};
    for (int soft_targets = 0; soft_targets < 2; soft_targets++) {
        const at_batch whole = {.x = x, .y = y, .soft = soft_targets ? soft : NULL, .weight = w,
                                .n = 2 * H, .scored = SCORED, .first = 0, .total = 2 * H,
                                .total_scored = SCORED};
        float d_whole[2 * H * K], dp_whole[2 * H * K], dq_whole[2 * H * K];
        float d[2 * H * K], dp[2 * H * K], dq[2 * H * K];
        const double ce = at_method_ce(&c, &whole, zc, d_whole);
        const double kl =
            at_loss_kl_shard(zc, za, 2 * H, 2 * H, K, w, NULL, dp_whole, dq_whole);
        CHECK(kl == at_loss_kl(zc, za, 2 * H, K, w, NULL, NULL, NULL));
        double ce_sum = 0.0, kl_sum = 0.0;
        for (int s = 0; s < 2; s++) {
            const at_batch b = shard_of(&whole, s * H, H);
            const size_t at = (size_t)s * H * K;
            ce_sum += at_method_ce(&c, &b, zc + at, d + at);
            kl_sum += at_loss_kl_shard(zc + at, za + at, H, b.total, K, b.weight, NULL, dp + at,
                                       dq + at);
        }
        CHECK_CLOSE(ce_sum, ce, 0, 1e-6);
        CHECK_CLOSE(kl_sum, kl, 0, 1e-6);
        CHECK(memcmp(d, d_whole, sizeof d) == 0);
        CHECK(memcmp(dp, dp_whole, sizeof dp) == 0);
        CHECK(memcmp(dq, dq_whole, sizeof dq) == 0);
        /* a shard that takes itself for the whole batch has twice the gradient */
        at_batch alone = shard_of(&whole, H, H);
        alone.total = H;
        at_method_ce(&c, &alone, zc + H * K, d);
        CHECK(memcmp(d, d_whole + H * K, H * K * sizeof(float)) != 0);
    }
}

/* The random starts of TRADES/MART's attack (x + 0.001 N(0, 1)) and pgd-at's per-row seeds: each
 * shard's rows get the whole batch's draws, and both streams end where the whole batch leaves
 * them (later draws do not depend on the split either). */
TEST(shards_of_a_batch_draw_its_random_starts)
{
    at_dataset d = make_data(2 * H, 4);
    float x[2 * H * IMAGE];
    for (int j = 0; j < 2 * H * IMAGE; j++)
        x[j] = d.images[j] / 255.0f;
    at_train_config cfg = base_config("pgd-at");
    cfg.attack_steps = 0; /* at_train_attack: the random start alone */
    cfg.attack_step_size = cfg.eps / 4;
    at_model *m = mlp(1);
    at_error err;
    at_attack *attack = NULL;
    at_attack_options o = {.norm = AT_NORM_LINF, .eps = cfg.eps, .steps = 1,
                           .step_size = cfg.attack_step_size, .loss = AT_ATTACK_LOSS_CE};
    REQUIRE(m && at_attack_create(&attack, "pgd", m, 2 * H, &o, &err) == AT_OK);
    float whole_start[2 * H * IMAGE], start[2 * H * IMAGE], x_adv[2 * H * IMAGE];
    uint64_t seeds[2 * H], whole_seeds[2 * H], shard_seeds[2 * H];
    at_rng rng, unscored, whole_rng, whole_unscored;
    at_method_ctx c = {.config = &cfg, .attack = attack, .rng = &rng, .rng_unscored = &unscored,
                       .eps = cfg.eps, .num_classes = K, .batch = 2 * H, .image = IMAGE,
                       .seeds = seeds};
    const at_batch whole = {.x = x, .y = d.labels, .n = 2 * H, .scored = SCORED, .first = 0,
                            .total = 2 * H, .total_scored = SCORED};
    for (int s = -1; s < 2; s++) { /* s = -1: the whole batch */
        const at_batch b = s < 0 ? whole : shard_of(&whole, s * H, H);
        at_rng_stream(&rng, cfg.seed, 0, 1);
        at_rng_stream(&unscored, cfg.seed, 0, 2);
        REQUIRE(at_train_attack(&c, &b, NULL, s < 0 ? whole_start : start + b.first * IMAGE) ==
                AT_OK);
        REQUIRE(at_method_attack(&c, &b, x_adv) == AT_OK);
        memcpy(s < 0 ? whole_seeds : shard_seeds + b.first, seeds, b.n * sizeof(uint64_t));
        if (s < 0) {
            whole_rng = rng;
            whole_unscored = unscored;
            continue;
        }
        CHECK(memcmp(&rng, &whole_rng, sizeof rng) == 0);
        CHECK(memcmp(&unscored, &whole_unscored, sizeof unscored) == 0);
    }
    CHECK(memcmp(start, whole_start, sizeof start) == 0);
    CHECK(memcmp(shard_seeds, whole_seeds, sizeof whole_seeds) == 0);
    /* and the starts are random: not x itself, and not the same noise in two rows */
    CHECK(memcmp(whole_start, x, sizeof x) != 0);
    CHECK(memcmp(whole_seeds, whole_seeds + H, H * sizeof(uint64_t)) != 0);
    at_attack_free(attack);
    at_model_free(m);
    free_data(&d);
}

TEST(weight_average_follows_the_warm_up_schedule)
{
    /* one minibatch per epoch: the live weights after each step are observable */
    const int n = 16, epochs = 4;
    const float tau = 0.5f;
    at_dataset d = make_data(n, 5), val = {0};
    at_model *m = mlp(1);
    at_trainer *t = NULL;
    at_error err;
    at_train_config cfg = base_config("standard");
    cfg.epochs = epochs;
    cfg.ema = tau;
    CHECK_OK(at_trainer_create(&t, m, &d, &val, &cfg, &err), &err);
    REQUIRE(t);
    size_t count;
    const float *w = at_model_params(m, &count);
    double *avg = malloc(count * sizeof(double));
    for (size_t i = 0; i < count; i++)
        avg[i] = w[i];
    CHECK(at_trainer_eval_model(t) != m);
    at_epoch_stats st;
    for (int s = 0; s < epochs; s++) {
        CHECK_OK(at_trainer_run_epoch(t, NULL, &st, &err), &err);
        double decay = fmin(tau, (1.0 + s) / (10.0 + s));
        for (size_t i = 0; i < count; i++)
            avg[i] = decay * avg[i] + (1 - decay) * w[i];
    }
    const float *ema = at_model_params(at_trainer_eval_model(t), NULL);
    double worst = 0;
    for (size_t i = 0; i < count; i++)
        worst = fmax(worst, fabs(ema[i] - avg[i]));
    CHECK(worst < 1e-6);
    free(avg);
    at_trainer_free(t);
    at_model_free(m);
    free_data(&d);
}

TEST(early_stopping_marks_the_best_validation_robust_accuracy)
{
    at_dataset all = make_data(N + 32, 6), train = {0}, val = {0};
    at_error err;
    CHECK_OK(at_dataset_split(&train, &val, &all, 32, 1, &err), &err);
    at_model *m = mlp(1);
    at_trainer *t = NULL;
    at_train_config cfg = base_config("pgd-at");
    cfg.epochs = 5;
    CHECK_OK(at_trainer_create(&t, m, &train, &val, &cfg, &err), &err);
    REQUIRE(t);
    double best = -1;
    int best_epochs = 0;
    at_epoch_stats st;
    for (int e = 0; e < cfg.epochs; e++) {
        CHECK_OK(at_trainer_run_epoch(t, NULL, &st, &err), &err);
        CHECK(st.val_robust_acc >= 0 && st.val_robust_acc <= st.val_acc + 1e-12);
        CHECK_EQ_INT(st.best, st.val_robust_acc > best);
        if (st.best) {
            best = st.val_robust_acc;
            best_epochs++;
        }
    }
    CHECK(best_epochs >= 1);
    at_trainer_free(t);
    at_model_free(m);
    free(all.images);
    free(all.labels);
    at_dataset_free(&train);
    at_dataset_free(&val);
}

TEST(no_method_accepts_an_option_it_does_not_use)
{
    at_dataset d = make_data(N, 7), val = {0};
    at_model *m = mlp(1);
    at_error err;
    at_trainer *t = NULL;
    typedef struct { const char *method; const char *what; at_train_config c; } bad_case;
    bad_case cases[12];
    int n = 0;
    cases[n] = (bad_case){"standard", "eps", base_config("standard")};
    cases[n++].c.eps = 0.1f;
    cases[n] = (bad_case){"pgd-at", "beta", base_config("pgd-at")};
    at_train_config_set(&cases[n++].c, "beta", "3");
    cases[n] = (bad_case){"trades", "replays", base_config("trades")};
    at_train_config_set(&cases[n++].c, "replays", "2");
    cases[n] = (bad_case){"free-at", "attack steps", base_config("free-at")};
    cases[n++].c.attack_steps = 5;
    cases[n] = (bad_case){"mart", "awp", base_config("mart")};
    at_train_config_set(&cases[n++].c, "awp", "true");
    cases[n] = (bad_case){"fgsm-rs", "attack steps", base_config("fgsm-rs")};
    cases[n++].c.attack_steps = 3;
    cases[n] = (bad_case){"standard", "attack BN mode", base_config("standard")};
    cases[n++].c.attack_bn_given = true;
    cases[n] = (bad_case){"pgd-at", "no-overfit-check", base_config("pgd-at")};
    at_train_config_set(&cases[n++].c, "no-overfit-check", "true");
    for (int i = 0; i < n; i++) {
        int status = at_trainer_create(&t, m, &d, &val, &cases[i].c, &err);
        if (status != AT_ERR_ARG || !strstr(err.message, cases[i].what))
            TEST_FAIL_("%s with %s: status %d, message '%s'", cases[i].method, cases[i].what,
                       status, status ? err.message : "");
        at_trainer_free(t);
        t = NULL;
    }
    at_train_config no_eps = base_config("pgd-at");
    no_eps.eps = 0.0f;
    CHECK_EQ_INT(at_trainer_create(&t, m, &d, &val, &no_eps, &err), AT_ERR_ARG);
    at_model_free(m);
    free_data(&d);
}

TEST_MAIN(TEST_ENTRY(trades_with_beta_zero_is_clean_training),
          TEST_ENTRY(awp_with_gamma_zero_equals_its_base_method),
          TEST_ENTRY(awp_preset_waits_for_an_epoch_above_chance),
          TEST_ENTRY(free_at_with_one_replay_is_fgsm_training_with_a_persistent_delta),
          TEST_ENTRY(free_at_replays_and_divides_the_epochs), TEST_ENTRY(mart_loss_and_gradients),
          TEST_ENTRY(shards_of_a_batch_give_its_loss_and_gradients),
          TEST_ENTRY(shards_of_a_batch_draw_its_random_starts),
          TEST_ENTRY(weight_average_follows_the_warm_up_schedule),
          TEST_ENTRY(early_stopping_marks_the_best_validation_robust_accuracy),
          TEST_ENTRY(no_method_accepts_an_option_it_does_not_use))
