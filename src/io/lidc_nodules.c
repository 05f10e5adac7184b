/* lidc_nodules.c - LIDC reads on a volume: ROI->slice mapping, pylidc-style
 * rasterisation, clustering, consensus and the nodule table (see lidc_nodules.h). */
#include "io/lidc_nodules.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/dx_log.h"

/* z (mm, along the normal's z) of slice k: the recorded IPP z if the reader
 * kept it, else from the geometry (NIfTI volumes). */
static double slice_z(const dx_volume *v, int k) {
    if (v->slice_z) return v->slice_z[k];
    return v->origin[2] + k * v->spacing[2] * v->direction[8];
}

int dx_lidc_find_slice(const dx_volume *v, const char *sop_uid, double z) {
    if (sop_uid && sop_uid[0] && v->sop_uids)
        for (int k = 0; k < v->nz; k++)
            if (!strcmp(v->sop_uids[k], sop_uid)) return k;
    if (isnan(z) || v->nz <= 0) return -1;
    int best = -1;
    double bd = INFINITY;
    for (int k = 0; k < v->nz; k++) {
        double d = fabs(slice_z(v, k) - z);
        if (d < bd) bd = d, best = k;
    }
    /* half the spacing; a floor of 1 um for single-slice volumes */
    double tol = v->spacing[2] > 0 ? 0.5 * v->spacing[2] : 1e-3;
    return bd <= tol ? best : -1;
}

void dx_lidc_anns_free(dx_lidc_ann *anns, int nann) {
    if (!anns) return;
    for (int i = 0; i < nann; i++) free(anns[i].cont);
    free(anns);
}

/* pylidc Annotation.diameter: max over contours of the max pairwise in-plane
 * point distance; pixel spacing per axis (LIDC is isotropic in-plane). */
static double ann_diameter(const dx_lidc_ann *a, const dx_volume *v) {
    double best = 0;
    for (int c = 0; c < a->ncont; c++) {
        const dx_lidc_contour *ct = &a->cont[c];
        for (int i = 0; i < ct->npts; i++)
            for (int j = i + 1; j < ct->npts; j++) {
                double dx = (ct->pts[i].x - ct->pts[j].x) * v->spacing[0];
                double dy = (ct->pts[i].y - ct->pts[j].y) * v->spacing[1];
                double d = sqrt(dx * dx + dy * dy);
                if (d > best) best = d;
            }
    }
    return best;
}

