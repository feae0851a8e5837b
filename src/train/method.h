/* method.h: a training method is one entry in a table: how one batch becomes a loss and weight
 * gradients. The trainer owns everything else (epochs, data order, schedules, optimiser steps,
 * weight averaging, validation, early stopping), so a method file holds only what differs between
 * methods, and its header cites the paper and equation it implements. */
#ifndef AT_METHOD_H
#define AT_METHOD_H

#include "advtrain.h"
#include "core/util.h"
#include "data/augmix.h"
#include "train/loss.h"

/* The shared options (fields of at_train_config) a method reads; setting one it does not read
 * is an error. A method's own options are its `options` table. */
enum {
    AT_USES_EPS = 1,          /* norm, eps, eps_warmup */
    AT_USES_ATTACK_STEPS = 2,
    AT_USES_STEP_SIZE = 4,
    AT_USES_ATTACK_BN = 8,
    AT_USES_AUTOENCODER = 16, /* autoencoder (ada) */
    AT_USES_FLOW = 32         /* flow (ijsat) */
};

typedef struct at_awp at_awp;
typedef struct at_aux_net at_aux_net;
enum { AT_MAX_AUX_NETS = 2 };

/* One training batch as the trainer composed it (batch.c): real examples, possibly mixed
 * (CutMix), extra data, out-of-distribution rows; targets, weights and budgets per example.
 * Under data parallelism each process holds a shard, rows first..first+n-1 of a global batch of
 * `total` rows, and the weight gradients of the shards are summed: so every batch mean a method
 * computes divides by total, and its per-row draws are those of the global row, whatever the
 * split. One process holds the whole batch: first 0, total n, total_scored scored. */
typedef struct at_batch {
    const float *x;           /* [n, image] */
    const int32_t *y;         /* [n] labels (of a soft row: its largest share) */
    const float *soft;        /* [n, classes] target distributions, or NULL: one-hot y */
    const float *weight;      /* [n] loss weights, or NULL: all 1. A loss is the batch mean
                                 (1/total) sum_i w_i l_i, so the weights carry its
                                 normalisation */
    const float *eps;         /* [n] per-example budgets, or NULL: ctx->eps for every example */
    int n;
    int scored;               /* rows 0..scored-1 count in the training accuracy */
    int first;                /* global index of row 0 */
    int total;                /* rows of the global batch: the divisor of every batch mean */
    int total_scored;         /* global rows 0..total_scored-1 are scored: they count in the
                                 accuracy and draw from ctx->rng, the rest from rng_unscored */
} at_batch;

typedef struct at_method_ctx {
    at_model *model;
    at_optimizer *optimizer;  /* the model's */
    at_pass *train;           /* training pass: weight and input gradients */
    at_pass *clean;           /* a second training pass (the clean branch of TRADES and MART) */
    at_pass *attack_pass;     /* input-gradient pass for the training attack */
    at_attack *attack;        /* a library attack for the training attack (pgd-at, fgsm-rs) */
    const at_train_config *config; /* with the method's defaults filled in */
    double *opt;              /* the method's options in the order of its table: numbers as
                                 they are, flags 0/1, choices the index of the choice (setup
                                 may fill a derived preset) */
    const bool *opt_given;    /* which of them were given (the rest are presets) */
    int replays;              /* set by setup: times each minibatch is replayed (1) */
    bool overfit_check;       /* set by setup: check for catastrophic overfitting every epoch */
    at_rng *rng;              /* this epoch's stream for the method's randomness */
    at_rng *rng_unscored;     /* and for rows past b->scored (OOD rows), so that adding them
                                 changes no draw of the others */
    float eps;                /* the training eps now (after warm-up) */
    int epoch;                /* 0-based */
    double last_train_acc;    /* the training accuracy and loss of the last epoch before this */
    double last_train_loss;   /* one (-1: none) */
    long step;                /* optimiser steps before this one in the whole run (resumes) */
    int num_classes, batch;
    size_t image;
    float *x_adv;             /* [batch, image] */
    float *delta;             /* [batch, image]: Free-AT's persistent perturbation */
    float *dlogits, *dlogits2, *probs, *target; /* [batch, classes] each */
    float *dir;               /* [batch, image]: ascent directions */
    float *scratch;           /* [image]: projections */
    uint64_t *seeds;          /* [batch] */
    uint8_t *correct;         /* [batch]: filled by step */
    at_awp *awp;              /* AWP state, or NULL */
    at_aux_net *aux[AT_MAX_AUX_NETS]; /* networks trained beside the model (at_method_add_aux) */
    int n_aux;
    void *state;              /* a method's own state, made by its setup */
    void (*free_state)(void *state);
} at_method_ctx;

