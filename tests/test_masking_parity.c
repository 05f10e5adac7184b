/* test_masking_parity.c - iBOT mask generator and collate rule (spec §6.3, §10 cases 22, 23).
 *
 * The draws come from dx_rng, not Python's `random`, so masks cannot be
 * compared one by one. Checked instead:
 *  - exact counts m for grids 14x14 / 16x16 and m in {0, 20, 98, 128, N};
 *  - every placed block is strictly inside the grid, adds at most cap, and
 *    its (h, w) distribution matches a 100k-draw simulation of the Python
 *    reference (tests/ref/loss_ref.py MaskGen, fixture loss_schedules) to a
 *    total-variation distance of 0.03 and 5.5 standard errors per shape; aspect w/h within [0.3, 1/0.3] up to
 *    the rounding of each side;
 *  - the block phase's mean count and the per-cell masking frequency of full
 *    masks match the Python simulation within 5 standard errors;
 *  - collate: n = int(2B prob) masked crops with counts 39, 58, 78, 98 for
 *    N = 196, B = 4; the rest empty; flat indices ascending and consistent
 *    with the masks; weights 1/n_i; the shuffle puts each count at every crop
 *    position with equal frequency; same (seed, step) -> same masks. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "data/masking.h"
#include "dx_test.h"
#include "io/dx_safetensors.h"

static dx_safetensors ST;

static const double *ref64(const char *name, size_t *n) {
    const dx_st_tensor *t = dx_st_find(&ST, name);
    CHECK(t != NULL && t->dtype == DX_ST_F64, "fixture tensor '%s'", name);
    if (!t) exit(1);
    if (n) *n = t->numel;
    double *v = malloc(t->nbytes);
    memcpy(v, t->data, t->nbytes);
    return v;
}

static void test_counts_exact(void) {
    static const int grids[2] = {14, 16};
    static const int ms[5] = {0, 20, 98, 128, -1};
    dx_err err;
    for (int gi = 0; gi < 2; gi++) {
        int H = grids[gi], N = H * H;
        dx_mask_gen g;
        dx_mask_gen_init(&g, H, H);
        CHECK(g.max_patches == 0.5 * N && g.min_patches == 4, "generator defaults");
        uint8_t *mask = malloc((size_t)N);
        for (int mi = 0; mi < 5; mi++) {
            int m = ms[mi] < 0 ? N : ms[mi];
            int wrong = 0;
            for (int rep = 0; rep < 300; rep++) {
                dx_rng r;
                dx_rng_init(&r, 42, DX_RNG_MASKS, (uint64_t)rep, (uint64_t)m);
                memset(mask, 7, (size_t)N); /* garbage: the generator must clear it */
                if (dx_mask_generate(&g, m, &r, mask, &err)) {
                    wrong++;
                    continue;
                }
                int c = 0, binary = 1;
                for (int i = 0; i < N; i++) c += mask[i], binary &= mask[i] <= 1;
                wrong += c != m || !binary;
            }
            CHECK(wrong == 0, "%dx%d, m = %d: %d of 300 masks without exactly m ones", H, H, m,
                  wrong);
        }
        dx_rng r;
        dx_rng_init(&r, 1, DX_RNG_TEST, 0, 0);
        CHECK(dx_mask_generate(&g, N + 1, &r, mask, &err) == DX_EINVAL, "m > N rejected");
        CHECK(dx_mask_generate(&g, -1, &r, mask, &err) == DX_EINVAL, "m < 0 rejected");
        free(mask);
    }
}

