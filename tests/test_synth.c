/* test_synth.c - unit tests of the phantom generator's pieces.
 *
 *  - UIDs: 2.25.<decimal of 128 bits>, <= 64 chars, no leading zero,
 *    deterministic, distinct per (kind, index);
 *  - DICOM writer: byte layout checked by an independent mini-parser here
 *    (preamble, DICM, meta group length, ascending tags, implicit vs explicit
 *    element headers, pixel values = HU - intercept);
 *  - contour trace: for disks/ellipses/random blobs, the chain is closed,
 *    8-connected, lies outside the region and 4-adjacent to it, and an
 *    even-odd polygon fill of it minus the chain returns the region exactly
 *    (pylidc's contour semantics, ct-data.md §2.1);
 *  - attribute model: diameters log-normal (median ~6 mm, within 3-30),
 *    mostly solid, all 5 malignancy levels rated, and size alone predicts the
 *    variant-A label with an AUC between 0.72 and 0.92 (not trivial, not noise);
 *  - rendering: lung HU near -850, padding outside the FOV, a solid nodule
 *    placed by hand shows its HU at its centre, same slice twice is identical. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dx_test.h"
#include "synth/synth_internal.h"

static void test_uid(void) {
    char a[SYNTH_UID_MAX], b[SYNTH_UID_MAX], c[SYNTH_UID_MAX];
    int bad = 0;
    for (int i = 0; i < 200; i++) {
        synth_uid(a, 42, 1 + i % 7, SYNTH_UID_SOP, i);
        size_t n = strlen(a);
        if (n > 64 || n < 6 || strncmp(a, "2.25.", 5) || (a[5] == '0' && a[6])) bad++;
        for (size_t k = 5; k < n; k++)
            if (a[k] < '0' || a[k] > '9') bad++;
    }
    CHECK(bad == 0, "%d malformed UIDs", bad);
    synth_uid(a, 42, 3, SYNTH_UID_SOP, 5);
    synth_uid(b, 42, 3, SYNTH_UID_SOP, 5);
    synth_uid(c, 42, 3, SYNTH_UID_SOP, 6);
    CHECK(!strcmp(a, b), "UID not deterministic");
    CHECK(strcmp(a, c) != 0, "UIDs of two slices equal");
    synth_uid(c, 43, 3, SYNTH_UID_SOP, 5);
    CHECK(strcmp(a, c) != 0, "UID independent of seed");
    synth_uid(c, 42, 3, SYNTH_UID_SERIES, 5);
    CHECK(strcmp(a, c) != 0, "UID kinds collide");
}

/* --- minimal independent DICOM reader for the layout checks --- */
static unsigned rd16(const uint8_t *p) { return p[0] | p[1] << 8; }
static uint32_t rd32(const uint8_t *p) { return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24; }

static int long_vr(const char *vr) {
    return !memcmp(vr, "OB", 2) || !memcmp(vr, "OW", 2) || !memcmp(vr, "SQ", 2) || !memcmp(vr, "UN", 2) ||
           !memcmp(vr, "UT", 2);
}