/* What a method needs the trainer to set up. */
enum {
    AT_NEEDS_CLEAN_PASS = 1,  /* a second training pass */
    AT_NEEDS_ATTACK_PASS = 2, /* an input-gradient pass (at_train_attack) */
    AT_NEEDS_PGD = 4          /* a library PGD attack in ctx->attack */
};

typedef struct at_method {
    const char *name;
    const char *description;
    unsigned uses, needs;
    const at_option_info *options; /* its own options (see at_method_option) */
    int n_options;
    /* fills the paper's defaults into the shared fields left at 0 */
    void (*defaults)(at_train_config *c);
    /* optional: after the options are resolved and the passes made (checks that span options,
     * replays, AWP's proxy) */
    int (*setup)(at_method_ctx *ctx, at_error *err);
    bool hard_labels_only;    /* the loss needs one label per example: no soft targets */
    /* its random draws are made per row of the whole batch (at_method_attack, at_train_attack),
     * so a process holding some of the rows draws what one process would (at_trainer_share) */
    bool row_draws;
    /* Accumulates the weight gradients of one batch into the (zeroed) model gradients, reports
     * the batch's mean training loss, and marks in ctx->correct which examples the model got
     * right (adversarial ones, for adversarial methods). */
    int (*step)(at_method_ctx *ctx, const at_batch *b, double *loss);
    /* optional: runs after the optimiser step (AWP restores the weights) */
    void (*after_step)(at_method_ctx *ctx);
} at_method;

const at_method *at_method_find(const char *name);

/* Options of the table (the method's own) as resolved values: the text given in the config, or
 * the preset; a name the table does not hold is "method M does not use NAME". */
int at_method_resolve_options(const at_method *m, const at_train_config *c, double *values,
                              bool *given, at_error *err);
/* A resolved value as text ("6", "true", "manifold"). */
void at_option_format(const at_option_info *o, double value, char *text, size_t cap);

#define AT_OPTION_LEN(table) ((int)(sizeof(table) / sizeof((table)[0])))

/* The training attack of TRADES and MART: from x + 0.001 N(0, 1) (drawn for every row of the
 * global batch), `steps` signed (Linf) or
 * normalised (L2) steps ascending either the cross-entropy to y (MART) or KL(target || p(x'))
 * against the fixed distributions `target` (TRADES), each projected to the eps-ball (b->eps) and
 * [0,1]. Batch norm in config->attack_bn_mode. */
int at_train_attack(at_method_ctx *c, const at_batch *b, const float *target, float *x_adv);
/* One step of a training attack from the input gradient `grad`: x_adv moves by the step size (in
 * proportion to each example's budget) along the sign (Linf) or the normalised gradient (L2),
 * then is projected onto the eps-ball around b->x and onto [0,1]. */
void at_train_attack_ascend(at_method_ctx *c, const at_batch *b, const float *grad, float *x_adv);

/* The common presets of a training attack: `steps` steps of eps/4 (Madry et al.'s ratio, which
 * Rice et al. and TRADES keep) and the method's batch-norm mode, for the fields left unset. */
void at_attack_presets(at_train_config *c, int steps, at_bn_mode bn);

/* The library PGD attack of ctx->attack (pgd-at, fgsm-rs) on the batch: its budgets, its soft
 * targets, the current eps (warm-up) with the step in proportion; per-example seeds from
 * ctx->rng, one drawn for every row of the global batch. */
