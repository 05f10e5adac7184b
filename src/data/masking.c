/* masking.c - iBOT block mask generator and collate mask rule. */
#include "data/masking.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The count table must reproduce torch's float32 linspace and product bit for
 * bit: no fused multiply-add. */
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

void dx_mask_gen_init(dx_mask_gen *g, int height, int width) {
    g->height = height;
    g->width = width;
    g->min_patches = 4;
    g->max_patches = 0.5 * (double)height * (double)width;
    g->log_aspect[0] = log(0.3);
    g->log_aspect[1] = log(1.0 / 0.3);
}

int dx_mask_round(const dx_mask_gen *g, uint8_t *mask, double cap, dx_rng *rng, int box[4]) {
    int delta = 0;
    for (int attempt = 0; attempt < 10; attempt++) {
        /* random.uniform(a, b) = a + (b - a) * random(); b < a is allowed */
        double area = dx_rng_uniform_range(rng, (double)g->min_patches, cap);
        double aspect = exp(dx_rng_uniform_range(rng, g->log_aspect[0], g->log_aspect[1]));
        /* Python round(): half to even = rint in the default rounding mode */
        int h = (int)rint(sqrt(area / aspect));
        int w = (int)rint(sqrt(area * aspect));
        if (w < g->width && h < g->height) {
            int top = (int)dx_rng_below(rng, (uint32_t)(g->height - h + 1));
            int left = (int)dx_rng_below(rng, (uint32_t)(g->width - w + 1));
            int already = 0;
            for (int i = top; i < top + h; i++)
                for (int j = left; j < left + w; j++) already += mask[i * g->width + j] != 0;
            int fresh = h * w - already;
            if (fresh > 0 && (double)fresh <= cap) {
                for (int i = top; i < top + h; i++)
                    for (int j = left; j < left + w; j++)
                        if (!mask[i * g->width + j]) {
                            mask[i * g->width + j] = 1;
                            delta++;
                        }
                if (box) box[0] = top, box[1] = left, box[2] = h, box[3] = w;
            }
            if (delta > 0) break;
        }
    }
    return delta;
}

int dx_mask_blocks(const dx_mask_gen *g, int m, dx_rng *rng, uint8_t *mask) {
    int N = g->height * g->width;
    memset(mask, 0, (size_t)N);
    int count = 0;
    while (count < m) {
        double cap = (double)(m - count);
        if (cap > g->max_patches) cap = g->max_patches;
        int delta = dx_mask_round(g, mask, cap, rng, NULL);
        if (delta == 0) break;
        count += delta;
    }
    return count;
}

dx_status dx_mask_generate(const dx_mask_gen *g, int m, dx_rng *rng, uint8_t *mask, dx_err *err) {
    int N = g->height * g->width;
    if (g->height <= 0 || g->width <= 0)
        return dx_fail(err, DX_EINVAL, "mask generator: grid %dx%d", g->height, g->width);
    if (m < 0 || m > N)
        return dx_fail(err, DX_EINVAL, "mask generator: %d masked patches asked of %d", m, N);
    int count = dx_mask_blocks(g, m, rng, mask);
    if (count > m) /* cannot happen: each block adds at most the remaining budget */
        return dx_fail(err, DX_ENUMERIC, "mask generator: %d masked > %d", count, m);
    int need = m - count;
    if (need == 0) return DX_OK;
    /* complete_mask_randomly: `need` distinct unmasked cells, uniformly
     * (partial Fisher-Yates over the free list) */
    int *free_cells = malloc(sizeof(int) * (size_t)N);
    if (!free_cells) return dx_fail(err, DX_ENOMEM, "mask generator: %d cells", N);
    int nf = 0;
    for (int i = 0; i < N; i++)
        if (!mask[i]) free_cells[nf++] = i;
    for (int i = 0; i < need; i++) {
        int j = i + (int)dx_rng_below(rng, (uint32_t)(nf - i));
        int t = free_cells[i];
        free_cells[i] = free_cells[j];
        free_cells[j] = t;
        mask[free_cells[i]] = 1;
    }
    free(free_cells);
    return DX_OK;
}

