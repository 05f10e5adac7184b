/* test_micro_batch.c - the student in passes (dx_ssl_config.micro_batch) is
 * the same step as one pass over the batch:
 *   - B = 4 in passes of 2 and of 1 against one pass, fp32, every loss term
 *     (DINO local + global, KoLeo in groups of 1 pass, iBOT from the mask
 *     rule, Gram with larger Gram crops and teacher chunks) and the gradient
 *     norms over 3 steps, and the whole gradient vector of the first step,
 *     to rounding (stochastic depth off: it keeps a share of each pass).
 *     Weights after AdamW are not compared: its m / sqrt(v) turns a
 *     gradient that is zero in one run and 1e-12 in the other into a full
 *     lr-sized step;
 *   - the activations allocated are the plan's, and the student's are one
 *     pass's: less than without passes;
 *   - the health statistics are finite and the iBOT student entropy is the
 *     batch's (matches one pass);
 *   - the iBOT teacher's targets formed pass by pass (ibot_recompute:
 *     Sinkhorn-Knopp over chunks of recomputed logits), in one pass and in
 *     passes of 2, against one pass with the whole [M, K] targets: the same
 *     terms, gradients and iBOT target health, and the plan's iBOT bytes are
 *     the allocation's;
 *   - configurations that cannot be split are refused with a message:
 *     a micro_batch that does not divide the batch, a KoLeo group that does
 *     not divide a pass, the batch-level Gram matrix, ibot_recompute with
 *     softmax centring. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend/dx_backend.h"
#include "core/dx_rng.h"
#include "data/masking.h"
#include "dx_test.h"
#include "train/ssl.h"

static dx_ssl_config tiny(int micro) {
    dx_ssl_config c;
    memset(&c, 0, sizeof c);
    dx_vit_config_named(&c.vit, "custom", NULL);
    c.vit.dim = 32, c.vit.depth = 2, c.vit.heads = 2, c.vit.registers = 1, c.vit.patch = 8, c.vit.ffn_hidden = 64;
    c.vit.layerscale_init = 0.5f;
    c.vit.drop_path = 0, c.vit.rope_shift = 1, c.vit.rope_jitter = 1.5f, c.vit.rope_rescale = 2; /* one draw per step */
    c.dino_head = (dx_head_config){.hidden = 48, .bottleneck = 16, .prototypes = 64, .nlayers = 3};
    c.ibot_head = (dx_head_config){.hidden = 40, .bottleneck = 16, .prototypes = 48, .nlayers = 3};
    c.batch = 4, c.micro_batch = micro, c.koleo_group = 2;
    c.n_global = 2, c.n_local = 2, c.global_size = 32, c.local_size = 16;
    c.use_gram = 1, c.gram_img_level = 1, c.gram_size = 48; /* 6 x 6 Gram tokens resized to 4 x 4 */
    c.teacher_chunk = 2;
    c.w_dino = 1, c.w_koleo = 0.1f, c.w_ibot = 1, c.student_temp = 0.1f, c.centering = DX_CENTER_SINKHORN;
    c.sk_iters = 3, c.beta1 = 0.9f, c.beta2 = 0.999f, c.eps = 1e-8f, c.layer_decay = 0.9f;
    c.patch_embed_lr_mult = 0.2f, c.seed = 11, c.clip_grad = 3.0f;
    c.mask_prob = 0.5, c.mask_ratio_min = 0.1f, c.mask_ratio_max = 0.5f;
    return c;
}

typedef struct {
    dx_ssl_metrics m[3];
    dx_ssl_health h;
    float *grad; /* step 0's clipped gradient */
    size_t n;
    int koleo;
    size_t student_acts;
} run_result;

/* |a - b| / |b| over the whole vector */
static double relnorm(const float *a, const float *b, size_t n) {
    double d = 0, r = 0;
    for (size_t i = 0; i < n; i++) {
        d += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        r += (double)b[i] * b[i];
    }
    return r > 0 && isfinite(d) ? sqrt(d / r) : INFINITY;
}

