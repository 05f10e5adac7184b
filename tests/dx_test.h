/* dx_test.h - the checks every test program uses (CTest runs each program).
 *
 * CHECK(cond, ...) records a failure with file/line and a message and goes on;
 * CHECK_CLOSE compares with |a-b| <= atol + rtol*|b|. A program ends with
 * `return dx_test_summary();`, which prints "N passed, M failed" and returns
 * non-zero if anything failed - a test that checks nothing also fails. */
#ifndef DX_TEST_H
#define DX_TEST_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int dx_test_pass_ = 0, dx_test_fail_ = 0;

#define CHECK(cond, ...)                                                                   \
    do {                                                                                   \
        if (cond) {                                                                        \
            dx_test_pass_++;                                                               \
        } else {                                                                           \
            dx_test_fail_++;                                                               \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                \
            fprintf(stderr, __VA_ARGS__);                                                  \
            fputc('\n', stderr);                                                           \
        }                                                                                  \
    } while (0)

#define CHECK_CLOSE(a, b, atol, rtol, what)                                                \
    do {                                                                                   \
        double a_ = (double)(a), b_ = (double)(b);                                         \
        CHECK(fabs(a_ - b_) <= (atol) + (rtol)*fabs(b_) && !isnan(a_),                     \
              "%s: got %.9g want %.9g (diff %.3g)", what, a_, b_, fabs(a_ - b_));          \
    } while (0)

/* Max relative error of a vs reference b over n elements, with a floor on the
 * denominator so that near-zero entries are judged by an absolute error:
 * max_i |a_i - b_i| / max(|b_i|, floor). */
static inline double dx_max_rel_err(const float *a, const float *b, size_t n, double floor) {
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        double den = fabs((double)b[i]) > floor ? fabs((double)b[i]) : floor;
        if (isnan(a[i]) || isnan(b[i])) return INFINITY;
        if (d / den > worst) worst = d / den;
    }
    return worst;
}

/* Path of a file under the source tree ($DINOX_SOURCE_DIR, set by CTest). */
static inline const char *dx_test_path(char *buf, size_t len, const char *rel) {
    const char *root = getenv("DINOX_SOURCE_DIR");
    snprintf(buf, len, "%s/%s", root ? root : ".", rel);
    return buf;
}

/* Whole file into a malloc'ed buffer (one spare byte); 0 on success. */
static inline int dx_test_read_file(const char *path, unsigned char **buf, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    *buf = malloc((size_t)(n > 0 ? n : 0) + 1);
    *len = *buf ? fread(*buf, 1, (size_t)n, f) : 0;
    fclose(f);
    return *buf && *len == (size_t)n ? 0 : -1;
}

static inline int dx_test_summary(void) {
    if (dx_test_pass_ + dx_test_fail_ == 0) {
        printf("no checks ran\n");
        return 1;
    }
    printf("%d passed, %d failed\n", dx_test_pass_, dx_test_fail_);
    return dx_test_fail_ ? 1 : 0;
}

#endif /* DX_TEST_H */
