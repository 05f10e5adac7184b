"""torch_vit_step.py - PyTorch peer of bench/bench_vit_step.c: ViT training-step throughput.

Times forward + backward + AdamW of the student backbone (tests/ref/vit_ref.py,
float32, the same DINOv3 ViT the C code implements) on all crops of a batch and
prints one JSON line with medians (--bf16: autocast, "impl":"torch-bf16"):
  {"impl":"torch","config":...,"img_per_s":...,"step_s_median":...,"gflop_per_img":...,...}

Configs (flags; defaults = the multi-crop config of bench_vit_step.c):
  multicrop: --arch vit_small --global-size 224 --n-global 2 --local-size 96 --n-local 8 --batch 8
  single:    --arch vit_small --global-size 112 --n-local 0 --batch 32
             (--n-global defaults to 1 when --n-local is 0; or --config single)
One image = all its crops (batch B -> n_global*B global and n_local*B local crops).
The loss is sum_g sum(tokens_g * r_g) with fixed random r (any scalar would do);
crop groups run forward+backward one after the other, as the C step does.
AdamW: lr 1e-4, wd 0.04, DINOv3 per-tensor multipliers (layer decay 0.9,
patch-embed 0.2, no decay on biases/norms/gammas) - the bench_vit_step.c setting.
FLOPs (gflop_per_img): 3 x forward, forward = patch-embed GEMM + per block
2*T*(linear params) + 4*T^2*D, T = 1 + R + P (vit_ref.flops_forward_per_image,
the same formula as dx_vit_flops_per_image); with --drop-path the count is
still that of the full step (skipped branches are not subtracted).

BLAS: Debian's torch 1.13 is built with BLAS_INFO=generic, i.e. it calls the
system libblas.so.3, which the alternatives system points at OpenBLAS 0.3.21
(libopenblas0-openmp here); convolutions and bf16 go to oneDNN (MKL-DNN 2.6.3).
The JSON line reports the BLAS library actually mapped and the OPENBLAS_* env.
Measure on a quiet machine: with other jobs on the 2 cores, libgomp's
spin-waiting makes --threads 2 collapse (seen: a step 12x slower than with
--threads 1 at load 5); compare_vit_step.sh alternates the peers to share noise.
Run it as the integrator does, with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE
unset for this one command (otherwise OpenBLAS is forced onto Haswell kernels):
  env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE /usr/bin/python3 bench/torch_vit_step.py --threads 2
"""
import argparse
import json
import math
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "ref"))
import vit_ref as V  # noqa: E402


def param_groups(model, lr, wd, layer_decay=0.9, patch_embed_mult=0.2):
    """DINOv3 AdamW groups (spec §7.2), one group per tensor."""
    depth = model.cfg.depth
    groups = []
    for n, p in model.named_parameters():
        if n.startswith("patch_embed."):
            lm = layer_decay ** (depth + 1) * patch_embed_mult
        elif n in ("cls_token", "storage_tokens", "mask_token"):
            lm = layer_decay ** (depth + 1)
        elif n.startswith("blocks."):
            lm = layer_decay ** (depth - int(n.split(".")[1]))
        else:
            lm = 1.0
        wm = 0.0 if (n.endswith("bias") or "norm" in n or "gamma" in n) else 1.0
        groups.append({"params": [p], "lr": lr * lm, "weight_decay": wd * wm})
    return groups


def init_dinov3(model):
    """Spec §1.8 initialisation (values do not matter for timing; NaN-free matters)."""
    with torch.no_grad():
        for n, p in model.named_parameters():
            if n in ("cls_token", "storage_tokens"):
                p.normal_(0, 0.02)
            elif n == "mask_token" or n.endswith(".bias"):
                p.zero_()
            elif n.endswith("gamma"):
                p.fill_(1e-5)
            elif "norm" in n:
                p.fill_(1.0)
            elif n.startswith("patch_embed"):
                b = 1 / math.sqrt(p[0].numel()) if p.dim() > 1 else 0.036
                p.uniform_(-b, b)
            else:
                p.normal_(0, 0.02)


def blas_libs():
    """BLAS/LAPACK/oneDNN shared objects mapped into this process."""
    libs = set()
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                path = line.split()[-1]
                base = os.path.basename(path)
                if any(k in base for k in ("blas", "lapack", "dnnl", "mkl", "gomp")):
                    libs.add(os.path.realpath(path))
    except OSError:
        pass
    return sorted(libs)


