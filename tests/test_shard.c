/* test_shard.c: passes whose batch is shared by several processes (at_shard), each process played
 * by a thread with its own replica of the model and an allgather made of a barrier. With even
 * shards the weight gradients, batch-norm running statistics, logits and input gradients are
 * bit-identical to one process running the whole batch (synchronised batch norm), for 2 and 4
 * shares and through every convolution path, batch norm, PReLU and the linear layer; per-shard
 * batch norm, uneven shards and allreduce sums keep the replicas equal to each other (the last
 * two within rounding of one process); a failed exchange is an
 * error of the pass, not a hang or a wrong gradient. 64 rows: shards of 16 put rows at other
 * positions of the linear layer's blocks of 32 than one process does. */
#include "test.h"

#include "advtrain.h"

#include <pthread.h>
#include <stdint.h>

enum { ROWS = 64, MAX_RANKS = 4, STAGE_BYTES = 1 << 22 };

typedef struct exchange {
    pthread_barrier_t barrier;
    int ranks;
    int fail_at;         /* the call that fails (every rank sees it fail), or -1 */
    int calls[MAX_RANKS];
    size_t bytes[MAX_RANKS];
    unsigned char *stage; /* MAX_RANKS x STAGE_BYTES */
} exchange;

typedef struct member {
    exchange *x;
    int rank;
} member;

static int thread_allgather(void *user, const void *mine, void *all, size_t bytes)
{
    member *me = user;
    exchange *x = me->x;
    if (bytes > STAGE_BYTES)
        return 1;
    int call = x->calls[me->rank]++;
    memcpy(x->stage + (size_t)me->rank * STAGE_BYTES, mine, bytes);
    x->bytes[me->rank] = bytes;
    pthread_barrier_wait(&x->barrier);
    bool same = true;
    for (int r = 0; r < x->ranks; r++) {
        same = same && x->bytes[r] == bytes;
        memcpy((unsigned char *)all + (size_t)r * bytes, x->stage + (size_t)r * STAGE_BYTES, bytes);
    }
    pthread_barrier_wait(&x->barrier);
    return !same || call == x->fail_at;
}

/* The sum over the threads, in rank order, of an allgather. */
static int thread_allreduce(void *user, void *data, size_t count, bool doubles)
{
    member *me = user;
    const size_t size = doubles ? sizeof(double) : sizeof(float), bytes = count * size;
    unsigned char *all = malloc(bytes * (size_t)me->x->ranks);
    int status = !all || thread_allgather(user, data, all, bytes);
    for (size_t j = 0; !status && j < count; j++) {
        double sum = 0.0;
        float fsum = 0.0f;
        for (int r = 0; r < me->x->ranks; r++) {
            if (doubles)
                sum += ((const double *)(const void *)all)[(size_t)r * count + j];
            else
                fsum += ((const float *)(const void *)all)[(size_t)r * count + j];
        }
        if (doubles)
            ((double *)data)[j] = sum;
        else
            ((float *)data)[j] = fsum;
    }
    free(all);
    return status;
}

/* conv 3->32 (direct where available) -> BN -> PReLU(32) -> conv 32->32 padded, even output
 * (Winograd where available) -> BN -> ReLU -> conv 32->4 1x1 (matrix product) -> max-pool ->
 * flatten -> linear 64 -> 10 */
static at_model *model_of(uint64_t seed)
{
    at_model *m = NULL;
    at_error err;
    CHECK_OK(at_model_begin(&m, 3, 8, 8, &err), &err);
    if (!m)
        return NULL;
    int x = at_add_conv2d(m, 0, "conv1", 32, 3, 1, 1, true);
    x = at_add_batchnorm2d(m, x, "bn1");
    x = at_add_prelu(m, x, "act", 32);
    x = at_add_conv2d(m, x, "conv2", 32, 3, 1, 1, false);
    x = at_add_batchnorm2d(m, x, "bn2");
    x = at_add_relu(m, x);
    x = at_add_conv2d(m, x, "conv3", 4, 1, 1, 0, true);
    x = at_add_maxpool2d(m, x, 2, 2);
    x = at_add_flatten(m, x);
    at_add_linear(m, x, "fc", 10, true);
    CHECK_OK(at_model_finish(m, seed, &err), &err);
    return m;
}

static float value_at(uint64_t i)
{
    i = (i + 1) * 0x9E3779B97F4A7C15ull;
    i ^= i >> 31;
    i *= 0xBF58476D1CE4E5B9ull;
    i ^= i >> 29;
    return (float)((double)(i >> 11) / 9007199254740992.0 - 0.5);
}

/* What a replica ends with after one training forward and backward of its rows. */
typedef struct outcome {
    int status;
    float *grads, *buffers;
    size_t n_params, n_buffers;
    float logits[ROWS * 10], input_grad[ROWS * 3 * 8 * 8];
} outcome;

