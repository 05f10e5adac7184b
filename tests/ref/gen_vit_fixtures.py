"""gen_vit_fixtures.py - writes the ViT backbone fixtures the C tests compare against.

Run (from the repository root, deterministic, re-runnable):
    /usr/bin/python3 tests/ref/gen_vit_fixtures.py --out tests/fixtures

For each config it writes tests/fixtures/vit_<name>.safetensors (plain AdamW)
and vit_<name>_mults.safetensors (AdamW with per-tensor lr/wd multipliers),
plus vit_mlp2crop_train.safetensors (train mode: injected stochastic-depth
subsets and RoPE augmentation). Every file is self-contained; the layout is
documented in tests/ref/README.md.

Values: parameters, inputs and probes are drawn in float32 from a seeded
torch.Generator, non-trivial on purpose (LayerScale gammas in [0.1, 1],
nonzero biases including the ignored k third of qkv.bias, LayerNorm weights
around 1) so that the comparisons are sensitive. All reference values are
computed in float64 from those float32 values and stored as float32.
"""
import argparse
import json
import math
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st  # noqa: E402
import vit_ref as V  # noqa: E402

ADAMW = dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.05)
ADAMW_STEPS = 3
TAU = 2e-5  # smallest |grad| / max|grad| per tensor kept in the fixtures (see condition_probes)

# name, config, crop groups [(batch, side, masked patch lists per image or None)], ln eps
CONFIGS = {
    "swiglu": dict(
        cfg=V.VitConfig(dim=64, depth=2, heads=4, registers=2, patch=8, ffn="swiglu",
                        ffn_ratio=2.0, swiglu_align=8, ln_eps=1e-5),
        groups=[(2, 32, [[0, 5, 6, 9, 15], [2, 3, 12]])],
        seed=101),
    "mlp2crop": dict(
        cfg=V.VitConfig(dim=48, depth=2, heads=3, registers=4, patch=8, ffn="mlp",
                        ffn_ratio=4.0, ln_eps=1e-6),
        groups=[(2, 32, [[1, 4, 5, 10, 11, 14], [0, 7, 8, 13]]), (3, 16, None)],
        seed=202),
}


def param_groups_dinov3(names, depth, layer_decay=0.9, patch_embed_mult=0.2):
    """The per-tensor multipliers of the _mults variant: DINOv3's rule (spec §7.2)
    with layer_decay 0.9 and patch-embed 0.2. Returns {name: {"lr": m, "wd": m}}."""
    out = {}
    for n in names:
        if n.startswith("patch_embed."):
            lr = layer_decay ** (depth + 1) * patch_embed_mult
        elif n in ("cls_token", "storage_tokens", "mask_token"):
            lr = layer_decay ** (depth + 1)
        elif n.startswith("blocks."):
            i = int(n.split(".")[1])
            lr = layer_decay ** (depth - i)
        else:  # norm.*
            lr = 1.0
        wd = 0.0 if (n.endswith("bias") or "norm" in n or "gamma" in n) else 1.0
        out[n] = {"lr": lr, "wd": wd}
    return out


