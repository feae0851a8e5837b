/* feature_loss.c: losses on the output of a hidden node rather than on the logits: the Gram-matrix
 * (style) distance and the squared feature (content) distance. A method computes them on
 * at_pass_activation(pass, node) and adds their gradient into at_pass_grad(pass, node) between
 * at_backward_begin and at_backward_run, so the gradient enters the network at that node.
 *
 * The Gram matrix of one example's feature map A (C channels x HW positions) is
 *   G(A) = A A^T / HW                                  (Gatys et al., CVPR 2016, eq. 3, normalised
 *                                                       by the map size as in Naseer et al. 2020)
 * and the style distance to a target Gram matrix T is l = ||G(A) - T||_F^2. With D = G(A) - T,
 * dl/dA = (2 / HW) (D + D^T) A (= (4 / HW) D A when T is itself a Gram matrix, hence symmetric).
 * The content distance is l = ||A - B||^2, dl/dA = 2 (A - B).
 * Both average l over the batch (or the whole batch of a shard, loss.h), like the losses on
 * logits. */
#include "core/util.h"
#include "kernels/kernels.h"
#include "train/loss.h"

#include <math.h>

int at_gram_matrices(const float *features, int n, int channels, int positions, float *gram)
{
    if (n < 1 || channels < 1 || positions < 1)
        return AT_ERR_ARG;
    const size_t map = (size_t)channels * positions, square = (size_t)channels * channels;
    /* Each example is independent and its product runs on one thread, so the result does not
     * depend on the number of threads. */
#pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++) {
        const float *a = features + (size_t)i * map;
        at_gemm(false, true, channels, channels, positions, 1.0f / (float)positions, a, positions,
                a, positions, 0.0f, gram + (size_t)i * square, channels);
    }
    return AT_OK;
}

int at_loss_gram(const float *features, const float *target_gram, int n, int channels,
                 int positions, float weight, float *loss, float *per_example, float *grad,
                 at_error *err)
{
    return at_loss_gram_shard(features, target_gram, n, n, channels, positions, weight, loss,
                              per_example, grad, err);
}

int at_loss_gram_shard(const float *features, const float *target_gram, int n, int rows,
                       int channels, int positions, float weight, float *loss, float *per_example,
                       float *grad, at_error *err)
{
    if (n < 1 || channels < 1 || positions < 1)
        return at_fail(err, AT_ERR_ARG, "Gram loss: empty feature map (n %d, %d x %d)", n,
                       channels, positions);
    if (rows < n)
        return at_fail(err, AT_ERR_ARG, "Gram loss: %d rows of a batch of %d", n, rows);
    const size_t map = (size_t)channels * positions, square = (size_t)channels * channels;
    float *difference = at_alloc((size_t)n * square * sizeof(float));
    double *losses = at_alloc((size_t)n * sizeof(double));
    if (!difference || !losses) {
        at_free(difference);
        at_free(losses);
        return at_fail(err, AT_ERR_NOMEM, "out of memory for %d Gram matrices of %d x %d", n,
                       channels, channels);
    }
    at_gram_matrices(features, n, channels, positions, difference);
    /* the gradient of the batch mean, times the caller's weight */
    const float grad_scale = weight * 4.0f / ((float)positions * (float)rows);
#pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++) {
        float *d = difference + (size_t)i * square;
        const float *t = target_gram + (size_t)i * square;
        double sum = 0.0;
        for (size_t j = 0; j < square; j++) {
            d[j] -= t[j];
            sum += (double)d[j] * d[j];
        }
        losses[i] = sum;
        for (int r = 0; r < channels; r++) /* D <- (D + D^T) / 2 */
            for (int c = r + 1; c < channels; c++) {
                float mean = 0.5f * (d[r * channels + c] + d[c * channels + r]);
                d[r * channels + c] = d[c * channels + r] = mean;
            }
        if (grad)
            at_gemm(false, false, channels, positions, channels, grad_scale, d, channels,
                    features + (size_t)i * map, positions, 1.0f, grad + (size_t)i * map,
                    positions);
    }
    double total = 0.0;
    for (int i = 0; i < n; i++) {
        total += losses[i];
        if (per_example)
            per_example[i] = (float)losses[i];
    }
    *loss = (float)(total / rows);
    at_free(difference);
    at_free(losses);
    return AT_OK;
}

float at_loss_feature_distance(const float *features, const float *target, int n,
                               size_t per_example_size, float weight, float *per_example,
                               float *grad)
{
    return at_loss_feature_distance_shard(features, target, n, n, per_example_size, weight,
                                          per_example, grad);
}

float at_loss_feature_distance_shard(const float *features, const float *target, int n, int rows,
                                     size_t per_example_size, float weight, float *per_example,
                                     float *grad)
{
    if (n < 1 || rows < n)
        return NAN;
    const float grad_scale = 2.0f * weight / (float)rows;
    double total = 0.0;
    for (int i = 0; i < n; i++) {
        const size_t first = (size_t)i * per_example_size;
        double sum = 0.0;
        for (size_t j = first; j < first + per_example_size; j++) {
            const float d = features[j] - target[j];
            sum += (double)d * d;
            if (grad)
                grad[j] += grad_scale * d;
        }
        if (per_example)
            per_example[i] = (float)sum;
        total += sum;
    }
    return (float)(total / rows);
}
