/* augmix.c: AugMix training (Hendrycks et al., "AugMix: A Simple Data Processing Method to
 * Improve Robustness and Uncertainty", ICLR 2020, eq. 1 and the authors' cifar.py with --jsd):
 *   L = CE(f(x), y) + lambda JS(p(x), p(x_aug1), p(x_aug2)),   lambda = 12,
 * where x_aug1 and x_aug2 are two independent AugMix images of x (data/augmix.c; the authors apply
 * it after their crop and flip, as the trainer's augmentation comes before the method). As in
 * cifar.py the three go through the model as one concatenated batch in train mode, so batch norm
 * normalises over all 3n images and the cross-entropy is on the clean rows only. With --no-jsd
 * (cifar.py --no-jsd) the model trains on one AugMix image per example with plain CE. */
#include "train/method.h"

#include <string.h>

enum { AUGMIX, JSD_WEIGHT = AUGMIX + 4, NO_JSD };
static const at_option_info augmix_options[] = {
    AT_AUGMIX_OPTIONS,
    [JSD_WEIGHT] = {"jsd-weight", AT_OPTION_FLOAT, 0, 1e6, NULL, "12",
                    "weight lambda of the Jensen-Shannon consistency term"},
    [NO_JSD] = {"no-jsd", AT_OPTION_FLAG, 0, 1, NULL, "false",
                "train on one AugMix image per example with plain CE (cifar.py --no-jsd)"},
};

int at_augmix_setup(const at_method_ctx *c, int first, at_augmix_options *o, at_error *err)
{
    const int depth = (int)c->opt[first + 2];
    if (depth == 0)
        return at_fail(err, AT_ERR_ARG, "augmix-depth must be -1 (1..3 at random) or 1..10");
    *o = (at_augmix_options){.severity = (int)c->opt[first], .width = (int)c->opt[first + 1],
                             .depth = depth, .alpha = c->opt[first + 3]};
    return AT_OK;
}

void at_augmix_batch(at_method_ctx *c, const at_batch *b, const at_augmix_options *o, float *out,
                     float *scratch)
{
    int ch, h, w;
    at_model_input_shape(c->model, &ch, &h, &w);
    for (int i = 0; i < b->n; i++)
        at_augmix(b->x + i * c->image, out + i * c->image, scratch, NULL, ch, h, w, o,
                  i < b->scored ? c->rng : c->rng_unscored);
}

static void free_views(void *p)
{
    at_augmix_views *s = p;
    if (!s)
        return;
    at_free(s->x);
    at_free(s->dlogits);
    at_free(s->scratch);
    at_free(s);
}

int at_augmix_views_setup(at_method_ctx *c, int first, int views, at_error *err)
{
    at_augmix_views *s = at_alloc(sizeof *s);
    if (!s)
        return at_fail(err, AT_ERR_NOMEM, "out of memory");
    c->state = s;
    c->free_state = free_views;
    int status = at_augmix_setup(c, first, &s->aug, err);
    if (status)
        return status;
    const size_t rows = (size_t)views * c->batch;
    s->x = at_alloc(rows * c->image * sizeof(float));
    s->dlogits = at_alloc(rows * c->num_classes * sizeof(float));
    s->scratch = at_alloc(2 * c->image * sizeof(float));
    if (!s->x || !s->dlogits || !s->scratch)
        return at_fail(err, AT_ERR_NOMEM, "out of memory for the AugMix views' buffers");
    if (views == 1)
        return AT_OK;
    at_pass_free(c->train);
    c->train = NULL;
    return at_pass_create(&c->train, c->model, views * c->batch, 0, err);
}

static int augmix_setup(at_method_ctx *c, at_error *err)
{
    const bool jsd = c->opt[NO_JSD] == 0.0;
    if (!jsd && c->opt_given[JSD_WEIGHT])
        return at_fail(err, AT_ERR_ARG, "jsd-weight has no effect with no-jsd");
    /* with the JS term the three branches are one batch of 3n rows (cifar.py:
     * net(torch.cat(images))): clean, aug1, aug2 */
    return at_augmix_views_setup(c, AUGMIX, jsd ? 3 : 1, err);
}

static int augmix_step(at_method_ctx *c, const at_batch *b, double *loss)
{
    at_augmix_views *s = c->state;
    const int n = b->n, k = c->num_classes;
    const size_t image = (size_t)n * c->image, logits = (size_t)n * k;
    if (c->opt[NO_JSD] != 0.0) {
        at_augmix_batch(c, b, &s->aug, s->x, s->scratch);
        int status = at_forward(c->train, s->x, n, AT_BN_TRAIN);
        if (status)
            return status;
        *loss = at_method_ce(c, b, at_pass_logits(c->train), s->dlogits);
        return at_backward(c->train, s->dlogits, AT_GRAD_WEIGHTS);
    }
    memcpy(s->x, b->x, image * sizeof(float));
    at_augmix_batch(c, b, &s->aug, s->x + image, s->scratch);
    at_augmix_batch(c, b, &s->aug, s->x + 2 * image, s->scratch);
    int status = at_forward(c->train, s->x, 3 * n, AT_BN_TRAIN);
    if (status)
        return status;
    const float *z = at_pass_logits(c->train);
    /* CE on the clean rows only (cifar.py), then lambda JS over the three */
    const double ce = at_method_ce(c, b, z, s->dlogits);
    const float *const branches[3] = {z, z + logits, z + 2 * logits};
    float *const grads[3] = {c->dlogits, s->dlogits + logits, s->dlogits + 2 * logits};
    const double js = at_loss_jsd(branches, 3, n, b->total, k, b->weight, NULL, grads);
    const float lambda = (float)c->opt[JSD_WEIGHT];
    for (size_t j = 0; j < logits; j++)
        s->dlogits[j] += lambda * c->dlogits[j];
    for (size_t j = logits; j < 3 * logits; j++)
        s->dlogits[j] *= lambda;
    *loss = ce + lambda * js;
    return at_backward(c->train, s->dlogits, AT_GRAD_WEIGHTS);
}

const at_method at_method_augmix = {
    .name = "augmix",
    .description = "AugMix: CE(x) + lambda JS(x, aug1, aug2) on AugMix images (Hendrycks et al., "
                   "2020)",
    .options = augmix_options,
    .n_options = AT_OPTION_LEN(augmix_options),
    .setup = augmix_setup,
    .step = augmix_step,
};
