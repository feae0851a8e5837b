/* test_jsa.c: the joint-space attack (src/attack/jsa.c): both budgets hold (the pixel one on
 * x_adv itself when the latent budget is 0, the latent one on F(x_adv) when the pixel budget is
 * 0), outputs stay in [0,1], the loss rises, a weak model is broken, and the latent step does
 * something the pixel step alone does not; a missing or mismatched flow is refused. */
#include "test.h"
#include "util/fixtures.h"

#include "advtrain.h"

enum { N = 12, C = 1, HW = 8, K = 4, D = C * HW * HW };

static at_flow *flow_for_test(uint64_t seed)
{
    at_flow *f = NULL;
    at_error err;
    CHECK_OK(at_flow_create(&f, &(at_flow_options){.channels = C, .height = HW, .width = HW,
                                                   .steps = 2, .hidden = 8, .seed = seed},
                            N, &err), &err);
    if (!f)
        return NULL;
    at_rng r;
    at_rng_seed(&r, seed);
    for (int m = 0; m < at_flow_model_count(f); m++) {
        at_model *model = at_flow_model(f, m);
        for (int i = 0; i < at_model_tensor_count(model); i++) {
            at_tensor_info t = at_model_tensor(model, i);
            if (!strncmp(t.name, "out.", 4))
                for (size_t e = 0; e < t.numel; e++)
                    t.data[e] = (float)(0.1 * (2.0 * at_rng_uniform(&r) - 1.0));
        }
    }
    return f;
}

typedef struct setup {
    at_model *model;
    at_flow *flow;
    float x[N * D];
    int32_t y[N];
    uint64_t seeds[N];
} setup;

static bool make(setup *s)
{
    s->model = fixture_model("linear", C, HW, K, 3);
    s->flow = flow_for_test(4);
    if (!s->model || !s->flow)
        return false;
    fixture_images(s->x, N * D, 5, 0.2f, 0.8f);
    fixture_predict(s->model, s->x, N, s->y);
    at_attack_seeds(9, 0, N, s->seeds);
    return true;
}

static void unmake(setup *s)
{
    at_model_free(s->model);
    at_flow_free(s->flow);
}

static at_attack *jsa(setup *s, float eps, float eps_z, int steps)
{
    at_attack *a = NULL;
    at_error err;
    at_attack_options o = {.norm = AT_NORM_LINF, .eps = eps, .eps_z = eps_z, .steps = steps,
                           .flow = s->flow};
    CHECK_OK(at_attack_create(&a, "jsa", s->model, N, &o, &err), &err);
    return a;
}

TEST(pixel_budget_holds_with_no_latent_budget)
{
    setup s;
    REQUIRE(make(&s));
    at_attack *a = jsa(&s, 0.03f, 0.0f, 10);
    REQUIRE(a);
    float adv[N * D];
    CHECK_OK(at_attack_run(a, s.x, s.y, NULL, N, s.seeds, adv, NULL), NULL);
    const at_attack_stats *st = at_attack_get_stats(a);
    /* x_adv = clamp(F^-1(F(x)) + dx): within eps of x up to the flow's reconstruction error */
    CHECK(st->max_reconstruction < 1e-5);
    CHECK(st->max_linf <= 0.03 + st->max_reconstruction + 1e-6);
    CHECK(st->max_linf > 0.02);
    CHECK(st->max_pixel_linf <= 0.03 + 1e-7);
    CHECK(st->max_latent_linf == 0.0);
    at_attack_free(a);
    unmake(&s);
}

TEST(latent_budget_holds_on_the_flow_of_the_output)
{
    setup s;
    REQUIRE(make(&s));
    const float eps_z = 0.05f;
    at_attack *a = jsa(&s, 0.0f, eps_z, 10);
    REQUIRE(a);
    float adv[N * D], z[N * D], z_adv[N * D];
    CHECK_OK(at_attack_run(a, s.x, s.y, NULL, N, s.seeds, adv, NULL), NULL);
    const at_attack_stats *st = at_attack_get_stats(a);
    CHECK(st->max_latent_linf <= eps_z + 1e-7 && st->max_latent_linf > 0.9 * eps_z);
    CHECK(st->max_pixel_linf == 0.0);
    at_flow_forward(s.flow, s.x, N, z, NULL);
    at_flow_forward(s.flow, adv, N, z_adv, NULL);
    double worst = 0.0, moved = 0.0;
    int clamped = 0;
    for (int j = 0; j < N * D; j++)
        clamped += adv[j] <= 0.0f || adv[j] >= 1.0f;
    REQUIRE(clamped == 0); /* the images stay inside, so F(x_adv) = F(x) + dz exactly */
    for (int j = 0; j < N * D; j++) {
        worst = fmax(worst, fabs((double)z_adv[j] - z[j]));
        moved = fmax(moved, fabs((double)adv[j] - s.x[j]));
    }
    printf("  max |F(x_adv) - F(x)| = %.6f (eps_z %.3f), max |x_adv - x| = %.4f\n", worst,
           eps_z, moved);
    CHECK(worst <= eps_z + 1e-4);
    CHECK(moved > 0.0);
    at_attack_free(a);
    unmake(&s);
}

