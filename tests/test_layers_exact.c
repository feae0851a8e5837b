/* test_layers_exact.c: one small case per layer kind worked out by hand: the forward values and
 * the backward values (dy all ones unless stated) are written down exactly. */
#include "test.h"

#include "advtrain.h"

/* Builds input(c,h,w) -> layer -> flatten and a pass for n examples. */
typedef struct one_layer {
    at_model *m;
    at_pass *p;
    int out; /* number of outputs per example */
} one_layer;

static bool make(one_layer *o, int c, int h, int w, int n, int (*add)(at_model *, int))
{
    at_error err;
    o->m = NULL;
    o->p = NULL;
    CHECK_OK(at_model_begin(&o->m, c, h, w, &err), &err);
    if (!o->m)
        return false;
    int x = add(o->m, 0);
    int oc, oh, ow;
    at_model_node_shape(o->m, x, &oc, &oh, &ow);
    if (oh != 1 || ow != 1)
        x = at_add_flatten(o->m, x);
    o->out = oc * oh * ow;
    CHECK_OK(at_model_finish(o->m, 0, &err), &err);
    CHECK_OK(at_pass_create(&o->p, o->m, n, 0, &err), &err);
    return o->p != NULL;
}

static void drop(one_layer *o)
{
    at_pass_free(o->p);
    at_model_free(o->m);
}

static void set_tensor(at_model *m, const char *name, const float *values)
{
    int i = at_model_find_tensor(m, name);
    CHECK(i >= 0);
    if (i < 0)
        return;
    at_tensor_info t = at_model_tensor(m, i);
    memcpy(t.data, values, t.numel * sizeof(float));
}

static void backward_ones(one_layer *o, int n)
{
    float ones[64];
    for (int i = 0; i < 64; i++)
        ones[i] = 1.0f;
    at_model_zero_grad(o->m);
    CHECK_OK(at_backward(o->p, ones, AT_GRAD_INPUT | AT_GRAD_WEIGHTS), NULL);
}

static void expect(const float *got, const float *want, int count, const char *what)
{
    for (int i = 0; i < count; i++)
        if (fabsf(got[i] - want[i]) > 1e-5f * (1.0f + fabsf(want[i])))
            TEST_FAIL_("%s[%d]: got %.7g, want %.7g", what, i, got[i], want[i]);
}

static int conv_2x2(at_model *m, int x) { return at_add_conv2d(m, x, "c", 1, 2, 1, 0, true); }
static int conv_2x2_s2p1(at_model *m, int x) { return at_add_conv2d(m, x, "c", 1, 2, 2, 1, false); }

TEST(conv2d_by_hand)
{
    const float x[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9}, k[4] = {1, 2, 3, 4}, b[1] = {0.5f};
    one_layer o;
    REQUIRE(make(&o, 1, 3, 3, 1, conv_2x2));
    set_tensor(o.m, "c.weight", k);
    set_tensor(o.m, "c.bias", b);
    at_forward(o.p, x, 1, AT_BN_TRAIN);
    /* 1*1+2*2+3*4+4*5 = 37, then 47, 67, 77 */
    const float y[4] = {37.5f, 47.5f, 67.5f, 77.5f};
    expect(at_pass_logits(o.p), y, 4, "y");
    backward_ones(&o, 1);
    /* dx: sum of the kernel taps that touch each pixel; dW: sum of each tap's window; db: 4 */
    const float dx[9] = {1, 3, 2, 4, 10, 6, 3, 7, 4}, dw[5] = {12, 16, 24, 28, 4};
    expect(at_pass_input_grad(o.p), dx, 9, "dx");
    expect(at_model_grads(o.m, NULL), dw, 5, "dw");
    drop(&o);

    /* stride 2, padding 1: the four windows see (x00), (x01, x02), (x10, x20), (x11..x22) */
    REQUIRE(make(&o, 1, 3, 3, 1, conv_2x2_s2p1));
    set_tensor(o.m, "c.weight", k);
    at_forward(o.p, x, 1, AT_BN_TRAIN);
    const float y2[4] = {4, 3 * 2 + 4 * 3, 2 * 4 + 4 * 7, 1 * 5 + 2 * 6 + 3 * 8 + 4 * 9};
    expect(at_pass_logits(o.p), y2, 4, "y (s2 p1)");
    drop(&o);
}

