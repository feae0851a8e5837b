/* lr_schedule.c: learning rate as a function of the iteration.
 *   piecewise: base * gamma^(milestones passed), milestones in epochs (Madry et al.; Rice et al.
 *              drop by 10x at epochs 100 and 150 of 200);
 *   cosine:    linear warm-up from 0 over warmup_epochs, then base * (1 + cos(pi t)) / 2 with t
 *              the fraction of the remaining iterations done (Loshchilov and Hutter, SGDR);
 *   cyclic:    one cycle, linear 0 -> base at `peak` of the run -> 0, evaluated after the step
 *              as in Wong et al.'s fast adversarial training code (np.interp at iteration + 1).
 */
#include "advtrain.h"

#include <math.h>

const char *at_lr_kind_name(at_lr_kind kind)
{
    switch (kind) {
    case AT_LR_CONSTANT: return "constant";
    case AT_LR_PIECEWISE: return "piecewise";
    case AT_LR_COSINE: return "cosine";
    case AT_LR_CYCLIC: return "cyclic";
    }
    return "unknown";
}

float at_lr_at(const at_lr_schedule *s, long iter, long iters_per_epoch, int epochs)
{
    const double total = (double)iters_per_epoch * epochs;
    switch (s->kind) {
    case AT_LR_CONSTANT:
        return s->base;
    case AT_LR_PIECEWISE: {
        double epoch = (double)iter / iters_per_epoch;
        double gamma = s->gamma > 0.0f ? s->gamma : 0.1;
        double lr = s->base;
        for (int i = 0; i < s->n_milestones; i++)
            if (epoch >= s->milestones[i])
                lr *= gamma;
        return (float)lr;
    }
    case AT_LR_COSINE: {
        double warm = (double)s->warmup_epochs * iters_per_epoch;
        if (iter < warm)
            return (float)(s->base * (iter + 1) / warm);
        double t = total > warm ? (iter - warm) / (total - warm) : 1.0;
        return (float)(s->base * 0.5 * (1.0 + cos(3.14159265358979323846 * t)));
    }
    case AT_LR_CYCLIC: {
        double peak = (s->peak > 0.0f && s->peak < 1.0f ? s->peak : 0.5) * total;
        double t = (double)iter + 1.0;
        double lr = t <= peak ? s->base * t / peak : s->base * (total - t) / (total - peak);
        return (float)(lr > 0.0 ? lr : 0.0);
    }
    }
    return s->base;
}
