/* test_rng.c - Philox4x32-10 and the stream API of src/core/dx_rng.c.
 *
 * The block function is checked against the Random123 known-answer vectors
 * (kat_vectors, "philox4x32 10 ..." lines: counter[4] key[2] -> out[4]).
 * The stream API is checked for being exactly those blocks in counter order,
 * reproducible by name, sensitive to every part of the name, and for its
 * derived draws: uniform and normal moments / goodness of fit, bit balance,
 * dx_rng_below unbiased at the sizes where a naive modulo or an uncorrected
 * multiply-shift would be visibly biased, and uniform permutations.
 * All draws come from fixed names, so every figure is deterministic; the
 * bounds are ~5 sigma so a correct generator passes for any name. */
#include <stdint.h>

#include "core/dx_rng.h"
#include "dx_test.h"

static void test_known_answers(void) {
    static const struct {
        uint32_t ctr[4], key[2], out[4];
    } kat[] = {
        {{0, 0, 0, 0}, {0, 0}, {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
        {{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff},
         {0xffffffff, 0xffffffff},
         {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}},
        {{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344},
         {0xa4093822, 0x299f31d0},
         {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}},
    };
    for (int i = 0; i < 3; i++) {
        uint32_t out[4];
        dx_philox4x32_10(kat[i].ctr, kat[i].key, out);
        CHECK(memcmp(out, kat[i].out, sizeof out) == 0, "KAT %d: got %08x %08x %08x %08x", i, out[0], out[1],
              out[2], out[3]);
    }
}

/* The stream is Philox blocks for counters (i, stream id) in order, 4 words each. */
static void test_stream_is_blocks(void) {
    dx_rng r;
    dx_rng_init(&r, 1234, DX_RNG_TEST, 5, 6);
    uint32_t key[2] = {r.key[0], r.key[1]}, ctr[4] = {0, 0, r.ctr[2], r.ctr[3]};
    CHECK(r.ctr[0] == 0 && r.ctr[1] == 0, "fresh stream starts at block 0");
    int bad = 0;
    for (uint32_t blk = 0; blk < 100; blk++) {
        uint32_t want[4];
        ctr[0] = blk;
        dx_philox4x32_10(ctr, key, want);
        for (int j = 0; j < 4; j++) bad += dx_rng_u32(&r) != want[j];
    }
    CHECK(bad == 0, "400 words equal Philox blocks 0..99 (%d differ)", bad);
    /* 64-bit block index: the low word carries into the high word */
    r.ctr[0] = 0xffffffffu;
    r.ctr[1] = 7;
    r.pos = 4;
    uint32_t w[8], want[8];
    for (int j = 0; j < 8; j++) w[j] = dx_rng_u32(&r);
    ctr[0] = 0xffffffffu;
    ctr[1] = 7;
    dx_philox4x32_10(ctr, key, want);
    ctr[0] = 0;
    ctr[1] = 8;
    dx_philox4x32_10(ctr, key, want + 4);
    CHECK(memcmp(w, want, sizeof w) == 0, "block counter carries from ctr[0] into ctr[1]");
    /* u64 = two consecutive words, first one high */
    dx_rng a, b;
    dx_rng_init(&a, 9, DX_RNG_TEST, 1, 2);
    dx_rng_init(&b, 9, DX_RNG_TEST, 1, 2);
    bad = 0;
    for (int i = 0; i < 1000; i++) {
        uint64_t hi = dx_rng_u32(&b);
        uint64_t x = (hi << 32) | dx_rng_u32(&b);
        bad += dx_rng_u64(&a) != x;
    }
    CHECK(bad == 0, "u64 is (first << 32) | second");
}

static void test_names(void) {
    /* reproducible: same name, same sequence, regardless of other streams drawn in between */
    dx_rng a, b, c;
    dx_rng_init(&a, 42, DX_RNG_CROPS, 100, 3);
    dx_rng_init(&c, 42, DX_RNG_CROPS, 100, 4);
    for (int i = 0; i < 77; i++) dx_rng_u32(&c);
    dx_rng_init(&b, 42, DX_RNG_CROPS, 100, 3);
    int same = 1;
    for (int i = 0; i < 5000; i++) same &= dx_rng_u32(&a) == dx_rng_u32(&b);
    CHECK(same, "same name reproduces 5000 words");

    /* every component of the name matters: 4 x 16 neighbouring names give distinct first words */
    enum { K = 16 };
    uint64_t first[4 * K + 1];
    int m = 0;
    for (int k = 0; k < K; k++) {
        dx_rng r;
        dx_rng_init(&r, 1000 + (uint64_t)k, 3, 7, 9);
        first[m++] = dx_rng_u64(&r);
        dx_rng_init(&r, 1000, 3 + (uint32_t)k + 1, 7, 9);
        first[m++] = dx_rng_u64(&r);
        dx_rng_init(&r, 1000, 3, 7 + (uint64_t)k + 1, 9);
        first[m++] = dx_rng_u64(&r);
        dx_rng_init(&r, 1000, 3, 7, 9 + (uint64_t)k + 1);
        first[m++] = dx_rng_u64(&r);
    }
    int dup = 0;
    for (int i = 0; i < m; i++)
        for (int j = i + 1; j < m; j++) dup += first[i] == first[j];
    CHECK(dup == 0, "%d equal first draws among %d neighbouring names", dup, m);
    /* swapping a and b gives a different stream */
    dx_rng_init(&a, 5, 2, 1, 2);
    dx_rng_init(&b, 5, 2, 2, 1);
    CHECK(dx_rng_u64(&a) != dx_rng_u64(&b), "(a, b) and (b, a) differ");
}

static double corr(const double *x, const double *y, int n) {
    double mx = 0, my = 0, sxy = 0, sxx = 0, syy = 0;
    for (int i = 0; i < n; i++) mx += x[i], my += y[i];
    mx /= n;
    my /= n;
    for (int i = 0; i < n; i++) {
        sxy += (x[i] - mx) * (y[i] - my);
        sxx += (x[i] - mx) * (x[i] - mx);
        syy += (y[i] - my) * (y[i] - my);
    }
    return sxy / sqrt(sxx * syy);
}

static void test_independence(void) {
    enum { N = 100000 };
    static double base[N], other[N];
    dx_rng r;
    dx_rng_init(&r, 77, DX_RNG_SAMPLER, 10, 20);
    for (int i = 0; i < N; i++) base[i] = dx_rng_uniform(&r);
    const double lim = 5.0 / sqrt((double)N);
    struct {
        uint64_t seed;
        uint32_t dom;
        uint64_t a, b;
        const char *what;
    } nb[] = {{78, DX_RNG_SAMPLER, 10, 20, "seed+1"}, {77, DX_RNG_SAMPLER + 1, 10, 20, "domain+1"},
              {77, DX_RNG_SAMPLER, 11, 20, "a+1"},    {77, DX_RNG_SAMPLER, 10, 21, "b+1"},
              {77, DX_RNG_SAMPLER, 20, 10, "a<->b"}};
    for (size_t k = 0; k < sizeof nb / sizeof *nb; k++) {
        dx_rng_init(&r, nb[k].seed, nb[k].dom, nb[k].a, nb[k].b);
        for (int i = 0; i < N; i++) other[i] = dx_rng_uniform(&r);
        double c = corr(base, other, N);
        CHECK(fabs(c) < lim, "stream vs %s: correlation %.4f (limit %.4f)", nb[k].what, c, lim);
        /* also against the neighbour shifted by one draw (catches streams that are offsets of each other) */
        c = corr(base, other + 1, N - 1);
        CHECK(fabs(c) < lim, "stream vs %s shifted: correlation %.4f", nb[k].what, c);
    }
    for (int lag = 1; lag <= 8; lag++) {
        double c = corr(base, base + lag, N - lag);
        CHECK(fabs(c) < lim, "lag-%d autocorrelation %.4f", lag, c);
    }
}

static void test_uniform(void) {
    enum { N = 1000000, BINS = 100 };
    dx_rng r;
    dx_rng_init(&r, 2024, DX_RNG_TEST, 0, 0);
    static long hist[BINS];
    double s = 0, s2 = 0, mn = 1, mx = 0;
    for (int i = 0; i < N; i++) {
        double u = dx_rng_uniform(&r);
        s += u;
        s2 += u * u;
        if (u < mn) mn = u;
        if (u > mx) mx = u;
        int b = (int)(u * BINS);
        hist[b < BINS ? b : BINS - 1]++;
    }
    double mean = s / N, var = s2 / N - mean * mean;
    CHECK(mn >= 0.0 && mx < 1.0, "range [%g, %g] inside [0, 1)", mn, mx);
    CHECK(fabs(mean - 0.5) < 5 * sqrt(1.0 / 12 / N), "uniform mean %.6f", mean);
    /* Var of the sample variance of U(0,1): (1/80 - 1/144)/N */
    CHECK(fabs(var - 1.0 / 12) < 5 * sqrt((1.0 / 80 - 1.0 / 144) / N), "uniform variance %.6f", var);
    double chi2 = 0, e = (double)N / BINS;
    for (int b = 0; b < BINS; b++) chi2 += (hist[b] - e) * (hist[b] - e) / e;
    CHECK(chi2 < 181.0, "uniform chi-square %.1f over %d bins (df 99, p=1e-6 at ~181)", chi2, BINS);
    /* 53-bit resolution: low mantissa bits are used */
    int low_bit = 0;
    for (int i = 0; i < 1000; i++) low_bit |= (int)(fmod(dx_rng_uniform(&r) * 0x1p53, 2.0));
    CHECK(low_bit, "bit 2^-53 of uniform() is ever set");
    /* bit balance of u32 */
    static long ones[32];
    for (int i = 0; i < N; i++) {
        uint32_t w = dx_rng_u32(&r);
        for (int k = 0; k < 32; k++) ones[k] += (w >> k) & 1;
    }
    int worst = 0;
    double wz = 0;
    for (int k = 0; k < 32; k++) {
        double z = fabs(ones[k] - N / 2.0) / sqrt(N / 4.0);
        if (z > wz) wz = z, worst = k;
    }
    CHECK(wz < 5.0, "u32 bit %d has |z| = %.2f", worst, wz);
    double lo = -3.0, hi = 5.5;
    int inside = 1;
    for (int i = 0; i < 10000; i++) {
        double v = dx_rng_uniform_range(&r, lo, hi);
        inside &= v >= lo && v < hi;
    }
    CHECK(inside, "uniform_range stays in [lo, hi)");
}

static void test_normal(void) {
    enum { N = 1000000 };
    static double x[N];
    dx_rng r;
    dx_rng_init(&r, 31337, DX_RNG_TEST, 1, 1);
    double s = 0, s2 = 0, s3 = 0, s4 = 0;
    long within1 = 0;
    int finite = 1;
    for (int i = 0; i < N; i++) {
        x[i] = dx_rng_normal(&r);
        finite &= isfinite(x[i]);
        s += x[i];
        within1 += fabs(x[i]) < 1.0;
    }
    double mean = s / N;
    for (int i = 0; i < N; i++) {
        double d = x[i] - mean;
        s2 += d * d;
        s3 += d * d * d;
        s4 += d * d * d * d;
    }
    double var = s2 / N, skew = s3 / N / pow(var, 1.5), kurt = s4 / N / (var * var);
    CHECK(finite, "all normals finite");
    CHECK(fabs(mean) < 5 / sqrt((double)N), "normal mean %.5f", mean);
    CHECK(fabs(var - 1) < 5 * sqrt(2.0 / N), "normal variance %.5f", var);
    CHECK(fabs(skew) < 5 * sqrt(6.0 / N), "normal skewness %.5f", skew);
    CHECK(fabs(kurt - 3) < 5 * sqrt(24.0 / N), "normal kurtosis %.5f", kurt);
    double p1 = erf(1 / sqrt(2.0));
    CHECK(fabs((double)within1 / N - p1) < 5 * sqrt(p1 * (1 - p1) / N), "P(|x|<1) = %.5f, want %.5f",
          (double)within1 / N, p1);
    /* Kolmogorov-Smirnov on the first 20000 against Phi (shell sort, no comparator needed) */
    enum { M = 20000 };
    static double y[M];
    memcpy(y, x, sizeof y);
    for (int gap = M / 2; gap > 0; gap /= 2)
        for (int i = gap; i < M; i++) {
            double t = y[i];
            int j = i;
            for (; j >= gap && y[j - gap] > t; j -= gap) y[j] = y[j - gap];
            y[j] = t;
        }
    double d = 0;
    for (int i = 0; i < M; i++) {
        double F = 0.5 * erfc(-y[i] / sqrt(2.0));
        double a = fabs(F - (double)i / M), b = fabs((double)(i + 1) / M - F);
        if (a > d) d = a;
        if (b > d) d = b;
    }
    CHECK(d * sqrt((double)M) < 1.95, "KS statistic sqrt(n)*D = %.3f (p=0.001 at 1.95)", d * sqrt((double)M));
}

static void test_below(void) {
    dx_rng r;
    dx_rng_init(&r, 555, DX_RNG_TEST, 2, 0);
    CHECK(dx_rng_below(&r, 0) == 0 && dx_rng_below(&r, 1) == 0, "below(0), below(1) = 0");
    /* small n: chi-square over 7 values */
    enum { N = 700000 };
    long h[7] = {0};
    int in = 1;
    for (int i = 0; i < N; i++) {
        uint32_t v = dx_rng_below(&r, 7);
        in &= v < 7;
        h[v < 7 ? v : 0]++;
    }
    double chi2 = 0;
    for (int k = 0; k < 7; k++) chi2 += (h[k] - N / 7.0) * (h[k] - N / 7.0) / (N / 7.0);
    CHECK(in && chi2 < 36.0, "below(7) chi-square %.1f (df 6, p=1e-6 at ~36)", chi2);
    /* n = 3*2^30: naive u32 % n puts 1/2 of the mass below 2^30 (want 1/3); multiply-shift
     * without rejection puts 1/2 on values = 0 mod 3 (want 1/3). */
    const uint32_t n = 0xC0000000u;
    enum { M = 300000 };
    long low = 0, mod0 = 0;
    in = 1;
    for (int i = 0; i < M; i++) {
        uint32_t v = dx_rng_below(&r, n);
        in &= v < n;
        low += v < (1u << 30);
        mod0 += v % 3 == 0;
    }
    double sd = sqrt(M * (1.0 / 3) * (2.0 / 3));
    CHECK(in, "below(3*2^30) < n");
    CHECK(fabs(low - M / 3.0) < 5 * sd, "below(3*2^30): P(v < 2^30) = %.4f, want 1/3", (double)low / M);
    CHECK(fabs(mod0 - M / 3.0) < 5 * sd, "below(3*2^30): P(v = 0 mod 3) = %.4f, want 1/3", (double)mod0 / M);
    /* n = 2^31 + 1: about half of all raw draws fall in the rejection zone, so the retry loop runs */
    long top = 0;
    in = 1;
    for (int i = 0; i < M; i++) {
        uint32_t v = dx_rng_below(&r, 0x80000001u);
        in &= v <= 0x80000000u;
        top += v >= 0x40000000u;
    }
    CHECK(in && fabs(top - 0.5 * M) < 5 * sqrt(M * 0.25), "below(2^31+1): P(v >= 2^30) = %.4f, want 0.5",
          (double)top / M);
}

static void test_permutation(void) {
    dx_rng r;
    dx_rng_init(&r, 8, DX_RNG_TEST, 3, 3);
    int p[1000], seen[1000];
    dx_rng_permutation(&r, p, 1000);
    memset(seen, 0, sizeof seen);
    int ok = 1;
    for (int i = 0; i < 1000; i++) {
        ok &= p[i] >= 0 && p[i] < 1000 && !seen[p[i]];
        if (p[i] >= 0 && p[i] < 1000) seen[p[i]] = 1;
    }
    CHECK(ok, "permutation of 0..999");
    dx_rng_permutation(&r, p, 0);
    dx_rng_permutation(&r, p, 1);
    CHECK(p[0] == 0, "n = 1");
    /* all 24 orders of 4 elements equally likely */
    enum { N = 240000 };
    static long cnt[256];
    for (int i = 0; i < N; i++) {
        int q[4];
        dx_rng_permutation(&r, q, 4);
        cnt[q[0] * 64 + q[1] * 16 + q[2] * 4 + q[3]]++;
    }
    int distinct = 0;
    double chi2 = 0, e = N / 24.0;
    for (int k = 0; k < 256; k++)
        if (cnt[k]) {
            distinct++;
            chi2 += (cnt[k] - e) * (cnt[k] - e) / e;
        }
    CHECK(distinct == 24 && chi2 < 71.0, "24 orders seen %d, chi-square %.1f (df 23, p=1e-6 at ~71)", distinct, chi2);
}

int main(void) {
    test_known_answers();
    test_stream_is_blocks();
    test_names();
    test_independence();
    test_uniform();
    test_normal();
    test_below();
    test_permutation();
    return dx_test_summary();
}
