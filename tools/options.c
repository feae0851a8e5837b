/* options.c: the strict option parser. Every option is declared in a table with its type and
 * range, so checking, error messages and --help all come from one place. */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int cli_fail(at_error *err, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    return err->status = status;
}

int cli_error(const char *cmd, int code, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "advtrain %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return code;
}

static int usage_error(const cli_command *cmd, const char *fmt, const char *a, const char *b)
{
    fprintf(stderr, "advtrain %s: ", cmd->name);
    fprintf(stderr, fmt, a, b);
    fprintf(stderr, "\nusage: %s (see 'advtrain %s --help')\n", cmd->usage, cmd->name);
    return EXIT_USAGE;
}

static bool parse_double(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end != '\0' || errno == ERANGE || !isfinite(v))
        return false;
    *out = v;
    return true;
}

static bool parse_int(const char *s, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (end == s || *end != '\0' || errno == ERANGE)
        return false;
    *out = v;
    return true;
}

static bool in_choices(const char *choices, const char *value)
{
    size_t len = strlen(value);
    for (const char *p = choices; *p;) {
        const char *bar = strchr(p, '|');
        size_t n = bar ? (size_t)(bar - p) : strlen(p);
        if (n == len && strncmp(p, value, n) == 0)
            return true;
        p = bar ? bar + 1 : p + n;
    }
    return false;
}

static char *format_range(char *buf, size_t cap, const cli_option *o)
{
    if (o->kind == CLI_INT)
        snprintf(buf, cap, "%ld..%ld", (long)o->min, (long)o->max);
    else
        snprintf(buf, cap, "%g..%g", o->min, o->max);
    return buf;
}

/* A bad value: on the command line with the usage line, from a configuration file as one line
 * naming the file and line (`where`). */
static int value_error(const cli_command *cmd, const char *where, const char *fmt, const char *a,
                       const char *b)
{
    if (!where)
        return usage_error(cmd, fmt, a, b);
    fprintf(stderr, "advtrain %s: %s: ", cmd->name, where);
    fprintf(stderr, fmt, a, b);
    fputc('\n', stderr);
    return EXIT_USAGE;
}

static int set_value(const cli_command *cmd, const cli_option *o, const char *value,
                     const char *where)
{
    char opt[96], range[64];
    snprintf(opt, sizeof opt, "--%s", o->name);
    switch (o->kind) {
    case CLI_INT: {
        long v;
        if (!parse_int(value, &v))
            return value_error(cmd, where, "%s expects an integer, got '%s'", opt, value);
        if (v < (long)o->min || v > (long)o->max)
            return value_error(cmd, where, "%s out of range (%s)", opt, format_range(range, sizeof range, o));
        *(int *)o->target = (int)v;
        return 0;
    }
    case CLI_FLOAT: {
        double v;
        if (!parse_double(value, &v))
            return value_error(cmd, where, "%s expects a number, got '%s'", opt, value);
        if (v < o->min || v > o->max)
            return value_error(cmd, where, "%s out of range (%s)", opt, format_range(range, sizeof range, o));
        *(double *)o->target = v;
        return 0;
    }
    case CLI_STRING:
        if (value[0] == '\0')
            return value_error(cmd, where, "%s needs a non-empty value%s", opt, "");
        *(const char **)o->target = value;
        return 0;
    case CLI_CHOICE:
        if (!in_choices(o->choices, value))
            return value_error(cmd, where, "%s must be one of %s", opt, o->choices);
        *(const char **)o->target = value;
        return 0;
    case CLI_FLOAT_LIST: {
        cli_float_list *list = o->target;
        char buf[256];
        if (strlen(value) >= sizeof buf)
            return value_error(cmd, where, "%s: list too long%s", opt, "");
        strcpy(buf, value);
        list->count = 0;
        char *save = NULL;
        for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
            double v;
            if (list->count == (int)(sizeof list->values / sizeof list->values[0]))
                return value_error(cmd, where, "%s takes at most 16 values%s", opt, "");
            if (!parse_double(tok, &v))
                return value_error(cmd, where, "%s expects comma-separated numbers, got '%s'", opt, value);
            if (v < o->min || v > o->max)
                return value_error(cmd, where, "%s value out of range (%s)", opt,
                                   format_range(range, sizeof range, o));
            list->values[list->count++] = v;
        }
        if (list->count == 0)
            return value_error(cmd, where, "%s expects comma-separated numbers, got '%s'", opt, value);
        return 0;
    }
    case CLI_FLAG:
        *(bool *)o->target = true;
        return 0;
    }
    return 0;
}

/* One option by name (without the dashes); NULL when unknown. */
static const cli_option *find_option(const cli_command *cmd, const char *name, size_t len, int *index)
{
    for (int k = 0; k < cmd->n_options; k++)
        if (strlen(cmd->options[k].name) == len && strncmp(cmd->options[k].name, name, len) == 0) {
            *index = k;
            return &cmd->options[k];
        }
    return NULL;
}

