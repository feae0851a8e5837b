/* util.c: progress line, clock, confidence intervals, JSON files and directories for the tool. */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

double cli_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

void cli_progress_start(cli_progress *p, bool quiet)
{
    p->mode = quiet ? CLI_PROGRESS_OFF : isatty(STDERR_FILENO) ? CLI_PROGRESS_BAR : CLI_PROGRESS_LINES;
    p->start = cli_now();
    p->last_draw = 0.0;
    p->lines = 0;
}

/* Not a terminal (a log file, a pipe): a line after the first update, then at most one every
 * CLI_PROGRESS_LOG_SECONDS, and one at the end, so a log shows the run is alive without
 * filling up. */
enum { CLI_PROGRESS_LOG_SECONDS = 30 };

void cli_progress_update(cli_progress *p, const char *label, long done, long total,
                         const char *extra)
{
    if (p->mode == CLI_PROGRESS_OFF)
        return;
    double t = cli_now();
    if (p->mode == CLI_PROGRESS_LINES && p->lines > 0 && done < total &&
        t - p->last_draw < CLI_PROGRESS_LOG_SECONDS)
        return;
    if (p->mode == CLI_PROGRESS_BAR && done < total && t - p->last_draw < 0.1)
        return; /* redraw at most ten times a second */
    p->last_draw = t;
    double elapsed = t - p->start, rate = elapsed > 0 ? done / elapsed : 0.0;
    double eta = rate > 0 ? (total - done) / rate : 0.0;
    if (p->mode == CLI_PROGRESS_LINES) {
        p->lines++;
        fprintf(stderr, "%s: %ld/%ld (%.0f%%)  %.0f img/s  %.0f s  ETA %d:%02d%s%s\n", label, done,
                total, total > 0 ? 100.0 * done / total : 0.0, rate, elapsed, (int)eta / 60,
                (int)eta % 60, extra ? "  " : "", extra ? extra : "");
        fflush(stderr);
        return;
    }
    char bar[31];
    int filled = total > 0 ? (int)(30.0 * done / total) : 0;
    for (int i = 0; i < 30; i++)
        bar[i] = i < filled ? '#' : '.';
    bar[30] = '\0';
    fprintf(stderr, "\r%s [%s] %ld/%ld  %.0f img/s  ETA %d:%02d  %s\x1b[K", label, bar, done,
            total, rate, (int)eta / 60, (int)eta % 60, extra ? extra : "");
    fflush(stderr);
}

void cli_progress_clear(cli_progress *p)
{
    if (p->mode == CLI_PROGRESS_BAR) {
        fprintf(stderr, "\r\x1b[K");
        fflush(stderr);
    }
}

void cli_wilson(long correct, long n, double *lo, double *hi)
{
    if (n <= 0) {
        *lo = 0.0;
        *hi = 1.0;
        return;
    }
    const double z = 1.959963984540054;
    double p = (double)correct / n, z2n = z * z / n;
    double center = (p + z2n / 2) / (1 + z2n);
    double half = z * sqrt(p * (1 - p) / n + z2n / (4.0 * n)) / (1 + z2n);
    *lo = correct == 0 || center - half < 0 ? 0 : center - half;
    *hi = correct == n || center + half > 1 ? 1 : center + half;
}

int cli_write_json(const char *path, json_t *value, at_error *err)
{
    char tmp[4096];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= sizeof tmp) {
        snprintf(err->message, sizeof err->message, "%s: path too long", path);
        return AT_ERR_ARG;
    }
    if (json_dump_file(value, tmp, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_REAL_PRECISION(8))) {
        remove(tmp);
        snprintf(err->message, sizeof err->message, "%s: cannot write: %s", path, strerror(errno));
        return AT_ERR_IO;
    }
    if (rename(tmp, path)) {
        snprintf(err->message, sizeof err->message, "%s: cannot write: %s", path, strerror(errno));
        remove(tmp);
        return AT_ERR_IO;
    }
    return AT_OK;
}

/* Through a temporary file renamed over it, so that a process killed while saving leaves the
 * previous state whole. Every number keeps 17 significant digits: sums go on accumulating after a
 * resume, and must be the very doubles an uninterrupted run holds. */
int cli_write_state(const char *cmd, const char *path, const json_t *state)
{
    char tmp[4096];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= sizeof tmp)
        return cli_error(cmd, EXIT_USAGE, "%s: path too long", path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return cli_error(cmd, EXIT_WORK_FAILED, "%s: cannot create %s: %s", path, tmp,
                         strerror(errno));
    int failed = json_dumpf(state, f, JSON_COMPACT | JSON_REAL_PRECISION(17)) != 0 ||
                 fflush(f) != 0 || fsync(fileno(f)) != 0;
    int saved_errno = errno;
    if (fclose(f) != 0 && !failed)
        failed = 1, saved_errno = errno;
    if (!failed && rename(tmp, path) != 0)
        failed = 1, saved_errno = errno;
    if (failed) {
        remove(tmp);
        return cli_error(cmd, EXIT_WORK_FAILED, "%s: cannot write: %s", path, strerror(saved_errno));
    }
    return 0;
}

