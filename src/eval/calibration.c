/* calibration.c: how well a classifier's confidence matches its accuracy (Guo et al., "On
 * Calibration of Modern Neural Networks", ICML 2017, section 2). Predictions are accumulated
 * batch by batch into M equal-width bins of confidence (the largest softmax probability), so any
 * set of inputs (clean, adversarial, corrupted) can be measured in one pass over its logits:
 *   ECE = sum_m |B_m| / n |acc(B_m) - conf(B_m)|        (their eq. 3)
 *   MCE = max_m |acc(B_m) - conf(B_m)| over non-empty bins (eq. 5)
 * with also the negative log-likelihood (eq. 6's proper scoring rule) and the Brier score
 * (Brier 1950, summed over the k classes), which come free from the same softmax. */
#include "core/util.h"

#include <math.h>
#include <string.h>

int at_calibration_init(at_calibration *cal, int bins, at_error *err)
{
    memset(cal, 0, sizeof *cal);
    if (bins < 1 || bins > AT_CALIBRATION_MAX_BINS)
        return at_fail(err, AT_ERR_ARG, "calibration bins must be in 1..%d, got %d",
                       AT_CALIBRATION_MAX_BINS, bins);
    cal->bin_count = at_alloc((size_t)bins * sizeof(long));
    cal->bin_correct = at_alloc((size_t)bins * sizeof(long));
    cal->bin_confidence = at_alloc((size_t)bins * sizeof(double));
    if (!cal->bin_count || !cal->bin_correct || !cal->bin_confidence) {
        at_calibration_free(cal);
        return at_fail(err, AT_ERR_NOMEM, "out of memory for %d calibration bins", bins);
    }
    cal->bins = bins;
    return AT_OK;
}

void at_calibration_free(at_calibration *cal)
{
    if (!cal)
        return;
    at_free(cal->bin_count);
    at_free(cal->bin_correct);
    at_free(cal->bin_confidence);
    memset(cal, 0, sizeof *cal);
}

int at_calibration_bin_of(double confidence, int bins)
{
    /* Guo et al.'s bins are I_m = ((m-1)/M, m/M]: right-closed, so a confidence of exactly 1
     * lands in the last bin and one of exactly m/M in bin m. A confidence of 0 (impossible for
     * a softmax) joins the first. */
    int m = (int)ceil(confidence * bins) - 1;
    return m < 0 ? 0 : m >= bins ? bins - 1 : m;
}

/* One row: predicted class `best` with probability `confidence`, the label's probability p_y
 * (and its log, exact from the logits), and sum_j p_j^2 for the Brier score. */
static void add_row(at_calibration *cal, int best, int label, double confidence, double log_py,
                    double sum_sq, double p_y)
{
    int m = at_calibration_bin_of(confidence, cal->bins);
    int ok = best == label;
    cal->bin_count[m]++;
    cal->bin_correct[m] += ok;
    cal->bin_confidence[m] += confidence;
    cal->n++;
    cal->correct += ok;
    cal->confidence_sum += confidence;
    cal->nll_sum -= log_py;
    cal->brier_sum += sum_sq - 2.0 * p_y + 1.0; /* sum_j (p_j - [j = y])^2 */
}

static int check_args(const at_calibration *cal, int n, int k, const int32_t *labels,
                      at_error *err)
{
    if (!cal->bins || !cal->bin_count)
        return at_fail(err, AT_ERR_STATE,
                       "calibration accumulator used before at_calibration_init");
    if (n < 0 || k < 1)
        return at_fail(err, AT_ERR_ARG, "calibration: %d rows of %d classes", n, k);
    for (int i = 0; i < n; i++)
        if (labels[i] < 0 || labels[i] >= k)
            return at_fail(err, AT_ERR_ARG, "calibration: label %d of row %d outside 0..%d",
                           labels[i], i, k - 1);
    return AT_OK;
}

