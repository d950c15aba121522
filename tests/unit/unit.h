/*
 * unit.h - the project's minimal unit-test harness.
 *
 * A test file defines static test functions and runs them from main() with
 * UNIT_RUN(fn). CHECK() records a failure with file and line and lets the test
 * go on; REQUIRE() ends the current test. UNIT_END() prints the closing line
 * "name: N passed, N failed" and returns the process exit status.
 */
#ifndef SLUICE_TESTS_UNIT_H
#define SLUICE_TESTS_UNIT_H

#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int unit_passed, unit_failed, unit_cur_failed;
static jmp_buf unit_jmp;

#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (!(cond)) {                                                               \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
            unit_cur_failed = 1;                                                     \
        }                                                                            \
    } while (0)

#define CHECK_EQ_INT(a, b)                                                                                \
    do {                                                                                                  \
        long long unit_a_ = (long long)(a), unit_b_ = (long long)(b);                                     \
        if (unit_a_ != unit_b_) {                                                                         \
            fprintf(stderr, "%s:%d: CHECK failed: %s == %s (%lld != %lld)\n", __FILE__, __LINE__, #a, #b, \
                    unit_a_, unit_b_);                                                                    \
            unit_cur_failed = 1;                                                                          \
        }                                                                                                 \
    } while (0)

#define REQUIRE(cond)                                                                  \
    do {                                                                               \
        if (!(cond)) {                                                                 \
            fprintf(stderr, "%s:%d: REQUIRE failed: %s\n", __FILE__, __LINE__, #cond); \
            unit_cur_failed = 1;                                                       \
            longjmp(unit_jmp, 1);                                                      \
        }                                                                              \
    } while (0)

#define UNIT_RUN(fn)                           \
    do {                                       \
        unit_cur_failed = 0;                   \
        if (setjmp(unit_jmp) == 0)             \
            fn();                              \
        if (unit_cur_failed) {                 \
            unit_failed++;                     \
            fprintf(stderr, "FAIL %s\n", #fn); \
        } else {                               \
            unit_passed++;                     \
        }                                      \
    } while (0)

#define UNIT_END(name)                                                       \
    (printf("%s: %d passed, %d failed\n", (name), unit_passed, unit_failed), \
     unit_failed ? EXIT_FAILURE : EXIT_SUCCESS)

#endif
