/* cmd_synth.c - `dinox synth`: write a synthetic LIDC-like DICOM + XML tree
 * (see docs/synth.md and src/synth/synth.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "core/dx_log.h"
#include "synth/synth.h"

static void synth_usage(FILE *f) {
    fprintf(f,
            "usage: dinox synth --out DIR --patients N --seed S [options]\n\n"
            "Writes N synthetic chest CT series as a LIDC-IDRI-like tree:\n"
            "  DIR/LIDC-IDRI-NNNN/<study>/<series>/1-NNN.dcm + NNN.xml (LIDC reader XML)\n"
            "  DIR/ground_truth/  (true masks, centroids, latent malignancy; not for training)\n\n"
            "options:\n"
            "  --out DIR          output directory (created; an existing one must be empty)\n"
            "  --force            write into a non-empty DIR anyway (patients already there get\n"
            "                     a second study; ground_truth/lesions.csv is replaced)\n"
            "  --patients N       number of patients (1..9999)\n"
            "  --seed S           seed; same seed -> byte-identical output\n"
            "  --first N          number of the first patient (default 1)\n"
            "  --size 512|256|128 matrix size (default 512)\n"
            "  --explicit-vr      Explicit VR Little Endian dataset (default Implicit VR LE)\n"
            "  --slices-max K     cap on slices per series (default 96 at 512, 80 at 256, 40 at 128)\n"
            "  --threads T        OpenMP threads (default: runtime default)\n"
            "  --gt-volume        also write ground_truth/<patient>/hu.npy (int16 HU, z,y,x)\n"
            "                     and labels.npy (uint8 tissue labels, see docs/synth.md)\n"
            "  -v, --verbose      log each patient\n");
}

static int parse_int(const char *s, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || end == s || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

int cmd_synth(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        synth_usage(stdout);
        return 0;
    }
    dx_synth_config cfg = {0};
    cfg.size = 512;
    cfg.first_patient = 1;
    int have_seed = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        long n;
        if (!strcmp(a, "--explicit-vr")) { cfg.explicit_vr = 1; continue; }
        if (!strcmp(a, "--gt-volume")) { cfg.gt_volume = 1; continue; }
        if (!strcmp(a, "--force")) { cfg.force = 1; continue; }
        if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) { dx_log_set_level(DX_LOG_INFO); continue; }
        if (!v) {
            fprintf(stderr, "dinox synth: unknown option or missing value: %s\n", a);
            synth_usage(stderr);
            return 2;
        }
        i++;
        if (!strcmp(a, "--out")) cfg.out_dir = v;
        else if (!strcmp(a, "--patients") && !parse_int(v, 1, 9999, &n)) cfg.n_patients = (int)n;
        else if (!strcmp(a, "--first") && !parse_int(v, 1, 9999, &n)) cfg.first_patient = (int)n;
        else if (!strcmp(a, "--size") && !parse_int(v, 1, 4096, &n)) cfg.size = (int)n;
        else if (!strcmp(a, "--slices-max") && !parse_int(v, 1, 100000, &n)) cfg.slices_max = (int)n;
        else if (!strcmp(a, "--threads") && !parse_int(v, 1, 1024, &n)) cfg.threads = (int)n;
        else if (!strcmp(a, "--seed")) {
            char *end;
            errno = 0;
            unsigned long long s = strtoull(v, &end, 10);
            if (errno || *end || end == v || v[0] == '-') {
                fprintf(stderr, "dinox synth: bad --seed '%s'\n", v);
                return 2;
            }
            cfg.seed = s;
            have_seed = 1;
        } else {
            fprintf(stderr, "dinox synth: bad option or value: %s %s\n", a, v);
            synth_usage(stderr);
            return 2;
        }
    }
    if (!cfg.out_dir || !cfg.n_patients || !have_seed) {
        fprintf(stderr, "dinox synth: --out, --patients and --seed are required\n");
        synth_usage(stderr);
        return 2;
    }
    dx_err err = {0};
    if (dx_synth_run(&cfg, &err) != DX_OK) {
        fprintf(stderr, "dinox synth: %s\n", err.msg);
        return 1;
    }
    return 0;
}
