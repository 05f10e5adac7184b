/* synth_lesion.c - nodules, small (<3 mm) nodules and non-nodule scars:
 * attribute model, placement in the lung, shape/appearance, true masks.
 *
 * Attribute model: a latent malignancy m ~ N(0,1)
 * correlates (with noise) with the diameter (log-normal, median ~6 mm,
 * sigma_log 0.5, truncated to 3-30 mm), spiculation, lobulation, poor margins,
 * internal heterogeneity and part-solid texture; benign calcification lowers
 * it. The continuous malignancy score the readers round is a noisy linear
 * combination of the *visible* attributes, so that size alone predicts the
 * rated malignancy with AUC ~0.8, not 1.
 *
 * Shape: an ellipsoid (sphericity) in a random frame whose radius is
 * modulated by narrow bumps (lobulation), a soft edge of width margin_w
 * (sharp ... ill-defined), optional spicules (thin tubes), solid / part-solid /
 * ground-glass interiors and calcification patterns. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "synth/synth_internal.h"

static double sigmoid(double x) { return 1 / (1 + exp(-x)); }

static void random_rotation(double q[9], dx_rng *r) {
    /* Gram-Schmidt of two Gaussian vectors */
    double a[3] = {dx_rng_normal(r), dx_rng_normal(r), dx_rng_normal(r)};
    double b[3] = {dx_rng_normal(r), dx_rng_normal(r), dx_rng_normal(r)};
    double na = sqrt(a[0] * a[0] + a[1] * a[1] + a[2] * a[2]) + 1e-12;
    for (int i = 0; i < 3; i++) a[i] /= na;
    double d = a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
    for (int i = 0; i < 3; i++) b[i] -= d * a[i];
    double nb = sqrt(b[0] * b[0] + b[1] * b[1] + b[2] * b[2]) + 1e-12;
    for (int i = 0; i < 3; i++) b[i] /= nb;
    double c[3] = {a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]};
    memcpy(q, a, sizeof a);
    memcpy(q + 3, b, sizeof b);
    memcpy(q + 6, c, sizeof c);
}

