/* synth_scan.c - the acquisition protocol of one synthetic patient: matrix,
 * pixel spacing, slice thickness/spacing, scanner style (pixel encoding and
 * padding), noise level, calibration drift, and the UIDs of the series.
 *
 * Distributions follow LIDC-IDRI's acquisition statistics: pixel 0.59-0.98 mm at 512
 * (FOV scaled to the body), thickness mostly 1.25-2.5 mm with ~10% <= 1 mm and
 * ~13% > 2.5 mm, overlapping reconstruction on some scans, noise sigma
 * log-uniform 10-80 HU, calibration offset +-15 HU. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "synth/synth_internal.h"

/* 128-bit unsigned -> decimal, no leading zeros. */
static void u128_decimal(unsigned __int128 v, char *out) {
    char tmp[48];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + (int)(v % 10));
        v /= 10;
    } while (v);
    for (int i = 0; i < n; i++) out[i] = tmp[n - 1 - i];
    out[n] = 0;
}

void synth_uid(char out[SYNTH_UID_MAX], uint64_t seed, int patient, int kind, int index) {
    dx_rng r;
    /* b = (purpose 7 in the top byte) | kind | index: never meets the other purposes */
    dx_rng_init(&r, seed, DX_RNG_SYNTH, (uint64_t)patient,
                ((uint64_t)SYNTH_P_UID << 56) | ((uint64_t)kind << 32) | (uint32_t)index);
    unsigned __int128 v = ((unsigned __int128)dx_rng_u64(&r) << 64) | dx_rng_u64(&r);
    char dec[48];
    u128_decimal(v, dec);
    snprintf(out, SYNTH_UID_MAX, "2.25.%s", dec);
}

static double round_to(double v, double q) { return round(v / q) * q; }

void synth_scan_draw(synth_scan *s, uint64_t seed, int patient, int size) {
    memset(s, 0, sizeof *s);
    dx_rng r;
    dx_rng_init(&r, seed, DX_RNG_SYNTH, (uint64_t)patient, SYNTH_P_SCAN);
    s->patient = patient;
    snprintf(s->patient_id, sizeof s->patient_id, "LIDC-IDRI-%04d", patient);
    s->nx = s->ny = size;

    /* Body first: the reconstruction FOV is chosen to contain it (and the table). */
    s->body_a = dx_rng_uniform_range(&r, 135, 180);
    s->body_b = s->body_a * dx_rng_uniform_range(&r, 0.62, 0.78);
    double fov = 2 * s->body_a + dx_rng_uniform_range(&r, 35, 130);
    double fov_min = 2 * s->body_b + 110;
    if (fov < fov_min) fov = fov_min;
    if (fov > 500) fov = 500;
    s->ps = round_to(fov / size, 1e-6);
    s->fov = s->ps * size;
    s->xc = round_to(dx_rng_uniform_range(&r, -12, 12), 1e-3);
    s->yc = round_to(dx_rng_uniform_range(&r, -5, 30), 1e-3);
    s->x0 = round_to(s->xc - s->fov / 2 + s->ps / 2, 1e-3);
    s->y0 = round_to(s->yc - s->fov / 2 + s->ps / 2, 1e-3);

    /* Thickness mix (LIDC-like): cumulative weights. */
    static const double th[] = {0.625, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 5.0};
    static const double w[] = {0.05, 0.05, 0.25, 0.05, 0.15, 0.32, 0.08, 0.05};
    double u = dx_rng_uniform(&r), acc = 0;
    s->thick = th[7];
    for (int i = 0; i < 8; i++) {
        acc += w[i];
        if (u < acc) { s->thick = th[i]; break; }
    }
    s->dz = s->thick;
    if (dx_rng_uniform(&r) < 0.2) s->dz = round_to(s->thick * 0.8, 1e-3); /* overlapping recon */
    s->instances_descending = dx_rng_uniform(&r) < 0.7;

    s->vendor = (int)dx_rng_below(&r, SYNTH_NVENDORS);
    static const char *kern[SYNTH_NVENDORS][2] = {
        {"STANDARD", "LUNG"}, {"B30f", "B70f"}, {"B", "D"}, {"FC01", "FC51"}};
    switch (s->vendor) {
    case SYNTH_GE: /* signed, intercept -1024, padding -2000 stored (= -3024 HU) */
        s->pixel_signed = 1, s->bits_stored = 16, s->intercept = -1024;
        s->has_padding = 1, s->outside_stored = -2000;
        break;
    case SYNTH_SIEMENS: /* unsigned 12 bit, intercept -1024, 0 outside, no padding tag */
        s->pixel_signed = 0, s->bits_stored = 12, s->intercept = -1024;
        s->has_padding = 0, s->outside_stored = 0;
        break;
    case SYNTH_PHILIPS: /* signed, intercept 0, padding -3024 */
        s->pixel_signed = 1, s->bits_stored = 16, s->intercept = 0;
        s->has_padding = 1, s->outside_stored = -3024;
        break;
    default: /* Toshiba-like: signed, intercept 0, large negatives outside, no tag */
        s->pixel_signed = 1, s->bits_stored = 16, s->intercept = 0;
        s->has_padding = 0, s->outside_stored = -2048;
        break;
    }
    s->noise_sigma = exp(dx_rng_uniform_range(&r, log(10.0), log(80.0)));
    s->kernel = kern[s->vendor][s->noise_sigma > 40];
    s->hu_offset = dx_rng_uniform_range(&r, -15, 15);
    s->psf_fwhm = dx_rng_uniform_range(&r, 0.6, 1.0);
    s->contrast = dx_rng_uniform(&r) < 0.35;
    s->kvp = dx_rng_uniform(&r) < 0.8 ? 120 : 140;
    s->ma = 40 + (int)dx_rng_below(&r, 588);
    if (dx_rng_uniform(&r) < 0.5) s->window_center = -600, s->window_width = 1600;
    else s->window_center = 40, s->window_width = 400;
    s->series_number = s->vendor == SYNTH_GE ? 3000000 + (int)dx_rng_below(&r, 999999)
                                             : 1 + (int)dx_rng_below(&r, 9999);
    s->xml_number = (int)dx_rng_below(&r, 1000);

    synth_uid(s->study_uid, seed, patient, SYNTH_UID_STUDY, 0);
    synth_uid(s->series_uid, seed, patient, SYNTH_UID_SERIES, 0);
    synth_uid(s->for_uid, seed, patient, SYNTH_UID_FOR, 0);
    synth_uid(s->xml_uid, seed, patient, SYNTH_UID_XML, 0);
}

