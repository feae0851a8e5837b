/* method_options.c: a method's own options, declared as a table in its file, turned into values.
 * A value arrives as text (the command line's, a configuration file's, or a program's through
 * at_train_config_set), so one parser checks it the same way whichever way it came. */
#include "train/method.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const at_option_info *at_method_option(const char *method, int index)
{
    const at_method *m = method ? at_method_find(method) : NULL;
    if (!m || index < 0 || index >= m->n_options)
        return NULL;
    return &m->options[index];
}

int at_train_config_set(at_train_config *c, const char *name, const char *value)
{
    for (int i = 0; i < c->n_method_options; i++)
        if (!strcmp(c->method_options[i].name, name)) {
            c->method_options[i].value = value;
            return AT_OK;
        }
    if (c->n_method_options >= AT_MAX_METHOD_OPTIONS)
        return AT_ERR_ARG;
    c->method_options[c->n_method_options++] = (at_option_value){name, value};
    return AT_OK;
}

/* Index of `value` among "a|b|c", or -1. */
static int choice_index(const char *choices, const char *value)
{
    size_t len = strlen(value);
    int index = 0;
    for (const char *p = choices; *p; index++) {
        const char *bar = strchr(p, '|');
        size_t n = bar ? (size_t)(bar - p) : strlen(p);
        if (n == len && !strncmp(p, value, n))
            return index;
        if (!bar)
            break;
        p = bar + 1;
    }
    return -1;
}

static int parse_value(const at_option_info *o, const char *text, double *out, at_error *err)
{
    char *end = NULL;
    errno = 0;
    switch (o->type) {
    case AT_OPTION_FLOAT:
    case AT_OPTION_INT: {
        double v = o->type == AT_OPTION_FLOAT ? strtod(text, &end) : (double)strtol(text, &end, 10);
        if (!text[0] || *end || errno == ERANGE || !isfinite(v))
            return at_fail(err, AT_ERR_ARG, "option %s expects %s, got '%s'", o->name,
                           o->type == AT_OPTION_INT ? "an integer" : "a number", text);
        if (v < o->min || v > o->max)
            return at_fail(err, AT_ERR_ARG, "option %s out of range (%g..%g): %s", o->name, o->min,
                           o->max, text);
        *out = v;
        return AT_OK;
    }
    case AT_OPTION_FLAG:
        if (strcmp(text, "true") && strcmp(text, "false"))
            return at_fail(err, AT_ERR_ARG, "option %s takes true or false, got '%s'", o->name, text);
        *out = !strcmp(text, "true");
        return AT_OK;
    case AT_OPTION_CHOICE: {
        int i = choice_index(o->choices, text);
        if (i < 0)
            return at_fail(err, AT_ERR_ARG, "option %s must be one of %s, got '%s'", o->name,
                           o->choices, text);
        *out = i;
        return AT_OK;
    }
    }
    return at_fail(err, AT_ERR_ARG, "option %s has an unknown type", o->name);
}

int at_method_resolve_options(const at_method *m, const at_train_config *c, double *values,
                              bool *given, at_error *err)
{
    for (int k = 0; k < c->n_method_options; k++) {
        const at_option_value *v = &c->method_options[k];
        int found = -1;
        for (int i = 0; i < m->n_options && found < 0; i++)
            if (v->name && !strcmp(m->options[i].name, v->name))
                found = i;
        if (found < 0)
            return at_fail(err, AT_ERR_ARG, "method %s does not use %s", m->name,
                           v->name ? v->name : "(null)");
        if (!v->value)
            return at_fail(err, AT_ERR_ARG, "option %s has no value", v->name);
    }
    for (int i = 0; i < m->n_options; i++) {
        const at_option_info *o = &m->options[i];
        const char *text = o->preset ? o->preset : (o->type == AT_OPTION_FLAG ? "false" : NULL);
        given[i] = false;
        for (int k = 0; k < c->n_method_options; k++)
            if (!strcmp(c->method_options[k].name, o->name)) {
                text = c->method_options[k].value;
                given[i] = true;
            }
        values[i] = 0.0;
        if (text) {
            int status = parse_value(o, text, &values[i], err);
            if (status)
                return status;
        }
    }
    return AT_OK;
}

void at_option_format(const at_option_info *o, double value, char *text, size_t cap)
{
    switch (o->type) {
    case AT_OPTION_INT: snprintf(text, cap, "%.0f", value); return;
    case AT_OPTION_FLAG: snprintf(text, cap, "%s", value != 0.0 ? "true" : "false"); return;
    case AT_OPTION_CHOICE: {
        const char *p = o->choices;
        for (int i = 0; i < (int)value && strchr(p, '|'); i++)
            p = strchr(p, '|') + 1;
        size_t n = strchr(p, '|') ? (size_t)(strchr(p, '|') - p) : strlen(p);
        snprintf(text, cap, "%.*s", (int)n, p);
        return;
    }
    default: snprintf(text, cap, "%.9g", value); return;
    }
}
