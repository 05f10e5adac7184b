/* checked.h - the device contract, enforced: a decorator over any backend
 * that records every allocation made through ops->alloc and verifies, on
 * every op call, that each tensor argument points into one of them (host
 * memory, a freed buffer or host_alloc staging memory is a violation). A
 * violation is a programming error, not bad input: it prints the op and the
 * argument and aborts, so a test run finds it at its source.
 *
 * dx_backend_create wraps every backend it creates when the environment has
 * DINOX_CHECK_DEVICE_POINTERS=1 (CTest sets it for the whole suite). */
#ifndef DX_CHECKED_H
#define DX_CHECKED_H

#include "backend/dx_backend.h"

/* Replaces *be with a checking backend that owns the original. */
dx_status dx_backend_checked_wrap(dx_backend **be, dx_err *err);
/* 1 when DINOX_CHECK_DEVICE_POINTERS=1 */
int dx_backend_checking_requested(void);

#endif /* DX_CHECKED_H */
