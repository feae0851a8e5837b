/* eps_schedule.c: the training budget over a run. Kinfu and Vidal ("Analysis and Extensions of
 * Adversarial Training for Video Classification", 2022) find that the best attack step grows
 * linearly with eps and that training with a budget that moves (a curriculum from small to
 * large, or one drawn from a distribution) trains more robustly than a fixed one; every
 * schedule here keeps the attack's step in proportion to the budget of the moment. The
 * per-example adaptive schedule keeps its budgets in batch.c. */
#include "train/method.h"

const char *at_eps_schedule_name(at_eps_schedule s)
{
    static const char *const names[] = {"fixed", "curriculum", "adaptive", "stochastic"};
    return (unsigned)s < sizeof names / sizeof names[0] ? names[s] : "?";
}

int at_eps_schedule_check(const at_train_config *c, at_error *err)
{
    if ((unsigned)c->eps_schedule > AT_EPS_STOCHASTIC)
        return at_fail(err, AT_ERR_ARG, "unknown eps schedule %d", (int)c->eps_schedule);
    if (c->eps_schedule != AT_EPS_FIXED && c->eps_warmup > 0.0f)
        return at_fail(err, AT_ERR_ARG, "eps warm-up is the fixed schedule's; the %s schedule "
                       "moves eps itself", at_eps_schedule_name(c->eps_schedule));
    if (c->eps_stages != 0 && c->eps_schedule != AT_EPS_CURRICULUM)
        return at_fail(err, AT_ERR_ARG, "eps stages belong to the curriculum schedule");
    if (c->eps_stages < 0 || c->eps_stages > c->epochs)
        return at_fail(err, AT_ERR_ARG, "eps stages %d out of range 1..%d (the epochs)",
                       c->eps_stages, c->epochs);
    const bool lower = c->eps_schedule == AT_EPS_ADAPTIVE || c->eps_schedule == AT_EPS_STOCHASTIC;
    if (c->eps_min != 0.0f && !lower)
        return at_fail(err, AT_ERR_ARG, "eps-min belongs to the adaptive and stochastic schedules");
    if (!(c->eps_min >= 0.0f && c->eps_min <= c->eps))
        return at_fail(err, AT_ERR_ARG, "eps-min %g must be within [0, eps = %g]", c->eps_min, c->eps);
    if (c->eps_rate != 0.0f && c->eps_schedule != AT_EPS_ADAPTIVE)
        return at_fail(err, AT_ERR_ARG, "eps-rate belongs to the adaptive schedule");
    if (!(c->eps_rate >= 0.0f && c->eps_rate <= 1.0f))
        return at_fail(err, AT_ERR_ARG, "eps-rate %g out of range [0, 1]", c->eps_rate);
    if (!(c->eval_eps >= 0.0f && c->eval_eps < 1e6f))
        return at_fail(err, AT_ERR_ARG, "eval eps %g must be >= 0", c->eval_eps);
    return AT_OK;
}

float at_eps_now(const at_train_config *c, long step, long iters_per_epoch, at_rng *rng)
{
    const double epoch = (double)step / iters_per_epoch;
    switch (c->eps_schedule) {
    case AT_EPS_CURRICULUM: {
        /* stage s of S covers epochs [s E / S, (s + 1) E / S) */
        const int stages = c->eps_stages, stage = (int)(epoch * stages / c->epochs);
        return c->eps * (float)(stage < stages ? stage + 1 : stages) / (float)stages;
    }
    case AT_EPS_STOCHASTIC:
        return c->eps_min + (c->eps - c->eps_min) * (float)at_rng_uniform(rng);
    case AT_EPS_FIXED:
    case AT_EPS_ADAPTIVE:
        break;
    }
    /* the linear warm-up (Wong et al. 2020 and others): 0 to eps over eps_warmup epochs */
    if (c->eps_warmup <= 0.0f || epoch >= c->eps_warmup)
        return c->eps;
    return (float)(c->eps * epoch / c->eps_warmup);
}
