/* test_checkpoint.c: checkpoints of whole models and their optimiser. A model trained for a few
 * SGD (or Adam) steps, saved and loaded into a model made with another seed, must come back bit
 * for bit (parameters, running statistics, num_batches_tracked, momentum or Adam's moments and
 * step count) under PyTorch's state_dict names and dtypes, and continue exactly as the original. Weights-only files (a PyTorch state_dict) load without an optimiser and are
 * refused for resuming. Every kind of mismatch fails with a message naming the tensor and leaves
 * the model and the optimiser untouched. Files live in a fresh directory under /tmp. */
#include "test.h"

#include "advtrain.h"

#include <dirent.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

/* ------------------------------------------------------------------------------------------------
 * A scratch directory per test
 */
typedef struct scratch {
    char dir[64];
} scratch;

static bool scratch_make(scratch *s)
{
    snprintf(s->dir, sizeof s->dir, "/tmp/advtrain-test-ckpt-XXXXXX");
    return mkdtemp(s->dir) != NULL;
}

static void scratch_path(const scratch *s, const char *name, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%s", s->dir, name);
}

/* The tests make no subdirectories, so one level is enough. */
static void scratch_remove(const scratch *s)
{
    DIR *d = opendir(s->dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        char path[512];
        snprintf(path, sizeof path, "%s/%s", s->dir, e->d_name);
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            unlink(path);
    }
    closedir(d);
    rmdir(s->dir);
}

/* ------------------------------------------------------------------------------------------------
 * Models in a state worth saving
 */
typedef struct trained {
    at_model *model;
    at_optimizer *opt;
} trained;

static void trained_free(trained *t)
{
    at_optimizer_free(t->opt);
    at_model_free(t->model);
}

/* `steps` steps with hand-made gradients, each a fresh draw from `rng`. */
static void take_steps(trained *t, at_rng *rng, int steps)
{
    size_t n;
    float *grads = at_model_grads(t->model, &n);
    for (int s = 0; s < steps; s++) {
        for (size_t i = 0; i < n; i++)
            grads[i] = (float)(at_rng_uniform(rng) - 0.5) * 0.02f;
        at_optimizer_step(t->opt, 0.05f);
    }
}

/* `steps` steps of an optimiser of `kind` (SGD: momentum 0.9, weight decay 5e-4; Adam and AdamW:
 * PyTorch's defaults) with hand-made gradients, then buffers and counters set as training would
 * leave them (nothing here runs a forward pass). */
static bool make_trained_with(trained *t, const char *arch, at_optimizer_kind kind, uint64_t seed,
                              int steps)
{
    at_error err;
    t->model = NULL;
    t->opt = NULL;
    at_model_options options = {.seed = seed};
    at_optimizer_options o = at_optimizer_defaults(kind);
    if (kind == AT_OPTIMIZER_SGD) {
        o.momentum = 0.9f;
        o.weight_decay = 5e-4f;
    }
    if (at_model_create(&t->model, arch, &options, &err) != 0 ||
        at_optimizer_create(&t->opt, t->model, &o, &err) != 0) {
        TEST_FAIL_("%s: %s", arch, err.message);
        trained_free(t);
        return false;
    }
    at_rng rng;
    at_rng_seed(&rng, seed + 1000);
    take_steps(t, &rng, steps);
    for (int i = 0; i < at_model_tensor_count(t->model); i++) {
        at_tensor_info info = at_model_tensor(t->model, i);
        if (info.dtype == AT_I64)
            info.data_i64[0] = 17 + i;
        else if (!info.is_param)
            for (size_t k = 0; k < info.numel; k++)
                info.data[k] = 0.5f + (float)at_rng_uniform(&rng);
    }
    return true;
}

static bool make_trained(trained *t, const char *arch, uint64_t seed, int steps)
{
    return make_trained_with(t, arch, AT_OPTIMIZER_SGD, seed, steps);
}

/* Every byte of model and optimiser state, in tensor order, then the optimiser's slabs and its
 * step count. */
typedef struct snapshot {
    unsigned char *bytes;
    size_t size;
} snapshot;

