/* synth_internal.h - the pieces of the phantom generator shared between the
 * files of src/synth/ (and its tests). Not a public interface.
 *
 * Coordinates: DICOM patient space (LPS, mm): +x patient left (image right),
 * +y posterior (image down), +z superior. Axial slices, IOP = 1\0\0\0\1\0,
 * so voxel (i, j, k) sits at (x0 + i*ps, y0 + j*ps, z[k]); z ascends with k. */
#ifndef DX_SYNTH_INTERNAL_H
#define DX_SYNTH_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/dx_error.h"
#include "core/dx_rng.h"

#define SYNTH_UID_MAX 65
#define SYNTH_MAX_READERS 4
#define SYNTH_MAX_LESIONS 16

/* Purposes: the `b` of the rng stream (seed, DX_RNG_SYNTH, patient, b). */
enum {
    SYNTH_P_SCAN = 1,      /* protocol: sizes, spacing, vendor, noise */
    SYNTH_P_ANATOMY = 2,   /* body, lungs, heart, bones */
    SYNTH_P_TREES = 3,     /* vessels and airways */
    SYNTH_P_TEXTURE = 4,   /* lung low-frequency texture lattice */
    SYNTH_P_LESIONS = 5,   /* nodules, small nodules, non-nodules */
    SYNTH_P_READERS = 6,   /* reader count, misses, ratings, contours */
    SYNTH_P_UID = 7,       /* UIDs: stream b = 7, draws indexed below */
    SYNTH_P_NOISE = 1 << 20 /* + slice index + 1: white noise of one slice */
};

/* UID kinds (mixed into the UID stream). */
enum { SYNTH_UID_STUDY = 1, SYNTH_UID_SERIES, SYNTH_UID_FOR, SYNTH_UID_SOP, SYNTH_UID_XML };

/* "2.25." + decimal of a 128-bit value drawn from the patient's UID stream. */
void synth_uid(char out[SYNTH_UID_MAX], uint64_t seed, int patient, int kind, int index);

/* Scanner styles: pixel encoding and padding follow the vendors' habits. */
enum { SYNTH_GE = 0, SYNTH_SIEMENS, SYNTH_PHILIPS, SYNTH_TOSHIBA, SYNTH_NVENDORS };

typedef struct synth_scan {
    int patient;                  /* 1-based patient number */
    char patient_id[32];          /* LIDC-IDRI-NNNN */
    int nx, ny, nz;
    double ps;                    /* pixel spacing (mm), both directions */
    double fov;                   /* reconstruction diameter = nx * ps (mm) */
    double xc, yc;                /* image centre in patient x, y (mm) */
    double body_a, body_b;        /* body semi-axes drawn with the protocol (FOV fits them) */
    double thick;                 /* nominal slice thickness (mm) */
    double dz;                    /* slice spacing (mm), <= thick */
    double x0, y0;                /* IPP x, y of pixel (0,0) (its centre) */
    double *z;                    /* [nz] IPP z per slice, ascending, owned */
    int instances_descending;     /* 1: InstanceNumber 1 = highest z (head first) */
    int vendor;
    int pixel_signed, bits_stored;
    double intercept;             /* rescale intercept (slope is 1) */
    int has_padding;              /* PixelPaddingValue written */
    int outside_stored;           /* stored value outside the FOV circle */
    double noise_sigma;           /* HU, uniform region, centre of the body */
    double hu_offset;             /* calibration drift added to every HU */
    double psf_fwhm;              /* in-plane blur, mm */
    int contrast;                 /* 1: contrast-enhanced (vessels/heart bright) */
    int kvp, ma;
    const char *kernel;           /* ConvolutionKernel */
    double window_center, window_width;
    int series_number;
    int xml_number;               /* NNN of NNN.xml */
    char study_uid[SYNTH_UID_MAX], series_uid[SYNTH_UID_MAX], for_uid[SYNTH_UID_MAX];
    char xml_uid[SYNTH_UID_MAX];
    char (*sop_uid)[SYNTH_UID_MAX]; /* [nz], owned, indexed by slice (z order) */
} synth_scan;

