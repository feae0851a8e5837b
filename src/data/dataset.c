/* dataset.c: the known data sets by name (files in a known format, or a set derived from such
 * files, like the clips of Fashion-MNIST), copies and splits of a dataset, and the conversion of
 * examples into a float batch with the usual CIFAR augmentation (random crop after zero padding,
 * random horizontal flip).
 *
 * Everything random takes its draws from an at_rng in a fixed order, so a seed reproduces a
 * validation split or an augmented batch exactly, whatever else the program does.
 */
#include "core/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef enum { FORMAT_IDX, FORMAT_CIFAR10, FORMAT_CIFAR100, FORMAT_CIFAR_C, FORMAT_FOLDER } set_format;

/* Makes a derived set from the examples of the set its files hold. `suffix` is what follows
 * "<name>-" in the name asked for (a parameter, e.g. "4" in "fashion-mnist-clips-4"), or NULL. */
typedef int (*derive_fn)(at_dataset *out, const at_dataset *base, const char *name,
                         const char *suffix, bool train, at_error *err);

static int derive_clips(at_dataset *out, const at_dataset *base, const char *name,
                        const char *suffix, bool train, at_error *err);

static const struct known_set {
    const char *name;
    const char *dir;
    const char *description;
    set_format format;
    const char *subdir; /* where the official archive unpacks, tried after dir itself */
    derive_fn derive;   /* a set made from the files of another: how; NULL for the files' own */
} known_sets[] = {
    {"mnist", "/usr/share/datasets/mnist",
     "handwritten digits, 1x28x28, 10 classes, 60000 train / 10000 test", FORMAT_IDX, NULL, NULL},
    {"fashion-mnist", "/usr/share/datasets/fashion-mnist",
     "Zalando clothing photos, 1x28x28, 10 classes, 60000 train / 10000 test", FORMAT_IDX, NULL,
     NULL},
    {"cifar10", "/usr/share/datasets/cifar10",
     "tiny colour photos, 3x32x32, 10 classes, 50000 train / 10000 test", FORMAT_CIFAR10,
     "cifar-10-batches-bin", NULL},
    {"cifar100", "/usr/share/datasets/cifar100",
     "tiny colour photos, 3x32x32, 100 fine classes, 50000 train / 10000 test", FORMAT_CIFAR100,
     "cifar-100-binary", NULL},
    {"fashion-mnist-clips", "/usr/share/datasets/fashion-mnist",
     "Fashion-MNIST items moving and bouncing, 8 frames of 28x28 (8x28x28), 10 classes, "
     "60000 train / 10000 test; fashion-mnist-clips-T for T frames (1..64)",
     FORMAT_IDX, NULL, derive_clips},
    {"cifar10-c", "/usr/share/datasets/cifar10-c",
     "CIFAR-10 test images under common corruptions (Hendrycks and Dietterich), 3x32x32, 10 "
     "classes, test only: cifar10-c:CORRUPTION:SEVERITY, e.g. cifar10-c:gaussian_noise:3",
     FORMAT_CIFAR_C, NULL, NULL},
    {"cifar100-c", "/usr/share/datasets/cifar100-c",
     "CIFAR-100 test images under common corruptions, 3x32x32, 100 classes, test only: "
     "cifar100-c:CORRUPTION:SEVERITY", FORMAT_CIFAR_C, NULL, NULL},
    {"folder", NULL,
     "your images: --data-dir DIR with DIR/CLASS/*.png|jpg (test split held out, 20%) or "
     "DIR/train/CLASS/... and DIR/test/CLASS/...; options folder:size=HxW,resize=stretch|crop,"
     "channels=1|3,test-fraction=F,split-seed=N,skip-bad", FORMAT_FOLDER, NULL, NULL},
};
#define KNOWN_SETS ((int)(sizeof known_sets / sizeof known_sets[0]))

#define PATH_CAP 4096

void at_dataset_free(at_dataset *ds)
{
    if (!ds)
        return;
    at_free(ds->images);
    at_free(ds->labels);
    memset(ds, 0, sizeof *ds);
}

