/* test_clips.c: video clips of a moving item (at_dataset_make_clips) and the per-frame model
 * smallcnn-clip. Clips are checked for their bytes (a golden hash pins them across machines) and
 * for their properties: every frame holds the halved item intact and inside, moving at a constant
 * velocity that reflects at the edges. The model on T equal frames gives SmallCNN's logits and
 * 1/T of its input gradient on each frame, and shares SmallCNN's state_dict. */
#define _XOPEN_SOURCE 700 /* mkdtemp */
#include "test.h"

#include "advtrain.h"

#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- clips -------------------------------------------------------------------------------- */

/* n images of c x h x w whose pixels are all nonzero (so the item's box is visible in a frame),
 * image i labelled i % classes. */
static at_dataset source(int n, int c, int h, int w, int classes)
{
    at_dataset ds = {.name = "made", .n = n, .c = c, .h = h, .w = w, .num_classes = classes};
    const size_t image = (size_t)c * h * w;
    ds.images = malloc((size_t)n * image);
    ds.labels = malloc((size_t)n * sizeof(int32_t));
    for (int i = 0; i < n; i++) {
        ds.labels[i] = i % classes;
        for (size_t k = 0; k < image; k++)
            ds.images[i * image + k] = (uint8_t)(1 + (i * 37 + k * 11 + k / 5 * 3) % 255);
    }
    return ds;
}

static void free_source(at_dataset *ds)
{
    free(ds->images);
    free(ds->labels);
}

TEST(clips_are_reproducible_and_pinned)
{
    at_dataset src = source(12, 2, 8, 10, 3), a, b, c;
    at_error err;
    CHECK_OK(at_dataset_make_clips(&a, &src, 6, 42, &err), &err);
    CHECK_OK(at_dataset_make_clips(&b, &src, 6, 42, &err), &err);
    CHECK_OK(at_dataset_make_clips(&c, &src, 6, 43, &err), &err);
    REQUIRE(a.images && b.images && c.images);
    CHECK(a.n == 12 && a.c == 12 && a.h == 8 && a.w == 10 && a.num_classes == 3);
    CHECK_STR_EQ(a.name, "made-clips");
    const size_t bytes = (size_t)a.n * a.c * a.h * a.w;
    CHECK(memcmp(a.images, b.images, bytes) == 0);
    CHECK(memcmp(a.images, c.images, bytes) != 0); /* another seed, other motions */
    /* clip i depends on (seed, i, image i) only: the clips of the first 4 images are the first 4
     * clips, and another image 5 changes clip 5 alone */
    at_dataset part, part_clips;
    CHECK_OK(at_dataset_slice(&part, &src, 0, 4, &err), &err);
    CHECK_OK(at_dataset_make_clips(&part_clips, &part, 6, 42, &err), &err);
    CHECK(memcmp(part_clips.images, a.images, bytes / 3) == 0);
    const size_t clip = bytes / 12;
    src.images[5 * 160 + 17] ^= 0x80;
    at_dataset_free(&b);
    CHECK_OK(at_dataset_make_clips(&b, &src, 6, 42, &err), &err);
    CHECK(memcmp(a.images, b.images, 5 * clip) == 0);
    CHECK(memcmp(a.images + 5 * clip, b.images + 5 * clip, clip) != 0);
    CHECK(memcmp(a.images + 6 * clip, b.images + 6 * clip, 6 * clip) == 0);
    /* the bytes on every machine: integer arithmetic and the library's own random stream (the
     * hash was also reproduced by a separate implementation of the definition) */
    char hex[65];
    at_dataset_sha256(&a, hex);
    CHECK_STR_EQ(hex, "7109a09817385b86bea82e0cc3fa745a87771209762c31fc69ade50ec4ba6dd8");
    at_dataset_free(&a);
    at_dataset_free(&b);
    at_dataset_free(&c);
    at_dataset_free(&part);
    at_dataset_free(&part_clips);
    free_source(&src);
}

/* The item's box in one plane (all its pixels are nonzero, the background zero): false when the
 * nonzero pixels do not form an ih x iw box equal to the item. */