/* Draws the protocol of one patient. The z-extent depends on the anatomy, so
 * z stays NULL until synth_scan_set_z (which applies the slices_max cap). */
void synth_scan_draw(synth_scan *s, uint64_t seed, int patient, int size);
dx_status synth_scan_set_z(synth_scan *s, double z_lo, double z_hi, int slices_max, uint64_t seed,
                           dx_err *err);
void synth_scan_free(synth_scan *s);
/* Instance number (1-based) of slice k. */
int synth_scan_instance(const synth_scan *s, int k);

/* A tapered capsule: vessels, airways, ribs, spicules, aorta. */
enum { SYNTH_TUBE_SOLID = 0, SYNTH_TUBE_AIRWAY, SYNTH_TUBE_BONE };
typedef struct synth_tube {
    float a[3], b[3];     /* end points (mm) */
    float ra, rb;         /* radius at a and b (mm) */
    float hu;             /* lumen / marrow value */
    float wall_hu;        /* wall (airway) or cortex (bone) value */
    float wall;           /* wall thickness (mm), 0 = none */
    int kind;
    float zmin, zmax;     /* z-extent including radius (culling) */
} synth_tube;

typedef struct synth_tubes {
    synth_tube *t;
    int n, cap;
} synth_tubes;
int synth_tubes_push(synth_tubes *ts, const double a[3], const double b[3], double ra, double rb,
                     double hu, double wall_hu, double wall, int kind);
void synth_tubes_free(synth_tubes *ts);

/* Lesion classes as readers see them. */
enum { SYNTH_NODULE = 0, SYNTH_SMALL_NODULE, SYNTH_NON_NODULE };
enum { SYNTH_SOLID = 0, SYNTH_PART_SOLID, SYNTH_GGO };
enum { SYNTH_LOC_PARENCHYMA = 0, SYNTH_LOC_JUXTA_PLEURAL, SYNTH_LOC_JUXTA_VASCULAR };
enum { SYNTH_CALC_NONE = 0, SYNTH_CALC_CENTRAL, SYNTH_CALC_LAMINATED, SYNTH_CALC_POPCORN, SYNTH_CALC_SOLID };

#define SYNTH_MAX_BUMPS 6
typedef struct synth_lesion {
    int cls;                      /* SYNTH_NODULE / SMALL_NODULE / NON_NODULE */
    double c[3];                  /* centre (mm) */
    double r0;                    /* mean radius (mm) before shape terms */
    double diam;                  /* nominal diameter (mm) = 2 r0 */
    double q[9];                  /* rotation: rows = principal axes */
    double ax[3];                 /* axis scales (product 1) */
    int nbump;
    double bump_u[SYNTH_MAX_BUMPS][3], bump_a[SYNTH_MAX_BUMPS];
    double margin_w;              /* edge width (mm): sharp 0.2 ... ill-defined 2.5 */
    int texture;                  /* SYNTH_SOLID / PART_SOLID / GGO */
    double core_frac;             /* part-solid: solid core radius fraction */
    int calc;                     /* SYNTH_CALC_* */
    int location;
    double hu_solid, hu_ggo;
    double hetero;                /* internal texture amplitude (HU) */
    /* latent attributes (ground truth) */
    double malig_latent;          /* N(0,1) drives morphology */
    double malig_score;           /* continuous "consensus" rating 1..5 before reader noise */
    double spic, lob, sharp;      /* continuous 1..5 scales */
    double sphericity;            /* continuous 1..5 */
    double subtlety;              /* continuous 1..5 */
    int n_spicules;
    /* bounding box of the lesion body incl. margin (mm) */
    double lo[3], hi[3];
} synth_lesion;

