/* test_layers.c: every layer kind's forward against the double reference, and its backward (input
 * and weight gradients) against central finite differences in double precision. Each model here
 * is one layer between the input and a flatten, read out by a random linear functional, so the
 * check sees that layer alone. */
#include "test.h"
#include "util/gradcheck.h"

#include "advtrain.h"

#include <float.h>
#include <omp.h>
#include <stdlib.h>

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

static int tanh_layer(at_model *m, int x) { return at_add_tanh(m, x); }
static int prelu_one_slope(at_model *m, int x) { return at_add_prelu(m, x, "act", 1); }
static int prelu_per_channel(at_model *m, int x)
{
    int c;
    at_model_node_shape(m, x, &c, NULL, NULL);
    return at_add_prelu(m, x, "act", c);
}
/* [n, features]: one slope per feature */
static int prelu_per_feature(at_model *m, int x)
{
    return prelu_per_channel(m, at_add_flatten(m, x));
}
/* one PReLU applied to two slices of the input (at_add_shared): its slope gradients add up */
static int prelu_shared(at_model *m, int x)
{
    int a = at_add_prelu(m, at_add_slice(m, x, 0, 2), "act", 2);
    return at_add_add(m, a, at_add_shared(m, at_add_slice(m, x, 2, 2), a));
}

TEST(tanh_and_prelu_gradients)
{
    check_layer("tanh", 2, 5, 5, tanh_layer, AT_BN_TRAIN);
    check_layer("prelu, one slope", 3, 4, 5, prelu_one_slope, AT_BN_TRAIN);
    check_layer("prelu, one slope per channel", 3, 4, 5, prelu_per_channel, AT_BN_TRAIN);
    check_layer("prelu, one slope per feature", 2, 3, 3, prelu_per_feature, AT_BN_TRAIN);
    check_layer("prelu, one slope, vector", 6, 1, 1, prelu_one_slope, AT_BN_TRAIN);
    check_layer("prelu shared by two inputs", 4, 3, 3, prelu_shared, AT_BN_TRAIN);
}

static int sigmoid_layer(at_model *m, int x) { return at_add_sigmoid(m, x); }
static int upsample_x2(at_model *m, int x) { return at_add_upsample2d(m, x, 2); }
static int upsample_x3(at_model *m, int x) { return at_add_upsample2d(m, x, 3); }
/* an autoencoder's decoder: upsample, conv, sigmoid */
static int decoder(at_model *m, int x)
{
    x = at_add_upsample2d(m, x, 2);
    return at_add_sigmoid(m, at_add_conv2d(m, x, "conv", 2, 3, 1, 1, true));
}

TEST(sigmoid_and_upsample_gradients)
{
    check_layer("sigmoid", 2, 5, 5, sigmoid_layer, AT_BN_TRAIN);
    check_layer("upsample x2", 2, 3, 4, upsample_x2, AT_BN_TRAIN);
    check_layer("upsample x3", 1, 2, 3, upsample_x3, AT_BN_TRAIN);
    check_layer("upsample, conv, sigmoid", 3, 3, 3, decoder, AT_BN_TRAIN);
}

TEST(upsample_refuses_bad_factors)
{
    at_model *m = NULL;
    at_error err;
    CHECK_OK(at_model_begin(&m, 2, 3, 3, &err), &err);
    REQUIRE(m);
    CHECK_EQ_INT(at_add_upsample2d(m, 0, 0), AT_ERR_ARG);
    CHECK_EQ_INT(at_add_upsample2d(m, 0, 65), AT_ERR_ARG);
    CHECK_EQ_INT(at_model_finish(m, 1, &err), AT_ERR_ARG);
    at_model_free(m);
}

static int bn_plain(at_model *m, int x) { return at_add_batchnorm2d_affine(m, x, "bn", false); }
/* a perturbation generator's shape: conv, batch norm without affine parameters, PReLU, conv,
 * tanh */
static int generator(at_model *m, int x)
{
    x = at_add_conv2d(m, x, "conv1", 4, 3, 1, 1, false);
    x = at_add_batchnorm2d_affine(m, x, "bn1", false);
    x = at_add_prelu(m, x, "act1", 4);
    x = at_add_conv2d(m, x, "conv2", 2, 3, 1, 1, true);
    return at_add_tanh(m, x);
}

TEST(batchnorm2d_without_affine_gradients_every_mode)
{
    const at_bn_mode modes[3] = {AT_BN_TRAIN, AT_BN_BATCH_STATS, AT_BN_EVAL};
    for (int i = 0; i < 3; i++) {
        check_layer("batchnorm2d, no affine", 3, 4, 5, bn_plain, modes[i]);
        check_layer("generator (bn, prelu, tanh)", 2, 5, 4, generator, modes[i]);
    }
    check_layer("batchnorm2d, no affine, 1x1 planes", 4, 1, 1, bn_plain, AT_BN_TRAIN);
}

