/* test_init.c: fine-tuning (at_trainer_init_weights). A trainer initialised from a checkpoint
 * holds exactly the file's parameters and batch-norm buffers before any step, in its weight
 * average too, with a fresh optimiser and schedule; training on from there is, bit for bit,
 * training a model whose weights were loaded before the trainer was made, with another method
 * than the one that wrote the file. Files that do not fit (another architecture, a state_dict
 * with a tensor the model lacks or of another dtype, a cut file, one that is not safetensors,
 * another input normalisation) fail naming the file and change nothing, and so does a call
 * after an epoch. Files live in a fresh directory under /tmp. */
#include "test.h"

#include "advtrain.h"
#include "util/train_fixtures.h"

#include <dirent.h>
#include <stdlib.h>
#include <unistd.h>

enum { N = 64 };

typedef struct scratch {
    char dir[64];
} scratch;

static bool scratch_make(scratch *s)
{
    snprintf(s->dir, sizeof s->dir, "/tmp/advtrain-test-init-XXXXXX");
    return mkdtemp(s->dir) != NULL;
}

typedef char path_buf[512];

static const char *scratch_path(const scratch *s, const char *name, path_buf out)
{
    snprintf(out, sizeof(path_buf), "%s/%s", s->dir, name);
    return out;
}

/* The tests make no subdirectories, so one level is enough. */
static void scratch_remove(const scratch *s)
{
    DIR *d = opendir(s->dir);
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        path_buf path;
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            unlink(scratch_path(s, e->d_name, path));
    }
    if (d)
        closedir(d);
    rmdir(s->dir);
}

/* wrn-16-1 (batch norm everywhere) or mlp-16 for the 1x8x8 bands, optionally normalising. */
static at_model *model(const char *arch, uint64_t seed, float mean, float std)
{
    at_model_options o = {.num_classes = BANDS_K, .in_channels = 1, .in_height = BANDS_HW,
                          .in_width = BANDS_HW, .seed = seed};
    if (std > 0.0f) {
        o.normalize = 1;
        o.mean[0] = mean;
        o.std[0] = std;
    }
    at_model *m = NULL;
    at_error err;
    if (at_model_create(&m, arch, &o, &err))
        TEST_FAIL_("%s: %s", arch, err.message);
    return m;
}

static bool train_epochs(at_trainer *t, int epochs)
{
    at_error err;
    for (int e = 0; e < epochs; e++) {
        at_epoch_stats st;
        if (at_trainer_run_epoch(t, NULL, &st, &err)) {
            TEST_FAIL_("epoch %d: %s", e + 1, err.message);
            return false;
        }
    }
    return true;
}

/* Saves `m` as `advtrain train` does: the optimiser's state, a trainer.* tensor,
 * and the model description. */
static bool save_checkpoint(at_model *m, at_optimizer *opt, const char *path)
{
    at_error err;
    char *spec = at_model_spec(m);
    static const float budgets[4] = {0.1f, 0.2f, 0.3f, 0.4f};
    const at_st_tensor state = {"trainer.eps_budgets", "F32", 1, {4}, budgets, sizeof budgets};
    const at_kv meta[] = {{"model", spec}, {"epoch", "1"}};
    int status = at_checkpoint_save_with(path, m, opt, meta, 2, &state, 1, &err);
    if (status)
        TEST_FAIL_("at_checkpoint_save_with: %s", err.message);
    free(spec);
    return status == 0;
}

/* Trains `m` with standard training for one epoch and saves it. */
static bool save_trained(at_model *m, const at_dataset *d, const char *path)
{
    at_train_config c = bands_config("standard");
    c.epochs = 1;
    at_trainer *t = NULL;
    at_dataset val = {0};
    at_error err;
    bool ok = false;
    if (at_trainer_create(&t, m, d, &val, &c, &err))
        TEST_FAIL_("at_trainer_create: %s", err.message);
    else
        ok = train_epochs(t, 1) && save_checkpoint(m, at_trainer_optimizer(t), path);
    at_trainer_free(t);
    return ok;
}

/* A PyTorch state_dict saved with safetensors.torch.save_file: the model's tensors, no metadata;
 * `extra` adds a tensor the model lacks, `retype` writes one tensor as F64. */
