/* test_onnx_import.c: ONNX files written here with the protobuf-c structs generated from
 * onnx.proto: a small valid graph whose logits are checked against a direct computation in
 * double, its checkpoint round trip, and a catalogue of broken files, each refused with a
 * one-line error naming the file and, for a bad node, the node and its operator. */
#include "test.h"

#include "advtrain.h"
#include "io/checkpoint.h"
#include "io/onnx_shapes.h"
#include "util/onnx_builder.h"

#include <stdint.h>
#include <unistd.h>

static char dir[64];

static const char *path_of(const char *name)
{
    static char path[8][128];
    static int next;
    char *p = path[next++ % 8];
    snprintf(p, 128, "%s/%s", dir, name);
    return p;
}

static const char *write_model(onnx_builder *b, const char *name)
{
    const char *path = path_of(name);
    onnx_write_model(b, path);
    return path;
}

/* The valid graph: (x - mean) per channel, Conv 3x3 pad 1 (2 -> 3 channels), LeakyRelu 0.1,
 * MaxPool 2, Flatten, Gemm (12 -> 4, transB 1), on 2x4x4 inputs. */
enum { C = 2, H = 4, W = 4, OC = 3, K = 3, FEATURES = OC * 2 * 2, CLASSES = 4 };
static float mean[C], conv_w[OC * C * K * K], conv_b[OC], fc_w[CLASSES * FEATURES], fc_b[CLASSES];

static void fill(float *v, int n, unsigned seed)
{
    for (int i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        v[i] = (float)((seed >> 8) / 16777216.0 - 0.5);
    }
}

/* The valid graph, or the same function written another way. */
typedef enum variant { PLAIN, PAD_BEFORE_CONV, TORCH_PAD, VIEW, UNEVEN_PADS } variant;

