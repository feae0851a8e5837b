/* checkpoint.c: a model's parameters and buffers, and optionally the optimiser's state, in one
 * safetensors file under the names PyTorch's state_dict gives them. A checkpoint therefore loads
 * in PyTorch (safetensors.torch.load_file, drop "optimizer.*", load_state_dict), and a PyTorch
 * state_dict saved with safetensors.torch.save_file loads here as a weights-only file.
 *
 * Tensors are stored exactly as the state_dict holds them: parameters and running statistics as
 * F32, num_batches_tracked as a 0-dim I64. Each state buffer of the optimiser is stored per
 * parameter as "optimizer.<state>.<parameter name>" with the parameter's shape (SGD's
 * "optimizer.momentum.*", Adam's "optimizer.exp_avg.*" and "optimizer.exp_avg_sq.*"), Adam's step
 * count as the 0-dim I64 "optimizer.step", and the optimiser's kind as the metadata "optimizer";
 * a file without that key was written when SGD was the only optimiser. A training run may add
 * its own state under "trainer." (adaptive budgets, a coreset), "generator." and "critic." (the
 * networks a method trains beside the model), which loading passes over: the trainer reads it
 * back from the opened file.
 *
 * An ONNX file (at_is_onnx_path) initialises the model imported from it (at_checkpoint_load_init).
 *
 * Loading is strict (every tensor present, right shape and dtype, finite, nothing unknown) and
 * validates the whole file before writing anything, so a failed load leaves the model and the
 * optimiser exactly as they were. Loading to fine-tune (at_checkpoint_load_init, for
 * at_trainer_init_weights) also checks the input normalisation of a file that describes its model.
 */
#include "io/checkpoint.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#define OPTIMIZER_PREFIX "optimizer."
#define STEP_NAME "optimizer.step"
/* a run's own state beside the model: the trainer's, and the networks methods train beside it */
static const char *const RUN_STATE_PREFIXES[] = {"trainer.", "generator.", "critic.", NULL};
#define CHECKPOINT_FORMAT "advtrain-checkpoint-1"

/* Model tensor names are shorter than 128 bytes (graph.h); this leaves room for the prefix. */
enum { NAME_CAP = 256 };

static const char *dtype_name(at_dtype dtype) { return dtype == AT_I64 ? "I64" : "F32"; }

/* The tensor's storage in the model, or NULL when the model is not finished. */
static void *tensor_storage(const at_tensor_info *t)
{
    return t->dtype == AT_I64 ? (void *)t->data_i64 : (void *)t->data;
}

static size_t tensor_bytes(const at_tensor_info *t)
{
    return t->numel * (t->dtype == AT_I64 ? sizeof(int64_t) : sizeof(float));
}

/* "optimizer.<state>.<param>" */
static int state_name(char *out, const char *state, const char *param, const char *path,
                      at_error *err)
{
    int len = snprintf(out, NAME_CAP, OPTIMIZER_PREFIX "%s.%s", state, param);
    if (len < 0 || len >= NAME_CAP)
        return at_fail(err, AT_ERR_ARG, "%s: tensor name %s is too long", path, param);
    return AT_OK;
}

/* The optimiser (when not NULL) must hold state for exactly the model's parameters. */
static int check_optimizer(at_optimizer *opt, size_t n_params, const char *path, at_error *err)
{
    if (!opt || at_optimizer_state_count(opt) == 0)
        return AT_OK;
    size_t count = at_optimizer_state(opt, 0).count;
    if (count != n_params)
        return at_fail(err, AT_ERR_ARG,
                       "%s: the optimiser holds %zu values but the model has %zu parameters", path,
                       count, n_params);
    return AT_OK;
}

static bool is_run_state(const char *name)
{
    for (int i = 0; RUN_STATE_PREFIXES[i]; i++)
        if (!strncmp(name, RUN_STATE_PREFIXES[i], strlen(RUN_STATE_PREFIXES[i])))
            return true;
    return false;
}