static bool save_state_dict(const at_model *m, const char *path, const char *extra,
                            const char *retype)
{
    at_st_writer *w = NULL;
    at_error err;
    int status = at_st_writer_create(&w, &err);
    double *wide = NULL;
    for (int i = 0; i < at_model_tensor_count(m) && !status; i++) {
        at_tensor_info t = at_model_tensor(m, i);
        const void *data = t.dtype == AT_I64 ? (const void *)t.data_i64 : (const void *)t.data;
        size_t nbytes = t.numel * (t.dtype == AT_I64 ? 8 : 4);
        const char *dtype = t.dtype == AT_I64 ? "I64" : "F32";
        if (retype && !strcmp(retype, t.name)) {
            wide = calloc(t.numel, sizeof *wide);
            data = wide;
            nbytes = t.numel * sizeof *wide;
            dtype = "F64";
        }
        status = at_st_writer_add(w, t.name, dtype, t.ndim, t.shape, data, nbytes, &err);
    }
    static const float two[2] = {1, 2};
    const int64_t shape[1] = {2};
    if (!status && extra)
        status = at_st_writer_add(w, extra, "F32", 1, shape, two, sizeof two, &err);
    if (!status)
        status = at_st_writer_save(w, path, &err);
    if (status)
        TEST_FAIL_("writing %s: %s", path, err.message);
    at_st_writer_free(w);
    free(wide);
    return status == 0;
}

/* Every tensor of `a` holds the bytes of the same tensor of `b`. */
static bool same_weights(const at_model *a, const at_model *b)
{
    if (at_model_tensor_count(a) != at_model_tensor_count(b))
        return false;
    for (int i = 0; i < at_model_tensor_count(a); i++) {
        at_tensor_info x = at_model_tensor(a, i), y = at_model_tensor(b, i);
        size_t nbytes = x.numel * (x.dtype == AT_I64 ? 8 : 4);
        const void *p = x.dtype == AT_I64 ? (const void *)x.data_i64 : (const void *)x.data;
        const void *q = y.dtype == AT_I64 ? (const void *)y.data_i64 : (const void *)y.data;
        if (strcmp(x.name, y.name) || x.numel != y.numel || memcmp(p, q, nbytes))
            return false;
    }
    return true;
}

static at_train_config trades_config(float ema)
{
    at_train_config c = bands_config("trades");
    c.epochs = 1;
    c.attack_steps = 2;
    c.ema = ema;
    return c;
}

TEST(the_trainer_starts_from_the_files_parameters_and_buffers)
{
    scratch s;
    REQUIRE(scratch_make(&s));
    path_buf file;
    const char *path = scratch_path(&s, "standard.safetensors", file);
    at_dataset d = bands_data(N, 1), val = {0};
    at_model *a = model("wrn-16-1", 1, 0, 0), *b = model("wrn-16-1", 2, 0, 0);
    at_trainer *t = NULL;
    at_error err;
    if (!a || !b || !save_trained(a, &d, path))
        goto done;
    /* the buffers moved in training, so a match is the file's, not the initial values */
    const int counter = at_model_find_tensor(a, "bn1.num_batches_tracked");
    REQUIRE(counter >= 0);
    CHECK(at_model_tensor(a, counter).data_i64[0] == N / 16);
    CHECK(!same_weights(a, b));

    /* trades with a weight average, from a standard run's checkpoint */
    at_train_config c = trades_config(0.9f);
    CHECK_OK(at_trainer_create(&t, b, &d, &val, &c, &err), &err);
    REQUIRE(t);
    CHECK_OK(at_trainer_init_weights(t, path, &err), &err);
    CHECK(same_weights(b, a));
    CHECK(at_trainer_eval_model(t) != b);
    CHECK(same_weights(at_trainer_eval_model(t), a));
    at_optimizer_state_info momentum = at_optimizer_state(at_trainer_optimizer(t), 0);
    REQUIRE(momentum.data);
    size_t nonzero = 0;
    for (size_t i = 0; i < momentum.count; i++)
        nonzero += momentum.data[i] != 0.0f;
    CHECK_EQ_INT(nonzero, 0);
    at_trainer_progress p = at_trainer_get_progress(t);
    CHECK_EQ_INT(p.epochs_done, 0);
    CHECK_EQ_INT(p.optimizer_steps, 0);

    /* once an epoch has run, the weights are the run's own */
    if (train_epochs(t, 1)) {
        CHECK(!same_weights(b, a));
        at_model *before = model("wrn-16-1", 3, 0, 0);
        REQUIRE(before);
        CHECK_OK(at_model_copy_weights(before, b, &err), &err);
        CHECK_EQ_INT(at_trainer_init_weights(t, path, &err), AT_ERR_STATE);
        CHECK(strstr(err.message, path) && strstr(err.message, "before the first epoch"));
        CHECK(same_weights(b, before));
        at_model_free(before);
    }
done:
    at_trainer_free(t);
    at_model_free(a);
    at_model_free(b);
    bands_free(&d);
    scratch_remove(&s);
}

