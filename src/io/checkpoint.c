/* checkpoint.c: a model's parameters and buffers, and optionally the optimiser's momentum, in one
 * safetensors file under the names PyTorch's state_dict gives them. A checkpoint therefore loads
 * in PyTorch (safetensors.torch.load_file, drop "optimizer.*", load_state_dict), and a PyTorch
 * state_dict saved with safetensors.torch.save_file loads here as a weights-only file.
 *
 * Tensors are stored exactly as the state_dict holds them: parameters and running statistics as
 * F32, num_batches_tracked as a 0-dim I64. The momentum of each parameter is
 * "optimizer.momentum.<parameter name>" with the parameter's shape. A training run may add
 * its own state under "trainer." (adaptive budgets, a coreset), which loading passes over: the
 * trainer reads it back from the opened file.
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

#define MOMENTUM_PREFIX "optimizer.momentum."
#define TRAINER_PREFIX "trainer."
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

static int momentum_name(char *out, const char *param, const char *path, at_error *err)
{
    int len = snprintf(out, NAME_CAP, MOMENTUM_PREFIX "%s", param);
    if (len < 0 || len >= NAME_CAP)
        return at_fail(err, AT_ERR_ARG, "%s: tensor name %s is too long", path, param);
    return AT_OK;
}

/* The optimiser's momentum slab (NULL when sgd is NULL); it must match the model's parameters. */
static int momentum_of(at_sgd *sgd, size_t n_params, float **out, const char *path, at_error *err)
{
    *out = NULL;
    if (!sgd)
        return AT_OK;
    size_t count;
    *out = at_sgd_momentum(sgd, &count);
    if (count != n_params)
        return at_fail(err, AT_ERR_ARG,
                       "%s: the optimiser holds %zu values but the model has %zu parameters", path,
                       count, n_params);
    return AT_OK;
}

int at_checkpoint_save(const char *path, const at_model *model, at_sgd *sgd, const at_kv *meta,
                       int n_meta, at_error *err)
{
    return at_checkpoint_save_with(path, model, sgd, meta, n_meta, NULL, 0, err);
}

int at_checkpoint_save_with(const char *path, const at_model *model, at_sgd *sgd,
                            const at_kv *meta, int n_meta, const at_st_tensor *extra, int n_extra,
                            at_error *err)
{
    if (!path || !model || n_meta < 0 || (n_meta > 0 && !meta) || n_extra < 0 ||
        (n_extra > 0 && !extra))
        return at_fail(err, AT_ERR_ARG, "at_checkpoint_save: invalid argument");
    for (int i = 0; i < n_extra; i++)
        if (!extra[i].name || strncmp(extra[i].name, TRAINER_PREFIX, strlen(TRAINER_PREFIX)) != 0)
            return at_fail(err, AT_ERR_ARG, "%s: extra tensor %s is not named trainer.*", path,
                           extra[i].name ? extra[i].name : "(null)");
    /* at_model_params only reads; it takes a non-const model because it hands out a writable
     * pointer. Momentum offsets are parameter offsets inside this slab. */
    size_t n_params;
    const float *params = at_model_params((at_model *)model, &n_params);
    float *momentum;
    int status = momentum_of(sgd, n_params, &momentum, path, err);
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
        if (status != AT_OK || !momentum || !t.is_param)
            continue;
        char name[NAME_CAP];
        status = momentum_name(name, t.name, path, err);
        if (status == AT_OK)
            status = at_st_writer_add(w, name, "F32", t.ndim, t.shape, momentum + (t.data - params),
                                      tensor_bytes(&t), err);
    }
    for (int i = 0; i < n_extra && status == AT_OK; i++)
        status = at_st_writer_add(w, extra[i].name, extra[i].dtype, extra[i].ndim, extra[i].shape,
                                  extra[i].data, extra[i].nbytes, err);
    bool has_format = false;
    for (int i = 0; i < n_meta && status == AT_OK; i++) {
        status = at_st_writer_meta(w, meta[i].key, meta[i].value, err);
        if (meta[i].key && strcmp(meta[i].key, "format") == 0)
            has_format = true;
    }
    if (status == AT_OK && !has_format)
        status = at_st_writer_meta(w, "format", CHECKPOINT_FORMAT, err);
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