typedef struct job {
    member me;
    int first, rows;
    bool shared, sync_bn, even, allreduce;
    outcome *out;
} job;

static void *run_replica(void *arg)
{
    job *j = arg;
    outcome *o = j->out;
    at_error err;
    at_model *m = model_of(5);
    at_pass *p = NULL;
    at_shard *shard = NULL;
    o->status = -100;
    if (!m || at_pass_create(&p, m, j->rows, 0, &err))
        goto done;
    if (j->shared) {
        at_collective c = {j->me.rank, j->me.x->ranks, thread_allgather, thread_allreduce, &j->me};
        if (at_shard_create(&shard, &c, j->sync_bn, &err) ||
            at_shard_use_allreduce(shard, j->allreduce))
            goto done;
        at_shard_set_even(shard, j->even);
        at_model_set_shard(m, shard);
    }
    const size_t image = 3 * 8 * 8;
    float x[ROWS * 3 * 8 * 8], dlogits[ROWS * 10];
    for (int i = 0; i < j->rows; i++) {
        for (size_t e = 0; e < image; e++)
            x[(size_t)i * image + e] = 2.0f * value_at((size_t)(j->first + i) * image + e);
        for (int k = 0; k < 10; k++)
            dlogits[i * 10 + k] = value_at(1000000 + (j->first + i) * 10 + k) / ROWS;
    }
    at_model_zero_grad(m);
    o->status = at_forward(p, x, j->rows, AT_BN_TRAIN);
    if (!o->status) {
        memcpy(o->logits + j->first * 10, at_pass_logits(p), (size_t)j->rows * 10 * sizeof(float));
        o->status = at_backward(p, dlogits, AT_GRAD_WEIGHTS | AT_GRAD_INPUT);
    }
    if (!o->status) {
        memcpy(o->input_grad + (size_t)j->first * image, at_pass_input_grad(p),
               (size_t)j->rows * image * sizeof(float));
        const float *grads = at_model_grads(m, &o->n_params);
        o->grads = malloc(o->n_params * sizeof(float));
        memcpy(o->grads, grads, o->n_params * sizeof(float));
        o->buffers = malloc(4096 * sizeof(float));
        o->n_buffers = 0;
        for (int t = 0; t < at_model_tensor_count(m); t++) {
            at_tensor_info info = at_model_tensor(m, t);
            if (info.is_param || info.dtype != AT_F32 || o->n_buffers + info.numel > 4096)
                continue;
            memcpy(o->buffers + o->n_buffers, info.data, info.numel * sizeof(float));
            o->n_buffers += info.numel;
        }
    }
done:
    at_pass_free(p);
    at_model_free(m);
    at_shard_free(shard);
    return NULL;
}

/* Runs the batch split into `ranks` shards of the given sizes (NULL: even), one thread each;
 * ranks 0 is one process without a shard. */
static void run_with(int ranks, const int *sizes, bool sync_bn, bool allreduce, int fail_at,
                     outcome *out)
{
    exchange x = {.ranks = ranks > 0 ? ranks : 1, .fail_at = fail_at};
    x.stage = malloc((size_t)MAX_RANKS * STAGE_BYTES);
    pthread_barrier_init(&x.barrier, NULL, (unsigned)x.ranks);
    job jobs[MAX_RANKS];
    pthread_t threads[MAX_RANKS];
    int first = 0;
    for (int r = 0; r < x.ranks; r++) {
        int rows = sizes ? sizes[r] : ROWS / x.ranks;
        memset(&out[r], 0, sizeof out[r]);
        jobs[r] = (job){{&x, r}, first, rows, ranks > 0, sync_bn, sizes == NULL, allreduce, &out[r]};
        first += rows;
        pthread_create(&threads[r], NULL, run_replica, &jobs[r]);
    }
    for (int r = 0; r < x.ranks; r++)
        pthread_join(threads[r], NULL);
    /* every replica saw only its rows: gather them into rank 0's outcome */
    for (int r = 1; r < x.ranks; r++) {
        const size_t image = 3 * 8 * 8;
        memcpy(out[0].logits + jobs[r].first * 10, out[r].logits + jobs[r].first * 10,
               (size_t)jobs[r].rows * 10 * sizeof(float));
        memcpy(out[0].input_grad + jobs[r].first * image, out[r].input_grad + jobs[r].first * image,
               (size_t)jobs[r].rows * image * sizeof(float));
    }
    pthread_barrier_destroy(&x.barrier);
    free(x.stage);
}

static void run(int ranks, const int *sizes, bool sync_bn, int fail_at, outcome *out)
{
    run_with(ranks, sizes, sync_bn, false, fail_at, out);
}

