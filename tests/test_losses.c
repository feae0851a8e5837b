/* test_losses.c: cross-entropy and KL divergence, exact small cases and gradients; SGD against
 * torch.optim.SGD's update rule worked by hand; learning-rate schedules at known points. */
#include "test.h"

#include "advtrain.h"

TEST(cross_entropy_exact_cases)
{
    /* two classes, equal logits: loss log 2, gradient (p - onehot)/n */
    const float z[4] = {0.0f, 0.0f, 1.0f, 3.0f};
    const int32_t y[2] = {0, 1};
    float per[2], d[4];
    float loss = at_loss_cross_entropy(z, 2, 2, &(at_ce_target){.labels = y}, per, d);
    double l2 = log1p(exp(-2.0)); /* -log softmax([1,3])[1] */
    CHECK_CLOSE(per[0], log(2.0), 1e-7, 0);
    CHECK_CLOSE(per[1], l2, 1e-7, 0);
    CHECK_CLOSE(loss, (log(2.0) + l2) / 2, 1e-7, 0);
    CHECK_CLOSE(d[0], -0.25, 1e-7, 0);
    CHECK_CLOSE(d[1], 0.25, 1e-7, 0);
    double p1 = 1.0 / (1.0 + exp(2.0)); /* softmax([1,3])[0] */
    CHECK_CLOSE(d[2], p1 / 2, 1e-7, 0);
    CHECK_CLOSE(d[3], (1 - p1 - 1) / 2, 1e-7, 0);
}

TEST(cross_entropy_soft_smoothed_and_weighted)
{
    const int n = 3, k = 4;
    const float z[12] = {0.3f, -1.2f, 2.0f, 0.5f, 1.0f, 1.0f, -3.0f, 0.0f, 10.f, -10.f, 0.f, 5.f};
    const int32_t y[3] = {2, 0, 3};
    float soft[12] = {0};
    const float s = 0.1f;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < k; j++)
            soft[i * k + j] = (j == y[i] ? 1.0f - s : 0.0f) + s / k;
    float d_smooth[12], d_soft[12];
    float a = at_loss_cross_entropy(z, n, k, &(at_ce_target){.labels = y, .label_smoothing = s}, NULL, d_smooth);
    float b = at_loss_cross_entropy(z, n, k, &(at_ce_target){.soft_targets = soft}, NULL, d_soft);
    CHECK_CLOSE(a, b, 1e-6, 1e-6);
    for (int j = 0; j < 12; j++)
        CHECK_CLOSE(d_smooth[j], d_soft[j], 1e-7, 1e-6);
    /* per-example weights scale both the loss terms and their gradients */
    const float w[3] = {2.0f, 0.0f, 0.5f};
    float per[3], dw[12], d1[12];
    float lw = at_loss_cross_entropy(z, n, k, &(at_ce_target){.labels = y, .weights = w}, per, dw);
    at_loss_cross_entropy(z, n, k, &(at_ce_target){.labels = y}, NULL, d1);
    CHECK_CLOSE(lw, (2.0 * per[0] + 0.5 * per[2]) / 3, 1e-6, 1e-6);
    for (int j = 0; j < 4; j++) {
        CHECK_CLOSE(dw[j], 2.0 * d1[j], 1e-7, 1e-6);
        CHECK_CLOSE(dw[4 + j], 0.0, 1e-9, 0);
    }
    /* gradient by central differences in double through the float function's definition */
    for (int j = 0; j < 12; j++) {
        float zp[12], zm[12];
        memcpy(zp, z, sizeof zp);
        memcpy(zm, z, sizeof zm);
        zp[j] += 1e-2f;
        zm[j] -= 1e-2f;
        double fd = (at_loss_cross_entropy(zp, n, k, &(at_ce_target){.labels = y, .weights = w}, NULL, NULL) -
                     at_loss_cross_entropy(zm, n, k, &(at_ce_target){.labels = y, .weights = w}, NULL, NULL)) / 2e-2;
        CHECK_CLOSE(dw[j], fd, 2e-4, 1e-2);
    }
}