int at_checkpoint_save(const char *path, const at_model *model, at_optimizer *opt,
                       const at_kv *meta, int n_meta, at_error *err)
{
    return at_checkpoint_save_with(path, model, opt, meta, n_meta, NULL, 0, err);
}

/* The optimiser's buffers for one parameter tensor `t` of the model. */
static int add_state(at_st_writer *w, at_optimizer *opt, const at_tensor_info *t,
                     const float *params, const char *path, at_error *err)
{
    int status = AT_OK;
    for (int s = 0; s < at_optimizer_state_count(opt) && status == AT_OK; s++) {
        at_optimizer_state_info state = at_optimizer_state(opt, s);
        char name[NAME_CAP];
        status = state_name(name, state.name, t->name, path, err);
        if (status == AT_OK)
            status = at_st_writer_add(w, name, "F32", t->ndim, t->shape,
                                      state.data + (t->data - params), tensor_bytes(t), err);
    }
    return status;
}

int at_checkpoint_save_with(const char *path, const at_model *model, at_optimizer *opt,
                            const at_kv *meta, int n_meta, const at_st_tensor *extra, int n_extra,
                            at_error *err)
{
    if (!path || !model || n_meta < 0 || (n_meta > 0 && !meta) || n_extra < 0 ||
        (n_extra > 0 && !extra))
        return at_fail(err, AT_ERR_ARG, "at_checkpoint_save: invalid argument");
    for (int i = 0; i < n_extra; i++)
        if (!extra[i].name || !is_run_state(extra[i].name))
            return at_fail(err, AT_ERR_ARG, "%s: extra tensor %s is not named trainer.*, "
                           "generator.* or critic.*", path, extra[i].name ? extra[i].name : "(null)");
    /* at_model_params only reads; it takes a non-const model because it hands out a writable
     * pointer. State offsets are parameter offsets inside this slab. */
    size_t n_params;
    const float *params = at_model_params((at_model *)model, &n_params);
    int status = check_optimizer(opt, n_params, path, err);
    if (status != AT_OK)
        return status;
    at_st_writer *w;
    status = at_st_writer_create(&w, err);
    if (status != AT_OK)
        return status;

    int n = at_model_tensor_count(model);
    for (int i = 0; i < n && status == AT_OK; i++) {
        at_tensor_info t = at_model_tensor(model, i);
        if (t.numel > 0 && !tensor_storage(&t)) {
            status = at_fail(err, AT_ERR_STATE, "%s: the model is not finished", path);
            break;
        }
        status = at_st_writer_add(w, t.name, dtype_name(t.dtype), t.ndim, t.shape,
                                  tensor_storage(&t), tensor_bytes(&t), err);
        if (status == AT_OK && opt && t.is_param)
            status = add_state(w, opt, &t, params, path, err);
    }
    /* the writer keeps a pointer to the data until it saves */
    const int64_t steps = opt ? at_optimizer_steps(opt) : -1;
    if (status == AT_OK && steps >= 0)
        status = at_st_writer_add(w, STEP_NAME, "I64", 0, NULL, &steps, sizeof steps, err);
    for (int i = 0; i < n_extra && status == AT_OK; i++)
        status = at_st_writer_add(w, extra[i].name, extra[i].dtype, extra[i].ndim, extra[i].shape,
                                  extra[i].data, extra[i].nbytes, err);
    bool has_format = false, has_optimizer = false;
    for (int i = 0; i < n_meta && status == AT_OK; i++) {
        status = at_st_writer_meta(w, meta[i].key, meta[i].value, err);
        if (meta[i].key && strcmp(meta[i].key, "format") == 0)
            has_format = true;
        if (meta[i].key && strcmp(meta[i].key, "optimizer") == 0)
            has_optimizer = true;
    }
    if (status == AT_OK && !has_format)
        status = at_st_writer_meta(w, "format", CHECKPOINT_FORMAT, err);
    if (status == AT_OK && opt && !has_optimizer)
        status = at_st_writer_meta(w, "optimizer",
                                   at_optimizer_kind_name(at_optimizer_get_options(opt)->kind), err);
    if (status == AT_OK)
        status = at_st_writer_save(w, path, err);
    at_st_writer_free(w);
    return status;
}

