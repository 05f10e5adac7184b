/* synth_readers.c - simulated radiologists and the LIDC XML they produce.
 *
 * 1-4 readers per scan (mostly 4). Each reader may miss a lesion (more often
 * small, subtle or ground-glass ones), judges its size with ~8% error (a
 * nodule seen as < 3 mm becomes a single-point "small nodule" mark), rates
 * the 9 LIDC characteristics from the latent attributes with sigma ~0.7
 * rating units, and draws contours whose boundary is offset by a per-reader
 * bias plus smooth angular noise (a few tenths of a mm). Non-nodule scars
 * and occasional vessel cross-sections get nonNodule marks.
 *
 * The XML follows the LIDC-IDRI reads' schema: LidcReadMessage (default namespace
 * http://www.nih.gov) > ResponseHeader (SeriesInstanceUid, StudyInstanceUID),
 * readingSession* > annotationVersion, servicingRadiologistID,
 * unblindedReadNodule* (noduleID, characteristics?, roi+ with imageZposition,
 * imageSOP_UID, inclusion, edgeMap{xCoord,yCoord}+), nonNodule*. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "synth/synth_internal.h"

static int rate(double v, double noise, int lo, int hi) {
    int r = (int)lround(v + noise);
    return r < lo ? lo : r > hi ? hi : r;
}

void synth_readers_draw(synth_reading *rd, const synth_lesions *ls, const synth_anatomy *an,
                        uint64_t seed, int patient) {
    dx_rng r;
    dx_rng_init(&r, seed, DX_RNG_SYNTH, (uint64_t)patient, SYNTH_P_READERS);
    memset(rd, 0, sizeof *rd);
    double u = dx_rng_uniform(&r);
    rd->n_readers = u < 0.72 ? 4 : u < 0.87 ? 3 : u < 0.96 ? 2 : 1;
    for (int k = 0; k < rd->n_readers; k++)
        snprintf(rd->reader_id[k], sizeof rd->reader_id[k], "%u", 100000000u + dx_rng_below(&r, 899999999u));
    for (int k = 0; k < rd->n_readers; k++) {
        double skill = dx_rng_uniform_range(&r, 0.7, 1.3); /* reader's miss-rate multiplier */
        double bias = 0.3 * dx_rng_normal(&r);            /* reader's malignancy leaning */
        for (int i = 0; i < ls->n; i++) {
            const synth_lesion *L = &ls->l[i];
            synth_reader_mark *m = &rd->mark[k][i];
            double p_miss;
            if (L->cls == SYNTH_NODULE)
                p_miss = 0.04 + 0.3 * exp(-(L->diam - 3) / 3) + 0.15 * (L->texture == SYNTH_GGO);
            else if (L->cls == SYNTH_SMALL_NODULE) p_miss = 0.4;
            else p_miss = 0.5;
            m->marked = dx_rng_uniform(&r) >= fmin(0.9, p_miss * skill);
            double seen = L->diam * exp(0.08 * dx_rng_normal(&r));
            m->as_small = L->cls == SYNTH_SMALL_NODULE || (L->cls == SYNTH_NODULE && seen < 3);
            m->bias_mm = 0.15 * dx_rng_normal(&r);
            for (int h = 0; h < 3; h++)
                for (int c = 0; c < 2; c++) m->harm[h][c] = 0.08 * dx_rng_normal(&r);
            if (L->cls != SYNTH_NODULE) continue;
            double sd = 0.7;
            m->chars[0] = rate(L->subtlety, sd * dx_rng_normal(&r), 1, 5);
            double is = dx_rng_uniform(&r);
            m->chars[1] = L->calc == 0 && L->malig_latent < -1 && is < 0.08 ? 3 : is > 0.995 ? 4 : 1;
            static const int calc_code[5] = {6, 5, 2, 1, 3};
            m->chars[2] = calc_code[L->calc];
            if (L->calc && dx_rng_uniform(&r) < 0.15) m->chars[2] = 4; /* non-central, a disagreement */
            m->chars[3] = rate(L->sphericity, sd * dx_rng_normal(&r), 1, 5);
            m->chars[4] = rate(L->sharp, sd * dx_rng_normal(&r), 1, 5);
            m->chars[5] = rate(L->lob, sd * dx_rng_normal(&r), 1, 5);
            m->chars[6] = rate(L->spic, sd * dx_rng_normal(&r), 1, 5);
            double tex = L->texture == SYNTH_SOLID ? 4.85 : L->texture == SYNTH_PART_SOLID ? 3 : 1.3;
            m->chars[7] = rate(tex, 0.45 * dx_rng_normal(&r), 1, 5);
            m->chars[8] = rate(L->malig_score + bias, 0.6 * dx_rng_normal(&r), 1, L->calc ? 2 : 5);
        }
    }
    /* false positives: a reader calls a vessel cross-section a non-nodule */
    int nfp = (int)dx_rng_below(&r, 3);
    for (int t = 0; t < 200 && rd->n_fp < nfp && an->vessels.n > 0; t++) {
        const synth_tube *tb = &an->vessels.t[dx_rng_below(&r, (uint32_t)an->vessels.n)];
        double m[3] = {0.5 * (tb->a[0] + tb->b[0]), 0.5 * (tb->a[1] + tb->b[1]), 0.5 * (tb->a[2] + tb->b[2])};
        double vr = 0.5 * (tb->ra + tb->rb);
        if (vr < 1.2 || vr > 3 || !synth_in_lung(an, m[0], m[1], m[2])) continue;
        rd->fp_reader[rd->n_fp] = (int)dx_rng_below(&r, (uint32_t)rd->n_readers);
        memcpy(rd->fp_pt[rd->n_fp], m, sizeof m);
        rd->n_fp++;
    }
}

