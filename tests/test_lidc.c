/* test_lidc.c - LIDC XML parsing, ROI->slice mapping, rasterisation,
 * clustering and consensus against hand-computed answers.
 *
 * Fixtures: the XML files in tests/data/lidc (made by make_xml.py; shapes are dense
 * boundary chains of rectangles and a diamond, so every expected mask below is
 * a closed-form set, computed here without the rasteriser):
 *   rect chain x0..x1,y0..y1 -> inside x0<x<x1 && y0<y<y1 (contour excluded)
 *   diamond |dx|+|dy| = r    -> inside |dx|+|dy| <= r-1
 * Series A geometry: 64x64x8, pixel 0.7 mm, z = -110 + 2.5 k, SOP ...9.4.<40+k>. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dx_test.h"
#include "io/lidc.h"
#include "io/lidc_nodules.h"

#define NX 64
#define NY 64
#define NZ 8

static void make_geom(dx_volume *v) {
    memset(v, 0, sizeof *v);
    v->nx = NX, v->ny = NY, v->nz = NZ;
    v->spacing[0] = v->spacing[1] = 0.7;
    v->spacing[2] = 2.5;
    v->origin[0] = -100, v->origin[1] = -120, v->origin[2] = -110;
    v->direction[0] = v->direction[4] = v->direction[8] = 1;
    v->sop_uids = calloc(NZ, sizeof *v->sop_uids);
    v->slice_z = calloc(NZ, sizeof *v->slice_z);
    for (int k = 0; k < NZ; k++) {
        snprintf(v->sop_uids[k], DX_UID_MAX, "1.2.826.0.1.3680043.2.1125.9.4.%d", 40 + k);
        v->slice_z[k] = -110 + 2.5 * k;
    }
    snprintf(v->series_uid, DX_UID_MAX, "1.2.826.0.1.3680043.2.1125.9.3");
}

static int in_rect_open(int x, int y, int x0, int y0, int x1, int y1) {
    return x > x0 && x < x1 && y > y0 && y < y1;
}
static int in_rect_closed(int x, int y, int x0, int y0, int x1, int y1) {
    return x >= x0 && x <= x1 && y >= y0 && y <= y1;
}
/* The readers' masks of physical nodule 1 (see make_xml.py). */
static int mask_A(int x, int y, int k) {
    if (k < 2 || k > 4 || !in_rect_open(x, y, 20, 20, 30, 30)) return 0;
    return !(k == 3 && in_rect_closed(x, y, 24, 24, 26, 26)); /* the inclusion=FALSE hole */
}
static int mask_B(int x, int y, int k) { return (k == 2 || k == 3) && in_rect_open(x, y, 22, 22, 32, 32); }
static int mask_C(int x, int y, int k) { return (k == 3 || k == 4) && in_rect_open(x, y, 18, 18, 29, 29); }
static int mask_D(int x, int y, int k) { return k == 5 && abs(x - 45) + abs(y - 45) <= 4; }

static dx_lidc_read load(const char *rel, dx_status want) {
    char p[1024];
    dx_lidc_read r;
    dx_err e = {0};
    dx_status st = dx_lidc_parse_file(&r, dx_test_path(p, sizeof p, rel), &e);
    CHECK(st == want, "%s: status %s (%s), want %s", rel, dx_status_name(st), e.msg, dx_status_name(want));
    return r;
}