dx_status synth_scan_set_z(synth_scan *s, double z_lo, double z_hi, int slices_max, uint64_t seed,
                           dx_err *err) {
    int n_full = (int)floor((z_hi - z_lo) / s->dz) + 1;
    if (n_full < 1) n_full = 1;
    int n = n_full, off = 0;
    if (slices_max > 0 && n > slices_max) {
        dx_rng r;
        dx_rng_init(&r, seed, DX_RNG_SYNTH, (uint64_t)s->patient, SYNTH_P_SCAN + 100);
        n = slices_max;
        /* keep the window in the middle 80% of the lungs where nodules live */
        int lo = (n_full - n) / 10, hi = (n_full - n) - (n_full - n) / 10;
        off = lo + (int)dx_rng_below(&r, (uint32_t)(hi - lo + 1));
    }
    s->nz = n;
    s->z = malloc(sizeof(double) * (size_t)n);
    s->sop_uid = malloc(sizeof *s->sop_uid * (size_t)n);
    if (!s->z || !s->sop_uid) return dx_fail(err, DX_ENOMEM, "synth: %d slices", n);
    double z0 = round_to(z_lo + off * s->dz, 1e-3);
    for (int k = 0; k < n; k++) {
        s->z[k] = round_to(z0 + k * s->dz, 1e-3);
        synth_uid(s->sop_uid[k], seed, s->patient, SYNTH_UID_SOP, k);
    }
    return DX_OK;
}

void synth_scan_free(synth_scan *s) {
    free(s->z);
    free(s->sop_uid);
    s->z = NULL;
    s->sop_uid = NULL;
}

int synth_scan_instance(const synth_scan *s, int k) {
    return s->instances_descending ? s->nz - k : k + 1;
}

int synth_outside_fov(const synth_scan *s, int i, int j) {
    double dx = s->x0 + i * s->ps - s->xc, dy = s->y0 + j * s->ps - s->yc;
    double r = s->fov / 2;
    return dx * dx + dy * dy > r * r;
}