static int bn(at_model *m, int x) { return at_add_batchnorm2d(m, x, "bn"); }

TEST(batchnorm2d_by_hand)
{
    /* one channel, two images of 1x2: values 1, 2, 3, 4; mean 2.5, biased var 1.25 */
    const float x[4] = {1, 2, 3, 4}, gamma[1] = {2.0f}, beta[1] = {1.0f};
    one_layer o;
    REQUIRE(make(&o, 1, 1, 2, 2, bn));
    set_tensor(o.m, "bn.weight", gamma);
    set_tensor(o.m, "bn.bias", beta);
    at_forward(o.p, x, 2, AT_BN_TRAIN);
    const double rstd = 1.0 / sqrt(1.25 + 1e-5);
    float y[4];
    for (int i = 0; i < 4; i++)
        y[i] = (float)(2.0 * (x[i] - 2.5) * rstd + 1.0);
    expect(at_pass_logits(o.p), y, 4, "y");
    /* running mean 0.9*0 + 0.1*2.5; running var 0.9*1 + 0.1*(5/3) (unbiased) */
    at_tensor_info rm = at_model_tensor(o.m, at_model_find_tensor(o.m, "bn.running_mean"));
    at_tensor_info rv = at_model_tensor(o.m, at_model_find_tensor(o.m, "bn.running_var"));
    at_tensor_info nb = at_model_tensor(o.m, at_model_find_tensor(o.m, "bn.num_batches_tracked"));
    CHECK_CLOSE(rm.data[0], 0.25, 1e-7, 0);
    CHECK_CLOSE(rv.data[0], 0.9 + 0.1 * 5.0 / 3.0, 1e-6, 0);
    CHECK_EQ_INT(*nb.data_i64, 1);
    /* dy = 1 everywhere: dx = 0 (a constant shift is normalised away), dgamma = sum xhat = 0,
     * dbeta = 4 */
    backward_ones(&o, 2);
    const float dx[4] = {0, 0, 0, 0}, dgb[2] = {0, 4};
    expect(at_pass_input_grad(o.p), dx, 4, "dx");
    expect(at_model_grads(o.m, NULL), dgb, 2, "dgamma, dbeta");
    /* eval mode uses the running statistics: y = 2 (x - 0.25) / sqrt(rv + eps) + 1 */
    at_forward(o.p, x, 2, AT_BN_EVAL);
    for (int i = 0; i < 4; i++)
        y[i] = (float)(2.0 * (x[i] - 0.25) / sqrt(rv.data[0] + 1e-5) + 1.0);
    expect(at_pass_logits(o.p), y, 4, "y (eval)");
    drop(&o);
}

static int relu(at_model *m, int x) { return at_add_relu(m, x); }

TEST(relu_by_hand)
{
    const float x[4] = {-1.0f, 0.0f, 2.0f, -0.0f};
    one_layer o;
    REQUIRE(make(&o, 1, 2, 2, 1, relu));
    at_forward(o.p, x, 1, AT_BN_TRAIN);
    const float y[4] = {0, 0, 2, 0}, dx[4] = {0, 0, 1, 0}; /* no gradient at 0 */
    expect(at_pass_logits(o.p), y, 4, "y");
    backward_ones(&o, 1);
    expect(at_pass_input_grad(o.p), dx, 4, "dx");
    drop(&o);
}

static int bn_plain(at_model *m, int x) { return at_add_batchnorm2d_affine(m, x, "bn", false); }

