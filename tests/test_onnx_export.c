/* test_onnx_export.c: models written as ONNX files (at_model_export_onnx) and read back by the
 * independent reader at_model_import_onnx: the built-in architectures (with and without input
 * normalisation) and a graph of the other layers compute the same logits after the round trip,
 * import -> export -> import keeps every tensor under its name, bit for bit, and a layer without
 * an inference meaning is refused with one line naming it and the model, writing nothing. Each
 * file is also read with the generated protobuf-c parser and checked for what ONNX requires of a
 * graph (each value defined once, before it is read) and the interface it promises; running it
 * in other runtimes is the reference tier's part (onnx_export_reference.py). */
#include "test.h"

#include "advtrain.h"
#include "onnx.pb-c.h"

#include <stdint.h>
#include <unistd.h>

static char dir[64];

static const char *path_of(const char *name)
{
    static char path[4][128];
    static int next;
    char *p = path[next++ % 4];
    snprintf(p, 128, "%s/%s", dir, name);
    return p;
}

static unsigned next_random(unsigned *seed)
{
    *seed = *seed * 1664525u + 1013904223u;
    return *seed >> 8;
}

static float uniform(unsigned *seed) { return (float)(next_random(seed) / 16777216.0); }

/* Every float tensor random (variances positive), so that batch norm's running statistics and
 * each bias matter to the logits. */
static void randomise(at_model *m, unsigned seed)
{
    for (int i = 0; i < at_model_tensor_count(m); i++) {
        at_tensor_info t = at_model_tensor(m, i);
        if (t.dtype != AT_F32)
            continue;
        const bool variance = strstr(t.name, "running_var") != NULL;
        const float spread = strstr(t.name, "weight") ? 2.0f / sqrtf((float)(t.numel / t.shape[0]))
                                                      : 0.2f;
        for (size_t j = 0; j < t.numel; j++)
            t.data[j] = variance ? 0.5f + uniform(&seed) : spread * (uniform(&seed) - 0.5f);
    }
}

static float *logits_of(at_model *m, const float *x, int n)
{
    at_pass *p = NULL;
    at_error err;
    CHECK_OK(at_pass_create(&p, m, n, AT_PASS_FORWARD_ONLY, &err), &err);
    if (!p)
        return NULL;
    const int k = at_model_num_classes(m);
    float *out = malloc((size_t)n * k * sizeof *out);
    at_forward(p, x, n, AT_BN_EVAL);
    memcpy(out, at_pass_logits(p), (size_t)n * k * sizeof *out);
    at_pass_free(p);
    return out;
}

/* Every tensor of `want` is in `got` under its name with the same shape and bits (the batch
 * counters of batch norm, not part of an inference graph, excepted). */
static void check_same_tensors(const at_model *got, const at_model *want, const char *label)
{
    int compared = 0;
    for (int i = 0; i < at_model_tensor_count(want); i++) {
        at_tensor_info w = at_model_tensor(want, i);
        if (w.dtype != AT_F32)
            continue;
        int k = at_model_find_tensor(got, w.name);
        if (k < 0) {
            TEST_FAIL_("%s: tensor %s missing after the round trip", label, w.name);
            continue;
        }
        at_tensor_info g = at_model_tensor(got, k);
        CHECK_EQ_INT(g.numel, w.numel);
        if (g.numel == w.numel && memcmp(g.data, w.data, w.numel * sizeof(float)) != 0)
            TEST_FAIL_("%s: tensor %s differs after the round trip", label, w.name);
        compared++;
    }
    CHECK(compared > 0);
}

static bool defined(char **names, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(names[i], name) == 0)
            return true;
    return false;
}

/* Opset 13; input "input" [N, C, H, W] and output "logits" [N, K] with N symbolic; every value
 * (input, initializer, node output) named once, and every node reading only values before it
 * (ONNX's static single assignment and topological order). */