/* A generator and critic of the new layers, trained in one graph: conv, batch norm without affine
 * parameters, PReLU per channel, conv, tanh, PReLU with one slope, linear. Logits, input and
 * weight gradients and running statistics must be the same bits for 1, 2 and 3 threads. */
TEST(tanh_prelu_and_plain_batchnorm_do_not_depend_on_thread_count)
{
    enum { N = 8, C = 3, H = 32, W = 32, K = 10 };
    const size_t in_count = (size_t)N * C * H * W;
    float *x = malloc(in_count * sizeof(float)), dlogits[N * K];
    REQUIRE(x);
    at_rng rng;
    at_rng_seed(&rng, 3);
    for (size_t i = 0; i < in_count; i++)
        x[i] = (float)(2.0 * at_rng_uniform(&rng) - 1.0);
    for (int i = 0; i < N * K; i++)
        dlogits[i] = (float)at_rng_normal(&rng);
    static const char *const what[4] = {"logits", "input gradients", "weight gradients",
                                        "running statistics"};
    float *first[4] = {NULL, NULL, NULL, NULL};
    size_t counts[4] = {(size_t)N * K, in_count, 0, 32};
    const int saved = omp_get_max_threads();
    for (int threads = 1; threads <= 3; threads++) {
        omp_set_num_threads(threads);
        at_model *m = NULL;
        at_pass *p = NULL;
        at_error err;
        CHECK_OK(at_model_begin(&m, C, H, W, &err), &err);
        REQUIRE(m);
        int h = at_add_conv2d(m, 0, "g.conv1", 16, 3, 1, 1, false);
        h = at_add_batchnorm2d_affine(m, h, "g.bn1", false);
        h = at_add_prelu(m, h, "g.act1", 16);
        h = at_add_tanh(m, at_add_conv2d(m, h, "g.conv2", 8, 3, 1, 1, true));
        h = at_add_prelu(m, h, "c.act", 1);
        at_add_linear(m, at_add_flatten(m, h), "c.fc", K, true);
        CHECK_OK(at_model_finish(m, 5, &err), &err);
        size_t np;
        float *w = at_model_params(m, &np);
        at_rng wrng; /* the same weights for every thread count; slopes of either sign */
        at_rng_seed(&wrng, 4);
        for (size_t i = 0; i < np; i++)
            w[i] += (float)(0.3 * at_rng_normal(&wrng));
        CHECK_OK(at_pass_create(&p, m, N, 0, &err), &err);
        at_model_zero_grad(m);
        at_forward(p, x, N, AT_BN_TRAIN);
        CHECK_OK(at_backward(p, dlogits, AT_GRAD_INPUT | AT_GRAD_WEIGHTS), NULL);
        at_tensor_info rm = at_model_tensor(m, at_model_find_tensor(m, "g.bn1.running_mean"));
        at_tensor_info rv = at_model_tensor(m, at_model_find_tensor(m, "g.bn1.running_var"));
        float running[32];
        memcpy(running, rm.data, 16 * sizeof(float));
        memcpy(running + 16, rv.data, 16 * sizeof(float));
        const float *now[4] = {at_pass_logits(p), at_pass_input_grad(p), at_model_grads(m, NULL),
                               running};
        counts[2] = np;
        for (int k = 0; k < 4; k++) {
            if (threads == 1) {
                first[k] = malloc(counts[k] * sizeof(float));
                memcpy(first[k], now[k], counts[k] * sizeof(float));
            } else if (memcmp(first[k], now[k], counts[k] * sizeof(float)) != 0) {
                TEST_FAIL_("%d threads: %s differ from 1 thread's", threads, what[k]);
            }
        }
        at_pass_free(p);
        at_model_free(m);
    }
    omp_set_num_threads(saved);
    for (int k = 0; k < 4; k++)
        free(first[k]);
    free(x);
}

