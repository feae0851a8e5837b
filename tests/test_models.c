/* test_models.c: the reference architectures. Their tensor names, dtypes and shapes equal the
 * PyTorch state_dict of the reference definitions (the .keys files in tests/data), and whole-model gradients
 * (logits, weights, input) agree with finite differences of the double-precision reference. */
#include "test.h"
#include "util/gradcheck.h"

#include "advtrain.h"
#include "models/archs.h"

#include <stdint.h>

static at_model *create(const char *arch, const at_model_options *o)
{
    at_model *m = NULL;
    at_error err;
    CHECK_OK(at_model_create(&m, arch, o, &err), &err);
    return m;
}

/* Compares the model's tensor table with a "name dtype shape" list, line by line, in order. */
static void check_keys(const char *arch, const char *file)
{
    char path[512];
    snprintf(path, sizeof path, "%s/tests/data/%s", ADVTRAIN_SOURCE_DIR, file);
    FILE *f = fopen(path, "r");
    REQUIRE(f);
    at_model *m = create(arch, NULL);
    REQUIRE(m);
    char line[512];
    int index = 0;
    size_t params = 0;
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#')
            continue;
        char name[256], dtype[32], shape[128];
        REQUIRE(sscanf(line, "%255s %31s %127s", name, dtype, shape) == 3);
        REQUIRE(index < at_model_tensor_count(m));
        at_tensor_info t = at_model_tensor(m, index);
        CHECK_STR_EQ(t.name, name);
        CHECK_STR_EQ(t.dtype == AT_F32 ? "float32" : "int64", dtype);
        char ours[128] = "-";
        int len = 0;
        for (int d = 0; d < t.ndim; d++)
            len += snprintf(ours + len, sizeof ours - (size_t)len, d ? ",%lld" : "%lld",
                            (long long)t.shape[d]);
        CHECK_STR_EQ(ours, shape);
        if (t.is_param)
            params += t.numel;
        index++;
    }
    fclose(f);
    CHECK_EQ_INT(index, at_model_tensor_count(m));
    size_t count;
    at_model_params(m, &count);
    CHECK_EQ_INT(count, params);
    at_model_free(m);
}

TEST(state_dict_names_match_the_references)
{
    check_keys("smallcnn", "smallcnn.keys");
    check_keys("preact-resnet18", "preact-resnet18.keys");
    check_keys("wrn-16-1", "wrn-16-1.keys");
    check_keys("wrn-16-4", "wrn-16-4.keys");
    check_keys("wrn-34-10", "wrn-34-10.keys");
}

TEST(parameter_counts)
{
    /* torch: sum(p.numel() for p in model.parameters()) of the reference definitions */
    static const struct { const char *arch; size_t params; } expect[] = {
        {"smallcnn", 312202}, {"preact-resnet18", 11172170}, {"wrn-16-4", 2748890},
        {"wrn-34-10", 46160474},
    };
    for (size_t i = 0; i < sizeof expect / sizeof expect[0]; i++) {
        at_model *m = create(expect[i].arch, NULL);
        REQUIRE(m);
        size_t count;
        at_model_params(m, &count);
        CHECK_EQ_INT(count, expect[i].params);
        at_model_free(m);
    }
}

TEST(unknown_and_invalid_architectures_are_errors)
{
    at_model *m = NULL;
    at_error err;
    CHECK_EQ_INT(at_model_create(&m, "resnet-9000", NULL, &err), AT_ERR_NOTFOUND);
    CHECK(strstr(err.message, "resnet-9000") != NULL);
    CHECK_EQ_INT(at_model_create(&m, "wrn-33-10", NULL, &err), AT_ERR_NOTFOUND); /* 33 != 6n+4 */
    CHECK_EQ_INT(at_model_create(&m, "wrn-34-10x", NULL, &err), AT_ERR_NOTFOUND);
    /* smallcnn on 8x8 inputs cannot reach its fully connected layers */
    at_model_options o = {.in_height = 8, .in_width = 8};
    CHECK(at_model_create(&m, "smallcnn", &o, &err) < 0);
    CHECK(strstr(err.message, "smallcnn") != NULL);
    CHECK(m == NULL);
}

