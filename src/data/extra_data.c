/* extra_data.c: extra training data from a file: images and labels that another program made,
 * such as the generated data of "Improving Robustness using Generated Data" (Gowal et al.,
 * NeurIPS 2021), whose released sets are .npz archives with an `image` array (N, H, W, C) uint8
 * and a `label` array, or the safetensors files `advtrain generate` writes.
 *
 * Like the IDX and CIFAR loaders, nothing in the file is trusted: every array's dtype and shape is
 * checked against what the caller expects before any data is read, every label is range-checked,
 * and every message names the file and the array.
 */
#include "data/extra_data.h"

#include "core/util.h"

#include <stdio.h>
#include <string.h>

/* "(5, 28, 28, 3)" or "[5, 3, 28, 28]" */
static const char *shape_text(char *buf, size_t cap, int ndim, const int64_t *shape, bool tuple)
{
    size_t used = (size_t)snprintf(buf, cap, "%c", tuple ? '(' : '[');
    for (int d = 0; d < ndim && used < cap; d++)
        used += (size_t)snprintf(buf + used, cap - used, "%s%lld", d ? ", " : "",
                                 (long long)shape[d]);
    if (used < cap)
        snprintf(buf + used, cap - used, "%s%c", tuple && ndim == 1 ? "," : "", tuple ? ')' : ']');
    return buf;
}

int at_extra_check_images(const char *path, const char *array, int ndim, const int64_t *shape,
                          bool channels_last, const at_dataset *want, int *n, at_error *err)
{
    const int c = want->c, h = want->h, w = want->w;
    bool ok;
    if (!channels_last)
        ok = ndim == 4 && shape[1] == c && shape[2] == h && shape[3] == w;
    else
        ok = (ndim == 4 && shape[1] == h && shape[2] == w && shape[3] == c) ||
             (ndim == 3 && c == 1 && shape[1] == h && shape[2] == w);
    if (!ok) {
        char got[160], expected[96];
        if (!channels_last)
            snprintf(expected, sizeof expected, "[N, %d, %d, %d]", c, h, w);
        else if (c == 1)
            snprintf(expected, sizeof expected, "(N, %d, %d) or (N, %d, %d, 1)", h, w, h, w);
        else
            snprintf(expected, sizeof expected, "(N, %d, %d, %d)", h, w, c);
        return at_fail(err, AT_ERR_SHAPE, "%s: %s has shape %s, expected %s", path, array,
                       shape_text(got, sizeof got, ndim, shape, channels_last), expected);
    }
    if (shape[0] < 1)
        return at_fail(err, AT_ERR_FORMAT, "%s: %s holds no images (N = 0)", path, array);
    if (shape[0] > INT32_MAX)
        return at_fail(err, AT_ERR_FORMAT, "%s: %s holds %lld images, more than %d", path, array,
                       (long long)shape[0], INT32_MAX);
    *n = (int)shape[0];
    return AT_OK;
}

int at_extra_check_labels(const char *path, const char *array, int ndim, const int64_t *shape,
                          const char *image_array, int n, at_error *err)
{
    if (ndim != 1) {
        char got[160];
        return at_fail(err, AT_ERR_SHAPE, "%s: %s has shape %s, expected one label per image "
                       "(%d)", path, array, shape_text(got, sizeof got, ndim, shape, true), n);
    }
    if (shape[0] != n)
        return at_fail(err, AT_ERR_SHAPE, "%s: %s has %d images but %s has %lld labels", path,
                       image_array, n, array, (long long)shape[0]);
    return AT_OK;
}

int at_extra_convert_labels(const char *path, const char *array, const uint8_t *data,
                            int itemsize, bool is_signed, int n, int num_classes, int32_t *labels,
                            at_error *err)
{
    for (int i = 0; i < n; i++) {
        const uint8_t *p = data + (size_t)i * itemsize;
        uint64_t u = 0;
        for (int b = itemsize - 1; b >= 0; b--)
            u = u << 8 | p[b];
        const bool negative = is_signed && (u >> (8 * itemsize - 1) & 1);
        if (negative)
            return at_fail(err, AT_ERR_FORMAT, "%s: %s[%d] = %lld is out of range [0, %d)", path,
                           array, i, (long long)(itemsize < 8 ? u | ~0ull << (8 * itemsize) : u),
                           num_classes);
        if (u >= (uint64_t)num_classes)
            return at_fail(err, AT_ERR_FORMAT, "%s: %s[%d] = %llu is out of range [0, %d)", path,
                           array, i, (unsigned long long)u, num_classes);
        labels[i] = (int32_t)u;
    }
    return AT_OK;
}

