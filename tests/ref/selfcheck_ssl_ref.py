"""selfcheck_ssl_ref.py - checks ssl_ref.py (the whole-step SSL reference)
against independent formulations before its fixture is trusted:

* Gram resize: F.interpolate bicubic == an explicit separable Keys kernel
  (a = -0.75, src = (i + 0.5) * in/out - 0.5, indices clamped at the border),
  down- and up-sampling;
* DINO / iBOT head == the spec §2 formulas written out (erf GELU,
  z / max(|z|, 1e-12), bias-free last layer) and the state-dict names;
* parameter groups == the spec §7.2 table spelled out for depth 2;
* Sinkhorn-Knopp targets: rows sum to 1, invariant to a constant logit shift;
* one float64 step: the total-loss gradient matches central differences along
  random directions over ALL student parameters; the pre-clip norms, the clip
  factor, the AdamW update (torch formula written out, per-tensor lr / wd) and
  the EMA teacher are recomputed by hand for every tensor.

    /usr/bin/python3 tests/ref/selfcheck_ssl_ref.py     # exit 0 = all pass (~5 s)
"""
import math
import os
import random
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_ssl_fixtures as GF  # noqa: E402
import loss_ref as LR  # noqa: E402
import ssl_ref as S  # noqa: E402

FAILS = []


def check(cond, what):
    print("%s  %s" % ("ok  " if cond else "FAIL", what))
    if not cond:
        FAILS.append(what)


def keys_resize(x, n_out):
    """[N, C, n, n] -> [N, C, n_out, n_out], explicit separable Keys bicubic."""
    a = -0.75

    def w(t):
        t = abs(t)
        if t <= 1:
            return (a + 2) * t ** 3 - (a + 3) * t ** 2 + 1
        if t < 2:
            return a * t ** 3 - 5 * a * t ** 2 + 8 * a * t - 4 * a
        return 0.0

    n_in = x.shape[-1]
    M = torch.zeros(n_out, n_in, dtype=x.dtype)
    for i in range(n_out):
        src = (i + 0.5) * n_in / n_out - 0.5
        x0 = math.floor(src)
        for k in range(-1, 3):
            j = min(max(x0 + k, 0), n_in - 1)
            M[i, j] += w(src - (x0 + k))
    return torch.einsum("ij,ncjk,lk->ncil", M, x, M)


def check_resize():
    g = torch.Generator().manual_seed(1)
    for n_in, n_out in ((8, 4), (8, 3), (5, 7), (4, 4)):
        x = torch.randn(2, 5, n_in, n_in, generator=g, dtype=torch.float64)
        e = (LR.resize_bicubic(x, n_out) - keys_resize(x, n_out)).abs().max().item()
        check(e < 1e-12, "bicubic %d -> %d == explicit Keys a=-0.75 (max diff %.1e)" % (n_in, n_out, e))


def check_head():
    torch.manual_seed(2)
    h = S.DinoHead(12, 10, 6, 9).double()
    names = [n for n, _ in h.named_parameters()]
    check(names == LR.head_names(), "head state-dict names %s" % names)
    x = torch.randn(5, 12, dtype=torch.float64)
    W = {n: p.detach() for n, p in h.named_parameters()}
    gelu = lambda v: 0.5 * v * (1 + torch.erf(v / math.sqrt(2)))  # noqa: E731
    h1 = gelu(x @ W["mlp.0.weight"].t() + W["mlp.0.bias"])
    h2 = gelu(h1 @ W["mlp.2.weight"].t() + W["mlp.2.bias"])
    z = h2 @ W["mlp.4.weight"].t() + W["mlp.4.bias"]
    u = z / z.norm(dim=1, keepdim=True).clamp(min=1e-12)
    e = (h(x) - u @ W["last_layer.weight"].t()).abs().max().item()
    check(e < 1e-13, "head == spec §2 formulas (max diff %.1e)" % e)


def check_groups():
    cfg = GF.CFG
    _, _, student, _, _ = GF.build_models(cfg, torch.Generator().manual_seed(3))
    got = {g["name"]: (g["lr_mult"], g["wd_mult"], g["is_last"])
           for g in S.param_groups(student, 2, 0.9, 0.2)}
    d3 = 0.9 ** 3
    want = {
        "backbone.cls_token": (d3, 1, False), "backbone.storage_tokens": (d3, 1, False),
        "backbone.mask_token": (d3, 1, False),
        "backbone.patch_embed.proj.weight": (d3 * 0.2, 1, False),
        "backbone.patch_embed.proj.bias": (d3 * 0.2, 0, False),
        "backbone.blocks.0.norm1.weight": (0.81, 0, False),
        "backbone.blocks.0.attn.qkv.weight": (0.81, 1, False),
        "backbone.blocks.0.attn.qkv.bias": (0.81, 0, False),
        "backbone.blocks.0.ls1.gamma": (0.81, 0, False),
        "backbone.blocks.0.mlp.fc1.weight": (0.81, 1, False),
        "backbone.blocks.1.attn.proj.weight": (0.9, 1, False),
        "backbone.blocks.1.norm2.bias": (0.9, 0, False),
        "backbone.blocks.1.ls2.gamma": (0.9, 0, False),
        "backbone.norm.weight": (1, 0, False), "backbone.norm.bias": (1, 0, False),
        "dino_head.mlp.0.weight": (1, 1, False), "dino_head.mlp.0.bias": (1, 0, False),
        "dino_head.mlp.4.weight": (1, 1, False), "dino_head.last_layer.weight": (1, 1, True),
        "ibot_head.mlp.2.bias": (1, 0, False), "ibot_head.last_layer.weight": (1, 1, True),
    }
    bad = [n for n, v in want.items()
           if abs(got[n][0] - v[0]) > 1e-15 or got[n][1] != v[1] or got[n][2] != v[2]]
    check(not bad and len(got) == len(list(student.parameters())),
          "param groups == spec §7.2 table (%d tensors, wrong: %s)" % (len(got), bad))


