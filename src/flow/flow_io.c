/* flow_io.c: a flow's file: safetensors holding each step's tensors as "step<i>.net.<name>" (the
 * coupling network) and "step<i>.mix.weight" (the 1x1 convolution), steps numbered scale-major,
 * and the metadata "flow", a JSON object {"channels", "height", "width", "scales", "steps",
 * "hidden", "reverse", "alpha"} from which at_flow_load rebuilds the network. */
#include "flow/flow.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FORMAT "advtrain-flow-1"

enum { NAME_CAP = 128 };

/* The i-th tensor of the flow's file: its name and the model tensor it holds. */
static int tensor_at(const at_flow *f, int step, bool mix, int index, char *name,
                     at_tensor_info *t)
{
    const at_flow_step *s = &f->steps[step];
    at_model *m = mix ? s->mix : s->net;
    if (index >= at_model_tensor_count(m))
        return 0;
    *t = at_model_tensor(m, index);
    snprintf(name, NAME_CAP, "step%d.%s.%s", step, mix ? "mix" : "net", t->name);
    return 1;
}

int at_flow_save(const char *path, const at_flow *f, at_error *err)
{
    if (!path || !f)
        return at_fail(err, AT_ERR_ARG, "at_flow_save: invalid argument");
    const int total = f->o.scales * f->o.steps;
    int count = 0;
    for (int i = 0; i < total; i++)
        count += at_model_tensor_count(f->steps[i].net) + at_model_tensor_count(f->steps[i].mix);
    char (*names)[NAME_CAP] = calloc((size_t)count, NAME_CAP);
    at_st_writer *w = NULL;
    int status = names ? at_st_writer_create(&w, err) : at_fail(err, AT_ERR_NOMEM, "out of memory");
    int k = 0;
    for (int i = 0; !status && i < total; i++)
        for (int mix = 0; mix < 2 && !status; mix++) {
            at_tensor_info t;
            for (int j = 0; !status && tensor_at(f, i, mix, j, names[k], &t); j++, k++)
                status = at_st_writer_add(w, names[k], "F32", t.ndim, t.shape, t.data,
                                          t.numel * sizeof(float), err);
        }
    char spec[320];
    snprintf(spec, sizeof spec,
             "{\"channels\":%d,\"height\":%d,\"width\":%d,\"scales\":%d,\"steps\":%d,"
             "\"hidden\":%d,\"reverse\":%s,\"alpha\":%.9g}",
             f->o.channels, f->o.height, f->o.width, f->o.scales, f->o.steps, f->o.hidden,
             f->o.reverse ? "true" : "false", (double)f->o.alpha);
    if (!status)
        status = at_st_writer_meta(w, "format", FORMAT, err);
    if (!status)
        status = at_st_writer_meta(w, "advtrain_version", AT_VERSION_STRING, err);
    if (!status)
        status = at_st_writer_meta(w, "flow", spec, err);
    if (!status)
        status = at_st_writer_save(w, path, err);
    at_st_writer_free(w);
    free(names);
    return status;
}

static int spec_int(json_t *spec, const char *key, int *out, const char *path, at_error *err)
{
    json_t *v = json_object_get(spec, key);
    if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 1 << 16)
        return at_fail(err, AT_ERR_FORMAT, "%s: the flow metadata has no valid \"%s\"", path, key);
    *out = (int)json_integer_value(v);
    return AT_OK;
}

static int read_spec(const at_safetensors *st, const char *path, at_flow_options *o,
                     at_error *err)
{
    const char *text = at_st_meta(st, "flow");
    json_error_t jerr;
    json_t *spec = text ? json_loads(text, 0, &jerr) : NULL;
    if (!spec)
        return at_fail(err, AT_ERR_FORMAT, "%s: not a flow file (no valid \"flow\" metadata; "
                       "write one with advtrain train-flow)", path);
    int status = spec_int(spec, "channels", &o->channels, path, err);
    if (!status)
        status = spec_int(spec, "height", &o->height, path, err);
    if (!status)
        status = spec_int(spec, "width", &o->width, path, err);
    if (!status)
        status = spec_int(spec, "scales", &o->scales, path, err);
    if (!status)
        status = spec_int(spec, "steps", &o->steps, path, err);
    if (!status)
        status = spec_int(spec, "hidden", &o->hidden, path, err);
    json_t *rev = json_object_get(spec, "reverse"), *alpha = json_object_get(spec, "alpha");
    if (!status && (!json_is_boolean(rev) || !json_is_number(alpha)))
        status = at_fail(err, AT_ERR_FORMAT, "%s: the flow metadata has no valid \"reverse\" "
                         "and \"alpha\"", path);
    if (!status) {
        o->reverse = json_is_true(rev);
        o->alpha = (float)json_number_value(alpha);
    }
    json_decref(spec);
    return status;
}

int at_flow_load(at_flow **out, const char *path, int max_batch, at_error *err)
{
    *out = NULL;
    at_safetensors *st = NULL;
    int status = at_st_open(&st, path, err);
    if (status)
        return status;
    at_flow_options o = {0};
    at_flow *f = NULL;
    at_error build;
    status = read_spec(st, path, &o, err);
    if (!status && at_flow_create(&f, &o, max_batch, &build))
        status = at_fail(err, AT_ERR_FORMAT, "%s: %s", path, build.message);
    const int total = f ? f->o.scales * f->o.steps : 0;
    int expected = 0;
    char name[NAME_CAP];
    for (int i = 0; !status && i < total; i++)
        for (int mix = 0; mix < 2 && !status; mix++) {
            at_tensor_info t;
            for (int j = 0; !status && tensor_at(f, i, mix, j, name, &t); j++) {
                expected++;
                const at_st_tensor *s = at_st_find(st, name);
                bool ok = s && !strcmp(s->dtype, "F32") && s->ndim == t.ndim &&
                          s->nbytes == t.numel * sizeof(float);
                for (int d = 0; ok && d < t.ndim; d++)
                    ok = s->shape[d] == t.shape[d];
                if (!ok) {
                    status = at_fail(err, AT_ERR_FORMAT, "%s: tensor %s is %s", path, name,
                                     s ? "of the wrong dtype or shape" : "missing");
                    break;
                }
                memcpy(t.data, s->data, s->nbytes);
                for (size_t e = 0; e < t.numel; e++)
                    if (!isfinite(t.data[e])) {
                        status = at_fail(err, AT_ERR_FORMAT, "%s: tensor %s is not finite", path,
                                         name);
                        break;
                    }
            }
        }
    if (!status && at_st_count(st) != expected)
        status = at_fail(err, AT_ERR_FORMAT, "%s: %d tensors, a flow of this shape has %d", path,
                         at_st_count(st), expected);
    at_st_free(st);
    if (status) {
        at_flow_free(f);
        return status;
    }
    *out = f;
    return AT_OK;
}
