/* radiomics.c - hand-crafted nodule descriptors from native HU and the consensus mask (radiomics.h). */
#include "eval/radiomics.h"

#include <math.h>
#include <stdlib.h>

static const double PI = 3.14159265358979323846;

const char *const dx_radiomics_names[DX_RADIOMICS_N] = {"log_volume", "mean_hu",    "sd_hu",      "p95_hu",
                                                        "solid_fraction", "sphericity", "elongation", "edge_contrast"};

static int cmp_i16(const void *a, const void *b) {
    return (int)*(const int16_t *)a - (int)*(const int16_t *)b;
}

/* Eigenvalues of a symmetric 3x3 matrix (a00 a11 a22 a01 a02 a12), by the trigonometric
 * solution of the characteristic cubic: exact for a diagonal matrix, no iteration. */
static void sym3_eigenvalues(const double c[6], double *lmin, double *lmax) {
    const double p1 = c[3] * c[3] + c[4] * c[4] + c[5] * c[5];
    const double q = (c[0] + c[1] + c[2]) / 3;
    if (p1 <= 1e-300 * (q * q + 1e-300)) {
        *lmin = fmin(c[0], fmin(c[1], c[2]));
        *lmax = fmax(c[0], fmax(c[1], c[2]));
        return;
    }
    const double p2 = (c[0] - q) * (c[0] - q) + (c[1] - q) * (c[1] - q) + (c[2] - q) * (c[2] - q) + 2 * p1;
    const double p = sqrt(p2 / 6);
    /* B = (A - qI) / p; r = det(B) / 2 */
    const double b00 = (c[0] - q) / p, b11 = (c[1] - q) / p, b22 = (c[2] - q) / p;
    const double b01 = c[3] / p, b02 = c[4] / p, b12 = c[5] / p;
    double r = (b00 * (b11 * b22 - b12 * b12) - b01 * (b01 * b22 - b12 * b02) + b02 * (b01 * b12 - b11 * b02)) / 2;
    r = r < -1 ? -1 : r > 1 ? 1 : r;
    const double phi = acos(r) / 3;
    *lmax = q + 2 * p * cos(phi);
    *lmin = q + 2 * p * cos(phi + 2 * PI / 3);
}