def check_sinkhorn():
    g = torch.Generator().manual_seed(4)
    z = torch.randn(21, 96, generator=g, dtype=torch.float64)
    q = LR.sinkhorn_knopp(z, 0.04, 3)
    e = (q.sum(1) - 1).abs().max().item()
    e2 = (LR.sinkhorn_knopp(z + 3.0, 0.04, 3) - q).abs().max().item()
    check(e < 1e-12 and e2 < 1e-12 and (q >= 0).all().item(),
          "Sinkhorn-Knopp rows sum to 1 (%.1e), shift-invariant (%.1e)" % (e, e2))


def check_step():
    cfg = GF.CFG
    gen = torch.Generator().manual_seed(GF.SEED)
    rng = random.Random(GF.SEED)
    _, _, student, teacher, gram = GF.build_models(cfg, gen)
    b = GF.make_batch(cfg, gen, rng)
    b = {k: (v.double() if v.dtype != torch.uint8 else v) for k, v in b.items()}
    sc = {k: v[0] for k, v in GF.schedule().items()}
    sc["last_layer_lr"] = sc["lr"]  # exercise the last-layer group too
    params = dict(student.named_parameters())

    # gradient vs central differences along random directions over every parameter
    student.zero_grad()
    total, _, _ = S.ssl_losses(student, teacher, gram, b, sc, cfg)
    total.backward()
    gens = torch.Generator().manual_seed(5)
    for k in range(3):
        v = {n: torch.randn(p.shape, generator=gens, dtype=torch.float64) for n, p in params.items()}
        dot = sum(float((p.grad * v[n]).sum()) for n, p in params.items() if p.grad is not None)
        h = 1e-5
        vals = []
        for sgn in (1, -1):
            with torch.no_grad():
                for n, p in params.items():
                    p.add_(v[n], alpha=sgn * h)
                vals.append(float(S.ssl_losses(student, teacher, gram, b, sc, cfg)[0]))
                for n, p in params.items():
                    p.add_(v[n], alpha=-sgn * h)
        fd = (vals[0] - vals[1]) / (2 * h)
        check(abs(fd - dot) <= 1e-6 * max(1.0, abs(dot)),
              "dL/dtheta . v == central difference (direction %d: %.9g vs %.9g)" % (k, dot, fd))

    # one step, then every tensor recomputed by hand
    p0 = {n: p.detach().clone() for n, p in params.items()}
    t0 = {n: p.detach().clone() for n, p in teacher.named_parameters()}
    opt = S.make_optimizer(student, cfg)
    _, norms, info = S.ssl_step(student, teacher, gram, opt, b, sc, cfg)
    groups = {g["name"]: g for g in opt.param_groups}
    b1, b2 = cfg["betas"]
    worst = worst_t = worst_n = 0.0
    for i, sub in enumerate(S.SUBMODULES):
        names = [n for n in params if n.startswith(sub + ".")]
        nrm = math.sqrt(sum(float((info["grads"][n] ** 2).sum()) for n in names))
        worst_n = max(worst_n, abs(nrm - norms[i]) / nrm)
        f = min(1.0, cfg["clip_grad"] / (nrm + 1e-6))
        for n in names:
            gr = info["grads"][n] * f
            lr = (sc["last_layer_lr"] if groups[n]["is_last"] else sc["lr"]) * groups[n]["lr_mult"]
            wd = sc["wd"] * groups[n]["wd_mult"]
            m, v = (1 - b1) * gr, (1 - b2) * gr * gr
            want = p0[n] * (1 - lr * wd) - lr / (1 - b1) * m / (v.sqrt() / math.sqrt(1 - b2) + cfg["adam_eps"])
            worst = max(worst, (params[n].detach() - want).abs().max().item())
            tw = sc["momentum"] * t0[n] + (1 - sc["momentum"]) * want
            worst_t = max(worst_t, (dict(teacher.named_parameters())[n].detach() - tw).abs().max().item())
    check(worst_n < 1e-12, "pre-clip norms per submodule (rel diff %.1e; norms %s > clip)"
          % (worst_n, ["%.2f" % x for x in norms]))
    check(worst < 1e-15, "AdamW step 1 with clip + per-tensor lr/wd == formula (max diff %.1e)" % worst)
    check(worst_t < 1e-15, "EMA teacher == m*teacher + (1-m)*student (max diff %.1e)" % worst_t)


def main():
    torch.set_num_threads(1)
    check_resize()
    check_head()
    check_groups()
    check_sinkhorn()
    check_step()
    print("%d failed" % len(FAILS))
    return 1 if FAILS else 0


if __name__ == "__main__":
    sys.exit(main())