int at_method_attack(at_method_ctx *c, const at_batch *b, float *x_adv);

/* Cross-entropy of logits to the batch's targets (soft or hard, weighted), gradient in dlogits,
 * correct predictions in ctx->correct; returns the loss. */
double at_method_ce(at_method_ctx *c, const at_batch *b, const float *logits, float *dlogits);

/* MART's loss for one example (q, p: softmax of the adversarial and clean logits) and its
 * gradients w.r.t. both logit vectors, unscaled by the batch size (mart.c). */
double at_mart_example(const float *q, const float *p, int k, int y, double beta, float *da,
                       float *dc);

/* AugMix's options (augmix.c) in the table of a method that augments with it, at the presets of
 * the authors' cifar.py. */
#define AT_AUGMIX_OPTIONS                                                                      \
    {"augmix-severity", AT_OPTION_INT, 1, 10, NULL, "3",                                       \
     "AugMix: severity of the operations (the code's --aug-severity)"},                       \
    {"augmix-width", AT_OPTION_INT, 1, AT_AUGMIX_MAX_WIDTH, NULL, "3",                         \
     "AugMix: augmentation chains mixed per image (--mixture-width)"},                        \
    {"augmix-depth", AT_OPTION_INT, -1, 10, NULL, "-1",                                        \
     "AugMix: operations per chain, -1 for 1..3 at random (--mixture-depth)"},                \
    {"augmix-alpha", AT_OPTION_FLOAT, 0.01, 100, NULL, "1",                                    \
     "AugMix: Dirichlet(alpha) chain weights, Beta(alpha, alpha) blend with the image"}
/* With the AugMix options at index `first` of the method's table: checks them and fills o. */
int at_augmix_setup(const at_method_ctx *c, int first, at_augmix_options *o, at_error *err);
/* AugMix of each of the batch's images into out [n, image]; row i draws from ctx->rng (or
 * ctx->rng_unscored past b->scored). scratch holds 2 images. */
void at_augmix_batch(at_method_ctx *c, const at_batch *b, const at_augmix_options *o, float *out,
                     float *scratch);

/* The buffers of a method that puts several views of each batch (clean, AugMix, ...) through
 * one pass of views x batch rows (augmix.c, augrmixat.c), as its c->state. */
typedef struct at_augmix_views {
    at_augmix_options aug;
    float *x;       /* [views batch, image] */
    float *dlogits; /* [views batch, classes] */
    float *scratch; /* [2 image], for at_augmix_batch */
} at_augmix_views;
/* Checks the AugMix options at `first` (at_augmix_setup), makes the buffers c->state, and for
 * more than one view remakes c->train for views x batch rows. */
int at_augmix_views_setup(at_method_ctx *c, int first, int views, at_error *err);

/* AugRmixAT's random mixing of one example (augrmixat.c): lambda ~ Beta(alpha, alpha); out is
 * lambda x_aug + (1 - lambda) x_adv, or with `mask` x_aug with x_adv in a CutMix box of area
 * share about 1 - lambda; then, for eps >= 0, projected onto the `norm` ball of radius eps
 * around x and onto [0,1]. */
void at_rmix_example(const float *x, const float *x_aug, const float *x_adv, float *out, int c,
                     int h, int w, bool mask, double alpha, at_norm norm, float eps, at_rng *rng);

/* AugMix's Jensen-Shannon consistency (jsd.c) of the m distributions softmax(logits[j]) (each
 * [n, k], m <= AT_JSD_MAX): (1/total) sum_i w_i (1/m) sum_j KL(p_ij || M_i), M the clamped
 * mixture, the n rows part of a batch of total (>= n; NAN otherwise).
 * Gradients w.r.t. each logits[j] into dlogits[j] (when dlogits and dlogits[j] are not NULL),
 * the per-example divergences into per_example (when not NULL). NAN for bad sizes. */
