/* attack_args.c: from command-line attack options to a cascade (at_eval_plan). An option that no
 * attack of the cascade uses is an error, never silently ignored. */
#include "attack_args.h"

#include <stdio.h>
#include <string.h>

bool cli_attack_requested(const cli_attack_args *a) { return a->attack || a->suite; }

static bool in(const char *name, const char *const *list, int n)
{
    for (int i = 0; i < n; i++)
        if (strcmp(name, list[i]) == 0)
            return true;
    return false;
}

/* Which attacks each option applies to. */
static const char *const uses_steps[] = {"pgd", "apgd-ce", "apgd-dlr", "apgd-t", "fab-t", "iwd",
                                          "jsa"};
static const char *const uses_step_size[] = {"pgd", "iwd", "jsa"};
static const char *const uses_loss[] = {"pgd", "fgsm", "apgd-ce", "apgd-dlr", "apgd-t", "iwd", "jsa"};
static const char *const uses_queries[] = {"square"};
static const char *const uses_targets[] = {"apgd-t", "fab-t"};
static const char *const uses_eot[] = {"fgsm", "pgd", "apgd-ce", "apgd-dlr", "apgd-t", "fab-t",
                                       "iwd", "jsa"};
static const char *const uses_start[] = {"pgd"};
static const char *const uses_random_start[] = {"pgd", "jsa"};
static const char *const uses_iwd[] = {"iwd"};
static const char *const uses_flow[] = {"jsa"};
#define N(list) (int)(sizeof list / sizeof list[0])

static int check_applies(const char *cmd, const at_eval_plan *p, bool given, const char *option,
                         const char *const *list, int n)
{
    if (!given)
        return 0;
    for (int i = 0; i < p->n_attacks; i++)
        if (in(p->attacks[i], list, n))
            return 0;
    return cli_error(cmd, EXIT_USAGE, "%s does not apply to any attack of this evaluation", option);
}

/* The flow of --flow, loaded once per process (again when a larger batch is asked for); it lives
 * as long as the process, as the plans that point to it do. */
static int load_flow(const char *cmd, const cli_attack_args *a, at_flow **out)
{
    static at_flow *loaded;
    static char loaded_path[4096];
    if (!a->flow)
        return cli_error(cmd, EXIT_USAGE, "jsa needs --flow FILE (a flow from advtrain train-flow)");
    if (!(a->eps_z > 0))
        return cli_error(cmd, EXIT_USAGE, "jsa needs --eps-z EPS, the latent budget (> 0)");
    const int batch = a->batch > 0 ? a->batch : 500;
    if (loaded && !strcmp(loaded_path, a->flow) && at_flow_max_batch(loaded) >= batch) {
        *out = loaded;
        return 0;
    }
    at_flow *f = NULL;
    at_error err;
    if (at_flow_load(&f, a->flow, batch, &err))
        return cli_error(cmd, EXIT_WORK_FAILED, "--flow: %s", err.message);
    at_flow_free(loaded);
    loaded = f;
    snprintf(loaded_path, sizeof loaded_path, "%s", a->flow);
    *out = loaded;
    return 0;
}

