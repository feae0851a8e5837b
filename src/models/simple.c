/* simple.c: small reference models whose behaviour is known in closed form, for tests and
 * teaching: multinomial logistic regression ("linear") and a one-hidden-layer MLP ("mlp-H"). */
#include "models/archs.h"

#include <stdio.h>
#include <string.h>

static bool linear_matches(const char *arch) { return strcmp(arch, "linear") == 0; }

static int linear_build(at_model *m, int x, const char *arch, int num_classes)
{
    return at_add_linear(m, at_add_flatten(m, x), "fc", num_classes, true);
}

const at_arch at_arch_linear = {
    .name = "linear",
    .description = "multinomial logistic regression on the flattened image",
    .default_channels = 1,
    .default_size = 28,
    .matches = linear_matches,
    .build = linear_build,
};

static bool parse_mlp(const char *arch, int *hidden)
{
    char tail;
    return sscanf(arch, "mlp-%d%c", hidden, &tail) == 1 && *hidden >= 1 && *hidden <= 1 << 16;
}

static bool mlp_matches(const char *arch)
{
    int h;
    return parse_mlp(arch, &h);
}

static int mlp_build(at_model *m, int x, const char *arch, int num_classes)
{
    int hidden;
    if (!parse_mlp(arch, &hidden))
        return AT_ERR_ARG;
    x = at_add_flatten(m, x);
    x = at_add_relu(m, at_add_linear(m, x, "fc1", hidden, true));
    return at_add_linear(m, x, "fc2", num_classes, true);
}

const at_arch at_arch_mlp = {
    .name = "mlp-H",
    .description = "one hidden ReLU layer of H units (e.g. mlp-256)",
    .default_channels = 1,
    .default_size = 28,
    .matches = mlp_matches,
    .build = mlp_build,
};