static void release(outcome *o, int count)
{
    for (int r = 0; r < count; r++) {
        free(o[r].grads);
        free(o[r].buffers);
    }
}

static bool same_bits(const float *a, const float *b, size_t n)
{
    return a && b && memcmp(a, b, n * sizeof(float)) == 0;
}

static double max_relative(const float *a, const float *b, size_t n)
{
    double worst = 0.0, scale = 1e-3;
    for (size_t i = 0; i < n; i++)
        scale = fmax(scale, fabs(b[i]));
    for (size_t i = 0; i < n; i++)
        worst = fmax(worst, fabs((double)a[i] - b[i]) / scale);
    return worst;
}

TEST(even_shards_with_sync_bn_match_one_process_bit_for_bit)
{
    outcome one[1], many[MAX_RANKS];
    run(0, NULL, false, -1, one);
    REQUIRE(one[0].status == 0 && one[0].grads);
    for (int ranks = 1; ranks <= 4; ranks *= 2) {
        run(ranks, NULL, true, -1, many);
        for (int r = 0; r < ranks; r++) {
            CHECK_EQ_INT(many[r].status, 0);
            CHECK(same_bits(many[r].grads, one[0].grads, one[0].n_params));
            CHECK(same_bits(many[r].buffers, one[0].buffers, one[0].n_buffers));
        }
        CHECK(same_bits(many[0].logits, one[0].logits, ROWS * 10));
        CHECK(same_bits(many[0].input_grad, one[0].input_grad, ROWS * 3 * 8 * 8));
        release(many, ranks);
    }
    release(one, 1);
}

TEST(shard_bn_and_uneven_shards_keep_replicas_equal)
{
    outcome one[1], many[MAX_RANKS];
    run(0, NULL, false, -1, one);
    REQUIRE(one[0].status == 0 && one[0].grads);
    /* batch norm on each shard's own statistics: another gradient, the same on both replicas */
    run(2, NULL, false, -1, many);
    REQUIRE(many[0].grads && many[1].grads);
    CHECK(same_bits(many[0].grads, many[1].grads, one[0].n_params));
    CHECK(!same_bits(many[0].grads, one[0].grads, one[0].n_params));
    CHECK(!same_bits(many[0].buffers, many[1].buffers, one[0].n_buffers)); /* own statistics */
    release(many, 2);
    /* uneven shards, synchronised: one process's gradient up to rounding, equal replicas */
    const int sizes[3] = {21, 16, 27}; /* ROWS in all */
    run(3, sizes, true, -1, many);
    for (int r = 0; r < 3; r++) {
        REQUIRE(many[r].status == 0 && many[r].grads);
        CHECK(same_bits(many[r].grads, many[0].grads, one[0].n_params));
        CHECK(same_bits(many[r].buffers, many[0].buffers, one[0].n_buffers));
    }
    CHECK(max_relative(many[0].grads, one[0].grads, one[0].n_params) < 1e-5);
    CHECK(max_relative(many[0].input_grad, one[0].input_grad, ROWS * 3 * 8 * 8) < 1e-5);
    CHECK(max_relative(many[0].buffers, one[0].buffers, one[0].n_buffers) < 1e-5);
    release(many, 3);
    release(one, 1);
}

TEST(allreduce_sums_keep_replicas_equal_near_one_process)
{
    outcome one[1], many[MAX_RANKS];
    run(0, NULL, false, -1, one);
    REQUIRE(one[0].status == 0 && one[0].grads);
    run_with(4, NULL, true, true, -1, many);
    for (int r = 0; r < 4; r++) {
        REQUIRE(many[r].status == 0 && many[r].grads);
        CHECK(same_bits(many[r].grads, many[0].grads, one[0].n_params));
        CHECK(same_bits(many[r].buffers, many[0].buffers, one[0].n_buffers));
    }
    CHECK(max_relative(many[0].grads, one[0].grads, one[0].n_params) < 1e-5);
    CHECK(max_relative(many[0].buffers, one[0].buffers, one[0].n_buffers) < 1e-5);
    release(many, 4);
    release(one, 1);
}

TEST(a_failed_exchange_is_an_error_of_the_pass)
{
    outcome many[MAX_RANKS];
    for (int call = 0; call < 3; call++) {
        run(2, NULL, true, call, many);
        for (int r = 0; r < 2; r++)
            CHECK_EQ_INT(many[r].status, AT_ERR_IO);
        release(many, 2);
    }
}

TEST_MAIN(TEST_ENTRY(even_shards_with_sync_bn_match_one_process_bit_for_bit),
          TEST_ENTRY(shard_bn_and_uneven_shards_keep_replicas_equal),
          TEST_ENTRY(allreduce_sums_keep_replicas_equal_near_one_process),
          TEST_ENTRY(a_failed_exchange_is_an_error_of_the_pass))
