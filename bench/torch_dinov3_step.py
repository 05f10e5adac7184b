"""torch_dinov3_step.py - PyTorch peer of `bench_vit_step dinov3`: one whole DINOv3 SSL step.

The same step as dx_ssl_step (src/train/ssl.c) and the float64 oracle tests/ref/ssl_ref.py,
in float32 and written for speed rather than for exactness:
  1. EMA teacher (no grad) on the 2B clean global crops -> DINO head on the CLS ->
     Sinkhorn-Knopp (3 iters); masked patch tokens -> iBOT head -> Sinkhorn-Knopp;
  2. student (train: batch-subset drop path 0.1, RoPE rescale 2, drawn per block and crop
     group) on the masked global crops and the local crops -> DINO head on all CLS,
     iBOT head on the masked patch tokens;
  3. Gram teacher (frozen, no grad) on the global crops, or with --gram-scale 2 on 448-px
     Gram crops whose patch features are resized bicubically to 14x14 before normalising;
  4. DINO local/global, KoLeo, iBOT, Gram losses (tests/ref/loss_ref.py), §3.5 total;
  5. backward; per-submodule clipping (torch.nn.utils.clip_grad_norm_, clip 3);
     torch.optim.AdamW (foreach) with the DINOv3 groups (layer decay 0.9, patch embed 0.2,
     no wd on bias/norm/gamma, last layer on its own lr); EMA via torch._foreach_*.
Config = run_dinov3 in bench/bench_vit_step.c: ViT-S/16 (4 registers, masked k-bias, LN eps
1e-5, GELU MLP), batch 8, 2x224 global + 8x96 local crops, heads 2048/256/65536, masks by the
DINOv3 collate rule (half the global crops, ratios 0.1..0.5), lr = last-layer lr 1e-4, wd 0.04,
momentum 0.994, teacher temp 0.07, student temp 0.1, w_koleo 0.1.

Speed choices that keep the computation: AdamW groups merged by identical (lr_mult, wd_mult,
is_last) - the per-tensor rule, fewer groups (DINOv3 fuses them the same way); grads set to
None instead of zeroed; Sinkhorn-Knopp row-major and in place, on logits minus their global max
(the global normalisation cancels the factor; float32 exp cannot overflow). --check-fixture proves the
step equals the reference: it reruns tests/fixtures/ssl_tiny.safetensors (drop path off, no
RoPE augmentation, as the fixture) and compares every stored loss term and gradient norm.

Timing excludes mask generation and input creation (the C benchmark does the same).
gflop_per_img: the formula of dx_ssl_flops_per_step (src/train/ssl.c) with head in_dim = dim.
Prints one JSON line, keys as the C benchmark's plus the last step's loss terms:
  {"impl":"torch","config":"dinov3",...,"step_s_median","img_per_s","gflop_per_img","gflop_per_s",...}

  env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE /usr/bin/python3 bench/torch_dinov3_step.py --threads 2
"""
import argparse
import json
import math
import os
import random
import statistics
import sys
import time

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "ref"))
sys.path.insert(0, HERE)
import loss_ref as LR  # noqa: E402
import ssl_ref as S  # noqa: E402
import vit_ref as V  # noqa: E402
from torch_vit_step import blas_libs, init_dinov3  # noqa: E402

TERMS = ("dino_local", "dino_global", "koleo", "ibot", "gram")


def sinkhorn(logits, temp, iters):
    """loss_ref.sinkhorn_knopp (§4.2) in the row-major [N, K] layout, in place: exp of
    (logits - global max) / temp (the global normalisation cancels the factor; no float32
    overflow), then per iteration prototype (column) sums -> / (K * sum), sample (row)
    sums -> / (N * sum); times N. [N, K] -> [N, K]."""
    N, K = logits.shape
    Q = torch.exp((logits - logits.max()) / temp)
    Q /= Q.sum()
    for _ in range(iters):
        Q /= Q.sum(dim=0, keepdim=True) * K
        Q /= Q.sum(dim=1, keepdim=True) * N
    Q *= N
    return Q


def fused_groups(student, depth, layer_decay, patch_mult):
    """ssl_ref.param_groups (§7.2, per tensor), merged where (lr_mult, wd_mult, is_last) agree."""
    merged = {}
    for g in S.param_groups(student, depth, layer_decay, patch_mult):
        key = (g["lr_mult"], g["wd_mult"], g["is_last"])
        merged.setdefault(key, []).extend(g["params"])
    return [{"params": ps, "lr_mult": k[0], "wd_mult": k[1], "is_last": k[2]} for k, ps in merged.items()]


