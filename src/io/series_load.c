/* series_load.c - one scanned CT series -> dx_volume in HU.
 *
 * Order: position d = IPP . normal (normal = row x col from IOP), ascending;
 * never file names or InstanceNumber. Spacing along z = median step of d
 * (SliceThickness is nominal and often differs). Duplicated positions keep
 * the lower InstanceNumber (pylidc's rule); gaps and uneven steps are
 * reported, not fixed. Slices are decoded in parallel (one file each). */
#include "io/dx_dicom.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/dx_log.h"

#define DUP_TOL_MM 0.01   /* positions closer than this are the same slice */
#define GEOM_TOL 1e-4     /* IOP cosines / pixel spacing must agree this well */
#define GAP_FACTOR 1.5    /* a step > 1.5 x median is a missing slice (LUNA16 practice) */

typedef struct order {
    int idx;       /* into s->slices */
    double d;      /* position along the normal, mm */
    int inst;
} order;

static int cmp_order(const void *a, const void *b) {
    const order *x = a, *y = b;
    if (x->d < y->d) return -1;
    if (x->d > y->d) return 1;
    if (x->inst != y->inst) return x->inst < y->inst ? -1 : 1;
    return x->idx - y->idx;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void unit_normal(const double *iop, double n[3]) {
    const double *r = iop, *c = iop + 3;
    n[0] = r[1] * c[2] - r[2] * c[1];
    n[1] = r[2] * c[0] - r[0] * c[2];
    n[2] = r[0] * c[1] - r[1] * c[0];
    double l = sqrt(n[0] * n[0] + n[1] * n[1] + n[2] * n[2]);
    if (l > 0)
        for (int i = 0; i < 3; i++) n[i] /= l;
}

/* Reads slice file `path` with pixels and writes its HU plane; checks that its
 * layout matches the reference slice. */
static dx_status load_plane(const char *path, const dx_dicom_file *ref, int16_t *plane, dx_dicom_file *hdr_out,
                            dx_err *err) {
    dx_dicom_file f;
    dx_status st = dx_dicom_read(&f, path, 1, err);
    if (st) return st;
    if (f.number_of_frames != 1)
        st = dx_fail(err, DX_EFORMAT, "%s: %d frames; series slices must be single-frame", path, f.number_of_frames);
    else if (ref && (f.rows != ref->rows || f.cols != ref->cols))
        st = dx_fail(err, DX_EFORMAT, "%s: %dx%d pixels, the series' first slice has %dx%d", path, f.cols, f.rows,
                     ref->cols, ref->rows);
    else if (!f.has_pixel_spacing || f.pixel_spacing[0] <= 0 || f.pixel_spacing[1] <= 0)
        st = dx_fail(err, DX_EFORMAT, "%s: PixelSpacing missing or not positive", path);
    else if (ref && (fabs(f.pixel_spacing[0] - ref->pixel_spacing[0]) > GEOM_TOL ||
                     fabs(f.pixel_spacing[1] - ref->pixel_spacing[1]) > GEOM_TOL))
        st = dx_fail(err, DX_EFORMAT, "%s: PixelSpacing %g\\%g differs from the series' %g\\%g", path,
                     f.pixel_spacing[0], f.pixel_spacing[1], ref->pixel_spacing[0], ref->pixel_spacing[1]);
    if (!st && ref) {
        for (int i = 0; i < 6; i++)
            if (fabs(f.iop[i] - ref->iop[i]) > GEOM_TOL) {
                st = dx_fail(err, DX_EFORMAT, "%s: ImageOrientationPatient differs from the series' first slice", path);
                break;
            }
    }
    if (!st) st = dx_dicom_to_hu(&f, 0, plane, err);
    dx_dicom_file_free(&f);
    if (!st && hdr_out) *hdr_out = f;
    return st;
}

dx_status dx_series_load(const dx_series *s, dx_volume *vol, dx_series_report *rep, dx_err *err) {
    if (!s || !vol) return dx_fail(err, DX_EINVAL, "dx_series_load: NULL argument");
    memset(vol, 0, sizeof *vol);
    dx_series_report r;
    memset(&r, 0, sizeof r);
    dx_status st = DX_OK;
    r.n_files = s->n_slices;
    snprintf(r.transfer_syntax, sizeof r.transfer_syntax, "%s", s->transfer_syntax);
    if (s->n_slices < 1) {
        if (rep) *rep = r;
        return dx_fail(err, DX_ENOTFOUND, "series %s has no slices", s->series_uid);
    }

    /* 1. Order along the first slice's normal; drop duplicate positions. */
    double normal[3];
    unit_normal(s->slices[0].iop, normal);
    order *o = malloc((size_t)s->n_slices * sizeof *o);
    if (!o) return dx_fail(err, DX_ENOMEM, "series %s: order", s->series_uid);
    for (int i = 0; i < s->n_slices; i++) {
        const double *p = s->slices[i].ipp;
        o[i] = (order){i, p[0] * normal[0] + p[1] * normal[1] + p[2] * normal[2], s->slices[i].instance_number};
    }
    /* Descending: the slice with the lowest InstanceNumber lies furthest along +normal. */
    int lo = 0, hi = 0;
    for (int i = 1; i < s->n_slices; i++) {
        if (o[i].inst < o[lo].inst) lo = i;
        if (o[i].inst > o[hi].inst) hi = i;
    }
    r.descending = o[lo].d > o[hi].d;
    qsort(o, (size_t)s->n_slices, sizeof *o, cmp_order);
    int nz = 0;
    for (int i = 0; i < s->n_slices; i++) {
        if (nz > 0 && fabs(o[i].d - o[nz - 1].d) < DUP_TOL_MM) {
            DX_WARN("series %s: duplicate slice position %.3f mm: keeping %s (InstanceNumber %d), dropping %s (%d)",
                    s->series_uid, o[i].d, s->slices[o[nz - 1].idx].path, o[nz - 1].inst, s->slices[o[i].idx].path,
                    o[i].inst);
            r.n_duplicates++;
            continue;
        }
        o[nz++] = o[i];
    }
    r.n_slices = nz;
    /* In-plane drift of IPP along the stack (gantry tilt shears it). */
    for (int k = 1; k < nz; k++) {
        const double *a = s->slices[o[0].idx].ipp, *b = s->slices[o[k].idx].ipp, *iop = s->slices[0].iop;
        double dv[3] = {b[0] - a[0], b[1] - a[1], b[2] - a[2]};
        double u = dv[0] * iop[0] + dv[1] * iop[1] + dv[2] * iop[2];
        double w = dv[0] * iop[3] + dv[1] * iop[4] + dv[2] * iop[5];
        double sh = sqrt(u * u + w * w);
        if (sh > r.inplane_shift_max) r.inplane_shift_max = sh;
    }

    /* 2. Steps along the normal. */
    double *steps = NULL;
    if (nz > 1) {
        steps = malloc((size_t)(nz - 1) * sizeof *steps);
        if (!steps) {
            free(o);
            return dx_fail(err, DX_ENOMEM, "series %s: steps", s->series_uid);
        }
        for (int k = 1; k < nz; k++) steps[k - 1] = o[k].d - o[k - 1].d;
        r.spacing_min = r.spacing_max = steps[0];
        for (int k = 0; k < nz - 1; k++) {
            if (steps[k] < r.spacing_min) r.spacing_min = steps[k];
            if (steps[k] > r.spacing_max) r.spacing_max = steps[k];
        }
        double *sorted = malloc((size_t)(nz - 1) * sizeof *sorted);
        if (!sorted) {
            free(o), free(steps);
            return dx_fail(err, DX_ENOMEM, "series %s: steps", s->series_uid);
        }
        memcpy(sorted, steps, (size_t)(nz - 1) * sizeof *sorted);
        qsort(sorted, (size_t)(nz - 1), sizeof *sorted, cmp_double);
        int m = nz - 1;
        r.spacing_median = m % 2 ? sorted[m / 2] : 0.5 * (sorted[m / 2 - 1] + sorted[m / 2]);
        free(sorted);
        for (int k = 0; k < m; k++) {
            if (steps[k] > GAP_FACTOR * r.spacing_median) r.n_gaps++;
            if (fabs(steps[k] - r.spacing_median) > 0.01 * r.spacing_median + 0.01) r.nonuniform = 1;
        }
        free(steps);
    }

    /* 3. Decode the slices (parallel: one file per iteration). */
    dx_dicom_file ref;
    dx_err e0 = {0};
    int16_t *hu = NULL;
    st = dx_dicom_read(&ref, s->slices[o[0].idx].path, 0, &e0);
    if (st) {
        if (err) *err = e0;
        goto fail;
    }
    if (ref.rows <= 0 || ref.cols <= 0) {
        st = dx_fail(err, DX_EFORMAT, "%s: Rows/Columns missing", s->slices[o[0].idx].path);
        goto fail;
    }
    size_t plane = (size_t)ref.rows * ref.cols;
    hu = malloc(plane * (size_t)nz * sizeof *hu);
    vol->sop_uids = malloc((size_t)nz * sizeof *vol->sop_uids);
    vol->slice_z = malloc((size_t)nz * sizeof *vol->slice_z);
    dx_status *sts = calloc((size_t)nz, sizeof *sts);
    dx_err *errs = calloc((size_t)nz, sizeof *errs);
    if (!hu || !vol->sop_uids || !vol->slice_z || !sts || !errs) {
        free(sts), free(errs);
        st = dx_fail(err, DX_ENOMEM, "series %s: %d slices of %dx%d", s->series_uid, nz, ref.cols, ref.rows);
        goto fail;
    }
    dx_dicom_file first_hdr;
    memset(&first_hdr, 0, sizeof first_hdr);
#pragma omp parallel for schedule(dynamic)
    for (int k = 0; k < nz; k++)
        sts[k] = load_plane(s->slices[o[k].idx].path, &ref, hu + (size_t)k * plane, k == 0 ? &first_hdr : NULL,
                            &errs[k]);
    for (int k = 0; k < nz; k++)
        if (sts[k]) {
            st = sts[k];
            if (err) *err = errs[k];
            break;
        }
    free(sts), free(errs);
    if (st) goto fail;

    /* 4. Geometry and identity. */
    vol->nx = ref.cols;
    vol->ny = ref.rows;
    vol->nz = nz;
    vol->hu = hu;
    hu = NULL;
    vol->spacing[0] = ref.pixel_spacing[1]; /* between columns = along a row (x) */
    vol->spacing[1] = ref.pixel_spacing[0]; /* between rows (y) */
    vol->spacing[2] = nz > 1 ? r.spacing_median : (ref.slice_thickness > 0 ? ref.slice_thickness : 1.0);
    memcpy(vol->origin, s->slices[o[0].idx].ipp, sizeof vol->origin);
    memcpy(vol->direction, ref.iop, 6 * sizeof(double));
    memcpy(vol->direction + 6, normal, sizeof normal);
    for (int k = 0; k < nz; k++) {
        memcpy(vol->sop_uids[k], s->slices[o[k].idx].sop_uid, DX_UID_MAX);
        vol->slice_z[k] = s->slices[o[k].idx].ipp[2];
    }
    memcpy(vol->patient_id, s->patient_id, DX_UID_MAX);
    memcpy(vol->study_uid, s->study_uid, DX_UID_MAX);
    memcpy(vol->series_uid, s->series_uid, DX_UID_MAX);
    vol->window_center = first_hdr.window_center;
    vol->window_width = first_hdr.window_width;
    r.slice_thickness = ref.slice_thickness;
    if (r.inplane_shift_max > 0.01)
        DX_WARN("series %s: slice positions drift %.3f mm in-plane (gantry tilt?): volume geometry is approximate",
                s->series_uid, r.inplane_shift_max);
    if (r.n_gaps || r.nonuniform)
        DX_WARN("series %s: %d gap(s), steps %.3f..%.3f mm (median %.3f)", s->series_uid, r.n_gaps, r.spacing_min,
                r.spacing_max, r.spacing_median);
    free(o);
    if (rep) *rep = r;
    return DX_OK;

fail:
    free(o);
    free(hu);
    dx_volume_free(vol);
    if (rep) *rep = r;
    return st;
}