void synth_nodule_attributes(synth_lesion *L, dx_rng *r, int cls) {
    memset(L, 0, sizeof *L);
    L->cls = cls;
    random_rotation(L->q, r);
    double m = dx_rng_normal(r);
    L->malig_latent = m;
    if (cls == SYNTH_NODULE) {
        double d = 0;
        for (int t = 0; t < 64; t++) {
            d = 6.0 * exp(0.5 * (0.5 * m + 0.866 * dx_rng_normal(r)));
            if (d >= 3 && d <= 30) break;
        }
        L->diam = synth_clamp(d, 3, 30);
        double u = dx_rng_uniform(r);
        double p_part = 0.06 + (m > 0.5 ? 0.07 : 0);
        L->texture = u < 0.07 ? SYNTH_GGO : u < 0.07 + p_part ? SYNTH_PART_SOLID : SYNTH_SOLID;
        if (L->texture == SYNTH_SOLID && m < -0.2 && dx_rng_uniform(r) < 0.32)
            L->calc = 1 + (int)dx_rng_below(r, 4);
        L->spic = synth_clamp(1 + fmax(0, 0.9 * m + 0.7 * dx_rng_normal(r) - 0.3), 1, 5);
        L->lob = synth_clamp(1 + fmax(0, 0.8 * m + 0.8 * dx_rng_normal(r) - 0.2), 1, 5);
        L->sharp = synth_clamp(4.1 - 0.7 * m + 0.7 * dx_rng_normal(r) - (L->texture == SYNTH_GGO ? 1.2 : 0), 1, 5);
        L->sphericity = synth_clamp(4.0 - 0.25 * m + 0.6 * dx_rng_normal(r), 2, 5);
        if (L->calc) L->spic = 1, L->lob = fmin(L->lob, 2), L->sharp = fmax(L->sharp, 4);
        double zs = log(L->diam / 6.0) / 0.5;
        /* what the readers' malignancy rating is made of: size and the visible shape cues */
        double eta = 0.6 * zs + 0.55 * (L->spic - 1) + 0.4 * (L->lob - 1) - 0.35 * (L->sharp - 3) +
                     0.5 * (L->texture == SYNTH_PART_SOLID) - 0.3 * (L->texture == SYNTH_GGO) +
                     0.2 * m + 0.4 * dx_rng_normal(r);
        L->malig_score = L->calc ? synth_clamp(1.4 + 0.3 * dx_rng_normal(r), 1, 2.4)
                                 : synth_clamp(3.0 + 0.45 * eta, 1, 5);
        L->subtlety = 1 + 4 * sigmoid(1.6 * zs + 1.8 - 1.6 * (L->texture == SYNTH_GGO) - 0.7 * (L->texture == SYNTH_PART_SOLID));
        L->hetero = 4 + 14 * fmax(0, m);
        L->hu_solid = dx_rng_uniform_range(r, 5, 55);
        L->hu_ggo = dx_rng_uniform_range(r, -720, -480);
        L->core_frac = dx_rng_uniform_range(r, 0.3, 0.6);
        L->nbump = 2 + (int)(L->lob * 0.8);
        for (int i = 0; i < L->nbump && i < SYNTH_MAX_BUMPS; i++) {
            double v[3] = {dx_rng_normal(r), dx_rng_normal(r), dx_rng_normal(r)};
            double n = sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2]) + 1e-12;
            for (int k = 0; k < 3; k++) L->bump_u[i][k] = v[k] / n;
            L->bump_a[i] = (0.03 + 0.07 * (L->lob - 1)) * dx_rng_uniform_range(r, 0.6, 1.2);
        }
        if (L->nbump > SYNTH_MAX_BUMPS) L->nbump = SYNTH_MAX_BUMPS;
        L->n_spicules = L->spic < 1.5 ? 0 : (int)((L->spic - 1) * 2.5);
        L->margin_w = 0.2 + (5 - L->sharp) * 0.55;
    } else if (cls == SYNTH_SMALL_NODULE) {
        L->diam = dx_rng_uniform_range(r, 1.6, 2.9);
        L->texture = SYNTH_SOLID;
        if (dx_rng_uniform(r) < 0.3) L->calc = SYNTH_CALC_SOLID;
        L->spic = L->lob = 1, L->sharp = 4.5, L->sphericity = 4.5, L->subtlety = 2;
        L->malig_score = 1.5;
        L->hu_solid = dx_rng_uniform_range(r, 10, 50);
        L->margin_w = 0.3;
        L->hetero = 3;
    } else { /* non-nodule: flat scar */
        L->diam = dx_rng_uniform_range(r, 4, 12);
        L->texture = SYNTH_SOLID;
        L->spic = L->lob = 1, L->sharp = 2.5, L->sphericity = 1.5, L->subtlety = 3;
        L->malig_score = 1;
        L->hu_solid = dx_rng_uniform_range(r, -250, -50);
        L->margin_w = 0.9;
        L->hetero = 10;
    }
    L->r0 = L->diam / 2;
    double e = (5 - L->sphericity) * 0.13;
    if (cls == SYNTH_NON_NODULE) L->ax[0] = 2.0, L->ax[1] = 1.0, L->ax[2] = 0.5;
    else L->ax[0] = 1 + e, L->ax[1] = 1, L->ax[2] = 1 / (1 + e);
}