bool at_dataset_info(int index, const char **name, const char **default_dir,
                     const char **description)
{
    if (index < 0 || index >= KNOWN_SETS)
        return false;
    if (name)
        *name = known_sets[index].name;
    if (default_dir)
        *default_dir = known_sets[index].dir;
    if (description)
        *description = known_sets[index].description;
    return true;
}

/* Whether anything is there: a directory or FIFO under a data file's name is then refused by
 * its reader as "not a regular file" rather than reported missing. */
static bool exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* dir/name, or dir/sub/name when sub is not NULL. */
static int join(char *out, const char *dir, const char *sub, const char *name, at_error *err)
{
    int len = sub ? snprintf(out, PATH_CAP, "%s/%s/%s", dir, sub, name)
                  : snprintf(out, PATH_CAP, "%s/%s", dir, name);
    if (len < 0 || len >= PATH_CAP)
        return at_fail(err, AT_ERR_ARG, "%s: path too long", dir);
    return AT_OK;
}

/* An IDX file by its base name, compressed (preferred) or not. */
static int find_idx_file(char *out, const struct known_set *set, const char *dir,
                         const char *split, const char *base, at_error *err)
{
    char gz_name[128];
    snprintf(gz_name, sizeof gz_name, "%s.gz", base);
    int status = join(out, dir, NULL, gz_name, err);
    if (status || exists(out))
        return status;
    if ((status = join(out, dir, NULL, base, err)))
        return status;
    if (!exists(out))
        return at_fail(err, AT_ERR_NOTFOUND, "%s: not found (nor %s.gz): %s has no %s split there",
                       out, out, set->name, split);
    return AT_OK;
}

static int open_idx(at_dataset *out, const struct known_set *set, const char *dir, bool train,
                    at_error *err)
{
    const char *split = train ? "train" : "test";
    char images[PATH_CAP], labels[PATH_CAP];
    int status = find_idx_file(images, set, dir, split,
                               train ? "train-images-idx3-ubyte" : "t10k-images-idx3-ubyte", err);
    if (!status)
        status = find_idx_file(labels, set, dir, split,
                               train ? "train-labels-idx1-ubyte" : "t10k-labels-idx1-ubyte", err);
    return status ? status : at_dataset_load_idx(out, images, labels, 10, err);
}

static int open_cifar(at_dataset *out, const struct known_set *set, const char *dir, bool train,
                      at_error *err)
{
    static const char *const cifar10_train[] = {"data_batch_1.bin", "data_batch_2.bin",
                                                "data_batch_3.bin", "data_batch_4.bin",
                                                "data_batch_5.bin"};
    static const char *const cifar10_test[] = {"test_batch.bin"};
    static const char *const cifar100_train[] = {"train.bin"};
    static const char *const cifar100_test[] = {"test.bin"};
    const bool ten = set->format == FORMAT_CIFAR10;
    const char *const *names = ten ? (train ? cifar10_train : cifar10_test)
                                   : (train ? cifar100_train : cifar100_test);
    const int count = ten && train ? 5 : 1;
    const char *split = train ? "train" : "test";

    /* The files sit in dir itself or where the official archive unpacks inside it. */
    char paths[5][PATH_CAP], nested[PATH_CAP];
    int status = join(paths[0], dir, NULL, names[0], err);
    if (!status)
        status = join(nested, dir, set->subdir, names[0], err);
    if (status)
        return status;
    const char *sub = NULL;
    if (!exists(paths[0])) {
        if (!exists(nested))
            return at_fail(err, AT_ERR_NOTFOUND, "%s: not found (nor %s): %s has no %s split there",
                           paths[0], nested, set->name, split);
        sub = set->subdir;
    }
    const char *list[5];
    for (int i = 0; i < count; i++) {
        if ((status = join(paths[i], dir, sub, names[i], err)))
            return status;
        if (!exists(paths[i]))
            return at_fail(err, AT_ERR_NOTFOUND, "%s: not found: the %s %s split is incomplete",
                           paths[i], set->name, split);
        list[i] = paths[i];
    }
    return at_dataset_load_cifar(out, list, count, ten ? 1 : 2, err);
}

