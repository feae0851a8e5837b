/* coreset.h: the selection step of adversarial coreset training (Dolatabadi, Erfani and Leckie,
 * "l-inf Robustness and Beyond: Unleashing Efficient Adversarial Training", ECCV 2022, arXiv
 * 2112.00378): every R epochs the trainer crafts adversarial examples for the whole
 * training set, runs them forward, and hands over for each point its softmax output p_i, label
 * y_i and penultimate embedding h_i (the input of the last linear layer). The last-layer gradient
 * of the cross-entropy at point i is then, in closed form,
 *   g_i = [ e_i ; e_i (outer) h_i ],  e_i = p_i - onehot(y_i)      (bias part, weight part),
 * and CRAIG (Mirzasoleiman, Bilmes and Leskovec, "Coresets for Data-efficient Training of
 * Machine Learning Models", ICML 2020) chooses a weighted subset S whose weighted gradient sum
 * approximates the full one: greedy maximisation of the facility-location function
 *   F(S) = sum_i max_{j in S} (d_max - ||g_i - g_j||)
 * (d_max, the largest distance, keeps every similarity >= 0), with weights gamma_j = the number
 * of points whose nearest selected point is j. The points of each class compete only among
 * themselves (d_max is the class's), as CRAIG does for classification. */
#ifndef AT_CORESET_H
#define AT_CORESET_H

#include "core/util.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct at_coreset_input {
    int n, classes, embed;       /* N points, K classes, H embedding size */
    const float *probs;          /* [n, classes]: softmax outputs at the adversarial points */
    const int32_t *labels;       /* [n], each in [0, classes) */
    const float *embeddings;     /* [n, embed]; unread (may be NULL) when bias_only */
    bool bias_only;              /* g_i = e_i alone: the cheaper proxy of some implementations */
} at_coreset_input;

/* Selects max(round(fraction * n), the number of classes present) points (fraction in (0, 1]):
 * writes their indices, ascending, into selected[] and their weights (cluster sizes: each >= 1,
 * summing to n, exact below 2^24) into weights[], both with room for n entries; returns the
 * count, or a negative status with a one-line message in err. Class c gets a budget
 * proportional to its size (see at_coreset_budgets). Memory: the distance matrix of the largest
 * class, 4 n_c^2 bytes. The result is bit-identical whatever the number of OpenMP threads. */
int at_coreset_select(const at_coreset_input *in, double fraction, int32_t *selected,
                      float *weights, at_error *err);

/* The parts, exposed for the tests. */

/* Splits `total` (at least the number of non-empty classes, at most their sum) into budgets
 * proportional to the class sizes by largest remainders (ties to the lower class), then gives
 * every non-empty class at least 1, taken one at a time from the class most above its quota. */
void at_coreset_budgets(const int *sizes, int classes, int total, int *budgets);

/* The symmetric matrix d[n, n] of the gradient distances ||g_i - g_j|| of n points with errors
 * e[n, classes] and embeddings h[n, embed] (h NULL: the bias part alone), without forming the
 * gradients, and the largest of them in *d_max. AT_OK, or AT_ERR_NOMEM. Bit-identical whatever
 * the number of threads. */
int at_coreset_distances(const float *e, const float *h, int n, int classes, int embed, float *d,
                         float *d_max);

/* The marginal gain of adding j to S, sum_i max(0, m_i - d_ij), where row = d[j] and m_i =
 * min(d_max, min_{k in S} d_ik): F's gain with similarities d_max - d, in the arithmetic the
 * greedy uses (a fixed summation order). */
double at_coreset_gain(const float *row, const float *m, int n);

/* Lazy greedy (Minoux 1978) maximisation of F over the n points of d, `budget` steps; writes
 * the chosen points in the order chosen into order[budget] and, for every point, its nearest
 * chosen point into assign[n] (ties to the lower index; a chosen point is its own). Chooses
 * exactly what plain greedy (argmax of at_coreset_gain, ties to the lower index) chooses.
 * AT_OK, or AT_ERR_NOMEM. */
int at_coreset_greedy(const float *d, int n, float d_max, int budget, int32_t *order,
                      int32_t *assign);

/* The trainer's side (coreset_epochs.c). */

/* What an epoch does under the warm start and the selection period. */
typedef enum at_coreset_phase {
    AT_CORESET_FULL,   /* train on the whole set (no coreset, or a warm-up epoch) */
    AT_CORESET_SKIP,   /* the warm start's gap: no training, the clock runs */
    AT_CORESET_SELECT, /* choose a coreset, then train on it */
    AT_CORESET_TRAIN   /* train on the coreset chosen last */
} at_coreset_phase;

int at_coreset_check(const at_train_config *c, at_error *err);
/* Fills the period, start and warm-up left to their presets. */
void at_coreset_defaults(at_train_config *c);
at_coreset_phase at_coreset_phase_of(const at_train_config *c, int epoch);
/* PGD points for the whole training set with the model as it is, their softmax outputs and
 * embeddings, and the selection: indices ascending into selected[] and their weights into
 * weights[] (both with room for train->n), their number into *count. */
int at_coreset_choose(at_model *model, const at_dataset *train, const at_train_config *c,
                      int epoch, int32_t *selected, float *weights, int *count, at_error *err);

#endif
