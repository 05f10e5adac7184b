/* test_eval_crops.c - nodule crops and the evaluation set on a hand-built store.
 *
 * A volume with anisotropic pixels (0.7 x 0.8 mm) holds a disk nodule of
 * radius 5 mm on slices 4..6 with its consensus label; every slice has its own
 * background HU so the 2.5D channels can be told apart. Checked against
 * closed-form expectations: crop side, mask area (pi r^2 in crop pixels),
 * mask centroid at the crop centre, windowed values, channel order, clamping
 * at the volume's ends, and the labels / patient split of dx_eval_set_build. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dx_test.h"
#include "eval/crops.h"
#include "eval/eval_run.h"
#include "eval/radiomics.h"
#include "eval/split.h"
#include "io/store.h"

enum { NX = 100, NY = 80, NZ = 10 };
static const double SX = 0.7, SY = 0.8, CX = 40.3, CY = 35.6, R = 5.0;

static int in_disk(int x, int y) {
    double dx = (x - CX) * SX, dy = (y - CY) * SY;
    return dx * dx + dy * dy <= R * R;
}

static dx_nodule_info row(int label, int readers, double mal, double cx, double cy, double cz, double diam) {
    dx_nodule_info r;
    memset(&r, 0, sizeof r);
    r.kind = DX_NOD_NODULE;
    r.label = label;
    r.n_readers = readers;
    r.malignancy = mal;
    r.centroid_vox[0] = cx;
    r.centroid_vox[1] = cy;
    r.centroid_vox[2] = cz;
    r.diameter_mm = diam;
    return r;
}

static void add_series(dx_store_writer *w, int patient, int series, const dx_nodule_info *rows, int n) {
    dx_volume v;
    memset(&v, 0, sizeof v);
    v.nx = NX, v.ny = NY, v.nz = NZ;
    v.spacing[0] = SX, v.spacing[1] = SY, v.spacing[2] = 2;
    v.direction[0] = v.direction[4] = v.direction[8] = 1;
    snprintf(v.patient_id, DX_UID_MAX, "P%03d", patient);
    snprintf(v.study_uid, DX_UID_MAX, "1.2.%d", patient);
    snprintf(v.series_uid, DX_UID_MAX, "1.2.%d.%d", patient, series);
    v.hu = malloc((size_t)NX * NY * NZ * sizeof *v.hu);
    uint8_t *lab = calloc((size_t)NX * NY * NZ, 1);
    for (int z = 0; z < NZ; z++)
        for (int y = 0; y < NY; y++)
            for (int x = 0; x < NX; x++) {
                int nod = z >= 4 && z <= 6 && in_disk(x, y);
                v.hu[((size_t)z * NY + y) * NX + x] = (int16_t)(nod ? 40 : -900 + 10 * z);
                lab[((size_t)z * NY + y) * NX + x] = nod;
            }
    dx_err e = {0};
    CHECK(dx_store_writer_add(w, &v, lab, rows, n, 0, &e) == DX_OK, "store add: %s", e.msg);
    free(v.hu);
    free(lab);
}

int main(void) {
    char dir[] = "/tmp/dx_test_eval_crops_XXXXXX";
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    dx_store_writer w;
    dx_err e = {0};
    CHECK(dx_store_writer_open(&w, dir, &e) == DX_OK, "writer: %s", e.msg);
    /* patient 0: the disk nodule (label 1) plus table rows for the label rule */
    dx_nodule_info r0[6] = {
        row(1, 4, 4.0, CX, CY, 5, 10),   /* malignant */
        row(2, 4, 2.0, 2, 3, 0, 20),     /* benign, at the corner and on slice 0 */
        row(3, 4, 3.0, 50, 50, 9, 4),    /* median 3: excluded */
        row(4, 2, 5.0, 60, 40, 5, 6),    /* 2 readers < 3: excluded */
        row(5, 3, 3.5, 30, 30, 5, 8),    /* malignant (> 3) */
        row(0, 1, 0, 10, 10, 5, 0)};     /* a small mark: not a nodule row */
    r0[5].kind = DX_NOD_SMALL;
    add_series(&w, 0, 0, r0, 6);
    /* more patients so the split has something to do; patient 1 has two series */
    for (int p = 1; p < 10; p++) {
        dx_nodule_info rp = row(1, 4, p % 2 ? 4.5 : 1.5, CX, CY, 5, 10);
        add_series(&w, p, 0, &rp, 1);
        if (p == 1) add_series(&w, p, 1, &rp, 1);
    }
    dx_store_writer_close(&w);

    dx_store s;
    CHECK(dx_store_open(&s, dir, &e) == DX_OK, "open: %s", e.msg);
    int row_disk = -1, row_corner = -1;
    for (int i = 0; i < s.idx.n_rows && s.idx.rows[i].series == 0; i++) {
        if (s.idx.rows[i].info.label == 1) row_disk = i;
        if (s.idx.rows[i].info.label == 2) row_corner = i;
    }
    CHECK(row_disk >= 0 && row_corner >= 0, "rows found");

    dx_crop_opts o;
    dx_crop_opts_default(&o);
    const int S = 64;
    o.size = S;
    float *img = malloc(3 * S * S * sizeof *img), *gray = malloc(S * S * sizeof *gray);
    uint8_t *mask = malloc(S * S);
    double side;
    CHECK(dx_nodule_crop(&s, row_disk, &o, img, gray, mask, &side, &e) == DX_OK, "crop: %s", e.msg);
    CHECK_CLOSE(side, 32, 0, 0, "side = max(32 mm, 2 x 10 mm)");
    /* mask area: a 5 mm disk in a 32 mm crop of 64 px -> pi * (5 * 2)^2 px */
    int area = 0;
    double my = 0, mx = 0;
    for (int i = 0; i < S; i++)
        for (int j = 0; j < S; j++)
            if (mask[i * S + j]) { area++; my += i + 0.5; mx += j + 0.5; }
    const double want = M_PI * (R * S / side) * (R * S / side);
    printf("mask area %d px (disk %.1f px), centroid (%.2f, %.2f)\n", area, want, mx / area, my / area);
    /* nearest sampling of a 0.7 x 0.8 mm raster: the area is known to a few source pixels */
    CHECK(fabs(area - want) < 0.08 * want, "mask area %d vs %.1f", area, want);
    CHECK(fabs(mx / area - S / 2.0) < 1.0 && fabs(my / area - S / 2.0) < 1.0, "mask centred");
    /* window 1500 / -600: 40 HU -> (40 + 1350) / 1500, background of slice 5 -> (-850 + 1350) / 1500 */
    CHECK_CLOSE(gray[(S / 2) * S + S / 2], (40 + 1350) / 1500.0, 1e-5, 0, "nodule centre, windowed");
    CHECK_CLOSE(gray[0], (-850 + 1350) / 1500.0, 1e-5, 0, "background of the centre slice");
    /* channels: slices 4, 5, 6 at a background pixel, normalised (x - 0.5) / 0.25 */
    for (int c = 0; c < 3; c++)
        CHECK_CLOSE(img[(size_t)c * S * S], ((-900 + 10 * (4 + c) + 1350) / 1500.0 - 0.5) / 0.25, 1e-4, 0, "2.5D channel order");
    o.stack25d = 0;
    dx_nodule_crop(&s, row_disk, &o, img, NULL, NULL, NULL, &e);
    CHECK(img[0] == img[S * S] && img[0] == img[2 * S * S], "--no-25d: three copies of the centre slice");
    o.stack25d = 1;
    /* corner nodule on slice 0: z-1 clamps to slice 0, edge pixels replicate, side 2 x 20 mm */
    CHECK(dx_nodule_crop(&s, row_corner, &o, img, gray, mask, &side, &e) == DX_OK, "corner crop");
    CHECK_CLOSE(side, 40, 0, 0, "side = 2 x diameter");
    CHECK(img[0] == img[S * S], "slice -1 clamps to slice 0");
    CHECK_CLOSE(gray[0], (-900 + 1350) / 1500.0, 1e-5, 0, "outside the volume: edge value");
    int any = 0;
    for (int q = 0; q < S * S; q++) any |= mask[q];
    CHECK(!any, "a nodule's crop shows only its own label");
    CHECK(dx_nodule_crop(&s, s.idx.n_rows, &o, img, gray, mask, &side, &e) == DX_EINVAL, "row out of range");
    /* radiomics of the disk nodule (a 3-slice cylinder of 40 HU) from the store's native grid */
    double rf[DX_RADIOMICS_N];
    int disk_px = 0;
    for (int y = 0; y < NY; y++)
        for (int x = 0; x < NX; x++) disk_px += in_disk(x, y);
    CHECK(dx_radiomics_nodule(&s, row_disk, rf, &e) == DX_OK, "radiomics: %s", e.msg);
    CHECK_CLOSE(rf[0], log(3.0 * disk_px * SX * SY * 2), 1e-12, 0, "radiomics: log volume of the cylinder");
    CHECK_CLOSE(rf[1], 40, 1e-12, 0, "radiomics: mean HU");
    CHECK_CLOSE(rf[4], 1, 0, 0, "radiomics: solid");
    /* outside faces: in-plane on slices 4, 5, 6 (-860, -850, -840 HU, equal counts) and the disk's faces
     * on slices 3 and 7 (-870, -830): their mean is -850 by symmetry */
    CHECK_CLOSE(rf[7], 40 + 850, 1e-9, 0, "radiomics: edge contrast");
    CHECK(dx_radiomics_nodule(&s, row_corner, rf, &e) == DX_ENOTFOUND, "radiomics: a row without mask voxels");

    /* the evaluation set: labels, patients, patient-level split */
    dx_eval_opts eo;
    dx_eval_opts_default(&eo);
    eo.crop.size = 32;
    dx_eval_set es;
    CHECK(dx_eval_set_build(&es, &s, &eo, &e) == DX_OK, "set: %s", e.msg);
    CHECK(es.n == 5 + 9 + 1, "nodule rows only: %d", es.n);
    CHECK(es.n_patients == 10, "patients %d (patient 1 has two series)", es.n_patients);
    int y0[5];
    for (int i = 0; i < 5; i++) y0[i] = es.y[i];
    CHECK(y0[0] == 1 && y0[1] == 0 && y0[2] == -1 && y0[3] == -1 && y0[4] == 1,
          "label rule: %d %d %d %d %d", y0[0], y0[1], y0[2], y0[3], y0[4]);
    int same = 1;
    for (int i = 0; i < es.n; i++) same &= es.split[i] == es.patient_split[es.patient[i]];
    CHECK(same, "nodules take their patient's split");
    int p1a = -1, p1b = -1;
    for (int i = 0; i < es.n; i++)
        if (!strcmp(es.patient_id[es.patient[i]], "P001")) { if (p1a < 0) p1a = i; else p1b = i; }
    CHECK(p1a >= 0 && p1b >= 0 && es.split[p1a] == es.split[p1b], "both series of a patient in one split");
    int nt = 0;
    for (int p = 0; p < es.n_patients; p++) nt += es.patient_split[p] == DX_SPLIT_TEST;
    CHECK(nt >= 1 && nt <= 3, "test patients %d", nt);
    CHECK(es.radio == NULL, "labelled rows without mask voxels: no radiomics baseline rather than a guess");
    dx_eval_set_free(&es);
    eo.min_readers = 2;
    eo.malignant_above = 2.5; /* variant B-like: 3 counts as malignant */
    CHECK(dx_eval_set_build(&es, &s, &eo, &e) == DX_OK, "set");
    CHECK(es.y[2] == 1 && es.y[3] == 1, "configurable rule: median 3 and 2-reader nodules labelled");
    dx_eval_set_free(&es);

    dx_store_close(&s);
    free(img); free(gray); free(mask);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd)) fprintf(stderr, "cleanup failed\n");
    return dx_test_summary();
}
