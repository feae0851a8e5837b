/* eval_report.h: what `advtrain eval` says about an evaluation: the JSON report, the human
 * summary, and the automatic flags that make a weak or broken evaluation visible. */
#ifndef ADVTRAIN_EVAL_REPORT_H
#define ADVTRAIN_EVAL_REPORT_H

#include "cli.h"

typedef struct cli_flags {
    json_t *list; /* array of {"id", "message"} */
} cli_flags;

void cli_flag(cli_flags *flags, const char *id, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The cascade as JSON: clean accuracy, each attack (options, what it broke, measured norms,
 * range, BN mode, gradient counts, loss per step, time) and the robust accuracy, with 95%
 * confidence intervals, and "calibration": {"bins", "clean", "adversarial"} (the latter with
 * at least one attack). */
json_t *cli_eval_json(const at_eval_plan *plan, const at_eval_result *r);

/* Flags from one cascade: zero or non-finite gradients, outputs outside the threat model or
 * [0,1], a black-box attack breaking points the white-box attacks could not. */
void cli_eval_flags(const at_eval_plan *plan, const at_eval_result *r, cli_flags *flags);

void cli_eval_print(FILE *out, const at_eval_plan *plan, const at_eval_result *r);

/* A calibration (Guo et al. 2017) as JSON: {"bins", "n", "nonfinite", "accuracy",
 * "mean_confidence", "ece", "mce", "nll", "brier", "table": [{"lower", "upper", "count",
 * "accuracy", "confidence"} per bin, null accuracy and confidence for an empty bin]}; fractions,
 * not percentages. */
json_t *cli_calibration_json(const at_calibration *cal);
/* One line: "  LABEL  ECE 3.21%, MCE 9.80%, NLL 0.3456, Brier 0.1234 (15 bins, ...)". */
void cli_calibration_print(FILE *out, const char *label, const at_calibration *cal);

/* {"correct", "n", "accuracy", "ci95": [lo, hi]} */
json_t *cli_accuracy_json(long correct, long n);

#endif