dx_status dx_radiomics_box(const int16_t *const *hu, const uint8_t *const *mask, int nx, int ny, int nz,
                           const double spacing[3], int label, const int box[6], double out[DX_RADIOMICS_N],
                           int64_t *n_found, dx_err *err) {
    if (nx <= 0 || ny <= 0 || nz <= 0 || !(spacing[0] > 0) || !(spacing[1] > 0) || !(spacing[2] > 0))
        return dx_fail(err, DX_EINVAL, "radiomics: volume %dx%dx%d spacing %g %g %g", nx, ny, nz, spacing[0], spacing[1],
                       spacing[2]);
    const int x0 = box[0] < 0 ? 0 : box[0], x1 = box[1] > nx ? nx : box[1];
    const int y0 = box[2] < 0 ? 0 : box[2], y1 = box[3] > ny ? ny : box[3];
    const int z0 = box[4] < 0 ? 0 : box[4], z1 = box[5] > nz ? nz : box[5];
    /* face areas: a face normal to x has the area sy * sz, and so on */
    const double area[3] = {spacing[1] * spacing[2], spacing[0] * spacing[2], spacing[0] * spacing[1]};
    int64_t n = 0, n_edge = 0;
    double s = 0, s2 = 0, sx[3] = {0, 0, 0}, sxx[6] = {0, 0, 0, 0, 0, 0}, faces = 0, edge = 0;
    for (int pass = 0; pass < 2; pass++) {
        int16_t *vals = NULL;
        if (pass == 1) {
            if (!n) break;
            if (!(vals = malloc((size_t)n * sizeof *vals))) return dx_fail(err, DX_ENOMEM, "radiomics: %lld voxels", (long long)n);
        }
        int64_t k = 0;
        for (int z = z0; z < z1; z++) {
            const uint8_t *m = mask[z];
            const int16_t *h = hu[z];
            if (!m || !h) continue;
            for (int y = y0; y < y1; y++)
                for (int x = x0; x < x1; x++) {
                    const size_t at = (size_t)y * nx + x;
                    if (m[at] != label) continue;
                    if (pass == 1) { vals[k++] = h[at]; continue; }
                    const double v = h[at], p[3] = {x * spacing[0], y * spacing[1], z * spacing[2]};
                    n++;
                    s += v;
                    s2 += v * v;
                    for (int a = 0; a < 3; a++) sx[a] += p[a];
                    sxx[0] += p[0] * p[0], sxx[1] += p[1] * p[1], sxx[2] += p[2] * p[2];
                    sxx[3] += p[0] * p[1], sxx[4] += p[0] * p[2], sxx[5] += p[1] * p[2];
                    /* the six face neighbours: exposed faces, and the HU just outside */
                    static const int D[6][3] = {{1, 0, 0}, {-1, 0, 0}, {0, 1, 0}, {0, -1, 0}, {0, 0, 1}, {0, 0, -1}};
                    for (int d = 0; d < 6; d++) {
                        const int qx = x + D[d][0], qy = y + D[d][1], qz = z + D[d][2];
                        const int inside = qx >= 0 && qx < nx && qy >= 0 && qy < ny && qz >= 0 && qz < nz;
                        const uint8_t *mq = inside ? mask[qz] : NULL;
                        const int16_t *hq = inside ? hu[qz] : NULL;
                        const size_t aq = (size_t)qy * nx + qx;
                        if (mq && hq && mq[aq] == label) continue;
                        faces += area[d / 2];
                        if (mq && hq) { edge += hq[aq]; n_edge++; }
                    }
                }
        }
        if (pass == 1) {
            qsort(vals, (size_t)n, sizeof *vals, cmp_i16);
            /* linear interpolation between order statistics (numpy's default percentile) */
            const double pos = 0.95 * (double)(n - 1);
            const int64_t lo = (int64_t)pos;
            const double f = pos - (double)lo;
            out[3] = lo + 1 < n ? (1 - f) * vals[lo] + f * vals[lo + 1] : vals[lo];
            int64_t solid = 0;
            for (int64_t i = 0; i < n; i++) solid += vals[i] > -300;
            out[4] = (double)solid / (double)n;
            free(vals);
        }
    }
    *n_found = n;
    if (!n) return dx_fail(err, DX_ENOTFOUND, "radiomics: no voxel with label %d in the box", label);
    const double V = (double)n * spacing[0] * spacing[1] * spacing[2], mean = s / (double)n;
    out[0] = log(V);
    out[1] = mean;
    out[2] = sqrt(fmax(0, s2 / (double)n - mean * mean));
    out[5] = cbrt(PI) * pow(6 * V, 2.0 / 3.0) / faces;
    double c[6];
    const double mu[3] = {sx[0] / (double)n, sx[1] / (double)n, sx[2] / (double)n};
    c[0] = sxx[0] / (double)n - mu[0] * mu[0], c[1] = sxx[1] / (double)n - mu[1] * mu[1];
    c[2] = sxx[2] / (double)n - mu[2] * mu[2], c[3] = sxx[3] / (double)n - mu[0] * mu[1];
    c[4] = sxx[4] / (double)n - mu[0] * mu[2], c[5] = sxx[5] / (double)n - mu[1] * mu[2];
    double lmin, lmax;
    sym3_eigenvalues(c, &lmin, &lmax);
    out[6] = lmax > 1e-12 ? sqrt(fmax(0, lmin) / lmax) : 1;
    out[7] = n_edge ? mean - edge / (double)n_edge : 0;
    return DX_OK;
}

dx_status dx_radiomics_nodule(const dx_store *s, int row, double out[DX_RADIOMICS_N], dx_err *err) {
    if (row < 0 || row >= s->idx.n_rows) return dx_fail(err, DX_EINVAL, "radiomics: row %d out of range", row);
    const dx_store_row *r = &s->idx.rows[row];
    const dx_store_series *se = dx_store_info(s, r->series);
    if (r->info.label <= 0 || !se->has_mask)
        return dx_fail(err, DX_EINVAL, "radiomics: row %d has no consensus mask", row);
    const int nz = se->nz;
    const int16_t **hu = malloc((size_t)nz * sizeof *hu);
    const uint8_t **mk = malloc((size_t)nz * sizeof *mk);
    if (!hu || !mk) { free(hu); free(mk); return dx_fail(err, DX_ENOMEM, "radiomics"); }
    for (int z = 0; z < nz; z++) hu[z] = dx_store_slice(s, r->series, z), mk[z] = dx_store_mask_slice(s, r->series, z);
    /* a box of twice the diameter each side of the centroid (lobulation and a reader's
     * size error stay inside), then the whole volume if it missed voxels */
    const double d = r->info.diameter_mm > 0 ? r->info.diameter_mm : 10;
    int box[6];
    for (int a = 0; a < 3; a++) {
        const int h = (int)ceil(d / se->spacing[a]) + 2, c = (int)lround(r->info.centroid_vox[a]);
        box[2 * a] = c - h, box[2 * a + 1] = c + h + 1;
    }
    int64_t found = 0;
    dx_status st = dx_radiomics_box(hu, mk, se->nx, se->ny, nz, se->spacing, r->info.label, box, out, &found, err);
    if ((st == DX_ENOTFOUND || (!st && found < r->info.n_voxels))) {
        const int all[6] = {0, se->nx, 0, se->ny, 0, nz};
        st = dx_radiomics_box(hu, mk, se->nx, se->ny, nz, se->spacing, r->info.label, all, out, &found, err);
    }
    free(hu);
    free(mk);
    return st;
}
