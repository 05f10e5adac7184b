/* cmd_plan.c - `dinox plan`: memory, FLOPs and time of a training config. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "train/plan.h"

static void plan_usage(FILE *f) {
    fprintf(f,
            "usage: dinox plan -c CONFIG [--device cpu|strix-halo|rtx-4090|a100|h100|h200] [key=value ...]\n"
            "       dinox plan -c CONFIG --mem-gb M --tflops F [--bw-gbs B] [--efficiency E]\n"
            "       dinox plan -c CONFIG --device D --stage 'NAME:key=value ...' [--stage ...] [--days N]\n"
            "       dinox plan -c CONFIG --device D --ranks N   (data parallel: one rank's plan + scaling)\n"
            "\n"
            "Prints parameter / gradient / optimizer / teacher memory, activation memory per image,\n"
            "the predicted peak, the largest batch that fits the device, FLOPs per image (all crops,\n"
            "student forward+backward, EMA and Gram teachers, heads) and the estimated time per\n"
            "epoch and for the whole run. 'cpu' measures this machine's GEMM peak first.\n"
            "Memory is modelled as the fp32 allocations the current backends make.\n"
            "--stage: plan a pre-training in stages (e.g. DINOv3's long 224 px stage, then a short\n"
            "512 px stage with Gram anchoring): each stage is the config with the common key=value\n"
            "overrides and then its own; one line per stage (crops, batch, steps, FLOPs, peak memory,\n"
            "days) and the total against --days (default 14), naming the stage to shorten.\n"
            "--ranks N: the plan of one of N data-parallel ranks (train.batch_size is the global batch,\n"
            "each rank takes batch/N), the gradient bytes all-reduced per step and, for common links\n"
            "between machines (1/10/25 GbE, InfiniBand, NVLink), the all-reduce time and the scaling\n"
            "efficiency (docs/distributed.md).\n"
            "Exit status: 0 the config fits, 3 it does not (the batch is above the largest that fits),\n"
            "1 an error, 2 a usage error.\n");
}

static void gb(const char *what, double bytes) { printf("  %-34s %10.3f GB\n", what, bytes / 1e9); }

/* What the x efficiency factor stands for, printed under every time estimate. */
static void explain_efficiency(const dx_device *d) {
    printf("time model: step = FLOPs / (%.1f TFLOPS peak x %.2f efficiency), at least the time to stream the\n"
           "  training state through memory 8 times (AdamW, EMA, gradients). The efficiency is the fraction of\n"
           "  the dense matmul peak a whole DINOv3 step reaches: attention, norms, element-wise ops, the losses,\n"
           "  the optimizer and data movement run below it. cpu: 0.6 is measured (dinox runs its ViT-S step at\n"
           "  0.65-0.77 of its own GEMM peak, docs/performance.md); GPUs: 0.45 is an assumption (bf16 peak,\n"
           "  large-model training commonly reaches 40-50%%) until the GPU backend measures it. --efficiency E\n"
           "  overrides it.\n",
           d->flops / 1e12, d->efficiency);
}

static void hms(char *b, size_t n, double s) {
    long t = (long)(s + 0.5);
    if (t >= 86400) snprintf(b, n, "%ldd %02ldh%02ldm", t / 86400, t % 86400 / 3600, t % 3600 / 60);
    else snprintf(b, n, "%ldh%02ldm%02lds", t / 3600, t % 3600 / 60, t % 60);
}

/* --stage: one plan per stage (the config + the common overrides + the stage's
 * own), a table, and the total against the budget. */
