/* certify_state.h: a resumable certification. CERTIFY at n = 100,000 draws costs seconds per point,
 * hours for a test set; `advtrain certify --state FILE` keeps every finished point's result in FILE
 * (written atomically) and a later run with the same command continues after the last saved point.
 * Each point's noise comes from its own index (at_smooth_options), so the resumed run's results
 * are those of an uninterrupted one, whatever the batch size or threads. */
#ifndef ADVTRAIN_CERTIFY_STATE_H
#define ADVTRAIN_CERTIFY_STATE_H

#include "cli.h"

/* How far a certification has come: points [0, done) hold results; the seconds spent on noisy
 * draws, and the plain forwards timed beside them (for the rates in the report). */
typedef struct certify_progress {
    long done;
    double seconds, plain_seconds;
    long plain_images;
} certify_progress;

/* Loads the state at `path` into results[0, done) and *progress when it was written for this
 * fingerprint and these `points` of a data set with `classes` classes; no file is a fresh start
 * (done 0). Returns 0 or an exit code, with a one-line message naming the file for a state that
 * is corrupt or another run's. */
int certify_state_load(const char *path, const char *fingerprint, long points, int classes,
                       at_smooth_result *results, certify_progress *progress);

/* Writes results[0, progress->done) and the progress to `path`. */
int certify_state_save(const char *path, const char *fingerprint, long points,
                       const at_smooth_result *results, const certify_progress *progress);

#endif
