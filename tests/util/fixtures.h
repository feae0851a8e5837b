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
/* A standard-trained SmallCNN: `epochs` of SGD (momentum 0.9, weight decay 5e-4, cosine from
 * 0.05) at `batch_size` on the first n_train Fashion-MNIST training images of the package's
 * directory, seeded by `seed`; and the first n_test test images in *test. NULL (with the reason
 * on stderr) when the data or the training fail. */
at_model *fixture_fashion_smallcnn(int n_train, int epochs, int batch_size, uint64_t seed,
                                   int n_test, at_dataset *test);
/* An evaluation plan of the n attacks `names` at Linf eps (their other options preset), batch
 * 100, seed 5. */
at_eval_plan fixture_linf_plan(const char *const *names, int n, float eps);
/* The largest perturbation a test accepts: eps + 1e-6 for Linf, eps (1 + 1e-5) otherwise. */
double fixture_budget(at_norm norm, float eps);
/* ||a - b|| in the norm, in double. */
double fixture_distance(at_norm norm, const float *a, const float *b, size_t image);

#endif
