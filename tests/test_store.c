/* test_store.c - the volume store: write/read round trip, O(1) slice access,
 * 2.5D stacks, the nodules as focus points, replacement, the index codec, and
 * clear errors for corrupt, truncated or missing files. Volumes are made here with a known formula, so
 * every voxel read back is checked against that formula. */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data/stack25d.h"
#include "data/store_source.h"
#include "dx_test.h"
#include "io/store.h"

static int16_t hu_at(int seed, int x, int y, int z) { return (int16_t)((x * 3 + y * 5 + z * 11 + seed * 17) % 4000 - 1024); }

static void make_vol(dx_volume *v, int seed, int nx, int ny, int nz) {
    memset(v, 0, sizeof *v);
    v->nx = nx, v->ny = ny, v->nz = nz;
    v->spacing[0] = 0.6 + seed, v->spacing[1] = 0.61 + seed, v->spacing[2] = 1.25;
    v->origin[0] = -10.5 * seed, v->origin[1] = 3, v->origin[2] = -300.25;
    v->direction[0] = v->direction[4] = v->direction[8] = 1;
    v->window_center = -600, v->window_width = 1500;
    snprintf(v->patient_id, DX_UID_MAX, "LIDC-IDRI-%04d", seed);
    snprintf(v->study_uid, DX_UID_MAX, "1.2.3.%d", seed);
    snprintf(v->series_uid, DX_UID_MAX, "1.2.3.%d.1", seed);
    v->hu = malloc((size_t)nx * ny * nz * sizeof *v->hu);
    for (int z = 0; z < nz; z++)
        for (int y = 0; y < ny; y++)
            for (int x = 0; x < nx; x++) v->hu[((size_t)z * ny + y) * nx + x] = hu_at(seed, x, y, z);
}

static int check_series(const dx_store *s, int i, int seed, int nx, int ny, int nz) {
    int bad = 0;
    const dx_store_series *r = dx_store_info(s, i);
    if (r->nx != nx || r->ny != ny || r->nz != nz) return -1;
    for (int z = 0; z < nz; z++) {
        const int16_t *sl = dx_store_slice(s, i, z);
        if (!sl) return -1;
        for (int y = 0; y < ny; y++)
            for (int x = 0; x < nx; x++) bad += sl[y * nx + x] != hu_at(seed, x, y, z);
    }
    return bad;
}

static void run(const char *cmd) {
    if (system(cmd) != 0) fprintf(stderr, "command failed: %s\n", cmd);
}

static long file_size(const char *p) {
    struct stat sb;
    return stat(p, &sb) ? -1 : (long)sb.st_size;
}

