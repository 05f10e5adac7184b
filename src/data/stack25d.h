/* stack25d.h - the 2.5D input of the trainer: slices (z-1, z, z+1) of one
 * stored series as three channels, clamped at the ends (z = 0 repeats slice 0
 * as its lower neighbour, z = nz-1 repeats the last slice).
 *
 * Neighbours are taken at the series' native slice spacing: no resampling
 * along z yet (a configured target spacing - interpolating between stored
 * slices - is future work; dx_stack25d_spacing reports what the stack spans). */
#ifndef DX_STACK25D_H
#define DX_STACK25D_H

#include <stdint.h>

#include "core/dx_error.h"
#include "io/store.h"

/* Zero-copy: ch[0..2] = pointers to slices z-1, z, z+1 ([ny][nx] int16 HU each,
 * inside the store's mappings). DX_EINVAL if series or z is out of range. */
dx_status dx_stack25d_ptrs(const dx_store *s, int series, int z, const int16_t *ch[3], dx_err *err);

/* Copies the stack into out[3][ny][nx] (int16 HU). */
dx_status dx_stack25d_copy(const dx_store *s, int series, int z, int16_t *out, dx_err *err);

/* Distance in mm between the centre slice and its neighbours (the series'
 * z spacing: native spacing, see above). */
double dx_stack25d_spacing(const dx_store *s, int series);

#endif /* DX_STACK25D_H */