dx_status dx_lidc_map(const dx_lidc_read *r, const dx_volume *v, dx_lidc_ann **anns, int *nann,
                      dx_lidc_map_stats *stats, dx_err *err) {
    dx_lidc_map_stats st = {0};
    *anns = NULL;
    *nann = 0;
    int total = 0;
    for (int s = 0; s < r->nsess; s++) total += r->sessions[s].nnod;
    dx_lidc_ann *out = calloc((size_t)total + 1, sizeof *out);
    if (!out) return dx_fail(err, DX_ENOMEM, "annotations");
    int n = 0;
    st.n_sessions = r->nsess;
    for (int s = 0; s < r->nsess; s++) {
        const dx_lidc_session *ses = &r->sessions[s];
        for (int i = 0; i < ses->nnon; i++) {
            st.n_nonnodule++;
            if (dx_lidc_find_slice(v, ses->nonnodules[i].sop_uid, ses->nonnodules[i].z) < 0) st.n_unmatched++;
        }
        for (int i = 0; i < ses->nnod; i++) {
            const dx_lidc_nodule *nod = &ses->nodules[i];
            if (!nod->has_chars) {
                st.n_small++;
                continue;
            }
            dx_lidc_ann *a = &out[n];
            a->cont = calloc((size_t)nod->nroi + 1, sizeof *a->cont);
            if (!a->cont) {
                dx_lidc_anns_free(out, n);
                return dx_fail(err, DX_ENOMEM, "contours");
            }
            for (int j = 0; j < nod->nroi; j++) {
                const dx_lidc_roi *roi = &nod->rois[j];
                if (roi->npts <= 1) {
                    st.n_stray_rois++;
                    continue;
                }
                int k = dx_lidc_find_slice(v, roi->sop_uid, roi->z);
                if (k < 0) {
                    st.n_unmatched++;
                    continue;
                }
                a->cont[a->ncont++] = (dx_lidc_contour){k, roi->inclusion, roi->npts, roi->pts};
            }
            if (a->ncont == 0) {
                free(a->cont);
                memset(a, 0, sizeof *a);
                st.n_empty_anns++;
                continue;
            }
            a->session = s;
            a->nodule = i;
            memcpy(a->chars, nod->chars, sizeof a->chars);
            double sx = 0, sy = 0, sk = 0;
            long np = 0;
            int *bb = a->bbox;
            bb[0] = bb[2] = bb[4] = 1 << 30;
            bb[1] = bb[3] = bb[5] = -(1 << 30);
            for (int c = 0; c < a->ncont; c++) {
                const dx_lidc_contour *ct = &a->cont[c];
                for (int p = 0; p < ct->npts; p++) {
                    int x = ct->pts[p].x, y = ct->pts[p].y;
                    sx += x, sy += y, sk += ct->k, np++;
                    if (x < bb[0]) bb[0] = x;
                    if (x > bb[1]) bb[1] = x;
                    if (y < bb[2]) bb[2] = y;
                    if (y > bb[3]) bb[3] = y;
                }
                if (ct->k < bb[4]) bb[4] = ct->k;
                if (ct->k > bb[5]) bb[5] = ct->k;
            }
            /* the box only bounds rasterisation: clip it to the image (real
             * contours are inside; a box off the image has no pixels) */
            if (bb[0] < 0) bb[0] = 0;
            if (bb[2] < 0) bb[2] = 0;
            if (bb[1] > v->nx - 1) bb[1] = v->nx - 1;
            if (bb[3] > v->ny - 1) bb[3] = v->ny - 1;
            if (bb[0] > bb[1] || bb[2] > bb[3]) {
                free(a->cont);
                memset(a, 0, sizeof *a);
                st.n_empty_anns++;
                continue;
            }
            a->centroid[0] = sx / np;
            a->centroid[1] = sy / np;
            a->centroid[2] = sk / np;
            a->diameter_mm = ann_diameter(a, v);
            n++;
        }
    }
    *anns = out;
    *nann = n;
    if (stats) *stats = st;
    return DX_OK;
}

/* Even-odd test of the pixel centre (px, py) against the closed chain pts
 * (closed back to pts[0] if the file did not repeat it). Half-open in y, like
 * matplotlib's Path.contains_points that pylidc calls; only points exactly on
 * an edge can differ, and on the dense LIDC chains those are contour points,
 * which the mask removes anyway. */
static int inside(const dx_lidc_pt *pts, int n, double px, double py) {
    int in = 0;
    for (int i = 0, j = n - 1; i < n; j = i++) {
        double xi = pts[i].x, yi = pts[i].y, xj = pts[j].x, yj = pts[j].y;
        if ((yi >= py) != (yj >= py)) {
            double xc = xj + (py - yj) * (xi - xj) / (yi - yj);
            if (px < xc) in = !in;
        }
    }
    return in;
}

static void fill_contour(const dx_lidc_contour *ct, const int bb[6], uint8_t *plane, int keep_in) {
    int w = bb[1] - bb[0] + 1, h = bb[3] - bb[2] + 1;
    int x0 = bb[0], x1 = bb[1], y0 = bb[2], y1 = bb[3];
    /* only the contour's own box can be inside */
    int cx0 = 1 << 30, cx1 = -(1 << 30), cy0 = 1 << 30, cy1 = -(1 << 30);
    for (int p = 0; p < ct->npts; p++) {
        if (ct->pts[p].x < cx0) cx0 = ct->pts[p].x;
        if (ct->pts[p].x > cx1) cx1 = ct->pts[p].x;
        if (ct->pts[p].y < cy0) cy0 = ct->pts[p].y;
        if (ct->pts[p].y > cy1) cy1 = ct->pts[p].y;
    }
    if (cx0 < x0) cx0 = x0;
    if (cx1 > x1) cx1 = x1;
    if (cy0 < y0) cy0 = y0;
    if (cy1 > y1) cy1 = y1;
    for (int y = cy0; y <= cy1; y++)
        for (int x = cx0; x <= cx1; x++)
            if (inside(ct->pts, ct->npts, x, y)) {
                if (keep_in) plane[(size_t)(y - y0) * w + (x - x0)] = 1;
                else plane[(size_t)(y - y0) * w + (x - x0)] = 0;
            }
    (void)h;
}