TEST(outputs_in_range_loss_rises_and_a_weak_model_is_broken)
{
    setup s;
    REQUIRE(make(&s));
    at_attack *a = jsa(&s, 0.1f, 0.3f, 20);
    REQUIRE(a);
    float adv[N * D];
    uint8_t fooled[N];
    CHECK_OK(at_attack_run(a, s.x, s.y, NULL, N, s.seeds, adv, fooled), NULL);
    const at_attack_stats *st = at_attack_get_stats(a);
    for (int j = 0; j < N * D; j++)
        CHECK(adv[j] >= 0.0f && adv[j] <= 1.0f);
    CHECK_EQ_INT(st->out_of_range, 0);
    CHECK_EQ_INT(st->nonfinite_outputs, 0);
    const double first = st->loss_sum[0] / st->loss_count[0];
    const double last = st->loss_sum[20] / st->loss_count[20];
    printf("  loss %.4f -> %.4f, fooled %ld of %ld\n", first, last, st->fooled, st->points);
    CHECK(last > first + 0.1);
    CHECK(st->fooled >= N * 3 / 4);
    at_attack_free(a);
    unmake(&s);
}

TEST(the_latent_step_adds_to_the_pixel_step)
{
    setup s;
    REQUIRE(make(&s));
    at_attack *pixel = jsa(&s, 0.02f, 0.0f, 10), *joint = jsa(&s, 0.02f, 0.3f, 10);
    REQUIRE(pixel && joint);
    float adv[N * D];
    CHECK_OK(at_attack_run(pixel, s.x, s.y, NULL, N, s.seeds, adv, NULL), NULL);
    CHECK_OK(at_attack_run(joint, s.x, s.y, NULL, N, s.seeds, adv, NULL), NULL);
    const at_attack_stats *p = at_attack_get_stats(pixel), *j = at_attack_get_stats(joint);
    const double lp = p->loss_sum[10] / p->loss_count[10], lj = j->loss_sum[10] / j->loss_count[10];
    printf("  final loss: pixel only %.4f, joint %.4f\n", lp, lj);
    CHECK(lj > lp + 0.05);
    at_attack_free(pixel);
    at_attack_free(joint);
    unmake(&s);
}

TEST(a_missing_or_mismatched_flow_is_refused)
{
    setup s;
    REQUIRE(make(&s));
    at_attack *a = NULL;
    at_error err;
    at_attack_options o = {.norm = AT_NORM_LINF, .eps = 0.1f, .eps_z = 0.1f};
    CHECK_EQ_INT(at_attack_create(&a, "jsa", s.model, N, &o, &err), AT_ERR_ARG);
    CHECK(strstr(err.message, "--flow") != NULL);
    o.flow = s.flow;
    CHECK_EQ_INT(at_attack_create(&a, "jsa", s.model, N + 1, &o, &err), AT_ERR_ARG);
    o.norm = AT_NORM_L2;
    CHECK_EQ_INT(at_attack_create(&a, "jsa", s.model, N, &o, &err), AT_ERR_ARG);
    at_model *other = fixture_model("linear", C, 16, K, 3);
    o.norm = AT_NORM_LINF;
    CHECK_EQ_INT(at_attack_create(&a, "jsa", other, N, &o, &err), AT_ERR_SHAPE);
    CHECK(!a);
    at_model_free(other);
    unmake(&s);
}

TEST_MAIN(TEST_ENTRY(pixel_budget_holds_with_no_latent_budget),
          TEST_ENTRY(latent_budget_holds_on_the_flow_of_the_output),
          TEST_ENTRY(outputs_in_range_loss_rises_and_a_weak_model_is_broken),
          TEST_ENTRY(the_latent_step_adds_to_the_pixel_step),
          TEST_ENTRY(a_missing_or_mismatched_flow_is_refused))
