/* main.c - `dinox <subcommand>`: dispatch to src/cli/cmd_*.c.
 *
 * Commands are weak references: a build lists exactly the subcommands whose
 * implementation it contains. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "core/dx_log.h"

#pragma weak cmd_embed
#pragma weak cmd_synth
#pragma weak cmd_ingest
#pragma weak cmd_store
#pragma weak cmd_train
#pragma weak cmd_export
#pragma weak cmd_plan
#pragma weak cmd_eval
#pragma weak cmd_report
#pragma weak cmd_demo
#pragma weak cmd_info
#pragma weak cmd_batches
#pragma weak cmd_doctor
#pragma weak cmd_config

typedef struct {
    const char *name;
    int (*fn)(int, char **);
    const char *summary;
} command;

static const command *commands(int *n) {
    static command table[] = {
        {"demo", NULL, "run the whole pipeline on a small synthetic default"},
        {"synth", NULL, "write a synthetic LIDC-like DICOM + XML tree"},
        {"ingest", NULL, "DICOM/NIfTI + LIDC XML -> volume store"},
        {"store", NULL, "list or export the volumes of a store"},
        {"train", NULL, "DINOv3 self-supervised pre-training"},
        {"export", NULL, "write a run's teacher backbone as safetensors"},
        {"plan", NULL, "memory / FLOP / time plan for a config"},
        {"embed", NULL, "run a backbone on a .npy batch, write its tokens"},
        {"eval", NULL, "frozen-feature probe, segmentation, attention, collapse"},
        {"report", NULL, "HTML report of a run"},
        {"info", NULL, "build, backend and CPU information"},
        {"version", NULL, "version, git commit, build and backends (also --version)"},
        {"batches", NULL, "write a config's training batches as .npy"},
        {"doctor", NULL, "can this machine run dinox: CPU, GPUs, libraries, environment"},
        {"config", NULL, "import a facebookresearch/dinov3 training YAML as a dinox config"},
    };
    table[0].fn = cmd_demo;
    table[1].fn = cmd_synth;
    table[2].fn = cmd_ingest;
    table[3].fn = cmd_store;
    table[4].fn = cmd_train;
    table[5].fn = cmd_export;
    table[6].fn = cmd_plan;
    table[7].fn = cmd_embed;
    table[8].fn = cmd_eval;
    table[9].fn = cmd_report;
    table[10].fn = cmd_info;
    table[11].fn = cmd_info;
    table[12].fn = cmd_batches;
    table[13].fn = cmd_doctor;
    table[14].fn = cmd_config;
    *n = (int)(sizeof table / sizeof table[0]);
    return table;
}

static void usage(FILE *f) {
    int n;
    const command *c = commands(&n);
    fprintf(f, "usage: dinox <command> [options]   (dinox <command> --help for details)\n\ncommands:\n");
    for (int i = 0; i < n; i++)
        if (c[i].fn) fprintf(f, "  %-8s %s\n", c[i].name, c[i].summary);
}

int cli_wants_help(int argc, char **argv) {
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) return 1;
    return 0;
}

/* OpenMP threads that spin while waiting steal the cores the loader threads
 * (and anything else on the machine) need: on 2 busy cores a training step ran
 * 7x slower with libgomp's default active waiting. The runtime reads the policy
 * once at start-up, so unless the user chose one, re-exec with PASSIVE. */
static void default_omp_wait_policy(char **argv) {
    if (getenv("OMP_WAIT_POLICY")) return;
    setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
    execv("/proc/self/exe", argv);
    /* exec failed: carry on with the default policy */
}

int main(int argc, char **argv) {
    default_omp_wait_policy(argv);
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-V")) {
        static char version[] = "version";
        argv[1] = version;
        if (cmd_info) return cmd_info(argc - 1, argv + 1);
    }
    int n;
    const command *c = commands(&n);
    for (int i = 0; i < n; i++)
        if (c[i].fn && !strcmp(argv[1], c[i].name)) return c[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "dinox: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
