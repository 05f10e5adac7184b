/* cmd_batches.c - `dinox batches`: the training batches of a config as .npy. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli/cli.h"
#include "train/batch_dump.h"

static void batches_usage(FILE *f) {
    fprintf(f,
            "usage: dinox batches -c CONFIG --store STORE --out DIR [--first N] [--steps N] [key=value ...]\n"
            "\n"
            "Writes the batches `dinox train` would train on at steps FIRST .. FIRST+STEPS-1 (same\n"
            "loader streams and iBOT masks): DIR/step_NNNNNNN_{global,local,masks}.npy, crop-major.\n"
            "For looking at a config's augmentations and for running another implementation on\n"
            "identical data (docs/objective.md).\n");
}

int cmd_batches(int argc, char **argv) {
    const char *config = NULL, *store = NULL, *out = NULL;
    long long first = 0, steps = 1;
    enum { O_STORE = 1000, O_OUT, O_FIRST, O_STEPS, O_HELP };
    static const struct option opts[] = {{"config", required_argument, 0, 'c'}, {"store", required_argument, 0, O_STORE},
                                         {"out", required_argument, 0, O_OUT},    {"first", required_argument, 0, O_FIRST},
                                         {"steps", required_argument, 0, O_STEPS}, {"help", no_argument, 0, O_HELP},
                                         {0, 0, 0, 0}};
    optind = 1;
    for (int c; (c = getopt_long(argc, argv, "+c:h", opts, NULL)) != -1;) {
        char *end = NULL;
        switch (c) {
        case 'c': config = optarg; break;
        case O_STORE: store = optarg; break;
        case O_OUT: out = optarg; break;
        case O_FIRST:
        case O_STEPS: {
            long long v = strtoll(optarg, &end, 10);
            if (!*optarg || *end || v < (c == O_FIRST ? 0 : 1)) {
                fprintf(stderr, "dinox batches: --%s needs an integer >= %d, got '%s'\n",
                        c == O_FIRST ? "first" : "steps", c == O_FIRST ? 0 : 1, optarg);
                return 2;
            }
            if (c == O_FIRST) first = v; else steps = v;
            break;
        }
        case 'h': case O_HELP: batches_usage(stdout); return 0;
        default: batches_usage(stderr); return 2;
        }
    }
    if (!config || !store || !out) {
        fprintf(stderr, "dinox batches: missing %s\n", !config ? "-c CONFIG" : !store ? "--store STORE" : "--out DIR");
        batches_usage(stderr);
        return 2;
    }
    dx_err err = {0};
    if (dx_train_dump_batches(config, (const char *const *)(argv + optind), argc - optind, store, out, first, steps,
                              &err)) {
        fprintf(stderr, "dinox batches: %s\n", err.msg);
        return 1;
    }
    printf("dinox batches: steps %lld..%lld written to %s\n", first, first + steps - 1, out);
    return 0;
}