static void graph_variant(onnx_builder *b, variant v)
{
    static const int64_t pads[8] = {0, 0, 1, 1, 0, 0, 1, 1};
    static const int64_t zero = 0, minus_one[1] = {-1}, axes[1] = {0};
    fill(mean, C, 1);
    fill(conv_w, OC * C * K * K, 2);
    fill(conv_b, OC, 3);
    fill(fc_w, CLASSES * FEATURES, 4);
    fill(fc_b, CLASSES, 5);
    onnx_begin(b, C, H, W, CLASSES);
    onnx_initializer(b, "mean", 4, (int64_t[]){1, C, 1, 1}, mean);
    onnx_initializer(b, "conv.weight", 4, (int64_t[]){OC, C, K, K}, conv_w);
    onnx_initializer(b, "conv.bias", 1, (int64_t[]){OC}, conv_b);
    onnx_initializer(b, "fc.weight", 2, (int64_t[]){CLASSES, FEATURES}, fc_w);
    onnx_initializer(b, "fc.bias", 1, (int64_t[]){CLASSES}, fc_b);
    onnx_initializer_i64(b, "pads", 1, (int64_t[]){8}, pads);
    onnx_node(b, "Sub", "centre", "x", "mean", NULL, "xc");
    static const int64_t uneven[8] = {0, 0, 1, 0, 0, 0, 0, 1}; /* top 1 and right 1 */
    onnx_initializer_i64(b, "uneven", 1, (int64_t[]){8}, uneven);
    if (v == PAD_BEFORE_CONV || v == UNEVEN_PADS)
        onnx_node(b, "Pad", "pad", "xc", v == UNEVEN_PADS ? "uneven" : "pads", NULL, "xp");
    if (v == TORCH_PAD) { /* F.pad's pads as torch.onnx.export computes them from opset 11 on */
        static const int64_t ones[4] = {1, 1, 1, 1}, zeros[4] = {0}, rows[2] = {-1, 2},
                             start = -1, end = INT64_MIN + 1, axis = 0, step = -1, flat = -1;
        onnx_initializer_i64(b, "ones", 1, (int64_t[]){4}, ones);
        onnx_initializer_i64(b, "zeros", 1, (int64_t[]){4}, zeros);
        onnx_initializer_i64(b, "rows", 1, (int64_t[]){2}, rows);
        onnx_initializer_i64(b, "start", 1, (int64_t[]){1}, &start);
        onnx_initializer_i64(b, "end", 1, (int64_t[]){1}, &end);
        onnx_initializer_i64(b, "axis", 1, (int64_t[]){1}, &axis);
        onnx_initializer_i64(b, "step", 1, (int64_t[]){1}, &step);
        onnx_initializer_i64(b, "flat", 1, (int64_t[]){1}, &flat);
        onnx_attr_int(b, onnx_node(b, "Concat", "concat", "ones", "zeros", NULL, "p8"), "axis", 0);
        onnx_node(b, "Reshape", "pairs", "p8", "rows", NULL, "p42");
        Onnx__NodeProto *flip = onnx_node(b, "Slice", "flip", "p42", "start", "end", "p42r");
        flip->input[flip->n_input++] = "axis";
        flip->input[flip->n_input++] = "step";
        onnx_node(b, "Transpose", "swap", "p42r", NULL, NULL, "p24");
        onnx_node(b, "Reshape", "list", "p24", "flat", NULL, "pl");
        onnx_attr_int(b, onnx_node(b, "Cast", "cast", "pl", NULL, NULL, "pc"), "to", 7);
        onnx_node(b, "Pad", "pad", "xc", "pc", NULL, "xp");
    }
    const bool padded = v == PAD_BEFORE_CONV || v == TORCH_PAD || v == UNEVEN_PADS;
    Onnx__NodeProto *conv = onnx_node(b, "Conv", "conv", padded ? "xp" : "xc", "conv.weight",
                                      "conv.bias", "c");
    onnx_attr_ints(b, conv, "kernel_shape", 2, K);
    onnx_attr_ints(b, conv, "pads", 4, padded ? 0 : 1);
    if (v == UNEVEN_PADS) { /* the conv's own pads: left 1 and bottom 1 */
        conv->attribute[conv->n_attribute - 1]->ints[1] = 1;
        conv->attribute[conv->n_attribute - 1]->ints[2] = 1;
    }
    onnx_attr_ints(b, conv, "strides", 2, 1);
    onnx_attr_float(b, onnx_node(b, "LeakyRelu", "act", "c", NULL, NULL, "a"), "alpha", 0.1f);
    Onnx__NodeProto *pool = onnx_node(b, "MaxPool", "pool", "a", NULL, NULL, "p");
    onnx_attr_ints(b, pool, "kernel_shape", 2, 2);
    onnx_attr_ints(b, pool, "strides", 2, 2);
    if (v == VIEW) {
        onnx_initializer_i64(b, "zero", 0, NULL, &zero);
        onnx_initializer_i64(b, "minus_one", 1, (int64_t[]){1}, minus_one);
        onnx_initializer_i64(b, "axes", 1, (int64_t[]){1}, axes);
        onnx_node(b, "Shape", "shape", "p", NULL, NULL, "s");
        onnx_node(b, "Gather", "batch", "s", "zero", NULL, "n");
        onnx_node(b, "Unsqueeze", "batch1", "n", "axes", NULL, "n1");
        Onnx__NodeProto *concat =
            onnx_node(b, "Concat", "target", "n1", "minus_one", NULL, "shape");
        onnx_attr_int(b, concat, "axis", 0);
        onnx_node(b, "Reshape", "view", "p", "shape", NULL, "f");
    } else {
        onnx_node(b, "Flatten", "flat", "p", NULL, NULL, "f");
    }
    Onnx__NodeProto *gemm = onnx_node(b, "Gemm", "fc", "f", "fc.weight", "fc.bias", "logits");
    onnx_attr_int(b, gemm, "transB", 1);
}