TEST(cross_entropy_is_stable_for_huge_logits)
{
    const float z[3] = {1e4f, -1e4f, 0.0f};
    const int32_t y[1] = {1};
    float d[3];
    float loss = at_loss_cross_entropy(z, 1, 3, &(at_ce_target){.labels = y}, NULL, d);
    CHECK(isfinite(loss));
    CHECK_CLOSE(loss, 2e4, 0, 1e-6);
    CHECK_CLOSE(d[0], 1.0, 1e-7, 0);
    CHECK_CLOSE(d[1], -1.0, 1e-7, 0);
}

TEST(kl_divergence)
{
    const int n = 2, k = 3;
    const float p[6] = {0.1f, 2.0f, -1.0f, 0.0f, 0.0f, 0.0f};
    const float q[6] = {0.5f, 1.0f, 0.2f, 3.0f, -2.0f, 1.0f};
    float per[2], dp[6], dq[6];
    /* equal distributions: zero, zero gradient */
    CHECK_CLOSE(at_loss_kl(p, p, n, k, NULL, per, dp, dq), 0.0, 1e-7, 0);
    for (int j = 0; j < 6; j++) {
        CHECK_CLOSE(dp[j], 0.0, 1e-7, 0);
        CHECK_CLOSE(dq[j], 0.0, 1e-7, 0);
    }
    /* KL(p||q) = CE(target p, logits q) - H(p) */
    float loss = at_loss_kl(p, q, n, k, NULL, per, dp, dq);
    for (int i = 0; i < n; i++) {
        double pm = -INFINITY, qm = -INFINITY, ps = 0, qs = 0, kl = 0;
        for (int j = 0; j < k; j++) {
            pm = fmax(pm, p[i * k + j]);
            qm = fmax(qm, q[i * k + j]);
        }
        for (int j = 0; j < k; j++) {
            ps += exp(p[i * k + j] - pm);
            qs += exp(q[i * k + j] - qm);
        }
        for (int j = 0; j < k; j++) {
            double lp = p[i * k + j] - pm - log(ps), lq = q[i * k + j] - qm - log(qs);
            kl += exp(lp) * (lp - lq);
        }
        CHECK_CLOSE(per[i], kl, 1e-6, 1e-6);
    }
    CHECK_CLOSE(loss, (per[0] + per[1]) / 2, 1e-7, 1e-6);
    for (int j = 0; j < 6; j++) {
        float pp[6], pm[6], qp[6], qm[6];
        memcpy(pp, p, sizeof pp); memcpy(pm, p, sizeof pm);
        memcpy(qp, q, sizeof qp); memcpy(qm, q, sizeof qm);
        pp[j] += 1e-2f; pm[j] -= 1e-2f; qp[j] += 1e-2f; qm[j] -= 1e-2f;
        double fdp = (at_loss_kl(pp, q, n, k, NULL, NULL, NULL, NULL) - at_loss_kl(pm, q, n, k, NULL, NULL, NULL, NULL)) / 2e-2;
        double fdq = (at_loss_kl(p, qp, n, k, NULL, NULL, NULL, NULL) - at_loss_kl(p, qm, n, k, NULL, NULL, NULL, NULL)) / 2e-2;
        CHECK_CLOSE(dp[j], fdp, 2e-4, 1e-2);
        CHECK_CLOSE(dq[j], fdq, 2e-4, 1e-2);
    }
}

/* A shard of a batch (data parallelism): with .total = 2n the mean is over twice the rows, so
 * the gradient and the loss are exactly half the plain ones (a power of two scales without
 * rounding), the per-example losses are unchanged, and the two halves of a batch sum to it. */
