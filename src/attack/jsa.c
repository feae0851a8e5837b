/* jsa.c: the joint-space attack of IJSAT (Lau, Liu, Souri, Lin, Feizi and Chellappa,
 * "Interpolated Joint Space Adversarial Training for Robust and Generalizable Defenses", IEEE
 * TPAMI 2023, arXiv 2112.06323), a reconstruction: the paper's exact step rule, start and step
 * sizes were not available. With an invertible flow F (o.flow) and z = F(x):
 *   x_adv = clamp(F^-1(z + dz) + dx, 0, 1),  ||dz||_inf <= eps_z,  ||dx||_inf <= eps,
 * `steps` signed ascent steps on both (alpha_x = step_size, alpha_z = step_size_z; 2.5 eps /
 * steps each by default), from uniform starts in both boxes (or zero with no_random_start); the
 * latent gradient is J_{F^-1}(z + dz)^T g, g the input gradient, by the flow's inverse backward
 * pass (no weight gradients). The clamp is passed straight through (the gradient of x_adv is
 * used for dx and for the flow's output alike) so that a pixel at 0 or 1 can still move.
 * Restarts keep the worst case per example as PGD does. Budgets scale per example with
 * eps_each[i] / eps (the trainer's warm-up). */
#include "attack/attack.h"

#include <math.h>
#include <string.h>

/* z0, dz, dx, current point, best point, latent gradient: one image each; best score: one */
static size_t jsa_workspace(const at_attack *a, size_t image) { return 6 * image + 1; }

static float clamp01(float v) { return v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v; }

static void uniform(at_rng *rng, float *v, size_t n, float r)
{
    for (size_t j = 0; j < n; j++)
        v[j] = r * (float)(2.0 * at_rng_uniform(rng) - 1.0);
}

static int decode(at_attack *a, const float *z0, const float *dz, const float *dx, float *cur,
                  float *zbuf, int n)
{
    const size_t count = (size_t)n * a->image;
    for (size_t j = 0; j < count; j++)
        zbuf[j] = z0[j] + dz[j];
    int status = at_flow_inverse(a->o.flow, zbuf, n, cur);
    if (status)
        return status;
    for (size_t j = 0; j < count; j++)
        cur[j] = clamp01(cur[j] + dx[j]);
    return AT_OK;
}

static void step(float *d, const float *g, size_t n, float alpha, float radius)
{
    for (size_t j = 0; j < n; j++) {
        const float v = d[j] + alpha * (float)((g[j] > 0.0f) - (g[j] < 0.0f));
        d[j] = v > radius ? radius : v < -radius ? -radius : v;
    }
}

static int jsa_run(at_attack *a, const float *x, const int32_t *y, const int32_t *target, int n,
                   float *x_adv)
{
    const at_attack_options *o = &a->o;
    const size_t image = a->image, count = (size_t)n * image, stride = (size_t)a->max_batch * image;
    float *z0 = a->work, *dz = z0 + stride, *dx = dz + stride, *cur = dx + stride;
    float *best = cur + stride, *gz = best + stride, *score = gz + stride;
    /* the best perturbations' norms are kept in the score's neighbours: dx and dz of the best */
    int status = at_flow_forward(o->flow, x, n, z0, NULL);
    if (!status)
        status = at_flow_inverse(o->flow, z0, n, cur);
    if (status)
        return status;
    for (size_t j = 0; j < count; j++) {
        const double e = fabs((double)cur[j] - x[j]);
        a->stats.max_reconstruction = e > a->stats.max_reconstruction ? e : a->stats.max_reconstruction;
    }
    const float alpha_x = o->step_size, alpha_z = o->step_size_z;
    double *best_dz = at_alloc((size_t)n * 2 * sizeof(double)), *best_dx = best_dz + n;
    if (!best_dz)
        return AT_ERR_NOMEM;
    for (int r = 0; r < o->restarts; r++) {
        for (int i = 0; i < n; i++) {
            const float f = a->eps_each ? a->eps_each[i] / o->eps : 1.0f;
            if (o->no_random_start) {
                memset(dz + (size_t)i * image, 0, image * sizeof(float));
                memset(dx + (size_t)i * image, 0, image * sizeof(float));
            } else {
                uniform(&a->rngs[i], dz + (size_t)i * image, image, o->eps_z * f);
                uniform(&a->rngs[i], dx + (size_t)i * image, image, o->eps * f);
            }
        }
        for (int t = 0; t <= o->steps; t++) {
            if ((status = decode(a, z0, dz, dx, cur, gz, n)))
                break;
            const bool last = t == o->steps;
            if ((status = at_attack_evaluate(a, x, cur, y, target, n, o->loss, o->targeted, !last)))
                break;
            at_attack_record_loss(a, t, n);
            if (last)
                break;
            if ((status = at_flow_inverse_backward(o->flow, a->grad, gz)))
                break;
            for (int i = 0; i < n; i++) {
                const float f = a->eps_each ? a->eps_each[i] / o->eps : 1.0f;
                step(dx + (size_t)i * image, a->grad + (size_t)i * image, image, alpha_x * f,
                     o->eps * f);
                step(dz + (size_t)i * image, gz + (size_t)i * image, image, alpha_z * f,
                     o->eps_z * f);
            }
        }
        if (status)
            break;
        for (int i = 0; i < n; i++) {
            const float *zi = a->logits + (size_t)i * a->classes;
            int top = 0;
            for (int j = 1; j < a->classes; j++)
                top = zi[j] > zi[top] ? j : top;
            const bool fooled = o->targeted ? top == target[i] : top != y[i];
            const float s = fooled ? INFINITY : a->loss[i];
            if (r == 0 || s > score[i]) {
                score[i] = s;
                memcpy(best + (size_t)i * image, cur + (size_t)i * image, image * sizeof(float));
                double mz = 0.0, mx = 0.0;
                for (size_t j = 0; j < image; j++) {
                    mz = fmax(mz, fabs((double)dz[(size_t)i * image + j]));
                    mx = fmax(mx, fabs((double)dx[(size_t)i * image + j]));
                }
                best_dz[i] = mz, best_dx[i] = mx;
            }
        }
    }
    if (!status) {
        memcpy(x_adv, best, count * sizeof(float));
        for (int i = 0; i < n; i++) {
            a->stats.max_latent_linf = fmax(a->stats.max_latent_linf, best_dz[i]);
            a->stats.max_pixel_linf = fmax(a->stats.max_pixel_linf, best_dx[i]);
        }
    }
    at_free(best_dz);
    return status;
}

const at_attack_ops at_attack_jsa = {
    .name = "jsa",
    .description = "joint-space attack: signed steps on a latent (decoded by a flow's inverse) "
                   "and a pixel perturbation, Linf (IJSAT, Lau et al., 2023; reconstruction)",
    .default_loss = AT_ATTACK_LOSS_CE,
    .default_steps = 20,
    .min_classes = 2,
    .needs_flow = true,
    .workspace = jsa_workspace,
    .run = jsa_run,
};
