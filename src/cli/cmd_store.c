/* cmd_store.c - `dinox store list|export|nodules`: look into a volume store.
 *
 * export writes int16 HU (z, y, x), z ascending, as .npy plus a JSON sidecar
 * with the geometry (docs/data.md), or as NIfTI (.nii / .nii.gz: geometry in
 * the header, RAS), or with --mask the uint8 consensus labels. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cli/cli.h"
#include "io/dx_dicom.h"
#include "io/dx_npy.h"
#include "io/store.h"

static void store_usage(FILE *f) {
    fprintf(f,
            "usage: dinox store list STORE [--csv | --json]\n"
            "       dinox store export STORE --series UID --out V.npy|V.nii|V.nii.gz [--mask]\n"
            "       dinox store nodules STORE [--out nodules.csv]\n"
            "\n"
            "list     one line per series: patient ID, series UID, dims (x y z), spacing (x y z) mm,\n"
            "         slices, nodules, then a total line (series, patients, slices, nodules, GB);\n"
            "         --csv / --json: the same as CSV or as one JSON object with the totals\n"
            "export   int16 HU volume in (z, y, x) order, z ascending, to V.npy and the geometry\n"
            "         to V.json: spacing (z, y, x) mm, origin (LPS mm of voxel 0), direction\n"
            "         (row, column, normal cosines); --mask writes the uint8 consensus label\n"
            "         volume instead (0 = background, n = nodule with label n). V.nii / V.nii.gz:\n"
            "         NIfTI-1 for MONAI, nnU-Net, ITK-SNAP: the same voxels (x fastest), the\n"
            "         scanner affine in RAS as sform and qform, spacing in mm, no sidecar\n"
            "nodules  the nodule table as CSV (stdout or --out)\n");
}

enum { LIST_TEXT, LIST_CSV, LIST_JSON };
static cJSON *darr(const double *v, int n);

static int do_list(const char *dir, int format) {
    dx_err err = {0};
    dx_store_index idx;
    if (dx_store_index_read(&idx, dir, &err)) {
        fprintf(stderr, "store: %s\n", err.msg);
        return 1;
    }
    /* the index alone answers `list`; a full open also checks every data file */
    dx_store s;
    if (dx_store_open(&s, dir, &err)) {
        fprintf(stderr, "store: %s\n", err.msg);
        dx_store_index_free(&idx);
        return 1;
    }
    dx_store_close(&s);
    /* totals: series, distinct patients, slices, nodules, voxels (HU bytes = 2 per voxel) */
    long long slices = 0, nodules = 0, voxels = 0;
    int patients = 0;
    for (int i = 0; i < idx.n_series; i++) {
        const dx_store_series *r = &idx.series[i];
        slices += r->nz, nodules += r->n_nodules, voxels += (long long)r->nx * r->ny * r->nz;
        int seen = 0;
        for (int j = 0; j < i && !seen; j++) seen = !strcmp(idx.series[j].patient_id, r->patient_id);
        patients += !seen;
    }
    cJSON *root = format == LIST_JSON ? cJSON_CreateObject() : NULL, *arr = root ? cJSON_AddArrayToObject(root, "series") : NULL;
    if (format == LIST_TEXT)
        printf("%-16s %-64s %-13s %-22s %6s %7s\n", "patient", "series_uid", "dims", "spacing_mm", "slices", "nodules");
    else if (format == LIST_CSV)
        printf("patient_id,series_uid,nx,ny,nz,spacing_x_mm,spacing_y_mm,spacing_z_mm,slices,nodules\n");
    for (int i = 0; i < idx.n_series; i++) {
        const dx_store_series *r = &idx.series[i];
        const char *pid = r->patient_id[0] ? r->patient_id : "-";
        if (format == LIST_TEXT) {
            char dims[32], sp[48];
            snprintf(dims, sizeof dims, "%dx%dx%d", r->nx, r->ny, r->nz);
            snprintf(sp, sizeof sp, "%.3fx%.3fx%.3f", r->spacing[0], r->spacing[1], r->spacing[2]);
            printf("%-16s %-64s %-13s %-22s %6d %7d\n", pid, r->series_uid, dims, sp, r->nz, r->n_nodules);
        } else if (format == LIST_CSV) { /* IDs and UIDs hold no commas or quotes (DICOM UI / LO rules) */
            printf("%s,%s,%d,%d,%d,%.6g,%.6g,%.6g,%d,%d\n", pid, r->series_uid, r->nx, r->ny, r->nz, r->spacing[0],
                   r->spacing[1], r->spacing[2], r->nz, r->n_nodules);
        } else if (arr) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddItemToArray(arr, o);
            cJSON_AddStringToObject(o, "patient_id", r->patient_id);
            cJSON_AddStringToObject(o, "series_uid", r->series_uid);
            cJSON *d = cJSON_AddArrayToObject(o, "dims_xyz");
            cJSON_AddItemToArray(d, cJSON_CreateNumber(r->nx));
            cJSON_AddItemToArray(d, cJSON_CreateNumber(r->ny));
            cJSON_AddItemToArray(d, cJSON_CreateNumber(r->nz));
            cJSON_AddItemToObject(o, "spacing_xyz_mm", darr(r->spacing, 3));
            cJSON_AddNumberToObject(o, "nodules", r->n_nodules);
        }
    }
    if (format == LIST_TEXT)
        printf("total: %d series, %d patients, %lld slices, %lld nodules, %.2f GB of HU\n", idx.n_series, patients,
               slices, nodules, 2.0 * voxels / 1e9);
    if (root) {
        cJSON *t = cJSON_AddObjectToObject(root, "total");
        cJSON_AddNumberToObject(t, "series", idx.n_series);
        cJSON_AddNumberToObject(t, "patients", patients);
        cJSON_AddNumberToObject(t, "slices", (double)slices);
        cJSON_AddNumberToObject(t, "nodules", (double)nodules);
        cJSON_AddNumberToObject(t, "hu_bytes", 2.0 * voxels);
        char *txt = cJSON_Print(root);
        if (txt) printf("%s\n", txt);
        free(txt);
        cJSON_Delete(root);
    }
    dx_store_index_free(&idx);
    return 0;
}

