/* fuzz_certify_state.c: the state file of a resumable certification (`advtrain certify --state
 * FILE`, certify_state_load in tools/certify_state.c) for 8 points of a 10-class data set,
 * fingerprint "fuzz". */
#include "certify_state.h"

#include "fuzz_file.h"

enum { FUZZ_POINTS = 8, FUZZ_CLASSES = 10 };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_write_file(data, size, ".json");
    at_smooth_result results[FUZZ_POINTS];
    certify_progress progress;
    if (!certify_state_load(path, "fuzz", FUZZ_POINTS, FUZZ_CLASSES, results, &progress) &&
        (progress.done < 0 || progress.done > FUZZ_POINTS))
        abort(); /* a state accepted must fit the points it is for */
    return 0;
}
