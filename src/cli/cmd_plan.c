/* cmd_plan.c - `dinox plan`: memory, FLOPs and time of a training config. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "train/plan.h"

static void plan_usage(FILE *f) {
    fprintf(f,
            "usage: dinox plan -c CONFIG [--device cpu|strix-halo|rtx-4090|h100] [key=value ...]\n"
            "       dinox plan -c CONFIG --mem-gb M --tflops F [--bw-gbs B] [--efficiency E]\n"
            "\n"
            "Prints parameter / gradient / optimizer / teacher memory, activation memory per image,\n"
            "the predicted peak, the largest batch that fits the device, FLOPs per image (all crops,\n"
            "student forward+backward, EMA and Gram teachers, heads) and the estimated time per\n"
            "epoch and for the whole run. 'cpu' measures this machine's GEMM peak first.\n"
            "Memory is modelled as the fp32 allocations the current backends make.\n"
            "Exit status: 0 the config fits, 3 it does not (the batch is above the largest that fits),\n"
            "1 an error, 2 a usage error.\n");
}

static void gb(const char *what, double bytes) { printf("  %-34s %10.3f GB\n", what, bytes / 1e9); }

static void hms(char *b, size_t n, double s) {
    long t = (long)(s + 0.5);
    if (t >= 86400) snprintf(b, n, "%ldd %02ldh%02ldm", t / 86400, t % 86400 / 3600, t % 3600 / 60);
    else snprintf(b, n, "%ldh%02ldm%02lds", t / 3600, t % 3600 / 60, t % 60);
}

int cmd_plan(int argc, char **argv) {
    const char *config = NULL, *device = "cpu";
    double mem_gb = 0, tflops = 0, bw = 0, eff = 0;
    int json = 0;
    enum { O_DEV = 1000, O_MEM, O_TF, O_BW, O_EFF, O_JSON, O_HELP };
    static const struct option opts[] = {
        {"config", required_argument, 0, 'c'}, {"device", required_argument, 0, O_DEV},
        {"mem-gb", required_argument, 0, O_MEM}, {"tflops", required_argument, 0, O_TF},
        {"bw-gbs", required_argument, 0, O_BW},  {"efficiency", required_argument, 0, O_EFF},
        {"json", no_argument, 0, O_JSON},        {"help", no_argument, 0, O_HELP}, {0, 0, 0, 0}};
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
        if (dx_device_get(device, cfg.train.threads, &d, &err)) goto fail;
        if (eff > 0) d.efficiency = eff;
    }
    dx_plan p;
    if (dx_plan_compute(&cfg, &d, &p, &err)) goto fail;
    if (json) {
        printf("{\"device\":\"%s\",\"params_bytes\":%zu,\"grads_bytes\":%zu,\"adam_bytes\":%zu,\"teacher_bytes\":%zu,"
               "\"gram_teacher_bytes\":%zu,\"acts_bytes\":%zu,\"acts_per_image_bytes\":%zu,\"loader_bytes\":%zu,"
               "\"staging_bytes\":%zu,\"runtime_bytes\":%zu,\"total_bytes\":%zu,\"batch\":%d,\"max_batch\":%d,"
               "\"flops_per_image\":%.6g,\"step_s\":%.6g,\"epoch_s\":%.6g,\"run_s\":%.6g}\n",
               d.name, p.params, p.grads, p.adam, p.teacher, p.gram_teacher, p.acts, p.acts_per_image, p.loader,
               p.staging, p.runtime, p.total, p.batch, p.max_batch, p.flops_per_image, p.step_s, p.epoch_s,
               p.run_s);
        return p.max_batch < p.batch ? 3 : 0;
    }
    printf("plan for %s on %s (%.0f GB, %.1f TFLOPS x %.2f, %.0f GB/s)\n", config, d.name, d.mem_bytes / 1e9,
           d.flops / 1e12, d.efficiency, d.bw_bytes_s / 1e9);
    printf("memory (fp32):\n");
    gb("parameters (student)", (double)p.params);
    gb("gradients", (double)p.grads);
    gb("AdamW moments", (double)p.adam);
    gb("EMA teacher", (double)p.teacher);
    gb("Gram teacher", (double)p.gram_teacher);
    gb("activations + step scratch", (double)p.acts);
    printf("  %-34s %10.3f MB\n", "  of which per image", p.acts_per_image / 1e6);
    gb("loader batch ring", (double)p.loader);
    gb("checkpoint staging", (double)p.staging);
    gb("runtime", (double)p.runtime);
    gb("predicted peak", (double)p.total);
    printf("batch %d per step; largest batch that fits: %d%s\n", p.batch, p.max_batch,
           p.max_batch < p.batch ? "  (THE CONFIG DOES NOT FIT)" : "");
    printf("compute: %.1f GFLOP per image, %.1f GFLOP per step\n", p.flops_per_image / 1e9, p.flops_per_step / 1e9);
    char a[64], b[64], c[64];
    hms(a, sizeof a, p.step_s);
    hms(b, sizeof b, p.epoch_s);
    hms(c, sizeof c, p.run_s);
    printf("time: %.3f s per step, %s per epoch (%lld steps), %s for the run (%lld steps)\n", p.step_s, b,
           (long long)p.epoch_length, c, (long long)p.steps);
    (void)a;
    return p.max_batch < p.batch ? 3 : 0; /* scripts can test whether the config fits */
fail:
    fprintf(stderr, "dinox plan: %s\n", err.msg);
    return 1;
}