static cJSON *darr(const double *v, int n) {
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber(v[i]));
    return a;
}

static int write_sidecar(const char *npy, const dx_store_series *r, int mask) {
    char path[4200];
    snprintf(path, sizeof path, "%s", npy);
    size_t l = strlen(path);
    if (l > 4 && !strcmp(path + l - 4, ".npy")) path[l - 4] = 0;
    strncat(path, ".json", sizeof path - strlen(path) - 1);
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "patient_id", r->patient_id);
    cJSON_AddStringToObject(j, "study_uid", r->study_uid);
    cJSON_AddStringToObject(j, "series_uid", r->series_uid);
    cJSON_AddStringToObject(j, "content", mask ? "consensus nodule labels (uint8)" : "HU (int16)");
    cJSON_AddStringToObject(j, "axes", "z,y,x");
    double shape[3] = {r->nz, r->ny, r->nx};
    cJSON_AddItemToObject(j, "shape", darr(shape, 3));
    double sp[3] = {r->spacing[2], r->spacing[1], r->spacing[0]};
    cJSON_AddItemToObject(j, "spacing", darr(sp, 3));
    cJSON_AddItemToObject(j, "origin", darr(r->origin, 3));
    cJSON_AddItemToObject(j, "direction", darr(r->direction, 9));
    cJSON_AddStringToObject(j, "coordinates",
                            "LPS mm; voxel (x,y,z) at origin + x*sx*direction[0:3] + y*sy*direction[3:6] + "
                            "z*sz*direction[6:9]");
    cJSON *fl = cJSON_CreateArray();
    if (r->flags & DX_STORE_FLAG_GAPS) cJSON_AddItemToArray(fl, cJSON_CreateString("gaps"));
    if (r->flags & DX_STORE_FLAG_NONUNIFORM) cJSON_AddItemToArray(fl, cJSON_CreateString("nonuniform_spacing"));
    if (r->flags & DX_STORE_FLAG_DUPLICATES) cJSON_AddItemToArray(fl, cJSON_CreateString("duplicate_slices_dropped"));
    cJSON_AddItemToObject(j, "slice_flags", fl);
    cJSON_AddNumberToObject(j, "window_center", r->window_center);
    cJSON_AddNumberToObject(j, "window_width", r->window_width);
    char *txt = cJSON_Print(j);
    cJSON_Delete(j);
    if (!txt) return 1;
    FILE *f = fopen(path, "w");
    int bad = !f || fputs(txt, f) < 0 || fputc('\n', f) < 0;
    if (f && fclose(f)) bad = 1;
    free(txt);
    if (bad) fprintf(stderr, "store: cannot write %s\n", path);
    return bad;
}