static void clear_points(const dx_lidc_contour *ct, const int bb[6], uint8_t *plane) {
    int w = bb[1] - bb[0] + 1;
    for (int p = 0; p < ct->npts; p++) {
        int x = ct->pts[p].x, y = ct->pts[p].y;
        if (x < bb[0] || x > bb[1] || y < bb[2] || y > bb[3]) continue;
        plane[(size_t)(y - bb[2]) * w + (x - bb[0])] = 0;
    }
}

void dx_lidc_ann_mask(const dx_lidc_ann *a, const int bb[6], int include_contour, uint8_t *mask) {
    size_t w = (size_t)(bb[1] - bb[0] + 1), h = (size_t)(bb[3] - bb[2] + 1), d = (size_t)(bb[5] - bb[4] + 1);
    memset(mask, 0, w * h * d);
    /* pylidc order: every inclusion contour ORed in (its own points cleared
     * right after it), then every exclusion contour's inside and points cleared */
    for (int pass = 0; pass < 2; pass++)
        for (int c = 0; c < a->ncont; c++) {
            const dx_lidc_contour *ct = &a->cont[c];
            if (ct->inclusion != (pass == 0)) continue;
            if (ct->k < bb[4] || ct->k > bb[5]) continue;
            uint8_t *plane = mask + (size_t)(ct->k - bb[4]) * w * h;
            fill_contour(ct, bb, plane, pass == 0);
            if (pass == 1 || !include_contour) clear_points(ct, bb, plane);
        }
}

void dx_lidc_cluster_opts_default(dx_lidc_cluster_opts *o) {
    o->metric = DX_LIDC_METRIC_MIN;
    o->tol = 0;
    o->factor = 0.9;
    o->min_tol = 0.1;
    o->max_per_cluster = 4;
    o->one_per_reader = 1;
    o->clevel = 0.5;
}

/* Distance in index space (row, col, slice) - pylidc's contours_matrix units. */
static double ann_distance(const dx_lidc_ann *a, const dx_lidc_ann *b, dx_lidc_metric m) {
    if (m == DX_LIDC_METRIC_CENTROID) {
        double dx = a->centroid[0] - b->centroid[0], dy = a->centroid[1] - b->centroid[1],
               dk = a->centroid[2] - b->centroid[2];
        return sqrt(dx * dx + dy * dy + dk * dk);
    }
    double best = INFINITY;
    for (int i = 0; i < a->ncont; i++)
        for (int j = 0; j < b->ncont; j++) {
            const dx_lidc_contour *p = &a->cont[i], *q = &b->cont[j];
            double dk = (double)(p->k - q->k);
            if (dk * dk >= best) continue;
            for (int s = 0; s < p->npts; s++)
                for (int t = 0; t < q->npts; t++) {
                    double dx = p->pts[s].x - q->pts[t].x, dy = p->pts[s].y - q->pts[t].y;
                    double d2 = dx * dx + dy * dy + dk * dk;
                    if (d2 < best) best = d2;
                }
        }
    return sqrt(best);
}

/* Connected components of {d <= tol} by union-find; returns the number. */
static int components(const double *D, int n, double tol, int *cid, int *parent) {
    for (int i = 0; i < n; i++) parent[i] = i;
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++)
            if (D[(size_t)i * n + j] <= tol) {
                int a = i, b = j;
                while (parent[a] != a) a = parent[a];
                while (parent[b] != b) b = parent[b];
                if (a != b) parent[b > a ? b : a] = b > a ? a : b;
            }
    int nc = 0;
    for (int i = 0; i < n; i++) {
        int r = i;
        while (parent[r] != r) r = parent[r];
        cid[i] = -1 - r; /* provisional: root id */
    }
    for (int i = 0; i < n; i++) {
        if (cid[i] >= 0) continue;
        int root = cid[i];
        for (int j = i; j < n; j++)
            if (cid[j] == root) cid[j] = nc;
        nc++;
    }
    return nc;
}