static void valid_graph(onnx_builder *b) { graph_variant(b, PLAIN); }

/* The valid graph's logits, straight from the definitions of its operators, in double. */
static void direct_logits(const float *x, double *logits)
{
    double conv[OC][H][W], pooled[FEATURES];
    for (int o = 0; o < OC; o++)
        for (int i = 0; i < H; i++)
            for (int j = 0; j < W; j++) {
                double s = conv_b[o];
                for (int c = 0; c < C; c++)
                    for (int u = 0; u < K; u++)
                        for (int v = 0; v < K; v++) {
                            int yi = i + u - 1, xj = j + v - 1;
                            if (yi >= 0 && yi < H && xj >= 0 && xj < W)
                                s += (double)conv_w[((o * C + c) * K + u) * K + v] *
                                     ((double)x[(c * H + yi) * W + xj] - mean[c]);
                        }
                conv[o][i][j] = s > 0 ? s : 0.1 * s;
            }
    for (int o = 0; o < OC; o++)
        for (int i = 0; i < 2; i++)
            for (int j = 0; j < 2; j++) {
                double m = conv[o][2 * i][2 * j];
                for (int u = 0; u < 2; u++)
                    for (int v = 0; v < 2; v++)
                        m = conv[o][2 * i + u][2 * j + v] > m ? conv[o][2 * i + u][2 * j + v] : m;
                pooled[(o * 2 + i) * 2 + j] = m;
            }
    for (int k = 0; k < CLASSES; k++) {
        double s = fc_b[k];
        for (int f = 0; f < FEATURES; f++)
            s += (double)fc_w[k * FEATURES + f] * pooled[f];
        logits[k] = s;
    }
}

/* The valid graph's logits against the direct computation on three images. */
static void check_against_definition(const char *path, const char *label)
{
    at_model *m = NULL;
    at_error err;
    CHECK_OK(at_model_import_onnx(&m, path, &err), &err);
    if (!m)
        return;
    enum { N = 3 };
    float x[N * C * H * W];
    fill(x, N * C * H * W, 9);
    for (int i = 0; i < N * C * H * W; i++)
        x[i] += 0.5f; /* pixels in [0, 1) */
    at_pass *p = NULL;
    CHECK_OK(at_pass_create(&p, m, N, AT_PASS_FORWARD_ONLY, &err), &err);
    if (p) {
        at_forward(p, x, N, AT_BN_EVAL);
        double max_err = 0;
        for (int i = 0; i < N; i++) {
            double want[CLASSES];
            direct_logits(x + i * C * H * W, want);
            for (int k = 0; k < CLASSES; k++) {
                const float got = at_pass_logits(p)[i * CLASSES + k];
                CHECK_CLOSE(got, want[k], 1e-6, 1e-5);
                max_err = fmax(max_err, fabs(got - want[k]));
            }
        }
        printf("  %s: max |logit - direct| %.2e (%d layers)\n", label, max_err,
               at_model_node_count(m) - 1);
        at_pass_free(p);
    }
    at_model_free(m);
}

static void logits_of(at_model *m, const float *x, int n, float *out)
{
    at_pass *p = NULL;
    at_error err;
    CHECK_OK(at_pass_create(&p, m, n, AT_PASS_FORWARD_ONLY, &err), &err);
    if (!p)
        return;
    at_forward(p, x, n, AT_BN_EVAL);
    memcpy(out, at_pass_logits(p), (size_t)n * CLASSES * sizeof(float));
    at_pass_free(p);
}