int main(void) {
    char dir[] = "/tmp/dx_test_store_XXXXXX";
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    char store[512], path[1024], cmd[2048];
    snprintf(store, sizeof store, "%s/store", dir);
    dx_err e = {0};

    /* an empty directory is not a store */
    dx_store s;
    CHECK(dx_store_open(&s, dir, &e) == DX_ENOTFOUND, "open non-store: %s", e.msg);

    /* write two series, one with labels and rows */
    dx_store_writer w;
    CHECK(dx_store_writer_open(&w, store, &e) == DX_OK, "writer open: %s", e.msg);
    dx_store_writer w2;
    CHECK(dx_store_writer_open(&w2, store, &e) == DX_EIO, "second writer refused: %s", e.msg);
    dx_volume v1, v2;
    make_vol(&v1, 1, 17, 13, 5);
    make_vol(&v2, 2, 8, 9, 3);
    uint8_t *lab = calloc(17 * 13 * 5, 1);
    lab[(2 * 13 + 4) * 17 + 6] = 1;
    lab[(4 * 13 + 12) * 17 + 16] = 2;
    dx_nodule_info rows[3];
    memset(rows, 0, sizeof rows);
    rows[0].kind = DX_NOD_NODULE, rows[0].label = 1, rows[0].n_readers = 4, rows[0].malignancy = 4.5;
    rows[0].centroid_vox[0] = 6, rows[0].centroid_mm[2] = -297.75, rows[0].n_voxels = 1, rows[0].diameter_mm = 7.25;
    rows[1].kind = DX_NOD_NODULE, rows[1].label = 2, rows[1].n_readers = 2, rows[1].malignancy = 2;
    rows[2].kind = DX_NOD_NONNODULE, rows[2].n_readers = 1;
    CHECK(dx_store_writer_add(&w, &v1, lab, rows, 3, DX_STORE_FLAG_GAPS, &e) == DX_OK, "add 1: %s", e.msg);
    CHECK(dx_store_writer_add(&w, &v2, NULL, NULL, 0, 0, &e) == DX_OK, "add 2: %s", e.msg);
    CHECK(dx_store_writer_has(&w, v1.series_uid) && dx_store_writer_has(&w, v2.series_uid) &&
              !dx_store_writer_has(&w, "9.9"),
          "writer_has");
    dx_store_writer_close(&w);
    /* the lock went with the writer */
    CHECK(dx_store_writer_open(&w2, store, &e) == DX_OK, "reopen writer after close: %s", e.msg);
    dx_store_writer_close(&w2);

    CHECK(dx_store_open(&s, store, &e) == DX_OK, "open: %s", e.msg);
    CHECK(s.n_series == 2, "n_series %d", s.n_series);
    int i1 = dx_store_find(&s, v1.series_uid), i2 = dx_store_find(&s, v2.series_uid);
    CHECK(i1 >= 0 && i2 >= 0 && i1 != i2 && dx_store_find(&s, "nope") == -1, "find");
    CHECK(check_series(&s, i1, 1, 17, 13, 5) == 0, "series 1 voxels");
    CHECK(check_series(&s, i2, 2, 8, 9, 3) == 0, "series 2 voxels");
    const dx_store_series *r1 = dx_store_info(&s, i1);
    CHECK(!strcmp(r1->patient_id, "LIDC-IDRI-0001") && !strcmp(r1->study_uid, "1.2.3.1"), "ids");
    CHECK(r1->spacing[0] == v1.spacing[0] && r1->spacing[1] == v1.spacing[1] && r1->spacing[2] == 1.25 && r1->origin[0] == -10.5 &&
              r1->origin[2] == -300.25 && r1->direction[8] == 1 && r1->window_width == 1500,
          "geometry bits round trip");
    CHECK(r1->flags == DX_STORE_FLAG_GAPS && dx_store_info(&s, i2)->flags == 0, "flags round trip");
    CHECK(r1->has_mask == 1 && r1->n_nodules == 2 && r1->n_rows == 3, "series 1 mask %d nodules %d rows %d",
          r1->has_mask, r1->n_nodules, r1->n_rows);
    CHECK(dx_store_info(&s, i2)->has_mask == 0 && dx_store_mask_slice(&s, i2, 0) == NULL, "series 2 no mask");
    const uint8_t *ms = dx_store_mask_slice(&s, i1, 2);
    CHECK(ms && ms[4 * 17 + 6] == 1 && dx_store_mask_slice(&s, i1, 4)[12 * 17 + 16] == 2, "mask voxels");
    long lsum = 0;
    for (int z = 0; z < 5; z++)
        for (int p = 0; p < 17 * 13; p++) lsum += dx_store_mask_slice(&s, i1, z)[p];
    CHECK(lsum == 3, "mask holds only the two labels (sum %ld)", lsum);
    const dx_store_row *row = &s.idx.rows[r1->first_row];
    CHECK(row->series == i1 && row->info.label == 1 && row->info.n_readers == 4 && row->info.malignancy == 4.5 &&
              row->info.diameter_mm == 7.25 && row->info.centroid_mm[2] == -297.75 && row[2].info.kind == DX_NOD_NONNODULE,
          "row round trip");
    /* the nodules as the loader's focus points (data.focus_p): NODULE rows only */
    dx_focus_point *fp = NULL;
    int nfp = -1;
    CHECK(dx_store_focus_points(&s, &fp, &nfp, &e) == DX_OK && nfp == 2 && fp[0].series == i1 && fp[0].x == 6 &&
              fp[0].radius_mm == 3.625 && fp[1].series == i1,
          "focus points: the 2 nodules, not the non-nodule (%d)", nfp);
    free(fp);
    dx_loader_opts lo;
    dx_loader_opts_default(&lo);
    CHECK(dx_store_focus_attach(&s, &lo, &fp, &e) == DX_OK && fp == NULL && lo.n_focus == 0,
          "focus_p = 0: nothing attached");
    lo.focus_p = 0.5f;
    CHECK(dx_store_focus_attach(&s, &lo, &fp, &e) == DX_OK && lo.n_focus == 2 && lo.focus == fp, "focus_p > 0: attached");
    free(fp);
    dx_store no_nodules = {.dir = "nodule-free"};
    lo.n_focus = 0;
    CHECK(dx_store_focus_attach(&no_nodules, &lo, &fp, &e) == DX_EINVAL && strstr(e.msg, "data.focus_p") &&
              strstr(e.msg, "nodule-free"),
          "a store without nodules is refused: %s", e.msg);
    CHECK(dx_store_slice(&s, i1, 5) == NULL && dx_store_slice(&s, i1, -1) == NULL && dx_store_slice(&s, 7, 0) == NULL,
          "out-of-range slices are NULL");
    /* O(1) addressing: consecutive slices are one plane apart in the mapping */
    CHECK(dx_store_slice(&s, i1, 3) - dx_store_slice(&s, i1, 0) == 3 * 17 * 13, "slice stride");

    /* 2.5D stacks: (z-1, z, z+1) clamped */
    const int16_t *ch[3];
    CHECK(dx_stack25d_ptrs(&s, i1, 0, ch, &e) == DX_OK && ch[0] == dx_store_slice(&s, i1, 0) &&
              ch[1] == dx_store_slice(&s, i1, 0) && ch[2] == dx_store_slice(&s, i1, 1),
          "stack at z=0 repeats slice 0");
    CHECK(dx_stack25d_ptrs(&s, i1, 4, ch, &e) == DX_OK && ch[0] == dx_store_slice(&s, i1, 3) &&
              ch[2] == dx_store_slice(&s, i1, 4),
          "stack at the last slice");
    int16_t *buf = malloc(3 * 17 * 13 * sizeof *buf);
    CHECK(dx_stack25d_copy(&s, i1, 2, buf, &e) == DX_OK, "copy");
    int bad = 0;
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < 13; y++)
            for (int x = 0; x < 17; x++) bad += buf[(c * 13 + y) * 17 + x] != hu_at(1, x, y, 1 + c);
    CHECK(bad == 0, "stack copy voxels: %d differ", bad);
    free(buf);
    CHECK(dx_stack25d_ptrs(&s, i1, 5, ch, &e) == DX_EINVAL && dx_stack25d_ptrs(&s, 9, 0, ch, &e) == DX_EINVAL,
          "stack out of range");
    CHECK(dx_stack25d_spacing(&s, i1) == 1.25, "stack spacing");
    dx_store_close(&s);

    /* replacing a series (--force): new content, still two series, rows rebased */
    dx_volume v1b;
    make_vol(&v1b, 1, 17, 13, 5);
    for (size_t p = 0; p < 17 * 13 * 5; p++) v1b.hu[p] = 77;
    CHECK(dx_store_writer_open(&w, store, &e) == DX_OK, "writer reopen: %s", e.msg);
    CHECK(w.idx.n_series == 2, "writer sees existing index");
    CHECK(dx_store_writer_add(&w, &v1b, NULL, rows + 2, 1, 0, &e) == DX_OK, "replace: %s", e.msg);
    dx_store_writer_close(&w);
    CHECK(dx_store_open(&s, store, &e) == DX_OK, "open after replace: %s", e.msg);
    i1 = dx_store_find(&s, v1.series_uid);
    CHECK(s.n_series == 2 && s.idx.n_rows == 1 && i1 >= 0 && dx_store_slice(&s, i1, 4)[5] == 77 &&
              !dx_store_info(&s, i1)->has_mask,
          "replaced series");
    CHECK(check_series(&s, dx_store_find(&s, v2.series_uid), 2, 8, 9, 3) == 0, "other series untouched");
    dx_store_close(&s);
    snprintf(path, sizeof path, "%s/series/", store);
    char stem[DX_STORE_STEM_MAX];
    dx_store_stem(v1.series_uid, stem);
    snprintf(path, sizeof path, "%s/series/%s.mask", store, stem);
    CHECK(file_size(path) == -1, "stale mask removed on replace");

    /* CSV */
    snprintf(path, sizeof path, "%s/nodules.csv", store);
    FILE *f = fopen(path, "r");
    char line[2048] = "";
    int nl = 0;
    if (f) {
        while (fgets(line, sizeof line, f)) nl++;
        fclose(f);
    }
    CHECK(nl == 2 && strstr(line, "1.2.3.1.1,nonnodule"), "nodules.csv %d lines, last '%s'", nl, line);

    /* index codec: encode -> decode is the identity; every damage is caught */
    dx_store_index idx;
    CHECK(dx_store_index_read(&idx, store, &e) == DX_OK, "index read");
    void *img;
    size_t len;
    CHECK(dx_store_index_encode(&idx, &img, &len, &e) == DX_OK &&
              len == DX_STORE_HEADER_BYTES + 2 * DX_STORE_SERIES_BYTES + DX_STORE_ROW_BYTES,
          "encode size %zu", len);
    dx_store_index back;
    CHECK(dx_store_index_decode(&back, img, len, &e) == DX_OK && back.n_series == 2 && back.n_rows == 1 &&
              !memcmp(back.series, idx.series, 2 * sizeof *back.series),
          "decode(encode) == identity");
    dx_store_index_free(&back);
    uint8_t *cp = malloc(len);
    int caught = 0, total = 0;
    for (size_t off = 0; off < len; off += 7) { /* a flipped bit anywhere -> error, never a bad index */
        memcpy(cp, img, len);
        cp[off] ^= 0x10;
        total++;
        if (dx_store_index_decode(&back, cp, len, &e) != DX_OK) caught++;
        else dx_store_index_free(&back);
    }
    CHECK(caught == total, "bit flips caught %d/%d", caught, total);
    for (size_t cut = 0; cut < len; cut += 13) {
        e.msg[0] = 0;
        dx_status st = dx_store_index_decode(&back, img, cut, &e);
        if (st == DX_OK) dx_store_index_free(&back);
        if (st != DX_EFORMAT || !(strstr(e.msg, "truncated"))) {
            CHECK(0, "truncation at %zu: %s '%s'", cut, dx_status_name(st), e.msg);
            break;
        }
    }
    free(cp);
    free(img);
    dx_store_index_free(&idx);

    /* on disk: truncated index, corrupted index, truncated / missing data file */
    snprintf(cmd, sizeof cmd, "cp -r %s %s/bad && truncate -s -5 %s/bad/index.dxs", store, dir, dir);
    run(cmd);
    snprintf(path, sizeof path, "%s/bad", dir);
    CHECK(dx_store_open(&s, path, &e) == DX_EFORMAT && strstr(e.msg, "truncated") && strstr(e.msg, "index.dxs"),
          "truncated index: '%s'", e.msg);
    CHECK(dx_store_writer_open(&w, path, &e) == DX_EFORMAT && strstr(e.msg, "refusing"),
          "writer refuses a corrupt index: '%s'", e.msg);
    snprintf(cmd, sizeof cmd,
             "rm -rf %s/bad && cp -r %s %s/bad && printf 'X' | dd of=%s/bad/index.dxs bs=1 seek=300 conv=notrunc "
             "2>/dev/null",
             dir, store, dir, dir);
    run(cmd);
    CHECK(dx_store_open(&s, path, &e) == DX_EFORMAT && strstr(e.msg, "CRC"), "corrupted index: '%s'", e.msg);
    snprintf(cmd, sizeof cmd, "rm -rf %s/bad && cp -r %s %s/bad && truncate -s -2 %s/bad/series/%s.hu", dir, store,
             dir, dir, stem);
    run(cmd);
    CHECK(dx_store_open(&s, path, &e) == DX_EFORMAT && strstr(e.msg, "truncated"), "truncated data: '%s'", e.msg);
    snprintf(cmd, sizeof cmd, "rm -f %s/bad/series/%s.hu", dir, stem);
    run(cmd);
    CHECK(dx_store_open(&s, path, &e) == DX_EIO && strstr(e.msg, stem), "missing data file: '%s'", e.msg);

    /* a crashed writer's temp files are cleaned, the store stays as committed */
    snprintf(cmd, sizeof cmd, "touch %s/series/abc.hu.tmp.123 %s/index.dxs.tmp.9", store, store);
    run(cmd);
    CHECK(dx_store_writer_open(&w, store, &e) == DX_OK, "writer open with debris");
    dx_store_writer_close(&w);
    snprintf(path, sizeof path, "%s/series/abc.hu.tmp.123", store);
    CHECK(file_size(path) == -1, "temp debris removed");
    CHECK(dx_store_open(&s, store, &e) == DX_OK && s.n_series == 2, "store intact");
    dx_store_close(&s);

    /* bad volumes are refused before anything is written */
    CHECK(dx_store_writer_open(&w, store, &e) == DX_OK, "writer");
    dx_volume bad_v = v2;
    bad_v.spacing[2] = 0;
    CHECK(dx_store_writer_add(&w, &bad_v, NULL, NULL, 0, 0, &e) == DX_EINVAL, "zero spacing refused");
    bad_v = v2;
    bad_v.series_uid[0] = 0;
    CHECK(dx_store_writer_add(&w, &bad_v, NULL, NULL, 0, 0, &e) == DX_EINVAL, "empty UID refused");
    dx_store_writer_close(&w);

    dx_volume_free(&v1), dx_volume_free(&v1b), dx_volume_free(&v2);
    free(lab);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    run(cmd);
    return dx_test_summary();
}
