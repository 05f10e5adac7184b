"""gen_loss_fixtures.py - writes the reference fixtures of the DINOv3 objective.

    /usr/bin/python3 tests/ref/gen_loss_fixtures.py [--out DIR]   (default tests/fixtures)

Deterministic (torch.manual_seed per case). Inputs are drawn in float64,
rounded to float32 and stored as F32; every reference value is computed in
float64 from those rounded inputs (tests/ref/loss_ref.py, autograd for the
gradients) and stored as F64, so the C float kernels (1e-5 / 1e-4) and the C
double kernels (1e-10) are compared against the same numbers.

Files (spec §10 case numbers):
  loss_objective.safetensors  1, 3 (SK), softmax centring, 4, 5 (DINO), 6 (iBOT),
                              soft-target CE, 7, 8 (KoLeo), 9, 10 (Gram), 11 (resize),
                              20 (the head's L2 normalisation)
  loss_schedules.safetensors  23 (mask counts), 24 (schedules), 25 (param groups),
                              27 (clipping), 29 (total objective)
Scalars travel as F64 [1] tensors named <case>.temp etc.
"""
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import loss_ref as R  # noqa: E402

import st  # noqa: E402  the tiny safetensors writer next to this file

torch.set_default_dtype(torch.float64)


def f32(x):
    """round to float32 and back to float64 (the stored input)"""
    return x.to(torch.float32).to(torch.float64)


