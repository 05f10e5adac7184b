/* dx_sensors.c - see dx_sensors.h. Plain sysfs reads: no library exposes
 * these on every machine, and the files are the kernel's stable ABI. */
#include "core/dx_sensors.h"

#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static double read_number(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    double v;
    int ok = fscanf(f, "%lf", &v) == 1;
    fclose(f);
    return ok ? v : -1;
}

/* temp1_input (millidegrees) of the first hwmon under `dir` whose name is in names[] (NULL: any) */
static double hwmon_temp(const char *dir, const char *const *names) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    double t = -1;
    struct dirent *e;
    while (t < 0 && (e = readdir(d))) {
        if (strncmp(e->d_name, "hwmon", 5)) continue;
        char path[512], name[64] = "";
        snprintf(path, sizeof path, "%s/%s/name", dir, e->d_name);
        FILE *f = fopen(path, "r");
        if (f) {
            if (!fgets(name, sizeof name, f)) name[0] = 0;
            fclose(f);
        }
        name[strcspn(name, "\n")] = 0;
        int match = names == NULL;
        for (int i = 0; names && names[i] && !match; i++) match = !strcmp(name, names[i]);
        if (!match) continue;
        snprintf(path, sizeof path, "%s/%s/temp1_input", dir, e->d_name);
        double v = read_number(path);
        if (v >= 0) t = v / 1000.0;
    }
    closedir(d);
    return t;
}

double dx_sensor_cpu_temp_c(void) {
    static const char *const names[] = {"k10temp", "zenpower", "coretemp", NULL};
    return hwmon_temp("/sys/class/hwmon", names);
}

double dx_sensor_cpu_mhz(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    double sum = 0;
    int got = 0;
    for (long i = 0; i < n && i < 1024; i++) {
        char path[128];
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu%ld/cpufreq/scaling_cur_freq", i);
        double khz = read_number(path);
        if (khz > 0) sum += khz / 1000.0, got++;
    }
    return got ? sum / got : -1;
}

void dx_sensor_pci_gpu(const char *pci_bus_id, double *temp_c, double *mhz) {
    if (temp_c) *temp_c = -1;
    if (mhz) *mhz = -1;
    if (!pci_bus_id || !pci_bus_id[0]) return;
    char dir[256];
    snprintf(dir, sizeof dir, "/sys/bus/pci/devices/%s/hwmon", pci_bus_id);
    if (temp_c) *temp_c = hwmon_temp(dir, NULL);
    if (mhz) {
        DIR *d = opendir(dir);
        struct dirent *e;
        while (d && *mhz < 0 && (e = readdir(d))) {
            if (strncmp(e->d_name, "hwmon", 5)) continue;
            char path[512];
            snprintf(path, sizeof path, "%s/%s/freq1_input", dir, e->d_name); /* amdgpu sclk, Hz */
            double hz = read_number(path);
            if (hz > 0) *mhz = hz / 1e6;
        }
        if (d) closedir(d);
    }
}
