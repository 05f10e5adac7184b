/* dx_rng.h - counter-based random numbers (Philox4x32-10).
 *
 * Every random draw in dinox comes from a stream named by
 * (seed, domain, a, b) - e.g. (run seed, DX_RNG_CROPS, step, sample). A stream
 * has no hidden history: the same name always yields the same sequence, which
 * is what makes a run reproducible from (seed, step) and resume bit-exact, and
 * makes the loader's output independent of thread count. */
#ifndef DX_RNG_H
#define DX_RNG_H

#include <stdint.h>

/* Domains keep independent uses of one seed from overlapping. */
enum {
    DX_RNG_INIT = 1,      /* parameter initialisation: a = tensor index     */
    DX_RNG_CROPS = 2,     /* multi-crop geometry/photometry: a=step, b=sample */
    DX_RNG_MASKS = 3,     /* iBOT masks: a = step, b = crop                  */
    DX_RNG_DROPPATH = 4,  /* stochastic depth subsets: a = step, b = block   */
    DX_RNG_ROPE = 5,      /* RoPE coordinate augmentation: a = step, b = block */
    DX_RNG_SAMPLER = 6,   /* which (series, z) a sample reads: a=step, b=sample */
    DX_RNG_SYNTH = 7,     /* synthetic phantoms: a = patient, b = purpose    */
    DX_RNG_EVAL = 8,      /* evaluation splits, bootstrap: a, b free         */
    DX_RNG_TEST = 99      /* tests                                           */
};

typedef struct dx_rng {
    uint32_t key[2];
    uint32_t ctr[4]; /* ctr[0..1]: block index; ctr[2..3]: stream id */
    uint32_t buf[4];
    int pos;         /* next unused word of buf, 4 = empty */
} dx_rng;

void dx_rng_init(dx_rng *r, uint64_t seed, uint32_t domain, uint64_t a, uint64_t b);

/* One Philox4x32-10 block for an explicit counter: the pure function under
 * the stream API (exposed for tests against published vectors). */
void dx_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]);

uint32_t dx_rng_u32(dx_rng *r);
uint64_t dx_rng_u64(dx_rng *r);
double dx_rng_uniform(dx_rng *r);                 /* [0, 1), 53 bits */
double dx_rng_uniform_range(dx_rng *r, double lo, double hi);
double dx_rng_normal(dx_rng *r);                  /* N(0, 1), Box-Muller */
uint32_t dx_rng_below(dx_rng *r, uint32_t n);     /* uniform in [0, n), unbiased */
void dx_rng_permutation(dx_rng *r, int *perm, int n); /* Fisher-Yates of 0..n-1 */

#endif /* DX_RNG_H */