double synth_lesion_level(const synth_lesion *L, double x, double y, double z) {
    double v[3] = {x - L->c[0], y - L->c[1], z - L->c[2]};
    double l[3];
    for (int i = 0; i < 3; i++)
        l[i] = (L->q[3 * i] * v[0] + L->q[3 * i + 1] * v[1] + L->q[3 * i + 2] * v[2]) / L->ax[i];
    double dist = sqrt(l[0] * l[0] + l[1] * l[1] + l[2] * l[2]);
    if (dist < 1e-9) return 0;
    double R = 1;
    for (int j = 0; j < L->nbump; j++) {
        double c = (l[0] * L->bump_u[j][0] + l[1] * L->bump_u[j][1] + l[2] * L->bump_u[j][2]) / dist;
        R += L->bump_a[j] * exp((c - 1) / 0.12);
    }
    return dist / (L->r0 * R);
}

int synth_lesion_inside(const synth_lesion *L, const synth_anatomy *an, double x, double y, double z) {
    if (x < L->lo[0] || x > L->hi[0] || y < L->lo[1] || y > L->hi[1] || z < L->lo[2] || z > L->hi[2]) return 0;
    return synth_lesion_level(L, x, y, z) <= 1 && synth_in_lung(an, x, y, z);
}

/* Cheap deterministic internal texture: hash of the 1 mm cell, in [-1, 1]. */
static double cell_noise(double x, double y, double z) {
    uint32_t h = (uint32_t)(int32_t)floor(x) * 73856093u ^ (uint32_t)(int32_t)floor(y) * 19349663u ^
                 (uint32_t)(int32_t)floor(z) * 83492791u;
    h ^= h >> 13, h *= 0x5bd1e995u, h ^= h >> 15;
    return (h & 0xffff) / 32767.5 - 1;
}

static double lesion_hu(const synth_lesion *L, double d, double x, double y, double z) {
    double t = L->hetero * cell_noise(x, y, z);
    double v;
    if (L->texture == SYNTH_GGO) v = L->hu_ggo + t;
    else if (L->texture == SYNTH_PART_SOLID) {
        double f = synth_clamp(0.5 - (d - L->core_frac) * L->r0 / 0.6, 0, 1);
        v = L->hu_ggo + (L->hu_solid - L->hu_ggo) * f + t;
    } else v = L->hu_solid + t;
    switch (L->calc) {
    case SYNTH_CALC_CENTRAL: if (d < 0.35) v = 650; break;
    case SYNTH_CALC_LAMINATED: if (d < 0.15 || (d > 0.45 && d < 0.6)) v = 520; break;
    case SYNTH_CALC_POPCORN:
        if (fabs(sin(d * 9.0 + cell_noise(x * 0.5, y * 0.5, z * 0.5))) > 0.8 && d < 0.8) v = 700;
        break;
    case SYNTH_CALC_SOLID: v = 450 + 0.5 * t; break;
    default: break;
    }
    return v;
}

void synth_lesions_plane(const synth_lesions *ls, const synth_anatomy *an, double z, double x0,
                         double y0, double step, int w, int h, float *buf) {
    for (int n = 0; n < ls->n; n++) {
        const synth_lesion *L = &ls->l[n];
        if (z < L->lo[2] || z > L->hi[2]) continue;
        int u0 = (int)floor((L->lo[0] - x0) / step), u1 = (int)ceil((L->hi[0] - x0) / step);
        int v0 = (int)floor((L->lo[1] - y0) / step), v1 = (int)ceil((L->hi[1] - y0) / step);
        if (u0 < 0) u0 = 0;
        if (v0 < 0) v0 = 0;
        if (u1 > w - 1) u1 = w - 1;
        if (v1 > h - 1) v1 = h - 1;
        for (int v = v0; v <= v1; v++) {
            double y = y0 + v * step;
            for (int u = u0; u <= u1; u++) {
                double x = x0 + u * step;
                double d = synth_lesion_level(L, x, y, z);
                double occ = synth_clamp(0.5 - (d - 1) * L->r0 / L->margin_w, 0, 1);
                if (occ <= 0 || !synth_in_lung(an, x, y, z)) continue;
                float *p = &buf[(size_t)v * w + u];
                *p = (float)(*p * (1 - occ) + lesion_hu(L, d, x, y, z) * occ);
            }
        }
    }
}

