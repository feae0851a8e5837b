/* image_folder.c: a data set kept as image files, one directory per class (the layout of
 * torchvision's ImageFolder), read into the uint8 NCHW tensor every other data set uses.
 *
 * Listing first, decoding second: the class directories and their image files are listed and
 * sorted (byte order, as Python's sorted()), the split is chosen on that list, and only the
 * split's files are decoded. The held-out test split of a folder without train/ and test/ is
 * drawn per class from a seeded shuffle of the class's files, so it depends only on the seed and
 * the file names, never on the order readdir returns or on which images decode. */
#include "core/util.h"
#include "data/image.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h> /* strcasecmp */
#include <sys/stat.h>

#define PATH_CAP 4096
#define DEFAULT_TEST_FRACTION 0.2
#define MAX_SIDE 4096      /* of a requested size */
#define MAX_FILE_BYTES (1L << 30)

/* ---------------------------------------------------------------------------------------------
 * Options */

static int parse_size(at_image_folder_options *o, const char *value, at_error *err)
{
    char *end;
    long h = strtol(value, &end, 10), w = 0;
    if (end != value && (*end == 'x' || *end == 'X')) {
        const char *rest = end + 1;
        w = strtol(rest, &end, 10);
        if (end == rest)
            w = 0;
    }
    if (*end || h < 1 || w < 1 || h > MAX_SIDE || w > MAX_SIDE)
        return at_fail(err, AT_ERR_ARG, "folder option size=%s: expected HEIGHTxWIDTH, each "
                       "1..%d (e.g. size=32x32)", value, MAX_SIDE);
    o->height = (int)h;
    o->width = (int)w;
    return AT_OK;
}

/* One "key" or "key=value" of length len. */
static int parse_option(at_image_folder_options *o, const char *text, size_t len, at_error *err)
{
    char item[128];
    if (len >= sizeof item)
        return at_fail(err, AT_ERR_ARG, "folder option '%.40s...' is too long", text);
    memcpy(item, text, len);
    item[len] = '\0';
    char *value = strchr(item, '=');
    if (value)
        *value++ = '\0';
    char *end = NULL;
    static const char *const valued[] = {"size", "resize", "channels", "test-fraction",
                                         "split-seed"};
    bool needs_value = false;
    for (size_t k = 0; k < sizeof valued / sizeof valued[0]; k++)
        needs_value |= strcmp(item, valued[k]) == 0;
    if (needs_value && !value)
        return at_fail(err, AT_ERR_ARG, "folder option %s needs a value (%s=...)", item, item);
    if (strcmp(item, "skip-bad") == 0 && value)
        return at_fail(err, AT_ERR_ARG, "folder option skip-bad takes no value");
    if (strcmp(item, "skip-bad") == 0) {
        o->skip_bad = true;
    } else if (strcmp(item, "size") == 0 && value) {
        return parse_size(o, value, err);
    } else if (strcmp(item, "resize") == 0 && value) {
        if (strcmp(value, "stretch") && strcmp(value, "crop"))
            return at_fail(err, AT_ERR_ARG, "folder option resize=%s: expected stretch or crop",
                           value);
        o->crop = strcmp(value, "crop") == 0;
    } else if (strcmp(item, "channels") == 0 && value) {
        if (strcmp(value, "1") && strcmp(value, "3"))
            return at_fail(err, AT_ERR_ARG, "folder option channels=%s: expected 1 (grey) or 3 "
                           "(colour)", value);
        o->channels = value[0] - '0';
    } else if (strcmp(item, "test-fraction") == 0 && value) {
        double f = strtod(value, &end);
        if (end == value || *end || !(f > 0 && f < 1))
            return at_fail(err, AT_ERR_ARG, "folder option test-fraction=%s: expected a number "
                           "strictly between 0 and 1", value);
        o->test_fraction = f;
    } else if (strcmp(item, "split-seed") == 0 && value) {
        errno = 0;
        unsigned long long seed = strtoull(value, &end, 10);
        if (end == value || *end || errno || value[0] == '-')
            return at_fail(err, AT_ERR_ARG, "folder option split-seed=%s: expected a "
                           "non-negative integer", value);
        o->split_seed = (uint64_t)seed;
    } else {
        return at_fail(err, AT_ERR_ARG, "unknown folder option '%s' (known: size=HxW, "
                       "resize=stretch|crop, channels=1|3, test-fraction=F, split-seed=N, "
                       "skip-bad)", item);
    }
    return AT_OK;
}

