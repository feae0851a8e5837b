/* autoencoder.c: a small convolutional autoencoder for channels x height x width images in
 * [0,1], the image-to-image network c_phi whose weights AdA perturbs (Calian et al., "Defending
 * Against Image Corruptions Through Adversarial Augmentations", ICLR 2022). The paper perturbs
 * pretrained EDSR and compressive-autoencoder networks; none is available offline, so this one
 * is trained on the classifier's own training set (advtrain train-autoencoder) as a
 * reconstruction model.
 *
 * With F feature maps (default 32):
 *   enc1 conv3x3 C->F, ReLU;  enc2 conv3x3 stride 2 F->2F, ReLU;  enc3 conv3x3 stride 2
 *   2F->2F, ReLU (the bottleneck, 4x downsampled);  x2 nearest upsampling, dec1 conv3x3
 *   2F->2F, ReLU;  x2 upsampling, dec2 conv3x3 2F->F, ReLU;  out conv3x3 F->C, sigmoid.
 * Every convolution has padding 1 and a bias, so height and width must be multiples of 4 for
 * the output to have the input's size (28 -> 14 -> 7 -> 14 -> 28). The output is flattened,
 * as a model's output is a vector: the image's pixels in NCHW order.
 *
 * A file holds the weights under these names and the metadata "autoencoder", a JSON object
 * {"channels", "height", "width", "features"} from which the loader rebuilds the network. */
#include "graph/graph.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#define FORMAT "advtrain-autoencoder-1"

int at_autoencoder_create(at_model **out, int channels, int height, int width, int features,
                          uint64_t seed, at_error *err)
{
    *out = NULL;
    if (channels < 1 || channels > 64 || features < 1 || features > 1024)
        return at_fail(err, AT_ERR_ARG, "autoencoder: %d channels and %d features, want 1..64 "
                       "and 1..1024", channels, features);
    if (height < 4 || width < 4 || height % 4 || width % 4)
        return at_fail(err, AT_ERR_SHAPE, "autoencoder: images of %dx%d pixels; height and width "
                       "must be multiples of 4 (two halvings and two doublings)", height, width);
    at_model *m;
    int status = at_model_begin(&m, channels, height, width, err);
    if (status)
        return status;
    snprintf(m->arch, sizeof m->arch, "autoencoder-%d", features);
    int x = at_add_relu(m, at_add_conv2d(m, 0, "enc1", features, 3, 1, 1, true));
    x = at_add_relu(m, at_add_conv2d(m, x, "enc2", 2 * features, 3, 2, 1, true));
    x = at_add_relu(m, at_add_conv2d(m, x, "enc3", 2 * features, 3, 2, 1, true));
    x = at_add_upsample2d(m, x, 2);
    x = at_add_relu(m, at_add_conv2d(m, x, "dec1", 2 * features, 3, 1, 1, true));
    x = at_add_upsample2d(m, x, 2);
    x = at_add_relu(m, at_add_conv2d(m, x, "dec2", features, 3, 1, 1, true));
    x = at_add_sigmoid(m, at_add_conv2d(m, x, "out", channels, 3, 1, 1, true));
    at_add_flatten(m, x);
    if ((status = at_model_finish(m, seed, err))) {
        at_model_free(m);
        return status;
    }
    *out = m;
    return AT_OK;
}

/* The feature maps of an autoencoder built above, from its name; 0 for another model. */
static int features_of(const at_model *m)
{
    int features = 0;
    char tail;
    if (sscanf(at_model_arch(m), "autoencoder-%d%c", &features, &tail) != 1)
        return 0;
    return features;
}

int at_autoencoder_save(const char *path, const at_model *ae, at_error *err)
{
    const int features = features_of(ae);
    if (!path || features < 1)
        return at_fail(err, AT_ERR_ARG, "at_autoencoder_save: not an autoencoder (%s)",
                       ae ? at_model_arch(ae) : "null");
    int c, h, w;
    at_model_input_shape(ae, &c, &h, &w);
    char spec[160];
    snprintf(spec, sizeof spec, "{\"channels\":%d,\"height\":%d,\"width\":%d,\"features\":%d}",
             c, h, w, features);
    const at_kv meta[] = {{"format", FORMAT}, {"advtrain_version", AT_VERSION_STRING},
                          {"autoencoder", spec}};
    return at_checkpoint_save(path, ae, NULL, meta, 3, err);
}

/* One positive integer field of the "autoencoder" metadata. */
static int spec_int(json_t *spec, const char *key, int *out, const char *path, at_error *err)
{
    json_t *v = json_object_get(spec, key);
    if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 1 << 16)
        return at_fail(err, AT_ERR_FORMAT, "%s: the autoencoder metadata has no valid \"%s\"",
                       path, key);
    *out = (int)json_integer_value(v);
    return AT_OK;
}

int at_autoencoder_load(at_model **out, const char *path, at_error *err)
{
    *out = NULL;
    at_safetensors *st = NULL;
    int status = at_st_open(&st, path, err);
    if (status)
        return status;
    const char *text = at_st_meta(st, "autoencoder");
    json_error_t jerr;
    json_t *spec = text ? json_loads(text, 0, &jerr) : NULL;
    at_st_free(st);
    if (!spec)
        return at_fail(err, AT_ERR_FORMAT, "%s: not an autoencoder file (no valid \"autoencoder\" "
                       "metadata; write one with advtrain train-autoencoder)", path);
    int c = 0, h = 0, w = 0, features = 0;
    status = spec_int(spec, "channels", &c, path, err);
    if (!status)
        status = spec_int(spec, "height", &h, path, err);
    if (!status)
        status = spec_int(spec, "width", &w, path, err);
    if (!status)
        status = spec_int(spec, "features", &features, path, err);
    json_decref(spec);
    at_model *m = NULL;
    at_error shape_err;
    if (!status && at_autoencoder_create(&m, c, h, w, features, 0, &shape_err))
        return at_fail(err, AT_ERR_FORMAT, "%s: %s", path, shape_err.message);
    if (!status)
        status = at_checkpoint_load(path, m, NULL, NULL, err);
    if (status) {
        at_model_free(m);
        return status;
    }
    *out = m;
    return AT_OK;
}
