/* synth_anatomy.c - the chest of one synthetic patient: body outline with fat
 * and muscle, thoracic cavity with two lungs (apical taper, diaphragm domes,
 * mediastinum, heart), spine, ribs, sternum, aorta, trachea/bronchi, branching
 * pulmonary vessel trees, the scanner table, and the lung texture.
 *
 * Analytic regions (ellipses and domes) give the background tissue of every
 * point; tubes (synth_tubes.c) are drawn over it. HU by tissue follow
 * published chest-CT values (docs/synth.md). Vessel trees branch
 * asymmetrically and taper from ~5 mm to ~0.35 mm radius and stay inside
 * the lung: their cross-sections are the nodule look-alikes. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "synth/synth_internal.h"

#define PI 3.14159265358979323846

/* Lung half `side`: centre and semi-axes of the ellipse used for taper/domes. */
static void lung_frame(const synth_anatomy *an, int side, double *cx, double *cy, double *la, double *lb) {
    double inner = side ? an->med_x + an->med_w : an->med_x - an->med_w;
    double outer = side ? an->bx + an->cav_a : an->bx - an->cav_a;
    *cx = 0.5 * (inner + outer);
    *la = 0.5 * fabs(outer - inner);
    *cy = an->by + 0.05 * an->cav_b;
    *lb = an->cav_b;
}

int synth_lung_side(const synth_anatomy *an, double x) { return x >= an->med_x; }

/* Mediastinal half-width at y: narrow behind the sternum (anterior junction),
 * full width from mid-chest back to the spine. */
static double med_half(const synth_anatomy *an, double y) {
    double t = (y - (an->by - an->cav_b)) / (1.1 * an->cav_b);
    t = t < 0 ? 0 : t > 1 ? 1 : t;
    return an->med_w * (0.4 + 0.6 * t);
}

int synth_in_lung(const synth_anatomy *an, double x, double y, double z) {
    if (z > an->z_apex) return 0;
    double ex = (x - an->bx) / an->cav_a, ey = (y - (an->by + 0.05 * an->cav_b)) / an->cav_b;
    double rc = ex * ex + ey * ey;
    if (rc >= 1) return 0;
    if (fabs(x - an->med_x) < med_half(an, y) && y < an->spine_y) return 0;
    double sx = x - an->bx, sy = y - an->spine_y, sr = an->spine_r + 14;
    if (sx * sx + sy * sy < sr * sr) return 0;
    if (fabs(sx) < 16 && y > an->spine_y) return 0; /* posterior elements */
    int side = synth_lung_side(an, x);
    double cx, cy, la, lb;
    lung_frame(an, side, &cx, &cy, &la, &lb);
    double px = (x - cx) / la, py = (y - cy) / lb;
    double rho2 = px * px + py * py;
    if (z > an->z_shoulder) { /* apical taper: a dome over each lung */
        double f = (z - an->z_shoulder) / (an->z_apex - an->z_shoulder);
        if (rho2 > 1 - f * f) return 0;
    }
    double zd = an->z_diaph[side];
    if (z < zd) { /* below the dome top, lung survives only at the periphery */
        double f = (zd - z) / an->dome_h;
        if (f >= 1 || rho2 < f) return 0;
    }
    /* heart carves the medial lung */
    double hx = (x - an->heart_c[0]) / an->heart_r[0], hy = (y - an->heart_c[1]) / an->heart_r[1],
           hz = (z - an->heart_c[2]) / an->heart_r[2];
    if (hx * hx + hy * hy + hz * hz < 1) return 0;
    return 1;
}

