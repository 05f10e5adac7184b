"""gen_ssl_fixtures.py - writes tests/fixtures/ssl_tiny.safetensors: one whole
DINOv3 SSL step and a 10-step trajectory from ssl_ref.py, the fixture of
tests/test_ssl_parity.c.

Run (from the repository root, deterministic, re-runnable):
    /usr/bin/python3 tests/ref/gen_ssl_fixtures.py --out tests/fixtures

Layout and semantics: tests/ref/README.md ("SSL step fixture"). Computed in
float64 from the stored values; images and initial parameters are drawn as
float16-representable numbers and stored as F16 (exact, and it keeps the file
small), buffers and all results are stored as F32.
"""
import argparse
import json
import math
import os
import random
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import loss_ref as LR  # noqa: E402
import ssl_ref as S  # noqa: E402
import st  # noqa: E402
import vit_ref as V  # noqa: E402

SEED = 4242
STEPS = 10
CFG = dict(
    dim=64, depth=2, heads=4, registers=2, patch=8, in_chans=3, ffn="mlp", ffn_hidden=256,
    ffn_ratio=4.0, ln_eps=1e-5, mask_k_bias=True, rope_base=100.0, drop_path=0.0,
    rope_augmentation=False, batch=4, n_global=2, n_local=4, global_size=32, local_size=16,
    gram_size=64, gram_img_level=True, gram_resize="bicubic a=-0.75 align_corners=False",
    dino_head=dict(hidden=32, bottleneck=16, prototypes=128, nlayers=3),
    ibot_head=dict(hidden=32, bottleneck=16, prototypes=96, nlayers=3),
    w_dino=1.0, w_koleo=0.1, w_ibot=1.0, student_temp=0.1, centering="sinkhorn_knopp",
    sk_iters=3, clip_grad=3.0, betas=[0.9, 0.999], adam_eps=1e-8, layer_decay=0.9,
    patch_embed_lr_mult=0.2,
)


def schedule():
    """7 arrays of STEPS floats. lr: linear warm-up (s+1)/5 * 1e-3 (nonzero at step 0, so the
    first step moves the student), then 1e-3; last-layer lr 0 for steps 0-1 (frozen), then lr."""
    lr = [1e-3 * min(1.0, (s + 1) / 5) for s in range(STEPS)]
    return {
        "lr": lr,
        "last_layer_lr": [0.0 if s < 2 else lr[s] for s in range(STEPS)],
        "wd": [0.5] * STEPS,  # large enough that the weight-decay pass-through shows over 10 steps
        "momentum": [0.9] * STEPS,
        "teacher_temp": [0.04 + 0.03 * s / (STEPS - 1) for s in range(STEPS)],
        "w_gram": [1.0] * STEPS,
        "lambda_local": [1.0] * STEPS,
    }


def f16(t):
    """Round to a float16-representable value (kept in float32)."""
    return t.to(torch.float16).to(torch.float32)


