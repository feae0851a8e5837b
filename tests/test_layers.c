/* test_layers.c: every layer kind's forward against the double reference, and its backward (input
 * and weight gradients) against central finite differences in double precision. Each model here
 * is one layer between the input and a flatten, read out by a random linear functional, so the
 * check sees that layer alone. */
#include "test.h"
#include "util/gradcheck.h"

#include "advtrain.h"

typedef int (*add_layer_fn)(at_model *m, int x);

static void check_layer(const char *label, int c, int h, int w, add_layer_fn add, at_bn_mode mode)
{
    at_model *m = NULL;
    at_error err;
    CHECK_OK(at_model_begin(&m, c, h, w, &err), &err);
    REQUIRE(m);
    int x = add(m, 0);
    if (x >= 0 && at_model_node_count(m) > 0) {
        int oc, oh, ow;
        at_model_node_shape(m, x, &oc, &oh, &ow);
        if (oh != 1 || ow != 1)
            x = at_add_flatten(m, x);
    }
    CHECK(x >= 0);
    CHECK_OK(at_model_finish(m, 7, &err), &err);
    gc_options o = {.n = 3, .mode = mode, .loss = GC_LOSS_LINEAR, .max_coords = 300, .tol = 2e-5,
                    .seed = 11, .randomize_params = true, .centered_input = true};
    gc_report r;
    int failures = gradcheck_model(m, &o, &r);
    if (failures)
        TEST_FAIL_("%s (bn %s): %d gradient mismatches", label, at_bn_mode_name(mode), failures);
    CHECK(r.input_checked > 0);
    printf("  %-28s fwd %.1e  dx %.1e (%d)  dw %.1e (%d)  skipped %d\n", label, r.forward_max_err,
           r.input_max_err, r.input_checked, r.weight_max_err, r.weight_checked, r.skipped);
    at_model_free(m);
}

static int conv_k3s1p0_bias(at_model *m, int x) { return at_add_conv2d(m, x, "conv", 4, 3, 1, 0, true); }
static int conv_k3s2p1(at_model *m, int x) { return at_add_conv2d(m, x, "conv", 3, 3, 2, 1, false); }
static int conv_k1s1(at_model *m, int x) { return at_add_conv2d(m, x, "conv", 5, 1, 1, 0, true); }
static int conv_k1s2(at_model *m, int x) { return at_add_conv2d(m, x, "conv", 4, 1, 2, 0, false); }
static int conv_k5s1p2(at_model *m, int x) { return at_add_conv2d(m, x, "conv", 2, 5, 1, 2, true); }
static int conv_k2s3p1(at_model *m, int x) { return at_add_conv2d(m, x, "conv", 3, 2, 3, 1, true); }
/* multiples of 32 channels: the direct kernels where the processor has them (Winograd for the
 * forward and input gradient of the 3x3 stride-1 one when its output size is even) */
static int conv_direct_k3s1p1(at_model *m, int x) { return at_add_conv2d(m, x, "conv", 32, 3, 1, 1, true); }
static int conv_direct_k3s2p1(at_model *m, int x) { return at_add_conv2d(m, x, "conv", 64, 3, 2, 1, false); }

TEST(conv2d_gradients)
{
    check_layer("conv k3 s1 p0 bias", 2, 6, 5, conv_k3s1p0_bias, AT_BN_TRAIN);
    check_layer("conv k3 s2 p1", 3, 7, 6, conv_k3s2p1, AT_BN_TRAIN);
    check_layer("conv k1 s1 (pointwise)", 3, 4, 4, conv_k1s1, AT_BN_TRAIN);
    check_layer("conv k1 s2", 3, 5, 5, conv_k1s2, AT_BN_TRAIN);
    check_layer("conv k5 s1 p2", 2, 5, 6, conv_k5s1p2, AT_BN_TRAIN);
    check_layer("conv k2 s3 p1", 2, 8, 7, conv_k2s3p1, AT_BN_TRAIN);
    check_layer("conv 32->32 k3 s1 p1 bias", 32, 5, 6, conv_direct_k3s1p1, AT_BN_TRAIN);
    check_layer("conv 32->32 k3 s1 p1 bias, even size", 32, 6, 4, conv_direct_k3s1p1, AT_BN_TRAIN);
    check_layer("conv 3->64 k3 s2 p1", 3, 7, 7, conv_direct_k3s2p1, AT_BN_TRAIN);
}

static int bn(at_model *m, int x) { return at_add_batchnorm2d(m, x, "bn"); }

TEST(batchnorm2d_gradients_every_mode)
{
    check_layer("batchnorm2d", 3, 4, 5, bn, AT_BN_TRAIN);
    check_layer("batchnorm2d", 3, 4, 5, bn, AT_BN_BATCH_STATS);
    check_layer("batchnorm2d", 3, 4, 5, bn, AT_BN_EVAL);
    check_layer("batchnorm2d 1x1 planes", 4, 1, 1, bn, AT_BN_TRAIN);
}

