/* attack.h: the contract between the attack framework (attacks.c, attack_common.c) and each
 * attack (one file each, one line in the table of attacks.c).
 *
 * The framework owns a pass over the model planned for the batch size, the buffers every attack
 * needs (input gradient, per-example loss, logits) and the statistics a report needs; an attack
 * asks for per-example workspace and implements run(). Attacks see the model only through
 * forward and backward, so randomised models (EOT) and normalised inputs need no special case. */
#ifndef AT_ATTACK_H
#define AT_ATTACK_H

#include "advtrain.h"
#include "core/util.h"

typedef struct at_attack_ops {
    const char *name;
    const char *description;
    at_attack_loss default_loss;
    int default_steps;
    bool needs_targets;        /* targeted by design (APGD-T, FAB-T) */
    int min_classes;           /* the loss needs at least this many classes */
    bool supports_l1;
    bool gradient_free;        /* forwards only (Square): its pass keeps no activations */
    bool needs_flow;           /* o.flow, o.eps_z and o.step_size_z (JSA) */
    /* floats of workspace per example, for an image of `image` floats */
    size_t (*workspace)(const at_attack *a, size_t image);
    /* optional: checks the attack's own options, fills their defaults into a->o and makes
     * a->state (freed by free_state) */
    int (*setup)(at_attack *a, at_error *err);
    void (*free_state)(void *state);
    /* writes x_adv for n examples; the framework measures and records the result */
    int (*run)(at_attack *a, const float *x, const int32_t *y, const int32_t *target, int n,
               float *x_adv);
} at_attack_ops;

struct at_attack {
    const at_attack_ops *ops;
    at_attack_options o;       /* defaults filled in */
    at_model *model;
    at_pass *pass;
    int max_batch, classes;
    size_t image;              /* floats per example */
    float *work;               /* ops->workspace(...) floats per example */
    float *grad;               /* [max_batch, image]: input gradient of the last evaluation */
    float *dlogits;            /* [max_batch, classes] */
    float *loss;               /* [max_batch]: per-example loss of the last evaluation */
    float *logits;             /* [max_batch, classes]: logits of the last evaluation */
    uint8_t *correct;          /* [max_batch]: prediction == label at the last evaluation */
    float *scratch;            /* [image]: for the L1 projection */
    at_rng *rngs;              /* [max_batch]: example i's random stream during a run */
    /* Set by a caller for the runs that follow (the trainer), NULL otherwise: example i's
     * budget (PGD and FGSM; steps scale with eps_each[i] / o.eps), and the target
     * distributions [n, classes] the cross-entropy is taken against instead of one-hot y. */
    const float *eps_each;
    const float *soft_targets;
    at_attack_stats stats;
    void *state;               /* the attack's own (ops->setup), or NULL */
};

/* Per-example loss and its gradient w.r.t. the logits (no batch averaging: each example's
 * gradient is its own). target is used by the targeted losses. */
void at_attack_loss_eval(at_attack_loss kind, bool targeted, const float *logits, int n, int k,
                         const int32_t *y, const int32_t *target, float *loss, float *dlogits);

/* Per-example cross-entropy to soft targets, -sum_j t_j log softmax(z)_j, and its gradient
 * p - t (classes with t_j = 0 add nothing, so a one-hot row gives exactly the hard-label CE). */
void at_attack_loss_soft_ce(const float *logits, int n, int k, const float *targets, float *loss,
                            float *dlogits);

/* Forward of x_eval (in the attack's BN mode), per-example loss into a->loss, logits into
 * a->logits, prediction == y into a->correct, and with want_grad the input gradient into a->grad
 * (averaged over o.eot passes). Counts evaluations and zero or non-finite gradients, and
 * measures x_eval against the clean x (threat model and range of every evaluated point). */
int at_attack_evaluate(at_attack *a, const float *x, const float *x_eval, const int32_t *y,
                       const int32_t *target, int n, at_attack_loss loss, bool targeted,
                       bool want_grad);

/* Counts the zero and the non-finite input gradients among a->grad's first n examples. */
void at_attack_count_gradients(at_attack *a, int n);

/* The class with the `rank`-th largest logit (rank 1 = the largest; targeted attacks aim at
 * ranks 2, 3, ...). */
int32_t at_attack_ranked_class(const float *z, int k, int rank);

/* Whether example i's logits in a->logits are a success: the target class on top (targeted), any
 * class but y[i] on top otherwise. */
bool at_attack_succeeded(const at_attack *a, int i, const int32_t *y, const int32_t *target);

/* Adds a->loss[0..n) to the statistics of step `step`. */
void at_attack_record_loss(at_attack *a, int step, int n);

/* x_adv = clamp(x + proj(x_adv - x), 0, 1), projecting onto the eps-ball of the norm (example i's
 * radius eps_each[i], or eps for all when eps_each is NULL); scratch (image floats) is used by
 * the L1 projection. */
void at_attack_project(at_norm norm, float eps, const float *eps_each, const float *x,
                       float *x_adv, int n, size_t image, float *scratch);
/* The ascent direction for a gradient: sign (Linf), g / ||g||_2 (L2), or a sparse L1 step. A
 * zero gradient gives a zero direction, never NaN. */
void at_attack_direction(at_norm norm, const float *grad, float *dir, int n, size_t image);
/* A random start inside the eps-ball, example i drawing from rngs[i]: uniform in the box (Linf),
 * uniform radius along a random direction (L2, L1), then clamped to [0,1]. */
void at_attack_random_start(at_norm norm, float eps, const float *eps_each, const float *x,
                            float *x_adv, int n, size_t image, at_rng *rngs, float *scratch);
/* The IWD (iwd_distance.c) split for callers that compare many points with one x: the self term
 * OT(P_x, P_x) of x, and S(x, x_adv) given it (NAN: computed here). */
double at_iwd_self(at_iwd *iwd, const float *x, uint64_t seed);
double at_iwd_divergence(at_iwd *iwd, const float *x, double self_x, const float *x_adv,
                         uint64_t seed, float *grad);

/* ||v||_p of one example (in double). */
double at_norm_of(at_norm norm, const float *v, size_t image);

#endif