def randomize(model, gen):
    """Non-trivial values: LayerScale U(0.1, 0.5), weights N(0, 1/fan_in) (last_layer
    N(0, 0.25^2)), biases N(0, 0.2^2) incl. the ignored k third of qkv.bias, LayerNorm
    weights 1 + N(0, 0.2^2), tokens N(0, 0.25^2); all float16-representable."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            rel = name.split(".", 1)[1]
            if rel.endswith("gamma"):
                v = torch.rand(p.shape, generator=gen) * 0.4 + 0.1
            elif rel in ("cls_token", "storage_tokens", "mask_token"):
                v = 0.25 * torch.randn(p.shape, generator=gen)
            elif rel == "last_layer.weight":
                v = 0.25 * torch.randn(p.shape, generator=gen)
            elif p.dim() >= 2:
                v = torch.randn(p.shape, generator=gen) / math.sqrt(p[0].numel())
            elif ".norm" in rel or rel.startswith("norm."):
                v = (1.0 if rel.endswith("weight") else 0.0) + 0.2 * torch.randn(p.shape, generator=gen)
            else:
                v = 0.25 * torch.randn(p.shape, generator=gen)
            p.copy_(f16(v))


def make_masks(G, P, n_side, rng):
    """§6.3: int(G*0.5) crops get m_i = int(P*linspace(0.1,0.5,n+1)[i+1]) masked patches by
    block masking + random completion (loss_ref.MaskGen), the rest none, list shuffled."""
    counts = LR.mask_counts(P, G)
    gen = LR.MaskGen(n_side, n_side, rng)
    ms = [gen(m).reshape(-1) for m in counts] + [np.zeros(P, dtype=bool)] * (G - len(counts))
    rng.shuffle(ms)
    return torch.from_numpy(np.stack(ms).astype(np.uint8))


def make_batch(cfg, gen, rng):
    B = cfg["batch"]
    G, L = 2 * B, cfg["n_local"] * B
    S, s, Sg = cfg["global_size"], cfg["local_size"], cfg["gram_size"]
    n_side = S // cfg["patch"]
    return {
        "global": f16(torch.randn(G, 3, S, S, generator=gen)),
        "local": f16(torch.randn(L, 3, s, s, generator=gen)),
        "gram": f16(torch.randn(G, 3, Sg, Sg, generator=gen)),
        "masks": make_masks(G, n_side * n_side, n_side, rng),
    }


def build_models(cfg, gen):
    vcfg = V.VitConfig(dim=cfg["dim"], depth=cfg["depth"], heads=cfg["heads"],
                       registers=cfg["registers"], patch=cfg["patch"], ffn="mlp",
                       ffn_ratio=cfg["ffn_ratio"], ln_eps=cfg["ln_eps"],
                       mask_k_bias=cfg["mask_k_bias"], rope_base=cfg["rope_base"])
    assert vcfg.ffn_hidden == cfg["ffn_hidden"]
    dh, ih = cfg["dino_head"], cfg["ibot_head"]
    dino = (dh["hidden"], dh["bottleneck"], dh["prototypes"])
    ibot = (ih["hidden"], ih["bottleneck"], ih["prototypes"])
    m32 = S.SslModel(vcfg, dino, ibot)
    randomize(m32, gen)
    g32 = V.DinoVit(vcfg)  # Gram teacher = student backbone + small noise (non-zero Gram loss)
    with torch.no_grad():
        sd = {}
        for k, v in m32.backbone.state_dict().items():
            if k in dict(m32.backbone.named_parameters()):
                v = f16(v + 0.05 * v.abs().mean() * torch.randn(v.shape, generator=gen))
            sd[k] = v
        g32.load_state_dict(sd)
    student = S.SslModel(vcfg, dino, ibot).double()
    student.load_state_dict({k: v.double() for k, v in m32.state_dict().items()})
    teacher = S.SslModel(vcfg, dino, ibot).double()
    teacher.load_state_dict(student.state_dict())
    gram = V.DinoVit(vcfg).double()
    gram.load_state_dict({k: v.double() for k, v in g32.state_dict().items()})
    for p in list(teacher.parameters()) + list(gram.parameters()):
        p.requires_grad_(False)
    return m32, g32, student, teacher, gram


def trainable(model):
    return {n: p.detach().to(torch.float32).clone() for n, p in model.named_parameters()}


def stored(v, name, buffers):
    """Parameters are float16-exact: F16; buffers (RoPE periods, bias_mask) F32."""
    return v.float() if name in buffers else v.to(torch.float16)


def first_step_margin(grads, cfg):
    """The first AdamW step moves an element by ~lr*sign(g); an element with a near-zero
    gradient could flip sign under float32 rounding in C and move by 2*lr. Returns the
    smallest |g| / max|g| of its tensor over the tensors the step-0 lr moves (last_layer
    is frozen at step 0; the ignored k third of qkv.bias has an exact zero gradient)."""
    worst, where = 1e30, None
    D = cfg["dim"]
    for n, g in grads.items():
        if n.endswith("last_layer.weight"):
            continue
        g = g.detach().double().flatten()
        if n.endswith("attn.qkv.bias"):
            g = torch.cat([g[:D], g[2 * D:]])
        r = (g.abs() / g.abs().max()).min().item()
        if r < worst:
            worst, where = r, n
    return worst, where


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                  "..", "fixtures"))
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    torch.set_num_threads(1)  # bit-reproducible float64 reductions
    cfg = CFG
    sched = schedule()
    gen = torch.Generator().manual_seed(SEED)
    rng = random.Random(SEED)
    m32, g32, student, teacher, gram = build_models(cfg, gen)
    opt = S.make_optimizer(student, cfg)

    t = {}
    bb_buffers = {n for n, _ in m32.backbone.named_buffers()}
    all_buffers = {"backbone." + n for n in bb_buffers}
    for k, v in m32.state_dict().items():
        t["init." + k] = stored(v, k, all_buffers)
    for k, v in g32.state_dict().items():
        t["init_gram.backbone." + k] = stored(v, k, bb_buffers)

    log = []
    for s in range(STEPS):
        b = make_batch(cfg, gen, rng)
        b64 = {k: (v.double() if v.dtype != torch.uint8 else v) for k, v in b.items()}
        sc = {k: v[s] for k, v in sched.items()}
        losses, norms, info = S.ssl_step(student, teacher, gram, opt, b64, sc, cfg)
        t["step%d.global" % s] = b["global"].to(torch.float16)
        t["step%d.local" % s] = b["local"].to(torch.float16)
        t["step%d.gram" % s] = b["gram"].to(torch.float16)
        t["step%d.masks" % s] = b["masks"].contiguous()
        t["step%d.loss" % s] = torch.tensor(losses, dtype=torch.float32)
        t["step%d.gnorm" % s] = torch.tensor(norms, dtype=torch.float32)
        # each global crop's CT window (0/1), from a generator of its own so the other draws stay
        window = torch.randint(0, 2, (2 * cfg["batch"],), generator=torch.Generator().manual_seed(SEED * 1000 + s))
        t["step%d.window" % s] = window.to(torch.float32)
        t["step%d.health" % s] = torch.tensor(S.health(info, student, cfg, window), dtype=torch.float32)
        if s == 0:
            margin = first_step_margin(info["grads"], cfg)
            for n, v in trainable(student).items():
                t["after1.student." + n] = v
            for n, v in trainable(teacher).items():
                t["after1.teacher." + n] = v
        if s == STEPS - 1:
            for n, v in trainable(student).items():
                t["after10.student." + n] = v
        log.append("step %d: loss %s gnorm %s masked %d" % (
            s, " ".join("%.6f" % x for x in losses), " ".join("%.4f" % x for x in norms), info["M"]))

    meta = {
        "config": json.dumps(cfg),
        "sched": json.dumps(sched),
        "loss_order": json.dumps(["total", "dino_local", "dino_global", "koleo", "ibot", "gram"]),
        "gnorm_order": json.dumps(["backbone", "dino_head", "ibot_head"]),
        "health_order": json.dumps(S.HEALTH_ORDER),
        "trainable": json.dumps([n for n, _ in m32.named_parameters()]),
        "generator": "tests/ref/gen_ssl_fixtures.py seed %d (float64, torch %s)" % (SEED, torch.__version__),
    }
    path = os.path.join(a.out, "ssl_tiny.safetensors")
    st.save(path, t, meta)
    print("\n".join(log))
    print("step 0: smallest |g|/max|g| per tensor %.2e (%s)" % margin)
    # Conditioning: AdamW's first step lr*g/(|g|+eps) is sensitive where |g| ~ eps, so check
    # that an independent float32 run (torch) lands well inside the C test's tolerances.
    import check_ssl_fixture  # noqa: E402
    t_back, _ = st.load(path)
    w = check_ssl_fixture.rerun(t_back, cfg, sched, torch.float32)
    print("torch float32 rerun: " + "  ".join("%s %.2e" % kv for kv in w.items()))
    assert w["after1.student"] < 1e-5 and w["after10.student"] < 1e-4 and w["loss0"] < 1e-6, \
        "fixture is not well-conditioned for a float32 implementation"
    # The bf16 reference: the same 10 steps from the file, float32 models with the forward
    # under torch.autocast("cpu", bfloat16) (DINOv3's mixed precision). What test_ssl_parity
    # compares dinox's bf16 policy with.
    trace = []
    wb = check_ssl_fixture.rerun(t_back, cfg, sched, torch.float32, autocast_bf16=True, trace=trace)
    print("torch bf16 autocast rerun: " + "  ".join("%s %.2e" % kv for kv in wb.items()))
    t_all, meta_back = st.load(path)
    for s, (losses, norms) in enumerate(trace):
        t_all["bf16.step%d.loss" % s] = torch.tensor(losses, dtype=torch.float32)
        t_all["bf16.step%d.gnorm" % s] = torch.tensor(norms, dtype=torch.float32)
    meta_back["bf16_generator"] = "check_ssl_fixture.rerun float32 under torch.autocast('cpu', bfloat16), torch %s" \
        % torch.__version__
    st.save(path, t_all, meta_back)
    print("%s: %d bytes, %d tensors" % (path, os.path.getsize(path), len(t_all)))


if __name__ == "__main__":
    main()
