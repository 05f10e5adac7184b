/* batch_dump.h - the training batches of a config, as .npy files.
 *
 * Writes exactly what dx_train_run feeds dx_ssl_step at each step (the same
 * loader streams and iBOT masks), so that an independent implementation can
 * be trained beside dinox on identical data, and so that a person can look at
 * the augmentations of a config:
 *   DIR/step_NNNNNNN_global.npy  float32 [2B, 3, S, S]  crop-major (row c*B + b)
 *   DIR/step_NNNNNNN_local.npy   float32 [L*B, 3, s, s] (when L > 0)
 *   DIR/step_NNNNNNN_masks.npy   uint8   [2B, P]         1 = masked patch */
#ifndef DX_BATCH_DUMP_H
#define DX_BATCH_DUMP_H

#include <stdint.h>

#include "core/dx_error.h"

dx_status dx_train_dump_batches(const char *config_path, const char *const *overrides, int n_overrides,
                                const char *store_dir, const char *out_dir, int64_t first, int64_t count,
                                dx_err *err);

#endif /* DX_BATCH_DUMP_H */