static void check_dicom(const char *path, const synth_scan *s, const int16_t *hu, int explicit_vr) {
    FILE *f = fopen(path, "rb");
    CHECK(f != NULL, "open %s", path);
    if (!f) return;
    uint8_t *buf = malloc(1 << 20);
    size_t n = fread(buf, 1, 1 << 20, f);
    fclose(f);
    int zero = 1;
    for (int i = 0; i < 128; i++) zero &= buf[i] == 0;
    CHECK(zero && !memcmp(buf + 128, "DICM", 4), "preamble/DICM");
    /* (0002,0000) UL 4 <len> */
    CHECK(rd16(buf + 132) == 2 && rd16(buf + 134) == 0 && !memcmp(buf + 136, "UL", 2) && rd16(buf + 138) == 4,
          "group length element");
    uint32_t gl = rd32(buf + 140);
    size_t p = 144, meta_end = 144 + gl;
    char ts[80] = "";
    while (p < meta_end) { /* meta is explicit */
        unsigned g = rd16(buf + p), e = rd16(buf + p + 2);
        const char *vr = (const char *)buf + p + 4;
        uint32_t len;
        size_t hdr;
        if (long_vr(vr)) len = rd32(buf + p + 8), hdr = 12;
        else len = rd16(buf + p + 6), hdr = 8;
        CHECK(g == 2, "meta element outside group 2");
        if (e == 0x10) memcpy(ts, buf + p + hdr, len < 79 ? len : 79);
        p += hdr + len;
    }
    CHECK(p == meta_end, "meta group length %u does not end on an element", gl);
    CHECK(!strcmp(ts, explicit_vr ? "1.2.840.10008.1.2.1" : "1.2.840.10008.1.2"), "transfer syntax '%s'", ts);
    uint32_t last = 0;
    int ordered = 1, odd = 0, found_pix = 0, rows = 0;
    while (p + 8 <= n) {
        unsigned g = rd16(buf + p), e = rd16(buf + p + 2);
        uint32_t tag = (uint32_t)g << 16 | e, len;
        size_t hdr;
        if (explicit_vr) {
            const char *vr = (const char *)buf + p + 4;
            if (long_vr(vr)) len = rd32(buf + p + 8), hdr = 12;
            else len = rd16(buf + p + 6), hdr = 8;
        } else len = rd32(buf + p + 4), hdr = 8;
        if (tag <= last) ordered = 0;
        if (len & 1) odd++;
        last = tag;
        if (tag == 0x00280010) rows = (int)rd16(buf + p + hdr);
        if (tag == 0x7FE00010) {
            found_pix = 1;
            CHECK(len == (uint32_t)(s->nx * s->ny * 2), "pixel length %u", len);
            int same = 1;
            for (int i = 0; i < s->nx * s->ny; i++)
                same &= (int16_t)rd16(buf + p + hdr + 2 * i) == hu[i] - (int)s->intercept;
            CHECK(same, "pixel values != HU - intercept");
        }
        p += hdr + len;
    }
    CHECK(ordered, "tags not ascending");
    CHECK(odd == 0, "%d odd-length values", odd);
    CHECK(found_pix && p == n, "pixel data last, file fully parsed (%zu of %zu)", p, n);
    CHECK(rows == s->ny, "Rows %d", rows);
    free(buf);
}

static void test_dicom(void) {
    synth_scan s;
    synth_scan_draw(&s, 7, 1, 128);
    s.nx = s.ny = 8;
    dx_err err = {0};
    CHECK(synth_scan_set_z(&s, -10, 10, 3, 7, &err) == DX_OK, "set_z");
    int16_t hu[64];
    for (int i = 0; i < 64; i++) hu[i] = (int16_t)(-1024 + 67 * i);
    char path[256];
    for (int ex = 0; ex < 2; ex++) {
        snprintf(path, sizeof path, "/tmp/dx_test_synth_%d_%d.dcm", (int)getpid(), ex);
        CHECK(synth_dicom_write(path, &s, 1, hu, ex, &err) == DX_OK, "write: %s", err.msg);
        check_dicom(path, &s, hu, ex);
        remove(path);
    }
    CHECK(synth_dicom_write("/nonexistent-dir/x.dcm", &s, 0, hu, 0, &err) == DX_EIO, "bad path -> DX_EIO");
    synth_scan_free(&s);
}

/* Even-odd point-in-polygon at integer pixel centres (independent of the tracer). */
static int inside_poly(const int *xs, const int *ys, int n, double px, double py) {
    int c = 0;
    for (int i = 0, j = n - 1; i < n; j = i++) {
        if ((ys[i] > py) != (ys[j] > py)) {
            double x = xs[j] + (double)(xs[i] - xs[j]) * (py - ys[j]) / (double)(ys[i] - ys[j]);
            if (px < x) c = !c;
        }
    }
    return c;
}