/* three steps from the same initialisation and inputs, KoLeo in groups of 2 (or off) */
static int run(dx_backend *be, int micro, int koleo, int recompute, run_result *r) {
    dx_err err;
    dx_ssl_config c = tiny(micro);
    if (!koleo) c.w_koleo = 0, c.koleo_group = 0;
    c.ibot_recompute = recompute;
    dx_ssl s;
    dx_status st = dx_ssl_init(&s, &c, be, &err);
    CHECK(st == DX_OK, "init micro_batch %d: %s", micro, st ? err.msg : "");
    if (st) return 1;
    dx_ssl_init_weights(&s, be, &err);
    const int B = c.batch, G = 2 * B, L = c.n_local * B;
    const size_t ng = (size_t)G * 3 * 32 * 32, nl = (size_t)L * 3 * 16 * 16, nr = (size_t)G * 3 * 48 * 48;
    float *gl = malloc(ng * sizeof(float)), *lc = malloc(nl * sizeof(float)), *gr = malloc(nr * sizeof(float));
    dx_ssl_sched sc = {.lr = 2e-3f, .last_layer_lr = 2e-3f, .wd = 0.04f, .momentum = 0.9f, .teacher_temp = 0.05f,
                       .lambda_local = 1.0f, .w_gram = 1.0f};
    r->n = s.tab.total;
    r->koleo = koleo;
    r->grad = malloc(r->n * sizeof(float));
    for (int step = 0; step < 3 && !st; step++) {
        dx_rng rg;
        dx_rng_init(&rg, 3, DX_RNG_TEST, (uint64_t)step, 0);
        for (size_t i = 0; i < ng; i++) gl[i] = (float)dx_rng_normal(&rg);
        for (size_t i = 0; i < nl; i++) lc[i] = (float)dx_rng_normal(&rg);
        for (size_t i = 0; i < nr; i++) gr[i] = (float)dx_rng_normal(&rg);
        dx_ibot_masks mk;
        if ((st = dx_ibot_masks_make(&mk, G, 4, 4, c.mask_prob, c.mask_ratio_min, c.mask_ratio_max, 5, (uint64_t)step,
                                     &err)))
            break;
        dx_ssl_batch b = {.global = gl, .local = lc, .gram = gr, .masks = mk.mask};
        st = dx_ssl_step(&s, be, &b, step, &sc, &r->m[step], &err);
        CHECK(st == DX_OK && !r->m[step].nonfinite, "micro_batch %d step %d: %s", micro, step, st ? err.msg : "ok");
        if (!st && step == 0) be->ops->download(be, r->grad, s.g, r->n * sizeof(float));
        if (!st && step == 2) dx_ssl_health_compute(&s, be, &sc, r->m[step].n_masked, NULL, &r->h);
        dx_ibot_masks_free(&mk);
    }
    r->student_acts = s.s_glob.bytes + s.s_loc.bytes + s.hd_s.bytes + s.hi_s.bytes;
    /* what dx_ssl_init allocated for the student and heads is what the plan counts */
    size_t state, parts[DX_SSL_PLAN_PARTS];
    CHECK(dx_ssl_plan_parts(&c, &state, parts, &err) == DX_OK, "plan parts");
    const size_t Ki = (size_t)c.ibot_head.prototypes, Mx = (size_t)s.max_masked;
    const size_t ibot = s.hi_s.bytes + s.hi_t.bytes + /* one pass's targets and Sinkhorn-Knopp's factors */
                        (recompute ? sizeof(float) * s.max_masked_mb * Ki + sizeof(double) * (3 * Ki + Mx) +
                                         sizeof(int32_t) * Mx : 0);
    CHECK(parts[0] == s.s_glob.bytes && parts[1] == s.s_loc.bytes && parts[3] == s.g_glob.bytes && parts[5] == ibot,
          "micro_batch %d%s: the plan's student (%zu, %zu), Gram teacher (%zu) and iBOT (%zu) bytes are the "
          "allocation's (%zu, %zu, %zu, %zu)", micro, recompute ? ", ibot_recompute" : "", parts[0], parts[1],
          parts[3], parts[5], s.s_glob.bytes, s.s_loc.bytes, s.g_glob.bytes, ibot);
    free(gl), free(lc), free(gr);
    dx_ssl_free(&s, be);
    return st != DX_OK;
}

static void compare(const run_result *a, const run_result *ref, const char *what, double tol) {
    for (int k = 0; k < 3; k++) {
        const dx_ssl_metrics *x = &a->m[k], *y = &ref->m[k];
        const double vx[] = {x->total, x->dino_local, x->dino_global, x->koleo, x->ibot, x->gram,
                             x->gnorm_backbone, x->gnorm_dino, x->gnorm_ibot};
        const double vy[] = {y->total, y->dino_local, y->dino_global, y->koleo, y->ibot, y->gram,
                             y->gnorm_backbone, y->gnorm_dino, y->gnorm_ibot};
        double worst = 0;
        for (int i = 0; i < 9; i++) {
            if (i == 3 && !ref->koleo) continue; /* unweighted KoLeo of lone images: not a term of this run */
            double d = fabs(vx[i] - vy[i]) / (1e-6 + fabs(vy[i]));
            worst = d > worst || isnan(d) ? (isnan(d) ? INFINITY : d) : worst;
        }
        CHECK(worst < tol && x->n_masked == y->n_masked && x->n_masked > 0,
              "%s, step %d: loss terms and gradient norms within %.1e of one pass (worst %.2e; total %.9g vs %.9g, "
              "iBOT %.9g vs %.9g, Gram %.9g vs %.9g, %d masked)", what, k, tol, worst, x->total, y->total, x->ibot,
              y->ibot, x->gram, y->gram, x->n_masked);
    }
    const double dg = relnorm(a->grad, ref->grad, a->n);
    CHECK(dg < tol, "%s: step 0's gradient (%zu entries) within %.1e of one pass's: |g - g1| / |g1| = %.2e", what,
          a->n, tol, dg);
    printf("%s: total %.9g (one pass %.9g) at step 2; step 0's gradient |g - g1| / |g1| = %.2e\n", what,
           a->m[2].total, ref->m[2].total, dg);
}

static void free_result(run_result *r) { free(r->grad); }

