/* synth_tubes.c - tapered capsules (vessels, airways, ribs, spicules) and
 * their rasterisation into one axial plane.
 *
 * A tube is the set of points within r(t) = ra + (rb-ra) t of the segment
 * a + t (b-a), t in [0,1]. Only tubes whose z-extent meets the plane are
 * visited, and only the in-plane box where the segment comes within its radius
 * of the plane, so thousands of vessel segments cost little per plane. */
#include <math.h>
#include <stdlib.h>

#include "synth/synth_internal.h"

int synth_tubes_push(synth_tubes *ts, const double a[3], const double b[3], double ra, double rb,
                     double hu, double wall_hu, double wall, int kind) {
    if (ts->n == ts->cap) {
        int cap = ts->cap ? ts->cap * 2 : 256;
        synth_tube *t = realloc(ts->t, sizeof *t * (size_t)cap);
        if (!t) return -1;
        ts->t = t;
        ts->cap = cap;
    }
    synth_tube *t = &ts->t[ts->n++];
    for (int i = 0; i < 3; i++) t->a[i] = (float)a[i], t->b[i] = (float)b[i];
    t->ra = (float)ra, t->rb = (float)rb;
    t->hu = (float)hu, t->wall_hu = (float)wall_hu, t->wall = (float)wall;
    t->kind = kind;
    double rm = ra > rb ? ra : rb;
    t->zmin = (float)(fmin(a[2], b[2]) - rm);
    t->zmax = (float)(fmax(a[2], b[2]) + rm);
    return 0;
}

void synth_tubes_free(synth_tubes *ts) {
    free(ts->t);
    ts->t = NULL;
    ts->n = ts->cap = 0;
}

/* Writes HU into buf and/or `label` into lab (either may be NULL). */
static void raster(const synth_tubes *ts, double z, double x0, double y0, double step, int w, int h, float *buf,
                   uint8_t *lab, uint8_t label) {
    for (int n = 0; n < ts->n; n++) {
        const synth_tube *t = &ts->t[n];
        if (z < t->zmin || z > t->zmax) continue;
        double a[3] = {t->a[0], t->a[1], t->a[2]};
        double d[3] = {t->b[0] - a[0], t->b[1] - a[1], t->b[2] - a[2]};
        double rm = t->ra > t->rb ? t->ra : t->rb;
        /* parameter range where the axis is within rm of the plane */
        double t1 = 0, t2 = 1;
        if (fabs(d[2]) > 1e-9) {
            t1 = (z - rm - a[2]) / d[2];
            t2 = (z + rm - a[2]) / d[2];
            if (t1 > t2) { double q = t1; t1 = t2; t2 = q; }
            if (t1 < 0) t1 = 0;
            if (t2 > 1) t2 = 1;
            if (t1 > t2) continue;
        }
        double xa = a[0] + t1 * d[0], xb = a[0] + t2 * d[0];
        double ya = a[1] + t1 * d[1], yb = a[1] + t2 * d[1];
        int u0 = (int)floor((fmin(xa, xb) - rm - x0) / step), u1 = (int)ceil((fmax(xa, xb) + rm - x0) / step);
        int v0 = (int)floor((fmin(ya, yb) - rm - y0) / step), v1 = (int)ceil((fmax(ya, yb) + rm - y0) / step);
        if (u0 < 0) u0 = 0;
        if (v0 < 0) v0 = 0;
        if (u1 > w - 1) u1 = w - 1;
        if (v1 > h - 1) v1 = h - 1;
        double dd = d[0] * d[0] + d[1] * d[1] + d[2] * d[2];
        double inv = dd > 1e-12 ? 1.0 / dd : 0;
        double pz = z - a[2];
        for (int v = v0; v <= v1; v++) {
            double py = y0 + v * step - a[1];
            for (int u = u0; u <= u1; u++) {
                double px = x0 + u * step - a[0];
                double s = (px * d[0] + py * d[1] + pz * d[2]) * inv;
                if (s < 0) s = 0;
                if (s > 1) s = 1;
                double ex = px - s * d[0], ey = py - s * d[1], ez = pz - s * d[2];
                double r = t->ra + (t->rb - t->ra) * s;
                double q = ex * ex + ey * ey + ez * ez;
                if (q >= r * r) continue;
                float val = t->hu;
                if (t->wall > 0) {
                    double ri = r - t->wall;
                    if (ri <= 0 || q > ri * ri) val = t->wall_hu;
                }
                if (buf) buf[(size_t)v * w + u] = val;
                if (lab) lab[(size_t)v * w + u] = label;
            }
        }
    }
}

void synth_tubes_plane(const synth_tubes *ts, double z, double x0, double y0, double step, int w, int h,
                       float *buf) {
    raster(ts, z, x0, y0, step, w, h, buf, NULL, 0);
}

void synth_tubes_label(const synth_tubes *ts, double z, double x0, double y0, double step, int w, int h,
                       uint8_t *lab, uint8_t label) {
    raster(ts, z, x0, y0, step, w, h, NULL, lab, label);
}
