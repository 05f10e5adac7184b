"""check_fixtures.py - re-reads the ViT fixtures and checks them end to end.

Run: /usr/bin/python3 tests/ref/check_fixtures.py [--dir tests/fixtures]  (exit 0 = ok)

For every tests/fixtures/vit_*.safetensors: reads it back with st.py, checks
the key set and shapes against a model built from the "config" metadata,
rebuilds that model from the stored tensors only, then recomputes
  * in float64: tokens, loss, gradients, AdamW steps (must reproduce the
    stored float32 values to float32 rounding), and
  * in float32 (torch CPU): the same quantities, printing the max relative
    error vs the stored reference - the scale of error a float32 C
    implementation should expect (use tolerances a few times larger).
The relative error of a tensor is max|a-b| / max|b| (tensor-wise), which is
robust to entries near zero.
"""
import argparse
import glob
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st  # noqa: E402
import vit_ref as V  # noqa: E402
from gen_vit_fixtures import ADAMW, grads_of, loss_of  # noqa: E402

FAILS = []


def rel(a, b):
    a, b = a.double(), b.double()
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).item()


def cfg_from_meta(c):
    hidden = c["ffn_hidden"]
    ratio = c["ffn_ratio"]
    cfg = V.VitConfig(dim=c["dim"], depth=c["depth"], heads=c["heads"], registers=c["registers"],
                      patch=c["patch"], in_chans=c["in_chans"], ffn=c["ffn"], ffn_ratio=ratio,
                      swiglu_align=c["swiglu_align"] or 8, ln_eps=c["ln_eps"],
                      mask_k_bias=c["mask_k_bias"], rope_base=c["rope_base"])
    assert cfg.ffn_hidden == hidden
    return cfg


def check_file(path):
    t, meta = st.load(path)
    c = json.loads(meta["config"])
    cfg = cfg_from_meta(c)
    model = V.DinoVit(cfg)
    sd_keys = list(model.state_dict().keys())
    names = model.trainable_names()
    bad = [k for k in sd_keys if k not in t or tuple(t[k].shape) != tuple(model.state_dict()[k].shape)]
    ok = not bad and json.loads(meta["trainable"]) == names
    ok = ok and all(("grad." + n) in t for n in names)
    ok = ok and not any(k in t for k in ("grad.rope_embed.periods", "grad.blocks.0.attn.qkv.bias_mask"))
    base = os.path.basename(path)
    print("%s: %d tensors, keys/shapes %s" % (base, len(t), "ok" if ok else "BAD %s" % bad[:3]))
    if not ok:
        FAILS.append(base + " keys")
    mults = json.loads(meta["adamw_mults"]) if "adamw_mults" in meta else None
    ng = len(c["batch"])
    train = "input.drop0" in t

    for dt in (torch.float64, torch.float32):
        m = V.DinoVit(cfg).to(dt)
        m.load_state_dict({k: torch.from_numpy(t[k]).to(dt) for k in sd_keys})
        inputs = []
        for g in range(ng):
            mk = torch.from_numpy(t["input.mask%d" % g]) if ("input.mask%d" % g) in t else None
            inputs.append((torch.from_numpy(t["input.x%d" % g]), mk, torch.from_numpy(t["input.r%d" % g])))
        drop = aug = None
        if train:
            drop = [[(torch.from_numpy(t["input.drop%d" % g][2 * l]).long(),
                      torch.from_numpy(t["input.drop%d" % g][2 * l + 1]).long()) for l in range(cfg.depth)]
                    for g in range(ng)]
            aug = [torch.from_numpy(t["input.rope_aug%d" % g]).to(dt) for g in range(ng)]
        loss, toks = loss_of(m, inputs, drop, aug)
        grads = grads_of(loss, list(m.parameters()))
        e_tok = max(rel(tok, torch.from_numpy(t["output.tokens%d" % g])) for g, tok in enumerate(toks))
        e_loss = abs(loss.item() - float(t["output.loss"][0])) / abs(float(t["output.loss"][0]))
        e_grad = max(rel(g, torch.from_numpy(t["grad." + n])) for n, g in zip(names, grads))
        kb = [g for n, g in zip(names, grads) if n.endswith("attn.qkv.bias")]
        kzero = all(bool((g[cfg.dim:2 * cfg.dim] == 0).all()) for g in kb)
        kzero = kzero and all((t["grad." + n][cfg.dim:2 * cfg.dim] == 0).all()
                              for n in names if n.endswith("attn.qkv.bias"))
        e_adam = 0.0
        if "adamw1.cls_token" in t:
            params = dict(m.named_parameters())
            if mults is None:
                opt = torch.optim.AdamW(list(params.values()), **ADAMW)
            else:
                opt = torch.optim.AdamW([{"params": [params[n]], "lr": ADAMW["lr"] * mults[n]["lr"],
                                          "weight_decay": ADAMW["weight_decay"] * mults[n]["wd"]}
                                         for n in names], **ADAMW)
            for s in range(1, 4):
                opt.zero_grad()
                l, _ = loss_of(m, inputs)
                l.backward()
                opt.step()
                for n in names:  # error of the update, relative to the update's size
                    p0 = torch.from_numpy(t[n]).double()
                    ref = torch.from_numpy(t["adamw%d.%s" % (s, n)]).double()
                    e = (params[n].detach().double() - ref).abs().max().item() / (ADAMW["lr"] * s)
                    e_adam = max(e_adam, e)
                    if s == 1 and dt == torch.float64:  # the update really moved every tensor
                        if not (ref - p0).abs().max().item() > 0:
                            FAILS.append(base + " adamw did not move " + n)
        label = "f64" if dt == torch.float64 else "f32"
        print("  %s  tokens %.2e  loss %.2e  grads %.2e  adamw |dp|/(lr*s) %.2e  k-bias grad zero %s"
              % (label, e_tok, e_loss, e_grad, e_adam, kzero))
        lim = 2e-7 if dt == torch.float64 else 1e-3
        if not (e_tok < lim and e_loss < lim and e_grad < (lim if dt == torch.float64 else 1e-3) and kzero):
            FAILS.append("%s %s" % (base, label))
        if dt == torch.float64 and e_adam > 1e-3:
            FAILS.append("%s adamw f64" % base)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures"))
    a = ap.parse_args()
    files = sorted(glob.glob(os.path.join(a.dir, "vit_*.safetensors")))
    if not files:
        print("no fixtures found")
        sys.exit(1)
    for f in files:
        check_file(f)
    if FAILS:
        print("FAILED:", FAILS)
        sys.exit(1)
    print("all fixtures ok")


if __name__ == "__main__":
    main()