int main(void) {
    dx_err err;
    dx_backend *be;
    if (dx_backend_create(&be, &(dx_backend_params){.nthreads = 1}, &err)) return 1;

    run_result one, two, one_nk, single, one_rc, two_rc;
    memset(&one, 0, sizeof one), memset(&two, 0, sizeof two);
    memset(&one_nk, 0, sizeof one_nk), memset(&single, 0, sizeof single);
    memset(&one_rc, 0, sizeof one_rc), memset(&two_rc, 0, sizeof two_rc);
    if (run(be, 0, 1, 0, &one) || run(be, 2, 1, 0, &two)) return dx_test_summary();
    compare(&two, &one, "2 passes of 2 images", 2e-5);
    CHECK(two.student_acts < one.student_acts, "the student's activations shrink: %zu bytes in passes of 2, %zu in one",
          two.student_acts, one.student_acts);
    CHECK(fabs(two.h.ibot_s_kl_uniform - one.h.ibot_s_kl_uniform) < 1e-4 * (1 + fabs(one.h.ibot_s_kl_uniform)) &&
              fabs(two.h.dino_t_entropy - one.h.dino_t_entropy) < 1e-5 && isfinite(two.h.dino_s_kl_uniform) &&
              isfinite(two.h.cls_erank),
          "health: iBOT student KL %.6g vs %.6g (the batch's, over both passes), teacher entropy %.6g vs %.6g",
          two.h.ibot_s_kl_uniform, one.h.ibot_s_kl_uniform, two.h.dino_t_entropy, one.h.dino_t_entropy);
    /* passes of one image each (a lone image has no KoLeo neighbour: both runs without KoLeo) */
    if (!run(be, 0, 0, 0, &one_nk) && !run(be, 1, 0, 0, &single)) compare(&single, &one_nk, "4 passes of 1 image", 2e-5);

    /* the iBOT targets pass by pass (Sinkhorn-Knopp over chunks of recomputed logits) */
    if (!run(be, 0, 1, 1, &one_rc)) compare(&one_rc, &one, "ibot_recompute, one pass", 2e-5);
    if (!run(be, 2, 1, 1, &two_rc)) {
        compare(&two_rc, &one, "ibot_recompute, 2 passes of 2 images", 2e-5);
        CHECK(fabs(two_rc.h.ibot_t_entropy - one.h.ibot_t_entropy) < 1e-5 &&
                  fabs(two_rc.h.ibot_t_used - one.h.ibot_t_used) <= 1 && two_rc.h.ibot_t_used > 0,
              "health with ibot_recompute: iBOT target entropy %.7g vs %.7g ln K, prototypes used %g vs %g",
              two_rc.h.ibot_t_entropy, one.h.ibot_t_entropy, two_rc.h.ibot_t_used, one.h.ibot_t_used);
    }
    { /* batch 16 in passes of 2 with DINOv3's 65536 prototypes (the plan only): one pass's targets instead of
       * the batch's. A pass is sized for the most masked patches its crops can get (the largest
       * per-crop counts of the mask rule), so with few passes it is nearly the batch's and nothing is saved */
        dx_ssl_config c = tiny(2);
        c.batch = 16;
        c.ibot_head.prototypes = 65536;
        size_t state, full[DX_SSL_PLAN_PARTS], rc[DX_SSL_PLAN_PARTS];
        dx_status s1 = dx_ssl_plan_parts(&c, &state, full, &err);
        c.ibot_recompute = 1;
        dx_status s2 = dx_ssl_plan_parts(&c, &state, rc, &err);
        CHECK(!s1 && !s2 && rc[5] < full[5] * 0.7,
              "ibot_recompute, batch 16 in passes of 2, K = 65536: the plan's iBOT bytes %zu < 0.7 x %zu", rc[5], full[5]);
    }

    /* refusals */
    const struct {
        int micro, koleo, img_level;
        const char *needle;
    } bad[] = {{3, 0, 1, "train.micro_batch 3"}, {2, 4, 1, "loss.koleo_group 4"}, {2, 0, 0, "gram.img_level"},
               {2, 0, 1, "train.ibot_recompute"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        dx_ssl_config c = tiny(bad[i].micro);
        c.koleo_group = bad[i].koleo, c.gram_img_level = bad[i].img_level;
        if (i == 3) c.ibot_recompute = 1, c.centering = DX_CENTER_SOFTMAX;
        dx_ssl s;
        dx_status st = dx_ssl_init(&s, &c, be, &err);
        CHECK(st == DX_EINVAL && strstr(err.msg, bad[i].needle), "refused (%s): %s", bad[i].needle,
              st ? err.msg : "accepted");
        dx_ssl_free(&s, be);
        size_t a, b2;
        if (i == 0)
            CHECK(dx_ssl_plan_bytes(&c, &a, &b2, &err) == DX_EINVAL, "the plan refuses micro_batch 3 of 4 too");
    }
    free_result(&one), free_result(&two), free_result(&one_nk), free_result(&single);
    free_result(&one_rc), free_result(&two_rc);
    dx_backend_destroy(be);
    return dx_test_summary();
}
