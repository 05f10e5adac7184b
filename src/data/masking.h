/* masking.h - iBOT block masks (MaskingGenerator) and the collate mask rule.
 *
 * As DINOv3 masks (docs/objective.md). A mask generator for a Hp x Wp patch grid places random
 * rectangles (area U(4, cap), aspect exp(U(ln 0.3, ln 1/0.3)), side lengths
 * rounded half-to-even, strictly smaller than the grid) until m patches are
 * masked or a round of 10 tries adds nothing, then masks uniformly chosen
 * unmasked patches until exactly m are masked. The collate rule gives
 * n = int(n_crops * prob) crops exactly m_i = int(N * linspace(rmin, rmax,
 * n+1)[i+1]) masked patches (float32 arithmetic, as torch), leaves the others
 * empty and shuffles the list of n_crops masks.
 *
 * Randomness: stream (seed, DX_RNG_MASKS, step, i) generates the i-th mask
 * before shuffling (i < n); stream (seed, DX_RNG_MASKS, step, n_crops) draws
 * the shuffle. The draws cannot equal Python's, so tests check the rule
 * statistically and the deterministic parts exactly. */
#ifndef DX_MASKING_H
#define DX_MASKING_H

#include <stdint.h>

#include "core/dx_error.h"
#include "core/dx_rng.h"

typedef struct dx_mask_gen {
    int height, width;     /* patch grid Hp x Wp                              */
    int min_patches;       /* 4: smallest block area drawn                    */
    double max_patches;    /* 0.5 * Hp * Wp: cap on one block (a float, as in Python) */
    double log_aspect[2];  /* ln 0.3, ln (1/0.3)                              */
} dx_mask_gen;

/* Defaults of the reference: min 4 patches, max 0.5*N per block, aspect [0.3, 1/0.3]. */
void dx_mask_gen_init(dx_mask_gen *g, int height, int width);

/* One round of up to 10 tries to place a block adding 0 < new <= cap
 * patches; returns the number added (0: nothing placed) and, if box is not
 * NULL and a block was placed, box = {top, left, h, w}. Exposed for tests. */
int dx_mask_round(const dx_mask_gen *g, uint8_t *mask, double cap, dx_rng *rng, int box[4]);

/* Block phase only: zeroes mask[height*width] and places blocks as the
 * reference's loop does (stops at m masked or after a round that adds
 * nothing); returns the number masked (<= m). Exposed for shape tests. */
int dx_mask_blocks(const dx_mask_gen *g, int m, dx_rng *rng, uint8_t *mask);

/* Full generator: mask[height*width] gets exactly m ones (0 <= m <= N). */
dx_status dx_mask_generate(const dx_mask_gen *g, int m, dx_rng *rng, uint8_t *mask, dx_err *err);

/* Deterministic count rule: writes counts[0..n) for the n = int(n_crops*prob)
 * masked crops and returns n (negative dx_status on bad arguments).
 * counts must hold n_crops entries. prob is the config's double (Python
 * float); the ratios are float32 as torch.linspace stores them. */
int dx_mask_counts(int *counts, int n_crops, int n_patches, double prob, float ratio_min,
                   float ratio_max);

/* Masks of one batch of global crops (crop-major rows). */
typedef struct dx_ibot_masks {
    int n_crops, n_patches;
    uint8_t *mask;      /* [n_crops, n_patches] 1 = masked                        */
    int *count;         /* [n_crops] masked patches per crop                      */
    int32_t *indices;   /* [n_masked] flat indices into [n_crops*n_patches], ascending */
    float *weights;     /* [n_masked] 1 / count of the crop (float32, as masks_weight) */
    int n_masked;
} dx_ibot_masks;

dx_status dx_ibot_masks_make(dx_ibot_masks *out, int n_crops, int height, int width, double prob,
                             float ratio_min, float ratio_max, uint64_t seed, uint64_t step,
                             dx_err *err);
void dx_ibot_masks_free(dx_ibot_masks *m);

#endif /* DX_MASKING_H */
