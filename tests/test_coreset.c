/* test_coreset.c: CRAIG's selection for adversarial coreset training (src/train/coreset.h). The
 * distances equal those of the explicit last-layer gradients; the lazy greedy chooses what plain
 * greedy (written here) chooses; tight clusters get one point each, weighted by their sizes; the
 * weighted subset approximates the gradient sum better than a random one; budgets and weights
 * add up; the bias-only proxy needs no embeddings; one thread or two give the same bits. */
#include "test.h"

#include "advtrain.h"
#include "train/coreset.h"

#include <omp.h>
#include <stdlib.h>

typedef struct problem {
    int n, k, h;
    float *probs, *emb;
    int32_t *labels;
} problem;

static problem alloc_problem(int n, int k, int h)
{
    problem p = {.n = n, .k = k, .h = h};
    p.probs = calloc((size_t)n * k, sizeof(float));
    p.emb = calloc((size_t)n * h + 1, sizeof(float));
    p.labels = calloc((size_t)n, sizeof(int32_t));
    return p;
}

static void free_problem(problem *p)
{
    free(p->probs);
    free(p->emb);
    free(p->labels);
}

static void softmax(const double *z, int k, float *p)
{
    double top = z[0], sum = 0.0;
    for (int c = 1; c < k; c++)
        top = z[c] > top ? z[c] : top;
    for (int c = 0; c < k; c++)
        sum += exp(z[c] - top);
    for (int c = 0; c < k; c++)
        p[c] = (float)(exp(z[c] - top) / sum);
}

/* Softmax of logits of scale 2, uniform labels, ReLU(N(0, 1)) embeddings. */
static problem random_problem(int n, int k, int h, uint64_t seed)
{
    problem p = alloc_problem(n, k, h);
    at_rng r;
    at_rng_seed(&r, seed);
    double z[64];
    for (int i = 0; i < n; i++) {
        p.labels[i] = (int32_t)at_rng_below(&r, (uint32_t)k);
        for (int c = 0; c < k; c++)
            z[c] = 2.0 * at_rng_normal(&r);
        softmax(z, k, p.probs + (size_t)i * k);
        for (int c = 0; c < h; c++)
            p.emb[(size_t)i * h + c] = (float)fmax(0.0, at_rng_normal(&r));
    }
    return p;
}

static at_coreset_input input_of(const problem *p, bool bias_only)
{
    return (at_coreset_input){.n = p->n, .classes = p->k, .embed = p->h, .probs = p->probs,
                              .labels = p->labels, .embeddings = p->emb, .bias_only = bias_only};
}

/* g_i = [e_i ; e_i (outer) h_i] in double, K (H + 1) values (H = 0: the bias part alone). */
static void explicit_gradient(const problem *p, int i, int h, double *g)
{
    for (int c = 0; c < p->k; c++) {
        double e = (double)p->probs[(size_t)i * p->k + c] - (c == p->labels[i]);
        g[c] = e;
        for (int t = 0; t < h; t++)
            g[p->k + c * h + t] = e * p->emb[(size_t)i * p->h + t];
    }
}

/* e_i = p_i - onehot(y_i) for every point, as the library forms it. */
static float *errors_of(const problem *p)
{
    float *e = malloc((size_t)p->n * p->k * sizeof(float));
    for (int i = 0; i < p->n; i++)
        for (int c = 0; c < p->k; c++)
            e[(size_t)i * p->k + c] = p->probs[(size_t)i * p->k + c] - (float)(c == p->labels[i]);
    return e;
}

static int select_points(const problem *p, bool bias_only, double fraction, int32_t *sel,
                         float *w)
{
    at_coreset_input in = input_of(p, bias_only);
    at_error err = {0};
    int count = at_coreset_select(&in, fraction, sel, w, &err);
    if (count < 0)
        TEST_FAIL_("at_coreset_select: %s", err.message);
    return count;
}

TEST(fraction_one_selects_every_point_with_weight_one)
{
    problem p = random_problem(200, 4, 8, 1);
    int32_t sel[200];
    float w[200];
    for (int bias = 0; bias < 2; bias++) {
        REQUIRE(select_points(&p, bias, 1.0, sel, w) == 200);
        for (int i = 0; i < 200; i++) {
            CHECK_EQ_INT(sel[i], i);
            CHECK(w[i] == 1.0f);
        }
    }
    free_problem(&p);
}

