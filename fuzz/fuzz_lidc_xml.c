/* fuzz_lidc_xml.c - libFuzzer target: LIDC XML parser, and for documents that
 * parse, ROI mapping + rasterisation + clustering + consensus on a small fixed
 * geometry (64x64x8, the fixture series of tests/data/lidc). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/lidc.h"
#include "io/lidc_nodules.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    dx_lidc_read r;
    dx_err err;
    if (dx_lidc_parse_memory(&r, (const char *)data, size, &err) != DX_OK) return 0;
    static char sops[8][DX_UID_MAX];
    static double zs[8];
    dx_volume v;
    memset(&v, 0, sizeof v);
    v.nx = 64, v.ny = 64, v.nz = 8;
    v.spacing[0] = v.spacing[1] = 0.7, v.spacing[2] = 2.5;
    v.origin[2] = -110;
    v.direction[0] = v.direction[4] = v.direction[8] = 1;
    for (int k = 0; k < 8; k++) {
        snprintf(sops[k], DX_UID_MAX, "1.2.826.0.1.3680043.2.1125.9.4.%d", 40 + k);
        zs[k] = -110 + 2.5 * k;
    }
    v.sop_uids = sops;
    v.slice_z = zs;
    uint8_t *labels = malloc(64 * 64 * 8);
    dx_lidc_cluster_opts o;
    dx_lidc_cluster_opts_default(&o);
    dx_nodule_info *rows = NULL;
    int nrows = 0;
    if (dx_lidc_nodules_build(&r, &v, &o, labels, &rows, &nrows, NULL, NULL, &err) == DX_OK) {
        for (int i = 0; i < nrows; i++)
            if (rows[i].kind == DX_NOD_NODULE && (rows[i].label < 1 || rows[i].n_readers < 1)) __builtin_trap();
        free(rows);
    }
    free(labels);
    dx_lidc_read copy;
    memset(&copy, 0, sizeof copy);
    memcpy(copy.series_uid, r.series_uid, sizeof copy.series_uid);
    dx_lidc_merge(&copy, &r, NULL, &err); /* moves r's sessions */
    dx_lidc_read_free(&copy);
    dx_lidc_read_free(&r);
    return 0;
}