static void check_well_formed(const char *path, const at_model *m, const char *label)
{
    FILE *f = fopen(path, "rb");
    REQUIRE(f);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *bytes = malloc((size_t)size);
    REQUIRE(bytes && fread(bytes, 1, (size_t)size, f) == (size_t)size);
    fclose(f);
    Onnx__ModelProto *model = onnx__model_proto__unpack(NULL, (size_t)size, bytes);
    free(bytes);
    REQUIRE(model && model->graph);
    const Onnx__GraphProto *g = model->graph;
    CHECK_EQ_INT(model->n_opset_import, 1);
    CHECK_EQ_INT(model->opset_import[0]->version, 13);
    REQUIRE(g->n_input == 1 && g->n_output == 1);
    CHECK_STR_EQ(g->input[0]->name, "input");
    CHECK_STR_EQ(g->output[0]->name, "logits");
    const Onnx__TensorShapeProto *in = g->input[0]->type->tensor_type->shape,
                                 *out = g->output[0]->type->tensor_type->shape;
    REQUIRE(in->n_dim == 4 && out->n_dim == 2);
    CHECK_STR_EQ(in->dim[0]->dim_param, "N");
    CHECK_STR_EQ(out->dim[0]->dim_param, "N");
    int c, h, w;
    at_model_input_shape(m, &c, &h, &w);
    CHECK(in->dim[1]->dim_value == c && in->dim[2]->dim_value == h && in->dim[3]->dim_value == w);
    CHECK_EQ_INT(out->dim[1]->dim_value, at_model_num_classes(m));
    size_t cap = 1 + g->n_initializer + g->n_node, n = 0;
    char **names = malloc(cap * sizeof *names);
    REQUIRE(names);
    names[n++] = g->input[0]->name;
    for (size_t i = 0; i < g->n_initializer; i++) {
        if (defined(names, n, g->initializer[i]->name))
            TEST_FAIL_("%s: initializer %s named twice", label, g->initializer[i]->name);
        names[n++] = g->initializer[i]->name;
    }
    for (size_t i = 0; i < g->n_node; i++) {
        const Onnx__NodeProto *node = g->node[i];
        for (size_t j = 0; j < node->n_input; j++)
            if (node->input[j][0] && !defined(names, n, node->input[j]))
                TEST_FAIL_("%s: node %s reads %s before it is defined", label, node->name,
                           node->input[j]);
        CHECK_EQ_INT(node->n_output, 1);
        if (defined(names, n, node->output[0]))
            TEST_FAIL_("%s: value %s is defined twice", label, node->output[0]);
        names[n++] = node->output[0];
    }
    CHECK(n > 0 && strcmp(names[n - 1], "logits") == 0);
    free(names);
    onnx__model_proto__free_unpacked(model, NULL);
}

/* model -> file -> imported: the same logits on random inputs, bit for bit when `exact`, else
 * within 1e-6 relative; imported -> file -> imported again: the same tensors, names and bits. */
static void check_round_trip(at_model *m, const char *label, int n, bool exact)
{
    at_error err;
    const char *first = path_of("first.onnx"), *second = path_of("second.onnx");
    CHECK_OK(at_model_export_onnx(m, first, &err), &err);
    check_well_formed(first, m, label);
    at_model *imported = NULL, *again = NULL;
    CHECK_OK(at_model_import_onnx(&imported, first, &err), &err);
    if (!imported) {
        fprintf(stderr, "%s: %s\n", label, err.message);
        return;
    }
    int c, h, w;
    at_model_input_shape(m, &c, &h, &w);
    CHECK_EQ_INT(at_model_num_classes(imported), at_model_num_classes(m));
    int ic, ih, iw;
    at_model_input_shape(imported, &ic, &ih, &iw);
    CHECK(ic == c && ih == h && iw == w);
    const size_t image = (size_t)c * h * w;
    float *x = malloc((size_t)n * image * sizeof *x);
    unsigned seed = 7;
    for (size_t i = 0; i < (size_t)n * image; i++)
        x[i] = uniform(&seed);
    float *a = logits_of(m, x, n), *b = logits_of(imported, x, n);
    const int k = at_model_num_classes(m);
    double worst = 0.0, scale = 0.0;
    for (int i = 0; a && b && i < n * k; i++) {
        worst = fmax(worst, fabs((double)a[i] - b[i]));
        scale = fmax(scale, fabs((double)a[i]));
    }
    if (exact ? worst != 0.0 : !(worst <= 1e-6 * scale))
        TEST_FAIL_("%s: logits differ after export and import by %.3g (scale %.3g)", label, worst,
                   scale);
    fprintf(stderr, "  %s: max |logit difference| %.3g of %.3g\n", label, worst, scale);
    check_same_tensors(imported, m, label);
    CHECK_OK(at_model_export_onnx(imported, second, &err), &err);
    CHECK_OK(at_model_import_onnx(&again, second, &err), &err);
    if (again) {
        CHECK_EQ_INT(at_model_tensor_count(again), at_model_tensor_count(imported));
        for (int i = 0; i < at_model_tensor_count(imported); i++)
            CHECK_STR_EQ(at_model_tensor(again, i).name, at_model_tensor(imported, i).name);
        check_same_tensors(again, imported, label);
    }
    free(a);
    free(b);
    free(x);
    at_model_free(again);
    at_model_free(imported);
    unlink(first);
    unlink(second);
}

static at_model *built_in(const char *arch, at_model_options o)
{
    at_model *m = NULL;
    at_error err;
    CHECK_OK(at_model_create(&m, arch, &o, &err), &err);
    if (m)
        randomise(m, 11);
    return m;
}