/* How file names map to model names: the file may put a prefix before every model tensor (a
 * PyTorch wrapper module, "model." or "module.") and hold extra tensors to pass over. */
typedef struct name_view {
    const char *prefix;
    const char *const *ignore;
} name_view;

static const at_st_tensor *find_saved(const at_safetensors *st, const name_view *v, const char *name)
{
    if (!v->prefix || !v->prefix[0])
        return at_st_find(st, name);
    char full[NAME_CAP * 2];
    snprintf(full, sizeof full, "%s%s", v->prefix, name);
    return at_st_find(st, full);
}

static bool ignored(const name_view *v, const char *name)
{
    for (int i = 0; v->ignore && v->ignore[i]; i++)
        if (strcmp(v->ignore[i], name) == 0)
            return true;
    return false;
}

static void format_shape(char *out, size_t cap, int ndim, const int64_t *shape)
{
    size_t used = (size_t)snprintf(out, cap, "[");
    for (int i = 0; i < ndim && used < cap; i++)
        used += (size_t)snprintf(out + used, cap - used, "%s%lld", i ? ", " : "",
                                 (long long)shape[i]);
    if (used < cap)
        snprintf(out + used, cap - used, "]");
}

/* A file tensor against what the model expects: shape, dtype, and finite values for floats. */
static int check_tensor(const char *path, const at_st_tensor *t, const at_tensor_info *want,
                        at_error *err)
{
    bool same_shape = t->ndim == want->ndim;
    for (int d = 0; same_shape && d < t->ndim; d++)
        same_shape = t->shape[d] == want->shape[d];
    if (!same_shape) {
        char got[128], expected[128];
        format_shape(got, sizeof got, t->ndim, t->shape);
        format_shape(expected, sizeof expected, want->ndim, want->shape);
        return at_fail(err, AT_ERR_SHAPE, "%s: tensor %s has shape %s but the model expects %s",
                       path, t->name, got, expected);
    }
    const char *dtype = dtype_name(want->dtype);
    if (strcmp(t->dtype, dtype) != 0)
        return at_fail(err, AT_ERR_FORMAT, "%s: tensor %s has dtype %s but the model expects %s",
                       path, t->name, t->dtype, dtype);
    if (want->dtype != AT_F32)
        return AT_OK;
    /* The file's bytes need not be aligned for float, so each value is copied out. */
    const unsigned char *bytes = t->data;
    for (size_t i = 0; i < want->numel; i++) {
        float v;
        memcpy(&v, bytes + i * sizeof v, sizeof v);
        if (!isfinite(v))
            return at_fail(err, AT_ERR_NUMERIC, "%s: tensor %s holds a non-finite value (%g at "
                           "index %zu)", path, t->name, (double)v, i);
    }
    return AT_OK;
}

/* A tensor of opt's state: "optimizer.<state>.<param>" for one of its states and a parameter of
 * the model, or the step count of an optimiser that keeps one. */
static bool is_state_tensor(const char *name, at_optimizer *opt, const at_model *model)
{
    if (strcmp(name, STEP_NAME) == 0)
        return at_optimizer_steps(opt) >= 0;
    name += strlen(OPTIMIZER_PREFIX);
    for (int s = 0; s < at_optimizer_state_count(opt); s++) {
        const char *state = at_optimizer_state(opt, s).name;
        const size_t len = strlen(state);
        if (strncmp(name, state, len) == 0 && name[len] == '.') {
            int index = at_model_find_tensor(model, name + len + 1);
            return index >= 0 && at_model_tensor(model, index).is_param;
        }
    }
    return false;
}

/* Every tensor of the file must be the model's or, when resuming (opt not NULL), the
 * optimiser's. */
