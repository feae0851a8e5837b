/* certify_state.c: see certify_state.h. The file is one JSON object: the fingerprint of the run
 * (checkpoint hash, data, points and smoothing options), the progress, and one array per finished
 * point, [prediction, top_class, n0_count, count, runner_up, p_lower, p_value, radius]. */
#include "certify_state.h"

#include <stdlib.h>
#include <string.h>

enum { FIELDS = 8 };

static json_t *result_json(const at_smooth_result *r)
{
    return json_pack("[i, i, I, I, I, f, f, f]", r->prediction, r->top_class,
                     (json_int_t)r->n0_count, (json_int_t)r->count, (json_int_t)r->runner_up,
                     r->p_lower, r->p_value, r->radius);
}

/* -1 when the entry is not a result: wrong shape, or numbers no certification can give */
static int result_from_json(json_t *j, int classes, at_smooth_result *r)
{
    json_int_t n0_count, count, runner_up;
    if (!json_is_array(j) || json_array_size(j) != FIELDS ||
        json_unpack(j, "[i, i, I, I, I, F, F, F]", &r->prediction, &r->top_class, &n0_count,
                    &count, &runner_up, &r->p_lower, &r->p_value, &r->radius))
        return -1;
    r->n0_count = (long)n0_count;
    r->count = (long)count;
    r->runner_up = (long)runner_up;
    const bool probabilities = r->p_lower >= 0.0 && r->p_lower <= 1.0 && r->p_value >= 0.0 &&
                               r->p_value <= 1.0;
    return r->prediction >= -1 && r->prediction < classes && r->top_class >= 0 &&
                   r->top_class < classes && n0_count >= 0 && count >= 0 &&
                   runner_up >= 0 && probabilities && r->radius >= 0.0 && r->radius < 1e30
               ? 0
               : -1;
}

int certify_state_save(const char *path, const char *fingerprint, long points,
                       const at_smooth_result *results, const certify_progress *progress)
{
    json_t *done = json_array();
    for (long i = 0; i < progress->done; i++)
        json_array_append_new(done, result_json(&results[i]));
    json_t *state = json_pack("{s:s, s:I, s:f, s:f, s:I, s:o}", "fingerprint", fingerprint,
                              "points", (json_int_t)points, "seconds", progress->seconds,
                              "plain_seconds", progress->plain_seconds, "plain_images",
                              (json_int_t)progress->plain_images, "results", done);
    if (!state)
        return cli_error("certify", EXIT_WORK_FAILED, "out of memory");
    int status = cli_write_state("certify", path, state);
    json_decref(state);
    return status;
}

int certify_state_load(const char *path, const char *fingerprint, long points, int classes,
                       at_smooth_result *results, certify_progress *progress)
{
    memset(progress, 0, sizeof *progress);
    json_t *state;
    int status = cli_read_state("certify", path, "a certification", &state);
    if (status || !state)
        return status;
    const char *saved_fingerprint = NULL;
    json_int_t saved_points = 0, plain_images = 0;
    json_t *done = NULL;
    if (json_unpack(state, "{s:s, s:I, s:F, s:F, s:I, s:o}", "fingerprint", &saved_fingerprint,
                    "points", &saved_points, "seconds", &progress->seconds, "plain_seconds",
                    &progress->plain_seconds, "plain_images", &plain_images, "results", &done) ||
        !json_is_array(done)) {
        status = cli_error("certify", EXIT_WORK_FAILED, "%s: not a certification state file", path);
        json_decref(state);
        memset(progress, 0, sizeof *progress);
        return status;
    }
    if (strcmp(saved_fingerprint, fingerprint) != 0 || saved_points != points ||
        (long)json_array_size(done) > points)
        status = cli_error("certify", EXIT_USAGE, "%s holds another certification (other "
                           "checkpoint, data, points or options); remove it or use another --state "
                           "file", path);
    for (size_t i = 0; !status && i < json_array_size(done); i++)
        if (result_from_json(json_array_get(done, i), classes, &results[i]))
            status = cli_error("certify", EXIT_WORK_FAILED, "%s: point %zu's result is corrupt",
                               path, i);
    if (!status && !(progress->seconds >= 0.0 && progress->plain_seconds >= 0.0 && plain_images >= 0))
        status = cli_error("certify", EXIT_WORK_FAILED, "%s: corrupt timings", path);
    if (status)
        memset(progress, 0, sizeof *progress);
    else {
        progress->done = (long)json_array_size(done);
        progress->plain_images = (long)plain_images;
    }
    json_decref(state);
    return status;
}