class Dinov3Step:
    """Student, EMA teacher, Gram teacher and the optimizer; step() = one dx_ssl_step."""

    def __init__(self, student, teacher, gram, cfg):
        self.student, self.teacher, self.gram, self.cfg = student, teacher, gram, cfg
        for p in list(teacher.parameters()) + list(gram.parameters()):
            p.requires_grad_(False)
        teacher.eval()
        gram.eval()
        student.train()
        self.opt = torch.optim.AdamW(fused_groups(student, cfg["depth"], cfg["layer_decay"],
                                                  cfg["patch_embed_lr_mult"]),
                                     lr=0.0, betas=tuple(cfg["betas"]), eps=cfg["adam_eps"],
                                     weight_decay=0.0, foreach=True)
        self.subs = [list(getattr(student, m).parameters()) for m in S.SUBMODULES]
        self.s_params = list(student.parameters())
        self.t_params = list(teacher.parameters())

    def losses(self, batch, sched, drop=None, aug=None):
        """Forward; batch: global [G,3,S,S], local [L,3,s,s], gram [G,3,Sg,Sg] (None: the
        global crops), masks [G,P] bool. drop/aug: per crop group, as vit_ref takes them."""
        st, te, cfg = self.student, self.teacher, self.cfg
        B = cfg["batch"]
        G = 2 * B
        R1 = 1 + cfg["registers"]
        ts, tt, it = cfg["student_temp"], sched["teacher_temp"], cfg["sk_iters"]
        masks = batch["masks"]
        flat = masks.reshape(-1)                                          # [G*P]
        cnt = masks.sum(dim=1).clamp(min=1).to(batch["global"].dtype)
        weights = (1.0 / cnt)[:, None].expand_as(masks).reshape(-1)[flat]  # [M] 1/n_i

        with torch.no_grad():                                            # EMA teacher
            t_tok = te.backbone.forward_features_list([(batch["global"], None)])[0]     # [G,T,D]
            D = t_tok.shape[-1]
            T_dino = sinkhorn(te.dino_head(t_tok[:, 0]), tt, it)                      # [G,K]
            T_ibot = sinkhorn(te.ibot_head(t_tok[:, R1:].reshape(-1, D)[flat]), tt, it)  # [M,K]

        s_glob, s_loc = st.backbone.forward_features_list(
            [(batch["global"], masks), (batch["local"], None)], drop, aug)
        S_dino = st.dino_head(torch.cat([s_glob[:, 0], s_loc[:, 0]], dim=0))          # [G+L,K]
        k0, _ = LR.koleo_loss(s_glob[:B, 0])
        k1, _ = LR.koleo_loss(s_glob[B:, 0])
        S_ibot = st.ibot_head(s_glob[:, R1:].reshape(-1, D)[flat])                   # [M,K]
        terms = {"dino_local": LR.dino_loss(S_dino[G:], T_dino, B, ts, ignore_diag=False),
                 "dino_global": LR.dino_loss(S_dino[:G], T_dino, B, ts, ignore_diag=True),
                 "koleo": (k0 + k1) / 2,
                 "ibot": LR.ibot_loss(S_ibot, T_ibot, weights, G, ts)}

        with torch.no_grad():                                            # Gram teacher
            n_side = cfg["global_size"] // cfg["patch"]
            gimg = batch["gram"] if batch.get("gram") is not None else batch["global"]
            xt = S.gram_teacher_patches(self.gram, gimg, n_side)                      # [G,P,D]
        terms["gram"] = LR.gram_loss(s_glob[:, R1:], xt, cfg["gram_img_level"])
        total, _ = LR.total_loss(terms, w_dino=cfg["w_dino"], w_koleo=cfg["w_koleo"],
                                 w_ibot=cfg["w_ibot"], w_gram=sched["w_gram"],
                                 local_weight=sched["lambda_local"], G=2, L=cfg["n_local"])
        return total, terms

    def step(self, batch, sched, drop=None, aug=None):
        """Returns ([total, *TERMS] as 0-d tensors, pre-clip norms [3] as 0-d tensors)."""
        self.opt.zero_grad(set_to_none=True)
        if self.cfg.get("bf16"):  # DINOv3's mixed precision: autocast bf16, fp32 master weights
            with torch.autocast("cpu", dtype=torch.bfloat16):
                total, terms = self.losses(batch, sched, drop, aug)
            total = total.float()
        else:
            total, terms = self.losses(batch, sched, drop, aug)
        total.backward()
        norms = [torch.nn.utils.clip_grad_norm_(ps, self.cfg["clip_grad"]) for ps in self.subs]
        for g in self.opt.param_groups:
            g["lr"] = (sched["last_layer_lr"] if g["is_last"] else sched["lr"]) * g["lr_mult"]
            g["weight_decay"] = sched["wd"] * g["wd_mult"]
        self.opt.step()
        m = sched["momentum"]
        with torch.no_grad():
            torch._foreach_mul_(self.t_params, m)
            torch._foreach_add_(self.t_params, self.s_params, alpha=1 - m)
        return [total.detach()] + [terms[k].detach() for k in TERMS], norms


