/* pgd.c: projected gradient descent (Madry et al., "Towards Deep Learning Models Resistant to
 * Adversarial Attacks", ICLR 2018, eq. 2.1): from a random start in the eps-ball, `steps` ascent
 * steps of size alpha (sign of the gradient for Linf, the normalised gradient for L2, a sparse
 * step for L1), each followed by the projection onto the ball around the clean x and onto [0,1].
 * Restarts keep the worst case per example: a misclassified point first, otherwise the highest
 * loss. With early stopping an example stops moving once it is misclassified. */
#include "attack/attack.h"

#include <math.h>
#include <string.h>

/* current point, best point, direction: one image each; best score: one float */
static size_t pgd_workspace(const at_attack *a, size_t image) { return 3 * image + 1; }

static int pgd_run(at_attack *a, const float *x, const int32_t *y, const int32_t *target, int n,
                   float *x_adv)
{
    const at_attack_options *o = &a->o;
    const size_t image = a->image, count = (size_t)n * image, stride = (size_t)a->max_batch * image;
    float *cur = a->work, *best = cur + stride, *dir = best + stride, *score = dir + stride;
    for (int r = 0; r < o->restarts; r++) {
        if (o->no_random_start)
            memcpy(cur, x, count * sizeof(float));
        else
            at_attack_random_start(o->norm, o->eps, a->eps_each, x, cur, n, image, a->rngs,
                                   a->scratch);
        for (int t = 0; t < o->steps; t++) {
            int status = at_attack_evaluate(a, x, cur, y, target, n, o->loss, o->targeted, true);
            if (status)
                return status;
            at_attack_record_loss(a, t, n);
            at_attack_direction(o->norm, a->grad, dir, n, image);
            for (int i = 0; i < n; i++) {
                if (o->early_stop && at_attack_succeeded(a, i, y, target))
                    continue;
                float *ci = cur + (size_t)i * image;
                const float *di = dir + (size_t)i * image;
                const float step = a->eps_each ? o->step_size * (a->eps_each[i] / o->eps) : o->step_size;
                for (size_t j = 0; j < image; j++)
                    ci[j] += step * di[j];
            }
            at_attack_project(o->norm, o->eps, a->eps_each, x, cur, n, image, a->scratch);
        }
        int status = at_attack_evaluate(a, x, cur, y, target, n, o->loss, o->targeted, false);
        if (status)
            return status;
        at_attack_record_loss(a, o->steps, n);
        for (int i = 0; i < n; i++) {
            float s = at_attack_succeeded(a, i, y, target) ? INFINITY : a->loss[i];
            if (r == 0 || s > score[i]) {
                score[i] = s;
                memcpy(best + (size_t)i * image, cur + (size_t)i * image, image * sizeof(float));
            }
        }
    }
    memcpy(x_adv, best, count * sizeof(float));
    return AT_OK;
}

const at_attack_ops at_attack_pgd = {
    .name = "pgd",
    .description = "projected gradient descent, Linf/L2/L1, random start, restarts (Madry et al., 2018)",
    .default_loss = AT_ATTACK_LOSS_CE,
    .default_steps = 20,
    .min_classes = 2,
    .supports_l1 = true,
    .workspace = pgd_workspace,
    .run = pgd_run,
};