TEST(valid_graph_computes_its_definition)
{
    onnx_builder b;
    valid_graph(&b);
    const char *path = write_model(&b, "valid.onnx");
    at_model *m = NULL;
    at_error err;
    CHECK_OK(at_model_import_onnx(&m, path, &err), &err);
    REQUIRE(m);
    CHECK_STR_EQ(at_model_arch(m), "graph");
    CHECK_EQ_INT(at_model_num_classes(m), CLASSES);
    /* the layers keep the initializers' module paths */
    CHECK(at_model_find_tensor(m, "conv.weight") >= 0);
    CHECK(at_model_find_tensor(m, "conv.bias") >= 0);
    CHECK(at_model_find_tensor(m, "fc.weight") >= 0);
    enum { N = 3 };
    float x[N * C * H * W], got[N * CLASSES];
    fill(x, N * C * H * W, 9);
    for (int i = 0; i < N * C * H * W; i++)
        x[i] += 0.5f; /* pixels in [0, 1) */
    logits_of(m, x, N, got);
    double max_err = 0;
    for (int i = 0; i < N; i++) {
        double want[CLASSES];
        direct_logits(x + i * C * H * W, want);
        for (int k = 0; k < CLASSES; k++) {
            CHECK_CLOSE(got[i * CLASSES + k], want[k], 1e-6, 1e-5);
            max_err = fmax(max_err, fabs(got[i * CLASSES + k] - want[k]));
        }
    }
    printf("  valid graph: max |logit - direct| %.2e\n", max_err);

    /* its checkpoint describes it: rebuilt from the description, the same logits bit for bit */
    const char *ckpt = path_of("valid.safetensors");
    char *spec = at_model_spec(m);
    REQUIRE(spec);
    CHECK(strstr(spec, "\"nodes\"") != NULL);
    at_kv meta[] = {{"model", spec}};
    CHECK_OK(at_checkpoint_save(ckpt, m, NULL, meta, 1, &err), &err);
    at_model *again = NULL;
    CHECK_OK(at_model_create_from_spec(&again, spec, &err), &err);
    REQUIRE(again);
    CHECK_OK(at_checkpoint_load(ckpt, again, NULL, NULL, &err), &err);
    float reloaded[N * CLASSES];
    logits_of(again, x, N, reloaded);
    CHECK(memcmp(got, reloaded, sizeof got) == 0);

    /* --init from the .onnx file: the weights of the graph come back */
    size_t count;
    float *params = at_model_params(again, &count);
    for (size_t i = 0; i < count; i++)
        params[i] = 0.0f;
    CHECK_OK(at_checkpoint_load_init(path, again, &err), &err);
    logits_of(again, x, N, reloaded);
    CHECK(memcmp(got, reloaded, sizeof got) == 0);
    free(spec);
    at_model_free(again);
    at_model_free(m);
}

/* The import fails with one line that names the file and holds each of `words`. */
static void check_refused(const char *path, const char *w1, const char *w2, const char *w3)
{
    at_model *m = NULL;
    at_error err;
    memset(&err, 0, sizeof err);
    int status = at_model_import_onnx(&m, path, &err);
    CHECK(status != AT_OK);
    CHECK(m == NULL);
    const char *words[4] = {path, w1, w2, w3};
    for (int i = 0; i < 4; i++)
        if (words[i] && !strstr(err.message, words[i]))
            TEST_FAIL_("the error for %s lacks \"%s\": %s", path, words[i], err.message);
    CHECK(strchr(err.message, '\n') == NULL);
    printf("  %s\n", err.message + strlen(dir) + 1);
    at_model_free(m);
}

