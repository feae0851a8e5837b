/* train_flow_state.c: see train_flow_state.h. The file is safetensors: one F32 vector
 * "model<m>.<state>" per optimiser m and state buffer ("exp_avg", "exp_avg_sq"), and the metadata
 * "format", "epochs", "adam_steps" (the same for every optimiser: they step together), "settings"
 * (compact JSON) and "flow_sha256". */
#include "train_flow_state.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define FORMAT "advtrain-flow-optimizer-1"

enum { NAME_CAP = 64 };

static char *settings_text(const json_t *settings)
{
    return json_dumps(settings, JSON_COMPACT | JSON_SORT_KEYS | JSON_REAL_PRECISION(17));
}

int flow_state_save(const char *path, at_optimizer *const *opts, int n, int epochs,
                    const json_t *settings, const char *flow_path)
{
    at_error err;
    char sha[65], number[32], name[NAME_CAP];
    if (at_file_sha256(flow_path, sha, &err))
        return cli_error("train-flow", EXIT_WORK_FAILED, "%s", err.message);
    char *text = settings_text(settings);
    if (!text)
        return cli_error("train-flow", EXIT_WORK_FAILED, "out of memory");
    at_st_writer *w = NULL;
    int status = at_st_writer_create(&w, &err);
    for (int m = 0; !status && m < n; m++)
        for (int s = 0; !status && s < at_optimizer_state_count(opts[m]); s++) {
            const at_optimizer_state_info info = at_optimizer_state(opts[m], s);
            const int64_t shape[1] = {(int64_t)info.count};
            snprintf(name, sizeof name, "model%d.%s", m, info.name);
            status = at_st_writer_add(w, name, "F32", 1, shape, info.data,
                                      info.count * sizeof(float), &err);
        }
    snprintf(number, sizeof number, "%d", epochs);
    if (!status)
        status = at_st_writer_meta(w, "format", FORMAT, &err);
    if (!status)
        status = at_st_writer_meta(w, "epochs", number, &err);
    snprintf(number, sizeof number, "%lld", n > 0 ? (long long)at_optimizer_steps(opts[0]) : 0LL);
    if (!status)
        status = at_st_writer_meta(w, "adam_steps", number, &err);
    if (!status)
        status = at_st_writer_meta(w, "settings", text, &err);
    if (!status)
        status = at_st_writer_meta(w, "flow_sha256", sha, &err);
    if (!status)
        status = at_st_writer_save(w, path, &err);
    at_st_writer_free(w);
    free(text);
    return status ? cli_error("train-flow", EXIT_WORK_FAILED, "%s", err.message) : 0;
}

/* A whole number in [0, max] from the metadata, or -1. */
static long long meta_count(const at_safetensors *st, const char *key, long long max)
{
    const char *text = at_st_meta(st, key);
    if (!text || !*text)
        return -1;
    char *end;
    errno = 0;
    const long long v = strtoll(text, &end, 10);
    return *end || errno || v < 0 || v > max ? -1 : v;
}

/* 0 when the saved settings are these; otherwise an exit code and a message naming the first
 * setting that differs. */
static int same_settings(const char *path, const char *saved_text, const json_t *settings)
{
    json_error_t jerr;
    json_t *saved = saved_text ? json_loads(saved_text, 0, &jerr) : NULL;
    if (!json_is_object(saved)) {
        json_decref(saved);
        return cli_error("train-flow", EXIT_WORK_FAILED, "%s: no valid \"settings\" metadata",
                         path);
    }
    const char *key;
    json_t *value;
    int status = 0;
    json_object_foreach((json_t *)settings, key, value) {
        json_t *was = json_object_get(saved, key);
        if (was && json_equal(was, value))
            continue;
        char *now = json_dumps(value, JSON_ENCODE_ANY | JSON_REAL_PRECISION(17));
        char *then = was ? json_dumps(was, JSON_ENCODE_ANY | JSON_REAL_PRECISION(17)) : NULL;
        status = cli_error("train-flow", EXIT_USAGE, "%s: the run was trained with %s %s, this "
                           "command has %s (resume with the run's own settings)", path, key,
                           then ? then : "(unset)", now ? now : "?");
        free(now), free(then);
        break;
    }
    if (!status && json_object_size(saved) != json_object_size(settings))
        status = cli_error("train-flow", EXIT_WORK_FAILED, "%s: settings of another version of "
                           "train-flow", path);
    json_decref(saved);
    return status;
}

static int load_buffers(const at_safetensors *st, const char *path, at_optimizer *const *opts,
                        int n)
{
    char name[NAME_CAP];
    int expected = 0;
    for (int m = 0; m < n; m++)
        for (int s = 0; s < at_optimizer_state_count(opts[m]); s++, expected++) {
            const at_optimizer_state_info info = at_optimizer_state(opts[m], s);
            snprintf(name, sizeof name, "model%d.%s", m, info.name);
            const at_st_tensor *t = at_st_find(st, name);
            if (!t || strcmp(t->dtype, "F32") || t->ndim != 1 ||
                t->nbytes != info.count * sizeof(float))
                return cli_error("train-flow", EXIT_WORK_FAILED, "%s: tensor %s is %s", path,
                                 name, t ? "of the wrong dtype or size" : "missing");
            memcpy(info.data, t->data, t->nbytes);
            for (size_t j = 0; j < info.count; j++)
                if (!isfinite(info.data[j]))
                    return cli_error("train-flow", EXIT_WORK_FAILED, "%s: tensor %s is not "
                                     "finite", path, name);
        }
    if (at_st_count(st) != expected)
        return cli_error("train-flow", EXIT_WORK_FAILED, "%s: %d tensors, this flow's optimisers "
                         "have %d", path, at_st_count(st), expected);
    return 0;
}

int flow_state_load(const char *path, at_optimizer *const *opts, int n, const json_t *settings,
                    const char *flow_path, int *epochs)
{
    at_error err;
    at_safetensors *st = NULL;
    char sha[65];
    if (at_st_open(&st, path, &err))
        return cli_error("train-flow", EXIT_WORK_FAILED, "%s (--resume continues the run that "
                         "train-flow left in --out)", err.message);
    const char *format = at_st_meta(st, "format");
    const char *flow_sha = at_st_meta(st, "flow_sha256");
    const long long done = meta_count(st, "epochs", 100000);
    const long long steps = meta_count(st, "adam_steps", (long long)1 << 50);
    int status = 0;
    if (!format || strcmp(format, FORMAT) || !flow_sha || done < 0 || steps < 0)
        status = cli_error("train-flow", EXIT_WORK_FAILED, "%s: not a train-flow optimizer "
                           "state (no valid format, epochs, adam_steps or flow_sha256)", path);
    if (!status)
        status = same_settings(path, at_st_meta(st, "settings"), settings);
    if (!status && at_file_sha256(flow_path, sha, &err))
        status = cli_error("train-flow", EXIT_WORK_FAILED, "%s", err.message);
    if (!status && strcmp(sha, flow_sha))
        status = cli_error("train-flow", EXIT_WORK_FAILED, "%s: written for another %s (the run "
                           "was stopped between the two files, or one was replaced)", path,
                           flow_path);
    if (!status)
        status = load_buffers(st, path, opts, n);
    for (int m = 0; !status && m < n; m++)
        if (at_optimizer_set_steps(opts[m], steps, &err))
            status = cli_error("train-flow", EXIT_WORK_FAILED, "%s: %s", path, err.message);
    at_st_free(st);
    if (!status)
        *epochs = (int)done;
    return status;
}