TEST(budgets_are_proportional_add_up_and_give_every_class_one)
{
    int b[5];
    at_coreset_budgets((int[]){50, 30, 20}, 3, 10, b);
    CHECK(b[0] == 5 && b[1] == 3 && b[2] == 2);
    at_coreset_budgets((int[]){3, 3, 3}, 3, 4, b); /* equal remainders: the lower class */
    CHECK(b[0] == 2 && b[1] == 1 && b[2] == 1);
    at_coreset_budgets((int[]){10, 25, 65}, 3, 7, b); /* quotas 0.7, 1.75, 4.55 */
    CHECK(b[0] == 1 && b[1] == 2 && b[2] == 4);
    at_coreset_budgets((int[]){0, 1, 1, 97, 1}, 5, 5, b); /* quotas 0, .05, .05, 4.85, .05 */
    CHECK(b[0] == 0 && b[1] == 1 && b[2] == 1 && b[3] == 2 && b[4] == 1);
}

/* Unbalanced classes, one of a single point and one empty: each class gets its budget, weights
 * are cluster sizes within the class. */
TEST(weights_sum_to_n_and_each_class_gets_its_budget)
{
    enum { N = 500, K = 5 };
    problem p = random_problem(N, K, 6, 2);
    for (int i = 0; i < N; i++)
        p.labels[i] = i == 7 ? 4 : (i % 10 < 6 ? 0 : (i % 10 < 9 ? 1 : 3)); /* class 2 empty */
    int sizes[K] = {0}, budgets[K];
    for (int i = 0; i < N; i++)
        sizes[p.labels[i]]++;
    const double fractions[3] = {0.3, 0.05, 0.001};
    for (int f = 0; f < 3; f++) {
        int32_t sel[N];
        float w[N];
        int count = select_points(&p, false, fractions[f], sel, w);
        int total = (int)llround(fractions[f] * N);
        CHECK_EQ_INT(count, total > 4 ? total : 4); /* at least one per class present */
        at_coreset_budgets(sizes, K, count, budgets);
        int picked[K] = {0};
        double weight[K] = {0}, sum = 0.0;
        for (int s = 0; s < count; s++) {
            CHECK(s == 0 || sel[s] > sel[s - 1]);
            CHECK(w[s] >= 1.0f && w[s] == floorf(w[s]));
            picked[p.labels[sel[s]]]++;
            weight[p.labels[sel[s]]] += w[s];
            sum += w[s];
        }
        CHECK_EQ_INT((int)sum, N);
        for (int c = 0; c < K; c++) {
            CHECK_EQ_INT(picked[c], budgets[c]);
            CHECK_EQ_INT((int)weight[c], sizes[c]);
        }
    }
    free_problem(&p);
}

/* The distance matrix against ||g_i - g_j|| of the explicit gradients, across row blocks. */
TEST(distances_equal_those_of_the_explicit_gradients)
{
    enum { N = 300, K = 5, H = 7, G = K * (H + 1) };
    problem p = random_problem(N, K, H, 3);
    float *e = errors_of(&p), *d = malloc((size_t)N * N * sizeof(float));
    double *g = malloc((size_t)N * G * sizeof(double));
    for (int bias = 0; bias < 2; bias++) {
        const int h = bias ? 0 : H, dim = K * (h + 1);
        float d_max = -1.0f;
        CHECK_OK(at_coreset_distances(e, bias ? NULL : p.emb, N, K, H, d, &d_max), NULL);
        for (int i = 0; i < N; i++)
            explicit_gradient(&p, i, h, g + (size_t)i * G);
        float largest = 0.0f;
        int bad = 0;
        for (int i = 0; i < N; i++)
            for (int j = 0; j < N; j++) {
                double exact = 0.0, ni = 0.0, nj = 0.0;
                for (int t = 0; t < dim; t++) {
                    double a = g[(size_t)i * G + t], b = g[(size_t)j * G + t];
                    exact += (a - b) * (a - b);
                    ni += a * a;
                    nj += b * b;
                }
                double got = d[(size_t)i * N + j];
                bad += !(fabs(got * got - exact) <= 1e-5 * (ni + nj) + 1e-12);
                bad += got != d[(size_t)j * N + i];
                largest = got > largest ? (float)got : largest;
            }
        CHECK_EQ_INT(bad, 0);
        for (int i = 0; i < N; i++)
            CHECK(d[(size_t)i * N + i] == 0.0f);
        CHECK(d_max == largest);
    }
    free(g);
    free(d);
    free(e);
    free_problem(&p);
}

/* Plain greedy: the argmax of the gains of the points not yet chosen, ties to the lower index;
 * then every point to its nearest chosen point (ties to the lower index; a chosen point to
 * itself). */
