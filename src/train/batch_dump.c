/* batch_dump.c - see batch_dump.h. */
#include "train/batch_dump.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/dx_file.h"
#include "data/loader.h"
#include "data/masking.h"
#include "data/store_source.h"
#include "io/dx_npy.h"
#include "io/store.h"
#include "train/config.h"

dx_status dx_train_dump_batches(const char *config_path, const char *const *overrides, int n_overrides,
                                const char *store_dir, const char *out_dir, int64_t first, int64_t count,
                                dx_err *err) {
    dx_config cfg;
    dx_status st;
    if ((st = dx_config_resolve(&cfg, config_path, overrides, n_overrides, err))) return st;
    if (first < 0 || count < 1) return dx_fail(err, DX_EINVAL, "batches: need first >= 0 and count >= 1");
    if ((st = dx_mkdirs(out_dir, err))) return st;
    dx_store store;
    if ((st = dx_store_open(&store, store_dir, err))) return st;
    dx_slice_source src;
    dx_store_source_init(&src, &store);
    dx_loader_opts lo;
    dx_config_loader_opts(&cfg, 0, &lo);
    dx_loader *loader = NULL;
    dx_focus_point *focus = NULL;
    st = dx_store_focus_attach(&store, &lo, &focus, err);
    if (!st) st = dx_loader_create(&loader, &src, &lo, err);
    free(focus);
    if (st) goto out;
    const int B = cfg.train.batch_size, G = 2 * B, L = cfg.crops.local_count;
    const int S = cfg.crops.global_size, s = cfg.crops.local_size, Hp = S / cfg.model.patch;
    char path[1200];
    double mprob;
    float mrmin, mrmax;
    dx_config_mask_rule(&cfg, &mprob, &mrmin, &mrmax);
    for (int64_t step = first; step < first + count; step++) {
        const dx_batch *b;
        if ((st = dx_loader_get(loader, step, &b, err))) goto out;
        dx_ibot_masks m; /* the trainer's rule */
        if ((st = dx_ibot_masks_make(&m, G, Hp, Hp, mprob, mrmin, mrmax, (uint64_t)cfg.train.seed,
                                     (uint64_t)step, err)))
            goto out;
        int64_t gs[4] = {G, 3, S, S}, ls[4] = {(int64_t)L * B, 3, s, s}, ms[2] = {G, (int64_t)Hp * Hp};
        snprintf(path, sizeof path, "%s/step_%07lld_global.npy", out_dir, (long long)step);
        st = dx_npy_write(path, "<f4", b->global, gs, 4, err);
        if (!st && L) {
            snprintf(path, sizeof path, "%s/step_%07lld_local.npy", out_dir, (long long)step);
            st = dx_npy_write(path, "<f4", b->local, ls, 4, err);
        }
        if (!st) {
            snprintf(path, sizeof path, "%s/step_%07lld_masks.npy", out_dir, (long long)step);
            st = dx_npy_write(path, "|u1", m.mask, ms, 2, err);
        }
        dx_ibot_masks_free(&m);
        if (st) goto out;
    }
out:
    if (loader) dx_loader_free(loader);
    dx_store_close(&store);
    return st;
}