static int plan_stages(const char *config, char **common, int ncommon, const char *const *stages, int n,
                       const dx_device *d, double days) {
    dx_plan p[8];
    char names[8][32];
    int fits_all = 1;
    printf("stages of %s on %s (%.0f GB, %.1f TFLOPS x %.2f), budget %.1f days\n", config, d->name, d->mem_bytes / 1e9,
           d->flops / 1e12, d->efficiency, days);
    printf("  %-10s %-9s %6s %9s %11s %9s %5s %8s\n", "stage", "crops", "batch", "steps", "GFLOP/img", "peak GB",
           "fits", "days");
    for (int i = 0; i < n; i++) {
        const char *colon = strchr(stages[i], ':');
        snprintf(names[i], sizeof names[i], "%.*s", (int)(colon - stages[i]), stages[i]);
        /* the stage's overrides: split its text at blanks */
        char buf[2048];
        snprintf(buf, sizeof buf, "%s", colon + 1);
        const char *ov[96];
        int k = 0;
        for (int j = 0; j < ncommon && k < 48; j++) ov[k++] = common[j];
        for (char *t = strtok(buf, " \t"); t && k < 96; t = strtok(NULL, " \t")) ov[k++] = t;
        dx_err err = {0};
        dx_config cfg;
        if (dx_config_resolve(&cfg, config, ov, k, &err) || dx_plan_compute(&cfg, d, &p[i], &err)) {
            fprintf(stderr, "dinox plan: stage %s: %s\n", names[i], err.msg);
            return 1;
        }
        char crops[32];
        snprintf(crops, sizeof crops, "%d/%d", cfg.crops.global_size, cfg.crops.local_size);
        int fits = p[i].max_batch >= p[i].batch;
        fits_all &= fits;
        printf("  %-10s %-9s %6d %9lld %11.1f %9.2f %5s %8.2f\n", names[i], crops, p[i].batch, (long long)p[i].steps,
               p[i].flops_per_image / 1e9, p[i].total / 1e9, fits ? "yes" : "NO", p[i].run_s / 86400.0);
    }
    double total = 0;
    for (int i = 0; i < n; i++) total += p[i].run_s;
    int64_t keep = 0;
    int s = dx_plan_budget(p, n, days, &keep);
    printf("  %-10s %67.2f days of %.1f: %s\n", "total", total / 86400.0, days,
           s < 0 ? "fits the budget" : "OVER the budget");
    if (s >= 0) {
        if (keep > 0)
            printf("to fit: shorten stage %s from %lld to %lld steps (%.1f epochs of %lld), or raise --days\n",
                   names[s], (long long)p[s].steps, (long long)keep, p[s].epoch_length ? (double)keep / p[s].epoch_length : 0.0,
                   (long long)p[s].epoch_length);
        else
            printf("to fit: even without stage %s the other stages exceed %.1f days; shorten them too\n", names[s], days);
    }
    explain_efficiency(d);
    return !fits_all || s >= 0 ? 3 : 0;
}

