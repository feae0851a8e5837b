/* fuzz_eval_state.c: the state file of a resumable evaluation (`advtrain eval --state FILE`,
 * load_state in tools/eval_state.c) for an evaluation of 8 points by two attacks with 4
 * calibration bins, fingerprint "fuzz". load_state is static: the file is compiled in here, so
 * the reader is fuzzed without a model to evaluate. */
#include "../../tools/eval_state.c"

#include "fuzz_file.h"

enum { FUZZ_POINTS = 8, FUZZ_BINS = 4 };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_write_file(data, size, ".json");
    at_eval_plan plan = {.n_attacks = 2, .attacks = {"fgsm", "pgd"}, .calibration_bins = FUZZ_BINS};
    at_eval_result r;
    memset(&r, 0, sizeof r);
    r.points = FUZZ_POINTS;
    r.outcome = malloc(FUZZ_POINTS);
    at_error err;
    if (!r.outcome || at_calibration_init(&r.clean_calibration, FUZZ_BINS, &err) ||
        at_calibration_init(&r.adversarial_calibration, FUZZ_BINS, &err))
        abort();
    int status;
    load_state(path, "fuzz", &plan, FUZZ_POINTS, &r, &status);
    at_eval_result_free(&r);
    return 0;
}
