/* cutmix.c: CutMix (Yun et al., "CutMix: Regularization Strategy to Train Strong Classifiers with
 * Localizable Features", ICCV 2019, eq. 1-2), as in the authors' code and in Rebuffi et al.'s
 * adversarial training pipeline (one lambda and one box per (sub-)batch): lambda ~ Beta(alpha,
 * alpha), a box of side sqrt(1 - lambda) times each dimension centred uniformly and clipped at
 * the borders, a random pairing of the rows, each row's box replaced by its partner's, and the
 * targets mixed by the areas actually kept. */
#include "train/batch.h"

#include <math.h>
#include <string.h>

void at_cutmix(float *x, float *soft, int32_t *y, int n, int k, int c, int h, int w, float alpha,
               at_rng *rng, float *scratch, int32_t *iscratch)
{
    if (n < 1)
        return;
    const double lambda = alpha > 0.0f ? at_rng_beta(rng, alpha, alpha) : 1.0;
    const double cut = sqrt(1.0 - lambda);
    const int cut_h = (int)(h * cut), cut_w = (int)(w * cut);
    const int cy = (int)at_rng_below(rng, (uint32_t)h), cx = (int)at_rng_below(rng, (uint32_t)w);
    const int y0 = cy - cut_h / 2 < 0 ? 0 : cy - cut_h / 2, y1 = cy + cut_h / 2 > h ? h : cy + cut_h / 2;
    const int x0 = cx - cut_w / 2 < 0 ? 0 : cx - cut_w / 2, x1 = cx + cut_w / 2 > w ? w : cx + cut_w / 2;
    int32_t *partner = iscratch, *labels = iscratch + n;
    for (int i = 0; i < n; i++)
        partner[i] = i;
    at_rng_shuffle(rng, partner, (size_t)n);
    /* the share of each image outside the box, which keeps its own label */
    const float kept = (float)(1.0 - (double)(y1 - y0) * (x1 - x0) / ((double)h * w));
    const size_t image = (size_t)c * h * w;
    float *images = scratch, *targets = scratch + (size_t)n * image;
    memcpy(images, x, (size_t)n * image * sizeof(float));
    memcpy(targets, soft, (size_t)n * k * sizeof(float));
    memcpy(labels, y, (size_t)n * sizeof(int32_t));
    for (int i = 0; i < n; i++) {
        const float *from = images + (size_t)partner[i] * image;
        float *to = x + (size_t)i * image;
        for (int ch = 0; ch < c; ch++)
            for (int r = y0; r < y1; r++)
                memcpy(to + ((size_t)ch * h + r) * w + x0, from + ((size_t)ch * h + r) * w + x0,
                       (size_t)(x1 - x0) * sizeof(float));
        const float *ti = targets + (size_t)i * k, *tp = targets + (size_t)partner[i] * k;
        for (int j = 0; j < k; j++)
            soft[(size_t)i * k + j] = kept * ti[j] + (1.0f - kept) * tp[j];
        y[i] = kept >= 0.5f ? labels[i] : labels[partner[i]];
    }
}
