/* fixtures.h: small pieces the attack tests share: a model by name with a given input shape,
 * reproducible random images, the model's own predictions as labels, and threat-model norms. */
#ifndef AT_TEST_FIXTURES_H
#define AT_TEST_FIXTURES_H

#include "advtrain.h"

/* NULL (with the reason on stderr) when the model cannot be created. */
at_model *fixture_model(const char *arch, int c, int hw, int classes, uint64_t seed);
/* count values uniform in [lo, hi), from `seed`. */
void fixture_images(float *x, size_t count, uint64_t seed, float lo, float hi);
/* y = the model's arg-max at x (eval mode), so every point starts correctly classified. */
void fixture_predict(at_model *m, const float *x, int n, int32_t *y);
/* The largest perturbation a test accepts: eps + 1e-6 for Linf, eps (1 + 1e-5) otherwise. */
double fixture_budget(at_norm norm, float eps);
/* ||a - b|| in the norm, in double. */
double fixture_distance(at_norm norm, const float *a, const float *b, size_t image);

#endif