TEST(batchnorm2d_without_affine_by_hand)
{
    /* the data of batchnorm2d_by_hand: mean 2.5, biased var 1.25, unbiased 5/3 */
    const float x[4] = {1, 2, 3, 4};
    one_layer o;
    REQUIRE(make(&o, 1, 1, 2, 2, bn_plain));
    /* PyTorch's state_dict of BatchNorm2d(affine=False): the statistics alone */
    CHECK_EQ_INT(at_model_tensor_count(o.m), 3);
    CHECK(at_model_find_tensor(o.m, "bn.weight") < 0);
    CHECK(at_model_find_tensor(o.m, "bn.bias") < 0);
    size_t n_params;
    at_model_params(o.m, &n_params);
    CHECK_EQ_INT(n_params, 0);
    at_tensor_info rm = at_model_tensor(o.m, at_model_find_tensor(o.m, "bn.running_mean"));
    at_tensor_info rv = at_model_tensor(o.m, at_model_find_tensor(o.m, "bn.running_var"));
    at_tensor_info nb = at_model_tensor(o.m, at_model_find_tensor(o.m, "bn.num_batches_tracked"));
    REQUIRE(rm.data && rv.data && nb.data_i64);
    CHECK(rm.data[0] == 0.0f && rv.data[0] == 1.0f);

    /* batch statistics, running ones left alone */
    const double rstd = 1.0 / sqrt(1.25 + 1e-5);
    float y[4], dx[4];
    for (int i = 0; i < 4; i++)
        y[i] = (float)((x[i] - 2.5) * rstd);
    at_forward(o.p, x, 2, AT_BN_BATCH_STATS);
    expect(at_pass_logits(o.p), y, 4, "y (batch stats)");
    CHECK(rm.data[0] == 0.0f && rv.data[0] == 1.0f);
    CHECK_EQ_INT(*nb.data_i64, 0);

    /* train: the same output, and the running statistics move as with the affine layer */
    at_forward(o.p, x, 2, AT_BN_TRAIN);
    expect(at_pass_logits(o.p), y, 4, "y (train)");
    CHECK_CLOSE(rm.data[0], 0.25, 1e-7, 0);
    CHECK_CLOSE(rv.data[0], 0.9 + 0.1 * 5.0 / 3.0, 1e-6, 0);
    CHECK_EQ_INT(*nb.data_i64, 1);
    /* dy = 1: a constant shift is normalised away */
    backward_ones(&o, 2);
    const float zero[4] = {0, 0, 0, 0};
    expect(at_pass_input_grad(o.p), zero, 4, "dx (train)");

    /* eval: y = (x - running mean) / sqrt(running var + eps), and dx = dy / sqrt(...) */
    at_forward(o.p, x, 2, AT_BN_EVAL);
    const double eval_rstd = 1.0 / sqrt(rv.data[0] + 1e-5);
    for (int i = 0; i < 4; i++) {
        y[i] = (float)((x[i] - 0.25) * eval_rstd);
        dx[i] = (float)eval_rstd;
    }
    expect(at_pass_logits(o.p), y, 4, "y (eval)");
    backward_ones(&o, 2);
    expect(at_pass_input_grad(o.p), dx, 4, "dx (eval)");
    CHECK_EQ_INT(*nb.data_i64, 1);
    drop(&o);
}

static int tanh_layer(at_model *m, int x) { return at_add_tanh(m, x); }

TEST(tanh_by_hand)
{
    /* tanh(atanh(1/2)) = 1/2, so dx = 1 - 1/4 */
    const float x[4] = {0.0f, 0.54930614f, -0.54930614f, 20.0f};
    one_layer o;
    REQUIRE(make(&o, 1, 2, 2, 1, tanh_layer));
    at_forward(o.p, x, 1, AT_BN_TRAIN);
    const float y[4] = {0, 0.5f, -0.5f, 1}, dx[4] = {1, 0.75f, 0.75f, 0};
    expect(at_pass_logits(o.p), y, 4, "y");
    backward_ones(&o, 1);
    expect(at_pass_input_grad(o.p), dx, 4, "dx");
    drop(&o);
}

static int prelu_one(at_model *m, int x) { return at_add_prelu(m, x, "act", 1); }
static int prelu_two(at_model *m, int x) { return at_add_prelu(m, x, "act", 2); }
static int prelu_three(at_model *m, int x) { return at_add_prelu(m, x, "act", 3); }