/* "CORRUPTION:SEVERITY" after "cifar10-c:" or "cifar100-c:". */
static int open_cifar_c(at_dataset *out, const struct known_set *set, const char *suffix,
                        const char *dir, bool train, at_error *err)
{
    if (train)
        return at_fail(err, AT_ERR_ARG, "%s has a test split only", set->name);
    const char *colon = suffix ? strrchr(suffix, ':') : NULL;
    char corruption[64];
    char *end = NULL;
    long severity = colon ? strtol(colon + 1, &end, 10) : 0;
    if (!colon || colon == suffix || (size_t)(colon - suffix) >= sizeof corruption || !end ||
        end == colon + 1 || *end)
        return at_fail(err, AT_ERR_ARG, "%s needs a corruption and a severity: %s:CORRUPTION:1..5, "
                       "e.g. %s:%s:3", set->name, set->name, set->name, at_corruption_name(0));
    memcpy(corruption, suffix, (size_t)(colon - suffix));
    corruption[colon - suffix] = '\0';
    /* out of range either way; keeps the conversion to int defined */
    if (severity > 99 || severity < -99)
        severity = severity > 0 ? 99 : -99;
    return at_dataset_load_cifar_c(out, dir, corruption, (int)severity,
                                   strcmp(set->name, "cifar100-c") ? 10 : 100, err);
}

/* "folder" or "folder:OPTIONS"; it has no default directory. */
static int open_folder(at_dataset *out, const char *name, const char *options, const char *dir,
                       const char *split, at_error *err)
{
    at_image_folder_options o;
    if (!dir)
        return at_fail(err, AT_ERR_ARG, "data set %s needs its directory (--data-dir DIR)", name);
    int status = at_image_folder_parse_options(&o, options, err);
    if (!status)
        status = at_dataset_load_folder(out, dir, split, &o, err);
    if (!status)
        at_strlcpy(out->name, name, sizeof out->name);
    return status;
}

/* 8 frames per clip, or T for "<name>-T"; the splits get different motions (seeds 0 and 1). */
static int derive_clips(at_dataset *out, const at_dataset *base, const char *name,
                        const char *suffix, bool train, at_error *err)
{
    int frames = 8;
    if (suffix) {
        char canonical[16];
        char *end;
        long t = strtol(suffix, &end, 10);
        snprintf(canonical, sizeof canonical, "%ld", t);
        if (*end || t < 1 || t > 64 || strcmp(canonical, suffix) != 0)
            return at_fail(err, AT_ERR_ARG, "unknown data set '%s': clips have 1..64 frames", name);
        frames = (int)t;
    }
    int status = at_dataset_make_clips(out, base, frames, train ? 0 : 1, err);
    if (!status)
        at_strlcpy(out->name, name, sizeof out->name);
    return status;
}

/* The set `name` names: its own name, or for a derived set "<its name>-<suffix>". */
static const struct known_set *find_set(const char *name, const char **suffix)
{
    *suffix = NULL;
    for (int i = 0; i < KNOWN_SETS && name; i++) {
        const struct known_set *set = &known_sets[i];
        const size_t len = strlen(set->name);
        if (strcmp(name, set->name) == 0)
            return set;
        /* a corrupted set takes its corruption and severity after a colon, a folder options */
        if ((set->format == FORMAT_CIFAR_C || set->format == FORMAT_FOLDER) &&
            strncmp(name, set->name, len) == 0 &&
            name[len] == ':') {
            *suffix = name + len + 1;
            return set;
        }
        if (set->derive && strncmp(name, set->name, len) == 0 && name[len] == '-' && name[len + 1]) {
            *suffix = name + len + 1;
            return set;
        }
    }
    return NULL;
}

