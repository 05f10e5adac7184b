/* synth.h - `dinox synth`: synthetic LIDC-like chest CT as real DICOM series
 * plus LIDC XML reader annotations, with a ground-truth sidecar.
 *
 * Output tree (see docs/synth.md):
 *   OUT/LIDC-IDRI-NNNN/<study dir>/<series dir>/1-NNN.dcm + NNN.xml
 *   OUT/ground_truth/...   (true masks, centroids, latent malignancy; never
 *                           read by training or evaluation)
 * Everything is a pure function of (seed, patient number): the same seed gives
 * byte-identical files whatever the thread count. */
#ifndef DX_SYNTH_H
#define DX_SYNTH_H

#include <stdint.h>

#include "core/dx_error.h"

typedef struct dx_synth_config {
    const char *out_dir;
    int n_patients;
    int first_patient;  /* number of the first patient (LIDC-IDRI-NNNN), >= 1 */
    uint64_t seed;
    int size;           /* rows = columns: 512, 256 or 128 */
    int explicit_vr;    /* 1: Explicit VR LE dataset; 0: Implicit VR LE (default) */
    int slices_max;     /* cap on slices per series; 0 = default for the size */
    int threads;        /* OpenMP threads, 0 = runtime default */
    int gt_volume;      /* 1: also write ground_truth/<pid>/hu.npy (int16 HU) + labels.npy (z,y,x) */
    int force;          /* 1: write into a non-empty out_dir (else refused) */
} dx_synth_config;

/* Default slice cap for a matrix size (keeps the demo sizes small). */
int dx_synth_default_slices_max(int size);

/* Writes cfg->n_patients scans under cfg->out_dir (created if missing). An
 * out_dir that already holds files is refused (DX_EINVAL) unless cfg->force:
 * writing into it would add a second study to its patients and replace
 * ground_truth/lesions.csv. */
dx_status dx_synth_run(const dx_synth_config *cfg, dx_err *err);

#endif /* DX_SYNTH_H */