/* A configuration file: one "name = value" per line (an option's name without the dashes; flags
 * take "true"), '#' starts a comment. Every line must name an option of the command. The values
 * are copied into `storage`, which must outlive the parsed options. */
static int parse_config(const cli_command *cmd, const char *path, bool *seen, char *storage,
                        size_t cap)
{
    int fd = open(path, O_RDONLY | O_NONBLOCK); /* a FIFO is refused below, not waited on */
    FILE *f = fd >= 0 ? fdopen(fd, "r") : NULL;
    if (!f) {
        fprintf(stderr, "advtrain %s: %s: cannot open the configuration file: %s\n", cmd->name,
                path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return EXIT_USAGE;
    }
    /* a directory opens, then reads as nothing: it would pass for an empty configuration */
    struct stat info;
    if (fstat(fileno(f), &info) != 0 || !S_ISREG(info.st_mode)) {
        fprintf(stderr, "advtrain %s: %s: cannot open the configuration file: not a regular "
                "file\n", cmd->name, path);
        fclose(f);
        return EXIT_USAGE;
    }
    char line[1024];
    int number = 0, status = 0;
    size_t used = 0;
    while (!status && fgets(line, sizeof line, f)) {
        number++;
        if (!strchr(line, '\n') && !feof(f)) {
            fprintf(stderr, "advtrain %s: %s:%d: line longer than %zu characters\n", cmd->name,
                    path, number, sizeof line - 2);
            status = EXIT_USAGE;
            break;
        }
        char *hash = strchr(line, '#');
        if (hash)
            *hash = '\0';
        char *key = line + strspn(line, " \t\r\n");
        if (*key == '\0')
            continue;
        char *eq = strchr(key, '=');
        if (!eq) {
            fprintf(stderr, "advtrain %s: %s:%d: expected 'name = value'\n", cmd->name, path, number);
            status = EXIT_USAGE;
            break;
        }
        char *end = eq;
        while (end > key && (end[-1] == ' ' || end[-1] == '\t'))
            end--;
        char *value = eq + 1 + strspn(eq + 1, " \t");
        size_t vlen = strcspn(value, "\r\n");
        while (vlen > 0 && (value[vlen - 1] == ' ' || value[vlen - 1] == '\t'))
            vlen--;
        int index;
        const cli_option *o = find_option(cmd, key, (size_t)(end - key), &index);
        if (!o || !strcmp(o->name, "config")) {
            fprintf(stderr, "advtrain %s: %s:%d: unknown option '%.*s'\n", cmd->name, path, number,
                    (int)(end - key), key);
            status = EXIT_USAGE;
            break;
        }
        if (seen[index]) {
            fprintf(stderr, "advtrain %s: %s:%d: option '%s' given twice\n", cmd->name, path, number,
                    o->name);
            status = EXIT_USAGE;
            break;
        }
        seen[index] = true;
        if (used + vlen + 1 > cap) {
            fprintf(stderr, "advtrain %s: %s: configuration too long\n", cmd->name, path);
            status = EXIT_USAGE;
            break;
        }
        char *copy = storage + used;
        memcpy(copy, value, vlen);
        copy[vlen] = '\0';
        used += vlen + 1;
        if (o->kind == CLI_FLAG) {
            if (strcmp(copy, "true") && strcmp(copy, "false")) {
                fprintf(stderr, "advtrain %s: %s:%d: %s takes true or false\n", cmd->name, path,
                        number, o->name);
                status = EXIT_USAGE;
            } else if (!strcmp(copy, "true")) {
                *(bool *)o->target = true;
            }
            continue;
        }
        char where[600];
        snprintf(where, sizeof where, "%s:%d", path, number);
        status = set_value(cmd, o, copy, where);
    }
    if (!status && ferror(f)) {
        fprintf(stderr, "advtrain %s: %s: read error\n", cmd->name, path);
        status = EXIT_USAGE;
    }
    fclose(f);
    return status;
}

int cli_parse(const cli_command *cmd, int argc, char **argv, bool *seen_out)
{
    bool seen[CLI_MAX_OPTIONS] = {false};
    static char config_storage[16384];
    if (cmd->n_options > CLI_MAX_OPTIONS)
        return usage_error(cmd, "too many options declared%s%s", "", "");
    /* --config FILE first, wherever it stands: the command line then adds to it */
    for (int i = 1; i < argc; i++) {
        const char *value = NULL;
        if (!strcmp(argv[i], "--config"))
            value = i + 1 < argc ? argv[i + 1] : "";
        else if (!strncmp(argv[i], "--config=", 9))
            value = argv[i] + 9;
        int index;
        if (!value)
            continue;
        if (!find_option(cmd, "config", 6, &index))
            return usage_error(cmd, "unknown option '%s'%s", "--config", "");
        if (!*value)
            return usage_error(cmd, "--config needs a value%s%s", "", "");
        *(const char **)cmd->options[index].target = value;
        int status = parse_config(cmd, value, seen, config_storage, sizeof config_storage);
        if (status)
            return status;
        seen[index] = true;
        break;
    }
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            cli_help(cmd, stdout);
            return -1;
        }
        if (strncmp(arg, "--", 2) != 0)
            return usage_error(cmd, "unexpected argument '%s'%s", arg, "");
        const char *name = arg + 2, *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        int index = -1;
        const cli_option *o = find_option(cmd, name, len, &index);
        if (!o)
            return usage_error(cmd, "unknown option '%s'%s", arg, "");
        if (!strcmp(o->name, "config")) {
            i += eq ? 0 : 1; /* read above */
            continue;
        }
        if (seen[index])
            return usage_error(cmd, "option --%s given twice (or also in --config)%s", o->name, "");
        seen[index] = true;
        if (o->kind == CLI_FLAG) {
            if (eq)
                return usage_error(cmd, "--%s takes no value%s", o->name, "");
            set_value(cmd, o, "", NULL);
            continue;
        }
        const char *value = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
        if (!value)
            return usage_error(cmd, "--%s needs a value%s", o->name, "");
        int status = set_value(cmd, o, value, NULL);
        if (status)
            return status;
    }
    if (seen_out)
        memcpy(seen_out, seen, (size_t)cmd->n_options * sizeof *seen_out);
    return 0;
}

