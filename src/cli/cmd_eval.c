/* cmd_eval.c - `dinox eval`: frozen-feature evaluation of a backbone on a
 * volume store (malignancy probe + baselines, k-NN, segmentation head,
 * attention maps, collapse diagnostics; optionally over all checkpoints of a
 * run). The work is dx_eval_job_run (src/eval/eval_job.c: configuration,
 * weights, backend, store) on top of src/eval/eval_run.c; this file parses
 * options into a dx_eval_job. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "core/dx_log.h"
#include "eval/eval_job.h"
#include "eval/peer_io.h"

static void eval_usage(FILE *f) {
    fprintf(f,
            "usage: dinox eval --store STORE (--weights W.safetensors | --run RUN_DIR) --out DIR [options]\n"
            "\n"
            "Frozen-feature evaluation. Writes DIR/eval.json (probe.test_auc, probe.test_auc_ci,\n"
            "baselines.size_only_auc, baselines.random_init_auc, knn.test_accuracy, seg.test_dice,\n"
            "seg.test_iou, collapse.patch_cosine, collapse.effective_rank, ...), DIR/split.json\n"
            "(the patient-level split) and DIR/attention/att_<i>.png. See docs/eval.md.\n"
            "\n"
            "backbone:\n"
            "  --weights W        safetensors backbone (DINOv3 names, e.g. from `dinox export`)\n"
            "  --prefix P         name prefix of the tensors in W (default none)\n"
            "  --run RUN_DIR      model.* keys from RUN_DIR/config.yaml; weights from\n"
            "                     RUN_DIR/backbone.safetensors if present, else the EMA teacher of the\n"
            "                     newest valid checkpoint (RUN_DIR/checkpoints); --weights overrides\n"
            "  --checkpoint FILE  a given checkpoint file (teacher backbone)\n"
            "  --config YAML      model.* / data.* keys from a training config (without --run)\n"
            "  (no config: shape and preprocessing from W's metadata when it has them, e.g. from `dinox export`)\n"
            "  --arch NAME        vit_tiny | vit_small | ... (default vit_small) when neither gives one;\n"
            "  --patch P --registers R --dim D --depth L --heads H   override the shape\n"
            "  --layer L          features after block L (1 .. depth) instead of the last, the final\n"
            "                     norm kept: every measure (and the random-init baseline) at that depth\n"
            "  --also W2          evaluate another backbone file of the same shape beside it (repeatable, 4)\n"
            "  --no-random-baseline  skip the random-init backbone baseline\n"
            "  --random-seed S    seed of the random-init baseline weights (12345)\n"
            "  --track            (with --run) diagnostics + probe over every checkpoint ->\n"
            "                     DIR/collapse_track.json (in addition to the main evaluation)\n"
            "  --track-only       only the checkpoint track\n"
            "\n"
            "data and protocol:\n"
            "  --size S           crop side in pixels fed to the model (96; multiple of the patch)\n"
            "  --crop-min-mm M    minimum crop side in mm (32); side = max(M, mult x diameter)\n"
            "  --crop-mult K      crop side as a multiple of the nodule diameter (2)\n"
            "  --window W,L       fixed window width,level in HU (1500,-600: lung)\n"
            "  --no-25d           centre slice in all three channels (default: z-1, z, z+1 or data.stack25d)\n"
            "  --min-readers N    nodules rated by fewer readers get no label (3)\n"
            "  --benign-below B   median malignancy < B is benign (3)\n"
            "  --malignant-above M  median malignancy > M is malignant (3); in between: excluded\n"
            "  --val F --test F   patient fractions of the split (0.2, 0.2)\n"
            "  --folds K          probes by K-fold cross-validation over patients, 3 .. 20 (default off):\n"
            "                     every labelled nodule scored out of fold, so AUCs and paired CIs use all\n"
            "                     of them instead of the test fifth; k-NN, segmentation, attention keep the split\n"
            "  --seed N           split / bootstrap seed (0)\n"
            "  --boot N           bootstrap replicates, 100 .. 1000000 (1000)\n"
            "  --knn-k K          k of the cosine k-NN (20)\n"
            "  --seg-steps N      Adam steps of the segmentation head (300); --seg-lr LR (0.05)\n"
            "  --seg-min-mm M --seg-mult K  segmentation crops: side = max(M, K x diameter) (12, 2),\n"
            "                     so a nodule spans about half the crop (several patches)\n"
            "  --attention N      attention overlays to write (4)\n"
            "  --batch B          images per forward pass (16); --threads T CPU threads\n"
            "  --device DEV       cpu, cuda[:N] or hip[:N] (default cpu; `dinox doctor` lists them)\n"
            "  -v                 progress messages\n");
}

static int parse_window(const char *s, float *w, float *l) {
    char *end;
    *w = strtof(s, &end);
    if (*end != ',') return -1;
    *l = strtof(end + 1, &end);
    return *end || !(*w > 0) ? -1 : 0;
}

int cmd_eval(int argc, char **argv) {
    const char *selftest_in = NULL;
    int verbose = 0;
    dx_eval_job j;
    dx_eval_job_default(&j);
    dx_eval_opts *o = &j.eval;
    enum { O_STORE = 1000, O_W, O_PREFIX, O_RUN, O_CKPT, O_CONFIG, O_ARCH, O_PATCH, O_REG, O_DIM, O_DEPTH, O_LAYER, O_HEADS,
           O_ALSO, O_NORND, O_RSEED, O_TRACK, O_TRACKONLY, O_SIZE, O_CMIN, O_CMULT, O_WIN, O_NO25D, O_MINR, O_BEN,
           O_MAL, O_VAL, O_TEST, O_FOLDS, O_SEED, O_BOOT, O_KNN, O_SEGN, O_SEGLR, O_ATT, O_BATCH, O_THREADS, O_OUT,
           O_SELFTEST, O_SEGMIN, O_SEGMULT, O_HELP, O_DEVICE };
    static const struct option opts[] = {
        {"store", required_argument, 0, O_STORE}, {"weights", required_argument, 0, O_W},
        {"prefix", required_argument, 0, O_PREFIX}, {"run", required_argument, 0, O_RUN},
        {"checkpoint", required_argument, 0, O_CKPT}, {"config", required_argument, 0, O_CONFIG},
        {"arch", required_argument, 0, O_ARCH}, {"patch", required_argument, 0, O_PATCH},
        {"registers", required_argument, 0, O_REG}, {"dim", required_argument, 0, O_DIM},
        {"depth", required_argument, 0, O_DEPTH}, {"layer", required_argument, 0, O_LAYER},
        {"heads", required_argument, 0, O_HEADS},
        {"also", required_argument, 0, O_ALSO}, {"no-random-baseline", no_argument, 0, O_NORND},
        {"random-seed", required_argument, 0, O_RSEED}, {"track", no_argument, 0, O_TRACK},
        {"track-only", no_argument, 0, O_TRACKONLY}, {"size", required_argument, 0, O_SIZE},
        {"crop-min-mm", required_argument, 0, O_CMIN}, {"crop-mult", required_argument, 0, O_CMULT},
        {"window", required_argument, 0, O_WIN}, {"no-25d", no_argument, 0, O_NO25D},
        {"min-readers", required_argument, 0, O_MINR}, {"benign-below", required_argument, 0, O_BEN},
        {"malignant-above", required_argument, 0, O_MAL}, {"val", required_argument, 0, O_VAL},
        {"test", required_argument, 0, O_TEST}, {"folds", required_argument, 0, O_FOLDS},
        {"seed", required_argument, 0, O_SEED},
        {"boot", required_argument, 0, O_BOOT}, {"knn-k", required_argument, 0, O_KNN},
        {"seg-steps", required_argument, 0, O_SEGN}, {"seg-lr", required_argument, 0, O_SEGLR},
        {"attention", required_argument, 0, O_ATT}, {"batch", required_argument, 0, O_BATCH},
        {"threads", required_argument, 0, O_THREADS}, {"out", required_argument, 0, O_OUT},
        {"selftest", required_argument, 0, O_SELFTEST}, {"seg-min-mm", required_argument, 0, O_SEGMIN},
        {"seg-mult", required_argument, 0, O_SEGMULT}, {"help", no_argument, 0, O_HELP},
        {"device", required_argument, 0, O_DEVICE}, {0, 0, 0, 0}};
    optind = 1;
    for (int c; (c = getopt_long(argc, argv, "hv", opts, NULL)) != -1;) {
        switch (c) {
        case O_STORE: j.store_dir = optarg; break;
        case O_W: j.weights = optarg; break;
        case O_PREFIX: j.prefix = optarg; break;
        case O_RUN: j.run = optarg; break;
        case O_CKPT: j.checkpoint = optarg; break;
        case O_CONFIG: j.config = optarg; break;
        case O_ARCH: j.arch = optarg; break;
        case O_PATCH: CLI_INT("eval", j.patch, 1, 1024); break;
        case O_REG: CLI_INT("eval", j.registers, 0, 1024); break;
        case O_DIM: CLI_INT("eval", j.dim, 1, 1 << 16); break;
        case O_DEPTH: CLI_INT("eval", j.depth, 1, 1024); break;
        case O_LAYER: CLI_INT("eval", j.layer, 1, 1024); break;
        case O_HEADS: CLI_INT("eval", j.heads, 1, 1024); break;
        case O_ALSO:
            if (j.n_also == DX_EVAL_MAX_ALSO) { fprintf(stderr, "dinox eval: at most 4 --also\n"); return 2; }
            j.also[j.n_also++] = optarg;
            break;
        case O_NORND: o->random_baseline = 0; break;
        case O_RSEED: CLI_U64("eval", o->random_init_seed); break;
        case O_TRACK: j.track = 1; break;
        case O_TRACKONLY: j.track = j.track_only = 1; break;
        case O_SIZE: CLI_INT("eval", o->crop.size, 8, 4096); break;
        case O_CMIN: CLI_DOUBLE("eval", o->crop.min_side_mm, 1, 1000); break;
        case O_CMULT: CLI_DOUBLE("eval", o->crop.diam_mult, 0.1, 100); break;
        case O_WIN:
            if (parse_window(optarg, &o->crop.win_width, &o->crop.win_level)) { fprintf(stderr, "dinox eval: --window W,L\n"); return 2; }
            break;
        case O_NO25D: j.no25d = 1; break;
        case O_MINR: CLI_INT("eval", o->min_readers, 1, 100); break;
        case O_BEN: CLI_DOUBLE("eval", o->benign_below, 1, 5); break;
        case O_MAL: CLI_DOUBLE("eval", o->malignant_above, 1, 5); break;
        case O_VAL: CLI_DOUBLE("eval", o->f_val, 0, 0.9); break;
        case O_TEST: CLI_DOUBLE("eval", o->f_test, 0.01, 0.9); break;
        case O_FOLDS: CLI_INT("eval", o->folds, 3, 20); break;
        case O_SEED: CLI_U64("eval", o->seed); break;
        case O_BOOT: CLI_INT("eval", o->n_boot, 100, 1000000); break;
        case O_KNN: CLI_INT("eval", o->knn_k, 1, 10000); break;
        case O_SEGN: CLI_INT("eval", o->seg_steps, 0, 10000000); break;
        case O_SEGLR: CLI_DOUBLE("eval", o->seg_lr, 1e-12, 100); break;
        case O_ATT: CLI_INT("eval", o->n_attention, 0, 10000); break;
        case O_BATCH: CLI_INT("eval", o->batch, 1, 1 << 20); break;
        case O_THREADS: CLI_INT("eval", j.threads, 0, 4096); break;
        case O_DEVICE: j.device = optarg; break;
        case O_OUT: j.out = optarg; break;
        case O_SELFTEST: selftest_in = optarg; break;
        case O_SEGMIN: CLI_DOUBLE("eval", o->seg_min_side_mm, 1, 1000); break;
        case O_SEGMULT: CLI_DOUBLE("eval", o->seg_diam_mult, 0.1, 100); break;
        case 'v': verbose = 1; break;
        case 'h': case O_HELP: eval_usage(stdout); return 0;
        default: eval_usage(stderr); return 2;
        }
    }
    dx_log_set_level(verbose ? DX_LOG_INFO : DX_LOG_WARN);
    dx_err err = {0};
    if (selftest_in) { /* hidden: library computations on peer-written inputs (tests/test_eval_peer.sh) */
        if (!j.out) { fprintf(stderr, "dinox eval --selftest IN --out RESULTS.json\n"); return 2; }
        if (dx_eval_peer_compute(selftest_in, j.out, &err)) { fprintf(stderr, "dinox eval: %s\n", err.msg); return 1; }
        return 0;
    }
    if (!j.store_dir || !j.out || (!j.weights && !j.run && !j.checkpoint) || (j.track && !j.run)) {
        fprintf(stderr, "dinox eval: %s\n\n",
                !j.store_dir ? "missing --store STORE"
                : !j.out     ? "missing --out DIR"
                : j.track    ? "--track needs --run RUN_DIR (its checkpoints are the track)"
                           : "missing the backbone: --run RUN_DIR, --checkpoint CKPT or --weights W.safetensors");
        eval_usage(stderr);
        return 2;
    }
    int bad_option = 0;
    if (dx_eval_job_run(&j, &bad_option, &err)) {
        fprintf(stderr, "dinox eval: %s\n", err.msg);
        return bad_option ? 2 : 1;
    }
    if (!j.track_only) fprintf(stderr, "dinox eval: wrote %s/eval.json\n", j.out);
    if (j.track) fprintf(stderr, "dinox eval: wrote %s/collapse_track.json\n", j.out);
    return 0;
}