static int grouping_ok(const dx_lidc_ann *anns, int n, const int *cid, int nc, const dx_lidc_cluster_opts *o) {
    for (int c = 0; c < nc; c++) {
        int cnt = 0;
        for (int i = 0; i < n; i++) {
            if (cid[i] != c) continue;
            cnt++;
            if (o->one_per_reader)
                for (int j = i + 1; j < n; j++)
                    if (cid[j] == c && anns[j].session == anns[i].session) return 0;
        }
        if (o->max_per_cluster > 0 && cnt > o->max_per_cluster) return 0;
    }
    return 1;
}

dx_status dx_lidc_cluster(const dx_lidc_ann *anns, int nann, const dx_lidc_cluster_opts *o, double tol,
                          int *cid, int *ncl, int *unresolved, double *tol_used, dx_err *err) {
    *ncl = 0;
    if (unresolved) *unresolved = 0;
    if (tol_used) *tol_used = tol;
    if (nann <= 0) return DX_OK;
    if (!(tol >= 0) || !(o->factor > 0 && o->factor < 1))
        return dx_fail(err, DX_EINVAL, "cluster tol %g / factor %g out of range", tol, o->factor);
    double *D = malloc((size_t)nann * nann * sizeof *D);
    int *parent = malloc((size_t)nann * sizeof *parent);
    if (!D || !parent) {
        free(D), free(parent);
        return dx_fail(err, DX_ENOMEM, "distance matrix for %d annotations", nann);
    }
    for (int i = 0; i < nann; i++) {
        D[(size_t)i * nann + i] = 0;
        for (int j = i + 1; j < nann; j++)
            D[(size_t)i * nann + j] = D[(size_t)j * nann + i] = ann_distance(&anns[i], &anns[j], o->metric);
    }
    int nc = components(D, nann, tol, cid, parent);
    while (!grouping_ok(anns, nann, cid, nc, o)) {
        double t2 = tol * o->factor;
        if (t2 < o->min_tol) {
            if (unresolved) *unresolved = 1;
            break;
        }
        tol = t2;
        nc = components(D, nann, tol, cid, parent);
    }
    /* renumber by increasing mean centroid slice (pylidc's order); stable on ties */
    double *mk = calloc((size_t)nc, sizeof *mk);
    int *cnt = calloc((size_t)nc, sizeof *cnt), *order = malloc((size_t)nc * sizeof *order),
        *rank = malloc((size_t)nc * sizeof *rank);
    if (!mk || !cnt || !order || !rank) {
        free(D), free(parent), free(mk), free(cnt), free(order), free(rank);
        return dx_fail(err, DX_ENOMEM, "clusters");
    }
    for (int i = 0; i < nann; i++) mk[cid[i]] += anns[i].centroid[2], cnt[cid[i]]++;
    for (int c = 0; c < nc; c++) mk[c] /= cnt[c], order[c] = c;
    for (int a = 1; a < nc; a++) { /* insertion sort: nc is small */
        int x = order[a], b = a;
        while (b > 0 && mk[order[b - 1]] > mk[x]) order[b] = order[b - 1], b--;
        order[b] = x;
    }
    for (int c = 0; c < nc; c++) rank[order[c]] = c;
    for (int i = 0; i < nann; i++) cid[i] = rank[cid[i]];
    *ncl = nc;
    if (tol_used) *tol_used = tol;
    free(D), free(parent), free(mk), free(cnt), free(order), free(rank);
    return DX_OK;
}