def main():
    ap = argparse.ArgumentParser(description="PyTorch peer of bench_vit_step.c")
    ap.add_argument("--config", choices=["multicrop", "single"], default=None,
                    help="shortcut: sets the crop flags below to that config")
    ap.add_argument("--arch", default="vit_small", choices=sorted(V.VIT_ARCHS))
    ap.add_argument("--global-size", type=int, default=224)
    ap.add_argument("--n-global", type=int, default=None,
                    help="global crops per image (default 2, or 1 when --n-local 0: the single config)")
    ap.add_argument("--local-size", type=int, default=96)
    ap.add_argument("--n-local", type=int, default=8)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--drop-path", type=float, default=0.0,
                    help="batch-subset stochastic depth rate (random subsets per block/group)")
    ap.add_argument("--rope-rescale", type=float, default=0.0,
                    help="RoPE coordinate rescale augmentation r (0 = off)")
    ap.add_argument("--bf16", action="store_true",
                    help="forward under torch.autocast('cpu', bfloat16) (oneDNN bf16 GEMMs); fp32 master weights")
    a = ap.parse_args()
    if a.config == "single":
        a.global_size, a.n_global, a.n_local, a.batch = 112, 1, 0, 32
    elif a.config == "multicrop":
        a.global_size, a.n_global, a.local_size, a.n_local, a.batch = 224, 2, 96, 8, 8
    if a.n_global is None:
        a.n_global = 2 if a.n_local > 0 else 1
    name = a.config or ("multicrop" if a.n_local > 0 else "single")

    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    cfg = V.VitConfig(**V.VIT_ARCHS[a.arch], registers=4, patch=16, ffn="mlp", ffn_ratio=4.0,
                      ln_eps=1e-5, mask_k_bias=True)
    model = V.DinoVit(cfg)
    init_dinov3(model)
    model.train()
    opt = torch.optim.AdamW(param_groups(model, 1e-4, 0.04), betas=(0.9, 0.999), eps=1e-8)

    crops = [(a.n_global * a.batch, a.global_size)]
    if a.n_local > 0:
        crops.append((a.n_local * a.batch, a.local_size))
    data, flop = [], 0.0
    for n, s in crops:
        p = (s // cfg.patch) ** 2
        data.append((torch.randn(n, 3, s, s), torch.randn(n, 1 + cfg.registers + p, cfg.dim)))
        flop += 3.0 * n * V.flops_forward_per_image(cfg, s, s)

    def draws(n):
        drop = aug = None
        if a.drop_path > 0:
            k = max(int(n * (1 - a.drop_path)), 1)
            drop = [[(torch.randperm(n)[:k], torch.randperm(n)[:k]) for _ in range(cfg.depth)]]
        if a.rope_rescale > 1:
            lr = math.log(a.rope_rescale)
            s = torch.empty(cfg.depth).uniform_(-lr, lr).exp()
            aug = [torch.stack([torch.zeros_like(s), torch.zeros_like(s), s, s], dim=1)]
        return drop, aug

    times = []
    for step in range(a.warmup + a.steps):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=False)
        for x, r in data:
            drop, aug = draws(x.shape[0])
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.bf16):
                tok = model.forward_features_list([(x, None)], drop, aug)[0]
            (tok.float() * r).sum().backward()
        opt.step()
        dt = time.perf_counter() - t0
        if step >= a.warmup:
            times.append(dt)
    med = statistics.median(times)
    print(json.dumps({
        "impl": "torch-bf16" if a.bf16 else "torch", "config": name, "arch": a.arch, "batch": a.batch, "threads": a.threads,
        "crops": [{"n": n, "size": s} for n, s in crops],
        "steps": a.steps, "step_s_median": round(med, 4), "img_per_s": round(a.batch / med, 3),
        "gflop_per_img": round(flop / a.batch / 1e9, 2), "gflop_per_s": round(flop / med / 1e9, 1),
        "step_s_all": [round(t, 4) for t in times],
        "torch": torch.__version__, "blas_libs": blas_libs(),
        "openblas_env": {k: os.environ.get(k) for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE",
                                                         "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")},
    }), flush=True)


if __name__ == "__main__":
    main()
