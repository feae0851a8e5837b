/* test.h: a tiny test harness. A test program is a list of TEST functions registered in a table;
 * main() runs them all (or those whose names contain argv[1]) and exits non-zero when any check
 * failed, printing the expression, both values, file and line of each failure.
 *
 *   TEST(adds_up) { CHECK_EQ_INT(1 + 1, 2); }
 *   TEST_MAIN(TEST_ENTRY(adds_up))
 */
#ifndef AT_TEST_H
#define AT_TEST_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int test_failures_;
static const char *test_current_;

#define TEST(name) static void name(void)
#define TEST_ENTRY(name) {#name, name}

#define TEST_FAIL_(...)                                                                  \
    do {                                                                                 \
        fprintf(stderr, "FAIL %s (%s:%d): ", test_current_, __FILE__, __LINE__);       \
        fprintf(stderr, __VA_ARGS__);                                                    \
        fprintf(stderr, "\n");                                                           \
        test_failures_++;                                                                \
    } while (0)

#define CHECK(cond)                                      \
    do {                                                 \
        if (!(cond))                                     \
            TEST_FAIL_("CHECK(%s)", #cond);              \
    } while (0)

#define CHECK_EQ_INT(a, b)                                                              \
    do {                                                                                \
        long long a_ = (long long)(a), b_ = (long long)(b);                             \
        if (a_ != b_)                                                                   \
            TEST_FAIL_("%s == %s: %lld != %lld", #a, #b, a_, b_);                       \
    } while (0)

#define CHECK_STR_EQ(a, b)                                                              \
    do {                                                                                \
        const char *a_ = (a), *b_ = (b);                                                \
        if (!a_ || !b_ || strcmp(a_, b_) != 0)                                          \
            TEST_FAIL_("%s == %s: \"%s\" != \"%s\"", #a, #b, a_ ? a_ : "(null)",        \
                       b_ ? b_ : "(null)");                                             \
    } while (0)

/* |a - b| <= atol + rtol * |b| */
#define CHECK_CLOSE(a, b, atol, rtol)                                                   \
    do {                                                                                \
        double a_ = (double)(a), b_ = (double)(b);                                      \
        if (!(fabs(a_ - b_) <= (atol) + (rtol) * fabs(b_)))                             \
            TEST_FAIL_("%s ~ %s: %.9g vs %.9g (diff %.3g)", #a, #b, a_, b_, fabs(a_ - b_)); \
    } while (0)

/* A call returning an at_status that must succeed; prints the error message otherwise. */
#define CHECK_OK(call, errp)                                                            \
    do {                                                                                \
        int s_ = (call);                                                                \
        const at_error *e_ = (errp);                                                    \
        if (s_ != 0)                                                                    \
            TEST_FAIL_("%s returned %d: %s", #call, s_, e_ ? e_->message : "");         \
    } while (0)

/* Fatal variant: stops the current test (e.g. when later checks would dereference NULL). */
#define REQUIRE(cond)                                    \
    do {                                                 \
        if (!(cond)) {                                   \
            TEST_FAIL_("REQUIRE(%s)", #cond);            \
            return;                                      \
        }                                                \
    } while (0)

typedef struct test_entry_ {
    const char *name;
    void (*fn)(void);
} test_entry_;

#define TEST_MAIN(...)                                                                  \
    int main(int argc, char **argv)                                                     \
    {                                                                                   \
        static const test_entry_ tests[] = {__VA_ARGS__};                               \
        int ran = 0;                                                                    \
        for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++) {                   \
            if (argc > 1 && !strstr(tests[i].name, argv[1]))                            \
                continue;                                                               \
            test_current_ = tests[i].name;                                              \
            int before = test_failures_;                                                \
            tests[i].fn();                                                              \
            printf("%s %s\n", test_failures_ == before ? "ok  " : "FAIL", tests[i].name); \
            ran++;                                                                      \
        }                                                                               \
        if (ran == 0) {                                                                 \
            fprintf(stderr, "no test matches '%s'\n", argc > 1 ? argv[1] : "");         \
            return 1;                                                                   \
        }                                                                               \
        printf("%d test(s), %d failure(s)\n", ran, test_failures_);                     \
        return test_failures_ ? 1 : 0;                                                  \
    }

#endif
