/* fgsm.c: the fast gradient sign method (Goodfellow, Shlens and Szegedy, "Explaining and
 * Harnessing Adversarial Examples", ICLR 2015): one step of size eps along the ascent direction of
 * the loss at x (sign for Linf, the normalised gradient for L2), then projection to [0,1]. */
#include "attack/attack.h"

#include <string.h>

static size_t fgsm_workspace(const at_attack *a, size_t image) { return image; }

static int fgsm_run(at_attack *a, const float *x, const int32_t *y, const int32_t *target, int n,
                    float *x_adv)
{
    const at_attack_options *o = &a->o;
    float *dir = a->work;
    int status = at_attack_evaluate(a, x, x, y, target, n, o->loss, o->targeted, true);
    if (status)
        return status;
    at_attack_record_loss(a, 0, n);
    at_attack_direction(o->norm, a->grad, dir, n, a->image);
    for (int i = 0; i < n; i++) {
        const float eps = a->eps_each ? a->eps_each[i] : o->eps;
        for (size_t j = (size_t)i * a->image; j < (size_t)(i + 1) * a->image; j++)
            x_adv[j] = x[j] + eps * dir[j];
    }
    at_attack_project(o->norm, o->eps, a->eps_each, x, x_adv, n, a->image, a->scratch);
    status = at_attack_evaluate(a, x, x_adv, y, target, n, o->loss, o->targeted, false);
    if (status)
        return status;
    at_attack_record_loss(a, 1, n);
    return AT_OK;
}

const at_attack_ops at_attack_fgsm = {
    .name = "fgsm",
    .description = "fast gradient sign method: one step of size eps (Goodfellow et al., 2015)",
    .default_loss = AT_ATTACK_LOSS_CE,
    .default_steps = 1,
    .min_classes = 2,
    .supports_l1 = true,
    .workspace = fgsm_workspace,
    .run = fgsm_run,
};
