"""ssl_ref.py - PyTorch reference of ONE whole DINOv3 SSL step (student, EMA
teacher, Gram teacher, DINO / iBOT heads, all losses, per-submodule clipping,
AdamW with DINOv3 parameter groups, EMA), written from
/work/shared/design/dinov3-spec.md §2-§5 and §7 (not from the dinov3 code).

It is the oracle of src/train/ssl.c + src/nn/head.c via
tests/fixtures/ssl_tiny.safetensors (gen_ssl_fixtures.py). The backbone is
vit_ref.DinoVit; the loss formulas are the other reference, loss_ref.py
(Sinkhorn-Knopp, DINO / iBOT cross-entropies, KoLeo, Gram MSE, total
weights, §7.2 parameter multipliers), reused as they match the spec.

Shapes: B images, G = 2B global crops, L = n_local*B local crops (crop-major:
row = crop*B + b), D dim, R registers, P patches of a global crop, Pg of a
Gram crop, M masked patches over the G global crops, K prototypes.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

import loss_ref as LR
import vit_ref as V


class DinoHead(nn.Module):
    """Spec §2: Linear-GELU-Linear-GELU-Linear -> L2 normalise (eps 1e-12) ->
    bias-free last_layer. State-dict names mlp.0/2/4.{weight,bias}, last_layer.weight."""

    def __init__(self, in_dim, hidden, bottleneck, prototypes):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(), nn.Linear(hidden, hidden),
                                 nn.GELU(), nn.Linear(hidden, bottleneck))
        self.last_layer = nn.Linear(bottleneck, prototypes, bias=False)

    def forward(self, x):                               # [rows, D] -> [rows, K]
        z = self.mlp(x)
        return self.last_layer(F.normalize(z, p=2, dim=-1, eps=1e-12))


class SslModel(nn.Module):
    """Student or EMA teacher: combined names backbone.* / dino_head.* / ibot_head.*."""

    def __init__(self, vcfg, dino, ibot):
        super().__init__()
        self.backbone = V.DinoVit(vcfg)
        self.dino_head = DinoHead(vcfg.dim, *dino)
        self.ibot_head = DinoHead(vcfg.dim, *ibot)


SUBMODULES = ("backbone", "dino_head", "ibot_head")


def param_groups(model, depth, layer_decay, patch_embed_mult):
    """Spec §7.2, one torch.optim group per tensor: lr_mult, wd_mult, is_last.
    Names are taken relative to the submodule (backbone with its depth, heads with depth 0,
    which gives lr_mult 1, wd 0 for biases, last_layer on the last-layer lr)."""
    groups = []
    for name, p in model.named_parameters():
        sub, rel = name.split(".", 1)
        lr_m, wd_m, last = LR.param_mult(rel, depth if sub == "backbone" else 0, layer_decay,
                                         patch_embed_mult)
        groups.append({"params": [p], "name": name, "lr_mult": lr_m, "wd_mult": wd_m, "is_last": last})
    return groups


def make_optimizer(model, cfg):
    groups = param_groups(model, cfg["depth"], cfg["layer_decay"], cfg["patch_embed_lr_mult"])
    return torch.optim.AdamW(groups, lr=0.0, betas=tuple(cfg["betas"]), eps=cfg["adam_eps"],
                             weight_decay=0.0)


def gram_teacher_patches(gram_backbone, gram_imgs, n_side):
    """§5.1: Gram teacher (eval, clean Gram crops) final-norm patch tokens [G, Pg, D],
    resized to the student grid n_side x n_side (bicubic a=-0.75, align_corners False,
    no antialias) BEFORE the L2 normalisation of §3.4 -> [G, n_side^2, D]."""
    r1 = 1 + gram_backbone.cfg.registers
    tok = gram_backbone.forward_features_list([(gram_imgs, None)])[0][:, r1:]   # [G, Pg, D]
    G, Pg, D = tok.shape
    ng = int(round(math.sqrt(Pg)))
    if ng == n_side:
        return tok
    x = tok.transpose(1, 2).reshape(G, D, ng, ng)                                # channels first
    x = LR.resize_bicubic(x, n_side)                                             # [G, D, n, n]
    return x.reshape(G, D, n_side * n_side).transpose(1, 2)


def ssl_losses(student, teacher, gram_backbone, batch, sched, cfg):
    """Forward of one step. batch: global [G,3,S,S], local [L,3,s,s], gram [G,3,Sg,Sg],
    masks [G,P] bool (1 = masked). Returns (total, terms dict, info dict)."""
    B, n_local = cfg["batch"], cfg["n_local"]
    G = 2 * B
    R1 = 1 + cfg["registers"]
    ts, tt = cfg["student_temp"], sched["teacher_temp"]
    masks = batch["masks"].bool()
    flat = masks.reshape(-1)                                   # [G*P], crop-major
    cnt = masks.sum(dim=1).clamp(min=1).to(batch["global"].dtype)
    weights = (1.0 / cnt)[:, None].expand_as(masks).reshape(-1)[flat]           # [M] 1/n_i

    # ---- teacher: clean global crops, eval, no grad (§4.1) ----
    with torch.no_grad():
        t_tok = teacher.backbone.forward_features_list([(batch["global"], None)])[0]  # [G,T,D]
        T_dino = LR.sinkhorn_knopp(teacher.dino_head(t_tok[:, 0]), tt, cfg["sk_iters"])   # [G,K]
        D = t_tok.shape[-1]
        t_patch = t_tok[:, R1:].reshape(-1, D)[flat]                            # [M, D]
        T_ibot = LR.sinkhorn_knopp(teacher.ibot_head(t_patch), tt, cfg["sk_iters"])       # [M,Ki]

    # ---- student: masked global crops + local crops (no drop path, no RoPE aug) ----
    s_glob, s_loc = student.backbone.forward_features_list(
        [(batch["global"], masks), (batch["local"], None)])
    cls = torch.cat([s_glob[:, 0], s_loc[:, 0]], dim=0)                          # [G+L, D]
    S_dino = student.dino_head(cls)
    dino_local = LR.dino_loss(S_dino[G:], T_dino, B, ts, ignore_diag=False)
    dino_global = LR.dino_loss(S_dino[:G], T_dino, B, ts, ignore_diag=True)
    k0, nn0 = LR.koleo_loss(s_glob[:B, 0])
    k1, nn1 = LR.koleo_loss(s_glob[B:, 0])
    koleo = (k0 + k1) / 2
    S_ibot = student.ibot_head(s_glob[:, R1:].reshape(-1, D)[flat])             # [M, Ki]
    ibot = LR.ibot_loss(S_ibot, T_ibot, weights, G, ts)

    # ---- Gram teacher (frozen, eval, no grad) ----
    with torch.no_grad():
        n_side = cfg["global_size"] // cfg["patch"]
        xt = gram_teacher_patches(gram_backbone, batch["gram"], n_side)        # [G, P, D]
    gram = LR.gram_loss(s_glob[:, R1:], xt, cfg["gram_img_level"])

    terms = {"dino_local": dino_local, "dino_global": dino_global, "koleo": koleo,
             "ibot": ibot, "gram": gram}
    total, _ = LR.total_loss(terms, w_dino=cfg["w_dino"], w_koleo=cfg["w_koleo"],
                             w_ibot=cfg["w_ibot"], w_gram=sched["w_gram"],
                             local_weight=sched["lambda_local"], G=2, L=n_local)
    info = {"M": int(flat.sum()), "koleo_nn": (nn0, nn1), "cls": cls.detach(),
            "T_dino": T_dino, "T_ibot": T_ibot, "S_dino_glob": S_dino[:G].detach(), "S_ibot": S_ibot.detach(),
            "t_cls": t_tok[:, 0], "t_patch": t_tok[:, R1:]}
    return total, terms, info


def ssl_step(student, teacher, gram_backbone, opt, batch, sched, cfg, autocast_bf16=False):
    """One full step (§7.1, §5.4): forward, backward, per-submodule clipping,
    AdamW with scheduled lr / last-layer lr / wd, EMA of every trainable tensor.
    autocast_bf16: the forward under torch.autocast("cpu", bfloat16), as DINOv3's
    mixed precision runs it (float32 models: linear / matmul in bf16, float32
    master weights, optimizer and EMA).
    Returns (loss vector [total, dino_local, dino_global, koleo, ibot, gram],
    pre-clip gradient norms [backbone, dino_head, ibot_head], info)."""
    opt.zero_grad(set_to_none=False)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast_bf16):
        total, terms, info = ssl_losses(student, teacher, gram_backbone, batch, sched, cfg)
    total = total.float() if autocast_bf16 else total
    terms = {k: v.float() for k, v in terms.items()} if autocast_bf16 else terms
    total.backward()
    info["grads"] = {n: (p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p))
                     for n, p in student.named_parameters()}  # pre-clip
    norms = []
    for sub in SUBMODULES:
        ps = [p for p in getattr(student, sub).parameters()]
        for p in ps:  # a tensor outside the graph has an exact zero gradient
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        n = math.sqrt(sum(float((p.grad.double() ** 2).sum()) for p in ps))
        norms.append(n)
        f = LR.clip_factor(n, cfg["clip_grad"])
        if f < 1.0:
            for p in ps:
                p.grad.mul_(f)
    for g in opt.param_groups:
        g["lr"] = (sched["last_layer_lr"] if g["is_last"] else sched["lr"]) * g["lr_mult"]
        g["weight_decay"] = sched["wd"] * g["wd_mult"]
    opt.step()
    m = sched["momentum"]
    with torch.no_grad():
        for (n_t, pt), (n_s, ps) in zip(teacher.named_parameters(), student.named_parameters()):
            assert n_t == n_s
            pt.mul_(m).add_(ps, alpha=1 - m)
    losses = [float(total)] + [float(terms[k]) for k in
                               ("dino_local", "dino_global", "koleo", "ibot", "gram")]
    return losses, norms, info


HEALTH_ORDER = ["dino_t_entropy", "dino_t_mean_entropy", "dino_t_used", "dino_t_agree", "dino_s_kl_uniform",
                "ibot_t_entropy", "ibot_t_used", "ibot_s_kl_uniform", "cls_std", "cls_erank", "cls_cos",
                "patch_cos", "last_layer_norm", "cls_window_r2", "dino_t_window_r2"]


def health(info, student, cfg, window):
    """The training-health metrics of docs/objective.md from the step's tensors, written
    from their definitions (not from the C code): entropies of the teacher targets in units
    of ln K, prototypes that are some row's argmax, cross-crop argmax agreement, KL(student
    || uniform), teacher CLS spread / effective rank / mean cosine, patch cosine, and the
    RMS row norm of the student's DINO prototypes after the step, and the share of the teacher
    CLS variance and of the DINO targets' variance explained by the global crops' CT window
    (window: [2B] integer groups), as 1 - within-group / total sum of squares. Order:
    HEALTH_ORDER."""
    def ent(P):
        P = P / P.sum(-1, keepdim=True)
        return -(P * torch.where(P > 0, P.log(), torch.zeros_like(P))).sum(-1)
    def kl_uniform(S, temp):
        logp = torch.log_softmax(S / temp, -1)
        return math.log(S.shape[-1]) + (logp.exp() * logp).sum(-1).mean()
    B = cfg["batch"]
    T, Ti = info["T_dino"], info["T_ibot"]
    K, Ki = T.shape[-1], Ti.shape[-1]
    am = T.argmax(-1)
    x = info["t_cls"]
    xc = x - x.mean(0)
    ev = torch.linalg.eigvalsh(xc @ xc.T).clamp(min=0)
    p = ev / ev.sum()
    z = torch.nn.functional.normalize(x, dim=-1)
    n = z.shape[0]
    zp = torch.nn.functional.normalize(info["t_patch"], dim=-1)               # [G, P, D]
    P = zp.shape[1]
    pc = ((zp.sum(1).pow(2).sum(-1) - P) / (P * (P - 1))).mean()
    W = student.dino_head.last_layer.weight
    def window_r2(v):  # 1 - within-group / total sum of squares
        gmean = torch.stack([v[window == k].mean(0) for k in range(int(window.max()) + 1)])
        return 1 - (v - gmean[window]).pow(2).sum() / (v - v.mean(0)).pow(2).sum()
    out = {
        "dino_t_entropy": ent(T).mean() / math.log(K),
        "dino_t_mean_entropy": ent(T.mean(0, keepdim=True))[0] / math.log(K),
        "dino_t_used": torch.unique(am).numel(),
        "dino_t_agree": (am[:B] == am[B:]).double().mean(),
        "dino_s_kl_uniform": kl_uniform(info["S_dino_glob"], cfg["student_temp"]),
        "ibot_t_entropy": ent(Ti).mean() / math.log(Ki),
        "ibot_t_used": torch.unique(Ti.argmax(-1)).numel(),
        "ibot_s_kl_uniform": kl_uniform(info["S_ibot"], cfg["student_temp"]),
        "cls_std": xc.pow(2).mean(0).sqrt().mean(),
        "cls_erank": torch.exp(-(p[p > 0] * p[p > 0].log()).sum()),
        "cls_cos": (z.sum(0).pow(2).sum() - n) / (n * (n - 1)),
        "patch_cos": pc,
        "last_layer_norm": (W.double().pow(2).sum() / W.shape[0]).sqrt(),
        "cls_window_r2": window_r2(x),
        "dino_t_window_r2": window_r2(T),
    }
    return [float(out[k]) for k in HEALTH_ORDER]