TEST(initialisation_follows_the_references)
{
    at_model *m = create("smallcnn", &(at_model_options){.seed = 3});
    REQUIRE(m);
    /* TRADES: fc3 all zero, conv biases zero, conv weights N(0, 2/fan_in) */
    at_tensor_info fc3 = at_model_tensor(m, at_model_find_tensor(m, "classifier.fc3.weight"));
    at_tensor_info b1 = at_model_tensor(m, at_model_find_tensor(m, "feature_extractor.conv1.bias"));
    at_tensor_info w2 = at_model_tensor(m, at_model_find_tensor(m, "feature_extractor.conv2.weight"));
    double sq = 0.0, nonzero = 0.0;
    for (size_t i = 0; i < fc3.numel; i++)
        nonzero += fc3.data[i] != 0.0f;
    for (size_t i = 0; i < b1.numel; i++)
        nonzero += b1.data[i] != 0.0f;
    for (size_t i = 0; i < w2.numel; i++)
        sq += (double)w2.data[i] * w2.data[i];
    CHECK_EQ_INT(nonzero, 0);
    CHECK_CLOSE(sq / w2.numel, 2.0 / (32 * 9), 0.0, 0.1);
    at_model_free(m);

    /* same seed, same weights; another seed, other weights */
    at_model *a = create("preact-resnet18", &(at_model_options){.seed = 5});
    at_model *b = create("preact-resnet18", &(at_model_options){.seed = 5});
    at_model *c = create("preact-resnet18", &(at_model_options){.seed = 6});
    REQUIRE(a && b && c);
    size_t n;
    float *pa = at_model_params(a, &n), *pb = at_model_params(b, NULL), *pc = at_model_params(c, NULL);
    CHECK(memcmp(pa, pb, n * sizeof(float)) == 0);
    CHECK(memcmp(pa, pc, n * sizeof(float)) != 0);
    at_tensor_info rv = at_model_tensor(a, at_model_find_tensor(a, "bn.running_var"));
    CHECK(rv.data[0] == 1.0f && rv.data[511] == 1.0f);
    at_model_free(a);
    at_model_free(b);
    at_model_free(c);
}

static void gradcheck(at_model *m, int n, at_bn_mode mode, int coords, const char *label)
{
    gc_options o = {.n = n, .mode = mode, .loss = GC_LOSS_CE, .max_coords = coords, .tol = 2e-5,
                    .seed = 99, .randomize_params = false};
    gc_report r;
    int failures = gradcheck_model(m, &o, &r);
    if (failures)
        TEST_FAIL_("%s (bn %s): %d gradient mismatches", label, at_bn_mode_name(mode), failures);
    printf("  %-26s %-11s fwd %.1e  dx %.1e (%d)  dw %.1e (%d)  skipped %d\n", label,
           at_bn_mode_name(mode), r.forward_max_err, r.input_max_err, r.input_checked,
           r.weight_max_err, r.weight_checked, r.skipped);
}

TEST(smallcnn_whole_model_gradients)
{
    at_model *m = create("smallcnn", &(at_model_options){.seed = 1});
    REQUIRE(m);
    /* fc3 starts at zero, which would make every upstream gradient zero: give it weights. */
    at_tensor_info fc3 = at_model_tensor(m, at_model_find_tensor(m, "classifier.fc3.weight"));
    at_rng rng;
    at_rng_seed(&rng, 2);
    for (size_t i = 0; i < fc3.numel; i++)
        fc3.data[i] = (float)(0.1 * at_rng_normal(&rng));
    gradcheck(m, 2, AT_BN_TRAIN, 160, "smallcnn");
    at_model_free(m);
}

/* PreAct ResNet-18's graph with narrow stages (4, 8, 8, 8) and input normalisation. */
static at_model *reduced_preact(void)
{
    at_model *m = NULL;
    at_error err;
    CHECK_OK(at_model_begin(&m, 3, 32, 32, &err), &err);
    if (!m)
        return NULL;
    const float mean[3] = {0.4914f, 0.4822f, 0.4465f}, std[3] = {0.2471f, 0.2435f, 0.2616f};
    static const int planes[4] = {4, 8, 8, 8};
    int x = at_add_normalize(m, 0, mean, std);
    CHECK(at_preact_resnet_build(m, x, planes, 10) > 0);
    CHECK_OK(at_model_finish(m, 4, &err), &err);
    return m;
}

TEST(reduced_preact_resnet_whole_model_gradients)
{
    at_model *m = reduced_preact();
    REQUIRE(m);
    gradcheck(m, 3, AT_BN_TRAIN, 200, "preact-resnet (reduced)");
    gradcheck(m, 3, AT_BN_EVAL, 200, "preact-resnet (reduced)");
    at_model_free(m);
}

TEST(wide_resnet_whole_model_gradients)
{
    at_model *m = create("wrn-10-1", &(at_model_options){.seed = 8, .in_height = 12, .in_width = 12});
    REQUIRE(m);
    gradcheck(m, 2, AT_BN_TRAIN, 100, "wrn-10-1 (12x12)");
    gradcheck(m, 2, AT_BN_EVAL, 100, "wrn-10-1 (12x12)");
    at_model_free(m);
}

TEST_MAIN(TEST_ENTRY(state_dict_names_match_the_references), TEST_ENTRY(parameter_counts),
          TEST_ENTRY(unknown_and_invalid_architectures_are_errors),
          TEST_ENTRY(initialisation_follows_the_references),
          TEST_ENTRY(smallcnn_whole_model_gradients),
          TEST_ENTRY(reduced_preact_resnet_whole_model_gradients),
          TEST_ENTRY(wide_resnet_whole_model_gradients))