dx_status dx_lidc_consensus(const dx_lidc_ann *anns, const int *idx, int n, double clevel, uint8_t **mask,
                            int bb[6], dx_err *err) {
    *mask = NULL;
    if (n <= 0) return dx_fail(err, DX_EINVAL, "consensus of no annotations");
    for (int t = 0; t < 6; t++) bb[t] = anns[idx[0]].bbox[t];
    for (int i = 1; i < n; i++)
        for (int t = 0; t < 6; t += 2) {
            if (anns[idx[i]].bbox[t] < bb[t]) bb[t] = anns[idx[i]].bbox[t];
            if (anns[idx[i]].bbox[t + 1] > bb[t + 1]) bb[t + 1] = anns[idx[i]].bbox[t + 1];
        }
    size_t vox = (size_t)(bb[1] - bb[0] + 1) * (size_t)(bb[3] - bb[2] + 1) * (size_t)(bb[5] - bb[4] + 1);
    if (vox > ((size_t)1 << 31)) return dx_fail(err, DX_ENOMEM, "consensus box of %zu voxels", vox);
    uint8_t *one = malloc(vox);
    uint16_t *cnt = calloc(vox, sizeof *cnt);
    uint8_t *out = malloc(vox);
    if (!one || !cnt || !out) {
        free(one), free(cnt), free(out);
        return dx_fail(err, DX_ENOMEM, "consensus box of %zu voxels", vox);
    }
    for (int i = 0; i < n; i++) {
        dx_lidc_ann_mask(&anns[idx[i]], bb, 0, one);
        for (size_t v = 0; v < vox; v++) cnt[v] += one[v];
    }
    /* mean >= clevel, i.e. cnt >= clevel * n (exact for clevel = 0.5) */
    for (size_t v = 0; v < vox; v++) out[v] = cnt[v] > 0 && (double)cnt[v] >= clevel * n;
    free(one), free(cnt);
    *mask = out;
    return DX_OK;
}