/* ---- XML ---- */

static int nearest_slice(const synth_scan *s, double z) {
    int kb = 0;
    for (int k = 1; k < s->nz; k++)
        if (fabs(s->z[k] - z) < fabs(s->z[kb] - z)) kb = k;
    return kb;
}

static void roi_header(FILE *f, const synth_scan *s, int k) {
    fprintf(f, "      <roi>\n        <imageZposition>%.3f</imageZposition>\n", s->z[k]);
    fprintf(f, "        <imageSOP_UID>%s</imageSOP_UID>\n        <inclusion>TRUE</inclusion>\n", s->sop_uid[k]);
}

static void point_roi(FILE *f, const synth_scan *s, int k, int x, int y) {
    roi_header(f, s, k);
    fprintf(f, "        <edgeMap>\n          <xCoord>%d</xCoord>\n          <yCoord>%d</yCoord>\n        </edgeMap>\n", x, y);
    fprintf(f, "      </roi>\n");
}

/* Reader's perceived region on slice k inside box (bx0, by0, bw, bh); returns pixel count. */
static int reader_region(uint8_t *img, int bw, int bh, int bx0, int by0, const synth_lesion *L,
                         const synth_anatomy *an, const synth_scan *s, int k, const synth_reader_mark *m) {
    int cnt = 0;
    memset(img, 0, (size_t)bw * bh);
    for (int j = 2; j < bh - 2; j++)
        for (int i = 2; i < bw - 2; i++) {
            int gi = bx0 + i, gj = by0 + j;
            if (gi < 0 || gj < 0 || gi >= s->nx || gj >= s->ny) continue;
            double x = s->x0 + gi * s->ps, y = s->y0 + gj * s->ps, z = s->z[k];
            double th = atan2(y - L->c[1], x - L->c[0]);
            double delta = m->bias_mm;
            for (int h = 0; h < 3; h++) delta += m->harm[h][0] * cos((h + 1) * th) + m->harm[h][1] * sin((h + 1) * th);
            double d = synth_lesion_level(L, x, y, z);
            if ((d - 1) * L->r0 > delta || !synth_in_lung(an, x, y, z)) continue;
            img[(size_t)j * bw + i] = 1;
            cnt++;
        }
    return cnt;
}