int at_image_folder_parse_options(at_image_folder_options *options, const char *text,
                                  at_error *err)
{
    memset(options, 0, sizeof *options);
    while (text && *text) {
        const char *comma = strchr(text, ',');
        const size_t len = comma ? (size_t)(comma - text) : strlen(text);
        int status = parse_option(options, text, len, err);
        if (status)
            return status;
        text = comma ? comma + 1 : NULL;
    }
    return AT_OK;
}

/* ---------------------------------------------------------------------------------------------
 * Listing */

/* The files of one split in class order, sorted by name within each class. */
typedef struct folder_listing {
    int n_classes;
    char **classes;   /* [n_classes] names */
    int n_files;
    char **paths;     /* [n_files] */
    int32_t *labels;  /* [n_files] */
} folder_listing;

static void free_names(char **names, int n)
{
    for (int i = 0; names && i < n; i++)
        free(names[i]);
    free(names);
}

static void listing_free(folder_listing *l)
{
    free_names(l->classes, l->n_classes);
    free_names(l->paths, l->n_files);
    free(l->labels);
    memset(l, 0, sizeof *l);
}

static bool is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static bool is_image_name(const char *name)
{
    const char *dot = strrchr(name, '.');
    return dot && (!strcasecmp(dot, ".png") || !strcasecmp(dot, ".jpg") ||
                   !strcasecmp(dot, ".jpeg"));
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The sorted names in dir of sub-directories (want_dirs) or of image files, hidden ones left out. */
static int list_names(const char *dir, bool want_dirs, char ***names, int *count, at_error *err)
{
    *names = NULL;
    *count = 0;
    DIR *d = opendir(dir);
    if (!d)
        return at_fail(err, errno == ENOENT ? AT_ERR_NOTFOUND : AT_ERR_IO,
                       "%s: cannot open directory: %s", dir, strerror(errno));
    int status = AT_OK, cap = 0;
    struct dirent *e;
    char path[PATH_CAP];
    while (!status && (e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        int len = snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat st;
        if (len < 0 || len >= (int)sizeof path) {
            status = at_fail(err, AT_ERR_ARG, "%s/%s: path too long", dir, e->d_name);
            break;
        }
        if (stat(path, &st) != 0)
            continue; /* a dangling link: not a class or an image */
        if (want_dirs ? !S_ISDIR(st.st_mode) : (!S_ISREG(st.st_mode) || !is_image_name(e->d_name)))
            continue;
        if (*count == cap) {
            cap = cap ? 2 * cap : 64;
            char **grown = cap < (1 << 26) ? realloc(*names, (size_t)cap * sizeof **names) : NULL;
            if (!grown) {
                status = at_fail(err, AT_ERR_NOMEM, "%s: out of memory listing it", dir);
                break;
            }
            *names = grown;
        }
        if (!((*names)[*count] = strdup(e->d_name))) {
            status = at_fail(err, AT_ERR_NOMEM, "%s: out of memory listing it", dir);
            break;
        }
        (*count)++;
    }
    closedir(d);
    if (status) {
        free_names(*names, *count);
        *names = NULL;
        *count = 0;
        return status;
    }
    if (*count > 1)
        qsort(*names, (size_t)*count, sizeof **names, compare_names);
    return AT_OK;
}

static int append_file(folder_listing *l, int *cap, const char *dir, const char *name,
                       int32_t label, at_error *err)
{
    if (l->n_files == *cap) {
        int grown_cap = *cap ? 2 * *cap : 256;
        char **paths = grown_cap < (1 << 28) ? realloc(l->paths, (size_t)grown_cap * sizeof *paths)
                                             : NULL;
        if (paths)
            l->paths = paths;
        int32_t *labels = paths ? realloc(l->labels, (size_t)grown_cap * sizeof *labels) : NULL;
        if (!labels)
            return at_fail(err, AT_ERR_NOMEM, "%s: out of memory listing it", dir);
        l->labels = labels;
        *cap = grown_cap;
    }
    const size_t len = strlen(dir) + strlen(name) + 2;
    if (len > PATH_CAP || !(l->paths[l->n_files] = malloc(len)))
        return at_fail(err, len > PATH_CAP ? AT_ERR_ARG : AT_ERR_NOMEM, "%s/%s: %s", dir, name,
                       len > PATH_CAP ? "path too long" : "out of memory");
    snprintf(l->paths[l->n_files], len, "%s/%s", dir, name);
    l->labels[l->n_files++] = label;
    return AT_OK;
}

/* Every class directory of root and every image in each; a class without images is an error. */
static int list_folder(folder_listing *l, const char *root, at_error *err)
{
    memset(l, 0, sizeof *l);
    int status = list_names(root, true, &l->classes, &l->n_classes, err);
    if (!status && l->n_classes == 0)
        status = at_fail(err, AT_ERR_NOTFOUND, "%s: no class directories (expected %s/CLASS/"
                         "IMAGE.png or .jpg)", root, root);
    int cap = 0;
    char class_dir[PATH_CAP];
    for (int k = 0; !status && k < l->n_classes; k++) {
        snprintf(class_dir, sizeof class_dir, "%s/%s", root, l->classes[k]);
        char **files;
        int n;
        if ((status = list_names(class_dir, false, &files, &n, err)))
            break;
        if (n == 0)
            status = at_fail(err, AT_ERR_NOTFOUND, "%s: class directory without .png, .jpg or "
                             ".jpeg images", class_dir);
        for (int i = 0; !status && i < n; i++)
            status = append_file(l, &cap, class_dir, files[i], k, err);
        free_names(files, n);
    }
    if (status)
        listing_free(l);
    return status;
}

static int same_classes(const folder_listing *train, const folder_listing *test,
                        const char *train_root, const char *test_root, at_error *err)
{
    for (int k = 0; k < train->n_classes || k < test->n_classes; k++) {
        const char *a = k < train->n_classes ? train->classes[k] : NULL;
        const char *b = k < test->n_classes ? test->classes[k] : NULL;
        if (!a || !b || strcmp(a, b) != 0)
            return at_fail(err, AT_ERR_ARG, "%s and %s must have the same class directories; "
                           "class %d is '%s' in one and '%s' in the other", train_root, test_root,
                           k, a ? a : "(none)", b ? b : "(none)");
    }
    return AT_OK;
}

/* Keeps the files of the train or the test part of a held-out split, in their order. Class k's
 * n files are shuffled (one rng, classes in order) and the first round(fraction n), at most
 * n - 1, of that order are its test files. */
static int hold_out(folder_listing *l, double fraction, uint64_t seed, bool train,
                    const char *root, at_error *err)
{
    int32_t *order = malloc((size_t)l->n_files * sizeof *order);
    bool *is_test = calloc((size_t)l->n_files, sizeof *is_test);
    if (!order || !is_test) {
        free(order);
        free(is_test);
        return at_fail(err, AT_ERR_NOMEM, "%s: out of memory", root);
    }
    at_rng rng;
    at_rng_seed(&rng, seed);
    int held = 0;
    for (int start = 0, end; start < l->n_files; start = end) {
        for (end = start; end < l->n_files && l->labels[end] == l->labels[start]; end++)
            order[end - start] = end;
        const int n = end - start;
        int k = (int)lround(fraction * n);
        if (k > n - 1)
            k = n - 1;
        at_rng_shuffle(&rng, order, (size_t)n);
        for (int i = 0; i < k; i++)
            is_test[order[i]] = true;
        held += k;
    }
    int kept = 0;
    for (int i = 0; i < l->n_files; i++) {
        if (is_test[i] == !train) {
            l->paths[kept] = l->paths[i];
            l->labels[kept++] = l->labels[i];
        } else {
            free(l->paths[i]);
        }
    }
    l->n_files = kept;
    free(order);
    free(is_test);
    if (held == 0)
        return at_fail(err, AT_ERR_ARG, "%s: test-fraction %g holds out no image (it rounds to "
                       "0 in every class); use a larger fraction, or train/ and test/", root,
                       fraction);
    return AT_OK;
}

/* ---------------------------------------------------------------------------------------------
 * Decoding */

static int read_whole_file(const char *path, uint8_t **bytes, size_t *size, at_error *err)
{
    *bytes = NULL;
    *size = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return at_fail(err, AT_ERR_FORMAT, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    int status = AT_OK;
    if (fstat(fileno(f), &st) != 0 || st.st_size > MAX_FILE_BYTES)
        status = at_fail(err, AT_ERR_FORMAT, "%s: cannot read: %s", path,
                         st.st_size > MAX_FILE_BYTES ? "larger than 1 GiB" : strerror(errno));
    else if (!(*bytes = malloc((size_t)st.st_size + 1)))
        status = at_fail(err, AT_ERR_NOMEM, "%s: out of memory", path);
    else if (fread(*bytes, 1, (size_t)st.st_size, f) != (size_t)st.st_size)
        status = at_fail(err, AT_ERR_FORMAT, "%s: cannot read: %s", path,
                         ferror(f) ? strerror(errno) : "file shrank while being read");
    fclose(f);
    if (status) {
        free(*bytes);
        *bytes = NULL;
        return status;
    }
    *size = (size_t)st.st_size;
    return AT_OK;
}

static int decode_file(image_pixels *img, const char *path, at_error *err)
{
    uint8_t *bytes;
    size_t size;
    int status = read_whole_file(path, &bytes, &size, err);
    if (!status)
        status = image_decode(img, bytes, size, path, err);
    free(bytes);
    return status;
}

/* The first image of the train files that decodes (any that fails is an error without
 * skip_bad): its size and channels are the defaults. */
static int first_image(const folder_listing *train, bool skip_bad, int *c, int *h, int *w,
                       char **path, at_error *err)
{
    int status = AT_ERR_FORMAT;
    for (int i = 0; i < train->n_files && status; i++) {
        image_pixels img;
        status = decode_file(&img, train->paths[i], err);
        if (status && !skip_bad)
            return status;
        if (!status) {
            *c = img.c;
            *h = img.h;
            *w = img.w;
            *path = train->paths[i];
            image_pixels_free(&img);
        }
    }
    return status;
}

/* ---------------------------------------------------------------------------------------------
 * The data set */

static int load_listed(at_dataset *out, const folder_listing *l, const char *root,
                       const at_image_folder_options *o, int c, int h, int w,
                       const char *first_path, at_error *err)
{
    size_t example, total;
    if (!at_mul_size((size_t)c * h, (size_t)w, &example) ||
        !at_mul_size(example, (size_t)l->n_files, &total))
        return at_fail(err, AT_ERR_NOMEM, "%s: %d images of %dx%dx%d do not fit in memory", root,
                       l->n_files, c, h, w);
    out->images = at_alloc(total);
    out->labels = at_alloc((size_t)l->n_files * sizeof *out->labels);
    if (!out->images || !out->labels)
        return at_fail(err, AT_ERR_NOMEM, "%s: out of memory for %d images of %dx%dx%d", root,
                       l->n_files, c, h, w);
    const bool resize = o->height > 0;
    int n = 0;
    for (int i = 0; i < l->n_files; i++) {
        image_pixels img;
        int status = decode_file(&img, l->paths[i], err);
        if (status && o->skip_bad && status != AT_ERR_NOMEM) {
            out->skipped++;
            continue;
        }
        if (!status && !resize && (img.h != h || img.w != w))
            status = at_fail(err, AT_ERR_FORMAT, "%s: %dx%d image (height x width), unlike the "
                             "first image %s (%dx%d); resize them all with size=HxW", l->paths[i],
                             img.h, img.w, first_path, h, w);
        if (!status)
            status = image_to_channels(&img, c, err);
        if (!status)
            status = image_resize_into(out->images + (size_t)n * example, h, w, &img,
                                       o->crop ? IMAGE_FIT_CROP : IMAGE_FIT_STRETCH, err);
        image_pixels_free(&img);
        if (status)
            return status;
        out->labels[n++] = l->labels[i];
    }
    if (n == 0)
        return at_fail(err, AT_ERR_FORMAT, "%s: none of its %d images could be read", root,
                       l->n_files);
    out->n = n;
    return AT_OK;
}

int at_dataset_load_folder(at_dataset *out, const char *dir, const char *split,
                           const at_image_folder_options *options, at_error *err)
{
    memset(out, 0, sizeof *out);
    at_image_folder_options o = options ? *options : (at_image_folder_options){0};
    if (!dir || !is_dir(dir))
        return at_fail(err, AT_ERR_NOTFOUND, "%s: no such directory for an image folder",
                       dir ? dir : "(no directory given)");
    if (!split || (strcmp(split, "train") && strcmp(split, "test")))
        return at_fail(err, AT_ERR_ARG, "unknown split '%s' of an image folder (known: train, "
                       "test)", split ? split : "(null)");
    if ((o.channels != 0 && o.channels != 1 && o.channels != 3) || o.height < 0 || o.width < 0 ||
        (o.height > 0) != (o.width > 0) || o.height > MAX_SIDE || o.width > MAX_SIDE ||
        !(o.test_fraction >= 0 && o.test_fraction < 1))
        return at_fail(err, AT_ERR_ARG, "%s: bad image folder options (channels %d, size %dx%d, "
                       "test fraction %g)", dir, o.channels, o.height, o.width, o.test_fraction);
    const bool train = strcmp(split, "train") == 0;
    char train_root[PATH_CAP], test_root[PATH_CAP];
    if (snprintf(train_root, sizeof train_root, "%s/train", dir) >= (int)sizeof train_root ||
        snprintf(test_root, sizeof test_root, "%s/test", dir) >= (int)sizeof test_root)
        return at_fail(err, AT_ERR_ARG, "%s: path too long", dir);
    const bool has_train = is_dir(train_root), has_test = is_dir(test_root);
    if (has_train != has_test)
        return at_fail(err, AT_ERR_NOTFOUND, "%s has %s/ but no %s/: give both splits, or put the "
                       "class directories in %s itself", dir, has_train ? "train" : "test",
                       has_train ? "test" : "train", dir);
    if (has_train && o.test_fraction > 0)
        return at_fail(err, AT_ERR_ARG, "%s: test-fraction is for a folder without train/ and "
                       "test/, and %s has both", dir, dir);
    const char *root = has_train ? (train ? train_root : test_root) : dir;

    /* The train listing always: it gives the classes and the first image. */
    folder_listing train_files, split_files = {0};
    int status = list_folder(&train_files, has_train ? train_root : dir, err);
    if (!status && has_train && !train) {
        status = list_folder(&split_files, test_root, err);
        if (!status)
            status = same_classes(&train_files, &split_files, train_root, test_root, err);
    }
    if (!status && !has_train) {
        /* both splits come out of one listing: the train part is needed for the first image */
        status = list_folder(&split_files, dir, err);
        const double fraction = o.test_fraction > 0 ? o.test_fraction : DEFAULT_TEST_FRACTION;
        if (!status)
            status = hold_out(&train_files, fraction, o.split_seed, true, dir, err);
        if (!status)
            status = hold_out(&split_files, fraction, o.split_seed, train, dir, err);
    }
    const folder_listing *files = has_train && !train ? &split_files
                                  : has_train ? &train_files : &split_files;
    int c = o.channels, h = o.height, w = o.width;
    char *first_path = NULL;
    if (!status && (!c || !h)) {
        int fc = 0, fh = 0, fw = 0;
        status = first_image(&train_files, o.skip_bad, &fc, &fh, &fw, &first_path, err);
        if (status == AT_ERR_FORMAT && o.skip_bad)
            status = at_fail(err, AT_ERR_FORMAT, "%s: none of its images could be read",
                             has_train ? train_root : dir);
        c = c ? c : fc;
        h = h ? h : fh;
        w = w ? w : fw;
    }
    if (!status) {
        out->c = c;
        out->h = h;
        out->w = w;
        out->num_classes = train_files.n_classes;
        at_strlcpy(out->name, "folder", sizeof out->name);
        status = load_listed(out, files, root, &o, c, h, w, first_path, err);
    }
    listing_free(&train_files);
    listing_free(&split_files);
    if (status)
        at_dataset_free(out);
    return status;
}