def randomize(model, gen):
    """Non-trivial float32 values for every parameter (see module doc)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("gamma"):
                v = torch.rand(p.shape, generator=gen) * 0.9 + 0.1
            elif name in ("cls_token", "storage_tokens", "mask_token"):
                v = 0.5 * torch.randn(p.shape, generator=gen)
            elif p.dim() >= 2:  # linear / conv weights: O(1) activations
                v = torch.randn(p.shape, generator=gen) / math.sqrt(p[0].numel())
            elif ".norm" in name or name.startswith("norm."):
                v = (1.0 if name.endswith("weight") else 0.0) + 0.2 * torch.randn(p.shape, generator=gen)
            else:  # biases, including the ignored k third of qkv.bias
                v = 0.2 * torch.randn(p.shape, generator=gen)
            p.copy_(v)


def make_inputs(cfg, groups, gen):
    """Per group: images [N,3,S,S] float32, mask [N,P] uint8 or None, probe r [N,T,D]."""
    out = []
    for n, side, masked in groups:
        x = torch.randn(n, cfg.in_chans, side, side, generator=gen)
        p = (side // cfg.patch) ** 2
        m = None
        if masked is not None:
            m = torch.zeros(n, p, dtype=torch.uint8)
            for i, idx in enumerate(masked):
                m[i, idx] = 1
        r = torch.randn(n, 1 + cfg.registers + p, cfg.dim, generator=gen)
        out.append((x, m, r))
    return out


def condition_probes(model64, inputs, cfg, tau=TAU, rounds=8):
    """Makes the first AdamW step well-conditioned. At step 1 AdamW moves every
    element by ~lr*sign(g) (m_hat/sqrt(v_hat) = g/|g|), so an element whose
    gradient is near zero could flip sign under float32 rounding in the C code
    and move by 2*lr. The gradient is linear in the probe r (g = J^T r), so for
    each element e with |g_e| < tau * max|g_tensor| (the ignored k-bias third
    excluded) r is moved along u_e = d tokens / d theta_e, the direction that
    changes g_e fastest, until g_e = +-4*tau*max|g_tensor|. The change to r is
    tiny; a few rounds settle the cross-effects. Returns the new probes (float32)."""
    rs = [r.double().clone() for _, _, r in inputs]
    names = model64.trainable_names()
    params = list(model64.parameters())
    for _ in range(rounds):
        rr = [r.clone().requires_grad_(True) for r in rs]
        loss, _ = loss_of(model64, [(x, m, r) for (x, m, _), r in zip(inputs, rr)])
        gs = grads_of(loss, params, create_graph=True)
        fragile = []
        for n, g in zip(names, gs):
            flat = g.flatten()
            a = flat.detach().abs()
            gmax = a.max().item()
            bad = a < tau * gmax
            if n.endswith("attn.qkv.bias"):
                bad[cfg.dim:2 * cfg.dim] = False
            fragile += [(flat, int(i), gmax) for i in torch.nonzero(bad).flatten()]
        if not fragile:
            break
        deltas = [torch.zeros_like(r) for r in rs]
        for flat, i, gmax in fragile:
            u = torch.autograd.grad(flat[i], rr, retain_graph=True)
            ge = flat[i].item()
            target = (1.0 if ge >= 0 else -1.0) * 4 * tau * gmax
            nn2 = sum((x * x).sum() for x in u).item()
            for d, x in zip(deltas, u):
                d += (target - ge) / nn2 * x
        rs = [(r + d).float().double() for r, d in zip(rs, deltas)]
    return [r.float() for r in rs]


def loss_of(model, inputs, drop=None, aug=None):
    """L = sum_g sum(tokens_g * r_g); also returns the token tensors."""
    dt = next(model.parameters()).dtype
    groups = [(x.to(dt), None if m is None else m.bool()) for x, m, _ in inputs]
    toks = model.forward_features_list(groups, drop, aug)
    loss = sum((t * r.to(dt)).sum() for t, (_, _, r) in zip(toks, inputs))
    return loss, toks


def adamw_run(model64, inputs, mults):
    """ADAMW_STEPS steps of torch.optim.AdamW on the same loss/inputs (float64).
    Returns (list of {name: param after step s}, losses before each step)."""
    names = model64.trainable_names()
    params = dict(model64.named_parameters())
    if mults is None:
        opt = torch.optim.AdamW(list(params.values()), **ADAMW)
    else:
        opt = torch.optim.AdamW([
            {"params": [params[n]], "lr": ADAMW["lr"] * mults[n]["lr"],
             "weight_decay": ADAMW["weight_decay"] * mults[n]["wd"]} for n in names
        ], **ADAMW)
    snaps, losses = [], []
    for _ in range(ADAMW_STEPS):
        opt.zero_grad()
        loss, _ = loss_of(model64, inputs)
        loss.backward()
        losses.append(loss.item())
        opt.step()
        snaps.append({n: params[n].detach().clone() for n in names})
    return snaps, losses


def grads_of(loss, params, **kw):
    """dloss/dparams; a parameter outside the graph (mask_token when no group is
    masked) gets an exact zero gradient, as DINOv3's `x + 0 * mask_token` gives."""
    gs = torch.autograd.grad(loss, params, allow_unused=True, **kw)
    return [torch.zeros_like(p) if g is None else g for g, p in zip(gs, params)]


