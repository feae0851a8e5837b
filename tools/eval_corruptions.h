/* eval_corruptions.h: `advtrain eval --suite corruptions` (eval_corruptions.c). */
#ifndef AT_EVAL_CORRUPTIONS_H
#define AT_EVAL_CORRUPTIONS_H

#include "cli.h"

typedef struct eval_corruption_args {
    const char *names;       /* comma-separated corruptions, or NULL for all 15 */
    const char *cifar_c_dir; /* read the cells from CIFAR-10-C files here, or NULL: generate */
    const char *baseline_path;
    uint64_t seed;
    int batch_size;
    int calibration_bins;
    bool quiet;
} eval_corruption_args;

/* Accuracy of model on ds (the clean images; with cifar_c_dir, any cell of the files, for its
 * size and labels) under each corruption and severity, the mean, and with a baseline model the
 * (relative) mCE; the calibration of the clean and of all the corrupted inputs (with the ECE of
 * each corruption); printed and put in report["corruption_suite"] and report["calibration"].
 * Returns an exit status. */
int cli_eval_corruptions(at_model *model, at_model *baseline, const at_dataset *ds,
                         const eval_corruption_args *a, json_t *report);

#endif
