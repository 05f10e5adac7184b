/* dx_meminfo.c - see dx_meminfo.h. */
#include "core/dx_meminfo.h"

#include <stdio.h>

void dx_meminfo(uint64_t *total, uint64_t *available) {
    uint64_t t = 0, a = 0;
    FILE *f = fopen("/proc/meminfo", "r");
    if (f) {
        char line[256];
        unsigned long long kb;
        while (fgets(line, sizeof line, f)) {
            if (sscanf(line, "MemTotal: %llu kB", &kb) == 1) t = (uint64_t)kb * 1024;
            else if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1) a = (uint64_t)kb * 1024;
        }
        fclose(f);
    }
    if (total) *total = t;
    if (available) *available = a;
}