static void test_contour(void) {
    enum { W = 40, H = 40 };
    uint8_t img[W * H];
    int xs[4 * W * H], ys[4 * W * H];
    dx_rng r;
    dx_rng_init(&r, 1, DX_RNG_TEST, 0, 0);
    int bad_fill = 0, bad_chain = 0, shapes = 0;
    for (int t = 0; t < 60; t++) {
        memset(img, 0, sizeof img);
        double cx = dx_rng_uniform_range(&r, 14, 26), cy = dx_rng_uniform_range(&r, 14, 26);
        double a = dx_rng_uniform_range(&r, 0.6, 9), b = dx_rng_uniform_range(&r, 0.6, 9);
        double th = dx_rng_uniform_range(&r, 0, 3.14);
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                double u = (x - cx) * cos(th) + (y - cy) * sin(th), v = -(x - cx) * sin(th) + (y - cy) * cos(th);
                if (u * u / (a * a) + v * v / (b * b) <= 1) img[y * W + x] = 1;
            }
        int cnt = 0;
        for (int i = 0; i < W * H; i++) cnt += img[i];
        if (!cnt) continue;
        shapes++;
        int n = synth_trace_outer(img, W, H, 0, 0, xs, ys, 4 * W * H);
        if (n < 5 || xs[0] != xs[n - 1] || ys[0] != ys[n - 1]) { bad_chain++; continue; }
        for (int i = 0; i < n; i++) {
            int x = xs[i], y = ys[i];
            if (img[y * W + x]) bad_chain++; /* on the region */
            int adj = img[y * W + x - 1] | img[y * W + x + 1] | img[(y - 1) * W + x] | img[(y + 1) * W + x];
            if (!adj) bad_chain++;           /* not 4-adjacent to it */
            if (i && (abs(x - xs[i - 1]) > 1 || abs(y - ys[i - 1]) > 1)) bad_chain++;
        }
        /* fill minus chain == region (ellipses are convex enough to have no notches) */
        uint8_t ch[W * H];
        memset(ch, 0, sizeof ch);
        for (int i = 0; i < n; i++) ch[ys[i] * W + xs[i]] = 1;
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                int f = !ch[y * W + x] && inside_poly(xs, ys, n - 1, x, y);
                if (f != img[y * W + x]) bad_fill++;
            }
    }
    CHECK(shapes > 50, "shapes %d", shapes);
    CHECK(bad_chain == 0, "%d bad chain points", bad_chain);
    CHECK(bad_fill == 0, "%d pixels where fill(chain) - chain != region", bad_fill);
}

static double auc_mw(const double *score, const int *y, int n) {
    double s = 0;
    long np = 0, nn = 0;
    for (int i = 0; i < n; i++) {
        if (!y[i]) continue;
        np++;
        for (int j = 0; j < n; j++) {
            if (y[j]) continue;
            s += score[i] > score[j] ? 1 : score[i] == score[j] ? 0.5 : 0;
        }
    }
    for (int j = 0; j < n; j++) nn += !y[j];
    return np && nn ? s / ((double)np * nn) : NAN;
}

static int cmp_int(const void *a, const void *b) { return *(const int *)a - *(const int *)b; }

static void test_attributes(void) {
    enum { N = 3200 };
    static double diam[N];
    static int lab[N];
    double dsort[N];
    int nl = 0, solid = 0, out_range = 0, levels[6] = {0};
    dx_rng r;
    dx_rng_init(&r, 5, DX_RNG_TEST, 1, 0);
    synth_anatomy an;
    memset(&an, 0, sizeof an); /* no vessels: no false-positive marks */
    synth_lesions ls;
    synth_reading rd;
    for (int batch = 0; batch < N / SYNTH_MAX_LESIONS; batch++) {
        memset(&ls, 0, sizeof ls);
        for (int i = 0; i < SYNTH_MAX_LESIONS; i++) synth_nodule_attributes(&ls.l[ls.n++], &r, SYNTH_NODULE);
        synth_readers_draw(&rd, &ls, &an, 5, 1000 + batch);
        for (int i = 0; i < ls.n; i++) {
            const synth_lesion *L = &ls.l[i];
            int idx = batch * SYNTH_MAX_LESIONS + i;
            dsort[idx] = L->diam;
            out_range += L->diam < 3 || L->diam > 30;
            solid += L->texture == SYNTH_SOLID;
            int rt[SYNTH_MAX_READERS], k = 0;
            for (int q = 0; q < rd.n_readers; q++)
                if (rd.mark[q][i].marked && !rd.mark[q][i].as_small) rt[k++] = rd.mark[q][i].chars[8], levels[rd.mark[q][i].chars[8]]++;
            if (k < 1) continue;
            qsort(rt, (size_t)k, sizeof *rt, cmp_int);
            double med = k & 1 ? rt[k / 2] : 0.5 * (rt[k / 2 - 1] + rt[k / 2]);
            if (med == 3) continue;
            diam[nl] = L->diam, lab[nl] = med > 3, nl++;
        }
    }
    for (int i = 1; i < N; i++) /* insertion sort is fine for 3200 */
        for (int j = i; j > 0 && dsort[j - 1] > dsort[j]; j--) { double t = dsort[j]; dsort[j] = dsort[j - 1]; dsort[j - 1] = t; }
    double median = dsort[N / 2];
    double auc = auc_mw(diam, lab, nl);
    printf("attributes: median diameter %.2f mm, solid %.3f, rated levels %d/%d/%d/%d/%d, variant-A n=%d, size AUC %.3f\n",
           median, (double)solid / N, levels[1], levels[2], levels[3], levels[4], levels[5], nl, auc);
    CHECK(out_range == 0, "%d diameters outside [3, 30]", out_range);
    CHECK(median > 5.0 && median < 7.5, "median diameter %.2f", median);
    CHECK(dsort[N - 1] > 15, "no large nodules (max %.1f)", dsort[N - 1]);
    CHECK((double)solid / N > 0.75 && (double)solid / N < 0.92, "solid fraction %.3f", (double)solid / N);
    for (int l = 1; l <= 5; l++) CHECK(levels[l] > 20, "malignancy level %d rated %d times", l, levels[l]);
    CHECK(auc > 0.72 && auc < 0.92, "size-only AUC %.3f outside (0.72, 0.92)", auc);
}