TEST(broken_files_are_refused_with_their_reason)
{
    onnx_builder b;
    valid_graph(&b);
    size_t size = onnx__model_proto__get_packed_size(&b.model);
    uint8_t *bytes = malloc(size);
    onnx__model_proto__pack(&b.model, bytes);
    onnx_write_bytes(path_of("truncated.onnx"), bytes, size / 2);
    check_refused(path_of("truncated.onnx"), "not an ONNX model", NULL, NULL);
    free(bytes);

    uint8_t noise[512];
    unsigned seed = 7;
    for (size_t i = 0; i < sizeof noise; i++) {
        seed = seed * 1664525u + 1013904223u;
        noise[i] = (uint8_t)(seed >> 24);
    }
    onnx_write_bytes(path_of("noise.onnx"), noise, sizeof noise);
    check_refused(path_of("noise.onnx"), "not an ONNX model", NULL, NULL);
    onnx_write_bytes(path_of("empty.onnx"), noise, 0);
    check_refused(path_of("empty.onnx"), "not an ONNX model", NULL, NULL);
    check_refused(path_of("absent.onnx"), "cannot open", NULL, NULL);

    valid_graph(&b);
    b.nodes[5].op_type = "Einsum";
    check_refused(write_model(&b, "einsum.onnx"), "'fc'", "(Einsum)", "not supported");

    valid_graph(&b); /* a weight for 5 input channels after a 2-channel input */
    b.init_dims[1][1] = 5;
    static float wide[OC * 5 * K * K];
    b.inits[1].float_data = wide;
    b.inits[1].n_float_data = OC * 5 * K * K;
    check_refused(write_model(&b, "chain.onnx"), "'conv' (Conv)", "conv.weight", "2 channels");

    valid_graph(&b); /* the classifier expects 10 features, the flatten gives 12 */
    b.init_dims[3][1] = 10;
    b.inits[3].n_float_data = CLASSES * 10;
    check_refused(write_model(&b, "features.onnx"), "'fc' (Gemm)", "12 features", NULL);

    valid_graph(&b);
    b.graph.n_initializer = 3; /* fc.weight and fc.bias are gone */
    check_refused(write_model(&b, "missing.onnx"), "'fc' (Gemm)", "fc.weight", "initializer");

    valid_graph(&b); /* data that does not fill the declared shape */
    b.inits[2].n_float_data = 2;
    check_refused(write_model(&b, "short.onnx"), "conv.bias", "holds 2 values", NULL);

    valid_graph(&b);
    onnx_attr_int(&b, &b.nodes[1], "group", 2);
    check_refused(write_model(&b, "group.onnx"), "'conv' (Conv)", "group", NULL);

    valid_graph(&b);
    b.attr_ints[1][2] = -1; /* pads 1, 1, -1, 1 */
    check_refused(write_model(&b, "negative.onnx"), "'conv' (Conv)", "none negative", NULL);

    valid_graph(&b);
    onnx_attr_ints(&b, &b.nodes[3], "dilations", 2, 2);
    check_refused(write_model(&b, "dilated.onnx"), "'pool' (MaxPool)", "dilations", NULL);

    valid_graph(&b);
    onnx_attr_int(&b, &b.nodes[2], "unknown_knob", 1);
    check_refused(write_model(&b, "attribute.onnx"), "'act' (LeakyRelu)", "unknown_knob", NULL);

    valid_graph(&b); /* a dynamic height */
    b.dims[0][2].value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
    b.dims[0][2].dim_param = "h";
    check_refused(write_model(&b, "dynamic.onnx"), "input x", "dynamic", NULL);

    valid_graph(&b);
    b.opset.version = 20;
    check_refused(write_model(&b, "opset.onnx"), "opset 20", NULL, NULL);

    valid_graph(&b); /* the declared output disagrees with the graph */
    b.dims[1][1].dim_value = 7;
    check_refused(write_model(&b, "classes.onnx"), "logits", "7 classes", NULL);

    valid_graph(&b); /* Add of two nodes whose shapes differ */
    b.nodes[4].op_type = "Add";
    b.nodes[4].n_input = 2;
    b.node_io[4][1] = "a";
    check_refused(write_model(&b, "broadcast.onnx"), "'flat' (Add)", "broadcasting", NULL);
}

/* The same function written other ways: Pad of zeros folded into a Conv without padding (its
 * pads given as numbers, or computed as torch does), an uneven Pad and uneven Conv pads that add
 * up to the same padding (two pad2d layers), and the Flatten as x.view(x.size(0), -1) exports it
 * (Shape, Gather, Unsqueeze, Concat, Reshape). */