TEST(built_in_architectures_survive_the_round_trip)
{
    /* Exact but for one case: normalisation is exported as Sub and Div by [C, 1, 1], and the
     * import reads a Div by a single value (one channel) as a product with its reciprocal,
     * which may differ from the division in the last bit. */
    static const struct {
        const char *arch;
        at_model_options options;
        bool exact;
    } cases[] = {
        {"smallcnn", {0}, true},
        {"smallcnn", {.normalize = 1, .mean = {0.2860f}, .std = {0.3530f}}, false},
        {"mlp-32", {.in_channels = 3, .in_height = 8, .in_width = 8, .normalize = 1,
                    .mean = {0.4914f, 0.4822f, 0.4465f}, .std = {0.2471f, 0.2435f, 0.2616f}},
         true},
        {"linear", {.num_classes = 3, .in_channels = 2, .in_height = 5, .in_width = 7}, true},
        {"wrn-10-1", {.in_height = 16, .in_width = 16}, true},
        {"preact-resnet18",
         {.normalize = 1, .mean = {0.5f, 0.4f, 0.3f}, .std = {0.2f, 0.25f, 0.3f}}, true},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        at_model *m = built_in(cases[i].arch, cases[i].options);
        if (m)
            check_round_trip(m, cases[i].arch, 3, cases[i].exact);
        at_model_free(m);
    }
}

/* The layers the architectures above do not use, in one graph the import can read back: leaky
 * ReLU, Gaussian noise of sigma 0, uneven constant padding, layers named as the graph's input
 * and output, a non-global average pool, sigmoid and tanh branches joined by a product, a
 * constant factor, softplus, a residual sum, batch norm without affine parameters, a global
 * average and a max-pool over the whole image summed without a flatten before a linear layer,
 * batch norm of a vector, and a linear layer without bias. */
TEST(other_layers_survive_the_round_trip)
{
    at_model *m = NULL;
    at_error err;
    CHECK_OK(at_model_begin(&m, 2, 9, 9, &err), &err);
    if (!m)
        return;
    int x = at_add_conv2d(m, 0, "input", 4, 3, 1, 1, true); /* a name ONNX gives the input */
    x = at_add_leaky_relu(m, x, 0.1f);
    x = at_add_gaussian_noise(m, x, 0.0f); /* no noise: an Identity */
    x = at_add_pad2d(m, x, 1, 0, 0, 1, 0.5f);
    x = at_add_avgpool2d(m, x, 2, 2);
    int s = at_add_sigmoid(m, x), t = at_add_tanh(m, x);
    x = at_add_mul(m, s, t);
    x = at_add_scale(m, x, 0.5f);
    int y = at_add_softplus(m, at_add_conv2d(m, x, "logits", 4, 3, 1, 1, false));
    x = at_add_add(m, x, y);
    x = at_add_batchnorm2d_affine(m, x, "plain_bn", false);
    int g = at_add_global_avgpool(m, x), p = at_add_maxpool2d(m, x, 5, 1);
    x = at_add_add(m, g, p);
    x = at_add_linear(m, x, "head", 6, true);
    x = at_add_batchnorm2d(m, x, "head_bn");
    x = at_add_linear(m, x, "out", 5, false);
    CHECK(x > 0);
    CHECK_OK(at_model_finish(m, 3, &err), &err);
    randomise(m, 5);
    check_round_trip(m, "other layers", 4, true);
    at_model_free(m);
}

/* A layer drawing noise at every forward has no fixed ONNX equivalent: one line naming the layer
 * and the model, and no file (not even a temporary one) left behind. */
TEST(a_layer_without_an_inference_meaning_is_refused)
{
    at_model *m = built_in("smallcnn", (at_model_options){.input_noise = 0.25f});
    if (!m)
        return;
    at_error err;
    const char *path = path_of("noise.onnx");
    int status = at_model_export_onnx(m, path, &err);
    CHECK(status != 0);
    CHECK(strstr(err.message, "gaussian_noise") != NULL);
    CHECK(strstr(err.message, "'smallcnn'") != NULL);
    CHECK(strstr(err.message, "noise.onnx") != NULL);
    CHECK(strchr(err.message, '\n') == NULL);
    CHECK(access(path, F_OK) != 0);
    char tmp[160];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    CHECK(access(tmp, F_OK) != 0);
    at_model_free(m);
    /* an unwritable place: an error, not a crash */
    m = built_in("smallcnn", (at_model_options){0});
    CHECK(at_model_export_onnx(m, "/nonexistent-dir/model.onnx", &err) != 0);
    CHECK(strstr(err.message, "/nonexistent-dir/model.onnx") != NULL);
    at_model_free(m);
}

TEST_MAIN(TEST_ENTRY(built_in_architectures_survive_the_round_trip),
          TEST_ENTRY(other_layers_survive_the_round_trip),
          TEST_ENTRY(a_layer_without_an_inference_meaning_is_refused))

/* one temporary directory for the whole program, removed at exit */
__attribute__((constructor)) static void make_dir(void)
{
    snprintf(dir, sizeof dir, "/tmp/at_onnx_export_XXXXXX");
    if (!mkdtemp(dir))
        snprintf(dir, sizeof dir, "/tmp");
}

__attribute__((destructor)) static void remove_dir(void)
{
    unlink(path_of("first.onnx"));
    unlink(path_of("second.onnx"));
    if (strcmp(dir, "/tmp") != 0)
        rmdir(dir);
}