static void test_parse(void) {
    dx_lidc_read a = load("tests/data/lidc/series_a_1.xml", DX_OK);
    CHECK(!strcmp(a.series_uid, "1.2.826.0.1.3680043.2.1125.9.3"), "series uid '%s'", a.series_uid);
    CHECK(!strcmp(a.study_uid, "1.2.826.0.1.3680043.2.1125.9.2"), "study uid '%s'", a.study_uid);
    CHECK(a.nsess == 2, "sessions %d", a.nsess);
    if (a.nsess != 2) return;
    dx_lidc_session *A = &a.sessions[0], *B = &a.sessions[1];
    CHECK(!strcmp(A->reader_id, "reader-A") && !strcmp(B->reader_id, "reader-B"), "reader ids '%s' '%s'",
          A->reader_id, B->reader_id);
    CHECK(A->nnod == 2 && A->nnon == 0, "A: %d nodules %d non", A->nnod, A->nnon);
    dx_lidc_nodule *n1 = &A->nodules[0], *n2 = &A->nodules[1];
    CHECK(!strcmp(n1->id, "Nodule 001"), "id '%s'", n1->id);
    CHECK(n1->has_chars && n1->chars[DX_LIDC_MALIGNANCY] == 4 && n1->chars[DX_LIDC_SUBTLETY] == 4 &&
              n1->chars[DX_LIDC_CALCIFICATION] == 6 && n1->chars[DX_LIDC_TEXTURE] == 5,
          "A chars");
    CHECK(n1->nroi == 4, "A rois %d", n1->nroi);
    CHECK(n1->rois[0].npts == 41 && n1->rois[0].pts[0].x == 20 && n1->rois[0].pts[0].y == 20 &&
              n1->rois[0].pts[10].x == 30 && n1->rois[0].pts[10].y == 20,
          "rect chain: %d pts", n1->rois[0].npts);
    CHECK(n1->rois[2].inclusion == 0 && n1->rois[1].inclusion == 1, "hole inclusion flags");
    CHECK_CLOSE(n1->rois[0].z, -105.0, 1e-9, 0, "imageZposition");
    CHECK(!strcmp(n1->rois[0].sop_uid, "1.2.826.0.1.3680043.2.1125.9.4.42"), "sop '%s'", n1->rois[0].sop_uid);
    CHECK(!n2->has_chars && n2->nroi == 1 && n2->rois[0].npts == 1 && n2->rois[0].pts[0].x == 10 &&
              n2->rois[0].pts[0].y == 50,
          "small nodule");
    /* reader B: values padded with spaces, characteristics out of order, "true" */
    CHECK(B->nnod == 1 && B->nnon == 1, "B counts");
    CHECK(B->nodules[0].chars[DX_LIDC_MALIGNANCY] == 3 && B->nodules[0].chars[DX_LIDC_SUBTLETY] == 5 &&
              B->nodules[0].chars[DX_LIDC_TEXTURE] == 5,
          "B chars %d %d", B->nodules[0].chars[DX_LIDC_MALIGNANCY], B->nodules[0].chars[DX_LIDC_SUBTLETY]);
    CHECK(B->nodules[0].rois[0].inclusion == 1 && B->nodules[0].rois[1].inclusion == 1, "lower-case/padded TRUE");
    CHECK_CLOSE(B->nodules[0].rois[1].z, -102.5, 1e-9, 0, "padded z");
    CHECK(B->nonnodules[0].locus.x == 50 && B->nonnodules[0].locus.y == 10 &&
              !strcmp(B->nonnodules[0].id, "Non-nodule 001"),
          "nonNodule");
    CHECK_CLOSE(B->nonnodules[0].z, -95.0, 1e-9, 0, "nonNodule z");

    /* second file: lidc: prefix, SeriesInstanceUID spelling, a repeated session */
    dx_lidc_read b = load("tests/data/lidc/series_a_2.xml", DX_OK);
    CHECK(!strcmp(b.series_uid, a.series_uid), "prefixed file series '%s'", b.series_uid);
    CHECK(b.nsess == 3, "file 2 sessions %d", b.nsess);
    if (b.nsess == 3) {
        CHECK(b.sessions[0].nodules[0].rois[1].sop_uid[0] == 0, "empty SOP UID kept empty");
        CHECK(b.sessions[1].nnod == 2 && b.sessions[1].nodules[0].has_chars && !b.sessions[1].nodules[1].has_chars,
              "all-zero/blank characteristics = none");
    }
    int ndup = -1;
    dx_err e = {0};
    CHECK(dx_lidc_merge(&a, &b, &ndup, &e) == DX_OK, "merge: %s", e.msg);
    CHECK(ndup == 1 && a.nsess == 4, "merge kept %d sessions, %d duplicates", a.nsess, ndup);
    CHECK(b.nsess == 0 && b.sessions == NULL, "merge empties src");
    dx_lidc_read_free(&a);

    dx_lidc_read o = load("tests/data/lidc/other_series.xml", DX_OK); /* no namespace at all */
    CHECK(!strcmp(o.series_uid, "1.2.826.0.1.3680043.2.1125.9.99") && o.nsess == 1, "no-namespace file");
    dx_lidc_read_free(&o);
    dx_lidc_read c = load("tests/data/lidc/cxr_read.xml", DX_EUNSUPPORTED);
    dx_lidc_read_free(&c);
    dx_lidc_read br = load("tests/data/lidc/broken.xml", DX_EFORMAT);
    dx_lidc_read_free(&br);
    char p[1024];
    CHECK(dx_lidc_sniff_file(dx_test_path(p, sizeof p, "tests/data/lidc/series_a_1.xml")) == 1, "sniff");
    CHECK(dx_lidc_sniff_file(dx_test_path(p, sizeof p, "tests/data/lidc/cxr_read.xml")) == 0, "sniff cxr");

    /* malformed values and structure from memory */
    const char *bad[] = {
        "<LidcReadMessage><ResponseHeader><SeriesInstanceUid>1</SeriesInstanceUid></ResponseHeader>"
        "<readingSession><unblindedReadNodule><characteristics><malignancy>x</malignancy></characteristics>"
        "</unblindedReadNodule></readingSession></LidcReadMessage>",
        "<LidcReadMessage><ResponseHeader><SeriesInstanceUid>1</SeriesInstanceUid></ResponseHeader>"
        "<readingSession><unblindedReadNodule><roi><inclusion>MAYBE</inclusion></roi>"
        "</unblindedReadNodule></readingSession></LidcReadMessage>",
        "<LidcReadMessage><ResponseHeader><SeriesInstanceUid>1</SeriesInstanceUid></ResponseHeader>"
        "<readingSession><unblindedReadNodule><roi><edgeMap><xCoord>3</xCoord></edgeMap></roi>"
        "</unblindedReadNodule></readingSession></LidcReadMessage>",
        "<LidcReadMessage><ResponseHeader><StudyInstanceUID>1</StudyInstanceUID></ResponseHeader></LidcReadMessage>",
        "<Something/>",
        "",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        dx_lidc_read r;
        dx_err e2 = {0};
        dx_status st = dx_lidc_parse_memory(&r, bad[i], strlen(bad[i]), &e2);
        CHECK(st == DX_EFORMAT && e2.msg[0] && r.nsess == 0, "bad input %zu: %s '%s'", i, dx_status_name(st), e2.msg);
    }
    const char *ok = "<x:LidcReadMessage xmlns:x='urn:other'><x:ResponseHeader><x:SERIESINSTANCEUID> 7.7 "
                     "</x:SERIESINSTANCEUID></x:ResponseHeader></x:LidcReadMessage>";
    dx_lidc_read r;
    CHECK(dx_lidc_parse_memory(&r, ok, strlen(ok), NULL) == DX_OK && !strcmp(r.series_uid, "7.7"),
          "other namespace + case: '%s'", r.series_uid);
    dx_lidc_read_free(&r);
}