/* Trilinear value noise (two octaves) in HU. */
static double lung_texture(const synth_anatomy *an, double x, double y, double z) {
    double v = 0;
    for (int o = 0; o < 2; o++) {
        const int *n = an->tex_n[o];
        double fx = (x - an->tex_o[0]) / an->tex_h[o], fy = (y - an->tex_o[1]) / an->tex_h[o],
               fz = (z - an->tex_o[2]) / an->tex_h[o];
        int ix = (int)floor(fx), iy = (int)floor(fy), iz = (int)floor(fz);
        if (ix < 0 || iy < 0 || iz < 0 || ix >= n[0] - 1 || iy >= n[1] - 1 || iz >= n[2] - 1) continue;
        double tx = fx - ix, ty = fy - iy, tz = fz - iz;
        const float *g = an->tex[o];
        double acc = 0;
        for (int c = 0; c < 8; c++) {
            int dx = c & 1, dy = (c >> 1) & 1, dz = c >> 2;
            double wgt = (dx ? tx : 1 - tx) * (dy ? ty : 1 - ty) * (dz ? tz : 1 - tz);
            acc += wgt * g[((size_t)(iz + dz) * n[1] + (iy + dy)) * n[0] + (ix + dx)];
        }
        v += an->tex_amp[o] * acc;
    }
    return v;
}

const char *const synth_label_names[SYNTH_NLABELS] = {"air", "lung", "fat", "muscle", "bone", "heart",
                                                      "abdomen", "vessel", "airway", "table", "lesion"};

#define RET(hu, lab) do { *label = (lab); return (hu); } while (0)

/* Background HU of a point and its tissue label. */
static double tissue(const synth_anatomy *an, double x, double y, double z, int *label) {
    /* table: a curved carbon plate with foam core under the patient */
    if (y > an->table_y) {
        double dy = y - an->table_y, dx = fabs(x - an->bx);
        if (dx < 230 && dy < 42) RET((dy < 2.5 || dy > 39) ? 250 : -880, SYNTH_L_TABLE);
        RET(-1000, SYNTH_L_AIR);
    }
    double ex = (x - an->bx) / an->body_a, ey = (y - an->by) / an->body_b;
    if (ex * ex + ey * ey >= 1) RET(-1000, SYNTH_L_AIR);
    double fa = an->body_a - an->fat, fb = an->body_b - an->fat;
    ex = (x - an->bx) / fa, ey = (y - an->by) / fb;
    if (ex * ex + ey * ey >= 1) RET(an->hu_fat, SYNTH_L_FAT);
    double ma = fa - an->muscle, mb = fb - an->muscle;
    ex = (x - an->bx) / ma, ey = (y - an->by) / mb;
    if (ex * ex + ey * ey >= 1) RET(an->hu_muscle, SYNTH_L_MUSCLE);
    /* spine: vertebral body (trabecular + cortex, discs), canal, posterior elements */
    double sx = x - an->bx, sy = y - an->spine_y;
    double sr2 = sx * sx + sy * sy;
    if (sr2 < an->spine_r * an->spine_r) {
        double phase = fmod(z - an->z_lo + 1000.0, 28.0);
        if (phase < 5) RET(90, SYNTH_L_MUSCLE); /* intervertebral disc */
        RET(sqrt(sr2) > an->spine_r - 1.8 ? 750 : 230, SYNTH_L_BONE);
    }
    double cy = an->spine_y + an->spine_r + 8;
    if (sx * sx + (y - cy) * (y - cy) < 49) RET(15, SYNTH_L_MUSCLE); /* spinal canal */
    if (fabs(sx) < 12 && y > cy - 10 && y < cy + 28) RET(520, SYNTH_L_BONE); /* laminae / spinous process */
    if (synth_in_lung(an, x, y, z)) {
        double dep = (y - an->by) / an->cav_b; /* dependent (posterior) density */
        double g = dep > 0 ? 130 * dep * dep : 0;
        RET(an->hu_lung + g + lung_texture(an, x, y, z), SYNTH_L_LUNG);
    }
    double hx = (x - an->heart_c[0]) / an->heart_r[0], hy = (y - an->heart_c[1]) / an->heart_r[1],
           hz = (z - an->heart_c[2]) / an->heart_r[2];
    double h2 = hx * hx + hy * hy + hz * hz;
    if (h2 < 1) {
        if (an->contrast && h2 < 0.55) RET(an->hu_blood, SYNTH_L_HEART); /* chambers */
        RET(42, SYNTH_L_HEART); /* myocardium / unenhanced blood */
    }
    int side = synth_lung_side(an, x);
    if (z < an->z_diaph[side] && fabs(x - an->med_x) > an->med_w * 0.5) RET(an->hu_liver, SYNTH_L_ABDOMEN);
    if (fabs(x - an->med_x) < med_half(an, y) && y < an->spine_y) {
        /* mediastinum: fat with soft tissue (oesophagus, nodes) near the midline */
        if (fabs(x - an->med_x) < 9 && fabs(y - (an->spine_y - an->spine_r - 14)) < 9) RET(38, SYNTH_L_MUSCLE);
        RET(-85, SYNTH_L_FAT);
    }
    RET(an->hu_muscle, SYNTH_L_MUSCLE); /* paravertebral muscle, chest wall inside the ribs */
}

