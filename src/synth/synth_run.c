/* synth_run.c - `dinox synth` driver: for each patient draw the protocol,
 * anatomy, lesions and readers, render and write the slices (OpenMP over
 * slices; every slice is a pure function of (seed, patient, k)), then the
 * LIDC XML and the ground-truth sidecar.
 *
 * Tree: OUT/LIDC-IDRI-NNNN/01-01-2000-NA-NA-<5 of study UID>/
 *         <SeriesNumber>.000000-NA-<5 of series UID>/1-NNN.dcm + NNN.xml
 *       OUT/ground_truth/lesions.csv, OUT/ground_truth/LIDC-IDRI-NNNN/... */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <zlib.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "core/dx_file.h"
#include "core/dx_log.h"
#include "synth/synth.h"
#include "io/dx_npy.h"
#include "synth/synth_internal.h"

int dx_synth_default_slices_max(int size) { return size >= 512 ? 96 : size >= 256 ? 80 : 40; }

static const char *last5(const char *uid) {
    size_t n = strlen(uid);
    return n > 5 ? uid + n - 5 : uid;
}

static dx_status one_patient(const dx_synth_config *cfg, int patient, FILE *csv, dx_err *err) {
    synth_scan s;
    synth_anatomy an;
    synth_lesions ls;
    synth_reading rd;
    synth_mask masks[SYNTH_MAX_LESIONS];
    memset(masks, 0, sizeof masks);
    memset(&ls, 0, sizeof ls);
    memset(&rd, 0, sizeof rd);
    memset(&an, 0, sizeof an);
    int slices_max = cfg->slices_max > 0 ? cfg->slices_max : dx_synth_default_slices_max(cfg->size);
    synth_scan_draw(&s, cfg->seed, patient, cfg->size);
    dx_status st = synth_anatomy_build(&an, &s, cfg->seed, patient, err);
    if (st == DX_OK) st = synth_scan_set_z(&s, an.z_lo, an.z_hi, slices_max, cfg->seed, err);
    int16_t *vol = NULL;
    uint8_t *lab = NULL;
    uint32_t *crc = NULL;
    char series_rel[512], series_dir[4096], gt_dir[4096], path[4200];
    if (st == DX_OK) {
        synth_lesions_place(&ls, &an, &s, cfg->seed, patient);
        synth_readers_draw(&rd, &ls, &an, cfg->seed, patient);
        snprintf(series_rel, sizeof series_rel, "%s/01-01-2000-NA-NA-%s/%d.000000-NA-%s", s.patient_id,
                 last5(s.study_uid), s.series_number, last5(s.series_uid));
        snprintf(series_dir, sizeof series_dir, "%s/%s", cfg->out_dir, series_rel);
        snprintf(gt_dir, sizeof gt_dir, "%s/ground_truth/%s", cfg->out_dir, s.patient_id);
        st = dx_mkdirs(series_dir, err);
        if (st == DX_OK) st = dx_mkdirs(gt_dir, err);
    }
    if (st == DX_OK) {
        vol = malloc(sizeof(int16_t) * (size_t)s.nx * s.ny * s.nz);
        crc = calloc((size_t)s.nz, sizeof *crc);
        if (cfg->gt_volume) lab = malloc((size_t)s.nx * s.ny * s.nz);
        if (!vol || !crc || (cfg->gt_volume && !lab)) st = dx_fail(err, DX_ENOMEM, "synth: volume %dx%dx%d", s.nx, s.ny, s.nz);
    }
    if (st == DX_OK) {
        synth_render_ctx ctx = {&s, &an, &ls, cfg->seed, s.nx >= 512 ? 1 : 2};
        dx_status *sst = calloc((size_t)s.nz, sizeof *sst);
        dx_err *serr = calloc((size_t)s.nz, sizeof *serr);
        if (!sst || !serr) st = dx_fail(err, DX_ENOMEM, "synth: slice status");
        else {
            int nt = 1;
#ifdef _OPENMP
            nt = cfg->threads > 0 ? cfg->threads : omp_get_max_threads();
#endif
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt)
            for (int k = 0; k < s.nz; k++) {
                int16_t *hu = vol + (size_t)k * s.nx * s.ny;
                char fpath[4200];
                sst[k] = synth_render_slice(&ctx, k, hu, &serr[k]);
                int inst = synth_scan_instance(&s, k);
                snprintf(fpath, sizeof fpath, "%s/1-%03d.dcm", series_dir, inst);
                if (lab) synth_render_labels(&ctx, k, lab + (size_t)k * s.nx * s.ny);
                if (sst[k] == DX_OK) sst[k] = synth_dicom_write(fpath, &s, k, hu, cfg->explicit_vr, &serr[k]);
                /* HU bytes are little-endian int16 on every platform we build for */
                crc[k] = (uint32_t)crc32(0L, (const Bytef *)hu, (uInt)(sizeof(int16_t) * s.nx * s.ny));
            }
            for (int k = 0; k < s.nz && st == DX_OK; k++)
                if (sst[k]) st = dx_fail(err, sst[k], "%s slice %d: %s", s.patient_id, k, serr[k].msg);
        }
        free(sst), free(serr);
    }
    for (int i = 0; i < ls.n && st == DX_OK; i++) st = synth_mask_build(&masks[i], &ls.l[i], &an, &s, err);
    if (st == DX_OK) {
        snprintf(path, sizeof path, "%s/%03d.xml", series_dir, s.xml_number);
        st = synth_xml_write(path, &s, &an, &ls, masks, &rd, cfg->seed, err);
    }
    if (st == DX_OK) st = synth_truth_write(gt_dir, &s, &ls, masks, &rd, series_rel, crc, csv, err);
    if (st == DX_OK && cfg->gt_volume) {
        int64_t shape[3] = {s.nz, s.ny, s.nx};
        snprintf(path, sizeof path, "%s/hu.npy", gt_dir);
        st = dx_npy_write(path, "<i2", vol, shape, 3, err);
        snprintf(path, sizeof path, "%s/labels.npy", gt_dir);
        if (st == DX_OK) st = dx_npy_write(path, "|u1", lab, shape, 3, err);
    }
    if (st == DX_OK) {
        int nn = 0;
        for (int i = 0; i < ls.n; i++) nn += ls.l[i].cls == SYNTH_NODULE;
        DX_INFO("synth: %s %d slices %dx%d ps %.3f thick %.3f, %d readers, %d nodules >= 3 mm, %d lesions",
                s.patient_id, s.nz, s.nx, s.ny, s.ps, s.thick, rd.n_readers, nn, ls.n);
    }
    for (int i = 0; i < SYNTH_MAX_LESIONS; i++) synth_mask_free(&masks[i]);
    free(vol), free(crc), free(lab);
    synth_anatomy_free(&an);
    synth_scan_free(&s);
    return st;
}

