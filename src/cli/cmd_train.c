/* cmd_train.c - `dinox train`: DINOv3 pre-training from a volume store.
 * SIGINT / SIGTERM request a checkpoint and an exit with 128+signal (the
 * only global state is the stop flag, which lives in the CLI, not the
 * library; cli_signal.c says why no handler interrupts a step). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "core/dx_log.h"
#include "train/trainer.h"

static volatile sig_atomic_t g_stop = 0;

static void train_usage(FILE *f) {
    fprintf(f,
            "usage: dinox train -c CONFIG --store STORE --out RUN_DIR [key=value ...]\n"
            "       dinox train --resume RUN_DIR --store STORE [key=value ...]\n"
            "\n"
            "DINOv3 self-supervised pre-training (student + EMA teacher, DINO/iBOT/KoLeo/Gram losses)\n"
            "on the 2.5D slices of a volume store (`dinox ingest`). RUN_DIR receives config.yaml,\n"
            "metrics.jsonl, TensorBoard event files and checkpoints/ (atomic; resume is bit-exact).\n"
            "\n"
            "  -c, --config FILE   YAML config (configs/demo.yaml, configs/vits16_lidc.yaml, ...)\n"
            "  --store DIR         volume store\n"
            "  --out DIR           run directory (new run)\n"
            "  --resume DIR        continue a run from its latest valid checkpoint\n"
            "  --init W.safetensors  continual pre-training from a DINOv3 backbone (heads fresh)\n"
            "  --gram-init W.safetensors  Gram teacher from this backbone (e.g. the previous stage's\n"
            "                      EMA teacher from `dinox export`) instead of the student's init\n"
            "  --stop-at N         stop (with a checkpoint) when step N is reached\n"
            "  --device DEV        cpu, cuda[:N] or hip[:N]: the same as model.backend=DEV\n"
            "  --precision P       fp32 or bf16: the same as model.precision=P\n"
            "  --quiet             no progress line\n"
            "  --force             run even when the memory plan says the config does not fit\n"
            "  --schema            print every config key (markdown table, docs/config.md) and exit\n"
            "  key=value           dotted config overrides, e.g. optim.lr=2e-4 train.batch_size=32\n"
            "                      (docs/config.md lists every key)\n"
            "SIGINT/SIGTERM: checkpoint and exit.\n");
}

int cmd_train(int argc, char **argv) {
    dx_train_opts o = {0};
    const char *out = NULL, *resume = NULL, *device = NULL, *precision = NULL;
    enum { O_STORE = 1000, O_OUT, O_RESUME, O_INIT, O_STOP, O_QUIET, O_SCHEMA, O_GRAMINIT, O_HELP, O_DEVICE, O_FORCE, O_PRECISION };
    static const struct option opts[] = {
        {"config", required_argument, 0, 'c'}, {"store", required_argument, 0, O_STORE},
        {"out", required_argument, 0, O_OUT},   {"resume", required_argument, 0, O_RESUME},
        {"init", required_argument, 0, O_INIT}, {"stop-at", required_argument, 0, O_STOP},
        {"quiet", no_argument, 0, O_QUIET},     {"schema", no_argument, 0, O_SCHEMA},
        {"gram-init", required_argument, 0, O_GRAMINIT}, {"help", no_argument, 0, O_HELP},
        {"device", required_argument, 0, O_DEVICE}, {"force", no_argument, 0, O_FORCE},
        {"precision", required_argument, 0, O_PRECISION}, {0, 0, 0, 0}};
    optind = 1;
    for (int c; (c = getopt_long(argc, argv, "+c:h", opts, NULL)) != -1;) {
        switch (c) {
        case 'c': o.config_path = optarg; break;
        case O_STORE: o.store = optarg; break;
        case O_OUT: out = optarg; break;
        case O_RESUME: resume = optarg; break;
        case O_INIT: o.init_weights = optarg; break;
        case O_STOP: CLI_INT("train", o.stop_at, 1, (long long)1 << 62); break;
        case O_QUIET: o.quiet = 1; break;
        case O_GRAMINIT: o.gram_init = optarg; break;
        case O_DEVICE: device = optarg; break;
        case O_FORCE: o.force = 1; break;
        case O_PRECISION: precision = optarg; break;
        case O_SCHEMA: dx_config_write_schema_md(stdout); return 0;
        case 'h': case O_HELP: train_usage(stdout); return 0;
        default: train_usage(stderr); return 2;
        }
    }
    /* remaining arguments are key=value overrides */
    for (int i = optind; i < argc; i++)
        if (!strchr(argv[i], '=')) {
            fprintf(stderr, "dinox train: '%s' is not a key=value override\n", argv[i]);
            return 2;
        }
    /* --device / --precision are model.backend= / model.precision= overrides, last so
     * they win, and recorded with the run */
    static const char *const keys[2] = {"model.backend", "model.precision"};
    const char *vals[2] = {device, precision};
    static char kv[2][96];
    const char **ov = calloc((size_t)(argc - optind) + 2, sizeof *ov);
    if (!ov) { fprintf(stderr, "dinox train: out of memory\n"); return 1; }
    for (int i = optind; i < argc; i++) ov[i - optind] = argv[i];
    o.n_overrides = argc - optind;
    for (int k = 0; k < 2; k++)
        if (vals[k]) {
            snprintf(kv[k], sizeof kv[k], "%s=%s", keys[k], vals[k]);
            ov[o.n_overrides++] = kv[k];
        }
    o.overrides = ov;
    const char *problem = !o.store              ? "missing --store STORE"
                          : !out && !resume       ? "missing --out RUN_DIR (a new run) or --resume RUN_DIR"
                          : out && resume         ? "--out and --resume exclude each other"
                          : !resume && !o.config_path ? "missing -c CONFIG"
                          : resume && o.config_path
                              ? "--resume continues RUN_DIR/config.yaml; -c is not used with it (give changes as "
                                "key=value overrides: they are applied and recorded in RUN_DIR/config.resume.yaml)"
                              : NULL;
    if (problem) {
        fprintf(stderr, "dinox train: %s\n\n", problem);
        train_usage(stderr);
        free(ov);
        return 2;
    }
    o.run_dir = resume ? resume : out;
    o.resume = resume != NULL;
    o.stop = &g_stop;
    if (cli_stop_signals_start(&g_stop) != 0) {
        fprintf(stderr, "dinox train: cannot set up the SIGINT/SIGTERM stop thread\n");
        free(ov);
        return 1;
    }
    dx_err err = {0};
    dx_train_result r;
    dx_status st = dx_train_run(&o, &r, &err);
    free(ov);
    if (st) {
        if (r.world > 1)
            fprintf(stderr, "dinox train (rank %d of %d): %s\n", r.rank, r.world, err.msg);
        else
            fprintf(stderr, "dinox train: %s\n", err.msg);
        return 1;
    }
    if (r.rank == 0)
        fprintf(stderr, "dinox train: %lld steps, last loss %.4f, %lld non-finite steps skipped, %lld rollbacks%s\n",
            (long long)r.steps_done, r.final_loss, (long long)r.nonfinite_steps, (long long)r.rollbacks,
            r.stopped_early ? " (stopped by signal, checkpoint written)" : "");
    if (r.collapse_alarm && r.rank == 0)
        fprintf(stderr, "dinox train: WARNING: the collapse alarm fired at step %lld (the DINO targets were uniform: "
                        "the run did not learn the objective)\n", (long long)r.collapse_step);
    /* stopped by a signal: exit as the signal would have (128+n), as tools do, so that a
     * scheduler or script sees that the run did not finish - but after the checkpoint */
    if (r.stopped_early) return 128 + (cli_stop_signal_received() ? cli_stop_signal_received() : SIGTERM);
    return 0;
}