int synth_anatomy_label(const synth_anatomy *an, double x, double y, double z) {
    int lab;
    tissue(an, x, y, z, &lab);
    return lab;
}

static double background(const synth_anatomy *an, double x, double y, double z) {
    int lab;
    return tissue(an, x, y, z, &lab);
}

void synth_anatomy_plane(const synth_anatomy *an, double z, double x0, double y0, double step, int w,
                         int h, float *buf) {
    for (int v = 0; v < h; v++) {
        double y = y0 + v * step;
        for (int u = 0; u < w; u++) buf[(size_t)v * w + u] = (float)background(an, x0 + u * step, y, z);
    }
}

/* ---- construction ---- */

static void normalize(double v[3]) {
    double n = sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2]);
    if (n > 0) v[0] /= n, v[1] /= n, v[2] /= n;
}

/* Rotates dir by angle ang around a random axis perpendicular to it. */
static void deflect(double out[3], const double dir[3], double ang, dx_rng *r) {
    double t[3] = {dx_rng_normal(r), dx_rng_normal(r), dx_rng_normal(r)};
    double d = t[0] * dir[0] + t[1] * dir[1] + t[2] * dir[2];
    for (int i = 0; i < 3; i++) t[i] -= d * dir[i];
    normalize(t);
    for (int i = 0; i < 3; i++) out[i] = cos(ang) * dir[i] + sin(ang) * t[i];
    normalize(out);
}

typedef struct { double p[3], d[3], r; int depth; } branch;

/* Grows one tree from p along d, breadth first (so the segment cap trims the
 * finest generation evenly): the main child continues with a small
 * deflection, the side child leaves at a wider angle with a smaller radius.
 * A segment whose end leaves the lung is halved once, then dropped. */
static int grow_tree(synth_anatomy *an, synth_tubes *ts, const double p0[3], const double d0[3], double r0,
                     double rmin, double hu, double wall_hu, int kind, int max_seg, dx_rng *r) {
    int cap = 2 * max_seg + 4, head = 0, tail = 0, nseg = 0;
    branch *q = malloc(sizeof *q * (size_t)cap);
    if (!q) return -1;
    q[tail++] = (branch){{p0[0], p0[1], p0[2]}, {d0[0], d0[1], d0[2]}, r0, 0};
    while (head < tail && nseg < max_seg) {
        branch b = q[head++];
        double len = b.r * dx_rng_uniform_range(r, 5, 9);
        if (len < 3) len = 3;
        if (len > 28) len = 28;
        double e[3];
        int ok = 0;
        for (int tries = 0; tries < 2 && !ok; tries++, len *= 0.5) {
            for (int i = 0; i < 3; i++) e[i] = b.p[i] + b.d[i] * len;
            ok = synth_in_lung(an, e[0], e[1], e[2]) || (b.depth == 0 && tries == 0);
        }
        if (!ok) continue;
        double rend = b.r * 0.93;
        double wall = kind == SYNTH_TUBE_AIRWAY ? fmax(0.35, 0.2 * b.r) : 0;
        if (synth_tubes_push(ts, b.p, e, b.r, rend, hu, wall_hu, wall, kind)) { free(q); return -1; }
        nseg++;
        if (rend < rmin || tail + 2 > cap) continue;
        branch c1 = {{e[0], e[1], e[2]}, {0}, rend * dx_rng_uniform_range(r, 0.82, 0.92), b.depth + 1};
        branch c2 = {{e[0], e[1], e[2]}, {0}, rend * dx_rng_uniform_range(r, 0.55, 0.75), b.depth + 1};
        deflect(c1.d, b.d, dx_rng_uniform_range(r, 0.1, 0.45), r);
        deflect(c2.d, b.d, dx_rng_uniform_range(r, 0.6, 1.1), r);
        q[tail++] = c1;
        if (c2.r >= rmin) q[tail++] = c2;
    }
    free(q);
    return 0;
}

