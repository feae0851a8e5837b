/* eval_shards.c: an evaluation cascade split among processes by whole batches. A point's
 * outcome depends only on its own index (its attacks' seeds come from it, batch norm runs in
 * eval mode) and on the batch it is evaluated in, so running the same batches anywhere gives the
 * same outcomes; the sums (loss per step, calibration bins) are then added on rank 0 one batch
 * at a time, in the order one process adds them, and come out bit for bit the same. */
#include "eval_shards.h"
#include "ranks.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The counters of one batch's result that are not arrays of its own length. */
typedef struct piece_head {
    long first, points, clean_correct;
    long broken_by[AT_EVAL_MAX_ATTACKS];
    double seconds[AT_EVAL_MAX_ATTACKS];
    double clean_seconds;
} piece_head;

typedef struct bytes {
    char *data;
    size_t used, size;
    bool failed;
} bytes;

static void put(bytes *b, const void *p, size_t n)
{
    if (b->failed)
        return;
    if (b->used + n > b->size) {
        size_t size = b->size ? b->size : 4096;
        while (size < b->used + n)
            size *= 2;
        char *grown = realloc(b->data, size);
        if (!grown) {
            b->failed = true;
            return;
        }
        b->data = grown;
        b->size = size;
    }
    memcpy(b->data + b->used, p, n);
    b->used += n;
}

/* Copies n bytes out at *at; -1 when fewer are left. */
static int take(const char *data, size_t total, size_t *at, void *p, size_t n)
{
    if (*at + n > total)
        return -1;
    memcpy(p, data + *at, n);
    *at += n;
    return 0;
}

static void put_calibration(bytes *b, const at_calibration *c)
{
    put(b, c, sizeof *c); /* the scalars; the pointers are rebuilt on arrival */
    put(b, c->bin_count, (size_t)c->bins * sizeof *c->bin_count);
    put(b, c->bin_correct, (size_t)c->bins * sizeof *c->bin_correct);
    put(b, c->bin_confidence, (size_t)c->bins * sizeof *c->bin_confidence);
}

/* Reads a calibration into `into`, an initialised accumulator of the same bins. */
static int take_calibration(const char *data, size_t total, size_t *at, at_calibration *into)
{
    at_calibration c;
    if (take(data, total, at, &c, sizeof c) || c.bins != into->bins)
        return -1;
    long *count = into->bin_count, *correct = into->bin_correct;
    double *confidence = into->bin_confidence;
    *into = c;
    into->bin_count = count;
    into->bin_correct = correct;
    into->bin_confidence = confidence;
    return take(data, total, at, count, (size_t)c.bins * sizeof *count) ||
                   take(data, total, at, correct, (size_t)c.bins * sizeof *correct) ||
                   take(data, total, at, confidence, (size_t)c.bins * sizeof *confidence)
               ? -1
               : 0;
}

static void put_piece(bytes *b, const at_eval_plan *plan, long first, const at_eval_result *r)
{
    piece_head h = {.first = first, .points = r->points, .clean_correct = r->clean_correct,
                    .clean_seconds = r->clean_seconds};
    memcpy(h.broken_by, r->broken_by, sizeof h.broken_by);
    memcpy(h.seconds, r->seconds, sizeof h.seconds);
    put(b, &h, sizeof h);
    put(b, r->stats, (size_t)plan->n_attacks * sizeof r->stats[0]);
    put_calibration(b, &r->clean_calibration);
    if (plan->n_attacks > 0)
        put_calibration(b, &r->adversarial_calibration);
    put(b, r->outcome, (size_t)r->points);
}

/* Adds the pieces in `data` (batch order) into r, as cli_eval_resumable adds its chunks. */
static int merge_pieces(const char *data, size_t total, const at_eval_plan *plan, long points,
                        at_eval_result *r, at_error *err)
{
    const int bins = r->clean_calibration.bins;
    at_calibration clean = {0}, adversarial = {0};
    at_attack_stats *stats = malloc((size_t)(plan->n_attacks ? plan->n_attacks : 1) * sizeof *stats);
    int status = stats ? 0 : cli_fail(err, AT_ERR_NOMEM, "out of memory");
    if (!status && ((status = at_calibration_init(&clean, bins, err)) ||
                    (plan->n_attacks > 0 && (status = at_calibration_init(&adversarial, bins, err)))))
        goto done;
    long expected = 0;
    for (size_t at = 0; !status && at < total;) {
        piece_head h;
        if (take(data, total, &at, &h, sizeof h) || h.first != expected || h.points < 1 ||
            h.first + h.points > points ||
            take(data, total, &at, stats, (size_t)plan->n_attacks * sizeof *stats) ||
            take_calibration(data, total, &at, &clean) ||
            (plan->n_attacks > 0 && take_calibration(data, total, &at, &adversarial)) ||
            take(data, total, &at, r->outcome + h.first, (size_t)h.points)) {
            status = cli_fail(err, AT_ERR_STATE, "the processes' results do not fit together");
            break;
        }
        if ((status = at_calibration_merge(&r->clean_calibration, &clean, err)) ||
            (plan->n_attacks > 0 &&
             (status = at_calibration_merge(&r->adversarial_calibration, &adversarial, err))))
            break;
        r->clean_correct += h.clean_correct;
        r->clean_seconds += h.clean_seconds;
        for (int a = 0; a < plan->n_attacks; a++) {
            r->broken_by[a] += h.broken_by[a];
            r->seconds[a] += h.seconds[a];
            at_attack_stats_merge(&r->stats[a], &stats[a]);
        }
        expected = h.first + h.points;
    }
    if (!status && expected != points)
        status = cli_fail(err, AT_ERR_STATE, "the processes returned %ld of %ld points", expected,
                         points);
done:
    free(stats);
    at_calibration_free(&clean);
    at_calibration_free(&adversarial);
    return status;
}

