/* test_ibot_rows.c - the iBOT head is sized for the most masked patches a
 * step can have, not for all 2B x P patches (dx_ssl_max_masked):
 *   - one rank: the bound equals the masked count of every batch the mask
 *     rule draws (the rule fixes the per-crop counts; only their order is
 *     random);
 *   - ranks: each rank's slice of the global masks stays within the bound,
 *     and the bound is the sum of the largest per-crop counts, so some
 *     arrangement reaches it;
 *   - no rule given: every patch (the size before the bound existed);
 *   - a step whose masks exceed the bound is refused with DX_EINVAL, one at
 *     the bound runs;
 *   - dx_ssl_init allocates the iBOT head for the bound, and the plan shrinks. */
#include <stdlib.h>
#include <string.h>

#include "backend/dx_backend.h"
#include "core/dx_rng.h"
#include "data/masking.h"
#include "dx_test.h"
#include "nn/head.h"
#include "train/ssl.h"

static dx_ssl_config tiny(int batch, int mask_batch) {
    dx_ssl_config c;
    memset(&c, 0, sizeof c);
    dx_vit_config_named(&c.vit, "custom", NULL);
    c.vit.dim = 32, c.vit.depth = 1, c.vit.heads = 2, c.vit.registers = 1, c.vit.patch = 8, c.vit.ffn_hidden = 64;
    c.dino_head = (dx_head_config){.hidden = 32, .bottleneck = 16, .prototypes = 64, .nlayers = 3};
    c.ibot_head = (dx_head_config){.hidden = 32, .bottleneck = 16, .prototypes = 256, .nlayers = 3};
    c.batch = batch, c.n_global = 2, c.n_local = 2, c.global_size = 32, c.local_size = 16;
    c.w_dino = 1, c.w_koleo = 0.1f, c.w_ibot = 1, c.student_temp = 0.1f, c.centering = DX_CENTER_SINKHORN;
    c.sk_iters = 3, c.beta1 = 0.9f, c.beta2 = 0.999f, c.eps = 1e-8f, c.layer_decay = 0.9f;
    c.patch_embed_lr_mult = 0.2f, c.seed = 5;
    c.mask_prob = 0.5, c.mask_ratio_min = 0.1f, c.mask_ratio_max = 0.5f, c.mask_batch = mask_batch;
    return c;
}

static int cmp_desc(const void *a, const void *b) { return *(const int *)b - *(const int *)a; }