static bool find_item(const uint8_t *plane, int h, int w, const uint8_t *item, int ih, int iw,
                      int *x, int *y)
{
    int x0 = w, y0 = h, x1 = -1, y1 = -1;
    for (int r = 0; r < h; r++)
        for (int q = 0; q < w; q++)
            if (plane[r * w + q]) {
                x0 = q < x0 ? q : x0;
                x1 = q > x1 ? q : x1;
                y0 = r < y0 ? r : y0;
                y1 = r > y1 ? r : y1;
            }
    if (x1 - x0 + 1 != iw || y1 - y0 + 1 != ih)
        return false;
    for (int r = 0; r < ih; r++)
        if (memcmp(plane + (y0 + r) * w + x0, item + r * iw, (size_t)iw) != 0)
            return false;
    *x = x0;
    *y = y0;
    return true;
}

/* Positions p[0..frames) along one axis are a motion at speed v in -3..3, reflected at 0 and max:
 * the displacement is v until a step would leave [0, max], then the step is reflected and v
 * reverses. Returns the number of bounces, or -1 when no speed fits. */
static int fit_motion(const int *p, int frames, int max, int *speed)
{
    for (int v0 = -3; v0 <= 3; v0++) {
        int v = v0, bounces = 0;
        bool fits = true;
        for (int t = 0; t + 1 < frames && fits; t++) {
            int next = p[t] + v;
            while (next < 0 || next > max) { /* a speed above max may cross both edges */
                next = next < 0 ? -next : 2 * max - next;
                v = -v;
                bounces++;
            }
            fits = next == p[t + 1];
        }
        if (fits) {
            *speed = v0;
            return bounces;
        }
    }
    return -1;
}

/* Every frame of every clip: the halved item, intact and inside the frame (so the pixel sum of
 * each frame is the item's); the motion constant except at bounces; labels copied. */
static void check_properties(int n, int c, int h, int w, int frames, bool want_all_velocities)
{
    at_dataset src = source(n, c, h, w, 10), clips;
    at_error err;
    CHECK_OK(at_dataset_make_clips(&clips, &src, frames, 7, &err), &err);
    REQUIRE(clips.images);
    CHECK(clips.n == n && clips.c == frames * c && clips.h == h && clips.w == w);
    const int ih = h / 2, iw = w / 2;
    const size_t plane = (size_t)h * w, image = (size_t)c * plane;
    uint8_t *item = malloc((size_t)ih * iw);
    int xs[64] = {0}, ys[64] = {0}, seen[7][7] = {{0}}, bounces = 0, failures = 0;
    bool start_at_edges[4] = {false, false, false, false};
    for (int i = 0; i < n && failures < 5; i++) {
        CHECK_EQ_INT(clips.labels[i], src.labels[i]);
        const uint8_t *clip = clips.images + (size_t)i * frames * image;
        for (int t = 0; t < frames; t++)
            for (int ch = 0; ch < c; ch++) {
                const uint8_t *img = src.images + (size_t)i * image + (size_t)ch * plane;
                long sum = 0, frame_sum = 0;
                for (int r = 0; r < ih; r++)
                    for (int q = 0; q < iw; q++) {
                        int s = img[2 * r * w + 2 * q] + img[2 * r * w + 2 * q + 1] +
                                img[(2 * r + 1) * w + 2 * q] + img[(2 * r + 1) * w + 2 * q + 1];
                        item[r * iw + q] = (uint8_t)((s + 2) / 4);
                        sum += item[r * iw + q];
                    }
                const uint8_t *fp = clip + ((size_t)t * c + ch) * plane;
                for (size_t k = 0; k < plane; k++)
                    frame_sum += fp[k];
                int x, y;
                if (frame_sum != sum || !find_item(fp, h, w, item, ih, iw, &x, &y)) {
                    TEST_FAIL_("clip %d frame %d channel %d: the item is not intact", i, t, ch);
                    failures++;
                    continue;
                }
                if (ch > 0 && (x != xs[t] || y != ys[t])) {
                    TEST_FAIL_("clip %d frame %d: the channels of a frame moved apart", i, t);
                    failures++;
                }
                xs[t] = x;
                ys[t] = y;
            }
        int vx, vy;
        int bx = fit_motion(xs, frames, w - iw, &vx), by = fit_motion(ys, frames, h - ih, &vy);
        if (bx < 0 || by < 0) {
            TEST_FAIL_("clip %d: the item does not move at a constant reflected velocity", i);
            failures++;
            continue;
        }
        bounces += bx + by;
        if (frames > 6) /* long enough to tell the speed apart from the start */
            seen[vy + 3][vx + 3]++;
        start_at_edges[0] |= xs[0] == 0;
        start_at_edges[1] |= xs[0] == w - iw;
        start_at_edges[2] |= ys[0] == 0;
        start_at_edges[3] |= ys[0] == h - ih;
    }
    if (want_all_velocities) {
        CHECK(bounces > 0);
        CHECK(start_at_edges[0] && start_at_edges[1] && start_at_edges[2] && start_at_edges[3]);
        CHECK_EQ_INT(seen[3][3], 0); /* never standing still */
        for (int a = 0; a < 7; a++)
            for (int b = 0; b < 7; b++)
                if (a != 3 || b != 3)
                    CHECK(seen[a][b] > 0); /* every other velocity occurs */
    }
    free(item);
    at_dataset_free(&clips);
    free_source(&src);
}

