/* cmd_doctor.c - `dinox doctor [--json]`: the platform checks (backend/doctor.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/doctor.h"
#include "cli/cli.h"
#include "core/dx_version.h"

static void doctor_usage(FILE *f) {
    fprintf(f,
            "usage: dinox doctor [--json]\n"
            "\n"
            "Checks what this machine can run dinox on: CPU, cores, OpenMP threads and wait\n"
            "policy, oneDNN and the ISA it dispatches to, memory; every compute backend (cpu,\n"
            "cuda, hip) with its devices (name, architecture, memory, unified or not, driver and\n"
            "runtime) and a verdict from a real GEMM + LayerNorm check on the device; and the\n"
            "environment variables that change what OpenMP, oneDNN, CUDA and ROCm do.\n"
            "\n"
            "  --json   one JSON object instead of text\n"
            "Exit status: 0 when the CPU backend works, 1 otherwise.\n");
}

int cmd_doctor(int argc, char **argv) {
    int json = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json")) json = 1;
        else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) { doctor_usage(stdout); return 0; }
        else {
            fprintf(stderr, "dinox doctor: unknown argument '%s'\n\n", argv[i]);
            doctor_usage(stderr);
            return 2;
        }
    }
    dx_doctor *d = calloc(1, sizeof *d);
    if (!d) { fprintf(stderr, "dinox doctor: out of memory\n"); return 1; }
    dx_doctor_run(d);
    int ok = dx_doctor_cpu_ok(d);
    if (json) {
        char *s = dx_doctor_json(d);
        if (s) printf("%s\n", s);
        free(s);
    } else {
        printf("dinox %s\n", dx_build()->version);
        dx_doctor_print(d, stdout);
        printf("\nverdict: %s\n", ok ? "dinox can run here (cpu backend usable)" : "the cpu backend does NOT work");
    }
    free(d);
    return ok ? 0 : 1;
}