static int relu(at_model *m, int x) { return at_add_relu(m, x); }
static int maxpool_k2(at_model *m, int x) { return at_add_maxpool2d(m, x, 2, 2); }
static int maxpool_k3s2(at_model *m, int x) { return at_add_maxpool2d(m, x, 3, 2); }
static int maxpool_k3s1(at_model *m, int x) { return at_add_maxpool2d(m, x, 3, 1); }
static int avgpool_k2(at_model *m, int x) { return at_add_avgpool2d(m, x, 2, 2); }
static int avgpool_k3s1(at_model *m, int x) { return at_add_avgpool2d(m, x, 3, 1); }
static int global_avgpool(at_model *m, int x) { return at_add_global_avgpool(m, x); }

TEST(activation_and_pooling_gradients)
{
    check_layer("relu", 2, 5, 5, relu, AT_BN_TRAIN);
    check_layer("maxpool k2 s2", 2, 6, 7, maxpool_k2, AT_BN_TRAIN);
    check_layer("maxpool k3 s2 (overlap)", 2, 7, 7, maxpool_k3s2, AT_BN_TRAIN);
    check_layer("maxpool k3 s1", 1, 5, 6, maxpool_k3s1, AT_BN_TRAIN);
    check_layer("avgpool k2 s2", 2, 6, 7, avgpool_k2, AT_BN_TRAIN);
    check_layer("avgpool k3 s1", 2, 5, 5, avgpool_k3s1, AT_BN_TRAIN);
    check_layer("global avgpool", 3, 4, 5, global_avgpool, AT_BN_TRAIN);
}

static int linear_bias(at_model *m, int x) { return at_add_linear(m, at_add_flatten(m, x), "fc", 7, true); }
static int linear_nobias(at_model *m, int x) { return at_add_linear(m, at_add_flatten(m, x), "fc", 5, false); }
static int flatten(at_model *m, int x) { return at_add_flatten(m, x); }

TEST(linear_and_flatten_gradients)
{
    check_layer("linear with bias", 2, 3, 3, linear_bias, AT_BN_TRAIN);
    check_layer("linear without bias", 1, 4, 4, linear_nobias, AT_BN_TRAIN);
    check_layer("flatten", 2, 3, 4, flatten, AT_BN_TRAIN);
}

/* add: x + conv(x), so both branches of the add receive the gradient. */
static int residual(at_model *m, int x)
{
    int y = at_add_conv2d(m, x, "conv", 2, 3, 1, 1, false);
    return at_add_add(m, x, y);
}

static int normalize(at_model *m, int x)
{
    const float mean[3] = {0.4914f, 0.4822f, 0.4465f}, std[3] = {0.2471f, 0.2435f, 0.2616f};
    return at_add_normalize(m, x, mean, std);
}

TEST(add_and_normalize_gradients)
{
    check_layer("add (residual)", 2, 4, 4, residual, AT_BN_TRAIN);
    check_layer("normalize", 3, 4, 4, normalize, AT_BN_TRAIN);
}

static int slice_middle(at_model *m, int x) { return at_add_slice(m, x, 1, 2); }
static int slice_all(at_model *m, int x) { return at_add_slice(m, x, 0, 3); }
static int scale(at_model *m, int x) { return at_add_scale(m, x, -0.75f); }
/* two overlapping slices of one input joined: channel 1 receives both gradients */
static int two_slices(at_model *m, int x)
{
    return at_add_add(m, at_add_slice(m, x, 0, 2), at_add_scale(m, at_add_slice(m, x, 1, 2), 3.0f));
}

TEST(slice_and_scale_gradients)
{
    check_layer("slice 1..2 of 4", 4, 3, 3, slice_middle, AT_BN_TRAIN);
    check_layer("slice of every channel", 3, 2, 4, slice_all, AT_BN_TRAIN);
    check_layer("scale -0.75", 2, 3, 3, scale, AT_BN_TRAIN);
    check_layer("overlapping slices", 3, 3, 2, two_slices, AT_BN_TRAIN);
}

TEST(slice_and_scale_refuse_bad_arguments)
{
    at_model *m = NULL;
    at_error err;
    CHECK_OK(at_model_begin(&m, 3, 4, 4, &err), &err);
    REQUIRE(m);
    CHECK_EQ_INT(at_add_slice(m, 0, 2, 2), AT_ERR_ARG); /* past the last channel */
    CHECK_EQ_INT(at_add_slice(m, 0, -1, 1), AT_ERR_ARG);
    CHECK_EQ_INT(at_add_slice(m, 0, 0, 0), AT_ERR_ARG);
    CHECK_EQ_INT(at_add_scale(m, 0, INFINITY), AT_ERR_ARG);
    CHECK_EQ_INT(at_model_finish(m, 1, &err), AT_ERR_ARG); /* the first error, recorded */
    at_model_free(m);
}

TEST_MAIN(TEST_ENTRY(conv2d_gradients), TEST_ENTRY(batchnorm2d_gradients_every_mode),
          TEST_ENTRY(activation_and_pooling_gradients), TEST_ENTRY(linear_and_flatten_gradients),
          TEST_ENTRY(add_and_normalize_gradients), TEST_ENTRY(slice_and_scale_gradients),
          TEST_ENTRY(slice_and_scale_refuse_bad_arguments))