/* out_dir may be missing or an empty directory; anything else only with force. */
static dx_status check_out_dir(const char *dir, int force, dx_err *err) {
    struct stat sb;
    if (stat(dir, &sb) != 0) {
        if (errno == ENOENT) return DX_OK;
        return dx_fail(err, DX_EIO, "synth: %s: %s", dir, strerror(errno));
    }
    if (!S_ISDIR(sb.st_mode)) return dx_fail(err, DX_EINVAL, "synth: %s exists and is not a directory", dir);
    if (force) return DX_OK;
    DIR *d = opendir(dir);
    if (!d) return dx_fail(err, DX_EIO, "synth: %s: %s", dir, strerror(errno));
    int used = 0;
    for (struct dirent *e; !used && (e = readdir(d));) used = strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    closedir(d);
    if (used)
        return dx_fail(err, DX_EINVAL,
                       "synth: output directory %s is not empty (writing into it would add a second study to its "
                       "patients and replace ground_truth/lesions.csv); choose a new directory, or pass --force to "
                       "write into it anyway", dir);
    return DX_OK;
}

dx_status dx_synth_run(const dx_synth_config *cfg, dx_err *err) {
    if (!cfg || !cfg->out_dir || !cfg->out_dir[0]) return dx_fail(err, DX_EINVAL, "synth: no output directory");
    if (cfg->size != 512 && cfg->size != 256 && cfg->size != 128)
        return dx_fail(err, DX_EINVAL, "synth: size must be 512, 256 or 128 (got %d)", cfg->size);
    if (cfg->n_patients < 1 || cfg->n_patients > 9999)
        return dx_fail(err, DX_EINVAL, "synth: patients must be 1..9999 (got %d)", cfg->n_patients);
    int first = cfg->first_patient > 0 ? cfg->first_patient : 1;
    if (first + cfg->n_patients - 1 > 9999) return dx_fail(err, DX_EINVAL, "synth: patient numbers exceed 9999");
    if (cfg->slices_max < 0) return dx_fail(err, DX_EINVAL, "synth: slices-max must be >= 0");
    dx_status st = check_out_dir(cfg->out_dir, cfg->force, err);
    if (st) return st;
    char path[4200];
    snprintf(path, sizeof path, "%s/ground_truth", cfg->out_dir);
    st = dx_mkdirs(path, err);
    if (st) return st;
    snprintf(path, sizeof path, "%s/ground_truth/lesions.csv", cfg->out_dir);
    FILE *csv = fopen(path, "w");
    if (!csv) return dx_fail(err, DX_EIO, "open %s: %s", path, strerror(errno));
    fprintf(csv, "patient_id,series_uid,lesion,class,texture,location,calcification,diameter_mm,"
                 "centroid_x_vox,centroid_y_vox,centroid_z_vox,centroid_x_mm,centroid_y_mm,centroid_z_mm,"
                 "mask_voxels,malignancy_latent,malignancy_score,spiculation,lobulation,margin,n_readers,"
                 "n_marked,reader_malignancy,mask_file\n");
    for (int p = first; p < first + cfg->n_patients && st == DX_OK; p++) st = one_patient(cfg, p, csv, err);
    if (fclose(csv) != 0 && st == DX_OK) st = dx_fail(err, DX_EIO, "write %s: %s", path, strerror(errno));
    return st;
}