enum { AT_JSD_MAX = 8 };
double at_loss_jsd(const float *const *logits, int m, int n, int total, int k,
                   const float *weights, float *per_example, float *const *dlogits);

/* Checks the eps schedule options; fills the curriculum's stages and the adaptive rate. */
int at_eps_schedule_check(const at_train_config *c, at_error *err);
/* The budget of optimiser step `step` (warm-up, curriculum stage, or a stochastic draw from
 * rng); adaptive budgets are per example (batch.c), around eps. */
float at_eps_now(const at_train_config *c, long step, long iters_per_epoch, at_rng *rng);

/* The rows of a batch of n left unperturbed when a share `part` of it is perturbed: the first
 * int((1 - part) n), as Kireev et al.'s code (`batch_part`) counts them. */
static inline int at_clean_rows(int n, double part) { return (int)((1.0 - part) * n + 1e-9); }

/* RLAT's perturbation points (rlat.c): the input (node 0), the first convolution and the last
 * block end at each spatial resolution; fills at most cap node indices, returns how many. */
enum { AT_RLAT_MAX_POINTS = 8 };
int at_rlat_points(const at_model *m, int *nodes, int cap);

/* Softmax of each row. */
void at_softmax_rows(const float *logits, int n, int k, float *probs);

/* Adversarial weight perturbation (Wu, Xia and Wang, NeurIPS 2020): a proxy copy of the model
 * takes one ascent step on the method's loss; each weight tensor of >= 2 dimensions then moves
 * by gamma * ||w_l|| along the proxy's change (normalised), the training step runs at the
 * perturbed weights, and the perturbation is removed after the optimiser step. */
/* AWP's options in the table of a method that offers it, with that method's presets. */
#define AT_AWP_OPTIONS(gamma, warmup)                                                          \
    {"awp", AT_OPTION_FLAG, 0, 1, NULL, "false",                                               \
     "adversarial weight perturbation (Wu et al., 2020)"},                                    \
    {"awp-gamma", AT_OPTION_FLOAT, 0, 1, NULL, gamma,                                          \
     "AWP: size of the weight perturbation relative to each layer's norm (with --awp)"},       \
    {"awp-warmup", AT_OPTION_INT, 0, 100000, NULL, warmup,                                     \
     "AWP: first epoch with weight perturbation (with --awp); the preset also waits for an "    \
     "epoch above chance"}
/* With the AWP options at index `first` of the method's table: checks they are used together
 * and creates ctx->awp when AWP is on; the proxy steps at proxy_lr. */
int at_awp_setup(at_method_ctx *ctx, int first, float proxy_lr, at_error *err);
/* AWP is on at this epoch: ctx->awp exists and its warm-up has passed; with the preset warm-up
 * (no --awp-warmup given), also the last epoch was above chance in accuracy and loss. */
bool at_awp_now(const at_method_ctx *ctx, int first);

int at_awp_create(at_awp **out, at_model *model, int batch, float gamma, float proxy_lr,
                  at_error *err);
void at_awp_free(at_awp *awp);
/* The proxy (a copy of the model's current weights, gradients zeroed) and its two passes, for
 * the method to compute its loss gradient on. */
at_model *at_awp_proxy(at_awp *awp);
at_pass *at_awp_pass(at_awp *awp, int which);
int at_awp_begin(at_awp *awp, at_model *model);
/* Ascent step on the proxy (its gradients hold d loss / d w), then w += gamma v. */
void at_awp_perturb(at_awp *awp, at_model *model);
void at_awp_restore(at_awp *awp, at_model *model);
bool at_awp_active(const at_awp *awp);

/* Auxiliary networks (aux_net.c): a small model a method builds in code and trains beside the
 * classifier (FGSM-SDI's generator, InfoAT's critic), with its own optimiser and pass. The
 * trainer saves it in the run's checkpoint under "<role>.*" (every tensor, its optimiser's
 * buffers "<role>.optimizer.<state>.<name>" and step count), restores it on resume and frees it.
 * at_method_add_aux takes the finished model (freed on failure too), gives it a pass for batches
 * of up to max_batch and registers the network in ctx->aux. */