TEST(pad_and_shape_arithmetic_compute_the_same_function)
{
    onnx_builder b;
    graph_variant(&b, PAD_BEFORE_CONV);
    check_against_definition(write_model(&b, "pad.onnx"), "Pad folded into Conv");
    graph_variant(&b, TORCH_PAD);
    check_against_definition(write_model(&b, "torchpad.onnx"), "pads computed as torch does");
    graph_variant(&b, VIEW);
    check_against_definition(write_model(&b, "view.onnx"), "x.view(x.size(0), -1)");
    graph_variant(&b, UNEVEN_PADS);
    check_against_definition(write_model(&b, "uneven.onnx"), "uneven Pad and Conv pads");
}

/* Bytes of the valid file changed at random: each import fails with one line naming the file, or
 * succeeds with a model that runs (a change in a weight's value is still a valid file). Run
 * under valgrind or a sanitizer, this is where a parser crash would show. */
TEST(corrupted_bytes_never_crash_the_import)
{
    onnx_builder b;
    valid_graph(&b);
    size_t size = onnx__model_proto__get_packed_size(&b.model);
    uint8_t *bytes = malloc(size), *changed = malloc(size);
    REQUIRE(bytes && changed);
    onnx__model_proto__pack(&b.model, bytes);
    const char *path = path_of("corrupted.onnx");
    unsigned seed = 12345;
    int refused = 0, accepted = 0;
    for (int trial = 0; trial < 400; trial++) {
        memcpy(changed, bytes, size);
        for (int k = 0; k < 1 + trial % 4; k++) {
            seed = seed * 1664525u + 1013904223u;
            size_t at = (seed >> 8) % size;
            seed = seed * 1664525u + 1013904223u;
            const uint8_t bit = (uint8_t)(1u << (seed >> 29));
            changed[at] = trial % 2 ? (uint8_t)(seed >> 24) : changed[at] ^ bit;
        }
        onnx_write_bytes(path, changed, size);
        at_model *m = NULL;
        at_error err;
        memset(&err, 0, sizeof err);
        if (at_model_import_onnx(&m, path, &err) == AT_OK) {
            float x[C * H * W] = {0}, logits[CLASSES];
            if (at_model_num_classes(m) == CLASSES) {
                int c, h, w;
                at_model_input_shape(m, &c, &h, &w);
                if (c == C && h == H && w == W)
                    logits_of(m, x, 1, logits);
            }
            at_model_free(m);
            accepted++;
        } else {
            CHECK(strstr(err.message, path) == err.message);
            CHECK(strchr(err.message, '\n') == NULL);
            refused++;
        }
    }
    printf("  400 corrupted files: %d refused, %d still valid\n", refused, accepted);
    free(bytes);
    free(changed);
}

/* A checkpoint's description of a graph that does not build is refused, not guessed at. */
TEST(invalid_graph_descriptions_are_refused)
{
    static const char *const bad[] = {
        "{\"arch\": \"graph\", \"num_classes\": 3, \"input\": [1, 4, 4]}", /* no nodes */
        "{\"arch\": \"graph\", \"num_classes\": 3, \"input\": [1, 4, 4], \"nodes\": "
        "[{\"op\": \"flatten\", \"in\": [0]}, {\"op\": \"linear\", \"in\": [5], "
        "\"name\": \"fc\", \"out_features\": 3, \"bias\": true}]}", /* a later input */
        "{\"arch\": \"graph\", \"num_classes\": 3, \"input\": [1, 4, 4], \"nodes\": "
        "[{\"op\": \"flatten\", \"in\": [0]}, {\"op\": \"einsum\", \"in\": [1]}]}",
        "{\"arch\": \"graph\", \"num_classes\": 5, \"input\": [1, 4, 4], \"nodes\": "
        "[{\"op\": \"flatten\", \"in\": [0]}, {\"op\": \"linear\", \"in\": [1], "
        "\"name\": \"fc\", \"out_features\": 3, \"bias\": true}]}", /* 3 classes, not 5 */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        at_model *m = NULL;
        at_error err;
        CHECK(at_model_create_from_spec(&m, bad[i], &err) != AT_OK);
        CHECK(m == NULL);
        printf("  %s\n", err.message);
    }
    const char *good = "{\"arch\": \"graph\", \"num_classes\": 3, \"input\": [1, 4, 4], "
                       "\"nodes\": [{\"op\": \"flatten\", \"in\": [0]}, {\"op\": \"linear\", "
                       "\"in\": [1], \"name\": \"fc\", \"out_features\": 3, \"bias\": true}]}";
    at_model *m = NULL;
    at_error err;
    CHECK_OK(at_model_create_from_spec(&m, good, &err), &err);
    CHECK(m && at_model_find_tensor(m, "fc.weight") >= 0);
    at_model_free(m);
}

