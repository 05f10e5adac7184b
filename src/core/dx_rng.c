/* dx_rng.c - Philox4x32-10 (Salmon et al., SC'11) and derived draws. */
#include "dx_rng.h"

#include <math.h>

static uint64_t splitmix64(uint64_t x) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

void dx_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]) {
    uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
    uint32_t k0 = key[0], k1 = key[1];
    for (int round = 0; round < 10; round++) {
        uint64_t p0 = (uint64_t)0xD2511F53u * c0;
        uint64_t p1 = (uint64_t)0xCD9E8D57u * c2;
        uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0;
        uint32_t n1 = (uint32_t)p1;
        uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
        uint32_t n3 = (uint32_t)p0;
        c0 = n0; c1 = n1; c2 = n2; c3 = n3;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    out[0] = c0; out[1] = c1; out[2] = c2; out[3] = c3;
}

void dx_rng_init(dx_rng *r, uint64_t seed, uint32_t domain, uint64_t a, uint64_t b) {
    uint64_t k = splitmix64(seed ^ splitmix64((uint64_t)domain));
    uint64_t s = splitmix64(splitmix64(a) ^ (b + 0x632BE59BD9B4E019ull));
    r->key[0] = (uint32_t)k;
    r->key[1] = (uint32_t)(k >> 32);
    r->ctr[0] = r->ctr[1] = 0;
    r->ctr[2] = (uint32_t)s;
    r->ctr[3] = (uint32_t)(s >> 32);
    r->pos = 4;
}

uint32_t dx_rng_u32(dx_rng *r) {
    if (r->pos >= 4) {
        dx_philox4x32_10(r->ctr, r->key, r->buf);
        if (++r->ctr[0] == 0) ++r->ctr[1];
        r->pos = 0;
    }
    return r->buf[r->pos++];
}

uint64_t dx_rng_u64(dx_rng *r) {
    uint64_t hi = dx_rng_u32(r);
    return (hi << 32) | dx_rng_u32(r);
}

double dx_rng_uniform(dx_rng *r) { return (double)(dx_rng_u64(r) >> 11) * 0x1.0p-53; }

double dx_rng_uniform_range(dx_rng *r, double lo, double hi) {
    return lo + (hi - lo) * dx_rng_uniform(r);
}

double dx_rng_normal(dx_rng *r) {
    /* Box-Muller; 1-u keeps the log argument in (0, 1]. */
    double u1 = 1.0 - dx_rng_uniform(r);
    double u2 = dx_rng_uniform(r);
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

uint32_t dx_rng_below(dx_rng *r, uint32_t n) {
    if (n <= 1) return 0;
    /* Lemire's multiply-shift with rejection: unbiased. */
    uint64_t m = (uint64_t)dx_rng_u32(r) * n;
    uint32_t low = (uint32_t)m;
    if (low < n) {
        uint32_t t = (uint32_t)(-n) % n;
        while (low < t) {
            m = (uint64_t)dx_rng_u32(r) * n;
            low = (uint32_t)m;
        }
    }
    return (uint32_t)(m >> 32);
}

void dx_rng_permutation(dx_rng *r, int *perm, int n) {
    for (int i = 0; i < n; i++) perm[i] = i;
    for (int i = n - 1; i > 0; i--) {
        int j = (int)dx_rng_below(r, (uint32_t)(i + 1));
        int t = perm[i]; perm[i] = perm[j]; perm[j] = t;
    }
}