TEST(cross_entropy_over_a_larger_batch)
{
    enum { n = 3, k = 4 };
    const float z[2 * n * k] = {0.3f, -1.2f, 2.0f, 0.1f, 1.5f, 0.0f, -0.4f, 0.9f,
                                -2.0f, 0.7f, 0.2f, 1.1f, 0.0f, 0.5f, 0.5f, -1.0f,
                                2.5f, -0.3f, 0.8f, 0.0f, 1.0f, 1.0f, -1.5f, 0.3f};
    const int32_t y[2 * n] = {2, 0, 3, 1, 0, 1};
    const float w[2 * n] = {0.5f, 1.5f, 1.0f, 2.0f, 0.25f, 0.75f};
    float per[n], per_half[n], d[n * k], d_half[n * k];
    const float loss =
        at_loss_cross_entropy(z, n, k, &(at_ce_target){.labels = y, .weights = w}, per, d);
    const float half = at_loss_cross_entropy(
        z, n, k, &(at_ce_target){.labels = y, .weights = w, .total = 2 * n}, per_half, d_half);
    CHECK(half == 0.5f * loss);
    for (int j = 0; j < n * k; j++)
        if (d_half[j] != 0.5f * d[j])
            TEST_FAIL_("gradient %d: %.9g is not half of %.9g", j, d_half[j], d[j]);
    CHECK(memcmp(per, per_half, sizeof per) == 0);
    /* the halves of a batch of 2n sum to the whole's loss and keep its gradient rows */
    float d_whole[2 * n * k], d_parts[2 * n * k];
    const float whole = at_loss_cross_entropy(
        z, 2 * n, k, &(at_ce_target){.labels = y, .weights = w}, NULL, d_whole);
    double parts = 0.0;
    for (int s = 0; s < 2; s++)
        parts += at_loss_cross_entropy(
            z + s * n * k, n, k,
            &(at_ce_target){.labels = y + s * n, .weights = w + s * n, .total = 2 * n}, NULL,
            d_parts + s * n * k);
    CHECK_CLOSE(parts, whole, 0, 1e-6);
    CHECK(memcmp(d_whole, d_parts, sizeof d_whole) == 0);
    /* fewer rows in the whole batch than given is no batch */
    CHECK(isnan(at_loss_cross_entropy(z, n, k, &(at_ce_target){.labels = y, .total = n - 1},
                                      NULL, NULL)));
}

TEST(count_correct_takes_the_first_maximum)
{
    const float z[6] = {1, 3, 3, 0, 0, -1};
    const int32_t y[2] = {1, 0};
    uint8_t ok[2];
    CHECK_EQ_INT(at_count_correct(z, 2, 3, y, ok), 2);
    CHECK(ok[0] == 1 && ok[1] == 1);
}

/* One parameter vector w = (1, -2) with gradient g = (0.5, 0.25) at every step; the expected
 * values follow torch.optim.SGD(lr, momentum, weight_decay, nesterov) step by step. */
static void sgd_case(float momentum, float wd, bool nesterov, const double expect[3][2])
{
    at_model *m = NULL;
    at_error err;
    CHECK_OK(at_model_begin(&m, 1, 1, 1, &err), &err);
    at_add_linear(m, 0, "fc", 2, false);
    CHECK_OK(at_model_finish(m, 0, &err), &err);
    float *w = at_model_params(m, NULL), *g = at_model_grads(m, NULL);
    w[0] = 1.0f;
    w[1] = -2.0f;
    at_optimizer *opt = NULL;
    at_optimizer_options o = {.momentum = momentum, .weight_decay = wd, .nesterov = nesterov};
    CHECK_OK(at_optimizer_create(&opt, m, &o, &err), &err);
    for (int step = 0; step < 3; step++) {
        g[0] = 0.5f;
        g[1] = 0.25f;
        at_optimizer_step(opt, 0.1f);
        CHECK_CLOSE(w[0], expect[step][0], 1e-6, 0);
        CHECK_CLOSE(w[1], expect[step][1], 1e-6, 0);
    }
    at_optimizer_free(opt);
    at_model_free(m);
}

TEST(sgd_follows_the_pytorch_update)
{
    /* plain: w -= 0.1 g */
    const double plain[3][2] = {{0.95, -2.025}, {0.9, -2.05}, {0.85, -2.075}};
    sgd_case(0.0f, 0.0f, false, plain);
    /* momentum 0.9: buf 0.5, 0.95, 1.355 (and 0.25, 0.475, 0.6775) */
    const double mom[3][2] = {{0.95, -2.025}, {0.855, -2.0725}, {0.7195, -2.14025}};
    sgd_case(0.9f, 0.0f, false, mom);
    /* Nesterov: d = g + 0.9 buf: 0.95, 1.355, 1.7195 */
    const double nes[3][2] = {{0.905, -2.0475}, {0.7695, -2.11525}, {0.59755, -2.201225}};
    sgd_case(0.9f, 0.0f, true, nes);
    /* weight decay 0.1, no momentum: g' = g + 0.1 w */
    double w0 = 1.0, w1 = -2.0, wd[3][2];
    for (int s = 0; s < 3; s++) {
        w0 -= 0.1 * (0.5 + 0.1 * w0);
        w1 -= 0.1 * (0.25 + 0.1 * w1);
        wd[s][0] = w0;
        wd[s][1] = w1;
    }
    sgd_case(0.0f, 0.1f, false, (const double(*)[2])wd);
}

