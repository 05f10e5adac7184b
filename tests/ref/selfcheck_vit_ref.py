"""selfcheck_vit_ref.py - checks the PyTorch reference (vit_ref.py) against
independent formulations before any fixture is generated from it.

Run: /usr/bin/python3 tests/ref/selfcheck_vit_ref.py   (exit status 0 = all pass)

Checks: RoPE periods vs the values listed in spec §1.7; RoPE as complex
multiplication of the (i, i+Dh/2) pairs (independent formulation) and
pair-norm preservation; RoPE relative-position property under a coordinate
shift; output invariance to the masked k-bias (and sensitivity when the mask is
off); attention vs torch.nn.MultiheadAttention without RoPE; patch embed vs an
unfold + matmul; stochastic depth with full index sets == no drop, and rows
outside the subsets untouched; SwiGLU width rule; torch.autograd.gradcheck in
float64 of the whole backbone (all parameters and the input) with a mask,
injected drop-path subsets and injected RoPE augmentation.
"""
import math
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vit_ref as V  # noqa: E402

FAILS = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        FAILS.append(what)


def randomize(model, gen, scale=1.0):
    """Non-trivial values everywhere (gammas ~0.1-1, nonzero biases)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("gamma"):
                p.copy_(torch.rand(p.shape, generator=gen, dtype=p.dtype) * 0.9 + 0.1)
            elif p.dim() >= 2 and "token" not in name:
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype) * scale / math.sqrt(fan_in))
            elif name.startswith("norm") or ".norm" in name:
                p.copy_((1.0 if name.endswith("weight") else 0.0)
                        + 0.2 * torch.randn(p.shape, generator=gen, dtype=p.dtype))
            else:
                p.copy_(0.3 * torch.randn(p.shape, generator=gen, dtype=p.dtype))


def main():
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1234)

    # 1. periods (spec §1.7 lists them for Dh = 64)
    cfg64 = V.VitConfig(dim=128, heads=2, depth=1, registers=4, patch=16)
    rope = V.RopeEmbed(cfg64)
    spec = [1, 1.33352, 1.77828, 2.37137, 3.16228, 4.21697, 5.62341, 7.49894,
            10, 13.3352, 17.7828, 23.7137, 31.6228, 42.1697, 56.2341, 74.9894]
    check(torch.allclose(rope.periods.double(), torch.tensor(spec, dtype=torch.float64), rtol=2e-6),
          "rope periods 100^(4j/64) match spec list")

    # 2. RoPE as complex rotation of pairs (i, i+Dh/2), and norm preservation
    rope = rope.double()
    hp, wp = 3, 5
    sin, cos = rope.tables(hp, wp)
    dh = 64
    x = torch.randn(2, 3, hp * wp, dh, dtype=torch.float64, generator=gen)
    y = V.rope_apply(x, sin, cos)
    c = rope.coords(hp, wp)                                         # [P, 2]
    theta_y = 2 * math.pi * c[:, 0:1] / rope.periods[None]          # [P, 16]
    theta_x = 2 * math.pi * c[:, 1:2] / rope.periods[None]
    theta = torch.cat([theta_y, theta_x], dim=1)                    # [P, 32]
    z = torch.complex(x[..., :32], x[..., 32:]) * torch.exp(1j * theta)
    ref = torch.cat([z.real, z.imag], dim=-1)
    check(torch.allclose(y, ref, atol=1e-12), "rope_apply == complex rotation of (i, i+Dh/2) pairs")
    n0 = x[..., :32] ** 2 + x[..., 32:] ** 2
    n1 = y[..., :32] ** 2 + y[..., 32:] ** 2
    check(torch.allclose(n0, n1, atol=1e-12), "rope preserves every (i, i+Dh/2) pair norm")
    check(torch.allclose(c[:, 0].reshape(hp, wp)[:, 0], (torch.arange(hp) + 0.5).double() / hp * 2 - 1)
          and torch.allclose(c[:, 1].reshape(hp, wp)[0], (torch.arange(wp) + 0.5).double() / wp * 2 - 1),
          "rope coords (i+0.5)/n*2-1, row-major (cy, cx)")

    # 3. relative position: <R_p q, R_p' k> unchanged when all coords are shifted
    q = torch.randn(hp * wp, dh, dtype=torch.float64, generator=gen)
    k = torch.randn(hp * wp, dh, dtype=torch.float64, generator=gen)
    s2, c2 = rope.tables(hp, wp, (0.37, -0.81, 1.0, 1.0))
    d1 = V.rope_apply(q, sin, cos) @ V.rope_apply(k, sin, cos).T
    d2 = V.rope_apply(q, s2, c2) @ V.rope_apply(k, s2, c2).T
    check(torch.allclose(d1, d2, atol=1e-10), "rope dot products depend only on coordinate differences")
    s3, c3 = rope.tables(hp, wp, (0.0, 0.0, 1.7, 0.6))
    check(torch.allclose(rope.coords(hp, wp, (0.1, 0.2, 1.7, 0.6)),
                         (rope.coords(hp, wp) + torch.tensor([0.1, 0.2], dtype=torch.float64))
                         * torch.tensor([1.7, 0.6], dtype=torch.float64)),
          "rope aug: coords = (c + shift) * scale per axis")
    check(not torch.allclose(s3, sin), "rope aug scale changes the tables")

    # 4. k-bias invariance (and sensitivity without the mask)
    for mk in (True, False):
        cfg = V.VitConfig(dim=32, depth=2, heads=2, registers=2, patch=4, ffn="mlp", ffn_ratio=2,
                          ln_eps=1e-6, mask_k_bias=mk)
        m = V.DinoVit(cfg).double()
        randomize(m, gen)
        img = torch.randn(2, 3, 12, 8, dtype=torch.float64, generator=gen)
        out0 = m.forward_features_list([(img, None)])[0]
        with torch.no_grad():
            for b in m.blocks:
                b.attn.qkv.bias[cfg.dim:2 * cfg.dim] += torch.randn(cfg.dim, dtype=torch.float64, generator=gen)
        out1 = m.forward_features_list([(img, None)])[0]
        if mk:
            check(torch.equal(out0, out1), "mask_k_bias: output independent of the k-bias values")
        else:
            check((out0 - out1).abs().max() > 1e-3, "without mask_k_bias the k-bias does change the output")

    # 5. attention vs nn.MultiheadAttention (no RoPE)
    cfg = V.VitConfig(dim=24, depth=1, heads=3, registers=1, patch=4)
    att = V.Attention(cfg).double()
    with torch.no_grad():
        att.qkv.weight.normal_(generator=gen)
        att.qkv.bias.normal_(generator=gen)
        att.proj.weight.normal_(generator=gen)
        att.proj.bias.normal_(generator=gen)
    mha = torch.nn.MultiheadAttention(24, 3, batch_first=True).double()
    with torch.no_grad():
        mha.in_proj_weight.copy_(att.qkv.weight)
        mha.in_proj_bias.copy_(att.qkv.bias * att.qkv.bias_mask)
        mha.out_proj.weight.copy_(att.proj.weight)
        mha.out_proj.bias.copy_(att.proj.bias)
    xa = torch.randn(2, 7, 24, dtype=torch.float64, generator=gen)
    ya = att(xa, None, None)
    yb = mha(xa, xa, xa, need_weights=False)[0]
    check(torch.allclose(ya, yb, atol=1e-10), "attention == nn.MultiheadAttention (qkv layout, head order)")

    # 6. patch embed vs unfold + matmul
    cfg = V.VitConfig(dim=16, depth=1, heads=2, registers=1, patch=4)
    pe = V.PatchEmbed(cfg).double()
    xi = torch.randn(2, 3, 12, 9, dtype=torch.float64, generator=gen)  # 9: cropped by the strided conv
    cols = F.unfold(xi[:, :, :, :8], kernel_size=4, stride=4).transpose(1, 2)  # [N, P, 3*4*4]
    ref = cols @ pe.proj.weight.reshape(16, -1).T + pe.proj.bias
    check(torch.allclose(pe(xi), ref, atol=1e-12), "patch embed == unfold @ W^T + b, row-major patches")

    # 7. stochastic depth
    cfg = V.VitConfig(dim=32, depth=1, heads=2, registers=2, patch=4, ffn="swiglu", ffn_ratio=4)
    blk = V.Block(cfg).double()
    randomize(blk, gen)
    xb = torch.randn(5, 1 + 2 + 6, 32, dtype=torch.float64, generator=gen)
    rb = V.RopeEmbed(cfg).double()
    sb, cb = rb.tables(2, 3)
    full = torch.arange(5)
    check(torch.allclose(blk(xb, sb, cb), blk(xb, sb, cb, full, full), atol=1e-12),
          "drop path with all rows selected == no drop")
    i1, i2 = torch.tensor([3, 0, 4]), torch.tensor([1, 3, 2])
    yb = blk(xb, sb, cb, i1, i2)
    check(not torch.allclose(yb[3], xb[3]), "drop path changes selected rows")
    # row 0 only gets the attention branch (in i1, not in i2), scaled by 5/3
    ra = blk.ls1(blk.attn(blk.norm1(xb[[0]]), sb, cb))[0]
    check(torch.allclose(yb[0], xb[0] + 5 / 3 * ra, atol=1e-12), "drop path: scale N/k on the attention branch")
    yb4 = blk(xb, sb, cb, torch.tensor([0, 1, 2]), torch.tensor([0, 1, 2]))
    check(torch.equal(yb4[3:], xb[3:]), "drop path: rows outside both subsets unchanged")
    check(V.swiglu_width(4096 * 3, 64) == 8192 and V.swiglu_width(128, 8) == 88
          and V.swiglu_width(256, 8) == 176, "swiglu width rule int(h*2/3) rounded up")

    # 8. gradcheck of the whole backbone, float64
    for ffn in ("mlp", "swiglu"):
        cfg = V.VitConfig(dim=8, depth=2, heads=2, registers=1, patch=2, ffn=ffn, ffn_ratio=2, ln_eps=1e-5)
        m = V.DinoVit(cfg).double()
        randomize(m, gen)
        names = m.trainable_names()
        params = [p.detach().clone().requires_grad_(True) for p in m.parameters()]
        img0 = torch.randn(3, 3, 4, 6, dtype=torch.float64, generator=gen, requires_grad=True)
        img1 = torch.randn(2, 3, 2, 4, dtype=torch.float64, generator=gen)
        mask0 = torch.tensor([[1, 0, 0, 1, 0, 0], [0, 0, 0, 0, 0, 0], [0, 1, 1, 0, 0, 0]], dtype=torch.bool)
        drop = [[(torch.tensor([2, 0]), torch.tensor([1, 2])), (None, torch.tensor([0]))], None]
        aug = [torch.tensor([[0.1, -0.2, 1.3, 0.8], [0.0, 0.05, 0.7, 0.7]], dtype=torch.float64), None]
        r0 = torch.randn(3, 1 + 1 + 6, 8, dtype=torch.float64, generator=gen)
        r1 = torch.randn(2, 1 + 1 + 2, 8, dtype=torch.float64, generator=gen)

        def loss(x0, *ps):
            sd = {"m." + n: p for n, p in zip(names, ps)}
            o = torch.nn.utils.stateless.functional_call(
                _Wrap(m), sd, ([(x0, mask0), (img1, None)], drop, aug))
            return (o[0] * r0).sum() + (o[1] * r1).sum()

        ok = torch.autograd.gradcheck(loss, (img0, *params), eps=1e-6, atol=1e-7, rtol=1e-5)
        check(ok, "gradcheck float64 backbone (%s), mask + drop path + rope aug" % ffn)
        # the qkv k-bias gradient is exactly zero
        l = loss(img0, *params)
        gs = torch.autograd.grad(l, params)
        g = dict(zip(names, gs))
        kb = g["blocks.0.attn.qkv.bias"][cfg.dim:2 * cfg.dim]
        check(torch.equal(kb, torch.zeros_like(kb)), "qkv.bias gradient is zero on the k third (%s)" % ffn)

    if FAILS:
        print("%d self-check(s) FAILED" % len(FAILS))
        sys.exit(1)
    print("all self-checks passed")


class _Wrap(torch.nn.Module):
    """Lets functional_call drive forward_features_list (it calls forward)."""

    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, groups, drop, aug):
        return self.m.forward_features_list(groups, drop, aug)


if __name__ == "__main__":
    main()