def f32(t):
    return t.detach().to(torch.float32).contiguous()


def config_meta(cfg, groups):
    return {
        "dim": cfg.dim, "depth": cfg.depth, "heads": cfg.heads, "registers": cfg.registers,
        "patch": cfg.patch, "in_chans": cfg.in_chans, "ffn": cfg.ffn,
        "ffn_hidden": cfg.ffn_hidden, "ffn_ratio": cfg.ffn_ratio,
        "swiglu_align": cfg.swiglu_align if cfg.ffn == "swiglu" else None,
        "ln_eps": cfg.ln_eps, "mask_k_bias": cfg.mask_k_bias, "rope_base": cfg.rope_base,
        "img_sizes": [s for _, s, _ in groups], "batch": [n for n, _, _ in groups],
        "masked_groups": [g for g, (_, _, m) in enumerate(groups) if m is not None],
    }


def grad_stats(names, grads, cfg):
    """Smallest |g| / max|g| over the tensors (k-bias third excluded), and how
    many elements fall below TAU (condition_probes makes that zero)."""
    worst, count = 1e30, 0
    for n in names:
        g = grads[n].detach().double().flatten()
        if n.endswith("attn.qkv.bias"):
            g = torch.cat([g[:cfg.dim], g[2 * cfg.dim:]])
        rel = g.abs() / g.abs().max()
        worst = min(worst, rel.min().item())
        count += int((rel < TAU).sum())
    return worst, count


def build(name, spec, with_mults, out_dir):
    cfg, groups = spec["cfg"], spec["groups"]
    gen = torch.Generator().manual_seed(spec["seed"])
    m32 = V.DinoVit(cfg)
    randomize(m32, gen)
    inputs = make_inputs(cfg, groups, gen)
    names = m32.trainable_names()

    # float64 reference from the float32 values
    m64 = V.DinoVit(cfg).double()
    m64.load_state_dict({k: v.double() for k, v in m32.state_dict().items()})
    rs = condition_probes(m64, inputs, cfg)
    inputs = [(x, m, r) for (x, m, _), r in zip(inputs, rs)]
    loss, toks = loss_of(m64, inputs)
    grads = dict(zip(names, grads_of(loss, list(m64.parameters()))))
    mults = param_groups_dinov3(names, cfg.depth) if with_mults else None
    m_opt = V.DinoVit(cfg).double()
    m_opt.load_state_dict(m64.state_dict())
    snaps, losses = adamw_run(m_opt, inputs, mults)
    assert abs(losses[0] - loss.item()) <= 1e-9 * (1 + abs(loss.item()))

    t = {}
    for k, v in m32.state_dict().items():  # parameters and buffers, state-dict order
        t[k] = f32(v)
    for g, (x, m, r) in enumerate(inputs):
        t["input.x%d" % g] = f32(x)
        if m is not None:
            t["input.mask%d" % g] = m.contiguous()
        t["input.r%d" % g] = f32(r)
    for g, tok in enumerate(toks):
        t["output.tokens%d" % g] = f32(tok)
    t["output.loss"] = torch.tensor([loss.item()], dtype=torch.float32)
    t["output.loss_adamw"] = torch.tensor(losses, dtype=torch.float32)
    for n in names:
        t["grad." + n] = f32(grads[n])
    for s, snap in enumerate(snaps):
        for n in names:
            t["adamw%d.%s" % (s + 1, n)] = f32(snap[n])

    meta = {
        "config": json.dumps(config_meta(cfg, groups)),
        "loss": "sum_g sum(output.tokens<g> * input.r<g>)",
        "adamw": json.dumps({"lr": ADAMW["lr"], "betas": list(ADAMW["betas"]), "eps": ADAMW["eps"],
                             "weight_decay": ADAMW["weight_decay"], "steps": ADAMW_STEPS,
                             "impl": "torch.optim.AdamW 1.13, float64, same inputs every step"}),
        "trainable": json.dumps(names),
        "generator": "tests/ref/gen_vit_fixtures.py seed %d" % spec["seed"],
    }
    if mults is not None:
        meta["adamw_mults"] = json.dumps(mults)
    fname = "vit_%s%s.safetensors" % (name, "_mults" if with_mults else "")
    path = os.path.join(out_dir, fname)
    st.save(path, t, meta)
    worst, count = grad_stats(names, grads, cfg)
    assert count == 0, "probe conditioning failed"
    print("%-32s %7d bytes  loss %.6f  params %d  min|g|/max|g| %.2e"
          % (fname, os.path.getsize(path), loss.item(),
             sum(p.numel() for p in m32.parameters()), worst))
    return m32, inputs