static snapshot take_snapshot(at_model *m, at_optimizer *opt)
{
    snapshot s = {NULL, 0};
    const int n_state = opt ? at_optimizer_state_count(opt) : 0;
    for (int i = 0; i < at_model_tensor_count(m); i++)
        s.size += at_model_tensor(m, i).numel * 8;
    for (int k = 0; k < n_state; k++)
        s.size += at_optimizer_state(opt, k).count * sizeof(float);
    s.bytes = malloc(s.size + sizeof(int64_t));
    size_t used = 0;
    for (int i = 0; i < at_model_tensor_count(m); i++) {
        at_tensor_info t = at_model_tensor(m, i);
        size_t nbytes = t.numel * (t.dtype == AT_I64 ? sizeof(int64_t) : sizeof(float));
        memcpy(s.bytes + used, t.dtype == AT_I64 ? (void *)t.data_i64 : (void *)t.data, nbytes);
        used += nbytes;
    }
    for (int k = 0; k < n_state; k++) {
        at_optimizer_state_info state = at_optimizer_state(opt, k);
        if (state.count)
            memcpy(s.bytes + used, state.data, state.count * sizeof(float));
        used += state.count * sizeof(float);
    }
    if (opt) {
        int64_t steps = at_optimizer_steps(opt);
        memcpy(s.bytes + used, &steps, sizeof steps);
        used += sizeof steps;
    }
    s.size = used;
    return s;
}

static bool same_snapshot(const snapshot *a, const snapshot *b)
{
    return a->size == b->size && memcmp(a->bytes, b->bytes, a->size) == 0;
}

/* ------------------------------------------------------------------------------------------------
 * Round trips
 */
typedef struct expected_tensor {
    const char *name, *dtype;
    int ndim;
    int64_t shape[4];
} expected_tensor;

static void check_round_trip(const char *arch, const expected_tensor *expected, int n_expected)
{
    scratch s;
    REQUIRE(scratch_make(&s));
    char path[128];
    scratch_path(&s, "model.safetensors", path, sizeof path);
    trained a, b;
    REQUIRE(make_trained(&a, arch, 1, 3));
    if (!make_trained(&b, arch, 2, 0)) {
        trained_free(&a);
        return;
    }
    snapshot before_a = take_snapshot(a.model, a.opt), before_b = take_snapshot(b.model, b.opt);
    CHECK(!same_snapshot(&before_a, &before_b));

    at_error err;
    const at_kv meta[] = {{"epoch", "3"}, {"arch", arch}};
    CHECK_OK(at_checkpoint_save(path, a.model, a.opt, meta, 2, &err), &err);
    at_safetensors *st = NULL;
    CHECK_OK(at_checkpoint_load(path, b.model, b.opt, &st, &err), &err);
    snapshot after_b = take_snapshot(b.model, b.opt);
    CHECK(same_snapshot(&before_a, &after_b));
    REQUIRE(st);
    CHECK_STR_EQ(at_st_meta(st, "epoch"), "3");
    CHECK_STR_EQ(at_st_meta(st, "arch"), arch);
    CHECK_STR_EQ(at_st_meta(st, "format"), "advtrain-checkpoint-1");

    /* The file holds exactly the state_dict, plus one momentum tensor per parameter. */
    int n_params = 0;
    for (int i = 0; i < at_model_tensor_count(a.model); i++) {
        at_tensor_info t = at_model_tensor(a.model, i);
        const at_st_tensor *saved = at_st_find(st, t.name);
        n_params += t.is_param;
        if (!saved) {
            TEST_FAIL_("%s: tensor %s not in the file", arch, t.name);
            continue;
        }
        CHECK_STR_EQ(saved->dtype, t.dtype == AT_I64 ? "I64" : "F32");
        CHECK_EQ_INT(saved->ndim, t.ndim);
        for (int d = 0; d < t.ndim; d++)
            CHECK_EQ_INT(saved->shape[d], t.shape[d]);
    }
    CHECK_EQ_INT(at_st_count(st), at_model_tensor_count(a.model) + n_params);
    for (int i = 0; i < n_expected; i++) {
        const expected_tensor *e = &expected[i];
        const at_st_tensor *saved = at_st_find(st, e->name);
        if (!saved) {
            TEST_FAIL_("%s: tensor %s not in the file", arch, e->name);
            continue;
        }
        CHECK_STR_EQ(saved->dtype, e->dtype);
        CHECK_EQ_INT(saved->ndim, e->ndim);
        for (int d = 0; d < e->ndim; d++)
            CHECK_EQ_INT(saved->shape[d], e->shape[d]);
    }
    at_st_free(st);
    free(before_a.bytes);
    free(before_b.bytes);
    free(after_b.bytes);
    trained_free(&a);
    trained_free(&b);
    scratch_remove(&s);
}