TEST(clips_hold_the_item_moving_and_bouncing)
{
    check_properties(1500, 1, 12, 16, 10, true);
    check_properties(200, 2, 8, 6, 9, false);
    check_properties(300, 1, 4, 4, 12, false);  /* speed 3 above the room of 2: double bounces */
    check_properties(50, 3, 6, 10, 1, false);
    check_properties(20, 1, 28, 28, 64, false);
}

TEST(clips_refuse_bad_arguments)
{
    at_dataset src = source(3, 1, 6, 6, 2), clips;
    at_error err;
    CHECK_EQ_INT(at_dataset_make_clips(&clips, &src, 0, 1, &err), AT_ERR_ARG);
    CHECK(strstr(err.message, "1..64") != NULL);
    CHECK(clips.images == NULL && clips.n == 0);
    CHECK_EQ_INT(at_dataset_make_clips(&clips, &src, 65, 1, &err), AT_ERR_ARG);
    CHECK_EQ_INT(at_dataset_make_clips(&src, &src, 2, 1, &err), AT_ERR_ARG);
    free_source(&src);
    static const int sizes[][2] = {{5, 6}, {6, 7}, {2, 2}, {2, 8}};
    for (int k = 0; k < 4; k++) {
        src = source(2, 1, sizes[k][0], sizes[k][1], 2);
        CHECK_EQ_INT(at_dataset_make_clips(&clips, &src, 2, 1, &err), AT_ERR_SHAPE);
        CHECK(strstr(err.message, "even") != NULL && strchr(err.message, '\n') == NULL);
        CHECK(clips.images == NULL);
        free_source(&src);
    }
    src = source(0, 1, 4, 4, 2); /* no images: no clips, no error */
    CHECK_OK(at_dataset_make_clips(&clips, &src, 3, 1, &err), &err);
    CHECK(clips.n == 0 && clips.c == 3);
    at_dataset_free(&clips);
    free_source(&src);
}

/* ---- clips by name ------------------------------------------------------------------------ */