int cli_attack_plan(const char *cmd, const cli_attack_args *a, double eps, at_eval_plan *plan)
{
    memset(plan, 0, sizeof *plan);
    static char names[512];
    if (a->attack && a->suite)
        return cli_error(cmd, EXIT_USAGE, "give --attack or --suite, not both");
    if (a->suite && !strcmp(a->suite, "corruptions"))
        return cli_error(cmd, EXIT_USAGE, "--suite corruptions is not an attack: advtrain eval "
                         "--suite corruptions");
    if (a->suite && !strcmp(a->suite, "quick")) {
        plan->attacks[0] = "pgd";
        plan->options[0].steps = 20;
        plan->attacks[1] = "apgd-ce";
        plan->n_attacks = 2;
    } else if (a->suite) {
        static const char *const standard[] = {"apgd-ce", "apgd-t", "fab-t", "square"};
        for (int i = 0; i < 4; i++)
            plan->attacks[i] = standard[i];
        plan->n_attacks = 4;
    } else {
        if (strlen(a->attack) >= sizeof names)
            return cli_error(cmd, EXIT_USAGE, "--attack: list too long");
        strcpy(names, a->attack);
        char *save = NULL;
        for (char *tok = strtok_r(names, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
            if (plan->n_attacks == AT_EVAL_MAX_ATTACKS)
                return cli_error(cmd, EXIT_USAGE, "--attack: at most %d attacks", AT_EVAL_MAX_ATTACKS);
            bool known = false;
            const char *name;
            for (int i = 0; at_attack_info(i, &name, NULL); i++)
                known |= strcmp(name, tok) == 0;
            if (!known)
                return cli_error(cmd, EXIT_USAGE, "unknown attack '%s' (see 'advtrain list attacks')", tok);
            plan->attacks[plan->n_attacks++] = tok;
        }
        if (plan->n_attacks == 0)
            return cli_error(cmd, EXIT_USAGE, "--attack needs a name");
    }
    at_norm norm = !a->norm || !strcmp(a->norm, "linf") ? AT_NORM_LINF
                   : !strcmp(a->norm, "l2")            ? AT_NORM_L2
                                                       : AT_NORM_L1;
    at_attack_loss loss = !a->loss ? AT_ATTACK_LOSS_DEFAULT
                          : !strcmp(a->loss, "ce") ? AT_ATTACK_LOSS_CE
                          : !strcmp(a->loss, "cw") ? AT_ATTACK_LOSS_CW
                                                   : AT_ATTACK_LOSS_DLR;
    at_bn_mode bn = !a->bn_mode || !strcmp(a->bn_mode, "eval") ? AT_BN_EVAL
                    : !strcmp(a->bn_mode, "train")             ? AT_BN_TRAIN
                                                               : AT_BN_BATCH_STATS;
    int status = check_applies(cmd, plan, a->steps, "--steps", uses_steps, N(uses_steps));
    if (!status)
        status = check_applies(cmd, plan, a->step_size > 0, "--step-size", uses_step_size, N(uses_step_size));
    if (!status)
        status = check_applies(cmd, plan, a->loss, "--loss", uses_loss, N(uses_loss));
    if (!status)
        status = check_applies(cmd, plan, a->queries || a->p_init > 0, "--queries/--p-init", uses_queries, N(uses_queries));
    if (!status)
        status = check_applies(cmd, plan, a->targets, "--targets", uses_targets, N(uses_targets));
    if (!status)
        status = check_applies(cmd, plan, a->eot > 1, "--eot", uses_eot, N(uses_eot));
    if (!status)
        status = check_applies(cmd, plan,
                               a->iwd_lambda > 0 || a->iwd_budget > 0 || a->iwd_reg > 0 ||
                                   a->iwd_patch || a->iwd_stride || a->iwd_samples || a->iwd_iters,
                               "--iwd-*", uses_iwd, N(uses_iwd));
    if (!status)
        status = check_applies(cmd, plan, a->early_stop, "--early-stop", uses_start, N(uses_start));
    if (!status)
        status = check_applies(cmd, plan, a->no_random_start, "--no-random-start",
                               uses_random_start, N(uses_random_start));
    if (!status)
        status = check_applies(cmd, plan, a->flow || a->eps_z > 0 || a->step_size_z > 0,
                               "--flow/--eps-z/--step-size-z", uses_flow, N(uses_flow));
    at_flow *flow = NULL;
    if (!status)
        for (int i = 0; i < plan->n_attacks && !status && !flow; i++)
            if (in(plan->attacks[i], uses_flow, N(uses_flow)))
                status = load_flow(cmd, a, &flow);
    if (status)
        return status;
    for (int i = 0; i < plan->n_attacks; i++) {
        at_attack_options *o = &plan->options[i];
        o->norm = norm;
        o->eps = (float)eps;
        o->bn_mode = bn;
        o->restarts = a->restarts;
        o->eot = in(plan->attacks[i], uses_eot, N(uses_eot)) ? a->eot : 0;
        if (a->steps && in(plan->attacks[i], uses_steps, N(uses_steps)))
            o->steps = a->steps;
        if (in(plan->attacks[i], uses_step_size, N(uses_step_size)))
            o->step_size = (float)a->step_size;
        if (in(plan->attacks[i], uses_loss, N(uses_loss)))
            o->loss = loss;
        if (in(plan->attacks[i], uses_queries, N(uses_queries))) {
            o->queries = a->queries;
            o->p_init = (float)a->p_init;
        }
        if (in(plan->attacks[i], uses_targets, N(uses_targets)))
            o->targets = a->targets;
        if (in(plan->attacks[i], uses_iwd, N(uses_iwd))) {
            o->iwd_lambda = (float)a->iwd_lambda;
            o->iwd_budget = (float)a->iwd_budget;
            o->iwd = (at_iwd_options){.patch = a->iwd_patch, .stride = a->iwd_stride,
                                      .samples = a->iwd_samples, .reg = (float)a->iwd_reg,
                                      .iters = a->iwd_iters};
        }
        if (in(plan->attacks[i], uses_start, N(uses_start)))
            o->early_stop = a->early_stop;
        if (in(plan->attacks[i], uses_random_start, N(uses_random_start)))
            o->no_random_start = a->no_random_start;
        if (in(plan->attacks[i], uses_flow, N(uses_flow))) {
            o->flow = flow;
            o->eps_z = (float)a->eps_z;
            o->step_size_z = (float)a->step_size_z;
        }
    }
    plan->seed = (uint64_t)a->seed;
    return 0;
}