int at_dataset_open(at_dataset *out, const char *name, const char *dir, const char *split,
                    at_error *err)
{
    memset(out, 0, sizeof *out);
    const char *suffix;
    const struct known_set *set = find_set(name, &suffix);
    if (!set) {
        char known[256] = "";
        for (int i = 0; i < KNOWN_SETS; i++) {
            size_t len = strlen(known);
            snprintf(known + len, sizeof known - len, "%s%s%s", i ? ", " : "", known_sets[i].name,
                     known_sets[i].derive ? "[-T]" : "");
        }
        return at_fail(err, AT_ERR_ARG, "unknown data set '%s' (known: %s)",
                       name ? name : "(null)", known);
    }
    if (!split || (strcmp(split, "train") != 0 && strcmp(split, "test") != 0))
        return at_fail(err, AT_ERR_ARG, "unknown split '%s' of %s (known: train, test)",
                       split ? split : "(null)", set->name);
    const bool train = strcmp(split, "train") == 0;
    if (!dir)
        dir = set->dir;
    if (set->format == FORMAT_CIFAR_C)
        return open_cifar_c(out, set, suffix, dir, train, err);
    if (set->format == FORMAT_FOLDER)
        return open_folder(out, name, suffix, dir, split, err);
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return at_fail(err, AT_ERR_NOTFOUND, "%s: no such directory for data set %s", dir,
                       set->name);
    at_dataset files;
    int status = set->format == FORMAT_IDX ? open_idx(&files, set, dir, train, err)
                                           : open_cifar(&files, set, dir, train, err);
    if (status)
        return status;
    if (!set->derive) {
        *out = files;
        at_strlcpy(out->name, set->name, sizeof out->name);
        return AT_OK;
    }
    status = set->derive(out, &files, name, suffix, train, err);
    at_dataset_free(&files);
    return status;
}

/* An empty dataset shaped like src with room for n examples (none allocated when n is 0). */
static int alloc_like(at_dataset *out, const at_dataset *src, int n, at_error *err)
{
    memset(out, 0, sizeof *out);
    memcpy(out->name, src->name, sizeof out->name);
    out->c = src->c;
    out->h = src->h;
    out->w = src->w;
    out->num_classes = src->num_classes;
    if (n == 0)
        return AT_OK;
    const size_t example = (size_t)src->c * src->h * src->w;
    out->images = at_alloc((size_t)n * example);
    out->labels = at_alloc((size_t)n * sizeof(int32_t));
    if (!out->images || !out->labels) {
        at_dataset_free(out);
        return at_fail(err, AT_ERR_NOMEM, "%s: out of memory for %d examples", src->name, n);
    }
    out->n = n;
    return AT_OK;
}

static void copy_example(at_dataset *dst, int to, const at_dataset *src, int from)
{
    const size_t example = (size_t)src->c * src->h * src->w;
    memcpy(dst->images + (size_t)to * example, src->images + (size_t)from * example, example);
    dst->labels[to] = src->labels[from];
}

int at_dataset_slice(at_dataset *out, const at_dataset *src, int start, int count, at_error *err)
{
    if (out == src)
        return at_fail(err, AT_ERR_ARG, "%s: cannot slice a dataset into itself", src->name);
    if (start < 0 || count < 0 || start > src->n || count > src->n - start) {
        memset(out, 0, sizeof *out);
        return at_fail(err, AT_ERR_ARG, "%s: slice [%d, %d + %d) outside its %d examples",
                       src->name, start, start, count, src->n);
    }
    int status = alloc_like(out, src, count, err);
    if (status)
        return status;
    for (int i = 0; i < count; i++)
        copy_example(out, i, src, start + i);
    return AT_OK;
}

