/* pass.h: the inside of a pass, shared by the walks over the graph (pass.c) and the frozen
 * activation patterns (pattern.c). */
#ifndef AT_PASS_H
#define AT_PASS_H

#include "graph/graph.h"

struct at_pass {
    at_model *model;
    int max_batch;
    int n;              /* batch of the last forward, 0 before the first */
    at_bn_mode bn_mode;
    unsigned flags;
    int workers;
    float **out;        /* per node: output activation [max_batch, numel] */
    float **grad;       /* per node: gradient of that output (NULL when forward-only) */
    void **cache;       /* per node: the layer's cache */
    const float **perturbation; /* per node: added to the output, or NULL */
    bool *fused;        /* per node: ran the ReLU after it in the last forward (plan.fusable, and
                           no perturbation of its own output, and no frozen pattern) */
    at_node_hook *hooks;/* per node: a hook, or {NULL} */
    float **saved;      /* per node: the output its layer produced, kept while a forward hook
                           rewrites it (allocated when a hook is first set there) */
    float *scratch;
    size_t scratch_floats;
    float *shared;
    at_rng rng;         /* for stochastic layers; seeded by at_pass_set_seed */
    at_memory_plan plan;
    void *slab;         /* one allocation carved into everything above */
    /* A frozen activation pattern (at_pass_freeze_pattern), allocated at the first freeze: */
    size_t *pattern_offset; /* per node: bytes into `pattern`, SIZE_MAX for a smooth layer */
    unsigned char *pattern;
    int pattern_n;      /* examples it holds; 0 when no pattern is frozen */
    bool followed;      /* the last forward followed the pattern, so its backward does too */
};

/* What node i's layer sees in pass p (its backward's view: dy, dx and relu_out are left unset). */
at_layer_ctx at_pass_node_ctx(const at_pass *p, int i);

#endif
