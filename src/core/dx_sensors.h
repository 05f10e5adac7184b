/* dx_sensors.h - temperatures and clocks from Linux sysfs, for the run-health
 * metrics (a 14-day run shows thermal throttling as a trend). Every reader
 * returns -1 where the machine does not expose the value. */
#ifndef DX_SENSORS_H
#define DX_SENSORS_H

/* Package temperature of the CPU (hwmon k10temp / zenpower / coretemp), deg C. */
double dx_sensor_cpu_temp_c(void);
/* Mean current clock of the online CPUs (cpufreq scaling_cur_freq), MHz. */
double dx_sensor_cpu_mhz(void);
/* An amdgpu device's edge temperature (deg C) and shader clock (MHz), from the
 * hwmon of PCI device `pci_bus_id` ("0000:c1:00.0"); either output may be NULL. */
void dx_sensor_pci_gpu(const char *pci_bus_id, double *temp_c, double *mhz);

#endif /* DX_SENSORS_H */