static dx_lidc_read load_both(void) {
    dx_lidc_read a = load("tests/data/lidc/series_a_1.xml", DX_OK);
    dx_lidc_read b = load("tests/data/lidc/series_a_2.xml", DX_OK);
    dx_lidc_merge(&a, &b, NULL, NULL);
    return a;
}

static void test_find_slice(void) {
    dx_volume v;
    make_geom(&v);
    CHECK(dx_lidc_find_slice(&v, "1.2.826.0.1.3680043.2.1125.9.4.45", NAN) == 5, "by SOP");
    /* SOP wins over a contradicting z */
    CHECK(dx_lidc_find_slice(&v, "1.2.826.0.1.3680043.2.1125.9.4.45", -110) == 5, "SOP before z");
    CHECK(dx_lidc_find_slice(&v, "", -104.0) == 2, "z within half spacing");
    CHECK(dx_lidc_find_slice(&v, "9.9.9", -103.6) == 3, "unknown SOP, z fallback");
    CHECK(dx_lidc_find_slice(&v, "", -90.0) == -1, "z beyond the last slice + half spacing");
    CHECK(dx_lidc_find_slice(&v, "", NAN) == -1, "nothing to match");
    dx_volume_free(&v);
}

static void test_build(void) {
    dx_volume v;
    make_geom(&v);
    dx_lidc_read r = load_both();
    dx_lidc_ann *anns;
    int nann;
    dx_lidc_map_stats ms;
    dx_err e = {0};
    CHECK(dx_lidc_map(&r, &v, &anns, &nann, &ms, &e) == DX_OK, "map: %s", e.msg);
    CHECK(nann == 4, "annotations %d (A, B, C on nodule 1; D on nodule 2)", nann);
    CHECK(ms.n_small == 2 && ms.n_nonnodule == 1 && ms.n_stray_rois == 1 && ms.n_unmatched == 0,
          "stats small %d non %d stray %d unmatched %d", ms.n_small, ms.n_nonnodule, ms.n_stray_rois, ms.n_unmatched);
    if (nann == 4) {
        /* pylidc diameter: largest in-slice point distance x pixel spacing */
        CHECK_CLOSE(anns[0].diameter_mm, 10 * sqrt(2) * 0.7, 1e-9, 0, "A diameter");
        CHECK_CLOSE(anns[2].diameter_mm, 11 * sqrt(2) * 0.7, 1e-9, 0, "C diameter");
        CHECK_CLOSE(anns[3].diameter_mm, 10 * 0.7, 1e-9, 0, "D diameter");
        CHECK(anns[2].ncont == 2 && anns[2].cont[1].k == 4, "C's SOP-less ROI placed on slice 4 by z");
        CHECK(anns[0].bbox[0] == 20 && anns[0].bbox[1] == 30 && anns[0].bbox[4] == 2 && anns[0].bbox[5] == 4,
              "A bbox");
        /* single annotation masks against the closed forms */
        int bb[6] = {0, NX - 1, 0, NY - 1, 0, NZ - 1};
        uint8_t *m = malloc(NX * NY * NZ);
        int (*ref[4])(int, int, int) = {mask_A, mask_B, mask_C, mask_D};
        for (int a = 0; a < 4; a++) {
            dx_lidc_ann_mask(&anns[a], bb, 0, m);
            int bad = 0, on = 0;
            for (int k = 0; k < NZ; k++)
                for (int y = 0; y < NY; y++)
                    for (int x = 0; x < NX; x++) {
                        int got = m[(k * NY + y) * NX + x], want = ref[a](x, y, k);
                        bad += got != want;
                        on += got;
                    }
            CHECK(bad == 0 && on > 0, "annotation %d mask: %d voxels differ (%d on)", a, bad, on);
        }
        /* a box smaller than the annotation clips, offsets are honoured */
        int sb[6] = {25, 35, 22, 27, 3, 3};
        uint8_t sm[11 * 6];
        dx_lidc_ann_mask(&anns[1], sb, 0, sm);
        int bad = 0;
        for (int y = 22; y <= 27; y++)
            for (int x = 25; x <= 35; x++) bad += sm[(y - 22) * 11 + (x - 25)] != mask_B(x, y, 3);
        CHECK(bad == 0, "sub-box mask: %d differ", bad);
        free(m);
    }
    dx_lidc_anns_free(anns, nann);

    /* the whole series: 2 physical nodules, consensus at 50% */
    dx_lidc_cluster_opts o;
    dx_lidc_cluster_opts_default(&o);
    uint8_t *labels = malloc(NX * NY * NZ);
    dx_nodule_info *rows;
    int nrows, unresolved = -1;
    CHECK(dx_lidc_nodules_build(&r, &v, &o, labels, &rows, &nrows, &ms, &unresolved, &e) == DX_OK, "build: %s",
          e.msg);
    CHECK(unresolved == 0, "clustering resolved");
    CHECK(nrows == 5, "rows %d (2 nodules, 2 small, 1 non-nodule)", nrows);
    if (nrows == 5) {
        CHECK(rows[0].kind == DX_NOD_NODULE && rows[0].label == 1 && rows[0].n_readers == 3, "nodule 1: %d readers",
              rows[0].n_readers);
        CHECK(rows[1].kind == DX_NOD_NODULE && rows[1].label == 2 && rows[1].n_readers == 1, "nodule 2: %d readers",
              rows[1].n_readers);
        CHECK_CLOSE(rows[0].malignancy, 4, 0, 0, "median malignancy of 4,3,5");
        CHECK_CLOSE(rows[1].malignancy, 2, 0, 0, "single reader malignancy");
        CHECK_CLOSE(rows[0].chars[DX_LIDC_SUBTLETY], 4, 0, 0, "median subtlety of 4,5,3");
        CHECK_CLOSE(rows[0].chars[DX_LIDC_SPHERICITY], 4, 0, 0, "median sphericity of 4,3,5");
        CHECK_CLOSE(rows[0].diameter_mm, 10 * sqrt(2) * 0.7, 1e-9, 0, "median diameter");
        CHECK(rows[2].kind == DX_NOD_SMALL && rows[3].kind == DX_NOD_SMALL && rows[4].kind == DX_NOD_NONNODULE,
              "mark kinds %d %d %d", rows[2].kind, rows[3].kind, rows[4].kind);
        CHECK(rows[2].centroid_vox[0] == 10 && rows[2].centroid_vox[1] == 50 && rows[2].centroid_vox[2] == 1,
              "small mark position");
        CHECK(rows[4].centroid_vox[0] == 50 && rows[4].centroid_vox[1] == 10 && rows[4].centroid_vox[2] == 6,
              "non-nodule position");
        CHECK_CLOSE(rows[4].centroid_mm[2], -95.0, 1e-9, 0, "non-nodule z mm");
        CHECK_CLOSE(rows[4].centroid_mm[0], -100 + 50 * 0.7, 1e-9, 0, "non-nodule x mm");
        /* consensus + label volume vs counts of the closed forms */
        int bad = 0;
        int64_t n1 = 0, n2 = 0;
        double sx = 0, sy = 0, sk = 0;
        for (int k = 0; k < NZ; k++)
            for (int y = 0; y < NY; y++)
                for (int x = 0; x < NX; x++) {
                    int c = mask_A(x, y, k) + mask_B(x, y, k) + mask_C(x, y, k);
                    int want = 2 * c >= 3 ? 1 : mask_D(x, y, k) ? 2 : 0;
                    bad += labels[(k * NY + y) * NX + x] != want;
                    if (want == 1) n1++, sx += x, sy += y, sk += k;
                    if (want == 2) n2++;
                }
        CHECK(bad == 0, "label volume: %d voxels differ", bad);
        CHECK(rows[0].n_voxels == n1 && rows[1].n_voxels == n2 && n1 > 100, "voxels %lld/%lld want %lld/%lld",
              (long long)rows[0].n_voxels, (long long)rows[1].n_voxels, (long long)n1, (long long)n2);
        CHECK_CLOSE(rows[0].centroid_vox[0], sx / n1, 1e-9, 0, "centroid x");
        CHECK_CLOSE(rows[0].centroid_vox[1], sy / n1, 1e-9, 0, "centroid y");
        CHECK_CLOSE(rows[0].centroid_vox[2], sk / n1, 1e-9, 0, "centroid k");
        CHECK_CLOSE(rows[0].centroid_mm[1], -120 + sy / n1 * 0.7, 1e-9, 0, "centroid y mm");
        CHECK_CLOSE(rows[0].centroid_mm[2], -110 + sk / n1 * 2.5, 1e-9, 0, "centroid z mm");
        CHECK_CLOSE(rows[1].centroid_vox[0], 45, 1e-12, 0, "diamond centroid");
        CHECK_CLOSE(rows[0].volume_mm3, n1 * 0.7 * 0.7 * 2.5, 1e-9, 1e-12, "volume");
    }
    /* clevel 1.0: only where all three agree */
    o.clevel = 1.0;
    free(rows);
    CHECK(dx_lidc_nodules_build(&r, &v, &o, labels, &rows, &nrows, NULL, NULL, &e) == DX_OK, "build clevel 1");
    int bad = 0;
    for (int k = 0; k < NZ; k++)
        for (int y = 0; y < NY; y++)
            for (int x = 0; x < NX; x++) {
                int c = mask_A(x, y, k) + mask_B(x, y, k) + mask_C(x, y, k);
                int want = c == 3 ? 1 : mask_D(x, y, k) ? 2 : 0;
                bad += labels[(k * NY + y) * NX + x] != want;
            }
    CHECK(bad == 0, "clevel 1.0 labels: %d differ", bad);
    free(rows);
    free(labels);
    dx_lidc_read_free(&r);
    dx_volume_free(&v);
}

