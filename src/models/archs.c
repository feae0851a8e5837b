/* archs.c: building a reference architecture by name, with each reference's initialisation. */
#include "models/archs.h"

#include <math.h>
#include <string.h>

/* The architectures, in the order `advtrain list` shows them. */
static const at_arch *const arch_table[] = {
    &at_arch_smallcnn, &at_arch_smallcnn_clip, &at_arch_preact_resnet18, &at_arch_wide_resnet,
    &at_arch_linear, &at_arch_mlp,
};
#define N_ARCHS (int)(sizeof arch_table / sizeof arch_table[0])

bool at_arch_info(int index, const char **name, const char **description)
{
    if (index < 0 || index >= N_ARCHS)
        return false;
    if (name)
        *name = arch_table[index]->name;
    if (description)
        *description = arch_table[index]->description;
    return true;
}

int at_model_create(at_model **out, const char *arch, const at_model_options *options,
                    at_error *err)
{
    *out = NULL;
    const at_arch *a = NULL;
    for (int i = 0; i < N_ARCHS && !a; i++)
        if (arch_table[i]->matches(arch))
            a = arch_table[i];
    if (!a)
        return at_fail(err, AT_ERR_NOTFOUND, "unknown model '%s' (see 'advtrain list models')", arch);
    at_model_options o = {0};
    if (options)
        o = *options;
    if (o.num_classes == 0)
        o.num_classes = 10;
    if (o.in_channels == 0)
        o.in_channels = a->default_channels;
    if (o.in_height == 0)
        o.in_height = a->default_size;
    if (o.in_width == 0)
        o.in_width = a->default_size;
    if (o.num_classes < 2 || o.num_classes > 100000)
        return at_fail(err, AT_ERR_ARG, "number of classes %d out of range 2..100000", o.num_classes);
    if (o.normalize && o.in_channels > 4)
        return at_fail(err, AT_ERR_ARG, "input normalisation supports at most 4 channels");

    at_model *m;
    int status = at_model_begin(&m, o.in_channels, o.in_height, o.in_width, err);
    if (status)
        return status;
    at_strlcpy(m->arch, arch, sizeof m->arch);
    if (o.input_levels < 0 || o.input_levels == 1 || !(o.input_noise >= 0.0f)) {
        at_model_free(m);
        return at_fail(err, AT_ERR_ARG, "input quantisation needs >= 2 levels and noise a std >= 0");
    }
    /* input layers in the order they act on pixels: quantise, add noise, normalise */
    int x = 0;
    if (o.input_levels > 1)
        x = at_add_quantize(m, x, o.input_levels);
    if (o.input_noise > 0.0f && x >= 0)
        x = at_add_gaussian_noise(m, x, o.input_noise);
    if (o.normalize && x >= 0)
        x = at_add_normalize(m, x, o.mean, o.std);
    if (x >= 0)
        x = a->build(m, x, arch, o.num_classes);
    if (x < 0 || m->build_status) {
        int s = x < 0 ? x : m->build_status;
        at_model_free(m);
        return at_fail(err, s, "model '%s' cannot take %dx%dx%d inputs: %s", arch, o.in_channels,
                       o.in_height, o.in_width, at_status_string(s));
    }
    status = at_model_finish(m, o.seed, err);
    if (status) {
        at_model_free(m);
        return status;
    }
    if (a->init) {
        at_rng rng;
        at_rng_stream(&rng, o.seed, 0x696e6974u /* "init" */, 0);
        a->init(m, &rng);
    }
    m->options = o;
    *out = m;
    return AT_OK;
}

void at_init_conv_normal(at_model *m, at_rng *rng, bool fan_out)
{
    for (int i = 1; i < m->n_nodes; i++) {
        const at_node *node = &m->nodes[i];
        if (node->kind != AT_LAYER_conv2d || node->source)
            continue; /* a shared convolution's weights are drawn once, at its source */
        int k = node->p.conv.kernel, oc = node->p.conv.out_channels;
        int ic = m->nodes[node->inputs[0]].out.c;
        double fan = fan_out ? (double)k * k * oc : (double)k * k * ic;
        double std = sqrt(2.0 / fan);
        float *w = m->params + node->param_offset;
        size_t count = (size_t)oc * ic * k * k;
        for (size_t j = 0; j < count; j++)
            w[j] = (float)(std * at_rng_normal(rng));
        if (node->p.conv.bias)
            memset(w + count, 0, (size_t)oc * sizeof(float));
    }
}

void at_init_fill(at_model *m, const char *name, float value)
{
    int index = at_model_find_tensor(m, name);
    if (index < 0)
        return;
    at_tensor_info t = at_model_tensor(m, index);
    for (size_t j = 0; j < t.numel; j++)
        t.data[j] = value;
}