int at_method_add_aux(at_method_ctx *ctx, const char *role, at_model *model,
                      const at_optimizer_options *options, int max_batch, at_aux_net **out,
                      at_error *err);
int at_aux_net_create(at_aux_net **out, const char *role, at_model *model,
                      const at_optimizer_options *options, int max_batch, at_error *err);
void at_aux_net_free(at_aux_net *a);
at_model *at_aux_net_model(const at_aux_net *a);
at_pass *at_aux_net_pass(const at_aux_net *a);
/* One optimiser step on the gradients the method accumulated, then zeroes them. */
void at_aux_net_step(at_aux_net *a, float lr);
/* The checkpoint tensors (valid until the next step), at most cap; and how many there are. */
int at_aux_net_state(at_aux_net *a, at_st_tensor *out, int cap);
int at_aux_net_state_count(const at_aux_net *a);
/* Every tensor of the list must be in st with its dtype and shape, finite; nothing changes
 * otherwise. */
int at_aux_net_restore(at_aux_net *a, const at_safetensors *st, at_error *err);

/* FGSM-SDI's generator (fgsm_sdi.c) for images of channels x height x width: input the image and
 * the sign of its input gradient (2 x channels), output tanh in [-1, 1] per pixel; `width`
 * feature maps; with zero_last the last convolution starts at 0 (the generator outputs 0). */
int at_sdi_generator(at_model **out, int channels, int height, int width, int features,
                     bool zero_last, uint64_t seed, at_error *err);

/* AdA's weight-space adversary (ada.c) on an autoencoder c with fixed weights phi: a
 * perturbation delta of every parameter tensor (a "layer"), ||delta_l|| <= nu ||phi_l||, and
 * augmented images c_{phi+delta}(x). at_ada_create takes the model (freed on failure too) and
 * plans a pass for batches of up to max_batch. */
typedef struct at_ada at_ada;
int at_ada_create(at_ada **out, at_model *autoencoder, int max_batch, at_error *err);
void at_ada_free(at_ada *a);
at_model *at_ada_autoencoder(const at_ada *a); /* holds phi between calls */
float *at_ada_delta(at_ada *a, size_t *count); /* laid out like at_model_params */
int at_ada_layers(const at_ada *a);
/* Layer l: its place in the slab and ||phi_l||. */
void at_ada_layer(const at_ada *a, int l, size_t *first, size_t *size, double *norm);
/* delta uniformly at random in every layer's ball of radius nu ||phi_l|| (then projected). */
void at_ada_init(at_ada *a, double nu, at_rng *rng);
/* delta_l <- delta_l min(1, nu ||phi_l|| / ||delta_l||) for every layer. */
void at_ada_project(at_ada *a, double nu);
/* x_hat = c_{phi+delta}(x) for n images. */
int at_ada_augment(at_ada *a, const float *x, int n, float *x_hat);
/* At the current delta: x_hat, the loss CE(f(x_hat), target) of the classifier's pass (batch
 * norm in `mode`; dlogits [n, classes] is scratch), and its gradient with respect to delta in
 * the autoencoder's gradient slab (at_model_grads, zeroed first). */
int at_ada_gradient(at_ada *a, at_pass *classifier, at_bn_mode mode, const float *x,
                    const at_ce_target *target, int n, float *x_hat, float *dlogits,
                    double *loss);
/* One ascent step from that gradient: delta_l += step nu ||phi_l|| g_l / ||g_l||, projected. */
void at_ada_ascend(at_ada *a, double nu, double step);
/* The whole attack: at_ada_init, `steps` gradient and ascent steps, then x_hat at the final
 * delta (which stays in a). */
int at_ada_attack(at_ada *a, at_pass *classifier, at_bn_mode mode, const float *x,
                  const at_ce_target *target, int n, double nu, int steps, double step,
                  at_rng *rng, float *x_hat, float *dlogits);

#endif