int dx_mask_counts(int *counts, int n_crops, int n_patches, double prob, float ratio_min,
                   float ratio_max) {
    if (n_crops < 0 || n_patches < 0 || !(prob >= 0.0 && prob <= 1.0)) return -DX_EINVAL;
    /* int(n_crops * prob): Python multiplies an int by a double (so prob is
     * a double here: 20 * 0.35f would truncate to 6, Python gives 7) */
    int n = (int)((double)n_crops * prob);
    if (n > n_crops) n = n_crops;
    /* torch.linspace(rmin, rmax, n + 1) in float32: step = (end - start)/(steps - 1);
     * the first half counts up from start, the second half down from end */
    int steps = n + 1;
    float step = steps > 1 ? (ratio_max - ratio_min) / (float)(steps - 1) : 0.0f;
    int halfway = steps / 2;
    for (int i = 0; i < n; i++) {
        int idx = i + 1;
        float r = idx < halfway ? ratio_min + step * (float)idx
                                : ratio_max - step * (float)(steps - idx - 1);
        float prod = (float)n_patches * r; /* int * float32 tensor -> float32 */
        counts[i] = (int)prod;
        if (counts[i] > n_patches) counts[i] = n_patches;
        if (counts[i] < 0) counts[i] = 0;
    }
    return n;
}

void dx_ibot_masks_free(dx_ibot_masks *m) {
    if (!m) return;
    free(m->mask);
    free(m->count);
    free(m->indices);
    free(m->weights);
    memset(m, 0, sizeof(*m));
}

dx_status dx_ibot_masks_make(dx_ibot_masks *out, int n_crops, int height, int width, double prob,
                             float ratio_min, float ratio_max, uint64_t seed, uint64_t step,
                             dx_err *err) {
    memset(out, 0, sizeof(*out));
    if (n_crops <= 0 || height <= 0 || width <= 0)
        return dx_fail(err, DX_EINVAL, "ibot masks: %d crops of %dx%d patches", n_crops, height,
                       width);
    if (!(ratio_min >= 0.0f && ratio_min <= ratio_max && ratio_max <= 1.0f))
        return dx_fail(err, DX_EINVAL, "ibot masks: ratio range [%g, %g]", ratio_min, ratio_max);
    int P = height * width;
    out->n_crops = n_crops;
    out->n_patches = P;
    out->mask = calloc((size_t)n_crops * P, 1);
    out->count = calloc((size_t)n_crops, sizeof(int));
    int *counts = calloc((size_t)n_crops, sizeof(int));
    int *perm = malloc(sizeof(int) * (size_t)n_crops);
    uint8_t *gen = calloc((size_t)n_crops * P, 1);
    dx_status st = DX_OK;
    if (!out->mask || !out->count || !counts || !perm || !gen) {
        st = dx_fail(err, DX_ENOMEM, "ibot masks: %d x %d", n_crops, P);
        goto done;
    }
    int n = dx_mask_counts(counts, n_crops, P, prob, ratio_min, ratio_max);
    if (n < 0) {
        st = dx_fail(err, DX_EINVAL, "ibot masks: mask probability %g", prob);
        goto done;
    }
    dx_mask_gen g;
    dx_mask_gen_init(&g, height, width);
    for (int i = 0; i < n; i++) {
        dx_rng r;
        dx_rng_init(&r, seed, DX_RNG_MASKS, step, (uint64_t)i);
        st = dx_mask_generate(&g, counts[i], &r, gen + (size_t)i * P, err);
        if (st) goto done;
    }
    /* list i < n: generated masks, i >= n: empty; random.shuffle of the list */
    {
        dx_rng r;
        dx_rng_init(&r, seed, DX_RNG_MASKS, step, (uint64_t)n_crops);
        dx_rng_permutation(&r, perm, n_crops);
    }
    int total = 0;
    for (int c = 0; c < n_crops; c++) {
        int src = perm[c];
        memcpy(out->mask + (size_t)c * P, gen + (size_t)src * P, (size_t)P);
        out->count[c] = src < n ? counts[src] : 0;
        total += out->count[c];
    }
    out->n_masked = total;
    out->indices = malloc(sizeof(int32_t) * (size_t)(total > 0 ? total : 1));
    out->weights = malloc(sizeof(float) * (size_t)(total > 0 ? total : 1));
    if (!out->indices || !out->weights) {
        st = dx_fail(err, DX_ENOMEM, "ibot masks: %d indices", total);
        goto done;
    }
    int j = 0;
    for (int c = 0; c < n_crops; c++) {
        /* masks_weight = 1 / clamp(count, 1) in float32 */
        float wgt = 1.0f / (float)(out->count[c] > 0 ? out->count[c] : 1);
        for (int p = 0; p < P; p++)
            if (out->mask[(size_t)c * P + p]) {
                out->indices[j] = (int32_t)((size_t)c * P + p);
                out->weights[j] = wgt;
                j++;
            }
    }
    if (j != total) st = dx_fail(err, DX_ENUMERIC, "ibot masks: %d masked, %d counted", j, total);
done:
    free(counts);
    free(perm);
    free(gen);
    if (st) dx_ibot_masks_free(out);
    return st;
}