TEST(smallcnn_round_trip)
{
    const expected_tensor expected[] = {
        {"feature_extractor.conv1.weight", "F32", 4, {32, 1, 3, 3}},
        {"feature_extractor.conv4.bias", "F32", 1, {64}},
        {"classifier.fc1.weight", "F32", 2, {200, 1024}},
        {"classifier.fc3.bias", "F32", 1, {10}},
        {"optimizer.momentum.classifier.fc3.bias", "F32", 1, {10}},
        {"optimizer.momentum.feature_extractor.conv1.weight", "F32", 4, {32, 1, 3, 3}},
    };
    check_round_trip("smallcnn", expected, (int)(sizeof expected / sizeof expected[0]));
}

TEST(preact_resnet18_round_trip)
{
    const expected_tensor expected[] = {
        {"conv1.weight", "F32", 4, {64, 3, 3, 3}},
        {"layer1.0.bn1.weight", "F32", 1, {64}},
        {"layer1.0.bn1.running_var", "F32", 1, {64}},
        {"layer1.0.bn1.num_batches_tracked", "I64", 0, {0}},
        {"layer2.0.shortcut.0.weight", "F32", 4, {128, 64, 1, 1}},
        {"linear.weight", "F32", 2, {10, 512}},
        {"optimizer.momentum.layer2.0.shortcut.0.weight", "F32", 4, {128, 64, 1, 1}},
    };
    check_round_trip("preact-resnet18", expected, (int)(sizeof expected / sizeof expected[0]));
}

/* Adam's moments and step count come back bit for bit under their PyTorch names, and the loaded
 * run continues exactly as the saved one would have: a resumed run is the uninterrupted run. */
static void check_adam_resume(at_optimizer_kind kind)
{
    const char *name = at_optimizer_kind_name(kind);
    scratch s;
    REQUIRE(scratch_make(&s));
    char path[128];
    scratch_path(&s, "adam.safetensors", path, sizeof path);
    trained a, b;
    REQUIRE(make_trained_with(&a, "smallcnn", kind, 1, 3));
    if (!make_trained_with(&b, "smallcnn", kind, 2, 1)) {
        trained_free(&a);
        return;
    }
    at_error err;
    CHECK_OK(at_checkpoint_save(path, a.model, a.opt, NULL, 0, &err), &err);
    at_safetensors *st = NULL;
    CHECK_OK(at_checkpoint_load(path, b.model, b.opt, &st, &err), &err);
    snapshot saved = take_snapshot(a.model, a.opt), loaded = take_snapshot(b.model, b.opt);
    CHECK(same_snapshot(&saved, &loaded));
    CHECK_EQ_INT(at_optimizer_steps(b.opt), 3);
    REQUIRE(st);
    CHECK_STR_EQ(at_st_meta(st, "optimizer"), name);
    int n_params = 0;
    for (int i = 0; i < at_model_tensor_count(a.model); i++)
        n_params += at_model_tensor(a.model, i).is_param;
    CHECK_EQ_INT(at_st_count(st), at_model_tensor_count(a.model) + 2 * n_params + 1);
    const at_st_tensor *step = at_st_find(st, "optimizer.step");
    REQUIRE(step);
    CHECK_STR_EQ(step->dtype, "I64");
    CHECK_EQ_INT(step->ndim, 0);
    static const char *const states[] = {"optimizer.exp_avg.classifier.fc3.bias",
                                         "optimizer.exp_avg_sq.feature_extractor.conv1.weight"};
    static const int ndims[] = {1, 4};
    for (int i = 0; i < 2; i++) {
        const at_st_tensor *t = at_st_find(st, states[i]);
        CHECK(t && !strcmp(t->dtype, "F32") && t->ndim == ndims[i]);
    }
    CHECK(at_st_find(st, "optimizer.momentum.classifier.fc3.bias") == NULL);
    at_st_free(st);

    at_rng ra, rb;
    at_rng_seed(&ra, 77);
    at_rng_seed(&rb, 77);
    take_steps(&a, &ra, 2);
    take_steps(&b, &rb, 2);
    snapshot continued_a = take_snapshot(a.model, a.opt), continued_b = take_snapshot(b.model, b.opt);
    CHECK(same_snapshot(&continued_a, &continued_b));
    CHECK(!same_snapshot(&saved, &continued_a));
    free(saved.bytes);
    free(loaded.bytes);
    free(continued_a.bytes);
    free(continued_b.bytes);
    trained_free(&a);
    trained_free(&b);
    scratch_remove(&s);
}