static void test_render(void) {
    synth_scan s;
    synth_anatomy an;
    synth_lesions ls;
    dx_err err = {0};
    synth_scan_draw(&s, 9, 2, 128);
    CHECK(synth_anatomy_build(&an, &s, 9, 2, &err) == DX_OK, "anatomy: %s", err.msg);
    CHECK(synth_scan_set_z(&s, an.z_lo, an.z_hi, 9, 9, &err) == DX_OK, "set_z");
    memset(&ls, 0, sizeof ls);
    /* a 12 mm solid nodule by hand at a lung point on the middle slice */
    int k = s.nz / 2;
    double c[3] = {0, 0, s.z[k]};
    int found = 0;
    for (int t = 0; t < 20000 && !found; t++) {
        c[0] = an.bx + (t % 200 - 100) * 1.3, c[1] = an.by + (t / 200 - 50) * 1.3;
        int in = 1;
        for (int a = 0; a < 16 && in; a++)
            in = synth_in_lung(&an, c[0] + 12 * cos(a * 0.39), c[1] + 12 * sin(a * 0.39), c[2]);
        found = in;
    }
    CHECK(found, "no lung point for the test nodule");
    dx_rng r;
    dx_rng_init(&r, 1, DX_RNG_TEST, 2, 0);
    synth_lesion *L = &ls.l[ls.n++];
    synth_nodule_attributes(L, &r, SYNTH_SMALL_NODULE); /* round, sharp, solid */
    L->calc = 0, L->r0 = 6, L->diam = 12, L->hu_solid = 40, L->hetero = 0;
    memcpy(L->c, c, sizeof c);
    for (int a = 0; a < 3; a++) L->lo[a] = c[a] - 8, L->hi[a] = c[a] + 8;
    s.noise_sigma = 10, s.hu_offset = 0;
    synth_render_ctx ctx = {&s, &an, &ls, 9, 2};
    int16_t *h1 = malloc(sizeof(int16_t) * 128 * 128), *h2 = malloc(sizeof(int16_t) * 128 * 128);
    CHECK(synth_render_slice(&ctx, k, h1, &err) == DX_OK, "render: %s", err.msg);
    CHECK(synth_render_slice(&ctx, k, h2, &err) == DX_OK, "render again");
    CHECK(!memcmp(h1, h2, sizeof(int16_t) * 128 * 128), "same slice renders differently");
    int ci = (int)lround((c[0] - s.x0) / s.ps), cj = (int)lround((c[1] - s.y0) / s.ps);
    CHECK(abs(h1[cj * 128 + ci] - 40) < 60, "nodule centre HU %d (want ~40)", h1[cj * 128 + ci]);
    double sum = 0;
    long n = 0;
    int pad_ok = 1;
    uint8_t *lab = malloc(128 * 128);
    synth_render_labels(&ctx, k, lab);
    for (int j = 0; j < 128; j++)
        for (int i = 0; i < 128; i++) {
            if (synth_outside_fov(&s, i, j)) pad_ok &= h1[j * 128 + i] == s.outside_stored + (int)s.intercept;
            if (lab[j * 128 + i] == SYNTH_L_LUNG) sum += h1[j * 128 + i], n++;
        }
    CHECK(pad_ok, "outside FOV not the padding value");
    CHECK(n > 500 && fabs(sum / n + 840) < 80, "lung mean HU %.1f over %ld px", sum / n, n);
    CHECK(lab[cj * 128 + ci] == SYNTH_L_LESION, "label at nodule centre %d", lab[cj * 128 + ci]);
    free(lab), free(h1), free(h2);
    synth_anatomy_free(&an);
    synth_scan_free(&s);
}

int main(void) {
    test_uid();
    test_dicom();
    test_contour();
    test_attributes();
    test_render();
    return dx_test_summary();
}