/* The patient's anatomy: analytic shapes + tube lists + a texture lattice. */
typedef struct synth_anatomy {
    double bx, by;                /* body centre */
    double body_a, body_b;        /* body semi-axes (x lateral, y AP) */
    double fat, muscle;           /* layer thicknesses */
    double cav_a, cav_b;          /* thoracic cavity semi-axes */
    double med_x, med_w;          /* mediastinum centre x and half-width */
    double z_apex, z_shoulder;    /* lung apex, start of apical taper */
    double z_diaph[2];            /* dome top z, right (0) and left (1) lung */
    double dome_h;                /* dome height */
    double heart_c[3], heart_r[3];
    double spine_y, spine_r;      /* vertebral body centre y and radius (x = bx) */
    double z_lo, z_hi;            /* scanned z range */
    double table_y;
    double hu_fat, hu_muscle, hu_lung, hu_blood, hu_liver;
    int contrast;
    synth_tubes bones, vessels, airways, spicules;
    /* lung texture lattice (two octaves), covering the body box */
    int tex_n[2][3];
    double tex_h[2], tex_amp[2], tex_o[3];
    float *tex[2];
} synth_anatomy;

dx_status synth_anatomy_build(synth_anatomy *an, const synth_scan *s, uint64_t seed, int patient,
                              dx_err *err);
void synth_anatomy_free(synth_anatomy *an);
/* 1 if the point is in aerated lung (not heart, mediastinum, below the diaphragm). */
int synth_in_lung(const synth_anatomy *an, double x, double y, double z);
/* Side of the lung at x: 0 = right (x < med_x), 1 = left. */
int synth_lung_side(const synth_anatomy *an, double x);
/* Renders the anatomy (no lesions) of plane z into buf[h][w], sample (u,v) at
 * (x0 + u*step, y0 + v*step). */
void synth_anatomy_plane(const synth_anatomy *an, double z, double x0, double y0, double step, int w,
                         int h, float *buf);
/* Draws tubes crossing plane z into buf (same sampling as above). */
void synth_tubes_plane(const synth_tubes *ts, double z, double x0, double y0, double step, int w, int h,
                       float *buf);

/* Tissue labels of the ground-truth label volume (labels.npy). */
enum {
    SYNTH_L_AIR = 0, SYNTH_L_LUNG, SYNTH_L_FAT, SYNTH_L_MUSCLE, SYNTH_L_BONE, SYNTH_L_HEART,
    SYNTH_L_ABDOMEN, SYNTH_L_VESSEL, SYNTH_L_AIRWAY, SYNTH_L_TABLE, SYNTH_L_LESION, SYNTH_NLABELS,
    SYNTH_L_OUTSIDE = 255 /* outside the reconstruction circle (padding) */
};
extern const char *const synth_label_names[SYNTH_NLABELS];
/* Tissue of the analytic background at a point (no tubes, no lesions). */
int synth_anatomy_label(const synth_anatomy *an, double x, double y, double z);
void synth_tubes_label(const synth_tubes *ts, double z, double x0, double y0, double step, int w, int h,
                       uint8_t *lab, uint8_t label);

/* Lesions: sampling (latent malignancy -> morphology) and evaluation. */
typedef struct synth_lesions {
    synth_lesion l[SYNTH_MAX_LESIONS];
    int n;
} synth_lesions;
/* Samples nodule attributes (no placement): the model of docs/synth.md. */
void synth_nodule_attributes(synth_lesion *L, dx_rng *r, int cls);
/* Samples and places all lesions of a patient (needs anatomy and scan z-range);
 * appends spicules to an->spicules. */
void synth_lesions_place(synth_lesions *ls, synth_anatomy *an, const synth_scan *s, uint64_t seed,
                         int patient);
/* Normalised level: <= 1 inside the body surface (spicules excluded). */
double synth_lesion_level(const synth_lesion *L, double x, double y, double z);
/* Blends the lesions into plane z (sampling as synth_anatomy_plane). */
void synth_lesions_plane(const synth_lesions *ls, const synth_anatomy *an, double z, double x0,
                         double y0, double step, int w, int h, float *buf);