TEST(adam_round_trip_and_resume) { check_adam_resume(AT_OPTIMIZER_ADAM); }
TEST(adamw_round_trip_and_resume) { check_adam_resume(AT_OPTIMIZER_ADAMW); }

/* Resuming with another kind of optimiser than the one saved fails with one line naming the file
 * and both kinds, and changes nothing; loading the weights alone still works. */
TEST(optimizer_kind_must_match)
{
    scratch s;
    REQUIRE(scratch_make(&s));
    char adam_path[128], sgd_path[128];
    scratch_path(&s, "adam.safetensors", adam_path, sizeof adam_path);
    scratch_path(&s, "sgd.safetensors", sgd_path, sizeof sgd_path);
    trained adam, adamw, sgd;
    REQUIRE(make_trained_with(&adam, "mlp-16", AT_OPTIMIZER_ADAM, 1, 2));
    REQUIRE(make_trained_with(&adamw, "mlp-16", AT_OPTIMIZER_ADAMW, 2, 1));
    REQUIRE(make_trained_with(&sgd, "mlp-16", AT_OPTIMIZER_SGD, 3, 1));
    at_error err;
    CHECK_OK(at_checkpoint_save(adam_path, adam.model, adam.opt, NULL, 0, &err), &err);
    CHECK_OK(at_checkpoint_save(sgd_path, sgd.model, sgd.opt, NULL, 0, &err), &err);
    const struct {
        const char *path;
        trained *target;
        const char *saved, *wanted;
    } cases[] = {
        {adam_path, &sgd, "adam", "sgd"},
        {adam_path, &adamw, "adam", "adamw"},
        {sgd_path, &adam, "sgd", "adam"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snapshot before = take_snapshot(cases[i].target->model, cases[i].target->opt);
        char expect[512];
        snprintf(expect, sizeof expect, "%s holds the state of optimizer %s, but the optimizer to "
                 "resume is %s", cases[i].path, cases[i].saved, cases[i].wanted);
        CHECK_EQ_INT(at_checkpoint_load(cases[i].path, cases[i].target->model, cases[i].target->opt,
                                        NULL, &err), AT_ERR_FORMAT);
        CHECK_STR_EQ(err.message, expect);
        CHECK(strchr(err.message, '\n') == NULL);
        snapshot after = take_snapshot(cases[i].target->model, cases[i].target->opt);
        CHECK(same_snapshot(&before, &after));
        free(before.bytes);
        free(after.bytes);
    }
    CHECK_OK(at_checkpoint_load(adam_path, sgd.model, NULL, NULL, &err), &err);
    snapshot a = take_snapshot(adam.model, NULL), b = take_snapshot(sgd.model, NULL);
    CHECK(same_snapshot(&a, &b));
    free(a.bytes);
    free(b.bytes);
    trained_free(&adam);
    trained_free(&adamw);
    trained_free(&sgd);
    scratch_remove(&s);
}

/* ------------------------------------------------------------------------------------------------
 * Files that do not fit
 */

/* How a test file departs from a correct checkpoint. */
typedef struct tamper {
    const char *drop;         /* left out */
    const char *reshape;      /* first dimension one larger */
    const char *retype;       /* written as `retype_to` (zeros) */
    const char *retype_to;
    const char *poison;       /* one element NaN, or +Inf with poison_inf */
    bool poison_inf;
    const char *extra;        /* an additional F32 [2] tensor */
} tamper;

static size_t dtype_size(const char *dtype) { return strstr(dtype, "64") ? 8 : 4; }

/* Adds one tensor of a file written the way at_checkpoint_save writes, changed as `tm` says.
 * Buffers it makes go to owned[*n_owned] and are freed after the save. */
static int add_tampered(at_st_writer *w, const char *name, const at_tensor_info *t,
                        const void *data, const tamper *tm, void **owned, int *n_owned,
                        at_error *err)
{
    const char *dtype = t->dtype == AT_I64 ? "I64" : "F32";
    size_t numel = t->numel;
    int64_t shape[4];
    memcpy(shape, t->shape, sizeof shape);
    if (tm->drop && strcmp(tm->drop, name) == 0)
        return 0;
    if (tm->reshape && strcmp(tm->reshape, name) == 0) {
        numel = numel / (size_t)shape[0] * (size_t)(shape[0] + 1);
        shape[0]++;
        data = owned[(*n_owned)++] = calloc(numel, dtype_size(dtype));
    }
    if (tm->retype && strcmp(tm->retype, name) == 0) {
        dtype = tm->retype_to;
        data = owned[(*n_owned)++] = calloc(numel ? numel : 1, dtype_size(dtype));
    }
    if (tm->poison && strcmp(tm->poison, name) == 0) {
        float *copy = owned[(*n_owned)++] = malloc(numel * sizeof(float));
        memcpy(copy, data, numel * sizeof(float));
        copy[numel / 2] = tm->poison_inf ? INFINITY : NAN;
        data = copy;
    }
    return at_st_writer_add(w, name, dtype, t->ndim, shape, data, numel * dtype_size(dtype), err);
}

/* The model's tensors, and the momentum when sgd (an SGD optimiser) is not NULL, with the
 * changes of `tm`. */
static int write_tampered(const char *path, at_model *m, at_optimizer *sgd, const tamper *tm,
                          at_error *err)
{
    at_st_writer *w = NULL;
    int status = at_st_writer_create(&w, err);
    void *owned[8] = {NULL};
    int n_owned = 0;
    const float *params = at_model_params(m, NULL);
    const float *momentum = sgd ? at_optimizer_state(sgd, 0).data : NULL;
    for (int i = 0; i < at_model_tensor_count(m) && status == 0; i++) {
        at_tensor_info t = at_model_tensor(m, i);
        const void *data = t.dtype == AT_I64 ? (const void *)t.data_i64 : (const void *)t.data;
        status = add_tampered(w, t.name, &t, data, tm, owned, &n_owned, err);
        if (status != 0 || !momentum || !t.is_param)
            continue;
        char name[256];
        snprintf(name, sizeof name, "optimizer.momentum.%s", t.name);
        status = add_tampered(w, name, &t, momentum + (t.data - params), tm, owned, &n_owned,
                              err);
    }
    static const float extra[2] = {1, 2};
    const int64_t extra_shape[1] = {2};
    if (status == 0 && tm->extra)
        status = at_st_writer_add(w, tm->extra, "F32", 1, extra_shape, extra, sizeof extra, err);
    if (status == 0)
        status = at_st_writer_save(w, path, err);
    at_st_writer_free(w);
    for (int i = 0; i < n_owned; i++)
        free(owned[i]);
    return status;
}

typedef struct bad_case {
    const char *label;
    tamper tm;
    bool file_has_momentum, load_with_sgd;
    int status;
    const char *expect[3]; /* parts of the message besides the path */
} bad_case;

/* Writes the tampered file from `source`, loads it into `target` and checks the failure, and
 * that the target's model and optimiser did not change. */
static void check_bad_case(const scratch *s, const bad_case *c, const trained *source,
                           const trained *target)
{
    char path[128];
    scratch_path(s, "tampered.safetensors", path, sizeof path);
    at_error err;
    CHECK_OK(write_tampered(path, source->model, c->file_has_momentum ? source->opt : NULL, &c->tm,
                            &err), &err);
    snapshot before = take_snapshot(target->model, target->opt);
    at_safetensors *st = (at_safetensors *)&before; /* any non-NULL value: must become NULL */
    err = (at_error){0, ""};
    int status = at_checkpoint_load(path, target->model, c->load_with_sgd ? target->opt : NULL,
                                    &st, &err);
    snapshot after = take_snapshot(target->model, target->opt);
    bool message_ok = strstr(err.message, path) != NULL;
    for (int i = 0; i < 3 && c->expect[i]; i++)
        message_ok = message_ok && strstr(err.message, c->expect[i]) != NULL;
    if (status != c->status || err.status != c->status || !message_ok)
        TEST_FAIL_("%s: expected status %d, got %d: %s", c->label, c->status, status,
                   err.message);
    if (!same_snapshot(&before, &after))
        TEST_FAIL_("%s: the failed load changed the model or the optimiser", c->label);
    CHECK(st == NULL);
    free(before.bytes);
    free(after.bytes);
}

TEST(mismatches_fail_and_change_nothing)
{
    static const bad_case cases[] = {
        {"wrong shape", {.reshape = "classifier.fc3.bias"}, true, true, AT_ERR_SHAPE,
         {"tensor classifier.fc3.bias has shape [11] but the model expects [10]"}},
        {"wrong shape 4-d", {.reshape = "feature_extractor.conv1.weight"}, false, false,
         AT_ERR_SHAPE, {"feature_extractor.conv1.weight", "[33, 1, 3, 3]", "[32, 1, 3, 3]"}},
        {"missing tensor", {.drop = "feature_extractor.conv2.weight"}, true, false,
         AT_ERR_NOTFOUND,
         {"missing tensor feature_extractor.conv2.weight (is this a checkpoint of smallcnn?)"}},
        {"unexpected tensor", {.extra = "feature_extractor.conv9.weight"}, false, false,
         AT_ERR_FORMAT, {"unexpected tensor feature_extractor.conv9.weight"}},
        {"wrong dtype", {.retype = "classifier.fc1.bias", .retype_to = "F64"}, false, false,
         AT_ERR_FORMAT, {"tensor classifier.fc1.bias has dtype F64 but the model expects F32"}},
        {"NaN in a parameter", {.poison = "classifier.fc2.weight"}, false, false,
         AT_ERR_NUMERIC, {"tensor classifier.fc2.weight", "non-finite", "nan"}},
        /* The parameters are all valid here: only the optimiser part is wrong. */
        {"Inf in the momentum",
         {.poison = "optimizer.momentum.classifier.fc2.bias", .poison_inf = true}, true, true,
         AT_ERR_NUMERIC, {"tensor optimizer.momentum.classifier.fc2.bias", "inf"}},
        {"missing momentum", {.drop = "optimizer.momentum.feature_extractor.conv1.bias"}, true,
         true, AT_ERR_NOTFOUND, {"missing tensor optimizer.momentum.feature_extractor.conv1.bias"}},
        {"momentum of no parameter", {.extra = "optimizer.momentum.classifier.fc9.bias"}, true,
         true, AT_ERR_FORMAT, {"unexpected tensor optimizer.momentum.classifier.fc9.bias"}},
        {"weights-only file to resume", {0}, false, true, AT_ERR_NOTFOUND,
         {"has no optimiser state; cannot resume from a weights-only file"}},
    };
    scratch s;
    REQUIRE(scratch_make(&s));
    trained a, b;
    REQUIRE(make_trained(&a, "smallcnn", 1, 2));
    if (make_trained(&b, "smallcnn", 2, 1)) {
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
            check_bad_case(&s, &cases[i], &a, &b);
        trained_free(&b);
    }
    trained_free(&a);
    scratch_remove(&s);
}

/* A state_dict saved with safetensors.torch.save_file: model tensors only, no metadata. */
TEST(weights_only_files)
{
    scratch s;
    REQUIRE(scratch_make(&s));
    char weights[128], full[128];
    scratch_path(&s, "weights.safetensors", weights, sizeof weights);
    scratch_path(&s, "full.safetensors", full, sizeof full);
    trained a, b;
    REQUIRE(make_trained(&a, "smallcnn", 1, 2));
    if (!make_trained(&b, "smallcnn", 2, 1)) {
        trained_free(&a);
        return;
    }
    at_error err;
    const tamper none = {0};
    CHECK_OK(write_tampered(weights, a.model, NULL, &none, &err), &err);
    const at_kv meta[] = {{"format", "mine"}};
    CHECK_OK(at_checkpoint_save(full, a.model, a.opt, meta, 1, &err), &err);
    snapshot a_model = take_snapshot(a.model, NULL), b_momentum = take_snapshot(b.model, b.opt);
    size_t n_momentum = at_optimizer_state(b.opt, 0).count;
    float *momentum = at_optimizer_state(b.opt, 0).data;
    float *kept = malloc(n_momentum * sizeof *kept);
    memcpy(kept, momentum, n_momentum * sizeof *kept);

    /* Without an optimiser: the weights file, and a full checkpoint whose momentum is ignored. */
    CHECK_OK(at_checkpoint_load(weights, b.model, NULL, NULL, &err), &err);
    snapshot b_model = take_snapshot(b.model, NULL);
    CHECK(same_snapshot(&a_model, &b_model));
    CHECK(memcmp(kept, momentum, n_momentum * sizeof *kept) == 0);
    free(b_model.bytes);
    at_safetensors *st = NULL;
    CHECK_OK(at_checkpoint_load(full, b.model, NULL, &st, &err), &err);
    REQUIRE(st);
    CHECK_STR_EQ(at_st_meta(st, "format"), "mine");
    at_st_free(st);
    CHECK(memcmp(kept, momentum, n_momentum * sizeof *kept) == 0);

    /* Resuming from the weights file fails (covered above); from the full file it works. */
    CHECK_OK(at_checkpoint_load(full, b.model, b.opt, NULL, &err), &err);
    snapshot a_all = take_snapshot(a.model, a.opt), b_all = take_snapshot(b.model, b.opt);
    CHECK(same_snapshot(&a_all, &b_all));
    CHECK(!same_snapshot(&b_momentum, &b_all));

    /* A file that is not there. */
    char absent[128];
    scratch_path(&s, "absent.safetensors", absent, sizeof absent);
    CHECK_EQ_INT(at_checkpoint_load(absent, b.model, NULL, NULL, &err), AT_ERR_IO);
    CHECK(strstr(err.message, absent) != NULL);
    free(kept);
    free(a_model.bytes);
    free(b_momentum.bytes);
    free(a_all.bytes);
    free(b_all.bytes);
    trained_free(&a);
    trained_free(&b);
    scratch_remove(&s);
}

/* num_batches_tracked: a 0-dim I64 that must stay I64. */
TEST(batchnorm_counter_dtype)
{
    at_model *m = NULL;
    at_error err;
    CHECK_OK(at_model_begin(&m, 1, 4, 4, &err), &err);
    REQUIRE(m);
    int x = at_add_conv2d(m, 0, "conv", 2, 3, 1, 1, false);
    x = at_add_batchnorm2d(m, x, "bn");
    x = at_add_global_avgpool(m, x);
    x = at_add_flatten(m, x);
    at_add_linear(m, x, "fc", 3, true);
    CHECK_OK(at_model_finish(m, 5, &err), &err);
    at_tensor_info counter = at_model_tensor(m, at_model_find_tensor(m, "bn.num_batches_tracked"));
    REQUIRE(counter.data_i64);
    counter.data_i64[0] = 123456789012345;
    scratch s;
    REQUIRE(scratch_make(&s));
    trained t = {m, NULL};
    const bad_case cases[] = {
        {"counter as F32", {.retype = "bn.num_batches_tracked", .retype_to = "F32"}, false, false,
         AT_ERR_FORMAT, {"tensor bn.num_batches_tracked has dtype F32 but the model expects I64"}},
        {"missing counter", {.drop = "bn.num_batches_tracked"}, false, false, AT_ERR_NOTFOUND,
         {"missing tensor bn.num_batches_tracked (is this a checkpoint of custom?)"}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        check_bad_case(&s, &cases[i], &t, &t);

    char path[128];
    scratch_path(&s, "bn.safetensors", path, sizeof path);
    CHECK_OK(at_checkpoint_save(path, m, NULL, NULL, 0, &err), &err);
    counter.data_i64[0] = 0;
    at_safetensors *st = NULL;
    CHECK_OK(at_checkpoint_load(path, m, NULL, &st, &err), &err);
    CHECK_EQ_INT(counter.data_i64[0], 123456789012345);
    REQUIRE(st);
    const at_st_tensor *saved = at_st_find(st, "bn.num_batches_tracked");
    REQUIRE(saved);
    CHECK_STR_EQ(saved->dtype, "I64");
    CHECK_EQ_INT(saved->ndim, 0);
    CHECK_EQ_INT(saved->nbytes, 8);
    CHECK(at_st_count(st) == at_model_tensor_count(m)); /* no optimiser, no momentum */
    at_st_free(st);
    at_model_free(m);
    scratch_remove(&s);
}

TEST_MAIN(TEST_ENTRY(smallcnn_round_trip), TEST_ENTRY(preact_resnet18_round_trip),
          TEST_ENTRY(adam_round_trip_and_resume), TEST_ENTRY(adamw_round_trip_and_resume),
          TEST_ENTRY(optimizer_kind_must_match),
          TEST_ENTRY(mismatches_fail_and_change_nothing), TEST_ENTRY(weights_only_files),
          TEST_ENTRY(batchnorm_counter_dtype))