/* Writes one roi per 8-connected component of img. */
static int write_components(FILE *f, const synth_scan *s, int k, uint8_t *img, int bw, int bh, int bx0,
                            int by0, int *xs, int *ys, int maxpts) {
    int nroi = 0;
    uint8_t *comp = malloc((size_t)bw * bh);
    int *stack = malloc(sizeof(int) * (size_t)bw * bh);
    if (!comp || !stack) { free(comp), free(stack); return -1; }
    for (int seed = 0; seed < bw * bh; seed++) {
        if (img[seed] != 1) continue;
        memset(comp, 0, (size_t)bw * bh);
        int sp = 0;
        stack[sp++] = seed;
        img[seed] = 2;
        while (sp) {
            int p = stack[--sp];
            comp[p] = 1;
            int px = p % bw, py = p / bw;
            for (int v = -1; v <= 1; v++)
                for (int u = -1; u <= 1; u++) {
                    int qx = px + u, qy = py + v;
                    if (qx < 0 || qy < 0 || qx >= bw || qy >= bh) continue;
                    int q = qy * bw + qx;
                    if (img[q] == 1) img[q] = 2, stack[sp++] = q;
                }
        }
        int n = synth_trace_outer(comp, bw, bh, 0, 0, xs, ys, maxpts);
        if (n < 2) continue;
        roi_header(f, s, k);
        for (int i = 0; i < n; i++)
            fprintf(f, "        <edgeMap>\n          <xCoord>%d</xCoord>\n          <yCoord>%d</yCoord>\n        </edgeMap>\n",
                    xs[i] + bx0, ys[i] + by0);
        fprintf(f, "      </roi>\n");
        nroi++;
    }
    free(comp), free(stack);
    return nroi;
}

static const char *char_tags[9] = {"subtlety", "internalStructure", "calcification", "sphericity", "margin",
                                   "lobulation", "spiculation", "texture", "malignancy"};