TEST(prelu_by_hand)
{
    /* two channels of 1x2: (-2, 3) and (0, -0.5). At x = 0 the gradient takes the negative
     * branch, as PyTorch's: dx = a * dy, and the slope's term 0 * dy. */
    const float x[4] = {-2, 3, 0, -0.5f};
    one_layer o;
    REQUIRE(make(&o, 2, 1, 2, 1, prelu_two));
    at_tensor_info w = at_model_tensor(o.m, at_model_find_tensor(o.m, "act.weight"));
    REQUIRE(w.data);
    CHECK_EQ_INT(w.ndim, 1);
    CHECK_EQ_INT(w.shape[0], 2);
    CHECK(w.is_param && w.data[0] == 0.25f && w.data[1] == 0.25f); /* PyTorch's initial slope */
    const float slopes[2] = {0.25f, -0.5f};
    set_tensor(o.m, "act.weight", slopes);
    at_forward(o.p, x, 1, AT_BN_TRAIN);
    const float y[4] = {-0.5f, 3, 0, 0.25f};
    expect(at_pass_logits(o.p), y, 4, "y");
    backward_ones(&o, 1);
    const float dx[4] = {0.25f, 1, -0.5f, -0.5f}, da[2] = {-2, -0.5f};
    expect(at_pass_input_grad(o.p), dx, 4, "dx");
    expect(at_model_grads(o.m, NULL), da, 2, "da");
    drop(&o);

    /* one slope for every channel, left at 0.25: its gradient sums over both channels */
    REQUIRE(make(&o, 2, 1, 2, 1, prelu_one));
    CHECK_EQ_INT(at_model_tensor(o.m, 0).shape[0], 1);
    at_forward(o.p, x, 1, AT_BN_TRAIN);
    const float y1[4] = {-0.5f, 3, 0, -0.125f}, dx1[4] = {0.25f, 1, 0.25f, 0.25f}, da1[1] = {-2.5f};
    expect(at_pass_logits(o.p), y1, 4, "y (one slope)");
    backward_ones(&o, 1);
    expect(at_pass_input_grad(o.p), dx1, 4, "dx (one slope)");
    expect(at_model_grads(o.m, NULL), da1, 1, "da (one slope)");
    drop(&o);

    /* [n, features], one slope per feature: each slope's gradient sums over the batch */
    const float v[6] = {-1, 2, -3, -4, 5, 0};
    REQUIRE(make(&o, 3, 1, 1, 2, prelu_three));
    at_forward(o.p, v, 2, AT_BN_TRAIN);
    const float yv[6] = {-0.25f, 2, -0.75f, -1, 5, 0};
    const float dxv[6] = {0.25f, 1, 0.25f, 0.25f, 1, 0.25f}, dav[3] = {-5, 0, -3};
    expect(at_pass_logits(o.p), yv, 6, "y (features)");
    backward_ones(&o, 2);
    expect(at_pass_input_grad(o.p), dxv, 6, "dx (features)");
    expect(at_model_grads(o.m, NULL), dav, 3, "da (features)");
    drop(&o);
}

static int maxpool(at_model *m, int x) { return at_add_maxpool2d(m, x, 2, 2); }
static int avgpool(at_model *m, int x) { return at_add_avgpool2d(m, x, 2, 2); }

TEST(pooling_by_hand)
{
    /* 4x4 image; the top-left window has a tie (5, 5): the first one gets the gradient */
    const float x[16] = {5, 1, 0, 2, 5, 3, 7, 1, -1, -2, 4, 4, -3, -1, 4, 9};
    one_layer o;
    REQUIRE(make(&o, 1, 4, 4, 1, maxpool));
    at_forward(o.p, x, 1, AT_BN_TRAIN);
    const float y[4] = {5, 7, -1, 9};
    expect(at_pass_logits(o.p), y, 4, "max y");
    backward_ones(&o, 1);
    const float dx[16] = {1, 0, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0, 1};
    expect(at_pass_input_grad(o.p), dx, 16, "max dx");
    drop(&o);

    REQUIRE(make(&o, 1, 4, 4, 1, avgpool));
    at_forward(o.p, x, 1, AT_BN_TRAIN);
    const float ya[4] = {3.5f, 2.5f, -1.75f, 5.25f};
    expect(at_pass_logits(o.p), ya, 4, "avg y");
    backward_ones(&o, 1);
    float dxa[16];
    for (int i = 0; i < 16; i++)
        dxa[i] = 0.25f;
    expect(at_pass_input_grad(o.p), dxa, 16, "avg dx");
    drop(&o);
}

static int linear(at_model *m, int x) { return at_add_linear(m, x, "fc", 3, true); }

TEST(linear_by_hand)
{
    const float x[2] = {1, -1}, w[6] = {1, 2, 3, 4, 5, 6}, b[3] = {1, 0, -1};
    one_layer o;
    REQUIRE(make(&o, 2, 1, 1, 1, linear));
    set_tensor(o.m, "fc.weight", w);
    set_tensor(o.m, "fc.bias", b);
    at_forward(o.p, x, 1, AT_BN_TRAIN);
    const float y[3] = {0, -1, -2};
    expect(at_pass_logits(o.p), y, 3, "y");
    backward_ones(&o, 1);
    const float dx[2] = {9, 12}, dw[9] = {1, -1, 1, -1, 1, -1, 1, 1, 1};
    expect(at_pass_input_grad(o.p), dx, 2, "dx");
    expect(at_model_grads(o.m, NULL), dw, 9, "dw, db");
    drop(&o);
}