static void plain_greedy(const float *d, int n, float d_max, int budget, int32_t *order,
                         int32_t *assign)
{
    float *m = malloc((size_t)n * sizeof(float));
    bool *taken = calloc((size_t)n, sizeof(bool));
    for (int i = 0; i < n; i++)
        m[i] = d_max;
    for (int s = 0; s < budget; s++) {
        int best = -1;
        double best_gain = -1.0;
        for (int j = 0; j < n; j++) {
            double gain = taken[j] ? -1.0 : at_coreset_gain(d + (size_t)j * n, m, n);
            if (gain > best_gain) {
                best = j;
                best_gain = gain;
            }
        }
        order[s] = best;
        taken[best] = true;
        for (int i = 0; i < n; i++)
            m[i] = fminf(m[i], d[(size_t)best * n + i]);
    }
    for (int i = 0; i < n; i++) {
        assign[i] = -1;
        for (int j = 0; j < n; j++)
            if (taken[j] && (assign[i] < 0 || d[(size_t)i * n + j] < d[(size_t)i * n + assign[i]]))
                assign[i] = j;
        if (taken[i])
            assign[i] = i;
    }
    free(m);
    free(taken);
}

TEST(lazy_greedy_chooses_what_plain_greedy_chooses)
{
    const int sizes[5] = {1, 2, 17, 60, 150};
    for (int trial = 0; trial < 10; trial++) {
        const int n = sizes[trial % 5], k = 3 + trial % 4, h = trial % 3 == 0 ? 0 : 5;
        problem p = random_problem(n, k, h, 100 + (uint64_t)trial);
        for (int i = 0; i < n; i++)
            p.labels[i] = 0;
        /* duplicated points make exact ties in distances and gains */
        for (int i = 1; i < n; i += 4) {
            memcpy(p.probs + (size_t)i * k, p.probs + (size_t)(i - 1) * k,
                   (size_t)k * sizeof(float));
            memcpy(p.emb + (size_t)i * h, p.emb + (size_t)(i - 1) * h, (size_t)h * sizeof(float));
        }
        float *e = errors_of(&p), *d = malloc((size_t)n * n * sizeof(float)), d_max;
        CHECK_OK(at_coreset_distances(e, h ? p.emb : NULL, n, k, h, d, &d_max), NULL);
        int32_t *o1 = malloc((size_t)n * 4 * sizeof(int32_t));
        int32_t *o2 = o1 + n, *a1 = o2 + n, *a2 = a1 + n;
        const int budgets[3] = {1, (n + 2) / 3, n};
        for (int b = 0; b < 3; b++) {
            plain_greedy(d, n, d_max, budgets[b], o1, a1);
            CHECK_OK(at_coreset_greedy(d, n, d_max, budgets[b], o2, a2), NULL);
            if (memcmp(o1, o2, (size_t)budgets[b] * sizeof(int32_t)) != 0 ||
                memcmp(a1, a2, (size_t)n * sizeof(int32_t)) != 0)
                TEST_FAIL_("n %d, budget %d: lazy greedy differs from plain greedy", n, budgets[b]);
        }
        free(o1);
        free(d);
        free(e);
        free_problem(&p);
    }
}

/* Tight clusters far apart, interleaved in index order, one class or two: one point of each
 * cluster, weighted by the cluster's size. */
TEST(tight_clusters_get_one_point_each_weighted_by_their_size)
{
    enum { K = 3, H = 6, CLUSTERS = 6 };
    const int size[CLUSTERS] = {3, 7, 12, 20, 8, 10}; /* 60 points */
    const int label_of[2][CLUSTERS] = {{0, 0, 0, 0, 0, 0}, {0, 1, 0, 1, 1, 0}}; /* 30 and 30 */
    for (int two = 0; two < 2; two++) {
        problem p = alloc_problem(60, K, H);
        at_rng r;
        at_rng_seed(&r, 7);
        double centre[CLUSTERS][K + H];
        for (int c = 0; c < CLUSTERS; c++)
            for (int t = 0; t < K + H; t++)
                centre[c][t] = t < K ? 3.0 * at_rng_normal(&r) : 4.0 * at_rng_uniform(&r);
        int cluster[60], filled[CLUSTERS] = {0};
        for (int i = 0; i < 60;) { /* interleave the clusters in index order */
            int c = (int)at_rng_below(&r, CLUSTERS);
            if (filled[c] == size[c])
                continue;
            filled[c]++;
            cluster[i] = c;
            p.labels[i] = label_of[two][c];
            double z[K];
            for (int t = 0; t < K; t++)
                z[t] = centre[c][t] + 1e-3 * at_rng_normal(&r);
            softmax(z, K, p.probs + (size_t)i * K);
            for (int t = 0; t < H; t++)
                p.emb[(size_t)i * H + t] = (float)(centre[c][K + t] + 1e-3 * at_rng_normal(&r));
            i++;
        }
        int32_t sel[60];
        float w[60];
        REQUIRE(select_points(&p, false, CLUSTERS / 60.0, sel, w) == CLUSTERS);
        int seen[CLUSTERS] = {0};
        for (int s = 0; s < CLUSTERS; s++) {
            int c = cluster[sel[s]];
            seen[c]++;
            CHECK_EQ_INT((int)w[s], size[c]);
        }
        for (int c = 0; c < CLUSTERS; c++)
            CHECK_EQ_INT(seen[c], 1);
        free_problem(&p);
    }
}