int at_dataset_split(at_dataset *train, at_dataset *val, const at_dataset *src, int val_count,
                     uint64_t seed, at_error *err)
{
    if (train == val || train == src || val == src)
        return at_fail(err, AT_ERR_ARG, "%s: split needs three distinct datasets", src->name);
    memset(train, 0, sizeof *train);
    memset(val, 0, sizeof *val);
    if (val_count < 0 || val_count >= src->n)
        return at_fail(err, AT_ERR_ARG,
                       "%s: validation size %d must be at least 0 and below the %d examples",
                       src->name, val_count, src->n);
    const int n = src->n;
    int32_t *order = at_alloc((size_t)n * sizeof(int32_t));
    uint8_t *held_out = at_alloc((size_t)n);
    int status = order && held_out ? AT_OK
                                   : at_fail(err, AT_ERR_NOMEM, "%s: out of memory", src->name);
    if (!status)
        status = alloc_like(val, src, val_count, err);
    if (!status)
        status = alloc_like(train, src, n - val_count, err);
    if (status) {
        at_dataset_free(val);
        at_dataset_free(train);
        at_free(order);
        at_free(held_out);
        return status;
    }
    /* The validation set is the first val_count of a seeded permutation, in that order; the rest
     * keep their original order so the training set does not depend on the seed's draws. */
    at_rng rng;
    at_rng_seed(&rng, seed);
    for (int i = 0; i < n; i++)
        order[i] = i;
    at_rng_shuffle(&rng, order, (size_t)n);
    for (int i = 0; i < val_count; i++) {
        copy_example(val, i, src, order[i]);
        held_out[order[i]] = 1;
    }
    for (int i = 0, j = 0; i < n; i++)
        if (!held_out[i])
            copy_example(train, j++, src, i);
    at_free(order);
    at_free(held_out);
    return AT_OK;
}

void at_dataset_batch(const at_dataset *ds, const int32_t *idx, int n, float *x, int32_t *y,
                      const at_augment *aug, at_rng *rng)
{
    /* Division, not multiplication by 1/255, so each value is exactly v / 255 rounded once. */
    float to_unit[256];
    for (int v = 0; v < 256; v++)
        to_unit[v] = (float)v / 255.0f;
    const int c = ds->c, h = ds->h, w = ds->w;
    const size_t plane = (size_t)h * w, example = (size_t)c * plane;
    /* Without an rng there is nothing to draw from, so the batch comes out unaugmented. */
    const int pad = aug && rng && aug->crop_padding > 0 ? aug->crop_padding : 0;
    const bool may_flip = aug && rng && aug->hflip;
    for (int i = 0; i < n; i++) {
        const uint8_t *src = ds->images + (size_t)idx[i] * example;
        float *dst = x + (size_t)i * example;
        if (y)
            y[i] = ds->labels[idx[i]];
        /* Draws per example, always in this order: crop row offset, crop column offset, flip.
         * An offset o in [0, 2 pad] of the padded image is a shift of o - pad of the original. */
        int dy = 0, dx = 0;
        bool flip = false;
        if (pad > 0) {
            dy = (int)((long long)at_rng_below(rng, 2u * (uint32_t)pad + 1u) - pad);
            dx = (int)((long long)at_rng_below(rng, 2u * (uint32_t)pad + 1u) - pad);
        }
        if (may_flip)
            flip = at_rng_below(rng, 2) == 1;
        if (dy == 0 && dx == 0 && !flip) {
            for (size_t k = 0; k < example; k++)
                dst[k] = to_unit[src[k]];
            continue;
        }
        /* Crop, then flip the crop: out[r][q] = padded[r + dy][(flip ? w - 1 - q : q) + dx]. */
        for (int ch = 0; ch < c; ch++) {
            const uint8_t *sp = src + (size_t)ch * plane;
            float *dp = dst + (size_t)ch * plane;
            for (int r = 0; r < h; r++) {
                const int sr = r + dy;
                for (int q = 0; q < w; q++) {
                    const int sc = (flip ? w - 1 - q : q) + dx;
                    const bool inside = sr >= 0 && sr < h && sc >= 0 && sc < w;
                    dp[(size_t)r * w + q] = inside ? to_unit[sp[(size_t)sr * w + sc]] : 0.0f;
                }
            }
        }
    }
}