/* first block on an empty grid: geometry and (h, w) distribution vs Python */
static void test_block_shapes(void) {
    static const struct { int H; double cap; const char *key; } cases[] = {
        {14, 98.0, "mg.first_14_98"}, {16, 20.0, "mg.first_16_20"}};
    for (int c = 0; c < 2; c++) {
        int H = cases[c].H, N = H * H;
        size_t n;
        const double *ref = ref64(cases[c].key, &n);
        CHECK(n == (size_t)N, "%s shape", cases[c].key);
        dx_mask_gen g;
        dx_mask_gen_init(&g, H, H);
        double *hist = calloc((size_t)N, sizeof(double));
        uint8_t *mask = malloc((size_t)N);
        int draws = 100000, outside = 0, over_cap = 0, bad_aspect = 0, count_mismatch = 0;
        double log_ratio_sum = 0;
        int placed = 0;
        for (int d = 0; d < draws; d++) {
            dx_rng r;
            dx_rng_init(&r, 9, DX_RNG_TEST, (uint64_t)c, (uint64_t)d);
            memset(mask, 0, (size_t)N);
            int box[4] = {-1, -1, -1, -1};
            int delta = dx_mask_round(&g, mask, cases[c].cap, &r, box);
            if (delta == 0) continue;
            placed++;
            int top = box[0], left = box[1], h = box[2], w = box[3];
            outside += top < 0 || left < 0 || h >= H || w >= H || top + h > H || left + w > H;
            over_cap += delta > cases[c].cap;
            count_mismatch += delta != h * w;
            /* h = round(sqrt(A/r)), w = round(sqrt(A r)) with r in [0.3, 1/0.3]:
             * r = sqrt(A r)/sqrt(A/r) lies in [(w-.5)/(h+.5), (w+.5)/(h-.5)],
             * which must meet [0.3, 1/0.3] */
            double ratio = (double)w / h;
            bad_aspect += (w - 0.5) / (h + 0.5) > 1 / 0.3 + 1e-12 ||
                          (w + 0.5) / (h - 0.5) < 0.3 - 1e-12;
            log_ratio_sum += log(ratio);
            hist[h * H + w] += 1;
        }
        CHECK(outside == 0, "%s: %d blocks outside the grid", cases[c].key, outside);
        CHECK(over_cap == 0, "%s: %d blocks over the cap", cases[c].key, over_cap);
        CHECK(count_mismatch == 0, "%s: new patches != h*w on an empty grid", cases[c].key);
        CHECK(bad_aspect == 0, "%s: %d blocks outside the aspect range", cases[c].key, bad_aspect);
        /* log-aspect is symmetric: mean log(w/h) ~ 0 */
        double mlr = log_ratio_sum / placed;
        CHECK(fabs(mlr) < 0.02, "%s: mean log(w/h) = %.4f", cases[c].key, mlr);
        /* two independent 100k samples: Python against itself gives a total
         * variation of ~0.019 for 14x14 (114 shapes); per shape, the
         * difference must stay within 5.5 standard errors */
        double tv = 0, pref = 0, zmax = 0;
        for (int i = 0; i < N; i++) {
            double p = hist[i] / draws, q = ref[i];
            tv += fabs(p - q);
            pref += q;
            double pm = 0.5 * (p + q);
            if (pm > 0) zmax = fmax(zmax, fabs(p - q) / sqrt(2 * pm * (1 - pm) / draws + 1e-12));
        }
        tv *= 0.5;
        CHECK(tv < 0.03, "%s: total variation vs Python = %.4f", cases[c].key, tv);
        CHECK(zmax < 5.5, "%s: a block shape's frequency is %.2f standard errors off", cases[c].key,
              zmax);
        CHECK_CLOSE((double)placed / draws, pref, 0.01, 0, "fraction of rounds placing a block");
        printf("  %s: %d blocks, TV distance to Python %.4f, worst shape %.2f se, mean log(w/h) %.4f\n",
               cases[c].key, placed, tv, zmax, mlr);
        free(hist), free(mask), free((void *)ref);
    }
}

/* block-phase count and per-cell frequencies of full masks vs Python */
static void test_mask_statistics(void) {
    static const struct { int H, m; } cases[] = {{14, 20}, {14, 98}, {16, 128}};
    for (int c = 0; c < 3; c++) {
        int H = cases[c].H, N = H * H, m = cases[c].m, reps = 4000;
        char key[64];
        snprintf(key, sizeof key, "mg.phase_%d_%d", H, m);
        const double *phase = ref64(key, NULL);
        snprintf(key, sizeof key, "mg.freq_%d_%d", H, m);
        const double *freq = ref64(key, NULL);
        dx_mask_gen g;
        dx_mask_gen_init(&g, H, H);
        uint8_t *mask = malloc((size_t)N);
        double *f = calloc((size_t)N, sizeof(double));
        double s = 0, s2 = 0;
        for (int rep = 0; rep < reps; rep++) {
            dx_rng r;
            dx_rng_init(&r, 5, DX_RNG_TEST, (uint64_t)(100 + c), (uint64_t)rep);
            int cnt = dx_mask_blocks(&g, m, &r, mask);
            s += cnt, s2 += (double)cnt * cnt;
            dx_rng_init(&r, 6, DX_RNG_TEST, (uint64_t)(100 + c), (uint64_t)rep);
            dx_mask_generate(&g, m, &r, mask, NULL);
            for (int i = 0; i < N; i++) f[i] += mask[i];
        }
        double mean = s / reps, sd = sqrt(fmax(s2 / reps - mean * mean, 0));
        /* two independent samples of 4000: 5 standard errors of the difference */
        double se = sqrt(2.0 / reps) * fmax(fmax(sd, phase[1]), 0.5);
        CHECK(fabs(mean - phase[0]) <= 5 * se, "%dx%d m=%d: block phase mean %.3f, Python %.3f",
              H, H, m, mean, phase[0]);
        double worst = 0;
        for (int i = 0; i < N; i++) {
            double p = freq[i], d = fabs(f[i] / reps - p);
            double sei = sqrt(2 * fmax(p * (1 - p), 1e-3) / reps);
            if (d / sei > worst) worst = d / sei;
        }
        CHECK(worst <= 5.5, "%dx%d m=%d: per-cell frequency off by %.2f standard errors", H, H, m,
              worst);
        printf("  %dx%d m=%3d: block phase %.2f +- %.2f (Python %.2f +- %.2f), cell freq max %.2f se\n",
               H, H, m, mean, sd, phase[0], phase[1], worst);
        free(mask), free(f), free((void *)phase), free((void *)freq);
    }
}

