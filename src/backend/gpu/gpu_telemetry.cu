/* gpu_telemetry.cu - temperature and compute clock of the backend's GPU for
 * the run-health metrics (thermal throttling over a long run shows as a
 * falling clock at a high temperature).
 *
 * NVIDIA: NVML, opened with dlopen at run time (libnvidia-ml.so.1 comes with
 * the driver, not the toolkit, so the build needs neither its header nor its
 * library, and a machine without it just reports -1). The device is found by
 * its PCI bus id, which stays right under CUDA_VISIBLE_DEVICES renumbering.
 * AMD: the amdgpu driver's hwmon files of the same PCI device (edge
 * temperature, shader clock), read through core/dx_sensors. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/gpu/gpu_common.cuh"

extern "C" {
#include "core/dx_sensors.h"
}

#if defined(DX_GPU_HIP)

void gpu_telemetry_open(gpu_state *st) { st->telemetry = NULL; }
void gpu_telemetry_read(gpu_state *st, double *temp_c, double *clock_mhz) {
    char bus[32];
    /* sysfs spells the domain in lower case hex, as the runtime does */
    snprintf(bus, sizeof bus, "%s", st->pci_bus_id);
    for (char *c = bus; *c; c++)
        if (*c >= 'A' && *c <= 'F') *c = (char)(*c - 'A' + 'a');
    dx_sensor_pci_gpu(bus, temp_c, clock_mhz);
}
void gpu_telemetry_close(gpu_state *st) { st->telemetry = NULL; }

#else

/* the few NVML entry points used, with their documented C signatures */
typedef int (*nvml_init_fn)(void);
typedef int (*nvml_by_pci_fn)(const char *bus_id, void **device);
typedef int (*nvml_temp_fn)(void *device, int sensor, unsigned *temp);
typedef int (*nvml_clock_fn)(void *device, int type, unsigned *mhz);
#define NVML_SUCCESS 0
#define NVML_TEMPERATURE_GPU 0
#define NVML_CLOCK_SM 1

typedef struct {
    void *lib, *device;
    nvml_temp_fn temp;
    nvml_clock_fn clock;
} nvml_handle;

void gpu_telemetry_open(gpu_state *st) {
    st->telemetry = NULL;
    if (!st->pci_bus_id[0]) return;
    void *lib = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!lib) return;
    nvml_init_fn init = (nvml_init_fn)dlsym(lib, "nvmlInit_v2");
    nvml_by_pci_fn by_pci = (nvml_by_pci_fn)dlsym(lib, "nvmlDeviceGetHandleByPciBusId_v2");
    nvml_handle *h = (nvml_handle *)calloc(1, sizeof *h);
    if (!h || !init || !by_pci || init() != NVML_SUCCESS || by_pci(st->pci_bus_id, &h->device) != NVML_SUCCESS) {
        free(h);
        dlclose(lib);
        return;
    }
    h->lib = lib;
    h->temp = (nvml_temp_fn)dlsym(lib, "nvmlDeviceGetTemperature");
    h->clock = (nvml_clock_fn)dlsym(lib, "nvmlDeviceGetClockInfo");
    st->telemetry = h;
}

void gpu_telemetry_read(gpu_state *st, double *temp_c, double *clock_mhz) {
    *temp_c = *clock_mhz = -1;
    nvml_handle *h = (nvml_handle *)st->telemetry;
    if (!h) return;
    unsigned v = 0;
    if (h->temp && h->temp(h->device, NVML_TEMPERATURE_GPU, &v) == NVML_SUCCESS) *temp_c = v;
    if (h->clock && h->clock(h->device, NVML_CLOCK_SM, &v) == NVML_SUCCESS) *clock_mhz = v;
}

void gpu_telemetry_close(gpu_state *st) {
    nvml_handle *h = (nvml_handle *)st->telemetry;
    if (!h) return;
    typedef int (*nvml_shutdown_fn)(void);
    nvml_shutdown_fn down = (nvml_shutdown_fn)dlsym(h->lib, "nvmlShutdown");
    if (down) down();
    dlclose(h->lib);
    free(h);
    st->telemetry = NULL;
}

#endif