static onnx_ints ints_of(int rank, int64_t rows, int64_t cols, const int64_t *v)
{
    onnx_ints t;
    memset(&t, 0, sizeof t);
    t.rank = rank;
    t.shape[0] = rows;
    t.shape[1] = cols;
    memcpy(t.v, v, (size_t)onnx_ints_count(&t) * sizeof *v);
    return t;
}

/* Runs one integer operator; its output's values, or a status with the reason. */
static int eval_op(const char *op, const onnx_ints *a, const onnx_ints *b, const onnx_ints *c,
                   const onnx_ints *d, const onnx_ints *e, onnx_ints *out)
{
    Onnx__NodeProto node;
    onnx__node_proto__init(&node);
    node.op_type = (char *)op;
    const onnx_ints *in[5] = {a, b, c, d, e};
    int n = 5;
    while (n > 1 && !in[n - 1])
        n--;
    char why[128];
    return onnx_ints_eval(&node, in, n, out, why, sizeof why);
}

/* The integer operators against their definitions (onnx/docs/Operators.md), on the values
 * F.pad's export computes, and their refusals. */
TEST(integer_operators_follow_their_definitions)
{
    onnx_ints out;
    /* torch's pads: [1, 2, 3, 4] + [0] * 4, as pairs, reversed, transposed, flattened */
    const onnx_ints pads = ints_of(1, 8, 0, (int64_t[]){1, 2, 3, 4, 0, 0, 0, 0});
    const onnx_ints rows = ints_of(1, 2, 0, (int64_t[]){-1, 2});
    CHECK_EQ_INT(eval_op("Reshape", &pads, &rows, NULL, NULL, NULL, &out), 0);
    CHECK(out.rank == 2 && out.shape[0] == 4 && out.shape[1] == 2);
    const onnx_ints pairs = out;
    const onnx_ints start = ints_of(1, 1, 0, (int64_t[]){-1}),
                    end = ints_of(1, 1, 0, (int64_t[]){INT64_MIN + 1}),
                    axis = ints_of(1, 1, 0, (int64_t[]){0}),
                    step = ints_of(1, 1, 0, (int64_t[]){-1});
    CHECK_EQ_INT(eval_op("Slice", &pairs, &start, &end, &axis, &step, &out), 0);
    const int64_t reversed[8] = {0, 0, 0, 0, 3, 4, 1, 2};
    CHECK(out.shape[0] == 4 && memcmp(out.v, reversed, sizeof reversed) == 0);
    const onnx_ints flipped = out;
    CHECK_EQ_INT(eval_op("Transpose", &flipped, NULL, NULL, NULL, NULL, &out), 0);
    const int64_t onnx_order[8] = {0, 0, 3, 1, 0, 0, 4, 2}; /* begins (H, W), then ends */
    CHECK(out.shape[0] == 2 && out.shape[1] == 4);
    CHECK(memcmp(out.v, onnx_order, sizeof onnx_order) == 0);
    /* a slice with step 2, and Gather with a negative index */
    const onnx_ints list = ints_of(1, 5, 0, (int64_t[]){10, 11, 12, 13, 14});
    const onnx_ints one = ints_of(1, 1, 0, (int64_t[]){1}),
                    big = ints_of(1, 1, 0, (int64_t[]){100}),
                    two = ints_of(1, 1, 0, (int64_t[]){2});
    CHECK_EQ_INT(eval_op("Slice", &list, &one, &big, &axis, &two, &out), 0);
    CHECK(out.shape[0] == 2 && out.v[0] == 11 && out.v[1] == 13);
    const onnx_ints last = ints_of(0, 0, 0, (int64_t[]){-1});
    CHECK_EQ_INT(eval_op("Gather", &list, &last, NULL, NULL, NULL, &out), 0);
    CHECK(out.rank == 0 && out.v[0] == 14);
    /* a scalar minus a list of one is a list of one; Mul wraps rather than overflows */
    const onnx_ints eight = ints_of(0, 0, 0, (int64_t[]){8});
    CHECK_EQ_INT(eval_op("Sub", &eight, &two, NULL, NULL, NULL, &out), 0);
    CHECK(out.rank == 1 && out.v[0] == 6);
    const onnx_ints huge = ints_of(0, 0, 0, (int64_t[]){INT64_MAX});
    CHECK_EQ_INT(eval_op("Mul", &huge, &huge, NULL, NULL, NULL, &out), 0);
    /* refusals: an index out of range, a division by zero, arithmetic on the batch size, a
     * reshape that does not fit */
    const onnx_ints five = ints_of(0, 0, 0, (int64_t[]){5}),
                    zero = ints_of(0, 0, 0, (int64_t[]){0}),
                    batch = ints_of(1, 1, 0, (int64_t[]){ONNX_BATCH}),
                    three = ints_of(1, 1, 0, (int64_t[]){3});
    CHECK(eval_op("Gather", &list, &five, NULL, NULL, NULL, &out) != 0);
    CHECK(eval_op("Div", &eight, &zero, NULL, NULL, NULL, &out) != 0);
    CHECK(eval_op("Mul", &batch, &two, NULL, NULL, NULL, &out) != 0);
    CHECK(eval_op("Reshape", &pads, &three, NULL, NULL, NULL, &out) != 0);
}