int main(void) {
    dx_err err;
    const int P = 16; /* 32 px crops, patch 8 */

    /* one rank: every drawn batch has exactly the bound */
    dx_ssl_config c = tiny(4, 4);
    const int bound = dx_ssl_max_masked(&c);
    int all_equal = 1;
    for (int step = 0; step < 50; step++) {
        dx_ibot_masks m;
        dx_status st = dx_ibot_masks_make(&m, 8, 4, 4, c.mask_prob, c.mask_ratio_min, c.mask_ratio_max, 1, step, &err);
        CHECK(st == DX_OK, "masks: %s", err.msg);
        all_equal &= m.n_masked == bound;
        dx_ibot_masks_free(&m);
    }
    CHECK(all_equal && bound < 8 * P, "one rank: 50 batches of the rule have exactly %d masked (bound %d of %d)", bound,
          bound, 8 * P);
    printf("one rank, batch 4: bound %d of %d patch rows\n", bound, 8 * P);

    /* two ranks of batch 2 within a global batch of 4 ... and 4 ranks of batch 4 in 16 */
    const int ranks[2][2] = {{2, 4}, {4, 16}};
    for (int t = 0; t < 2; t++) {
        const int Bl = ranks[t][0], Bg = ranks[t][1], W = Bg / Bl;
        dx_ssl_config cr = tiny(Bl, Bg);
        const int br = dx_ssl_max_masked(&cr);
        int worst = 0, sum_top = 0;
        for (int step = 0; step < 200; step++) {
            dx_ibot_masks m;
            if (dx_ibot_masks_make(&m, 2 * Bg, 4, 4, cr.mask_prob, cr.mask_ratio_min, cr.mask_ratio_max, 2, step, &err))
                break;
            for (int r = 0; r < W; r++) { /* rank r's rows: crop c*Bg + r*Bl .. +Bl (the trainer's slicing) */
                int M = 0;
                for (int g = 0; g < 2; g++)
                    for (int i = 0; i < Bl; i++) M += m.count[g * Bg + r * Bl + i];
                if (M > worst) worst = M;
            }
            if (step == 0) { /* the largest 2*Bl per-crop counts, from the drawn masks themselves */
                int *cnt = malloc(sizeof(int) * 2 * Bg);
                memcpy(cnt, m.count, sizeof(int) * 2 * Bg);
                qsort(cnt, (size_t)(2 * Bg), sizeof *cnt, cmp_desc);
                for (int i = 0; i < 2 * Bl; i++) sum_top += cnt[i];
                free(cnt);
            }
            dx_ibot_masks_free(&m);
        }
        CHECK(worst <= br && br == sum_top, "%d ranks of batch %d: largest rank slice %d over 200 steps, bound %d, "
              "largest %d counts sum to %d", W, Bl, worst, br, 2 * Bl, sum_top);
        printf("%d ranks of batch %d: bound %d (sum of the largest %d per-crop counts), largest slice drawn %d\n", W,
               Bl, br, 2 * Bl, worst);
    }

    /* no rule: all patches */
    dx_ssl_config cu = tiny(4, 0);
    cu.mask_ratio_max = 0;
    CHECK(dx_ssl_max_masked(&cu) == 8 * P, "no rule: %d rows, %d expected", dx_ssl_max_masked(&cu), 8 * P);

    /* plan = allocation, and smaller than without the bound */
    dx_backend *be;
    if (dx_backend_create(&be, &(dx_backend_params){.nthreads = 1}, &err)) return 1;
    size_t st_b, acts_b, st_u, acts_u;
    CHECK(dx_ssl_plan_bytes(&c, &st_b, &acts_b, &err) == DX_OK && dx_ssl_plan_bytes(&cu, &st_u, &acts_u, &err) == DX_OK,
          "plan bytes");
    dx_ssl s;
    dx_status st = dx_ssl_init(&s, &c, be, &err);
    CHECK(st == DX_OK, "init: %s", err.msg);
    if (st) return dx_test_summary();
    dx_ssl_init_weights(&s, be, &err);
    CHECK(s.max_masked == bound && s.hi_s.bytes == dx_head_acts_bytes(&s.ibot, bound, DX_HEAD_GRAD_IN_PLACE) &&
              s.hi_t.bytes == dx_head_acts_bytes(&s.ibot, bound, 0),
          "the iBOT head's student and teacher activations are allocated for %d rows (%zu + %zu bytes)", s.max_masked,
          s.hi_s.bytes, s.hi_t.bytes);
    CHECK(acts_b < acts_u, "bounded plan %zu < unbounded %zu bytes", acts_b, acts_u);
    printf("activations + scratch: %zu bytes with the bound, %zu without\n", acts_b, acts_u);

    /* a step at the bound runs; one patch more is refused */
    const int G = 8;
    float *gl = calloc((size_t)G * 3 * 32 * 32, sizeof(float)), *lc = calloc((size_t)8 * 3 * 16 * 16, sizeof(float));
    uint8_t *mk = calloc((size_t)G * P, 1);
    dx_rng r;
    dx_rng_init(&r, 9, DX_RNG_TEST, 1, 0);
    for (size_t i = 0; i < (size_t)G * 3 * 32 * 32; i++) gl[i] = (float)dx_rng_normal(&r);
    for (size_t i = 0; i < (size_t)8 * 3 * 16 * 16; i++) lc[i] = (float)dx_rng_normal(&r);
    for (int i = 0; i < bound; i++) mk[i] = 1; /* crops 0.. filled row by row */
    dx_ssl_batch b = {.global = gl, .local = lc, .masks = mk};
    dx_ssl_sched sc = {.lr = 1e-3f, .last_layer_lr = 1e-3f, .wd = 0.04f, .momentum = 0.99f, .teacher_temp = 0.05f,
                       .lambda_local = 1.0f};
    dx_ssl_metrics m;
    st = dx_ssl_step(&s, be, &b, 0, &sc, &m, &err);
    CHECK(st == DX_OK && m.n_masked == bound && !m.nonfinite, "a step with %d masked runs: %s", bound,
          st ? err.msg : "ok");
    mk[bound] = 1;
    st = dx_ssl_step(&s, be, &b, 1, &sc, &m, &err);
    CHECK(st == DX_EINVAL && strstr(err.msg, "more than"), "%d masked refused: %s", bound + 1, err.msg);
    free(gl), free(lc), free(mk);
    dx_ssl_free(&s, be);
    dx_backend_destroy(be);
    return dx_test_summary();
}
