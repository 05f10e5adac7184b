/* cmd_info.c - `dinox info`, `dinox version`, `dinox --version`: what this
 * binary is (version, git commit, build type, compiler) and what it computes
 * with (backends, oneDNN version and ISA, OpenMP threads, DICOM codecs).
 * `info` adds the CPU. One "key: value" per line, stable for scripts. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "backend/dx_backend_info.h"
#include "backend/registry.h"
#include "cli/cli.h"
#include "core/dx_version.h"

static void info_usage(FILE *f) {
    fprintf(f,
            "usage: dinox info | dinox version | dinox --version\n"
            "\n"
            "Prints the version, git commit, build type and options, compiler, the compute\n"
            "backends compiled in, the oneDNN version and the ISA its kernels use on this\n"
            "machine, and the OpenMP threads (OMP_NUM_THREADS). `info` adds the CPU.\n");
}

int cmd_info(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) { info_usage(stdout); return 0; }
    if (argc > 1) { info_usage(stderr); return 2; }
    const dx_build_info *b = dx_build();
    dx_backend_info be;
    dx_backend_info_get(&be);
    printf("dinox %s\n", b->version);
    printf("git commit:  %s\n", b->git_commit);
    printf("build type:  %s\n", b->build_type);
    printf("options:     %s\n", b->options);
    printf("compiler:    %s\n", b->compiler);
    printf("backends:    %s\n", be.backends);
    printf("oneDNN:      %s\n", be.onednn);
    printf("oneDNN ISA:  %s\n", be.onednn_isa);
    printf("OpenMP:      %d threads (%d processors)\n", be.omp_max_threads, be.omp_procs);
    printf("codecs:      %s\n", be.codecs);
    if (!strcmp(argv[0], "info")) {
        dx_device_info cpu;
        dx_err err = {0};
        const dx_backend_entry *e = dx_backend_find(NULL);
        if (!e || e->device_info(0, &cpu, &err)) snprintf(cpu.name, sizeof cpu.name, "unknown");
        printf("CPU:         %s, %ld online\n", cpu.name, sysconf(_SC_NPROCESSORS_ONLN));
    }
    return 0;
}
