/* dx_meminfo.h - the host's memory as /proc/meminfo states it. */
#ifndef DX_MEMINFO_H
#define DX_MEMINFO_H

#include <stdint.h>

/* MemTotal and MemAvailable in bytes (0 where unreadable); either may be NULL. */
void dx_meminfo(uint64_t *total, uint64_t *available);

#endif /* DX_MEMINFO_H */