/* ||G - G_S|| / ||G|| with G the sum of the explicit gradients and G_S a weighted subset sum. */
static double sum_error(const problem *p, const int32_t *sel, const float *w, int count)
{
    const int dim = p->k * (p->h + 1);
    double *g = malloc((size_t)dim * sizeof(double)), *full = calloc((size_t)dim, sizeof(double));
    double *part = calloc((size_t)dim, sizeof(double));
    for (int i = 0; i < p->n; i++) {
        explicit_gradient(p, i, p->h, g);
        for (int t = 0; t < dim; t++)
            full[t] += g[t];
    }
    for (int s = 0; s < count; s++) {
        explicit_gradient(p, sel[s], p->h, g);
        for (int t = 0; t < dim; t++)
            part[t] += w[s] * g[t];
    }
    double num = 0.0, den = 0.0;
    for (int t = 0; t < dim; t++) {
        num += (full[t] - part[t]) * (full[t] - part[t]);
        den += full[t] * full[t];
    }
    free(g);
    free(full);
    free(part);
    return sqrt(num / den);
}

TEST(the_weighted_subset_approximates_the_gradient_sum_better_than_a_random_one)
{
    enum { N = 500, SEEDS = 5, DRAWS = 20 };
    const double fraction = 0.1;
    double craig = 0.0, random = 0.0;
    for (int seed = 0; seed < SEEDS; seed++) {
        problem p = random_problem(N, 5, 8, 200 + (uint64_t)seed);
        int32_t sel[N], perm[N];
        float w[N];
        int count = select_points(&p, false, fraction, sel, w);
        REQUIRE(count == 50);
        craig += sum_error(&p, sel, w, count) / SEEDS;
        at_rng r;
        at_rng_seed(&r, 300 + (uint64_t)seed);
        for (int draw = 0; draw < DRAWS; draw++) {
            for (int i = 0; i < N; i++)
                perm[i] = i;
            at_rng_shuffle(&r, perm, N);
            for (int s = 0; s < count; s++)
                w[s] = (float)N / count;
            random += sum_error(&p, perm, w, count) / (SEEDS * DRAWS);
        }
        free_problem(&p);
    }
    printf("    relative error of the gradient sum: CRAIG %.4f, random %.4f\n", craig, random);
    CHECK(craig < random);
}

/* Bias-only mode reads no embeddings: NULL, zeros or anything give the same selection, the same
 * as the full gradient of zero embeddings (whose weight part vanishes). */
TEST(bias_only_needs_no_embeddings)
{
    enum { N = 300 };
    problem p = random_problem(N, 4, 5, 4), z = random_problem(N, 4, 5, 4);
    memset(z.emb, 0, (size_t)N * 5 * sizeof(float));
    int32_t s1[N], s2[N], s3[N];
    float w1[N], w2[N], w3[N];
    at_coreset_input in = input_of(&p, true);
    in.embeddings = NULL;
    in.embed = 0;
    at_error err = {0};
    int c1 = at_coreset_select(&in, 0.2, s1, w1, &err);
    int c2 = select_points(&p, true, 0.2, s2, w2);
    int c3 = select_points(&z, false, 0.2, s3, w3);
    CHECK_EQ_INT(c1, 60);
    REQUIRE(c1 == c2 && c1 == c3);
    const size_t is = (size_t)c1 * sizeof(int32_t), ws = (size_t)c1 * sizeof(float);
    CHECK(memcmp(s1, s2, is) == 0 && memcmp(w1, w2, ws) == 0);
    CHECK(memcmp(s1, s3, is) == 0 && memcmp(w1, w3, ws) == 0);
    /* and the weight part does change the selection */
    int c4 = select_points(&p, false, 0.2, s3, w3);
    CHECK(c4 == c1 && memcmp(s1, s3, is) != 0);
    free_problem(&p);
    free_problem(&z);
}