static int push(synth_tubes *ts, double ax, double ay, double az, double bx, double by, double bz, double ra,
                double rb, double hu, double wall_hu, double wall, int kind) {
    double a[3] = {ax, ay, az}, b[3] = {bx, by, bz};
    return synth_tubes_push(ts, a, b, ra, rb, hu, wall_hu, wall, kind);
}

dx_status synth_anatomy_build(synth_anatomy *an, const synth_scan *s, uint64_t seed, int patient,
                              dx_err *err) {
    memset(an, 0, sizeof *an);
    dx_rng r;
    dx_rng_init(&r, seed, DX_RNG_SYNTH, (uint64_t)patient, SYNTH_P_ANATOMY);
    an->body_a = s->body_a;
    an->body_b = s->body_b;
    an->bx = s->xc + dx_rng_uniform_range(&r, -8, 8);
    /* the body rests on the table, which sits inside the FOV circle */
    an->table_y = s->yc + s->fov / 2 - dx_rng_uniform_range(&r, 45, 55);
    an->by = an->table_y - an->body_b - dx_rng_uniform_range(&r, 1, 6);
    an->fat = dx_rng_uniform_range(&r, 5, 22);
    an->muscle = dx_rng_uniform_range(&r, 6, 12);
    an->cav_a = an->body_a - an->fat - an->muscle - 8;
    an->cav_b = an->body_b - an->fat - an->muscle - 8;
    an->med_x = an->bx + dx_rng_uniform_range(&r, 4, 14);
    an->med_w = dx_rng_uniform_range(&r, 20, 30);
    an->spine_r = dx_rng_uniform_range(&r, 15, 19);
    an->spine_y = an->by + an->cav_b * 0.72;
    an->z_apex = dx_rng_uniform_range(&r, -20, 40);
    double height = dx_rng_uniform_range(&r, 210, 270);
    an->z_shoulder = an->z_apex - dx_rng_uniform_range(&r, 40, 60);
    an->dome_h = dx_rng_uniform_range(&r, 45, 65);
    an->z_diaph[0] = an->z_apex - height + an->dome_h;             /* right dome higher */
    an->z_diaph[1] = an->z_diaph[0] - dx_rng_uniform_range(&r, 10, 25);
    an->heart_r[0] = dx_rng_uniform_range(&r, 52, 64);
    an->heart_r[1] = dx_rng_uniform_range(&r, 42, 52);
    an->heart_r[2] = dx_rng_uniform_range(&r, 48, 58);
    an->heart_c[0] = an->med_x + dx_rng_uniform_range(&r, 18, 30);
    an->heart_c[1] = an->by - an->cav_b * 0.28;
    an->heart_c[2] = an->z_diaph[1] + an->heart_r[2] * 0.55;
    an->z_lo = fmin(an->z_diaph[0], an->z_diaph[1]) - an->dome_h - 10;
    an->z_hi = an->z_apex + 10;
    an->contrast = s->contrast;
    an->hu_fat = dx_rng_uniform_range(&r, -110, -85);
    an->hu_muscle = dx_rng_uniform_range(&r, 38, 58);
    an->hu_lung = dx_rng_uniform_range(&r, -880, -830);
    an->hu_blood = s->contrast ? dx_rng_uniform_range(&r, 150, 320) : dx_rng_uniform_range(&r, 35, 55);
    an->hu_liver = s->contrast ? dx_rng_uniform_range(&r, 90, 130) : dx_rng_uniform_range(&r, 50, 65);

    /* texture lattice over the cavity box */
    dx_rng tr;
    dx_rng_init(&tr, seed, DX_RNG_SYNTH, (uint64_t)patient, SYNTH_P_TEXTURE);
    an->tex_o[0] = an->bx - an->body_a;
    an->tex_o[1] = an->by - an->body_b;
    an->tex_o[2] = an->z_lo - 20;
    an->tex_h[0] = 14, an->tex_amp[0] = dx_rng_uniform_range(&r, 18, 32);
    an->tex_h[1] = 5, an->tex_amp[1] = dx_rng_uniform_range(&r, 8, 16);
    for (int o = 0; o < 2; o++) {
        an->tex_n[o][0] = (int)(2 * an->body_a / an->tex_h[o]) + 3;
        an->tex_n[o][1] = (int)(2 * an->body_b / an->tex_h[o]) + 3;
        an->tex_n[o][2] = (int)((an->z_hi - an->z_lo + 40) / an->tex_h[o]) + 3;
        size_t m = (size_t)an->tex_n[o][0] * an->tex_n[o][1] * an->tex_n[o][2];
        an->tex[o] = malloc(sizeof(float) * m);
        if (!an->tex[o]) return dx_fail(err, DX_ENOMEM, "synth: texture lattice");
        for (size_t i = 0; i < m; i++) an->tex[o][i] = (float)dx_rng_normal(&tr);
    }

    /* bones: ribs (hoops descending anteriorly), sternum */
    int bad = 0;
    double rib_gap = dx_rng_uniform_range(&r, 21, 26);
    for (double zr = an->z_shoulder + 15; zr > an->z_lo - 60; zr -= rib_gap) {
        double drop = dx_rng_uniform_range(&r, 40, 60), rr = dx_rng_uniform_range(&r, 3.5, 4.8);
        for (int side = 0; side < 2; side++) {
            double ra = an->cav_a + 6, rb = an->cav_b + 6, prev[3] = {0};
            int nseg = 14;
            for (int i = 0; i <= nseg; i++) {
                double f = (double)i / nseg;
                double th = PI / 2 + (side ? -1 : 1) * (0.12 + f * 2.55); /* from the spine round the side */
                double p[3] = {an->bx + ra * cos(th), an->by + rb * sin(th), zr - drop * pow(f, 1.3)};
                if (i > 0) bad |= synth_tubes_push(&an->bones, prev, p, rr, rr, 300, 800, 1.3, SYNTH_TUBE_BONE);
                memcpy(prev, p, sizeof prev);
            }
        }
    }
    double st_y = an->by - an->cav_b - 7;
    bad |= push(&an->bones, an->bx, st_y, an->z_shoulder + 10, an->bx, st_y - 4, an->heart_c[2] - 40, 9, 9, 280,
                700, 1.5, SYNTH_TUBE_BONE);

    /* great vessels: aorta (ascending, arch, descending), pulmonary trunk */
    double z_arch = an->z_apex - dx_rng_uniform_range(&r, 65, 85);
    double ar = dx_rng_uniform_range(&r, 12, 15);
    double asc[3] = {an->heart_c[0] - 25, an->heart_c[1] + 5, an->heart_c[2] + an->heart_r[2] * 0.5};
    double top[3] = {an->med_x, an->by - an->cav_b * 0.15, z_arch};
    double desc[3] = {an->bx + 22, an->spine_y - an->spine_r - ar - 2, z_arch - 10};
    bad |= push(&an->vessels, asc[0], asc[1], asc[2], top[0] - 10, top[1] - 10, top[2] - 5, ar, ar, an->hu_blood, 0,
                0, SYNTH_TUBE_SOLID);
    bad |= push(&an->vessels, top[0] - 10, top[1] - 10, top[2] - 5, desc[0], desc[1], desc[2], ar, ar, an->hu_blood,
                0, 0, SYNTH_TUBE_SOLID);
    bad |= push(&an->vessels, desc[0], desc[1], desc[2], desc[0], desc[1], an->z_lo - 30, ar * 0.9, ar * 0.9,
                an->hu_blood, 0, 0, SYNTH_TUBE_SOLID);
    double z_hil = z_arch - dx_rng_uniform_range(&r, 25, 40);
    double hil[2][3] = {{an->med_x - an->med_w - 4, an->by + 0.05 * an->cav_b, z_hil},
                        {an->med_x + an->med_w + 4, an->by + 0.05 * an->cav_b, z_hil + 8}};
    double trunk[3] = {an->med_x + 5, an->by - an->cav_b * 0.2, z_hil - 5};
    bad |= push(&an->vessels, an->heart_c[0] - 10, an->heart_c[1], an->heart_c[2] + 20, trunk[0], trunk[1],
                trunk[2], 13, 12, an->hu_blood, 0, 0, SYNTH_TUBE_SOLID);
    for (int side = 0; side < 2; side++)
        bad |= push(&an->vessels, trunk[0], trunk[1], trunk[2], hil[side][0], hil[side][1], hil[side][2], 10, 8,
                    an->hu_blood, 0, 0, SYNTH_TUBE_SOLID);

    /* trachea -> carina -> main bronchi -> airway trees */
    double tr_x = an->med_x - 6, tr_y = an->spine_y - an->spine_r - 30;
    double z_car = z_hil + 12, trr = dx_rng_uniform_range(&r, 7.5, 9.5);
    bad |= push(&an->airways, tr_x, tr_y - 8, an->z_hi + 20, tr_x, tr_y, z_car, trr, trr, -1000, 30, 1.8,
                SYNTH_TUBE_AIRWAY);
    for (int side = 0; side < 2; side++) {
        double hb[3] = {hil[side][0] + (side ? 6 : -6), hil[side][1] + 8, hil[side][2] - 4};
        bad |= push(&an->airways, tr_x, tr_y, z_car, hb[0], hb[1], hb[2], trr * 0.75, trr * 0.6, -1000, 30, 1.5,
                    SYNTH_TUBE_AIRWAY);
        double dirs[3][3] = {{side ? 0.5 : -0.5, -0.1, 0.85}, {side ? 0.9 : -0.9, 0.1, -0.1},
                             {side ? 0.35 : -0.35, 0.4, -0.85}};
        for (int b = 0; b < 3; b++) {
            normalize(dirs[b]);
            bad |= grow_tree(an, &an->airways, hb, dirs[b], trr * 0.45, 0.9, -1000, 30, SYNTH_TUBE_AIRWAY, 60,
                             &r);
        }
    }
    /* pulmonary arteries and veins: 3 lobar trunks per side and per kind */
    for (int side = 0; side < 2; side++) {
        for (int kind = 0; kind < 2; kind++) {
            double root[3] = {hil[side][0], hil[side][1] + (kind ? -6 : 4), hil[side][2] - (kind ? 22 : 0)};
            double dirs[5][3] = {{side ? 0.45 : -0.45, -0.15, 0.88}, {side ? 0.95 : -0.95, -0.2, -0.1},
                                 {side ? 0.4 : -0.4, 0.45, -0.8}, {side ? 0.5 : -0.5, -0.7, -0.4},
                                 {side ? 0.6 : -0.6, 0.7, 0.3}};
            for (int b = 0; b < 5; b++) {
                double d[3];
                normalize(dirs[b]);
                deflect(d, dirs[b], dx_rng_uniform_range(&r, 0, 0.25), &r);
                bad |= grow_tree(an, &an->vessels, root, d, dx_rng_uniform_range(&r, 4.0, 5.5), 0.35, an->hu_blood,
                                 0, SYNTH_TUBE_SOLID, 1000, &r);
            }
        }
    }
    if (bad) return dx_fail(err, DX_ENOMEM, "synth: anatomy tubes");
    return DX_OK;
}

void synth_anatomy_free(synth_anatomy *an) {
    synth_tubes_free(&an->bones);
    synth_tubes_free(&an->vessels);
    synth_tubes_free(&an->airways);
    synth_tubes_free(&an->spicules);
    free(an->tex[0]);
    free(an->tex[1]);
    an->tex[0] = an->tex[1] = NULL;
}