/* The trained weights and weight average of a trades run from `path`: loaded into the model
 * before the trainer is made (`first`), or through the trainer. */
static void trades_from(const char *path, const at_dataset *d, uint64_t seed, bool first,
                        at_model **out, at_model **average)
{
    at_model *m = model("wrn-16-1", seed, 0, 0);
    at_trainer *t = NULL;
    at_dataset val = {0};
    at_error err;
    at_train_config c = trades_config(0.9f);
    *out = *average = NULL;
    if (!m)
        return;
    if (first)
        CHECK_OK(at_checkpoint_load(path, m, NULL, NULL, &err), &err);
    CHECK_OK(at_trainer_create(&t, m, d, &val, &c, &err), &err);
    if (t && !first)
        CHECK_OK(at_trainer_init_weights(t, path, &err), &err);
    if (t && train_epochs(t, 1)) {
        *average = model("wrn-16-1", seed, 0, 0);
        if (*average)
            CHECK_OK(at_model_copy_weights(*average, at_trainer_eval_model(t), &err), &err);
    }
    at_trainer_free(t);
    *out = m;
}

TEST(training_on_is_training_a_model_loaded_first)
{
    scratch s;
    REQUIRE(scratch_make(&s));
    path_buf file;
    const char *path = scratch_path(&s, "standard.safetensors", file);
    at_dataset d = bands_data(N, 2);
    at_model *a = model("wrn-16-1", 1, 0, 0);
    if (a && save_trained(a, &d, path)) {
        at_model *loaded, *loaded_avg, *init, *init_avg;
        trades_from(path, &d, 5, true, &loaded, &loaded_avg);
        trades_from(path, &d, 6, false, &init, &init_avg);
        if (loaded && loaded_avg && init && init_avg) {
            CHECK(same_weights(init, loaded));
            CHECK(same_weights(init_avg, loaded_avg));
            CHECK(!same_weights(init, a));
        } else {
            TEST_FAIL_("a run failed");
        }
        at_model_free(loaded);
        at_model_free(loaded_avg);
        at_model_free(init);
        at_model_free(init_avg);
    }
    at_model_free(a);
    bands_free(&d);
    scratch_remove(&s);
}

/* Copies the first `bytes` of a file. */
static bool cut_file(const char *from, const char *to, size_t bytes)
{
    FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
    char *buf = malloc(bytes);
    bool ok = in && out && buf && fread(buf, 1, bytes, in) == bytes &&
              fwrite(buf, 1, bytes, out) == bytes;
    free(buf);
    if (in)
        fclose(in);
    if (out && fclose(out))
        ok = false;
    return ok;
}

typedef struct bad_file {
    const char *path;
    at_model *target;
    int status;
    const char *expect; /* in the message, besides the path */
} bad_file;