def check_fixture(path):
    """Reruns ssl_tiny.safetensors through Dinov3Step in float32; returns the worst relative
    error of the loss terms and of the gradient norms over the 10 steps (the torch float32
    reference itself reaches ~3e-7 / ~2e-6, README)."""
    import st
    t, meta = st.load(path)
    cfg, sched = json.loads(meta["config"]), json.loads(meta["sched"])
    vcfg = V.VitConfig(dim=cfg["dim"], depth=cfg["depth"], heads=cfg["heads"], registers=cfg["registers"],
                       patch=cfg["patch"], ffn="mlp", ffn_ratio=cfg["ffn_hidden"] / cfg["dim"],
                       ln_eps=cfg["ln_eps"], mask_k_bias=cfg["mask_k_bias"], rope_base=cfg["rope_base"])
    dh, ih = cfg["dino_head"], cfg["ibot_head"]
    heads = ((dh["hidden"], dh["bottleneck"], dh["prototypes"]), (ih["hidden"], ih["bottleneck"], ih["prototypes"]))
    student, teacher = S.SslModel(vcfg, *heads), S.SslModel(vcfg, *heads)
    student.load_state_dict({k: torch.from_numpy(t["init." + k]).float() for k in student.state_dict()})
    teacher.load_state_dict(student.state_dict())
    gram = V.DinoVit(vcfg)
    gram.load_state_dict({k: torch.from_numpy(t["init_gram.backbone." + k]).float() for k in gram.state_dict()})
    run = Dinov3Step(student, teacher, gram, cfg)
    worst_l = worst_n = 0.0
    for s in range(len(sched["lr"])):
        b = {k: torch.from_numpy(t["step%d.%s" % (s, k)]).float() for k in ("global", "local", "gram")}
        b["masks"] = torch.from_numpy(t["step%d.masks" % s]).bool()
        losses, norms = run.step(b, {k: v[s] for k, v in sched.items()})
        for got, key in ((losses, "loss"), (norms, "gnorm")):
            ref = t["step%d.%s" % (s, key)].astype("float64")
            rel = max(abs(float(g) - r) / max(abs(r), 1e-6) for g, r in zip(got, ref))
            if key == "loss":
                worst_l = max(worst_l, rel)
            else:
                worst_n = max(worst_n, rel)
    return worst_l, worst_n