TEST(prelu_refuses_bad_arguments)
{
    at_model *m = NULL;
    at_error err;
    CHECK_OK(at_model_begin(&m, 3, 4, 4, &err), &err);
    REQUIRE(m);
    CHECK_EQ_INT(at_add_prelu(m, 0, "act", 2), AT_ERR_ARG); /* neither 1 nor 3 channels */
    CHECK_EQ_INT(at_add_prelu(m, 0, "act", 0), AT_ERR_ARG);
    CHECK_EQ_INT(at_add_prelu(m, 0, "", 1), AT_ERR_ARG);    /* a layer with a weight needs a name */
    CHECK_EQ_INT(at_model_finish(m, 1, &err), AT_ERR_ARG);
    at_model_free(m);
    /* running statistics: batch norm, affine or not, cannot be shared */
    CHECK_OK(at_model_begin(&m, 4, 4, 4, &err), &err);
    REQUIRE(m);
    int a = at_add_slice(m, 0, 0, 2), b = at_add_slice(m, 0, 2, 2);
    int bn = at_add_batchnorm2d_affine(m, a, "bn", false);
    CHECK(bn > 0);
    CHECK_EQ_INT(at_add_shared(m, b, bn), AT_ERR_ARG);
    at_model_free(m);
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

static int leaky_relu_layer(at_model *m, int x) { return at_add_leaky_relu(m, x, 0.2f); }
static int softplus_layer(at_model *m, int x) { return at_add_softplus(m, x); }
/* SiLU as ONNX writes it: x * sigmoid(x), the two inputs of mul from one node */
static int silu(at_model *m, int x) { return at_add_mul(m, x, at_add_sigmoid(m, x)); }
static int square(at_model *m, int x) { return at_add_mul(m, x, x); }
/* two different nodes into mul: a gate of one convolution by another */
static int conv_gate(at_model *m, int x)
{
    int a = at_add_conv2d(m, x, "a", 2, 3, 1, 1, true);
    int b = at_add_conv2d(m, x, "b", 2, 1, 1, 0, true);
    return at_add_mul(m, a, b);
}

static int pad_asymmetric(at_model *m, int x) { return at_add_pad2d(m, x, 0, 1, 2, 1, 0.0f); }
/* a max-pool's padding: the pad value never wins, so the gradient reaches only real elements */
static int pad_then_maxpool(at_model *m, int x)
{
    return at_add_maxpool2d(m, at_add_pad2d(m, x, 1, 1, 1, 1, -FLT_MAX), 3, 2);
}
static int pad_value_then_conv(at_model *m, int x)
{
    return at_add_conv2d(m, at_add_pad2d(m, x, 1, 0, 0, 1, 0.5f), "conv", 2, 2, 2, 0, true);
}

TEST(pad2d_gradients)
{
    check_layer("pad2d asymmetric", 2, 4, 3, pad_asymmetric, AT_BN_TRAIN);
    check_layer("pad2d -max, maxpool 3/2", 2, 5, 5, pad_then_maxpool, AT_BN_TRAIN);
    check_layer("pad2d 0.5, conv k2 s2", 2, 4, 5, pad_value_then_conv, AT_BN_TRAIN);
    at_model *m = NULL;
    at_error err;
    CHECK_OK(at_model_begin(&m, 2, 4, 4, &err), &err);
    CHECK_EQ_INT(at_add_pad2d(m, 0, -1, 0, 0, 0, 0.0f), AT_ERR_ARG);
    at_model_free(m);
    CHECK_OK(at_model_begin(&m, 2, 4, 4, &err), &err);
    CHECK_EQ_INT(at_add_pad2d(m, 0, 1, 1, 1, 1, NAN), AT_ERR_ARG);
    at_model_free(m);
}

TEST(leaky_relu_softplus_and_mul_gradients)
{
    check_layer("leaky relu 0.2", 3, 4, 5, leaky_relu_layer, AT_BN_TRAIN);
    check_layer("softplus", 2, 5, 4, softplus_layer, AT_BN_TRAIN);
    check_layer("silu (x * sigmoid x)", 3, 4, 4, silu, AT_BN_TRAIN);
    check_layer("x * x", 2, 3, 3, square, AT_BN_TRAIN);
    check_layer("conv * conv", 2, 4, 4, conv_gate, AT_BN_TRAIN);
    at_model *m = NULL;
    at_error err;
    CHECK_OK(at_model_begin(&m, 2, 4, 4, &err), &err);
    int pooled = at_add_maxpool2d(m, 0, 2, 2);
    CHECK_EQ_INT(at_add_mul(m, 0, pooled), AT_ERR_SHAPE); /* shapes differ */
    at_model_free(m);
    CHECK_OK(at_model_begin(&m, 2, 4, 4, &err), &err);
    CHECK_EQ_INT(at_add_leaky_relu(m, 0, NAN), AT_ERR_ARG);
    at_model_free(m);
}

TEST_MAIN(TEST_ENTRY(conv2d_gradients), TEST_ENTRY(leaky_relu_softplus_and_mul_gradients),
          TEST_ENTRY(pad2d_gradients), TEST_ENTRY(batchnorm2d_gradients_every_mode),
          TEST_ENTRY(activation_and_pooling_gradients), TEST_ENTRY(linear_and_flatten_gradients),
          TEST_ENTRY(add_and_normalize_gradients), TEST_ENTRY(slice_and_scale_gradients),
          TEST_ENTRY(slice_and_scale_refuse_bad_arguments), TEST_ENTRY(tanh_and_prelu_gradients),
          TEST_ENTRY(batchnorm2d_without_affine_gradients_every_mode),
          TEST_ENTRY(tanh_prelu_and_plain_batchnorm_do_not_depend_on_thread_count),
          TEST_ENTRY(prelu_refuses_bad_arguments), TEST_ENTRY(sigmoid_and_upsample_gradients),
          TEST_ENTRY(upsample_refuses_bad_factors))