int cmd_plan(int argc, char **argv) {
    const char *config = NULL, *device = "cpu";
    double mem_gb = 0, tflops = 0, bw = 0, eff = 0;
    int json = 0;
    enum { O_DEV = 1000, O_MEM, O_TF, O_BW, O_EFF, O_JSON, O_HELP, O_STAGE, O_DAYS, O_RANKS };
    int ranks = 1;
    enum { MAX_STAGES = 8 };
    const char *stages[MAX_STAGES];
    int nstages = 0;
    double days = 14;
    static const struct option opts[] = {
        {"config", required_argument, 0, 'c'}, {"device", required_argument, 0, O_DEV},
        {"mem-gb", required_argument, 0, O_MEM}, {"tflops", required_argument, 0, O_TF},
        {"bw-gbs", required_argument, 0, O_BW},  {"efficiency", required_argument, 0, O_EFF},
        {"json", no_argument, 0, O_JSON},        {"help", no_argument, 0, O_HELP},
        {"stage", required_argument, 0, O_STAGE}, {"days", required_argument, 0, O_DAYS},
        {"ranks", required_argument, 0, O_RANKS}, {0, 0, 0, 0}};
    optind = 1;
    for (int c; (c = getopt_long(argc, argv, "+c:h", opts, NULL)) != -1;) {
        switch (c) {
        case 'c': config = optarg; break;
        case O_DEV: device = optarg; break;
        case O_MEM: CLI_DOUBLE("plan", mem_gb, 0.001, 1e6); break;
        case O_TF: CLI_DOUBLE("plan", tflops, 1e-6, 1e6); break;
        case O_BW: CLI_DOUBLE("plan", bw, 1e-3, 1e7); break;
        case O_EFF: CLI_DOUBLE("plan", eff, 1e-3, 1); break;
        case O_JSON: json = 1; break;
        case O_STAGE:
            if (nstages == MAX_STAGES) {
                fprintf(stderr, "dinox plan: at most %d --stage options\n", MAX_STAGES);
                return 2;
            }
            if (!strchr(optarg, ':')) {
                fprintf(stderr, "dinox plan: --stage '%s': expected NAME:key=value ...\n", optarg);
                return 2;
            }
            stages[nstages++] = optarg;
            break;
        case O_DAYS: CLI_DOUBLE("plan", days, 1e-3, 1e5); break;
        case O_RANKS: CLI_INT("plan", ranks, 1, 65536); break;
        case 'h': case O_HELP: plan_usage(stdout); return 0;
        default: plan_usage(stderr); return 2;
        }
    }
    if (!config) {
        fprintf(stderr, "dinox plan: missing -c CONFIG\n\n");
        plan_usage(stderr);
        return 2;
    }
    dx_err err = {0};
    dx_config cfg;
    if (dx_config_resolve(&cfg, config, (const char *const *)(argv + optind), argc - optind, &err)) goto fail;
    dx_device d;
    if (mem_gb > 0 || tflops > 0) {
        memset(&d, 0, sizeof d);
        snprintf(d.name, sizeof d.name, "custom");
        d.mem_bytes = mem_gb * 1e9;
        d.flops = tflops * 1e12;
        d.bw_bytes_s = bw * 1e9;
        d.efficiency = eff > 0 ? eff : 0.45;
    } else {
        if (dx_device_get(device, cfg.train.compute_threads ? cfg.train.compute_threads : cfg.train.threads,
                          dx_config_precision(&cfg), &d, &err))
            goto fail;
        if (eff > 0) d.efficiency = eff;
    }
    if (nstages) return plan_stages(config, argv + optind, argc - optind, stages, nstages, &d, days);
    const int global_batch = cfg.train.batch_size;
    if (ranks > 1) {
        if (global_batch % ranks) {
            fprintf(stderr, "dinox plan: train.batch_size %d does not divide over %d ranks\n", global_batch, ranks);
            return 1;
        }
        cfg.train.batch_size = global_batch / ranks; /* one rank's share: its memory and its step */
    }
    dx_plan p;
    if (dx_plan_compute(&cfg, &d, &p, &err)) goto fail;
    if (json) {
        printf("{\"device\":\"%s\",\"params_bytes\":%zu,\"grads_bytes\":%zu,\"adam_bytes\":%zu,\"teacher_bytes\":%zu,"
               "\"gram_teacher_bytes\":%zu,\"acts_bytes\":%zu,\"acts_per_image_bytes\":%zu,\"loader_bytes\":%zu,"
               "\"staging_bytes\":%zu,\"runtime_bytes\":%zu,\"total_bytes\":%zu,\"batch\":%d,\"max_batch\":%d,"
               "\"flops_per_image\":%.6g,\"step_s\":%.6g,\"epoch_s\":%.6g,\"run_s\":%.6g,\"teacher_chunk\":%d,"
               "\"teacher_chunk_saving_bytes\":%zu,\"micro_batch\":%d,\"fit_micro_batch\":%d,\"ibot_recompute\":%s,"
               "\"ibot_recompute_saving_bytes\":%zu,\"acts_parts\":{",
               d.name, p.params, p.grads, p.adam, p.teacher, p.gram_teacher, p.acts, p.acts_per_image, p.loader,
               p.staging, p.runtime, p.total, p.batch, p.max_batch, p.flops_per_image, p.step_s, p.epoch_s,
               p.run_s, p.teacher_chunk, p.chunk_saving, p.micro_batch, p.fit_micro_batch,
               p.ibot_recompute ? "true" : "false", p.recompute_saving);
        static const char *const names[DX_SSL_PLAN_PARTS] = DX_SSL_PLAN_PART_NAMES;
        for (int i = 0; i < DX_SSL_PLAN_PARTS; i++) printf("%s\"%s\":%zu", i ? "," : "", names[i], p.acts_part[i]);
        printf("}}\n");
        return p.max_batch < p.batch ? 3 : 0;
    }
    printf("plan for %s on %s (%.0f GB, %.1f TFLOPS x %.2f, %.0f GB/s)\n", config, d.name, d.mem_bytes / 1e9,
           d.flops / 1e12, d.efficiency, d.bw_bytes_s / 1e9);
    if (dx_config_precision(&cfg) == DX_PREC_BF16)
        printf("memory (bf16 policy: fp32 state; the student's GEMM, attention and LayerNorm outputs kept in bf16; "
               "checkpointing %s):\n", cfg.train.checkpointing);
    else printf("memory (fp32, checkpointing %s):\n", cfg.train.checkpointing);
    gb("parameters (student)", (double)p.params);
    gb("gradients", (double)p.grads);
    gb("AdamW moments", (double)p.adam);
    gb("EMA teacher", (double)p.teacher);
    gb("Gram teacher", (double)p.gram_teacher);
    gb("activations + step scratch", (double)p.acts);
    printf("  %-34s %10.3f MB\n", "  of which per image", p.acts_per_image / 1e6);
    static const char *const part_names[DX_SSL_PLAN_PARTS] = DX_SSL_PLAN_PART_NAMES; /* marginal per image */
    for (int i = 0; i < DX_SSL_PLAN_PARTS; i++)
        if (p.acts_part[i])
            printf("    %-32s %10.3f GB  %9.3f MB per image\n", part_names[i], p.acts_part[i] / 1e9,
                   p.acts_part_per_image[i] / 1e6);
    if (p.chunk_saving)
        printf("    teacher passes over all %d global crops at once; train.teacher_chunk=%d would save %.3f GB\n",
               2 * p.batch, DX_PLAN_HINT_CHUNK, p.chunk_saving / 1e9);
    else if (p.teacher_chunk < 2 * p.batch)
        printf("    teacher passes in chunks of %d of the %d global crops (train.teacher_chunk)\n", p.teacher_chunk,
               2 * p.batch);
    if (p.micro_batch < p.batch)
        printf("    the student in %d passes of %d images, gradients accumulated (train.micro_batch)\n",
               p.batch / p.micro_batch, p.micro_batch);
    if (p.ibot_recompute)
        printf("    the iBOT targets formed pass by pass, Sinkhorn-Knopp over recomputed logits (train.ibot_recompute)%s\n",
               p.micro_batch < p.batch ? "" : "; in one pass this saves nothing and costs sk_iters + 2 GEMMs");
    else if (p.recompute_saving)
        printf("    the iBOT teacher keeps the batch's [masked patches, K] targets; train.ibot_recompute=true would "
               "save %.3f GB\n", p.recompute_saving / 1e9);
    gb("loader batch ring", (double)p.loader);
    gb("checkpoint staging", (double)p.staging);
    gb("runtime", (double)p.runtime);
    gb("predicted peak", (double)p.total);
    printf("batch %d per step; largest batch that fits: %d%s\n", p.batch, p.max_batch,
           p.max_batch < p.batch ? "  (THE CONFIG DOES NOT FIT)" : "");
    if (p.fit_micro_batch)
        printf("  batch %d fits with train.micro_batch=%d: the student in %d passes of %d images, the same step to "
               "rounding\n", p.batch, p.fit_micro_batch, p.batch / p.fit_micro_batch, p.fit_micro_batch);
    printf("compute: %.1f GFLOP per image, %.1f GFLOP per step\n", p.flops_per_image / 1e9, p.flops_per_step / 1e9);
    char a[64], b[64], c[64];
    hms(a, sizeof a, p.step_s);
    hms(b, sizeof b, p.epoch_s);
    hms(c, sizeof c, p.run_s);
    printf("time: %.3f s per step, %s per epoch (%lld steps), %s for the run (%lld steps)\n", p.step_s, b,
           (long long)p.epoch_length, c, (long long)p.steps);
    explain_efficiency(&d);
    if (ranks > 1) {
        dx_plan_link l[DX_PLAN_LINKS];
        dx_plan_links(p.grads, ranks, p.step_s, l);
        printf("data parallel: %d ranks, global batch %d = %d per rank (memory and time above are one rank's)\n",
               ranks, global_batch, p.batch);
        printf("  every step all-reduces %.1f MB of fp32 gradients; a ring sends and receives %.1f MB per rank\n",
               p.grads / 1e6, 2.0 * (ranks - 1) / ranks * p.grads / 1e6);
        printf("  %-20s %10s %12s %11s\n", "link", "GB/s", "all-reduce", "efficiency");
        for (int i = 0; i < DX_PLAN_LINKS; i++)
            printf("  %-20s %10.2f %10.3f s %10.0f%%\n", l[i].name, l[i].bytes_s / 1e9, l[i].comm_s,
                   100 * l[i].efficiency);
        printf("  efficiency = step / (step + all-reduce), the bound without overlap: dinox starts each block's\n"
               "  all-reduce as soon as backward is through it, so part of it hides behind the rest of backward.\n"
               "  Ranks on one host share its memory bandwidth and cores: they add throughput only where one\n"
               "  process leaves the machine idle.\n");
    }
    (void)a;
    return p.max_batch < p.batch ? 3 : 0; /* scripts can test whether the config fits */
fail:
    fprintf(stderr, "dinox plan: %s\n", err.msg);
    return 1;
}