int cli_read_state(const char *cmd, const char *path, const char *what, json_t **state)
{
    *state = NULL;
    FILE *probe = fopen(path, "r");
    if (!probe)
        return errno == ENOENT ? 0
                               : cli_error(cmd, EXIT_WORK_FAILED, "%s: cannot read: %s", path,
                                           strerror(errno));
    fclose(probe);
    json_error_t jerr;
    if (!(*state = json_load_file(path, 0, &jerr)))
        return cli_error(cmd, EXIT_WORK_FAILED, "%s: not %s state file: %s", path, what, jerr.text);
    return 0;
}

int cli_mkdirs(const char *path, at_error *err)
{
    char buf[4096];
    size_t len = strlen(path);
    if (len == 0 || len >= sizeof buf) {
        snprintf(err->message, sizeof err->message, "'%s': invalid directory name", path);
        return AT_ERR_ARG;
    }
    memcpy(buf, path, len + 1);
    for (size_t i = 1; i <= len; i++) {
        if (buf[i] != '/' && buf[i] != '\0')
            continue;
        char saved = buf[i];
        buf[i] = '\0';
        if (mkdir(buf, 0777) != 0 && errno != EEXIST) {
            snprintf(err->message, sizeof err->message, "%s: cannot create directory: %s", buf,
                     strerror(errno));
            return AT_ERR_IO;
        }
        buf[i] = saved;
    }
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) {
        snprintf(err->message, sizeof err->message, "%s: not a directory", path);
        return AT_ERR_IO;
    }
    return AT_OK;
}

int cli_open_dataset(const char *cmd, const char *name, const char *dir, const char *split,
                     at_dataset *out)
{
    at_error err;
    if (at_dataset_open(out, name, dir, split, &err))
        return cli_error(cmd, EXIT_WORK_FAILED, "%s", err.message);
    cli_report_skipped(cmd, out, dir ? dir : name, split);
    return 0;
}

void cli_report_skipped(const char *cmd, const at_dataset *ds, const char *where, const char *split)
{
    if (ds->skipped)
        fprintf(stderr, "advtrain %s: %s (%s split): skipped %d unreadable image%s (skip-bad)\n",
                cmd, where, split, ds->skipped, ds->skipped == 1 ? "" : "s");
}

int cli_load_model(const char *cmd, const char *path, const char *arch, const at_dataset *ds,
                   at_model **model)
{
    at_error err;
    at_safetensors *st = NULL;
    *model = NULL;
    int status = 0;
    if (at_is_onnx_path(path)) { /* the graph and its weights, from the file */
        if (arch)
            return cli_error(cmd, EXIT_USAGE, "%s describes its model: drop --model", path);
        if (at_model_import_onnx(model, path, &err))
            return cli_error(cmd, EXIT_WORK_FAILED, "%s", err.message);
        return cli_check_model_data(cmd, path, ds, model);
    }
    if (at_st_open(&st, path, &err))
        return cli_error(cmd, EXIT_WORK_FAILED, "%s", err.message);
    const char *spec = at_st_meta(st, "model");
    at_model_options mo = {.num_classes = ds->num_classes, .in_channels = ds->c,
                           .in_height = ds->h, .in_width = ds->w};
    if (!arch && !spec)
        status = cli_error(cmd, EXIT_USAGE, "%s holds weights only; name its architecture with "
                           "--model", path);
    else if (arch ? at_model_create(model, arch, &mo, &err)
                  : at_model_create_from_spec(model, spec, &err))
        status = cli_error(cmd, EXIT_WORK_FAILED, "%s: %s", path, err.message);
    at_st_free(st);
    if (!status && at_checkpoint_load(path, *model, NULL, NULL, &err))
        status = cli_error(cmd, EXIT_WORK_FAILED, "%s", err.message);
    if (status) {
        at_model_free(*model);
        *model = NULL;
        return status;
    }
    return cli_check_model_data(cmd, path, ds, model);
}

int cli_check_model_data(const char *cmd, const char *path, const at_dataset *ds, at_model **model)
{
    int c, h, w;
    at_model_input_shape(*model, &c, &h, &w);
    if (c == ds->c && h == ds->h && w == ds->w && at_model_num_classes(*model) >= ds->num_classes)
        return 0;
    int status = cli_error(cmd, EXIT_WORK_FAILED, "%s: the model takes %dx%dx%d inputs with %d "
                           "classes, %s has %dx%dx%d with %d", path, c, h, w,
                           at_model_num_classes(*model), ds->name, ds->c, ds->h, ds->w,
                           ds->num_classes);
    at_model_free(*model);
    *model = NULL;
    return status;
}

int cli_predict(const char *cmd, at_model *model, const float *x, int n, int32_t *pred)
{
    at_pass *p = NULL;
    at_error err;
    if (at_pass_create(&p, model, n, AT_PASS_FORWARD_ONLY, &err))
        return cli_error(cmd, EXIT_WORK_FAILED, "%s", err.message);
    at_forward(p, x, n, AT_BN_EVAL);
    const int k = at_model_num_classes(model);
    for (int i = 0; i < n; i++) {
        const float *z = at_pass_logits(p) + (size_t)i * k;
        pred[i] = 0;
        for (int j = 1; j < k; j++)
            if (z[j] > z[pred[i]])
                pred[i] = j;
    }
    at_pass_free(p);
    return 0;
}
