/* attack_loss.c: the losses gradient attacks ascend, per example, with their gradient w.r.t. the
 * logits.
 *   CE        -log softmax(z)_y                (targeted: log softmax(z)_t, i.e. -CE to t)
 *   CW        max_{i!=y} z_i - z_y             (targeted: z_t - max_{i!=t} z_i)
 *             (Carlini and Wagner, 2017, the margin f_6 without its confidence clamp)
 *   DLR       -(z_y - max_{i!=y} z_i) / (z_p1 - z_p3 + 1e-12)
 *   DLR-T     -(z_y - z_t) / (z_p1 - (z_p3 + z_p4)/2 + 1e-12)
 *             (Croce and Hein, ICML 2020, eq. 5 and 7; z_p1 >= z_p2 >= ... are the sorted logits)
 * DLR is invariant to shifting and scaling the logits, which defeats logit-scale masking. */
#include "attack/attack.h"

#include <math.h>

/* Indices of the four largest logits (ties: the lower index first). */
static void top4(const float *z, int k, int idx[4])
{
    for (int r = 0; r < 4; r++)
        idx[r] = -1;
    for (int j = 0; j < k; j++) {
        int pos = 4;
        while (pos > 0 && (idx[pos - 1] < 0 || z[j] > z[idx[pos - 1]]))
            pos--;
        if (pos >= 4)
            continue;
        for (int r = 3; r > pos; r--)
            idx[r] = idx[r - 1];
        idx[pos] = j;
    }
}

/* Largest logit other than `skip`. */
static int argmax_except(const float *z, int k, int skip)
{
    int best = -1;
    for (int j = 0; j < k; j++)
        if (j != skip && (best < 0 || z[j] > z[best]))
            best = j;
    return best;
}

static void ce(const float *z, int k, int label, bool targeted, float *loss, float *d)
{
    double max = z[0], sum = 0.0;
    for (int j = 1; j < k; j++)
        max = z[j] > max ? z[j] : max;
    for (int j = 0; j < k; j++)
        sum += exp(z[j] - max);
    double log_p = z[label] - max - log(sum);
    double sign = targeted ? 1.0 : -1.0; /* untargeted ascends -log p_y, targeted log p_t */
    *loss = (float)(sign * log_p);
    for (int j = 0; j < k; j++) {
        double p = exp(z[j] - max) / sum;
        /* d(-log p_y)/dz_j = p_j - [j == y] */
        d[j] = (float)(-sign * (p - (j == label ? 1.0 : 0.0)));
    }
}

void at_attack_loss_eval(at_attack_loss kind, bool targeted, const float *logits, int n, int k,
                         const int32_t *y, const int32_t *target, float *loss, float *dlogits)
{
    for (int i = 0; i < n; i++) {
        const float *z = logits + (size_t)i * k;
        float *d = dlogits ? dlogits + (size_t)i * k : NULL;
        float dummy[4096];
        if (!d)
            d = dummy; /* k <= 4096 is checked when the attack is created */
        for (int j = 0; j < k; j++)
            d[j] = 0.0f;
        switch (kind) {
        case AT_ATTACK_LOSS_DEFAULT:
        case AT_ATTACK_LOSS_CE:
            ce(z, k, targeted ? target[i] : y[i], targeted, &loss[i], d);
            break;
        case AT_ATTACK_LOSS_CW: {
            int t = targeted ? target[i] : y[i];
            int m = argmax_except(z, k, t);
            float margin = z[m] - z[t]; /* > 0: another class wins */
            loss[i] = targeted ? -margin : margin;
            d[m] += targeted ? -1.0f : 1.0f;
            d[t] += targeted ? 1.0f : -1.0f;
            break;
        }
        case AT_ATTACK_LOSS_DLR: {
            int top[4];
            top4(z, k, top);
            int yi = y[i];
            double den;
            double num; /* the loss is -num / den */
            int other;
            if (targeted) {
                other = target[i];
                den = (double)z[top[0]] - 0.5 * ((double)z[top[2]] + z[top[3]]) + 1e-12;
            } else {
                other = argmax_except(z, k, yi);
                den = (double)z[top[0]] - z[top[2]] + 1e-12;
            }
            num = (double)z[yi] - z[other];
            loss[i] = (float)(-num / den);
            /* d(-num/den) = -(dnum * den - num * dden) / den^2 */
            double a = -1.0 / den, b = num / (den * den);
            d[yi] += (float)a;
            d[other] -= (float)a;
            d[top[0]] += (float)b;
            if (targeted) {
                d[top[2]] -= (float)(0.5 * b);
                d[top[3]] -= (float)(0.5 * b);
            } else {
                d[top[2]] -= (float)b;
            }
            break;
        }
        }
    }
}

void at_attack_loss_soft_ce(const float *logits, int n, int k, const float *targets, float *loss,
                            float *dlogits)
{
    for (int i = 0; i < n; i++) {
        const float *z = logits + (size_t)i * k, *t = targets + (size_t)i * k;
        double max = z[0], sum = 0.0;
        for (int j = 1; j < k; j++)
            max = z[j] > max ? z[j] : max;
        for (int j = 0; j < k; j++)
            sum += exp(z[j] - max);
        double l = 0.0;
        for (int j = 0; j < k; j++)
            if (t[j] != 0.0f)
                l -= t[j] * (z[j] - max - log(sum));
        loss[i] = (float)l;
        for (int j = 0; dlogits && j < k; j++) {
            double p = exp(z[j] - max) / sum;
            dlogits[(size_t)i * k + j] = (float)(p - t[j]);
        }
    }
}
