#!/usr/bin/env python3
"""peer_dinov3.py - train facebookresearch/dinov3's own SSLMetaArch on the CPU on
the batches `dinox batches` wrote, beside dinox, and log the same health metrics.

An independent implementation of the objective: nothing here re-implements a loss,
a head or the backbone; the model, the heads, Sinkhorn-Knopp, the losses, the
parameter groups, the schedules and the EMA are the dinov3 package's own code. This
script only builds the config that matches a dinox config, feeds the batches, runs
the package's per-iteration order (schedules -> forward_backward -> per-submodule
clipping -> AdamW -> EMA) and measures.

Setup (outside the repository, never committed):
    python3 -m venv /somewhere/venv && /somewhere/venv/bin/pip install torch torchvision omegaconf termcolor submitit ftfy regex torchmetrics
    git clone <dinov3 source> /somewhere/dinov3
Run:
    dinox batches -c configs/demo.yaml --store STORE --out BATCHES --steps 300
    /somewhere/venv/bin/python tools/peer_dinov3.py --dinov3 /somewhere/dinov3 --batches BATCHES \
        --out peer.jsonl [--set teacher.momentum_teacher=0.95 ...]
The defaults reproduce configs/demo.yaml (dim 96, depth 4, 4 heads, patch 8, 4
registers, heads 256/64/1024, batch 16, 2x64 + 4x32 px, 3 x 100 steps).
"""
import argparse
import glob
import json
import math
import os
import sys
from functools import partial

import numpy as np