/* 1 if voxel centre (x,y,z) is inside lesion L (body and lung). */
int synth_lesion_inside(const synth_lesion *L, const synth_anatomy *an, double x, double y, double z);

/* A lesion's true mask over the scan grid, cropped to a box. */
typedef struct synth_mask {
    int x0, y0, z0, nx, ny, nz;   /* box origin (voxel) and size */
    uint8_t *m;                   /* [nz][ny][nx] */
    long count;
    double cen[3];                /* centroid (voxel i, j, k) */
} synth_mask;
dx_status synth_mask_build(synth_mask *mk, const synth_lesion *L, const synth_anatomy *an,
                           const synth_scan *s, dx_err *err);
void synth_mask_free(synth_mask *mk);

/* Rendering of slice k into HU (int16, [ny][nx]) and stored values. */
typedef struct synth_render_ctx {
    const synth_scan *s;
    const synth_anatomy *an;
    const synth_lesions *ls;
    uint64_t seed;
    int ss;                       /* in-plane supersampling */
} synth_render_ctx;
/* hu_out: final HU (after noise, clamp, padding mapped through the rescale). */
dx_status synth_render_slice(const synth_render_ctx *ctx, int k, int16_t *hu_out, dx_err *err);
/* Tissue labels of slice k at the slice centre (pixel centres), [ny][nx]. */
void synth_render_labels(const synth_render_ctx *ctx, int k, uint8_t *lab);
/* 1 if pixel (i, j) lies outside the reconstruction circle (gets the padding value). */
int synth_outside_fov(const synth_scan *s, int i, int j);

/* DICOM Part-10 writer for one CT slice. stored: [ny][nx] stored values. */
dx_status synth_dicom_write(const char *path, const synth_scan *s, int k, const int16_t *stored,
                            int explicit_vr, dx_err *err);

/* Readers: simulation + LIDC XML. */
typedef struct synth_reader_mark {
    int marked;                   /* 0 = missed */
    int as_small;                 /* marked as <3 mm (single point) */
    int chars[9];                 /* LIDC order: subtlety .. malignancy */
    double bias_mm;               /* contour offset */
    double harm[3][2];            /* contour angular noise (mm) */
} synth_reader_mark;
typedef struct synth_reading {
    int n_readers;
    char reader_id[SYNTH_MAX_READERS][16];
    synth_reader_mark mark[SYNTH_MAX_READERS][SYNTH_MAX_LESIONS];
    /* false-positive non-nodule marks on vessels: reader, point (mm) */
    int n_fp;
    int fp_reader[8];
    double fp_pt[8][3];
} synth_reading;
void synth_readers_draw(synth_reading *rd, const synth_lesions *ls, const synth_anatomy *an,
                        uint64_t seed, int patient);
/* Writes NNN.xml for the series. */
dx_status synth_xml_write(const char *path, const synth_scan *s, const synth_anatomy *an,
                          const synth_lesions *ls, const synth_mask *masks, const synth_reading *rd,
                          uint64_t seed, dx_err *err);
/* Moore-neighbour trace of the outer boundary of a binary image (the chain of
 * pixels just outside the region, 8-connected, closed: first point repeated).
 * img: [h][w] 0/1, must have a 2-pixel zero border. Returns the number of
 * points written to xs/ys (cap maxpts). */
int synth_trace_outer(const uint8_t *img, int w, int h, int sx, int sy, int *xs, int *ys, int maxpts);

/* Ground-truth sidecar. */
dx_status synth_truth_write(const char *gt_dir, const synth_scan *s, const synth_lesions *ls,
                            const synth_mask *masks, const synth_reading *rd, const char *series_rel,
                            const uint32_t *slice_crc, FILE *csv, dx_err *err);

/* Small helpers. */
static inline double synth_clamp(double v, double lo, double hi) { return v < lo ? lo : v > hi ? hi : v; }

#endif /* DX_SYNTH_INTERNAL_H */