int at_calibration_add_logits(at_calibration *cal, const float *logits, int n, int k,
                              const int32_t *labels, at_error *err)
{
    int status = check_args(cal, n, k, labels, err);
    if (status)
        return status;
    for (int i = 0; i < n; i++) {
        const float *z = logits + (size_t)i * k;
        bool finite = true;
        int best = 0; /* the first maximum, as at_count_correct picks it */
        for (int j = 0; j < k; j++) {
            finite &= isfinite(z[j]) != 0;
            if (z[j] > z[best])
                best = j;
        }
        if (!finite) {
            cal->nonfinite++;
            continue;
        }
        /* softmax in double around the largest logit: p_j = exp(z_j - z_max) / s */
        double zmax = z[best], s = 0.0, sq = 0.0;
        for (int j = 0; j < k; j++)
            s += exp((double)z[j] - zmax);
        for (int j = 0; j < k; j++) {
            double p = exp((double)z[j] - zmax) / s;
            sq += p * p;
        }
        double log_py = (double)z[labels[i]] - zmax - log(s);
        add_row(cal, best, labels[i], 1.0 / s, log_py, sq, exp(log_py));
    }
    return AT_OK;
}

int at_calibration_add_probs(at_calibration *cal, const float *probs, int n, int k,
                             const int32_t *labels, at_error *err)
{
    int status = check_args(cal, n, k, labels, err);
    if (status)
        return status;
    for (int i = 0; i < n; i++) {
        const float *p = probs + (size_t)i * k;
        double total = 0.0;
        for (int j = 0; j < k; j++) {
            if (!(p[j] >= 0.0f && p[j] <= 1.0f))
                return at_fail(err, AT_ERR_ARG, "calibration: probability %d of row %d is %g, "
                               "not in [0, 1]", j, i, (double)p[j]);
            total += p[j];
        }
        if (fabs(total - 1.0) > 1e-3)
            return at_fail(err, AT_ERR_ARG, "calibration: the probabilities of row %d sum to %.6g, "
                           "not 1", i, total);
    }
    for (int i = 0; i < n; i++) {
        const float *p = probs + (size_t)i * k;
        int best = 0;
        double sq = 0.0;
        for (int j = 0; j < k; j++) {
            if (p[j] > p[best])
                best = j;
            sq += (double)p[j] * p[j];
        }
        /* a zero probability on the label would make the NLL infinite: clip it as scikit-learn's
         * log_loss does */
        double p_y = p[labels[i]];
        add_row(cal, best, labels[i], p[best], log(p_y > 1e-12 ? p_y : 1e-12), sq, p_y);
    }
    return AT_OK;
}

int at_calibration_merge(at_calibration *into, const at_calibration *from, at_error *err)
{
    if (!into->bin_count || !from->bin_count)
        return at_fail(err, AT_ERR_STATE,
                       "calibration accumulator used before at_calibration_init");
    if (into->bins != from->bins)
        return at_fail(err, AT_ERR_ARG, "cannot merge calibrations of %d and %d bins", into->bins,
                       from->bins);
    for (int m = 0; m < into->bins; m++) {
        into->bin_count[m] += from->bin_count[m];
        into->bin_correct[m] += from->bin_correct[m];
        into->bin_confidence[m] += from->bin_confidence[m];
    }
    into->n += from->n;
    into->correct += from->correct;
    into->nonfinite += from->nonfinite;
    into->confidence_sum += from->confidence_sum;
    into->nll_sum += from->nll_sum;
    into->brier_sum += from->brier_sum;
    return AT_OK;
}

/* |acc(B_m) - conf(B_m)| of a non-empty bin. */
static double gap(const at_calibration *cal, int m)
{
    double count = (double)cal->bin_count[m];
    return fabs(cal->bin_correct[m] / count - cal->bin_confidence[m] / count);
}

double at_calibration_ece(const at_calibration *cal)
{
    if (cal->n < 1)
        return NAN;
    double ece = 0.0;
    for (int m = 0; m < cal->bins; m++)
        if (cal->bin_count[m])
            ece += (double)cal->bin_count[m] / cal->n * gap(cal, m);
    return ece;
}

double at_calibration_mce(const at_calibration *cal)
{
    if (cal->n < 1)
        return NAN;
    double mce = 0.0;
    for (int m = 0; m < cal->bins; m++)
        if (cal->bin_count[m] && gap(cal, m) > mce)
            mce = gap(cal, m);
    return mce;
}