static int do_export(const char *dir, const char *uid, const char *out, int mask) {
    dx_err err = {0};
    dx_store s;
    if (dx_store_open(&s, dir, &err)) {
        fprintf(stderr, "store: %s\n", err.msg);
        return 1;
    }
    int i = dx_store_find(&s, uid);
    if (i < 0) {
        fprintf(stderr, "store: series %s is not in %s\n", uid, dir);
        dx_store_close(&s);
        return 1;
    }
    const dx_store_series *r = dx_store_info(&s, i);
    if (mask && !s.mask[i]) {
        fprintf(stderr, "store: series %s has no annotation mask\n", uid);
        dx_store_close(&s);
        return 1;
    }
    int64_t shape[3] = {r->nz, r->ny, r->nx};
    /* the store's layout already is (z, y, x) C order: write the mapping as is
     * (NIfTI: x fastest, the same bytes, geometry in the header) */
    const int nifti = dx_nifti_path(out);
    const void *vox = mask ? (const void *)s.mask[i] : (const void *)s.hu[i];
    dx_status st = nifti ? dx_nifti_save(out, vox, mask, r->nx, r->ny, r->nz, r->spacing, r->origin, r->direction, &err)
                   : mask ? dx_npy_write(out, "|u1", s.mask[i], shape, 3, &err)
                          : dx_npy_write(out, "<i2", s.hu[i], shape, 3, &err);
    int rc = 0;
    if (st) {
        fprintf(stderr, "store: %s\n", err.msg);
        rc = 1;
    } else if (!nifti) {
        rc = write_sidecar(out, r, mask);
    }
    dx_store_close(&s);
    return rc;
}

static int do_nodules(const char *dir, const char *out) {
    dx_err err = {0};
    dx_store_index idx;
    if (dx_store_index_read(&idx, dir, &err)) {
        fprintf(stderr, "store: %s\n", err.msg);
        return 1;
    }
    FILE *f = out ? fopen(out, "w") : stdout;
    if (!f) {
        fprintf(stderr, "store: cannot write %s\n", out);
        dx_store_index_free(&idx);
        return 1;
    }
    int rc = dx_store_write_csv(&idx, f, &err) ? 1 : 0;
    if (out && fclose(f)) rc = 1;
    if (rc) fprintf(stderr, "store: writing CSV failed\n");
    dx_store_index_free(&idx);
    return rc;
}

int cmd_store(int argc, char **argv) {
    if (cli_wants_help(argc, argv) || argc < 2) {
        store_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *verb = argv[1], *dir = NULL, *uid = NULL, *out = NULL;
    int mask = 0, list_format = LIST_TEXT;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--series") && i + 1 < argc) uid = argv[++i];
        else if (!strcmp(argv[i], "--out") && i + 1 < argc) out = argv[++i];
        else if (!strcmp(argv[i], "--mask")) mask = 1;
        else if (!strcmp(argv[i], "--csv")) list_format = LIST_CSV;
        else if (!strcmp(argv[i], "--json")) list_format = LIST_JSON;
        else if (argv[i][0] != '-' && !dir) dir = argv[i];
        else {
            fprintf(stderr, "store: unexpected argument '%s'\n", argv[i]);
            store_usage(stderr);
            return 2;
        }
    }
    if (!dir) {
        fprintf(stderr, "dinox store %s: missing STORE\n\n", verb);
        store_usage(stderr);
        return 2;
    }
    if (!strcmp(verb, "list")) return do_list(dir, list_format);
    if (!strcmp(verb, "nodules")) return do_nodules(dir, out);
    if (!strcmp(verb, "export") && out && !dx_nifti_path(out)) {
        size_t n = strlen(out);
        if (n < 4 || strcmp(out + n - 4, ".npy")) {
            fprintf(stderr, "store export: --out %s: the format comes from the extension: .npy, .nii or .nii.gz\n", out);
            return 2;
        }
    }
    if (!strcmp(verb, "export")) {
        if (!uid || !out) {
            fprintf(stderr, "store export: --series UID and --out V.npy are required\n");
            return 2;
        }
        return do_export(dir, uid, out, mask);
    }
    fprintf(stderr, "store: unknown verb '%s'\n", verb);
    store_usage(stderr);
    return 2;
}