void cli_help_options(const cli_option *options, int n, FILE *out)
{
    for (int k = 0; k < n; k++) {
        const cli_option *o = &options[k];
        char left[64];
        if (o->kind == CLI_FLAG)
            snprintf(left, sizeof left, "--%s", o->name);
        else
            snprintf(left, sizeof left, "--%s %s", o->name,
                     o->kind == CLI_CHOICE ? o->choices : (o->metavar ? o->metavar : "VALUE"));
        fprintf(out, "  %-32s %s", left, o->help);
        char range[64];
        if (o->kind == CLI_INT || o->kind == CLI_FLOAT || o->kind == CLI_FLOAT_LIST)
            fprintf(out, " [%s]", format_range(range, sizeof range, o));
        fputc('\n', out);
    }
}

void cli_help(const cli_command *cmd, FILE *out)
{
    fprintf(out, "usage: %s\n\n%s\n\noptions:\n", cmd->usage, cmd->summary);
    cli_help_options(cmd->options, cmd->n_options, out);
    fprintf(out, "  %-32s %s\n", "--help", "show this help");
}

bool cli_given(const cli_command *cmd, const bool *seen, const char *name)
{
    for (int k = 0; k < cmd->n_options; k++)
        if (strcmp(cmd->options[k].name, name) == 0)
            return seen[k];
    return false;
}

int cli_write_config(const cli_command *cmd, const char *path, const bool *seen,
                     const char *const *also, const char *const *skip, at_error *err)
{
    char tmp[4096];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp", path) >= sizeof tmp) {
        snprintf(err->message, sizeof err->message, "%s: path too long", path);
        return AT_ERR_ARG;
    }
    FILE *f = fopen(tmp, "w");
    if (!f) {
        snprintf(err->message, sizeof err->message, "%s: cannot write", path);
        return AT_ERR_IO;
    }
    fprintf(f, "# advtrain %s configuration; replay with: advtrain %s --config %s\n", cmd->name,
            cmd->name, path);
    for (int k = 0; k < cmd->n_options; k++) {
        const cli_option *o = &cmd->options[k];
        bool wanted = seen[k];
        for (int s = 0; also && also[s]; s++)
            wanted |= !strcmp(o->name, also[s]);
        for (int s = 0; skip && skip[s]; s++)
            wanted &= strcmp(o->name, skip[s]) != 0;
        if (!wanted || !strcmp(o->name, "config"))
            continue;
        switch (o->kind) {
        case CLI_INT: fprintf(f, "%s = %d\n", o->name, *(int *)o->target); break;
        case CLI_FLOAT: fprintf(f, "%s = %.17g\n", o->name, *(double *)o->target); break;
        case CLI_STRING:
        case CLI_CHOICE:
            if (*(const char **)o->target)
                fprintf(f, "%s = %s\n", o->name, *(const char **)o->target);
            break;
        case CLI_FLAG: fprintf(f, "%s = %s\n", o->name, *(bool *)o->target ? "true" : "false"); break;
        case CLI_FLOAT_LIST: {
            const cli_float_list *l = o->target;
            if (!l->count)
                break;
            fprintf(f, "%s = ", o->name);
            for (int i = 0; i < l->count; i++)
                fprintf(f, i ? ",%.17g" : "%.17g", l->values[i]);
            fputc('\n', f);
            break;
        }
        }
    }
    if (fclose(f) || rename(tmp, path)) {
        remove(tmp);
        snprintf(err->message, sizeof err->message, "%s: cannot write", path);
        return AT_ERR_IO;
    }
    return AT_OK;
}