/* Annotations made by hand: one two-point contour each at (x, 0) on slice 0. */
static dx_lidc_pt pts[16][2];
static dx_lidc_contour conts[16];
static void make_ann(dx_lidc_ann *a, int i, int session, int x) {
    memset(a, 0, sizeof *a);
    pts[i][0] = (dx_lidc_pt){x, 0};
    pts[i][1] = (dx_lidc_pt){x, 0};
    conts[i] = (dx_lidc_contour){0, 1, 2, pts[i]};
    a->cont = &conts[i];
    a->ncont = 1;
    a->session = session;
    a->centroid[0] = x;
}

static void test_cluster(void) {
    dx_lidc_cluster_opts o;
    dx_lidc_cluster_opts_default(&o);
    dx_lidc_ann a[8];
    int cid[8], ncl, unres;
    double tol;
    /* five marks 2 apart, five readers: tol 2.5 joins all five (> 4), so tol
     * shrinks 2.5 -> 2.25 -> 2.025 -> 1.8225 where they fall apart */
    for (int i = 0; i < 5; i++) make_ann(&a[i], i, i, 2 * i);
    CHECK(dx_lidc_cluster(a, 5, &o, 2.5, cid, &ncl, &unres, &tol, NULL) == DX_OK, "cluster");
    CHECK(ncl == 5 && !unres, "five singletons, got %d", ncl);
    CHECK_CLOSE(tol, 2.5 * 0.9 * 0.9 * 0.9, 1e-12, 0, "final tol");
    /* four of them: one cluster of 4 at the first tol */
    CHECK(dx_lidc_cluster(a, 4, &o, 2.5, cid, &ncl, &unres, &tol, NULL) == DX_OK && ncl == 1 && tol == 2.5,
          "four marks one nodule: %d", ncl);
    /* one reader twice (distance 1), other reader 10 away: the pair must split */
    make_ann(&a[0], 0, 0, 0);
    make_ann(&a[1], 1, 0, 1);
    make_ann(&a[2], 2, 1, 30);
    CHECK(dx_lidc_cluster(a, 3, &o, 2.5, cid, &ncl, &unres, &tol, NULL) == DX_OK, "cluster 2");
    CHECK(ncl == 3 && !unres && tol < 1, "same reader split: %d clusters tol %g", ncl, tol);
    o.one_per_reader = 0; /* pylidc: allowed */
    CHECK(dx_lidc_cluster(a, 3, &o, 2.5, cid, &ncl, &unres, &tol, NULL) == DX_OK && ncl == 2 && cid[0] == cid[1],
          "pylidc rule keeps the pair: %d", ncl);
    /* identical marks of one reader cannot be split: flagged, not an error */
    o.one_per_reader = 1;
    make_ann(&a[1], 1, 0, 0);
    CHECK(dx_lidc_cluster(a, 2, &o, 2.5, cid, &ncl, &unres, &tol, NULL) == DX_OK && unres == 1,
          "unresolvable flagged");
    /* order: clusters numbered by mean slice */
    make_ann(&a[0], 0, 0, 0);
    make_ann(&a[1], 1, 1, 40);
    conts[0].k = 6;
    a[0].centroid[2] = 6;
    CHECK(dx_lidc_cluster(a, 2, &o, 2.5, cid, &ncl, &unres, &tol, NULL) == DX_OK && ncl == 2 && cid[0] == 1 &&
              cid[1] == 0,
          "sorted by centroid slice");
    /* centroid metric */
    o.metric = DX_LIDC_METRIC_CENTROID;
    make_ann(&a[0], 0, 0, 0);
    make_ann(&a[1], 1, 1, 3);
    CHECK(dx_lidc_cluster(a, 2, &o, 2.5, cid, &ncl, &unres, &tol, NULL) == DX_OK && ncl == 2, "centroid 3 > 2.5");
    CHECK(dx_lidc_cluster(a, 2, &o, 3.0, cid, &ncl, &unres, &tol, NULL) == DX_OK && ncl == 1, "centroid 3 <= 3");
    CHECK(dx_lidc_cluster(a, 0, &o, 3.0, cid, &ncl, &unres, &tol, NULL) == DX_OK && ncl == 0, "empty");
    CHECK(dx_lidc_cluster(a, 2, &o, -1, cid, &ncl, &unres, &tol, NULL) == DX_EINVAL, "negative tol");
}

int main(void) {
    test_parse();
    test_find_slice();
    test_build();
    test_cluster();
    return dx_test_summary();
}