static int check_no_strangers(const char *path, const at_safetensors *st, const at_model *model,
                              at_optimizer *opt, const name_view *v, int *n_state, at_error *err)
{
    const size_t prefix_len = strlen(OPTIMIZER_PREFIX);
    const size_t view_len = v->prefix ? strlen(v->prefix) : 0;
    *n_state = 0;
    for (int i = 0; i < at_st_count(st); i++) {
        const char *name = at_st_get(st, i)->name;
        if (ignored(v, name))
            continue;
        if (view_len) {
            if (strncmp(name, v->prefix, view_len) != 0)
                return at_fail(err, AT_ERR_FORMAT, "%s: unexpected tensor %s", path, name);
            name += view_len;
        }
        if (is_run_state(name))
            continue; /* a run's own state: the trainer reads it */
        bool known;
        if (strncmp(name, OPTIMIZER_PREFIX, prefix_len) == 0) {
            (*n_state)++;
            if (!opt)
                continue; /* the optimiser's state, not wanted this time */
            known = is_state_tensor(name, opt, model);
        } else {
            known = at_model_find_tensor(model, name) >= 0;
        }
        if (!known)
            return at_fail(err, AT_ERR_FORMAT, "%s: unexpected tensor %s", path, name);
    }
    return AT_OK;
}

/* A file with optimiser state must hold the state of the kind of optimiser resuming from it. */
static int check_kind(const char *path, const at_safetensors *st, const at_optimizer *opt,
                      at_error *err)
{
    const char *saved = at_st_meta(st, "optimizer");
    bool has_state = saved != NULL;
    for (int i = 0; i < at_st_count(st) && !has_state; i++)
        has_state = !strncmp(at_st_get(st, i)->name, OPTIMIZER_PREFIX, strlen(OPTIMIZER_PREFIX));
    if (!has_state)
        return AT_OK; /* weights only: validate says so */
    if (!saved)
        saved = "sgd"; /* written when SGD was the only optimiser */
    const char *kind = at_optimizer_kind_name(at_optimizer_get_options(opt)->kind);
    if (strcmp(saved, kind) != 0)
        return at_fail(err, AT_ERR_FORMAT, "%s holds the state of optimizer %s, but the optimizer "
                       "to resume is %s", path, saved, kind);
    return AT_OK;
}

/* The saved step count, a 0-dim I64 >= 0. */
static int saved_steps(const char *path, const at_safetensors *st, int64_t *steps, at_error *err)
{
    const at_st_tensor *t = at_st_find(st, STEP_NAME);
    if (!t)
        return at_fail(err, AT_ERR_NOTFOUND, "%s: missing tensor %s", path, STEP_NAME);
    if (strcmp(t->dtype, "I64") != 0 || t->ndim != 0 || t->nbytes != sizeof *steps)
        return at_fail(err, AT_ERR_FORMAT, "%s: tensor %s is not a 0-dim I64", path, STEP_NAME);
    memcpy(steps, t->data, sizeof *steps); /* the file's bytes need not be aligned */
    if (*steps < 0)
        return at_fail(err, AT_ERR_FORMAT, "%s: tensor %s holds %lld", path, STEP_NAME,
                       (long long)*steps);
    return AT_OK;
}

static int validate(const char *path, const at_safetensors *st, const at_model *model,
                    at_optimizer *opt, const name_view *v, at_error *err)
{
    int n = at_model_tensor_count(model), n_param_tensors = 0;
    for (int i = 0; i < n; i++) {
        at_tensor_info want = at_model_tensor(model, i);
        if (want.numel > 0 && !tensor_storage(&want))
            return at_fail(err, AT_ERR_STATE, "%s: the model is not finished", path);
        const at_st_tensor *t = find_saved(st, v, want.name);
        if (!t)
            return at_fail(err, AT_ERR_NOTFOUND, "%s: missing tensor %s%s (is this a checkpoint of "
                           "%s?)", path, v->prefix ? v->prefix : "", want.name, at_model_arch(model));
        int status = check_tensor(path, t, &want, err);
        if (status != AT_OK)
            return status;
        n_param_tensors += want.is_param;
    }
    int status = opt ? check_kind(path, st, opt, err) : AT_OK;
    int n_state;
    if (status == AT_OK)
        status = check_no_strangers(path, st, model, opt, v, &n_state, err);
    if (status != AT_OK || !opt)
        return status;
    if (n_state == 0 && n_param_tensors > 0)
        return at_fail(err, AT_ERR_NOTFOUND,
                       "%s has no optimiser state; cannot resume from a weights-only file", path);
    for (int i = 0; i < n; i++) {
        at_tensor_info want = at_model_tensor(model, i);
        for (int s = 0; want.is_param && s < at_optimizer_state_count(opt); s++) {
            char name[NAME_CAP];
            status = state_name(name, at_optimizer_state(opt, s).name, want.name, path, err);
            if (status != AT_OK)
                return status;
            const at_st_tensor *t = at_st_find(st, name);
            if (!t)
                return at_fail(err, AT_ERR_NOTFOUND, "%s: missing tensor %s", path, name);
            status = check_tensor(path, t, &want, err);
            if (status != AT_OK)
                return status;
        }
    }
    int64_t steps;
    return at_optimizer_steps(opt) >= 0 ? saved_steps(path, st, &steps, err) : AT_OK;
}