static bool write_idx(const char *path, uint32_t magic, const uint32_t *dims, int ndim,
                      const uint8_t *data, size_t count)
{
    FILE *f = fopen(path, "wb");
    bool ok = f != NULL;
    for (int i = -1; i < ndim && ok; i++) {
        uint32_t v = i < 0 ? magic : dims[i];
        uint8_t be[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
        ok = fwrite(be, 1, 4, f) == 4;
    }
    ok = ok && fwrite(data, 1, count, f) == count;
    return f && fclose(f) == 0 && ok;
}

TEST(clips_open_by_name)
{
    char dir[64] = "/tmp/advtrain-test-clips-XXXXXX", images[128], labels[128];
    REQUIRE(mkdtemp(dir));
    at_dataset src = source(5, 1, 6, 8, 10);
    snprintf(images, sizeof images, "%s/t10k-images-idx3-ubyte", dir);
    snprintf(labels, sizeof labels, "%s/t10k-labels-idx1-ubyte", dir);
    uint8_t label_bytes[5];
    for (int i = 0; i < 5; i++)
        label_bytes[i] = (uint8_t)src.labels[i];
    REQUIRE(write_idx(images, 0x803, (const uint32_t[]){5, 6, 8}, 3, src.images, 5 * 48));
    REQUIRE(write_idx(labels, 0x801, (const uint32_t[]){5}, 1, label_bytes, 5));
    at_dataset ds, want;
    at_error err;
    /* the test split's motions come from seed 1 (the train split's from seed 0) */
    CHECK_OK(at_dataset_open(&ds, "fashion-mnist-clips", dir, "test", &err), &err);
    CHECK_OK(at_dataset_make_clips(&want, &src, 8, 1, &err), &err);
    CHECK_STR_EQ(ds.name, "fashion-mnist-clips");
    CHECK(ds.n == 5 && ds.c == 8 && ds.h == 6 && ds.w == 8 && ds.num_classes == 10);
    CHECK(ds.images && memcmp(ds.images, want.images, (size_t)5 * 8 * 48) == 0);
    CHECK(memcmp(ds.labels, want.labels, 5 * sizeof(int32_t)) == 0);
    at_dataset_free(&ds);
    at_dataset_free(&want);
    CHECK_OK(at_dataset_open(&ds, "fashion-mnist-clips-3", dir, "test", &err), &err);
    CHECK_STR_EQ(ds.name, "fashion-mnist-clips-3");
    CHECK_EQ_INT(ds.c, 3);
    at_dataset_free(&ds);
    static const char *const bad[] = {"fashion-mnist-clips-0", "fashion-mnist-clips-65",
                                      "fashion-mnist-clips-08", "fashion-mnist-clips-x",
                                      "fashion-mnist-clips-"};
    for (int k = 0; k < 5; k++) {
        CHECK(at_dataset_open(&ds, bad[k], dir, "test", &err) < 0);
        CHECK(ds.images == NULL);
        CHECK(strstr(err.message, bad[k]) != NULL);
    }
    CHECK_EQ_INT(at_dataset_open(&ds, "fashion-mnist-clips", dir, "train", &err), AT_ERR_NOTFOUND);
    CHECK_EQ_INT(at_dataset_open(&ds, "mnist-clips", dir, "test", &err), AT_ERR_ARG);
    CHECK(strstr(err.message, "fashion-mnist-clips[-T]") != NULL);
    const char *name, *default_dir, *description;
    bool listed = false;
    for (int i = 0; at_dataset_info(i, &name, &default_dir, &description); i++)
        listed |= strcmp(name, "fashion-mnist-clips") == 0 && strstr(description, "-T") != NULL;
    CHECK(listed);
    remove(images);
    remove(labels);
    rmdir(dir);
    free_source(&src);
}

TEST(fashion_mnist_clips)
{
    const char *dir = "/usr/share/datasets/fashion-mnist";
    struct stat st;
    if (stat(dir, &st) != 0) {
        TEST_FAIL_("%s is missing: install the Fashion-MNIST data package (CI does)", dir);
        return;
    }
    at_dataset ds, images;
    at_error err;
    CHECK_OK(at_dataset_open(&ds, "fashion-mnist-clips", NULL, "test", &err), &err);
    CHECK_OK(at_dataset_open(&images, "fashion-mnist", NULL, "test", &err), &err);
    CHECK(ds.n == 10000 && ds.c == 8 && ds.h == 28 && ds.w == 28 && ds.num_classes == 10);
    CHECK(ds.labels && memcmp(ds.labels, images.labels, 10000 * sizeof(int32_t)) == 0);
    at_dataset_free(&ds);
    at_dataset_free(&images);
}

/* ---- smallcnn-clip ------------------------------------------------------------------------ */

static at_model *create(const char *arch, int channels, uint64_t seed)
{
    at_model *m = NULL;
    at_error err;
    CHECK_OK(at_model_create(&m, arch, &(at_model_options){.in_channels = channels, .seed = seed},
                             &err),
             &err);
    return m;
}

TEST(clip_model_has_smallcnns_state_dict_and_initialisation)
{
    at_model *cnn = create("smallcnn", 0, 3), *clip = create("smallcnn-clip", 0, 3);
    REQUIRE(cnn && clip);
    int c, h, w;
    at_model_input_shape(clip, &c, &h, &w);
    CHECK(c == 8 && h == 28 && w == 28);
    CHECK_EQ_INT(at_model_tensor_count(clip), at_model_tensor_count(cnn));
    for (int t = 0; t < at_model_tensor_count(cnn); t++) {
        at_tensor_info a = at_model_tensor(cnn, t), b = at_model_tensor(clip, t);
        CHECK_STR_EQ(b.name, a.name);
        CHECK(a.numel == b.numel && memcmp(a.shape, b.shape, sizeof a.shape) == 0);
    }
    size_t n_cnn, n_clip;
    float *wa = at_model_params(cnn, &n_cnn), *wb = at_model_params(clip, &n_clip);
    CHECK_EQ_INT(n_clip, 312202);
    CHECK(n_cnn == n_clip && memcmp(wa, wb, n_cnn * sizeof(float)) == 0);
    CHECK_CLOSE(at_model_forward_flops(clip), 8 * at_model_forward_flops(cnn), 0, 1e-12);

    /* the description round-trips */
    at_model *three = create("smallcnn-clip", 3, 1), *again = NULL;
    REQUIRE(three);
    char *spec = at_model_spec(three);
    at_error err;
    CHECK_OK(at_model_create_from_spec(&again, spec, &err), &err);
    REQUIRE(again);
    CHECK_STR_EQ(at_model_arch(again), "smallcnn-clip");
    at_model_input_shape(again, &c, &h, &w);
    CHECK(c == 3 && h == 28 && w == 28);
    CHECK_EQ_INT(at_model_node_count(again), at_model_node_count(three));
    free(spec);

    /* SmallCNN takes one channel, as the reference; a clip's frames are not one image */
    at_model *m = NULL;
    CHECK_EQ_INT(at_model_create(&m, "smallcnn", &(at_model_options){.in_channels = 8}, &err),
                 AT_ERR_SHAPE);
    CHECK(strstr(err.message, "8x28x28") != NULL && strchr(err.message, '\n') == NULL);
    CHECK(at_model_create(&m, "smallcnn-clip", &(at_model_options){.in_channels = 65}, &err) < 0);
    at_model_free(cnn);
    at_model_free(clip);
    at_model_free(three);
    at_model_free(again);
}

/* SmallCNN with weights everywhere (the reference's last layer starts at zero). */
static at_model *trained_looking_smallcnn(void)
{
    at_model *m = create("smallcnn", 0, 5);
    if (!m)
        return NULL;
    size_t np;
    float *w = at_model_params(m, &np);
    at_rng rng;
    at_rng_seed(&rng, 8);
    for (size_t i = 0; i < np; i++)
        w[i] += (float)(0.02 * at_rng_normal(&rng));
    return m;
}

enum { N = 5, PIXELS = 28 * 28, CLASSES = 10 };

/* The clip model with cnn's weights on T copies of x: logits, and the input gradient and weight
 * gradients for output gradient d, against cnn's on x. */
static void check_equal_frames(at_model *cnn, int frames, const float *x, const float *d,
                               bool exact)
{
    at_model *clip = create("smallcnn-clip", frames, 1);
    REQUIRE(clip);
    at_error err;
    CHECK_OK(at_model_copy_weights(clip, cnn, &err), &err);
    at_pass *pc = NULL, *pk = NULL;
    CHECK_OK(at_pass_create(&pc, cnn, N, 0, &err), &err);
    CHECK_OK(at_pass_create(&pk, clip, N, 0, &err), &err);
    REQUIRE(pc && pk);
    float *xs = malloc((size_t)N * frames * PIXELS * sizeof(float));
    for (int i = 0; i < N; i++)
        for (int t = 0; t < frames; t++)
            memcpy(xs + ((size_t)i * frames + t) * PIXELS, x + (size_t)i * PIXELS,
                   PIXELS * sizeof(float));
    size_t np;
    at_model_zero_grad(cnn);
    at_model_zero_grad(clip);
    CHECK_OK(at_forward(pc, x, N, AT_BN_EVAL), NULL);
    CHECK_OK(at_forward(pk, xs, N, AT_BN_EVAL), NULL);
    CHECK_OK(at_backward(pc, d, AT_GRAD_INPUT | AT_GRAD_WEIGHTS), NULL);
    CHECK_OK(at_backward(pk, d, AT_GRAD_INPUT | AT_GRAD_WEIGHTS), NULL);
    const float *la = at_pass_logits(pc), *lb = at_pass_logits(pk);
    if (exact)
        CHECK(memcmp(la, lb, N * CLASSES * sizeof(float)) == 0);
    for (int j = 0; j < N * CLASSES; j++)
        CHECK_CLOSE(lb[j], la[j], 1e-7, 1e-6);
    /* each frame gets 1/T of the gradient; every frame's use adds to the weight gradients */
    const float *ga = at_pass_input_grad(pc), *gb = at_pass_input_grad(pk);
    double scale = 0.0, worst = 0.0;
    for (int k = 0; k < N * PIXELS; k++)
        scale = fabs(ga[k]) > scale ? fabs(ga[k]) : scale;
    for (int i = 0; i < N; i++)
        for (int t = 0; t < frames; t++)
            for (int k = 0; k < PIXELS; k++) {
                double want = ga[(size_t)i * PIXELS + k] / frames;
                double got = gb[((size_t)i * frames + t) * PIXELS + k];
                worst = fabs(got - want) > worst ? fabs(got - want) : worst;
            }
    CHECK(scale > 0.0);
    CHECK(worst <= 1e-6 * scale / frames);
    const double input_err = worst / scale * frames;
    const float *wa = at_model_grads(cnn, &np), *wb = at_model_grads(clip, NULL);
    scale = worst = 0.0;
    for (size_t k = 0; k < np; k++) {
        scale = fabs(wa[k]) > scale ? fabs(wa[k]) : scale;
        worst = fabs(wb[k] - wa[k]) > worst ? fabs(wb[k] - wa[k]) : worst;
    }
    CHECK(scale > 0.0 && worst <= 1e-5 * scale);
    printf("  T = %d: input gradient within %.1e, weight gradients within %.1e (relative)\n",
           frames, input_err, worst / scale);
    free(xs);
    at_pass_free(pc);
    at_pass_free(pk);
    at_model_free(clip);
}

TEST(clip_model_on_equal_frames_is_smallcnn)
{
    at_model *cnn = trained_looking_smallcnn();
    REQUIRE(cnn);
    static float x[N * PIXELS], d[N * CLASSES];
    at_rng rng;
    at_rng_seed(&rng, 12);
    for (int k = 0; k < N * PIXELS; k++)
        x[k] = (float)at_rng_uniform(&rng);
    for (int k = 0; k < N * CLASSES; k++)
        d[k] = (float)at_rng_normal(&rng);
    check_equal_frames(cnn, 8, x, d, true);
    check_equal_frames(cnn, 3, x, d, false);
    check_equal_frames(cnn, 1, x, d, true);
    at_model_free(cnn);
}

/* Distinct frames: the logits are the mean of SmallCNN's on each frame, and frame t's input
 * gradient is SmallCNN's at frame t for output gradient d / T. */
TEST(clip_model_averages_distinct_frames)
{
    enum { T = 4 };
    at_model *cnn = trained_looking_smallcnn(), *clip = create("smallcnn-clip", T, 1);
    REQUIRE(cnn && clip);
    at_error err;
    CHECK_OK(at_model_copy_weights(clip, cnn, &err), &err);
    at_pass *pc = NULL, *pk = NULL;
    CHECK_OK(at_pass_create(&pc, cnn, N * T, 0, &err), &err);
    CHECK_OK(at_pass_create(&pk, clip, N, 0, &err), &err);
    REQUIRE(pc && pk);
    /* the clips, and the same frames as a batch of N * T images (clip i's frame t at i * T + t) */
    static float x[N * T * PIXELS], d[N * CLASSES], dt[N * T * CLASSES];
    at_rng rng;
    at_rng_seed(&rng, 13);
    for (int k = 0; k < N * T * PIXELS; k++)
        x[k] = (float)at_rng_uniform(&rng);
    for (int k = 0; k < N * CLASSES; k++)
        d[k] = (float)at_rng_normal(&rng);
    for (int i = 0; i < N * T; i++)
        for (int j = 0; j < CLASSES; j++)
            dt[i * CLASSES + j] = d[(i / T) * CLASSES + j] / T;
    CHECK_OK(at_forward(pc, x, N * T, AT_BN_EVAL), NULL);
    CHECK_OK(at_forward(pk, x, N, AT_BN_EVAL), NULL);
    CHECK_OK(at_backward(pc, dt, AT_GRAD_INPUT), NULL);
    CHECK_OK(at_backward(pk, d, AT_GRAD_INPUT), NULL);
    const float *frames = at_pass_logits(pc), *mean = at_pass_logits(pk);
    for (int i = 0; i < N; i++)
        for (int j = 0; j < CLASSES; j++) {
            double sum = 0.0;
            for (int t = 0; t < T; t++)
                sum += frames[(i * T + t) * CLASSES + j];
            CHECK_CLOSE(mean[i * CLASSES + j], sum / T, 1e-6, 1e-6);
        }
    const float *ga = at_pass_input_grad(pc), *gb = at_pass_input_grad(pk);
    double scale = 0.0;
    for (int k = 0; k < N * T * PIXELS; k++)
        scale = fabs(ga[k]) > scale ? fabs(ga[k]) : scale;
    CHECK(scale > 0.0);
    for (int k = 0; k < N * T * PIXELS; k++)
        CHECK_CLOSE(gb[k], ga[k], 1e-6 * scale, 0);
    at_pass_free(pc);
    at_pass_free(pk);
    at_model_free(cnn);
    at_model_free(clip);
}

TEST(clip_model_loads_a_smallcnn_checkpoint)
{
    at_model *cnn = trained_looking_smallcnn(), *clip = create("smallcnn-clip", 4, 9);
    REQUIRE(cnn && clip);
    char dir[64] = "/tmp/advtrain-test-clips-XXXXXX", path[128];
    REQUIRE(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/smallcnn.safetensors", dir);
    at_error err;
    CHECK_OK(at_checkpoint_save(path, cnn, NULL, NULL, 0, &err), &err);
    CHECK_OK(at_checkpoint_load(path, clip, NULL, NULL, &err), &err);
    size_t np;
    float *wa = at_model_params(cnn, &np), *wb = at_model_params(clip, NULL);
    CHECK(memcmp(wa, wb, np * sizeof(float)) == 0);
    remove(path);
    rmdir(dir);
    at_model_free(cnn);
    at_model_free(clip);
}

TEST_MAIN(TEST_ENTRY(clips_are_reproducible_and_pinned),
          TEST_ENTRY(clips_hold_the_item_moving_and_bouncing),
          TEST_ENTRY(clips_refuse_bad_arguments), TEST_ENTRY(clips_open_by_name),
          TEST_ENTRY(fashion_mnist_clips),
          TEST_ENTRY(clip_model_has_smallcnns_state_dict_and_initialisation),
          TEST_ENTRY(clip_model_on_equal_frames_is_smallcnn),
          TEST_ENTRY(clip_model_averages_distinct_frames),
          TEST_ENTRY(clip_model_loads_a_smallcnn_checkpoint))