void dx_lidc_voxel_to_mm(const dx_volume *v, const double vox[3], double mm[3]) {
    for (int a = 0; a < 3; a++)
        mm[a] = v->origin[a] + vox[0] * v->spacing[0] * v->direction[a] + vox[1] * v->spacing[1] * v->direction[3 + a] +
                vox[2] * v->spacing[2] * v->direction[6 + a];
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median of the non-zero values (0 = not rated); 0 if none. */
static double median_nz(double *vals, int n) {
    int m = 0;
    for (int i = 0; i < n; i++)
        if (vals[i] != 0) vals[m++] = vals[i];
    if (!m) return 0;
    qsort(vals, (size_t)m, sizeof *vals, cmp_double);
    return m % 2 ? vals[m / 2] : 0.5 * (vals[m / 2 - 1] + vals[m / 2]);
}

static void mark_row(dx_nodule_info *row, int kind, const dx_volume *v, int k, dx_lidc_pt p, double z) {
    memset(row, 0, sizeof *row);
    row->kind = kind;
    row->n_readers = 1;
    row->centroid_vox[0] = p.x;
    row->centroid_vox[1] = p.y;
    row->centroid_vox[2] = k;
    dx_lidc_voxel_to_mm(v, row->centroid_vox, row->centroid_mm);
    (void)z;
}

dx_status dx_lidc_nodules_build(const dx_lidc_read *r, const dx_volume *v, const dx_lidc_cluster_opts *o,
                                uint8_t *labels, dx_nodule_info **table, int *nrows,
                                dx_lidc_map_stats *stats, int *unresolved, dx_err *err) {
    *table = NULL;
    *nrows = 0;
    if (unresolved) *unresolved = 0;
    size_t plane = (size_t)v->nx * v->ny;
    if (labels) memset(labels, 0, plane * v->nz);
    dx_lidc_ann *anns;
    int nann;
    dx_lidc_map_stats st;
    dx_status s = dx_lidc_map(r, v, &anns, &nann, &st, err);
    if (s) return s;
    if (stats) *stats = st;
    int *cid = malloc(((size_t)nann + 1) * sizeof *cid);
    int *idx = malloc(((size_t)nann + 1) * sizeof *idx);
    int nmarks = st.n_small + st.n_nonnodule;
    dx_nodule_info *rows = calloc((size_t)nann + nmarks + 1, sizeof *rows);
    double *vals = malloc(((size_t)nann + 1) * sizeof *vals);
    if (!cid || !idx || !rows || !vals) {
        s = dx_fail(err, DX_ENOMEM, "nodule table");
        goto done;
    }
    double tol = o->tol > 0 ? o->tol : v->spacing[2];
    int ncl = 0;
    s = dx_lidc_cluster(anns, nann, o, tol, cid, &ncl, unresolved, NULL, err);
    if (s) goto done;
    if (ncl > 255) DX_WARN("series %s: %d nodules; labels above 255 are clipped to 255", v->series_uid, ncl);
    int nr = 0;
    for (int c = 0; c < ncl; c++) {
        int n = 0;
        for (int i = 0; i < nann; i++)
            if (cid[i] == c) idx[n++] = i;
        uint8_t *cm;
        int bb[6];
        s = dx_lidc_consensus(anns, idx, n, o->clevel, &cm, bb, err);
        if (s) goto done;
        dx_nodule_info *row = &rows[nr++];
        row->kind = DX_NOD_NODULE;
        row->label = c + 1 > 255 ? 255 : c + 1;
        row->n_readers = n;
        for (int ch = 0; ch < DX_LIDC_NCHARS; ch++) {
            for (int i = 0; i < n; i++) vals[i] = anns[idx[i]].chars[ch];
            row->chars[ch] = median_nz(vals, n);
        }
        row->malignancy = row->chars[DX_LIDC_MALIGNANCY];
        for (int i = 0; i < n; i++) vals[i] = anns[idx[i]].diameter_mm;
        row->diameter_mm = median_nz(vals, n);
        double sx = 0, sy = 0, sk = 0;
        int64_t cntv = 0;
        int w = bb[1] - bb[0] + 1, h = bb[3] - bb[2] + 1;
        for (int k = bb[4]; k <= bb[5]; k++)
            for (int y = bb[2]; y <= bb[3]; y++)
                for (int x = bb[0]; x <= bb[1]; x++) {
                    if (!cm[((size_t)(k - bb[4]) * h + (y - bb[2])) * w + (x - bb[0])]) continue;
                    sx += x, sy += y, sk += k, cntv++;
                    if (labels && x >= 0 && x < v->nx && y >= 0 && y < v->ny && k >= 0 && k < v->nz)
                        labels[(size_t)k * plane + (size_t)y * v->nx + x] = (uint8_t)row->label;
                }
        free(cm);
        row->n_voxels = cntv;
        row->volume_mm3 = (double)cntv * v->spacing[0] * v->spacing[1] * v->spacing[2];
        if (cntv) {
            row->centroid_vox[0] = sx / cntv, row->centroid_vox[1] = sy / cntv, row->centroid_vox[2] = sk / cntv;
        } else { /* consensus empty (tiny marks): the readers' mean centroid */
            for (int i = 0; i < n; i++)
                for (int a = 0; a < 3; a++) row->centroid_vox[a] += anns[idx[i]].centroid[a] / n;
        }
        dx_lidc_voxel_to_mm(v, row->centroid_vox, row->centroid_mm);
    }
    /* reader marks, unclustered: all small nodules, then all non-nodules */
    for (int si = 0; si < r->nsess; si++) {
        const dx_lidc_session *ses = &r->sessions[si];
        for (int i = 0; i < ses->nnod; i++) {
            const dx_lidc_nodule *nod = &ses->nodules[i];
            if (nod->has_chars || nod->nroi == 0 || nod->rois[0].npts == 0) continue;
            int k = dx_lidc_find_slice(v, nod->rois[0].sop_uid, nod->rois[0].z);
            if (k < 0) continue;
            mark_row(&rows[nr++], DX_NOD_SMALL, v, k, nod->rois[0].pts[0], nod->rois[0].z);
        }
    }
    for (int si = 0; si < r->nsess; si++) {
        const dx_lidc_session *ses = &r->sessions[si];
        for (int i = 0; i < ses->nnon; i++) {
            const dx_lidc_nonnodule *nn = &ses->nonnodules[i];
            int k = dx_lidc_find_slice(v, nn->sop_uid, nn->z);
            if (k < 0) continue;
            mark_row(&rows[nr++], DX_NOD_NONNODULE, v, k, nn->locus, nn->z);
        }
    }
    *table = rows;
    *nrows = nr;
    rows = NULL;
done:
    free(rows), free(cid), free(idx), free(vals);
    dx_lidc_anns_free(anns, nann);
    return s;
}
