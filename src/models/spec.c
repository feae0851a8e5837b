/* spec.c: a model's architecture and options as JSON, so checkpoints describe themselves:
 *   {"arch": "smallcnn", "num_classes": 10, "input": [1, 28, 28],
 *    "mean": [0.5], "std": [0.25],       (only with input normalisation)
 *    "input_levels": 8, "input_noise": 0.25}   (only with those input layers)
 * The initialisation seed is not part of it: weights come from the file. A model built node by
 * node (an imported ONNX graph, arch "graph") adds its list of nodes (graph_spec.c). */
#include "core/util.h"
#include "models/graph_spec.h"

#include <jansson.h>
#include <string.h>

char *at_model_spec(const at_model *m)
{
    const at_model_options *o = at_model_get_options(m);
    json_t *root = json_object();
    json_object_set_new(root, "arch", json_string(at_model_arch(m)));
    json_object_set_new(root, "num_classes", json_integer(at_model_num_classes(m)));
    int c, h, w;
    at_model_input_shape(m, &c, &h, &w);
    json_object_set_new(root, "input", json_pack("[iii]", c, h, w));
    if (strcmp(at_model_arch(m), AT_GRAPH_ARCH) == 0) {
        json_t *nodes = at_graph_spec_nodes(m);
        if (!nodes) {
            json_decref(root);
            return NULL;
        }
        json_object_set_new(root, "nodes", nodes);
    }
    if (o->normalize) {
        json_t *mean = json_array(), *std = json_array();
        for (int i = 0; i < c && i < 4; i++) {
            json_array_append_new(mean, json_real(o->mean[i]));
            json_array_append_new(std, json_real(o->std[i]));
        }
        json_object_set_new(root, "mean", mean);
        json_object_set_new(root, "std", std);
    }
    if (o->input_levels > 1)
        json_object_set_new(root, "input_levels", json_integer(o->input_levels));
    if (o->input_noise > 0.0f)
        json_object_set_new(root, "input_noise", json_real(o->input_noise));
    char *text = json_dumps(root, JSON_COMPACT | JSON_SORT_KEYS | JSON_REAL_PRECISION(9));
    json_decref(root);
    return text;
}

static int read_floats(json_t *array, float *out, int n)
{
    if (!json_is_array(array) || (int)json_array_size(array) != n)
        return -1;
    for (int i = 0; i < n; i++) {
        json_t *v = json_array_get(array, (size_t)i);
        if (!json_is_number(v))
            return -1;
        out[i] = (float)json_number_value(v);
    }
    return 0;
}

int at_model_create_from_spec(at_model **out, const char *spec, at_error *err)
{
    *out = NULL;
    json_error_t jerr;
    json_t *root = json_loads(spec, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return at_fail(err, AT_ERR_FORMAT, "model description is not valid JSON: %s", jerr.text);
    int status = AT_OK;
    json_t *arch = json_object_get(root, "arch"), *classes = json_object_get(root, "num_classes");
    json_t *input = json_object_get(root, "input");
    at_model_options o = {0};
    if (!json_is_string(arch) || !json_is_integer(classes) || !json_is_array(input) ||
        json_array_size(input) != 3) {
        status = at_fail(err, AT_ERR_FORMAT, "model description needs arch, num_classes and input");
        goto done;
    }
    o.num_classes = (int)json_integer_value(classes);
    o.in_channels = (int)json_integer_value(json_array_get(input, 0));
    o.in_height = (int)json_integer_value(json_array_get(input, 1));
    o.in_width = (int)json_integer_value(json_array_get(input, 2));
    if (o.in_channels < 1 || o.in_height < 1 || o.in_width < 1) {
        status = at_fail(err, AT_ERR_FORMAT, "model description has an invalid input shape");
        goto done;
    }
    if (strcmp(json_string_value(arch), AT_GRAPH_ARCH) == 0) {
        status = at_graph_spec_build(out, o.in_channels, o.in_height, o.in_width,
                                     json_object_get(root, "nodes"), err);
        int built = status ? 0 : at_model_num_classes(*out);
        if (!status && built != o.num_classes) {
            at_model_free(*out);
            *out = NULL;
            status = at_fail(err, AT_ERR_FORMAT, "model description: its nodes give %d classes, "
                             "not %d", built, o.num_classes);
        }
        goto done;
    }
    json_t *mean = json_object_get(root, "mean"), *std = json_object_get(root, "std");
    if (mean || std) {
        if (o.in_channels > 4 || read_floats(mean, o.mean, o.in_channels) ||
            read_floats(std, o.std, o.in_channels)) {
            status = at_fail(err, AT_ERR_FORMAT, "model description has invalid mean/std");
            goto done;
        }
        o.normalize = 1;
    }
    json_t *levels = json_object_get(root, "input_levels"), *noise = json_object_get(root, "input_noise");
    if ((levels && !json_is_integer(levels)) || (noise && !json_is_number(noise))) {
        status = at_fail(err, AT_ERR_FORMAT, "model description has invalid input layers");
        goto done;
    }
    o.input_levels = levels ? (int)json_integer_value(levels) : 0;
    o.input_noise = noise ? (float)json_number_value(noise) : 0.0f;
    status = at_model_create(out, json_string_value(arch), &o, err);
done:
    json_decref(root);
    return status;
}