def rnd(seed, *shape, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    return f32(torch.randn(*shape, generator=g) * scale)


def simplex(seed, *shape):
    g = torch.Generator().manual_seed(seed)
    return f32(torch.softmax(torch.randn(*shape, generator=g) * 2, dim=-1))


def grad_of(fn, x):
    x = x.clone().requires_grad_(True)
    y = fn(x)
    (g,) = torch.autograd.grad(y, x)
    return y.detach(), g


OUT = {}


def put(name, t, dtype):
    if isinstance(t, (float, int)):
        t = torch.tensor([t], dtype=torch.float64)
    if isinstance(t, np.ndarray):
        t = torch.from_numpy(t)
    OUT[name] = t.detach().to(dtype).contiguous()


def inp(name, t):
    put(name, t, torch.float32)


def ref(name, t):
    put(name, t, torch.float64)


def objective_cases():
    # 1: SK 4x8 tau 0.07 and 6x5 tau 0.04; 3: iBOT-like 7x16; plus a wide-range case
    for case, (N, K, temp, seed, scale) in {
        "sk1": (4, 8, 0.07, 1, 1.0),
        "sk2": (6, 5, 0.04, 2, 1.0),
        "sk3": (7, 16, 0.07, 3, 1.0),
        "sk4": (16, 64, 0.04, 4, 3.0),
    }.items():
        z = rnd(seed, N, K, scale=scale)
        inp(case + ".logits", z)
        ref(case + ".temp", temp)
        ref(case + ".out", R.sinkhorn_knopp(z, temp, 3))
        ref(case + ".out1", R.sinkhorn_knopp(z, temp, 1))

    # softmax centring (§4.3) and the batch centre
    z = rnd(10, 5, 12)
    c = rnd(11, 12, scale=0.3)
    inp("sc.logits", z)
    inp("sc.center", c)
    ref("sc.temp", 0.07)
    ref("sc.out", R.softmax_center(z, c, 0.07))
    ref("sc.mean", z.mean(dim=0))

    # soft-target CE with per-row weights; T rows deliberately NOT normalised
    S = rnd(20, 5, 10, scale=0.5)
    g = torch.Generator().manual_seed(21)
    T = f32(torch.rand(5, 10, generator=g))
    w = f32(torch.rand(5, generator=g) + 0.5)
    inp("ce.S", S)
    inp("ce.T", T)
    inp("ce.w", w)
    ref("ce.temp", 0.1)
    ref("ce.rows", R.ce_rows(T, S, 0.1))
    loss, gS = grad_of(lambda s: (R.ce_rows(T, s, 0.1) * w).sum(), S)
    ref("ce.loss", loss)
    ref("ce.grad", gS)

    # 4: DINO local, S [8, B=3, 16], T [2, 3, 16] on the simplex
    B = 3
    S = rnd(30, 8 * B, 16, scale=0.5)
    T = simplex(31, 2 * B, 16)
    inp("dino4.S", S)
    inp("dino4.T", T)
    loss, gS = grad_of(lambda s: R.dino_loss(s, T, B, 0.1, False), S)
    ref("dino4.loss", loss)
    ref("dino4.grad", gS)
    # spec's closed form for the local gradient: (softmax(S/0.1) - mean_t T) / (0.1 * 8 * B)
    Tm = 0.5 * (T[:B] + T[B:])
    closed = (torch.softmax(S / 0.1, dim=-1) - Tm.repeat(8, 1)) / (0.1 * 8 * B)
    assert torch.allclose(closed, gS, atol=1e-12), "DINO local closed form"

    # 5: DINO global, cross pairs only; also all four pairs
    S = rnd(40, 2 * B, 16, scale=0.5)
    T = simplex(41, 2 * B, 16)
    inp("dino5.S", S)
    inp("dino5.T", T)
    loss, gS = grad_of(lambda s: R.dino_loss(s, T, B, 0.1, True), S)
    ref("dino5.loss", loss)
    ref("dino5.grad", gS)
    loss, gS = grad_of(lambda s: R.dino_loss(s, T, B, 0.1, False), S)
    ref("dino5.loss_all", loss)
    ref("dino5.grad_all", gS)

    # 6: iBOT, 2B = 4 crops, P = 9, counts {3, 0, 5, 0}
    counts = [3, 0, 5, 0]
    M = sum(counts)
    w = f32(torch.tensor([1.0 / c for c in counts if c for _ in range(c)]))  # float32 masks_weight
    S = rnd(50, M, 16, scale=0.5)
    T = simplex(51, M, 16)
    inp("ibot6.S", S)
    inp("ibot6.T", T)
    inp("ibot6.w", w)
    loss, gS = grad_of(lambda s: R.ibot_loss(s, T, w, 4, 0.1), S)
    ref("ibot6.loss", loss)
    ref("ibot6.grad", gS)

    # 7: KoLeo B = 8, D = 5, nearest neighbours clearly separated
    seed = 60
    while True:
        x = rnd(seed, 8, 5)
        z = torch.nn.functional.normalize(x, dim=-1)
        d = z @ z.t()
        d.fill_diagonal_(-1)
        top = torch.topk(d, 2, dim=1).values
        if (top[:, 0] - top[:, 1]).min() > 1e-2:
            break
        seed += 1
    inp("koleo7.x", x)
    xg = x.clone().requires_grad_(True)
    loss, idx = R.koleo_loss(xg)
    (gx,) = torch.autograd.grad(loss, xg)
    ref("koleo7.loss", loss)
    ref("koleo7.grad", gx)
    put("koleo7.nn", idx, torch.int32)

    # 8: duplicate pair (rows 1 and 4 identical)
    x = rnd(70, 6, 5)
    x[4] = x[1]
    inp("koleo8.x", x)
    xg = x.clone().requires_grad_(True)
    loss, idx = R.koleo_loss(xg)
    (gx,) = torch.autograd.grad(loss, xg)
    assert torch.isfinite(loss) and torch.isfinite(gx).all()
    ref("koleo8.loss", loss)
    ref("koleo8.grad", gx)
    put("koleo8.nn", idx, torch.int32)

    # 9, 10: Gram img-level and batch-level, [2, P=6, D=4]
    xs = rnd(80, 2, 6, 4)
    xt = rnd(81, 2, 6, 4)
    inp("gram.xs", xs)
    inp("gram.xt", xt)
    for lvl, name in ((True, "img"), (False, "batch")):
        loss, g = grad_of(lambda a: R.gram_loss(a, xt, lvl), xs)
        ref("gram.loss_" + name, loss)
        ref("gram.grad_" + name, g)

    # 11: bicubic resize [1, 3, 8, 8] -> 4x4; plus 4 -> 7 (upsampling, border
    # clamps, t != 0.5) and 8 -> 5, with the gradient of sum(out * r)
    for case, (C, Hin, Hout, seed) in {"rs1": (3, 8, 4, 90), "rs2": (2, 4, 7, 91),
                                       "rs3": (2, 8, 5, 92)}.items():
        x = rnd(seed, 1, C, Hin, Hin)
        r = rnd(seed + 100, 1, C, Hout, Hout)
        inp(case + ".x", x)
        inp(case + ".r", r)
        out = R.resize_bicubic(x, Hout)
        ref(case + ".out", out)
        _, g = grad_of(lambda a: (R.resize_bicubic(a, Hout) * r).sum(), x)
        ref(case + ".grad", g)

    # 20 (head part): L2 normalisation rows, one row below eps
    x = rnd(100, 5, 16)
    x[3] = x[3] * 1e-14
    dout = rnd(101, 5, 16)
    inp("l2n.x", x)
    inp("l2n.dout", dout)
    ref("l2n.out", R.l2norm(x))
    _, g = grad_of(lambda a: (R.l2norm(a) * dout).sum(), x)
    ref("l2n.grad", g)


def schedule_cases():
    meta = {}
    # 23: mask counts
    for N, crops in ((196, 8), (256, 8), (196, 4), (49, 6), (1024, 32), (36, 2), (256, 128)):
        put("mc.%d_%d" % (N, crops), torch.tensor(R.mask_counts(N, crops), dtype=torch.int64),
            torch.int32)
    assert R.mask_counts(196, 8) == [39, 58, 78, 98]

    # 22: mask generator statistics (Python `random`, many draws): the (h, w)
    # distribution of the first block on an empty grid, the mean/std of the
    # block phase's count, and the per-cell masking frequency of full masks
    import random
    rng = random.Random(1234)
    for H, cap in ((14, 98.0), (16, 20.0)):
        g = R.MaskGen(H, H, rng)
        hist = np.zeros((H, H))
        draws = 100000
        for _ in range(draws):
            d, box = g.round(np.zeros((H, H), dtype=bool), cap)
            if box is not None:
                hist[box[2], box[3]] += 1
        ref("mg.first_%d_%d" % (H, int(cap)), torch.from_numpy(hist / draws))
    for H, m in ((14, 20), (14, 98), (16, 128)):
        g = R.MaskGen(H, H, rng)
        counts = np.array([g.blocks(m)[1] for _ in range(4000)], dtype=np.float64)
        ref("mg.phase_%d_%d" % (H, m), torch.tensor([counts.mean(), counts.std()]))
        freq = np.zeros((H, H))
        for _ in range(4000):
            mk = g(m)
            assert mk.sum() == m
            freq += mk
        ref("mg.freq_%d_%d" % (H, m), torch.from_numpy(freq / 4000))

    # 24: v1 CosineScheduler variants: cfg = [base, final, total, warmup, start_warmup, freeze, zero_first]
    v1 = {
        "v1_lr": (1e-3, 1e-6, 20, 5, 0.0, 0, 0),
        "v1_freeze": (1e-3, 1e-6, 20, 5, 0.0, 3, 0),
        "v1_last": (1e-3, 1e-6, 20, 5, 0.0, 0, 4),
        "v1_tt": (0.07, 0.07, 6, 6, 0.04, 0, 0),
        "v1_mom": (0.992, 1.0, 20, 0, 0.0, 0, 0),
        "v1_wd": (0.04, 0.4, 20, 0, 0.0, 0, 0),
        "v1_w1": (0.5, 0.1, 7, 1, 0.2, 0, 0),
    }
    for name, (base, final, total, warm, sw, fr, zf) in v1.items():
        ref(name + ".cfg", torch.tensor([base, final, total, warm, sw, fr, zf], dtype=torch.float64))
        # .values: numpy as the reference runs it; .values_libm: same operations
        # with glibc's correctly rounded cos (what C's cos() returns)
        for key, cos in ((".values", np.cos), (".values_libm", R.libm_cos)):
            s = R.cosine_scheduler(base, final, total, warm, sw, fr, cos=cos)
            s[:zf] = 0
            vals = [R.cosine_at(s, final, it) for it in range(total + 3)]
            ref(name + key, torch.tensor(vals, dtype=torch.float64))
    # v2: cfg = [start, peak, end, warmup, total, cosine (-1 = None)]
    v2 = {
        "v2_a": (0.0, 1e-3, 1e-6, 5, 20, 8),
        "v2_b": (0.0, 1e-3, 1e-6, 5, 20, None),
        "v2_c": (0.04, 0.07, 0.07, 0, 12, None),
        "v2_gram": (0.0, 0.0, 2.0, 10, 15, 1),
        "v2_loc": (1.0, 1.0, 0.5, 6, 14, 4),
    }
    for name, (a, p, e, W, T, C) in v2.items():
        ref(name + ".cfg", torch.tensor([a, p, e, W, T, -1 if C is None else C], dtype=torch.float64))
        for key, cos in ((".values", np.cos), (".values_libm", R.libm_cos)):
            s = R.linear_warmup_cosine_decay(a, p, e, W, T, C, cos=cos)
            vals = [s[it] if it < T else e for it in range(T + 3)]
            ref(name + key, torch.tensor(vals, dtype=torch.float64))

    # 25: parameter groups (ViT-S, decay 0.9, patch embed 0.2; head)
    bn = R.vits_names(12)
    hn = R.head_names()
    meta["backbone_names"] = "\n".join(bn)
    meta["head_names"] = "\n".join(hn)
    ref("pm.backbone", torch.tensor([R.param_mult(n, 12, 0.9, 0.2) for n in bn], dtype=torch.float64))
    ref("pm.head", torch.tensor([R.param_mult(n, 0, 0.9, 0.2) for n in hn], dtype=torch.float64))

    # 27: per-submodule clipping, norms 5, 1, 10, clip 3 (torch, float32)
    for i, (n, norm) in enumerate(((10, 5.0), (7, 1.0), (13, 10.0))):
        g = torch.Generator().manual_seed(200 + i)
        v = torch.randn(n, generator=g, dtype=torch.float32)
        v = v * (norm / v.norm())
        p = torch.nn.Parameter(torch.zeros(n, dtype=torch.float32))
        p.grad = v.clone()
        torch.nn.utils.clip_grad_norm_([p], 3.0)
        inp("clip%d.g" % i, v)
        put("clip%d.scaled" % i, p.grad, torch.float32)
        ref("clip%d.factor" % i, R.clip_factor(float(v.double().norm()), 3.0))

    # 29: total objective, default and Gram stage
    terms = {"dino_local": 9.123, "dino_global": 8.456, "koleo": -1.789, "ibot": 7.321, "gram": 0.0456}
    order = ["dino_local", "dino_global", "koleo", "ibot", "gram"]
    ref("tot.terms", torch.tensor([terms[k] for k in order]))
    for name, kw in (("tot.default", {}), ("tot.gram", {"w_gram": 2.0, "local_weight": 0.5})):
        total, c = R.total_loss(terms, **kw)
        ref(name + ".total", total)
        ref(name + ".contrib", torch.tensor([c[k] for k in order]))
    return meta


def save(path, meta=None):
    m = {"generator": "tests/ref/gen_loss_fixtures.py", "torch": torch.__version__}
    if meta:
        m.update(meta)
    st.save(path, OUT, m)
    OUT.clear()


def main():
    args = sys.argv[1:]
    out_dir = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures")
    if args[:1] == ["--out"] and len(args) > 1:
        out_dir = args[1]
    elif args and not args[0].startswith("-"):
        out_dir = args[0]
    os.makedirs(out_dir, exist_ok=True)
    objective_cases()
    save(os.path.join(out_dir, "loss_objective.safetensors"))
    meta = schedule_cases()
    save(os.path.join(out_dir, "loss_schedules.safetensors"), meta)
    print("wrote loss_objective.safetensors, loss_schedules.safetensors to", out_dir)


if __name__ == "__main__":
    main()