static void set_box(synth_lesion *L) {
    double ext = 0;
    for (int i = 0; i < 3; i++) ext = fmax(ext, L->ax[i]);
    double bump = 0;
    for (int j = 0; j < L->nbump; j++) bump += L->bump_a[j];
    double R = L->r0 * ext * (1 + bump) + L->margin_w + 0.5;
    for (int i = 0; i < 3; i++) L->lo[i] = L->c[i] - R, L->hi[i] = L->c[i] + R;
}

/* Is the lesion's whole body (6 probe points at radius r) in the lung? */
static int fits(const synth_anatomy *an, const double c[3], double r) {
    if (!synth_in_lung(an, c[0], c[1], c[2])) return 0;
    static const int dirs[6][3] = {{1, 0, 0}, {-1, 0, 0}, {0, 1, 0}, {0, -1, 0}, {0, 0, 1}, {0, 0, -1}};
    for (int i = 0; i < 6; i++)
        if (!synth_in_lung(an, c[0] + dirs[i][0] * r, c[1] + dirs[i][1] * r, c[2] + dirs[i][2] * r)) return 0;
    return 1;
}

static int clear_of(const synth_lesions *ls, const double c[3], double r) {
    for (int i = 0; i < ls->n; i++) {
        const synth_lesion *o = &ls->l[i];
        double dx = c[0] - o->c[0], dy = c[1] - o->c[1], dz = c[2] - o->c[2];
        double need = r + o->r0 * 1.6 + 4;
        if (dx * dx + dy * dy + dz * dz < need * need) return 0;
    }
    return 1;
}

static int place(synth_lesion *L, const synth_lesions *ls, synth_anatomy *an, const synth_scan *s, dx_rng *r) {
    double zlo = s->z[0] + fmin(L->r0, 4), zhi = s->z[s->nz - 1] - fmin(L->r0, 4);
    if (zhi < zlo) zlo = zhi = 0.5 * (s->z[0] + s->z[s->nz - 1]);
    double rext = L->r0 * 1.3;
    L->location = SYNTH_LOC_PARENCHYMA;
    double u = dx_rng_uniform(r);
    int want = L->cls != SYNTH_NODULE ? SYNTH_LOC_PARENCHYMA
               : u < 0.2                ? SYNTH_LOC_JUXTA_PLEURAL
               : u < 0.37               ? SYNTH_LOC_JUXTA_VASCULAR
                                        : SYNTH_LOC_PARENCHYMA;
    for (int t = 0; t < 4000; t++) {
        double c[3] = {an->bx + dx_rng_uniform_range(r, -an->cav_a, an->cav_a),
                       an->by + dx_rng_uniform_range(r, -an->cav_b, an->cav_b), dx_rng_uniform_range(r, zlo, zhi)};
        if (!synth_in_lung(an, c[0], c[1], c[2])) continue;
        int loc = t < 3000 ? want : SYNTH_LOC_PARENCHYMA;
        if (loc == SYNTH_LOC_JUXTA_PLEURAL) {
            /* march outward from the lung centre until the lung ends */
            int side = synth_lung_side(an, c[0]);
            double dir[2] = {c[0] - (side ? an->med_x + an->cav_a * 0.5 : an->med_x - an->cav_a * 0.5),
                             c[1] - an->by};
            double n = hypot(dir[0], dir[1]);
            if (n < 1e-6) continue;
            dir[0] /= n, dir[1] /= n;
            double p[3] = {c[0], c[1], c[2]};
            int steps = 0;
            while (synth_in_lung(an, p[0], p[1], p[2]) && steps++ < 800) p[0] += dir[0] * 0.5, p[1] += dir[1] * 0.5;
            c[0] = p[0] - dir[0] * (0.8 * L->r0 + 0.5), c[1] = p[1] - dir[1] * (0.8 * L->r0 + 0.5);
            if (!synth_in_lung(an, c[0], c[1], c[2]) || !clear_of(ls, c, rext)) continue;
        } else if (loc == SYNTH_LOC_JUXTA_VASCULAR) {
            if (an->vessels.n == 0) continue;
            const synth_tube *tb = &an->vessels.t[dx_rng_below(r, (uint32_t)an->vessels.n)];
            double vr = 0.5 * (tb->ra + tb->rb);
            if (vr < 0.7 || vr > 3.5) continue;
            double m[3] = {0.5 * (tb->a[0] + tb->b[0]), 0.5 * (tb->a[1] + tb->b[1]), 0.5 * (tb->a[2] + tb->b[2])};
            if (m[2] < zlo || m[2] > zhi) continue;
            double ax[3] = {tb->b[0] - tb->a[0], tb->b[1] - tb->a[1], tb->b[2] - tb->a[2]};
            double g[3] = {dx_rng_normal(r), dx_rng_normal(r), dx_rng_normal(r)};
            double an2 = ax[0] * ax[0] + ax[1] * ax[1] + ax[2] * ax[2] + 1e-12;
            double dp = (g[0] * ax[0] + g[1] * ax[1] + g[2] * ax[2]) / an2;
            for (int i = 0; i < 3; i++) g[i] -= dp * ax[i];
            double gn = sqrt(g[0] * g[0] + g[1] * g[1] + g[2] * g[2]) + 1e-12;
            for (int i = 0; i < 3; i++) c[i] = m[i] + g[i] / gn * (vr + 0.75 * L->r0);
            if (!fits(an, c, L->r0 * 0.9) || !clear_of(ls, c, rext)) continue;
        } else {
            if (!fits(an, c, rext + 1.5) || !clear_of(ls, c, rext)) continue;
        }
        memcpy(L->c, c, sizeof c);
        L->location = loc;
        return 1;
    }
    return 0;
}

