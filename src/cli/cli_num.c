/* cli_num.c - strict parsing of numeric command-line options.
 *
 * atoi/atof read "abc" as 0 and "3x" as 3, which turned `eval --boot abc`
 * into zero bootstrap draws and `ingest --tol -3` into a silent nonsense
 * tolerance. Here the whole argument must be a number (strtoll/strtod with
 * an end check, no overflow) inside the option's documented range. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli/cli.h"

static const char *opt_name(const struct option *opts, int c) {
    for (; opts && opts->name; opts++)
        if (opts->val == c) return opts->name;
    return "?";
}

int cli_int(const char *cmd, const struct option *opts, int c, const char *arg, long long lo, long long hi,
            long long *out) {
    char *end = NULL;
    errno = 0;
    long long v = arg && *arg ? strtoll(arg, &end, 10) : 0;
    if (!arg || !*arg || *end || errno == ERANGE) {
        fprintf(stderr, "dinox %s: --%s: '%s' is not an integer (expected %lld .. %lld)\n", cmd, opt_name(opts, c),
                arg ? arg : "", lo, hi);
        return -1;
    }
    if (v < lo || v > hi) {
        fprintf(stderr, "dinox %s: --%s: %lld is out of range (expected %lld .. %lld)\n", cmd, opt_name(opts, c), v,
                lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

int cli_u64(const char *cmd, const struct option *opts, int c, const char *arg, unsigned long long *out) {
    char *end = NULL;
    errno = 0;
    unsigned long long v = arg && *arg && *arg != '-' ? strtoull(arg, &end, 10) : 0;
    if (!arg || !*arg || *arg == '-' || *end || errno == ERANGE) {
        fprintf(stderr, "dinox %s: --%s: '%s' is not a non-negative integer\n", cmd, opt_name(opts, c),
                arg ? arg : "");
        return -1;
    }
    *out = v;
    return 0;
}

int cli_double(const char *cmd, const struct option *opts, int c, const char *arg, double lo, double hi,
               double *out) {
    char *end = NULL;
    errno = 0;
    double v = arg && *arg ? strtod(arg, &end) : 0;
    if (!arg || !*arg || *end || errno == ERANGE || !isfinite(v)) {
        fprintf(stderr, "dinox %s: --%s: '%s' is not a number (expected %g .. %g)\n", cmd, opt_name(opts, c),
                arg ? arg : "", lo, hi);
        return -1;
    }
    if (v < lo || v > hi) {
        fprintf(stderr, "dinox %s: --%s: %g is out of range (expected %g .. %g)\n", cmd, opt_name(opts, c), v, lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}