def flops_per_step(vcfg, B, n_local, S_glob, s_loc, S_gram, hidden, bottleneck, K):
    """dx_ssl_flops_per_step: 3x student fwd (global + local), EMA teacher fwd, Gram teacher
    fwd, DINO head rows (3x student G+L, 1x teacher G), iBOT head on ~1/4 of the patches (4x)."""
    G, L = 2 * B, n_local * B
    P = (S_glob // vcfg.patch) ** 2
    fwd = V.flops_forward_per_image
    head = 2.0 * bottleneck * K + 2.0 * vcfg.dim * hidden + 2.0 * hidden * hidden + 2.0 * hidden * bottleneck
    f = 3.0 * (G * fwd(vcfg, S_glob, S_glob) + L * fwd(vcfg, s_loc, s_loc))
    f += G * fwd(vcfg, S_glob, S_glob) + G * fwd(vcfg, S_gram, S_gram)
    f += (3.0 * (G + L) + G) * head + 4.0 * (G * P / 4.0) * head
    return f


def collate_masks(G, side, rng):
    """§6.3 collate: int(G*0.5) crops masked with m_i = int(P*linspace(0.1,0.5,n+1)[i+1])
    patches (block masking + random completion), assigned to shuffled crops -> [G,P] bool."""
    P = side * side
    gen = LR.MaskGen(side, side, rng)
    ms = [torch.from_numpy(gen(m).reshape(-1).copy()) for m in LR.mask_counts(P, G, 0.5, 0.1, 0.5)]
    ms += [torch.zeros(P, dtype=torch.bool)] * (G - len(ms))
    rng.shuffle(ms)
    return torch.stack(ms)


def main():
    ap = argparse.ArgumentParser(description="PyTorch peer of bench_vit_step dinov3")
    ap.add_argument("--arch", default="vit_small", choices=sorted(V.VIT_ARCHS))
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--gram-scale", type=int, default=1, help="Gram crops at gram_scale x 224 px")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--bf16", action="store_true",
                    help="the step under torch.autocast('cpu', bfloat16) (oneDNN bf16 GEMMs); fp32 master weights")
    ap.add_argument("--prototypes", type=int, default=65536, help="K of both heads")
    ap.add_argument("--check-fixture", metavar="SAFETENSORS", default=None,
                    help="instead of timing: rerun ssl_tiny.safetensors, exit 1 if losses/norms differ > 1e-4")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    if a.check_fixture:
        wl, wn = check_fixture(a.check_fixture)
        print(json.dumps({"check": "ssl_tiny", "worst_rel_loss": wl, "worst_rel_gnorm": wn}), flush=True)
        return 0 if max(wl, wn) <= 1e-4 else 1

    torch.manual_seed(0)
    B, n_local, Sg, sl = a.batch, 8, 224, 96
    Sgram = 224 * a.gram_scale
    vcfg = V.VitConfig(**V.VIT_ARCHS[a.arch], registers=4, patch=16, ffn="mlp", ffn_ratio=4.0,
                       ln_eps=1e-5, mask_k_bias=True)
    cfg = {"batch": B, "n_local": n_local, "registers": 4, "patch": 16, "global_size": Sg,
           "depth": vcfg.depth, "layer_decay": 0.9, "patch_embed_lr_mult": 0.2, "betas": (0.9, 0.999),
           "adam_eps": 1e-8, "student_temp": 0.1, "sk_iters": 3, "clip_grad": 3.0, "w_dino": 1.0,
           "w_koleo": 0.1, "w_ibot": 1.0, "gram_img_level": True, "bf16": a.bf16}
    sched = {"lr": 1e-4, "last_layer_lr": 1e-4, "wd": 0.04, "momentum": 0.994, "teacher_temp": 0.07,
             "w_gram": 1.0, "lambda_local": 1.0}
    head = (2048, 256, a.prototypes)
    student = S.SslModel(vcfg, head, head)
    init_dinov3(student.backbone)
    with torch.no_grad():
        for h in (student.dino_head, student.ibot_head):
            for n, p in h.named_parameters():
                p.zero_() if n.endswith("bias") else p.normal_(0, 0.02)
    teacher = S.SslModel(vcfg, head, head)
    teacher.load_state_dict(student.state_dict())
    gram = V.DinoVit(vcfg)
    gram.load_state_dict(student.backbone.state_dict())
    run = Dinov3Step(student, teacher, gram, cfg)

    G, L, side = 2 * B, n_local * B, Sg // 16
    batch = {"global": torch.randn(G, 3, Sg, Sg), "local": torch.randn(L, 3, sl, sl),
             "gram": torch.randn(G, 3, Sgram, Sgram) if a.gram_scale > 1 else None}
    drop_p, rescale = 0.1, 2.0

    def draws():
        """drop path subsets (k = max(floor(N(1-p)),1)) and RoPE rescale per block and group"""
        drop, aug = [], []
        for n in (G, L):
            k = max(int(math.floor(n * (1 - drop_p))), 1)
            drop.append([(torch.randperm(n)[:k], torch.randperm(n)[:k]) for _ in range(vcfg.depth)])
            s = torch.empty(vcfg.depth, dtype=torch.float64).uniform_(-math.log(rescale), math.log(rescale)).exp()
            aug.append(torch.stack([torch.zeros_like(s), torch.zeros_like(s), s, s], dim=1).float())
        return drop, aug

    times, masked = [], []
    for step in range(a.warmup + a.steps):
        batch["masks"] = collate_masks(G, side, random.Random(step))
        drop, aug = draws()
        t0 = time.perf_counter()
        losses, norms = run.step(batch, sched, drop, aug)
        losses = [float(x) for x in losses]                # forces the step to finish
        dt = time.perf_counter() - t0
        masked.append(int(batch["masks"].sum()))
        if not all(math.isfinite(x) for x in losses):
            print("non-finite loss at step %d: %s" % (step, losses), file=sys.stderr)
            return 1
        if step >= a.warmup:
            times.append(dt)
    med = statistics.median(times)
    flop = flops_per_step(vcfg, B, n_local, Sg, sl, Sgram, *head)
    print(json.dumps({
        "impl": "torch-bf16" if a.bf16 else "torch", "config": "dinov3", "arch": a.arch, "batch": B, "threads": a.threads,
        "gram_size": Sgram, "step_s_median": round(med, 4), "img_per_s": round(B / med, 3),
        "gflop_per_img": round(flop / B / 1e9, 2), "gflop_per_s": round(flop / med / 1e9, 1),
        "steps": a.steps, "step_s_all": [round(t, 4) for t in times], "masked_patches": masked,
        "loss_last": dict(zip(("total",) + TERMS, [round(x, 5) for x in losses])),
        "gnorm_last": [round(float(n), 5) for n in norms],
        "torch": torch.__version__, "blas_libs": blas_libs(),
        "openblas_env": {k: os.environ.get(k) for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE",
                                                         "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")},
    }), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