/* Spicules: thin solid tubes from inside the body out to 1.6-2.6 r0. */
static void add_spicules(const synth_lesion *L, synth_anatomy *an, dx_rng *r) {
    for (int i = 0; i < L->n_spicules; i++) {
        double v[3] = {dx_rng_normal(r), dx_rng_normal(r), dx_rng_normal(r)};
        double n = sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2]) + 1e-12;
        double len = L->r0 * dx_rng_uniform_range(r, 1.6, 2.6);
        double a[3], b[3];
        for (int k = 0; k < 3; k++) a[k] = L->c[k] + v[k] / n * L->r0 * 0.6, b[k] = L->c[k] + v[k] / n * len;
        if (!synth_in_lung(an, b[0], b[1], b[2])) continue;
        synth_tubes_push(&an->spicules, a, b, dx_rng_uniform_range(r, 0.45, 0.8), 0.2, L->hu_solid - 40, 0, 0,
                         SYNTH_TUBE_SOLID);
    }
}

void synth_lesions_place(synth_lesions *ls, synth_anatomy *an, const synth_scan *s, uint64_t seed,
                         int patient) {
    dx_rng r;
    dx_rng_init(&r, seed, DX_RNG_SYNTH, (uint64_t)patient, SYNTH_P_LESIONS);
    memset(ls, 0, sizeof *ls);
    /* counts: ~2.4 nodules >= 3 mm (0-6; LIDC ~2.6), 0-3 small ones, 0-2 non-nodules */
    static const double pc[7] = {0.14, 0.22, 0.2, 0.16, 0.12, 0.09, 0.07};
    double u = dx_rng_uniform(&r), acc = 0;
    int n_nod = 6;
    for (int i = 0; i < 7; i++) {
        acc += pc[i];
        if (u < acc) { n_nod = i; break; }
    }
    int n_small = (int)dx_rng_below(&r, 4), n_non = (int)dx_rng_below(&r, 3);
    int cls_of[SYNTH_MAX_LESIONS], n = 0;
    for (int i = 0; i < n_nod; i++) cls_of[n++] = SYNTH_NODULE;
    for (int i = 0; i < n_small; i++) cls_of[n++] = SYNTH_SMALL_NODULE;
    for (int i = 0; i < n_non; i++) cls_of[n++] = SYNTH_NON_NODULE;
    for (int i = 0; i < n; i++) {
        synth_lesion *L = &ls->l[ls->n];
        synth_nodule_attributes(L, &r, cls_of[i]);
        if (!place(L, ls, an, s, &r)) continue; /* no room in this z-window: drop it */
        set_box(L);
        if (L->cls == SYNTH_NODULE) add_spicules(L, an, &r);
        ls->n++;
    }
}

