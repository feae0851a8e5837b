/* optimizer.h: an optimiser is one entry in a table: the state it keeps, the options it reads and
 * how one step updates the parameters. optimizer.c owns everything they share (the options
 * every kind checks, the state buffers, the step count, copies), so an algorithm's file holds
 * only its own checks and its update, and its header cites the paper it implements. */
#ifndef AT_OPTIMIZER_H
#define AT_OPTIMIZER_H

#include "advtrain.h"
#include "core/util.h"

enum { AT_OPTIMIZER_MAX_STATE = 2 };

/* The options of at_optimizer_options a kind reads beyond weight_decay; setting another is an
 * error. */
enum {
    AT_OPT_USES_MOMENTUM = 1, /* momentum, nesterov */
    AT_OPT_USES_MOMENTS = 2   /* beta1, beta2, eps */
};

typedef struct at_optimizer_algo {
    at_optimizer_kind kind;
    const char *name;
    unsigned uses;
    const char *state[AT_OPTIMIZER_MAX_STATE]; /* per-parameter buffers, PyTorch's names */
    int n_state;
    bool counts_steps;        /* the update depends on t (bias correction) */
    /* optional: ranges of the options it uses */
    int (*check)(const at_optimizer_options *o, at_error *err);
    /* one update; for a kind that counts steps, opt->steps is already this step's t (1, 2, ...) */
    void (*step)(at_optimizer *opt, float lr);
} at_optimizer_algo;

struct at_optimizer {
    const at_optimizer_algo *algo;
    at_model *model;
    at_optimizer_options options;
    size_t count;                          /* parameters of the model */
    float *state[AT_OPTIMIZER_MAX_STATE];  /* algo->n_state buffers of `count` floats, zeroed */
    int64_t steps;
};

#endif