static void test_collate(void) {
    dx_err err;
    dx_ibot_masks a, b;
    int crops = 8, H = 14, N = H * H;
    CHECK(dx_ibot_masks_make(&a, crops, H, H, 0.5f, 0.1f, 0.5f, 77, 3, &err) == DX_OK, "collate");
    CHECK(a.n_masked == 39 + 58 + 78 + 98, "n_masked = %d", a.n_masked);
    int hist[4] = {0}, empty = 0;
    for (int c = 0; c < crops; c++) {
        int cnt = 0;
        for (int p = 0; p < N; p++) cnt += a.mask[c * N + p];
        CHECK(cnt == a.count[c], "crop %d count %d vs mask %d", c, a.count[c], cnt);
        if (cnt == 0) empty++;
        for (int k = 0; k < 4; k++) hist[k] += cnt == (int[]){39, 58, 78, 98}[k];
    }
    CHECK(empty == 4 && hist[0] == 1 && hist[1] == 1 && hist[2] == 1 && hist[3] == 1,
          "4 empty crops and one each of 39/58/78/98");
    int sorted = 1, consistent = 1, weights = 1;
    for (int j = 0; j < a.n_masked; j++) {
        if (j) sorted &= a.indices[j] > a.indices[j - 1];
        int c = a.indices[j] / N;
        consistent &= a.mask[a.indices[j]] == 1;
        weights &= a.weights[j] == 1.0f / (float)a.count[c];
    }
    CHECK(sorted && consistent && weights, "flat indices ascending, masked, weights 1/n_i");
    /* sum of weights = number of masked crops (each crop's weights sum to 1) */
    double ws = 0;
    for (int j = 0; j < a.n_masked; j++) ws += a.weights[j];
    CHECK_CLOSE(ws, 4.0, 1e-5, 0, "sum of masks_weight = number of masked crops");

    CHECK(dx_ibot_masks_make(&b, crops, H, H, 0.5f, 0.1f, 0.5f, 77, 3, &err) == DX_OK, "again");
    CHECK(memcmp(a.mask, b.mask, (size_t)crops * N) == 0, "same (seed, step) -> same masks");
    dx_ibot_masks_free(&b);
    CHECK(dx_ibot_masks_make(&b, crops, H, H, 0.5f, 0.1f, 0.5f, 77, 4, &err) == DX_OK, "step 4");
    CHECK(memcmp(a.mask, b.mask, (size_t)crops * N) != 0, "another step -> other masks");
    dx_ibot_masks_free(&b);
    dx_ibot_masks_free(&a);

    /* shuffle: each crop position holds each count with frequency 1/8 */
    int steps = 1600, pos[8][5] = {{0}};
    for (int s = 0; s < steps; s++) {
        if (dx_ibot_masks_make(&a, crops, H, H, 0.5f, 0.1f, 0.5f, 11, (uint64_t)s, &err)) break;
        for (int c = 0; c < crops; c++) {
            int k = 4;
            for (int q = 0; q < 4; q++)
                if (a.count[c] == (int[]){39, 58, 78, 98}[q]) k = q;
            pos[c][k]++;
        }
        dx_ibot_masks_free(&a);
    }
    double worst = 0;
    for (int c = 0; c < crops; c++)
        for (int k = 0; k < 5; k++) {
            double p = k < 4 ? 1.0 / 8 : 0.5;
            double z = fabs(pos[c][k] - p * steps) / sqrt(steps * p * (1 - p));
            if (z > worst) worst = z;
        }
    CHECK(worst < 5, "shuffle: position/count frequencies off by %.2f sigma", worst);
    printf("  collate shuffle over %d steps: worst deviation %.2f sigma\n", steps, worst);

    CHECK(dx_ibot_masks_make(&a, 0, H, H, 0.5f, 0.1f, 0.5f, 1, 1, &err) == DX_EINVAL, "0 crops");
    CHECK(dx_ibot_masks_make(&a, 8, H, H, 0.5f, 0.6f, 0.5f, 1, 1, &err) == DX_EINVAL,
          "ratio min > max");
    /* probability 0: nothing masked */
    CHECK(dx_ibot_masks_make(&a, 8, H, H, 0.0f, 0.1f, 0.5f, 1, 1, &err) == DX_OK &&
              a.n_masked == 0,
          "probability 0 masks nothing");
    dx_ibot_masks_free(&a);
}

int main(void) {
    char path[4096];
    dx_err err;
    /* DINOX_FIXTURE_DIR: CI's freshly regenerated fixtures (label `parity`) */
    const char *fd = getenv("DINOX_FIXTURE_DIR");
    if (fd)
        snprintf(path, sizeof path, "%s/loss_schedules.safetensors", fd);
    else
        dx_test_path(path, sizeof path, "tests/fixtures/loss_schedules.safetensors");
    if (dx_st_open(&ST, path, &err)) {
        fprintf(stderr, "open %s: %s\n", path, err.msg);
        return 1;
    }
    test_counts_exact();
    test_block_shapes();
    test_mask_statistics();
    test_collate();
    dx_st_close(&ST);
    return dx_test_summary();
}