/* Runs only after validate, so every lookup succeeds and every size matches. */
static void copy_in(const at_safetensors *st, const name_view *v, at_model *model,
                    const float *params, at_optimizer *opt)
{
    int n = at_model_tensor_count(model);
    for (int i = 0; i < n; i++) {
        at_tensor_info t = at_model_tensor(model, i);
        const at_st_tensor *saved = find_saved(st, v, t.name);
        if (saved->nbytes)
            memcpy(tensor_storage(&t), saved->data, saved->nbytes);
        for (int s = 0; opt && t.is_param && s < at_optimizer_state_count(opt); s++) {
            at_optimizer_state_info state = at_optimizer_state(opt, s);
            char name[NAME_CAP];
            snprintf(name, sizeof name, OPTIMIZER_PREFIX "%s.%s", state.name, t.name);
            saved = at_st_find(st, name);
            if (saved->nbytes)
                memcpy(state.data + (t.data - params), saved->data, saved->nbytes);
        }
    }
    int64_t steps;
    if (opt && at_optimizer_steps(opt) >= 0 && saved_steps("", st, &steps, NULL) == AT_OK)
        at_optimizer_set_steps(opt, steps, NULL);
}

/* "[0.5, 0.25]": at most 4 channels, as at_model_options holds. */
static void format_floats(char *out, size_t cap, const float *values, int n)
{
    size_t used = (size_t)snprintf(out, cap, "[");
    for (int i = 0; i < n && used < cap; i++)
        used += (size_t)snprintf(out + used, cap - used, "%s%g", i ? ", " : "", (double)values[i]);
    if (used < cap)
        snprintf(out + used, cap - used, "]");
}

/* Reads a description's per-channel list into `out` for the model's c channels; a list of fewer
 * values repeats (a frame model's one channel on every frame of a clip). False when malformed. */
static bool read_channels(json_t *list, float *out, int c)
{
    const size_t n = json_array_size(list);
    if (n == 0 || n > 4)
        return false;
    for (int i = 0; i < c && i < 4; i++) {
        json_t *v = json_array_get(list, (size_t)i % n);
        if (!json_is_number(v))
            return false;
        out[i] = (float)json_number_value(v);
    }
    return true;
}

/* Weights trained on inputs normalised one way start a model that normalises them another way
 * (or not at all) from nonsense, and nothing in the tensors shows it: the normalisation lives in
 * the model description ("model" metadata), which only advtrain checkpoints carry. */