/* Every tensor of the file must be the model's or, when resuming, the optimiser's. */
static int check_no_strangers(const char *path, const at_safetensors *st, const at_model *model,
                              bool resuming, const name_view *v, int *n_momentum, at_error *err)
{
    const size_t prefix_len = strlen(MOMENTUM_PREFIX);
    const size_t view_len = v->prefix ? strlen(v->prefix) : 0;
    *n_momentum = 0;
    for (int i = 0; i < at_st_count(st); i++) {
        const char *name = at_st_get(st, i)->name;
        if (ignored(v, name))
            continue;
        if (view_len) {
            if (strncmp(name, v->prefix, view_len) != 0)
                return at_fail(err, AT_ERR_FORMAT, "%s: unexpected tensor %s", path, name);
            name += view_len;
        }
        if (!strncmp(name, TRAINER_PREFIX, strlen(TRAINER_PREFIX)))
            continue; /* a run's own state: the trainer reads it */
        bool is_momentum = strncmp(name, MOMENTUM_PREFIX, prefix_len) == 0;
        if (is_momentum)
            (*n_momentum)++;
        if (is_momentum && !resuming)
            continue; /* the optimiser's state, not wanted this time */
        int index = at_model_find_tensor(model, is_momentum ? name + prefix_len : name);
        bool known = index >= 0 && (!is_momentum || at_model_tensor(model, index).is_param);
        if (!known)
            return at_fail(err, AT_ERR_FORMAT, "%s: unexpected tensor %s", path, name);
    }
    return AT_OK;
}

static int validate(const char *path, const at_safetensors *st, const at_model *model,
                    bool resuming, const name_view *v, at_error *err)
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
    int n_momentum;
    int status = check_no_strangers(path, st, model, resuming, v, &n_momentum, err);
    if (status != AT_OK || !resuming)
        return status;
    if (n_momentum == 0 && n_param_tensors > 0)
        return at_fail(err, AT_ERR_NOTFOUND,
                       "%s has no optimiser state; cannot resume from a weights-only file", path);
    for (int i = 0; i < n; i++) {
        at_tensor_info want = at_model_tensor(model, i);
        if (!want.is_param)
            continue;
        char name[NAME_CAP];
        status = momentum_name(name, want.name, path, err);
        if (status != AT_OK)
            return status;
        const at_st_tensor *t = at_st_find(st, name);
        if (!t)
            return at_fail(err, AT_ERR_NOTFOUND, "%s: missing tensor %s", path, name);
        status = check_tensor(path, t, &want, err);
        if (status != AT_OK)
            return status;
    }
    return AT_OK;
}

/* Runs only after validate, so every lookup succeeds and every size matches. */
static void copy_in(const at_safetensors *st, const name_view *v, at_model *model,
                    const float *params, float *momentum)
{
    int n = at_model_tensor_count(model);
    for (int i = 0; i < n; i++) {
        at_tensor_info t = at_model_tensor(model, i);
        const at_st_tensor *saved = find_saved(st, v, t.name);
        if (saved->nbytes)
            memcpy(tensor_storage(&t), saved->data, saved->nbytes);
        if (!momentum || !t.is_param)
            continue;
        char name[NAME_CAP];
        snprintf(name, sizeof name, MOMENTUM_PREFIX "%s", t.name);
        saved = at_st_find(st, name);
        if (saved->nbytes)
            memcpy(momentum + (t.data - params), saved->data, saved->nbytes);
    }
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

static int load(const char *path, at_model *model, at_sgd *sgd, const name_view *v,
                bool same_inputs, at_safetensors **st_out, at_error *err)
{
    if (st_out)
        *st_out = NULL;
    if (!path || !model)
        return at_fail(err, AT_ERR_ARG, "at_checkpoint_load: invalid argument");
    size_t n_params;
    const float *params = at_model_params(model, &n_params);
    float *momentum;
    int status = momentum_of(sgd, n_params, &momentum, path, err);
    if (status != AT_OK)
        return status;
    at_safetensors *st;
    status = at_st_open(&st, path, err);
    if (status != AT_OK)
        return status;
    status = validate(path, st, model, sgd != NULL, v, err);
    if (status == AT_OK && same_inputs)
        status = check_normalisation(path, st, model, err);
    if (status == AT_OK)
        copy_in(st, v, model, params, momentum);
    if (status == AT_OK && st_out)
        *st_out = st;
    else
        at_st_free(st);
    return status;
}

int at_checkpoint_load(const char *path, at_model *model, at_sgd *sgd, at_safetensors **st_out,
                       at_error *err)
{
    const name_view plain = {NULL, NULL};
    return load(path, model, sgd, &plain, false, st_out, err);
}

int at_checkpoint_load_init(const char *path, at_model *model, at_error *err)
{
    const name_view plain = {NULL, NULL};
    return load(path, model, NULL, &plain, true, NULL, err);
}

int at_checkpoint_import(const char *path, at_model *model, const char *prefix,
                         const char *const *ignore, at_error *err)
{
    const name_view v = {prefix, ignore};
    return load(path, model, NULL, &v, false, NULL, err);
}