static int residual(at_model *m, int x) { return at_add_add(m, x, at_add_relu(m, x)); }
static int normalize(at_model *m, int x)
{
    const float mean[2] = {0.5f, 1.0f}, std[2] = {0.25f, 2.0f};
    return at_add_normalize(m, x, mean, std);
}

TEST(add_and_normalize_by_hand)
{
    const float x[4] = {-2, 3, 0.5f, 1};
    one_layer o;
    REQUIRE(make(&o, 1, 2, 2, 1, residual));
    at_forward(o.p, x, 1, AT_BN_TRAIN);
    const float y[4] = {-2, 6, 1, 2}, dx[4] = {1, 2, 2, 2};
    expect(at_pass_logits(o.p), y, 4, "add y");
    backward_ones(&o, 1);
    expect(at_pass_input_grad(o.p), dx, 4, "add dx");
    drop(&o);

    REQUIRE(make(&o, 2, 1, 2, 1, normalize));
    at_forward(o.p, x, 1, AT_BN_TRAIN);
    const float yn[4] = {-10, 10, -0.25f, 0}, dxn[4] = {4, 4, 0.5f, 0.5f};
    expect(at_pass_logits(o.p), yn, 4, "normalize y");
    backward_ones(&o, 1);
    expect(at_pass_input_grad(o.p), dxn, 4, "normalize dx");
    drop(&o);
}

TEST(builders_reject_bad_layers)
{
    at_model *m = NULL;
    at_error err;
    CHECK_OK(at_model_begin(&m, 1, 4, 4, &err), &err);
    REQUIRE(m);
    CHECK(at_add_conv2d(m, 0, "c", 2, 5, 1, 0, true) < 0);   /* kernel larger than the image */
    at_model_free(m);
    CHECK_OK(at_model_begin(&m, 1, 4, 4, &err), &err);
    CHECK(at_add_relu(m, 7) < 0);                           /* no such node */
    at_model_free(m);
    CHECK_OK(at_model_begin(&m, 1, 4, 4, &err), &err);
    CHECK(at_add_linear(m, 0, "fc", 3, true) < 0);          /* linear needs a vector: flatten first */
    at_model_free(m);
    CHECK_OK(at_model_begin(&m, 1, 4, 4, &err), &err);
    int a = at_add_conv2d(m, 0, "a", 2, 3, 1, 1, false);
    CHECK(at_add_add(m, 0, a) < 0);                         /* 1 channel + 2 channels */
    CHECK(at_model_finish(m, 0, &err) < 0);                 /* and the model reports it */
    at_model_free(m);
    CHECK_OK(at_model_begin(&m, 1, 4, 4, &err), &err);
    at_add_conv2d(m, 0, "same", 2, 3, 1, 1, false);
    CHECK(at_add_conv2d(m, 1, "same", 2, 3, 1, 1, false) < 0); /* duplicate tensor names */
    at_model_free(m);
    const float mean[1] = {0}, std[1] = {0};
    CHECK_OK(at_model_begin(&m, 1, 4, 4, &err), &err);
    CHECK(at_add_normalize(m, 0, mean, std) < 0);           /* std must be > 0 */
    at_model_free(m);
    CHECK_OK(at_model_begin(&m, 3, 4, 4, &err), &err);
    CHECK(at_add_prelu(m, 0, "act", 2) < 0);                /* neither one slope nor 3 */
    at_model_free(m);
    CHECK_EQ_INT(at_model_begin(&m, 0, 4, 4, &err), AT_ERR_ARG);
}

TEST_MAIN(TEST_ENTRY(conv2d_by_hand), TEST_ENTRY(batchnorm2d_by_hand),
          TEST_ENTRY(batchnorm2d_without_affine_by_hand), TEST_ENTRY(relu_by_hand),
          TEST_ENTRY(tanh_by_hand), TEST_ENTRY(prelu_by_hand),
          TEST_ENTRY(pooling_by_hand), TEST_ENTRY(linear_by_hand),
          TEST_ENTRY(add_and_normalize_by_hand), TEST_ENTRY(builders_reject_bad_layers))