/* The first of `names` the file holds, or NULL. */
static const at_st_tensor *find_either(const at_safetensors *st, const char *const names[2])
{
    const at_st_tensor *t = at_st_find(st, names[0]);
    return t ? t : at_st_find(st, names[1]);
}

/* safetensors dtypes a label may have, with their size and signedness */
static bool label_dtype(const char *dtype, int *itemsize, bool *is_signed)
{
    static const struct { const char *name; int size; bool is_signed; } types[] = {
        {"U8", 1, false}, {"I8", 1, true}, {"I16", 2, true}, {"I32", 4, true}, {"I64", 8, true}};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (!strcmp(dtype, types[i].name)) {
            *itemsize = types[i].size;
            *is_signed = types[i].is_signed;
            return true;
        }
    return false;
}

static int load_safetensors(at_dataset *out, const char *path, at_error *err)
{
    static const char *const image_names[2] = {"images", "image"};
    static const char *const label_names[2] = {"labels", "label"};
    at_safetensors *st = NULL;
    int status = at_st_open(&st, path, err);
    if (status)
        return status;
    const at_st_tensor *images = find_either(st, image_names);
    const at_st_tensor *labels = find_either(st, label_names);
    int n = 0, itemsize = 0;
    bool is_signed = false;
    if (!images || !labels)
        status = at_fail(err, AT_ERR_FORMAT, "%s: no tensor '%s' (nor '%s')", path,
                         (images ? label_names : image_names)[0],
                         (images ? label_names : image_names)[1]);
    else if (strcmp(images->dtype, "U8") != 0)
        status = at_fail(err, AT_ERR_FORMAT, "%s: %s has dtype %s, expected U8", path,
                         images->name, images->dtype);
    else if (!label_dtype(labels->dtype, &itemsize, &is_signed))
        status = at_fail(err, AT_ERR_FORMAT, "%s: %s has dtype %s, expected an integer dtype "
                         "(U8, I8, I16, I32, I64)", path, labels->name, labels->dtype);
    if (!status)
        status = at_extra_check_images(path, images->name, images->ndim, images->shape, false, out,
                                       &n, err);
    if (!status)
        status = at_extra_check_labels(path, labels->name, labels->ndim, labels->shape,
                                       images->name, n, err);
    if (!status) {
        out->images = at_alloc(images->nbytes);
        out->labels = at_alloc((size_t)n * sizeof(int32_t));
        if (!out->images || !out->labels)
            status = at_fail(err, AT_ERR_NOMEM, "%s: out of memory for %d images", path, n);
    }
    if (!status)
        status = at_extra_convert_labels(path, labels->name, labels->data, itemsize, is_signed, n,
                                         out->num_classes, out->labels, err);
    if (!status) {
        memcpy(out->images, images->data, images->nbytes);
        out->n = n;
    }
    at_st_free(st);
    return status;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

int at_dataset_load_file(at_dataset *out, const char *path, int channels, int height, int width,
                         int num_classes, at_error *err)
{
    memset(out, 0, sizeof *out);
    if (!path)
        return at_fail(err, AT_ERR_ARG, "data file path is NULL");
    if (channels < 1 || height < 1 || width < 1 || num_classes < 1)
        return at_fail(err, AT_ERR_ARG, "%s: invalid expected shape %dx%dx%d with %d classes",
                       path, channels, height, width, num_classes);
    size_t image;
    if (!at_mul_size((size_t)channels * height, (size_t)width, &image))
        return at_fail(err, AT_ERR_ARG, "%s: image shape overflows", path);
    const bool npz = ends_with(path, ".npz"), st = ends_with(path, ".safetensors");
    if (!npz && !st)
        return at_fail(err, AT_ERR_ARG, "%s: unknown extension (data files are .npz or "
                       ".safetensors)", path);
    out->c = channels;
    out->h = height;
    out->w = width;
    out->num_classes = num_classes;
    int status = npz ? at_extra_load_npz(out, path, err) : load_safetensors(out, path, err);
    if (status) {
        at_dataset_free(out);
        return status;
    }
    const char *slash = strrchr(path, '/');
    at_strlcpy(out->name, slash ? slash + 1 : path, sizeof out->name);
    return AT_OK;
}