static int check_normalisation(const char *path, const at_safetensors *st, const at_model *model,
                               at_error *err)
{
    const char *spec = at_st_meta(st, "model");
    if (!spec)
        return AT_OK; /* a state_dict: nothing to compare */
    json_error_t jerr;
    json_t *root = json_loads(spec, 0, &jerr);
    if (!root)
        return at_fail(err, AT_ERR_FORMAT, "%s: its model description is not JSON: %s", path,
                       jerr.text);
    const at_model_options *o = at_model_get_options(model);
    int c, h, w;
    at_model_input_shape(model, &c, &h, &w);
    c = c < 4 ? c : 4;
    json_t *mean = json_object_get(root, "mean"), *std = json_object_get(root, "std");
    const bool file_normalises = mean || std;
    float file_mean[4] = {0}, file_std[4] = {0};
    int status = AT_OK;
    if (file_normalises && (!read_channels(mean, file_mean, c) || !read_channels(std, file_std, c)))
        status = at_fail(err, AT_ERR_FORMAT, "%s: its model description has an invalid mean/std",
                         path);
    bool same = !status && file_normalises == (o->normalize != 0);
    for (int i = 0; same && file_normalises && i < c; i++)
        same = file_mean[i] == o->mean[i] && file_std[i] == o->std[i];
    json_decref(root);
    if (status || same)
        return status;
    char file_text[112] = "", model_text[112] = "";
    if (file_normalises) {
        char m[48], sd[48];
        format_floats(m, sizeof m, file_mean, c);
        format_floats(sd, sizeof sd, file_std, c);
        snprintf(file_text, sizeof file_text, "mean %s, std %s", m, sd);
    }
    if (o->normalize) {
        char m[48], sd[48];
        format_floats(m, sizeof m, o->mean, c);
        format_floats(sd, sizeof sd, o->std, c);
        snprintf(model_text, sizeof model_text, "mean %s, std %s", m, sd);
    }
    if (!o->normalize)
        return at_fail(err, AT_ERR_ARG, "%s: its model normalises inputs (%s) but the model to "
                       "train does not", path, file_text);
    if (!file_normalises)
        return at_fail(err, AT_ERR_ARG, "%s: its model does not normalise inputs but the model to "
                       "train does (%s)", path, model_text);
    return at_fail(err, AT_ERR_ARG, "%s: its model normalises inputs with %s but the model to "
                   "train with %s", path, file_text, model_text);
}

static int load(const char *path, at_model *model, at_optimizer *opt, const name_view *v,
                bool same_inputs, at_safetensors **st_out, at_error *err)
{
    if (st_out)
        *st_out = NULL;
    if (!path || !model)
        return at_fail(err, AT_ERR_ARG, "at_checkpoint_load: invalid argument");
    size_t n_params;
    const float *params = at_model_params(model, &n_params);
    int status = check_optimizer(opt, n_params, path, err);
    if (status != AT_OK)
        return status;
    at_safetensors *st;
    status = at_st_open(&st, path, err);
    if (status != AT_OK)
        return status;
    status = validate(path, st, model, opt, v, err);
    if (status == AT_OK && same_inputs)
        status = check_normalisation(path, st, model, err);
    if (status == AT_OK)
        copy_in(st, v, model, params, opt);
    if (status == AT_OK && st_out)
        *st_out = st;
    else
        at_st_free(st);
    return status;
}

int at_checkpoint_load(const char *path, at_model *model, at_optimizer *opt,
                       at_safetensors **st_out, at_error *err)
{
    const name_view plain = {NULL, NULL};
    return load(path, model, opt, &plain, false, st_out, err);
}

int at_checkpoint_load_init(const char *path, at_model *model, at_error *err)
{
    if (at_is_onnx_path(path)) { /* the weights of the graph the model was imported from */
        at_model *source = NULL;
        int status = at_model_import_onnx(&source, path, err);
        if (status == AT_OK && strcmp(at_model_arch(model), at_model_arch(source)) != 0)
            status = at_fail(err, AT_ERR_ARG, "%s: an ONNX model initialises only the model "
                             "imported from it, not %s", path, at_model_arch(model));
        if (status == AT_OK)
            status = at_model_copy_weights(model, source, err);
        at_model_free(source);
        return status;
    }
    const name_view plain = {NULL, NULL};
    return load(path, model, NULL, &plain, true, NULL, err);
}

int at_checkpoint_import(const char *path, at_model *model, const char *prefix,
                         const char *const *ignore, at_error *err)
{
    const name_view v = {prefix, ignore};
    return load(path, model, NULL, &v, false, NULL, err);
}