def health(teacher_probs, student_logits, cls, student_temp):
    """The dinox health metrics (docs/objective.md) from the tensors of one step."""
    import torch
    K = teacher_probs.shape[-1]
    t = teacher_probs.reshape(-1, K).double()
    h_row = -(t.clamp_min(1e-300).log() * t).sum(-1).mean().item()
    mean = t.mean(0)
    h_mean = -(mean.clamp_min(1e-300).log() * mean).sum().item()
    am = t.argmax(-1)
    used = int(torch.unique(am).numel())
    B = t.shape[0] // 2
    agree = float((am[:B] == am[B:]).double().mean().item())
    s = torch.log_softmax(student_logits.reshape(-1, K).double() / student_temp, -1)
    kl_s = math.log(K) + (s.exp() * s).sum(-1).mean().item()
    x = cls.reshape(-1, cls.shape[-1]).double()
    xc = x - x.mean(0)
    std = xc.pow(2).mean(0).sqrt().mean().item()
    ev = torch.linalg.eigvalsh(xc @ xc.T).clamp_min(0)
    p = ev / ev.sum()
    erank = math.exp(-(p[p > 0] * p[p > 0].log()).sum().item())
    z = torch.nn.functional.normalize(x, dim=-1)
    n = z.shape[0]
    cos = ((z.sum(0).pow(2).sum() - n) / (n * (n - 1))).item()
    return {"health/dino_teacher_entropy": h_row / math.log(K), "health/dino_teacher_mean_entropy": h_mean / math.log(K),
            "health/dino_prototypes_used": used, "health/dino_crop_agreement": agree,
            "health/dino_student_kl_uniform": kl_s, "health/cls_std": std, "health/cls_erank": erank,
            "health/cls_cos": cos}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dinov3", required=True, help="dinov3 source checkout (the package folder's parent)")
    ap.add_argument("--batches", required=True, help="folder written by `dinox batches`")
    ap.add_argument("--out", required=True, help="metrics, one JSON object per logged step")
    ap.add_argument("--steps", type=int, default=300, help="steps to run")
    ap.add_argument("--total-steps", type=int, default=300, help="steps the schedules span (epochs x epoch length)")
    ap.add_argument("--epoch-length", type=int, default=100)
    ap.add_argument("--log-every", type=int, default=10)
    ap.add_argument("--dim", type=int, default=96)
    ap.add_argument("--depth", type=int, default=4)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--set", action="append", default=[], help="dotted dinov3 config override key=value")
    a = ap.parse_args()

    sys.path.insert(0, a.dinov3)
    import torch
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    # The package moves batches with .cuda(); on a CPU-only machine that is the identity.
    torch.Tensor.cuda = lambda self, *args, **kw: self
    # the package's Sinkhorn-Knopp all-reduces its sums: one process, gloo on the loopback
    import torch.distributed as dist
    dist.init_process_group("gloo", init_method="tcp://127.0.0.1:%d" % (29500 + os.getpid() % 1000), rank=0,
                            world_size=1)
    from omegaconf import OmegaConf
    import dinov3.models.vision_transformer as vits
    from dinov3.train.ssl_meta_arch import SSLMetaArch
    from dinov3.train.train import apply_optim_scheduler, build_optimizer, build_schedulers

    cfg = OmegaConf.load(os.path.join(a.dinov3, "dinov3/configs/ssl_default_config.yaml"))
    # configs/demo.yaml in dinov3's keys
    demo = {
        "student.arch": "vit_dinox_demo", "student.patch_size": 8, "student.n_storage_tokens": 4,
        "student.drop_path_rate": 0.1, "student.layerscale": 1e-5, "student.norm_layer": "layernormbf16",
        "student.mask_k_bias": True, "student.pos_embed_rope_rescale_coords": 2.0,
        "student.pos_embed_rope_dtype": "fp32", "student.qkv_bias": True,
        "dino.head_n_prototypes": 1024, "dino.head_bottleneck_dim": 64, "dino.head_hidden_dim": 256,
        "ibot.head_n_prototypes": 1024, "ibot.head_bottleneck_dim": 64, "ibot.head_hidden_dim": 256,
        "teacher.momentum_teacher": 0.992, "teacher.final_momentum_teacher": 1.0,
        "teacher.warmup_teacher_temp": 0.04, "teacher.teacher_temp": 0.07, "teacher.warmup_teacher_temp_epochs": 1,
        "optim.epochs": a.total_steps // a.epoch_length, "optim.warmup_epochs": 1, "optim.freeze_last_layer_epochs": 0,
        "optim.lr": 1e-3, "optim.min_lr": 1e-6, "optim.weight_decay": 0.04, "optim.weight_decay_end": 0.4,
        "optim.multi_tensor_optim": False,
        "train.OFFICIAL_EPOCH_LENGTH": a.epoch_length, "train.batch_size_per_gpu": 16, "train.compile": False,
        "crops.global_crops_size": 64, "crops.local_crops_size": 32, "crops.local_crops_number": 4,
    }
    for k, v in demo.items():
        OmegaConf.update(cfg, k, v, force_add=True)
    for kv in a.set:
        k, v = kv.split("=", 1)
        OmegaConf.update(cfg, k, json.loads(v) if v[:1] in "0123456789-[{tf" else v, force_add=True)
    # sqrt_wrt_1024 as dinov3's apply_scaling_rules_to_cfg does it
    cfg.optim.lr = cfg.optim.lr * 4 * math.sqrt(cfg.train.batch_size_per_gpu / 1024.0)
    vits.vit_dinox_demo = partial(vits.DinoVisionTransformer, embed_dim=a.dim, depth=a.depth, num_heads=a.heads,
                                  ffn_ratio=4)

    with torch.device("meta"):
        model = SSLMetaArch(cfg)
    model.to_empty(device="cpu")
    model.init_weights()
    model.train()
    optimizer = build_optimizer(cfg, model.get_params_groups())
    lr_s, wd_s, mom_s, tt_s, llr_s = build_schedulers(cfg)

    # capture the teacher's SK targets and the student logits of the global crops for the health metrics
    cap = {}
    sk = model.dino_loss.sinkhorn_knopp_teacher
    def sk_hook(x, teacher_temp, **kw):
        out = sk(x, teacher_temp=teacher_temp, **kw)
        cap["t"], cap["t_in"] = out.detach(), x.detach()
        return out
    model.dino_loss.sinkhorn_knopp_teacher = sk_hook
    fwd = model.dino_loss.forward
    def loss_hook(student_logits, teacher_probs, ignore_diagonal=False):
        if ignore_diagonal:
            cap["s"] = student_logits.detach()
        return fwd(student_logits, teacher_probs, ignore_diagonal=ignore_diagonal)
    model.dino_loss.forward = loss_hook
    tb = model.teacher.backbone.forward
    def tb_hook(*args, **kw):
        out = tb(*args, **kw)
        cap["cls"] = out["x_norm_clstoken"].detach()
        return out
    model.teacher.backbone.forward = tb_hook

    files = sorted(glob.glob(os.path.join(a.batches, "step_*_global.npy")))
    if len(files) < a.steps:
        sys.exit(f"{a.batches} holds {len(files)} batches, {a.steps} needed")
    out = open(a.out, "w")
    for it in range(a.steps):
        base = files[it][: -len("_global.npy")]
        g = torch.from_numpy(np.load(base + "_global.npy"))
        loc = torch.from_numpy(np.load(base + "_local.npy"))
        m = torch.from_numpy(np.load(base + "_masks.npy").astype(bool))
        B = g.shape[0] // 2
        counts = m.sum(1).clamp_min(1).float()
        idx = m.flatten().nonzero().flatten()
        w = (1.0 / counts)[:, None].expand_as(m).flatten()[idx]
        data = {"collated_global_crops": g, "collated_local_crops": loc, "collated_masks": m,
                "mask_indices_list": idx, "masks_weight": w, "n_masked_patches": torch.tensor([idx.numel()]),
                "upperbound": idx.numel(), "global_batch_size": B}
        apply_optim_scheduler(optimizer, lr_s[it], wd_s[it], llr_s[it])
        optimizer.zero_grad(set_to_none=True)
        total, md = model.forward_backward(data, teacher_temp=tt_s[it], iteration=it)
        gn = {}
        for k, v in model.student.items():
            gn[k] = torch.nn.utils.clip_grad_norm_(v.parameters(), max_norm=cfg.optim.clip_grad).item()
        optimizer.step()
        model.update_ema(mom_s[it])
        if it % a.log_every == 0 or it == a.steps - 1:
            r = {"step": it, "loss/total": float(total), "loss/dino_local": float(md["dino_local_crops_loss"]),
                 "loss/dino_global": float(md["dino_global_crops_loss"]), "loss/koleo": float(md["koleo_loss"]),
                 "loss/ibot": float(md["ibot_loss"]), "sched/lr": float(lr_s[it]),
                 "sched/momentum": float(mom_s[it]), "sched/teacher_temp": float(tt_s[it]),
                 "grad_norm/dino_head": gn["dino_head"], "grad_norm/backbone": gn["backbone"]}
            r.update(health(cap["t"], cap["s"], cap["cls"], model.dino_loss.student_temp))
            out.write(json.dumps(r) + "\n")
            out.flush()
            print(f"peer step {it}: dino_global {r['loss/dino_global']:.4f} dino_local {r['loss/dino_local']:.4f} "
                  f"ibot {r['loss/ibot']:.4f} teacher entropy {r['health/dino_teacher_entropy']:.4f} "
                  f"cls cos {r['health/cls_cos']:.3f}", flush=True)


if __name__ == "__main__":
    main()