TEST_MAIN(TEST_ENTRY(valid_graph_computes_its_definition),
          TEST_ENTRY(integer_operators_follow_their_definitions),
          TEST_ENTRY(invalid_graph_descriptions_are_refused),
          TEST_ENTRY(corrupted_bytes_never_crash_the_import),
          TEST_ENTRY(pad_and_shape_arithmetic_compute_the_same_function),
          TEST_ENTRY(broken_files_are_refused_with_their_reason))

/* one temporary directory for the whole program, removed with its files at exit */
__attribute__((constructor)) static void make_dir(void)
{
    snprintf(dir, sizeof dir, "/tmp/at_onnx_XXXXXX");
    if (!mkdtemp(dir))
        snprintf(dir, sizeof dir, "/tmp");
}

__attribute__((destructor)) static void remove_dir(void)
{
    static const char *const names[] = {"valid.onnx", "valid.safetensors", "truncated.onnx",
        "noise.onnx", "empty.onnx", "einsum.onnx", "chain.onnx", "features.onnx", "missing.onnx",
        "short.onnx", "group.onnx", "negative.onnx", "dilated.onnx", "attribute.onnx",
        "dynamic.onnx", "opset.onnx", "classes.onnx", "broadcast.onnx", "pad.onnx", "view.onnx",
        "uneven.onnx", "corrupted.onnx", "torchpad.onnx"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        unlink(path_of(names[i]));
    if (strcmp(dir, "/tmp") != 0)
        rmdir(dir);
}
