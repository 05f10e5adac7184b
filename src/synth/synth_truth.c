/* synth_truth.c - the ground-truth sidecar of one synthetic series.
 *
 * OUT/ground_truth/<patient>/truth.json: scan geometry and protocol, and per
 * lesion its class, true centroid (voxel i=x, j=y, k=z with k in ascending-z
 * slice order, and mm), nominal diameter, latent malignancy and attributes,
 * mask file + box, and what each reader did. Masks are cropped uint8 .npy
 * arrays [nz][ny][nx] whose voxel (0,0,0) is the box origin (x0, y0, z0).
 * One CSV row per lesion goes to OUT/ground_truth/lesions.csv (opened by the
 * caller). Training and evaluation never read this directory. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "io/dx_npy.h"
#include "synth/synth_internal.h"

static const char *cls_name[3] = {"nodule", "small_nodule", "non_nodule"};
static const char *tex_name[3] = {"solid", "part_solid", "ggo"};
static const char *loc_name[3] = {"parenchymal", "juxta_pleural", "juxta_vascular"};
static const char *calc_name[5] = {"none", "central", "laminated", "popcorn", "solid"};
static const char *vendor_name[SYNTH_NVENDORS] = {"GE", "SIEMENS", "PHILIPS", "TOSHIBA"};

static cJSON *arr3(double a, double b, double c) {
    double v[3] = {a, b, c};
    return cJSON_CreateDoubleArray(v, 3);
}

dx_status synth_truth_write(const char *gt_dir, const synth_scan *s, const synth_lesions *ls,
                            const synth_mask *masks, const synth_reading *rd, const char *series_rel,
                            const uint32_t *slice_crc, FILE *csv, dx_err *err) {
    char path[4096];
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "patient_id", s->patient_id);
    cJSON_AddStringToObject(root, "series_dir", series_rel);
    cJSON_AddStringToObject(root, "study_uid", s->study_uid);
    cJSON_AddStringToObject(root, "series_uid", s->series_uid);
    cJSON *sc = cJSON_AddObjectToObject(root, "scan");
    int shp[3] = {s->nz, s->ny, s->nx};
    cJSON_AddItemToObject(sc, "shape_zyx", cJSON_CreateIntArray(shp, 3));
    cJSON_AddNumberToObject(sc, "pixel_spacing", s->ps);
    cJSON_AddNumberToObject(sc, "slice_thickness", s->thick);
    cJSON_AddNumberToObject(sc, "slice_spacing", s->dz);
    cJSON_AddItemToObject(sc, "origin_xyz", arr3(s->x0, s->y0, s->z[0]));
    cJSON_AddItemToObject(sc, "slice_z", cJSON_CreateDoubleArray(s->z, s->nz));
    /* zlib crc32 of each slice's int16 little-endian HU (rescaled stored values), z order */
    cJSON *crc = cJSON_AddArrayToObject(sc, "slice_hu_crc32");
    for (int k = 0; k < s->nz; k++) cJSON_AddItemToArray(crc, cJSON_CreateNumber((double)slice_crc[k]));
    cJSON_AddStringToObject(sc, "vendor_style", vendor_name[s->vendor]);
    cJSON_AddNumberToObject(sc, "rescale_intercept", s->intercept);
    cJSON_AddBoolToObject(sc, "pixel_signed", s->pixel_signed);
    cJSON_AddBoolToObject(sc, "has_padding", s->has_padding);
    cJSON_AddNumberToObject(sc, "outside_fov_hu", s->outside_stored + s->intercept);
    cJSON_AddNumberToObject(sc, "noise_sigma_hu", s->noise_sigma);
    cJSON_AddNumberToObject(sc, "hu_offset", s->hu_offset);
    cJSON_AddBoolToObject(sc, "contrast", s->contrast);
    cJSON_AddBoolToObject(sc, "instances_descending", s->instances_descending);
    cJSON_AddNumberToObject(root, "n_readers", rd->n_readers);
    cJSON *les = cJSON_AddArrayToObject(root, "lesions");
    for (int i = 0; i < ls->n; i++) {
        const synth_lesion *L = &ls->l[i];
        const synth_mask *mk = &masks[i];
        char mname[64];
        snprintf(mname, sizeof mname, "lesion_%02d_mask.npy", i);
        snprintf(path, sizeof path, "%s/%s", gt_dir, mname);
        int64_t mshape[3] = {mk->nz, mk->ny, mk->nx};
        dx_status st = dx_npy_write(path, "|u1", mk->m, mshape, 3, err);
        if (st) { cJSON_Delete(root); return st; }
        double cmm[3] = {s->x0 + mk->cen[0] * s->ps, s->y0 + mk->cen[1] * s->ps, 0};
        double fz = mk->cen[2] - (int)mk->cen[2];
        int k0 = (int)mk->cen[2], k1 = k0 + 1 < s->nz ? k0 + 1 : k0;
        cmm[2] = s->z[k0] + fz * (s->z[k1] - s->z[k0]);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "index", i);
        cJSON_AddStringToObject(o, "class", cls_name[L->cls]);
        cJSON_AddStringToObject(o, "texture", tex_name[L->texture]);
        cJSON_AddStringToObject(o, "location", loc_name[L->location]);
        cJSON_AddStringToObject(o, "calcification", calc_name[L->calc]);
        cJSON_AddNumberToObject(o, "diameter_mm", L->diam);
        cJSON_AddItemToObject(o, "center_mm", arr3(L->c[0], L->c[1], L->c[2]));
        cJSON_AddItemToObject(o, "centroid_voxel_xyz", arr3(mk->cen[0], mk->cen[1], mk->cen[2]));
        cJSON_AddItemToObject(o, "centroid_mm", arr3(cmm[0], cmm[1], cmm[2]));
        cJSON_AddNumberToObject(o, "mask_voxels", (double)mk->count);
        cJSON_AddStringToObject(o, "mask_file", mname);
        int box[3] = {mk->x0, mk->y0, mk->z0};
        cJSON_AddItemToObject(o, "mask_origin_xyz", cJSON_CreateIntArray(box, 3));
        int msz[3] = {mk->nz, mk->ny, mk->nx};
        cJSON_AddItemToObject(o, "mask_shape_zyx", cJSON_CreateIntArray(msz, 3));
        cJSON_AddNumberToObject(o, "malignancy_latent", L->malig_latent);
        cJSON_AddNumberToObject(o, "malignancy_score", L->malig_score);
        cJSON_AddNumberToObject(o, "spiculation", L->spic);
        cJSON_AddNumberToObject(o, "lobulation", L->lob);
        cJSON_AddNumberToObject(o, "margin", L->sharp);
        cJSON_AddNumberToObject(o, "sphericity", L->sphericity);
        cJSON *rs = cJSON_AddArrayToObject(o, "readers");
        int nmarked = 0;
        char mal[32] = "";
        for (int k = 0; k < rd->n_readers; k++) {
            const synth_reader_mark *m = &rd->mark[k][i];
            cJSON *ro = cJSON_CreateObject();
            cJSON_AddStringToObject(ro, "reader_id", rd->reader_id[k]);
            cJSON_AddBoolToObject(ro, "marked", m->marked);
            cJSON_AddBoolToObject(ro, "as_small", m->as_small);
            if (L->cls == SYNTH_NODULE && m->marked && !m->as_small) {
                cJSON_AddItemToObject(ro, "characteristics", cJSON_CreateIntArray(m->chars, 9));
                size_t ml = strlen(mal);
                snprintf(mal + ml, sizeof mal - ml, "%s%d", ml ? ";" : "", m->chars[8]);
            }
            cJSON_AddNumberToObject(ro, "contour_bias_mm", m->bias_mm);
            cJSON_AddItemToArray(rs, ro);
            nmarked += m->marked;
        }
        cJSON_AddItemToArray(les, o);
        if (csv)
            fprintf(csv, "%s,%s,%d,%s,%s,%s,%s,%.4f,%.4f,%.4f,%.4f,%.4f,%.4f,%.4f,%ld,%.5f,%.5f,%.3f,%.3f,%.3f,%d,%d,%s,%s/%s\n",
                    s->patient_id, s->series_uid, i, cls_name[L->cls], tex_name[L->texture], loc_name[L->location],
                    calc_name[L->calc], L->diam, mk->cen[0], mk->cen[1], mk->cen[2], cmm[0], cmm[1], cmm[2],
                    mk->count, L->malig_latent, L->malig_score, L->spic, L->lob, L->sharp, rd->n_readers, nmarked,
                    mal, s->patient_id, mname);
    }
    char *txt = cJSON_Print(root);
    cJSON_Delete(root);
    if (!txt) return dx_fail(err, DX_ENOMEM, "synth: truth json");
    snprintf(path, sizeof path, "%s/truth.json", gt_dir);
    FILE *f = fopen(path, "w");
    if (!f) { free(txt); return dx_fail(err, DX_EIO, "open %s: %s", path, strerror(errno)); }
    fputs(txt, f);
    fputc('\n', f);
    free(txt);
    if (fclose(f) != 0) return dx_fail(err, DX_EIO, "write %s: %s", path, strerror(errno));
    return DX_OK;
}