static void on_progress(cli_progress *progress, long done, long total)
{
    cli_progress_update(progress, "evaluating", done, total, NULL);
}

int cli_eval_sharded(at_model *model, const at_dataset *ds, const at_eval_plan *plan,
                     at_eval_result *r, bool quiet)
{
    memset(r, 0, sizeof *r);
    const long start = plan->first_point, available = ds->n - start;
    const long points = plan->points > 0 && plan->points < available ? plan->points : available;
    const long batch = plan->batch_size > 0 ? plan->batch_size : 250;
    const long batches = points > 0 ? (points + batch - 1) / batch : 0;
    const int rank = ranks_rank(), size = ranks_size();
    const long mine_from = batches * rank / size, mine_to = batches * (rank + 1) / size;
    const long mine_points = (mine_to * batch < points ? mine_to * batch : points) - mine_from * batch;
    at_error err = {0};
    bytes out = {0};
    int status = 0;
    r->points = points;
    r->outcome = calloc((size_t)(points > 0 ? points : 1), 1);
    const int bins = plan->calibration_bins ? plan->calibration_bins : AT_CALIBRATION_DEFAULT_BINS;
    if (!r->outcome)
        status = cli_error("eval", EXIT_WORK_FAILED, "out of memory");
    else if (at_calibration_init(&r->clean_calibration, bins, &err) ||
             (plan->n_attacks > 0 && at_calibration_init(&r->adversarial_calibration, bins, &err)))
        status = cli_error("eval", EXIT_USAGE, "%s", err.message);
    if (!status && rank == 0 && batches < size && !quiet)
        fprintf(stderr, "eval: %ld batch%s for %d processes: some have nothing to do (a smaller "
                "--batch-size shares the %ld points more evenly)\n", batches,
                batches == 1 ? "" : "es", size, points);
    cli_progress progress;
    cli_progress_start(&progress, quiet || rank != 0);
    for (long b = mine_from; b < mine_to && !status; b++) {
        at_eval_plan part = *plan;
        part.first_point = start + b * batch;
        part.points = (int)(points - b * batch < batch ? points - b * batch : batch);
        at_eval_result piece;
        if (at_eval_robust(model, ds, &part, &piece, NULL, NULL, &err)) {
            status = cli_error("eval", EXIT_WORK_FAILED, "%s", err.message);
            break;
        }
        put_piece(&out, plan, b * batch, &piece);
        at_eval_result_free(&piece);
        if (out.failed)
            status = cli_error("eval", EXIT_WORK_FAILED, "out of memory");
        long done = (b - mine_from + 1) * batch;
        on_progress(&progress, done < mine_points ? done : mine_points, mine_points);
    }
    cli_progress_clear(&progress);
    void *all = NULL;
    size_t total = 0;
    if (!(status = ranks_agree(status, false)) && ranks_gather(out.data, out.used, &all, &total))
        status = cli_error("eval", EXIT_WORK_FAILED, "cannot gather the processes' results");
    free(out.data);
    if (!status && rank == 0) {
        if (merge_pieces(all, total, plan, points, r, &err))
            status = cli_error("eval", EXIT_WORK_FAILED, "%s", err.message);
        /* the options each attack runs with (defaults filled), as cli_eval_resumable reports */
        for (int a = 0; a < plan->n_attacks && !status; a++) {
            at_attack *probe = NULL;
            if (at_attack_create(&probe, plan->attacks[a], plan->surrogate ? plan->surrogate : model,
                                 1, &plan->options[a], &err))
                status = cli_error("eval", EXIT_USAGE, "%s", err.message);
            else
                r->options[a] = *at_attack_get_options(probe);
            at_attack_free(probe);
        }
        long broken = 0;
        for (int a = 0; a < plan->n_attacks; a++) {
            broken += r->broken_by[a];
            r->robust_after[a] = r->clean_correct - broken;
        }
    }
    free(all);
    if (status)
        at_eval_result_free(r);
    return status;
}