TEST(one_thread_or_two_give_the_same_bits)
{
    enum { N = 2000, K = 3, H = 40 }; /* classes of about 670 points: several row blocks */
    problem p = random_problem(N, K, H, 5);
    int32_t *sel[2];
    float *w[2];
    int count[2];
    int saved = omp_get_max_threads();
    for (int t = 0; t < 2; t++) {
        omp_set_num_threads(t + 1);
        sel[t] = malloc(N * sizeof(int32_t));
        w[t] = malloc(N * sizeof(float));
        count[t] = select_points(&p, false, 0.37, sel[t], w[t]);
    }
    omp_set_num_threads(saved);
    CHECK_EQ_INT(count[0], 740);
    REQUIRE(count[0] == count[1]);
    CHECK(memcmp(sel[0], sel[1], (size_t)count[0] * sizeof(int32_t)) == 0);
    CHECK(memcmp(w[0], w[1], (size_t)count[0] * sizeof(float)) == 0);
    for (int t = 0; t < 2; t++) {
        free(sel[t]);
        free(w[t]);
    }
    free_problem(&p);
}

TEST(bad_inputs_are_refused_with_a_message)
{
    problem p = random_problem(20, 3, 4, 6);
    int32_t sel[20];
    float w[20];
    at_error err;
    at_coreset_input in = input_of(&p, false);
    const double fractions[4] = {0.0, -0.5, 1.5, NAN};
    for (int f = 0; f < 4; f++) {
        CHECK_EQ_INT(at_coreset_select(&in, fractions[f], sel, w, &err), AT_ERR_ARG);
        CHECK(strstr(err.message, "fraction") != NULL);
    }
    in.n = 0;
    CHECK_EQ_INT(at_coreset_select(&in, 0.5, sel, w, &err), AT_ERR_ARG);
    in.n = 20;
    in.embeddings = NULL;
    CHECK_EQ_INT(at_coreset_select(&in, 0.5, sel, w, &err), AT_ERR_ARG);
    CHECK(strstr(err.message, "embeddings") != NULL);
    in.embeddings = p.emb;
    CHECK_EQ_INT(at_coreset_select(NULL, 0.5, sel, w, &err), AT_ERR_ARG);
    CHECK_EQ_INT(at_coreset_select(&in, 0.5, NULL, w, &err), AT_ERR_ARG);
    const int32_t bad_labels[2] = {-1, 3};
    for (int b = 0; b < 2; b++) {
        p.labels[11] = bad_labels[b];
        CHECK_EQ_INT(at_coreset_select(&in, 0.5, sel, w, &err), AT_ERR_ARG);
        CHECK(strstr(err.message, "label") != NULL && strstr(err.message, "point 11") != NULL);
    }
    p.labels[11] = 2;
    p.probs[5 * 3 + 1] = NAN;
    CHECK_EQ_INT(at_coreset_select(&in, 0.5, sel, w, &err), AT_ERR_NUMERIC);
    CHECK(strstr(err.message, "probability") != NULL && strstr(err.message, "point 5") != NULL);
    p.probs[5 * 3 + 1] = 0.25f;
    p.emb[9 * 4 + 3] = INFINITY;
    CHECK_EQ_INT(at_coreset_select(&in, 0.5, sel, w, &err), AT_ERR_NUMERIC);
    CHECK(strstr(err.message, "embedding") != NULL && strstr(err.message, "point 9") != NULL);
    p.emb[9 * 4 + 3] = 3e19f; /* finite, but its square overflows the float sums */
    CHECK_EQ_INT(at_coreset_select(&in, 0.5, sel, w, &err), AT_ERR_NUMERIC);
    CHECK(strstr(err.message, "too large") != NULL);
    /* bias-only mode does not look at the embeddings */
    in.bias_only = true;
    CHECK_EQ_INT(at_coreset_select(&in, 0.5, sel, w, &err), 10);
    free_problem(&p);
}

TEST_MAIN(TEST_ENTRY(fraction_one_selects_every_point_with_weight_one),
          TEST_ENTRY(budgets_are_proportional_add_up_and_give_every_class_one),
          TEST_ENTRY(weights_sum_to_n_and_each_class_gets_its_budget),
          TEST_ENTRY(distances_equal_those_of_the_explicit_gradients),
          TEST_ENTRY(lazy_greedy_chooses_what_plain_greedy_chooses),
          TEST_ENTRY(tight_clusters_get_one_point_each_weighted_by_their_size),
          TEST_ENTRY(the_weighted_subset_approximates_the_gradient_sum_better_than_a_random_one),
          TEST_ENTRY(bias_only_needs_no_embeddings),
          TEST_ENTRY(one_thread_or_two_give_the_same_bits),
          TEST_ENTRY(bad_inputs_are_refused_with_a_message))