TEST(files_that_do_not_fit_fail_and_change_nothing)
{
    scratch s;
    REQUIRE(scratch_make(&s));
    at_dataset d = bands_data(N, 3), val = {0};
    at_model *a = model("wrn-16-1", 1, 0, 0), *b = model("wrn-16-1", 2, 0, 0);
    at_model *mlp = model("mlp-16", 1, 0, 0), *normalised = model("wrn-16-1", 4, 0.5f, 0.25f);
    at_model *b_normalised = model("wrn-16-1", 5, 0.5f, 0.25f);
    at_model *before = model("wrn-16-1", 6, 0, 0);
    if (!a || !b || !mlp || !normalised || !b_normalised || !before)
        goto done;
    path_buf good, other_arch, extra, f64, cut, junk, norm, plain, state_dict;
    scratch_path(&s, "good.safetensors", good);
    scratch_path(&s, "mlp.safetensors", other_arch);
    scratch_path(&s, "extra.safetensors", extra);
    scratch_path(&s, "f64.safetensors", f64);
    scratch_path(&s, "cut.safetensors", cut);
    scratch_path(&s, "junk.safetensors", junk);
    scratch_path(&s, "normalised.safetensors", norm);
    scratch_path(&s, "plain.safetensors", plain);
    scratch_path(&s, "state_dict.safetensors", state_dict);
    FILE *f = fopen(junk, "w");
    REQUIRE(f);
    fputs("this is not a safetensors file", f);
    fclose(f);
    if (!save_trained(a, &d, good) || !save_checkpoint(mlp, NULL, other_arch) ||
        !save_state_dict(a, extra, "head.weight", NULL) ||
        !save_state_dict(a, f64, NULL, "fc.bias") || !cut_file(good, cut, 3000) ||
        !save_checkpoint(normalised, NULL, norm) || !save_checkpoint(a, NULL, plain))
        goto done;
    at_trainer *t = NULL, *tn = NULL;
    at_error err;
    at_train_config c = trades_config(0.0f);
    CHECK_OK(at_trainer_create(&t, b, &d, &val, &c, &err), &err);
    CHECK_OK(at_trainer_create(&tn, b_normalised, &d, &val, &c, &err), &err);
    if (t && tn) {
        const bad_file cases[] = {
            {other_arch, b, AT_ERR_NOTFOUND, "missing tensor conv1.weight (is this a checkpoint of wrn-16-1?)"},
            {extra, b, AT_ERR_FORMAT, "unexpected tensor head.weight"},
            {f64, b, AT_ERR_FORMAT, "tensor fc.bias has dtype F64 but the model expects F32"},
            {cut, b, AT_ERR_FORMAT, ""},
            {junk, b, AT_ERR_FORMAT, ""},
            {norm, b, AT_ERR_ARG, "its model normalises inputs (mean [0.5], std [0.25]) but the "
                                  "model to train does not"},
            {plain, b_normalised, AT_ERR_ARG, "its model does not normalise inputs but the model "
                                              "to train does (mean [0.5], std [0.25])"},
        };
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            const bad_file *k = &cases[i];
            at_trainer *target = k->target == b ? t : tn;
            CHECK_OK(at_model_copy_weights(before, k->target, &err), &err);
            err = (at_error){0, ""};
            int status = at_trainer_init_weights(target, k->path, &err);
            if (status != k->status || !strstr(err.message, k->path) ||
                !strstr(err.message, k->expect) || strchr(err.message, '\n'))
                TEST_FAIL_("%s: expected status %d and '%s', got %d: %s", k->path, k->status,
                           k->expect, status, err.message);
            if (!same_weights(k->target, before))
                TEST_FAIL_("%s: the failed call changed the model", k->path);
        }
        /* a state_dict says nothing of its normalisation, so it cannot be refused for it; the
         * same weights as an advtrain checkpoint start the same run */
        CHECK(save_state_dict(normalised, state_dict, NULL, NULL));
        CHECK_OK(at_trainer_init_weights(t, state_dict, &err), &err);
        CHECK(same_weights(b, normalised));
        CHECK_OK(at_trainer_init_weights(tn, norm, &err), &err);
        CHECK(same_weights(b_normalised, normalised));
    }
    at_trainer_free(t);
    at_trainer_free(tn);
done:
    at_model_free(a);
    at_model_free(b);
    at_model_free(mlp);
    at_model_free(normalised);
    at_model_free(b_normalised);
    at_model_free(before);
    bands_free(&d);
    scratch_remove(&s);
}

TEST_MAIN(TEST_ENTRY(the_trainer_starts_from_the_files_parameters_and_buffers),
          TEST_ENTRY(training_on_is_training_a_model_loaded_first),
          TEST_ENTRY(files_that_do_not_fit_fail_and_change_nothing))