dx_status synth_mask_build(synth_mask *mk, const synth_lesion *L, const synth_anatomy *an,
                           const synth_scan *s, dx_err *err) {
    memset(mk, 0, sizeof *mk);
    int i0 = (int)floor((L->lo[0] - s->x0) / s->ps), i1 = (int)ceil((L->hi[0] - s->x0) / s->ps);
    int j0 = (int)floor((L->lo[1] - s->y0) / s->ps), j1 = (int)ceil((L->hi[1] - s->y0) / s->ps);
    int k0 = s->nz, k1 = -1;
    for (int k = 0; k < s->nz; k++)
        if (s->z[k] >= L->lo[2] - s->dz && s->z[k] <= L->hi[2] + s->dz) k0 = k < k0 ? k : k0, k1 = k;
    if (i0 < 0) i0 = 0;
    if (j0 < 0) j0 = 0;
    if (i1 > s->nx - 1) i1 = s->nx - 1;
    if (j1 > s->ny - 1) j1 = s->ny - 1;
    if (k1 < k0) k0 = k1 = 0;
    mk->x0 = i0, mk->y0 = j0, mk->z0 = k0;
    mk->nx = i1 - i0 + 1, mk->ny = j1 - j0 + 1, mk->nz = k1 - k0 + 1;
    mk->m = calloc((size_t)mk->nx * mk->ny * mk->nz, 1);
    if (!mk->m) return dx_fail(err, DX_ENOMEM, "synth: mask");
    double sum[3] = {0};
    for (int k = 0; k < mk->nz; k++)
        for (int j = 0; j < mk->ny; j++)
            for (int i = 0; i < mk->nx; i++) {
                double x = s->x0 + (i0 + i) * s->ps, y = s->y0 + (j0 + j) * s->ps, z = s->z[k0 + k];
                if (!synth_lesion_inside(L, an, x, y, z)) continue;
                mk->m[((size_t)k * mk->ny + j) * mk->nx + i] = 1;
                mk->count++;
                sum[0] += i0 + i, sum[1] += j0 + j, sum[2] += k0 + k;
            }
    if (mk->count == 0) {
        /* smaller than a voxel between slice centres: the voxel holding the centre */
        int i = (int)lround((L->c[0] - s->x0) / s->ps) - i0, j = (int)lround((L->c[1] - s->y0) / s->ps) - j0;
        int kb = 0;
        for (int k = 1; k < s->nz; k++)
            if (fabs(s->z[k] - L->c[2]) < fabs(s->z[kb] - L->c[2])) kb = k;
        int k = kb - k0;
        if (i >= 0 && j >= 0 && k >= 0 && i < mk->nx && j < mk->ny && k < mk->nz) {
            mk->m[((size_t)k * mk->ny + j) * mk->nx + i] = 1;
            mk->count = 1;
            sum[0] = i0 + i, sum[1] = j0 + j, sum[2] = kb;
        }
    }
    for (int a = 0; a < 3; a++) mk->cen[a] = mk->count ? sum[a] / mk->count : -1;
    return DX_OK;
}

void synth_mask_free(synth_mask *mk) {
    free(mk->m);
    mk->m = NULL;
}