def build_train(out_dir, m32, inputs, cfg, groups, seed):
    """Train-mode fixture on the mlp2crop model: injected batch-subset stochastic
    depth (rows 2*l + branch of input.drop<g>, branch 0 = attention, 1 = FFN) and
    RoPE augmentation per block (input.rope_aug<g> [depth, 4] = shift_y, shift_x,
    scale_y, scale_x; coords <- (coords + shift) * scale)."""
    gen = torch.Generator().manual_seed(seed)
    p_drop = 0.25
    drop, aug, t = [], [], {}
    for g, (x, m, r) in enumerate(inputs):
        n = x.shape[0]
        k = max(int(n * (1 - p_drop)), 1)
        rows = [torch.randperm(n, generator=gen)[:k] for _ in range(2 * cfg.depth)]
        drop.append([(rows[2 * l], rows[2 * l + 1]) for l in range(cfg.depth)])
        shift = (torch.rand(cfg.depth, 2, generator=gen) * 2 - 1) * 0.3
        scale = torch.exp((torch.rand(cfg.depth, 1, generator=gen) * 2 - 1) * math.log(2)).repeat(1, 2)
        scale = scale * torch.exp((torch.rand(cfg.depth, 2, generator=gen) * 2 - 1) * math.log(1.2))
        a = torch.cat([shift, scale], dim=1).float()
        aug.append(a.double())
        t["input.drop%d" % g] = torch.stack(rows).to(torch.int32)
        t["input.rope_aug%d" % g] = a
    m64 = V.DinoVit(cfg).double()
    m64.load_state_dict({k: v.double() for k, v in m32.state_dict().items()})
    names = m64.trainable_names()
    loss, toks = loss_of(m64, inputs, drop, aug)
    grads = dict(zip(names, grads_of(loss, list(m64.parameters()))))
    loss_eval, _ = loss_of(m64, inputs)
    assert abs(loss.item() - loss_eval.item()) > 1e-3, "train mode must differ from eval mode"
    tt = {k: f32(v) for k, v in m32.state_dict().items()}
    for g, (x, m, r) in enumerate(inputs):
        tt["input.x%d" % g] = f32(x)
        if m is not None:
            tt["input.mask%d" % g] = m.contiguous()
        tt["input.r%d" % g] = f32(r)
    tt.update(t)
    for g, tok in enumerate(toks):
        tt["output.tokens%d" % g] = f32(tok)
    tt["output.loss"] = torch.tensor([loss.item()], dtype=torch.float32)
    for n in names:
        tt["grad." + n] = f32(grads[n])
    meta = {
        "config": json.dumps(dict(config_meta(cfg, groups), drop_path=p_drop)),
        "loss": "sum_g sum(output.tokens<g> * input.r<g>), train mode with injected draws",
        "trainable": json.dumps(names),
        "generator": "tests/ref/gen_vit_fixtures.py seed %d" % seed,
    }
    path = os.path.join(out_dir, "vit_mlp2crop_train.safetensors")
    st.save(path, tt, meta)
    print("%-32s %7d bytes  loss %.6f (eval-mode loss %.6f)"
          % (os.path.basename(path), os.path.getsize(path), loss.item(), loss_eval.item()))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                  "..", "fixtures"))
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    torch.set_num_threads(1)  # bit-reproducible float64 reductions
    for name, spec in CONFIGS.items():
        m32, inputs = build(name, spec, False, a.out)
        build(name, spec, True, a.out)
        if name == "mlp2crop":
            build_train(a.out, m32, inputs, spec["cfg"], spec["groups"], 303)


if __name__ == "__main__":
    main()