TEST(sgd_rejects_impossible_options)
{
    at_model *m = NULL;
    at_error err;
    CHECK_OK(at_model_create(&m, "linear", NULL, &err), &err);
    at_optimizer *opt = NULL;
    at_optimizer_options o[] = {{.momentum = 1.5f}, {.momentum = 0.9f, .weight_decay = -1},
                                {.nesterov = true}};
    CHECK_EQ_INT(at_optimizer_create(&opt, m, &o[0], &err), AT_ERR_ARG);
    CHECK_EQ_INT(at_optimizer_create(&opt, m, &o[1], &err), AT_ERR_ARG);
    CHECK_EQ_INT(at_optimizer_create(&opt, m, &o[2], &err), AT_ERR_ARG);
    at_model_free(m);
}

TEST(learning_rate_schedules)
{
    /* cosine over 2 epochs of 10 iterations: base at 0, half at the middle, ~0 at the end */
    at_lr_schedule cos_s = {.kind = AT_LR_COSINE, .base = 0.05f};
    CHECK_CLOSE(at_lr_at(&cos_s, 0, 10, 2), 0.05, 0, 1e-6);
    CHECK_CLOSE(at_lr_at(&cos_s, 10, 10, 2), 0.025, 1e-8, 0);
    CHECK_CLOSE(at_lr_at(&cos_s, 19, 10, 2), 0.05 * 0.5 * (1 + cos(3.14159265358979323846 * 19 / 20)), 1e-8, 0);
    /* warm-up: linear over the first epoch, then cosine over the rest */
    at_lr_schedule warm = {.kind = AT_LR_COSINE, .base = 1.0f, .warmup_epochs = 1};
    CHECK_CLOSE(at_lr_at(&warm, 0, 10, 3), 0.1, 1e-7, 0);
    CHECK_CLOSE(at_lr_at(&warm, 9, 10, 3), 1.0, 1e-7, 0);
    CHECK_CLOSE(at_lr_at(&warm, 10, 10, 3), 1.0, 1e-7, 0);
    CHECK_CLOSE(at_lr_at(&warm, 20, 10, 3), 0.5, 1e-7, 0);
    /* piecewise: x0.1 at epochs 100 and 150 */
    at_lr_schedule pw = {.kind = AT_LR_PIECEWISE, .base = 0.1f, .n_milestones = 2, .milestones = {100, 150}};
    CHECK_CLOSE(at_lr_at(&pw, 99 * 5 + 4, 5, 200), 0.1, 0, 1e-6);
    CHECK_CLOSE(at_lr_at(&pw, 100 * 5, 5, 200), 0.01, 0, 1e-6);
    CHECK_CLOSE(at_lr_at(&pw, 150 * 5, 5, 200), 0.001, 0, 1e-6);
    /* cyclic: np.interp(iter + 1, [0, T/2, T], [0, base, 0]) */
    at_lr_schedule cyc = {.kind = AT_LR_CYCLIC, .base = 0.05f};
    const long T = 5 * 469;
    for (long it = 0; it < T; it += 97) {
        double t = (double)it + 1, expect = t <= T / 2.0 ? 0.05 * t / (T / 2.0) : 0.05 * (T - t) / (T / 2.0);
        CHECK_CLOSE(at_lr_at(&cyc, it, 469, 5), expect, 1e-8, 1e-6);
    }
    CHECK_CLOSE(at_lr_at(&cyc, T - 1, 469, 5), 0.0, 1e-9, 0);
}

TEST_MAIN(TEST_ENTRY(cross_entropy_exact_cases), TEST_ENTRY(cross_entropy_soft_smoothed_and_weighted),
          TEST_ENTRY(cross_entropy_is_stable_for_huge_logits), TEST_ENTRY(kl_divergence),
          TEST_ENTRY(cross_entropy_over_a_larger_batch),
          TEST_ENTRY(count_correct_takes_the_first_maximum), TEST_ENTRY(sgd_follows_the_pytorch_update),
          TEST_ENTRY(sgd_rejects_impossible_options), TEST_ENTRY(learning_rate_schedules))
