/* cli.h: pieces shared by the subcommands of the advtrain tool: a strict option parser, a progress
 * line, and small helpers for reports. Each subcommand lives in its own cmd_<name>.c. */
#ifndef ADVTRAIN_CLI_H
#define ADVTRAIN_CLI_H

#include "advtrain.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>

/* Exit codes: 0 success, 1 the work failed (bad file, numeric trouble), 2 bad command line. */
enum { EXIT_WORK_FAILED = 1, EXIT_USAGE = 2 };

typedef enum cli_kind {
    CLI_INT,        /* int, within [min, max] */
    CLI_FLOAT,      /* double, finite, within [min, max] */
    CLI_STRING,     /* const char * (points into argv) */
    CLI_CHOICE,     /* const char *, one of `choices` ("a|b|c") */
    CLI_FLAG,       /* bool, no value */
    CLI_FLOAT_LIST  /* cli_float_list, comma-separated, each within [min, max] */
} cli_kind;

typedef struct cli_float_list {
    int count;
    double values[16];
} cli_float_list;

typedef struct cli_option {
    const char *name;     /* "epochs" for --epochs */
    cli_kind kind;
    void *target;
    double min, max;
    const char *choices;
    const char *metavar;
    const char *help;
} cli_option;

/* The most options one command declares (train: its own and every method's). */
enum { CLI_MAX_OPTIONS = 256 };

typedef struct cli_command {
    const char *name;
    const char *summary;
    const char *usage;    /* "advtrain train [options]" */
    const cli_option *options;
    int n_options;
} cli_command;

/* Parses argv[1..] (argv[0] is the subcommand's name). Unknown options, missing values, values
 * out of range and stray arguments print one message and the usage line to stderr and return
 * EXIT_USAGE; --help prints the full help to stdout and returns -1; success returns 0.
 * seen[i] (may be NULL) is set for each option given. A command with a "config" option reads
 * "--config FILE" first: one "name = value" per line, the same checks, and an option may not be
 * given both there and on the command line. */
int cli_parse(const cli_command *cmd, int argc, char **argv, bool *seen);
void cli_help(const cli_command *cmd, FILE *out);
/* The lines of --help for a list of options. */
void cli_help_options(const cli_option *options, int n, FILE *out);
/* Writes the options given (seen[]) and those named in `also`, minus those in `skip` (both
 * NULL-terminated lists), with their current values, as a file --config reads back. */
int cli_write_config(const cli_command *cmd, const char *path, const bool *seen,
                     const char *const *also, const char *const *skip, at_error *err);
/* Whether option `name` was given, from the seen[] of cli_parse. */
bool cli_given(const cli_command *cmd, const bool *seen, const char *name);
/* Fills err with a one-line message and status; returns status (as the library's errors). */
int cli_fail(at_error *err, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Prints "advtrain CMD: <message>" to stderr; returns `code`. */
int cli_error(const char *cmd, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Progress on stderr with images/s and ETA: a bar redrawn in place on a terminal; elsewhere (a
 * log) a line at the first update, then at most one every 30 s, and one at the end. */
typedef enum { CLI_PROGRESS_OFF, CLI_PROGRESS_BAR, CLI_PROGRESS_LINES } cli_progress_mode;
typedef struct cli_progress {
    cli_progress_mode mode;
    double start, last_draw;
    long lines;
} cli_progress;
void cli_progress_start(cli_progress *p, bool quiet);
void cli_progress_update(cli_progress *p, const char *label, long done, long total,
                         const char *extra);
void cli_progress_clear(cli_progress *p);

/* "0.1.0 <git revision>", the version string every report records (tools/revision.c). */
const char *cli_version(void);

/* Seconds on a monotonic clock. */
double cli_now(void);

/* 95% Wilson score interval for `correct` successes out of `n`. */
void cli_wilson(long correct, long n, double *lo, double *hi);

/* Writes a JSON value to `path` (pretty, sorted keys) through a temp file and rename. */
int cli_write_json(const char *path, json_t *value, at_error *err);

/* Writes a resumable run's state to `path` atomically (temp file, fsync, rename), every real
 * with 17 significant digits; errors are reported as `cmd`'s and returned as its exit code. */
int cli_write_state(const char *cmd, const char *path, const json_t *state);

/* Reads a resumable run's state file: 0 with *state NULL when there is none (a fresh start), an
 * exit code with a one-line message ("PATH: not WHAT state file: ...") when it is not JSON. */
int cli_read_state(const char *cmd, const char *path, const char *what, json_t **state);

/* Creates a directory and its parents (like mkdir -p). */
int cli_mkdirs(const char *path, at_error *err);

/* The data set and model options common to train and eval. */
int cli_open_dataset(const char *cmd, const char *name, const char *dir, const char *split,
                     at_dataset *out);
/* Says on stderr how many unreadable images a data set opened with skip-bad left out (if any). */
void cli_report_skipped(const char *cmd, const at_dataset *ds, const char *where, const char *split);

/* The model a checkpoint describes (its "model" metadata), or the architecture `arch` for a
 * weights-only file, with the file's weights loaded and checked against the data set's input
 * shape and classes; a one-line error naming the file otherwise. */
int cli_load_model(const char *cmd, const char *path, const char *arch, const at_dataset *ds,
                   at_model **model);
/* A loaded model must take the data set's images and have at least its classes; otherwise an
 * error naming `path`, and the model is freed. */
int cli_check_model_data(const char *cmd, const char *path, const at_dataset *ds, at_model **model);

/* The model's class (largest logit, BN in eval mode) for each of the n images x. */
int cli_predict(const char *cmd, at_model *model, const float *x, int n, int32_t *pred);

int cmd_train(int argc, char **argv);
int cmd_gradients(int argc, char **argv);
int cmd_corrupt(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_list(int argc, char **argv);
int cmd_attack(int argc, char **argv);
int cmd_import(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_report(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_train_autoencoder(int argc, char **argv);
int cmd_train_flow(int argc, char **argv);
int cmd_certify(int argc, char **argv);
int cmd_robustify(int argc, char **argv);

#endif