dx_status synth_xml_write(const char *path, const synth_scan *s, const synth_anatomy *an,
                          const synth_lesions *ls, const synth_mask *masks, const synth_reading *rd,
                          uint64_t seed, dx_err *err) {
    FILE *f = fopen(path, "w");
    if (!f) return dx_fail(err, DX_EIO, "open %s: %s", path, strerror(errno));
    dx_rng r;
    dx_rng_init(&r, seed, DX_RNG_SYNTH, (uint64_t)s->patient, SYNTH_P_READERS + 100);
    fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    fprintf(f, "<LidcReadMessage uid=\"%s\" xmlns=\"http://www.nih.gov\" "
               "xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" "
               "xsi:schemaLocation=\"http://www.nih.gov http://troll.rad.med.umich.edu/lidc/LidcReadMessage.xsd\">\n",
            s->xml_uid);
    fprintf(f, "  <ResponseHeader>\n    <Version>1.8.1</Version>\n    <MessageId>%d</MessageId>\n", s->xml_number);
    fprintf(f, "    <DateRequest>2000-01-01</DateRequest>\n    <TimeRequest>00:00:00</TimeRequest>\n");
    fprintf(f, "    <RequestingSite>removed</RequestingSite>\n    <ServicingSite>removed</ServicingSite>\n");
    fprintf(f, "    <TaskDescription>Second unblinded read</TaskDescription>\n    <CtImageFile>removed</CtImageFile>\n");
    fprintf(f, "    <SeriesInstanceUid>%s</SeriesInstanceUid>\n", s->series_uid);
    fprintf(f, "    <DateService>2000-01-01</DateService>\n    <TimeService>00:00:00</TimeService>\n");
    fprintf(f, "    <ResponseDescription>1 - Reading complete</ResponseDescription>\n");
    fprintf(f, "    <StudyInstanceUID>%s</StudyInstanceUID>\n  </ResponseHeader>\n", s->study_uid);

    int maxpts = 4 * (s->nx + s->ny) + 64;
    int *xs = malloc(sizeof(int) * (size_t)maxpts), *ys = malloc(sizeof(int) * (size_t)maxpts);
    if (!xs || !ys) { free(xs), free(ys), fclose(f); return dx_fail(err, DX_ENOMEM, "synth: contour buffers"); }
    dx_status st = DX_OK;
    for (int k = 0; k < rd->n_readers && st == DX_OK; k++) {
        fprintf(f, "  <readingSession>\n    <annotationVersion>3.12</annotationVersion>\n");
        fprintf(f, "    <servicingRadiologistID>%s</servicingRadiologistID>\n", rd->reader_id[k]);
        int style = (int)dx_rng_below(&r, 3), order[SYNTH_MAX_LESIONS];
        dx_rng_permutation(&r, order, ls->n);
        int nid = 0, nnid = 0;
        for (int oi = 0; oi < ls->n && st == DX_OK; oi++) {
            int i = order[oi];
            const synth_lesion *L = &ls->l[i];
            const synth_reader_mark *m = &rd->mark[k][i];
            const synth_mask *mk = &masks[i];
            if (!m->marked || mk->count == 0) continue;
            int kc = (int)lround(mk->cen[2]);
            int xc = (int)lround(mk->cen[0]), yc = (int)lround(mk->cen[1]);
            if (L->cls == SYNTH_NON_NODULE) {
                fprintf(f, "    <nonNodule>\n      <nonNoduleID>Non-nodule %03d</nonNoduleID>\n", ++nnid);
                fprintf(f, "      <imageZposition>%.3f</imageZposition>\n      <imageSOP_UID>%s</imageSOP_UID>\n",
                        s->z[kc], s->sop_uid[kc]);
                fprintf(f, "      <locus>\n        <xCoord>%d</xCoord>\n        <yCoord>%d</yCoord>\n      </locus>\n"
                           "    </nonNodule>\n", xc, yc);
                continue;
            }
            ++nid;
            fprintf(f, "    <unblindedReadNodule>\n");
            if (style == 0) fprintf(f, "      <noduleID>Nodule %03d</noduleID>\n", nid);
            else if (style == 1) fprintf(f, "      <noduleID>IL057_%06u</noduleID>\n", 100000 + dx_rng_below(&r, 899999));
            else fprintf(f, "      <noduleID>%d</noduleID>\n", 1000 + (int)dx_rng_below(&r, 9000));
            if (m->as_small) {
                point_roi(f, s, kc, xc + (int)dx_rng_below(&r, 3) - 1, yc + (int)dx_rng_below(&r, 3) - 1);
                fprintf(f, "    </unblindedReadNodule>\n");
                continue;
            }
            fprintf(f, "      <characteristics>\n");
            for (int c = 0; c < 9; c++) fprintf(f, "        <%s>%d</%s>\n", char_tags[c], m->chars[c], char_tags[c]);
            fprintf(f, "      </characteristics>\n");
            /* contour every slice the reader sees the nodule on */
            int bx0 = mk->x0 - 4, by0 = mk->y0 - 4, bw = mk->nx + 8, bh = mk->ny + 8;
            uint8_t *img = malloc((size_t)bw * bh);
            if (!img) { st = dx_fail(err, DX_ENOMEM, "synth: roi image"); break; }
            int nroi = 0;
            for (int kk = mk->z0; kk < mk->z0 + mk->nz; kk++) {
                if (reader_region(img, bw, bh, bx0, by0, L, an, s, kk, m) == 0) continue;
                int w = write_components(f, s, kk, img, bw, bh, bx0, by0, xs, ys, maxpts);
                if (w < 0) { st = dx_fail(err, DX_ENOMEM, "synth: components"); break; }
                nroi += w;
            }
            if (nroi == 0 && st == DX_OK) {
                /* smaller than the reader's resolution: contour the true mask */
                for (int kk = 0; kk < mk->nz; kk++) {
                    memset(img, 0, (size_t)bw * bh);
                    int any = 0;
                    for (int j = 0; j < mk->ny; j++)
                        for (int ii = 0; ii < mk->nx; ii++)
                            if (mk->m[((size_t)kk * mk->ny + j) * mk->nx + ii])
                                img[(size_t)(j + 4) * bw + ii + 4] = 1, any = 1;
                    if (any && write_components(f, s, mk->z0 + kk, img, bw, bh, bx0, by0, xs, ys, maxpts) < 0)
                        st = dx_fail(err, DX_ENOMEM, "synth: components");
                }
            }
            free(img);
            fprintf(f, "    </unblindedReadNodule>\n");
        }
        for (int i = 0; i < rd->n_fp; i++) {
            if (rd->fp_reader[i] != k) continue;
            int kc = nearest_slice(s, rd->fp_pt[i][2]);
            int xc = (int)lround((rd->fp_pt[i][0] - s->x0) / s->ps), yc = (int)lround((rd->fp_pt[i][1] - s->y0) / s->ps);
            fprintf(f, "    <nonNodule>\n      <nonNoduleID>Non-nodule %03d</nonNoduleID>\n", ++nnid);
            fprintf(f, "      <imageZposition>%.3f</imageZposition>\n      <imageSOP_UID>%s</imageSOP_UID>\n",
                    s->z[kc], s->sop_uid[kc]);
            fprintf(f, "      <locus>\n        <xCoord>%d</xCoord>\n        <yCoord>%d</yCoord>\n      </locus>\n"
                       "    </nonNodule>\n", xc, yc);
        }
        fprintf(f, "  </readingSession>\n");
    }
    fprintf(f, "</LidcReadMessage>\n");
    free(xs), free(ys);
    if (fclose(f) != 0 && st == DX_OK) st = dx_fail(err, DX_EIO, "write %s: %s", path, strerror(errno));
    return st;
}
