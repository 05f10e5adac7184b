"""vit_ref.py - plain PyTorch reference of the DINOv3 ViT backbone (spec §1).

Written from /work/shared/design/dinov3-spec.md §1 and §11.2; it is the oracle
the C backbone (src/nn/vit.*) is compared against, via the fixtures written by
gen_vit_fixtures.py, and the PyTorch peer of the step benchmark. Everything is
spelled out (attention is softmax(q k^T / sqrt(Dh)) v, no fused kernels) so it
runs in float64 as well as float32.

Dimension names: N images, T = 1 + R + P tokens, P = Hp*Wp patches, D dim,
H heads, Dh = D/H, F FFN width.

State-dict names are exactly the DINOv3 ones (spec §11.2): cls_token,
storage_tokens, mask_token, patch_embed.proj.*, rope_embed.periods,
blocks.{i}.{norm1,attn.qkv,attn.proj,ls1,norm2,mlp.fc1/fc2 | mlp.w1/w2/w3,ls2}.*,
norm.*. Buffers (rope_embed.periods, blocks.{i}.attn.qkv.bias_mask) are in the
state dict but not trainable.

Training-time randomness is never drawn here: stochastic-depth subsets and
RoPE coordinate augmentations are passed in by the caller (the C side draws
them from dx_rng streams; tests inject the same values on both sides).
"""
import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class VitConfig:
    dim: int = 384
    depth: int = 12
    heads: int = 6
    registers: int = 4
    patch: int = 16
    in_chans: int = 3
    ffn: str = "mlp"          # "mlp" (fc1 -> exact GELU -> fc2) or "swiglu"
    ffn_ratio: float = 4.0    # hidden = int(dim * ffn_ratio) before the SwiGLU 2/3 rule
    swiglu_align: int = 8
    ln_eps: float = 1e-5
    mask_k_bias: bool = True
    rope_base: float = 100.0

    @property
    def head_dim(self):
        return self.dim // self.heads

    @property
    def ffn_hidden(self):
        """Width of fc1 (MLP) or of each of w1, w2 (SwiGLU), as built."""
        hidden = int(self.dim * self.ffn_ratio)
        if self.ffn == "swiglu":
            return swiglu_width(hidden, self.swiglu_align)
        return hidden


def swiglu_width(hidden, align):
    """DINOv3 SwiGLU width: int(hidden * 2/3) rounded up to a multiple of align."""
    d = int(hidden * 2 / 3)
    return d + (-d) % align


VIT_ARCHS = {  # spec §1.1 (patch 16, 4 registers, LN eps 1e-5 as released)
    "vit_tiny": dict(dim=192, depth=12, heads=3),
    "vit_small": dict(dim=384, depth=12, heads=6),
    "vit_base": dict(dim=768, depth=12, heads=12),
    "vit_large": dict(dim=1024, depth=24, heads=16),
}


# ---------------------------------------------------------------- layers

class PatchEmbed(nn.Module):
    """Conv2d(in -> D, kernel p, stride p, bias): [N,3,H,W] -> [N, P, D] row-major patches."""

    def __init__(self, cfg):
        super().__init__()
        self.proj = nn.Conv2d(cfg.in_chans, cfg.dim, cfg.patch, stride=cfg.patch, bias=True)

    def forward(self, x):
        x = self.proj(x)                        # [N, D, Hp, Wp]
        return x.flatten(2).transpose(1, 2)     # [N, Hp*Wp, D]


class LinearKMaskedBias(nn.Linear):
    """qkv projection D -> 3D whose bias is multiplied by the fixed buffer
    bias_mask = [1 (q) | 0 (k) | 1 (v)], so keys carry no bias (spec §1.4).
    The k third of `bias` exists, is ignored and gets zero gradient."""

    def __init__(self, dim, mask_k_bias):
        super().__init__(dim, 3 * dim, bias=True)
        m = torch.ones(3 * dim)
        if mask_k_bias:
            m[dim:2 * dim] = 0
        self.register_buffer("bias_mask", m)

    def forward(self, x):
        return F.linear(x, self.weight, self.bias * self.bias_mask)


class LayerScale(nn.Module):
    def __init__(self, dim, init=1e-5):
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), float(init)))

    def forward(self, x):
        return x * self.gamma


class RopeEmbed(nn.Module):
    """Axial 2-D RoPE tables (spec §1.7). periods[j] = base^(4j/Dh), j < Dh/4,
    kept as a persistent buffer (the released files store it; use the file's
    values, not recomputed ones)."""

    def __init__(self, cfg):
        super().__init__()
        dh = cfg.head_dim
        j = torch.arange(dh // 4, dtype=torch.float64)
        self.register_buffer("periods", (cfg.rope_base ** (4.0 * j / dh)).float())

    def coords(self, hp, wp, aug=None):
        """[P, 2] (cy, cx), 'separate' normalisation: (i+0.5)/n*2-1, row-major.
        aug = (shift_y, shift_x, scale_y, scale_x): coords <- (coords + shift) * scale,
        which is DINOv3's shift, then jitter (per axis) times rescale (shared)
        folded into one per-axis factor."""
        dt = self.periods.dtype
        cy = (torch.arange(hp, dtype=dt) + 0.5) / hp * 2 - 1
        cx = (torch.arange(wp, dtype=dt) + 0.5) / wp * 2 - 1
        c = torch.stack(torch.meshgrid(cy, cx, indexing="ij"), dim=-1).reshape(hp * wp, 2)
        if aug is not None:
            a = torch.as_tensor(aug, dtype=dt)
            c = (c + a[0:2]) * a[2:4]
        return c

    def tables(self, hp, wp, aug=None):
        """sin, cos: [P, Dh]. angle[p, :] = [2pi*cy/periods (Dh/4), 2pi*cx/periods (Dh/4)]
        tiled twice, shared by all heads."""
        c = self.coords(hp, wp, aug)                                  # [P, 2]
        ang = 2 * math.pi * c[:, :, None] / self.periods[None, None]  # [P, 2, Dh/4]
        ang = ang.reshape(c.shape[0], -1)                             # [P, Dh/2] y then x
        ang = torch.cat([ang, ang], dim=-1)                           # [P, Dh]
        return torch.sin(ang), torch.cos(ang)


def rope_apply(x, sin, cos):
    """Rotate-half RoPE, pairs (i, i + Dh/2): x [..., P, Dh], sin/cos [P, Dh].
    x'_i = x_i cos - x_{i+Dh/2} sin ; x'_{i+Dh/2} = x_{i+Dh/2} cos + x_i sin."""
    h = x.shape[-1] // 2
    rot = torch.cat([-x[..., h:], x[..., :h]], dim=-1)
    return x * cos + rot * sin


class Attention(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.heads = cfg.heads
        self.qkv = LinearKMaskedBias(cfg.dim, cfg.mask_k_bias)
        self.proj = nn.Linear(cfg.dim, cfg.dim, bias=True)

    def forward(self, x, sin, cos):
        n, t, d = x.shape
        h = self.heads
        dh = d // h
        qkv = self.qkv(x).reshape(n, t, 3, h, dh).permute(2, 0, 3, 1, 4)  # [3, N, H, T, Dh]
        q, k, v = qkv[0], qkv[1], qkv[2]
        if sin is not None:  # RoPE on patch tokens only; cls + registers untouched
            pre = t - sin.shape[0]
            q = torch.cat([q[:, :, :pre], rope_apply(q[:, :, pre:], sin, cos)], dim=2)
            k = torch.cat([k[:, :, :pre], rope_apply(k[:, :, pre:], sin, cos)], dim=2)
        att = (q @ k.transpose(-1, -2)) / math.sqrt(dh)                  # [N, H, T, T]
        att = att.softmax(dim=-1)
        o = (att @ v).transpose(1, 2).reshape(n, t, d)                   # heads in order
        return self.proj(o)


class Mlp(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.fc1 = nn.Linear(cfg.dim, cfg.ffn_hidden)
        self.fc2 = nn.Linear(cfg.ffn_hidden, cfg.dim)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))  # exact erf GELU


class SwiGLU(nn.Module):
    """w3(silu(w1 x) * (w2 x)). (The C side stacks w1|w2 into one GEMM; the
    state-dict keys stay separate.)"""

    def __init__(self, cfg):
        super().__init__()
        f = cfg.ffn_hidden
        self.w1 = nn.Linear(cfg.dim, f)
        self.w2 = nn.Linear(cfg.dim, f)
        self.w3 = nn.Linear(f, cfg.dim)

    def forward(self, x):
        return self.w3(F.silu(self.w1(x)) * self.w2(x))


class Block(nn.Module):
    """Pre-norm block: y = x + ls1*Attn(norm1 x); out = y + ls2*FFN(norm2 y).
    Batch-subset stochastic depth (spec §1.3) when idx1/idx2 are given:
    only rows idx (k of them) get the branch, scaled by N/k."""

    def __init__(self, cfg):
        super().__init__()
        self.norm1 = nn.LayerNorm(cfg.dim, eps=cfg.ln_eps)
        self.attn = Attention(cfg)
        self.ls1 = LayerScale(cfg.dim)
        self.norm2 = nn.LayerNorm(cfg.dim, eps=cfg.ln_eps)
        self.mlp = SwiGLU(cfg) if cfg.ffn == "swiglu" else Mlp(cfg)
        self.ls2 = LayerScale(cfg.dim)

    def forward(self, x, sin, cos, idx1=None, idx2=None):
        n = x.shape[0]
        if idx1 is None:
            x = x + self.ls1(self.attn(self.norm1(x), sin, cos))
        else:
            idx1 = torch.as_tensor(idx1, dtype=torch.long)
            r = self.ls1(self.attn(self.norm1(x[idx1]), sin, cos))
            x = torch.index_add(x, 0, idx1, r, alpha=n / idx1.numel())
        if idx2 is None:
            x = x + self.ls2(self.mlp(self.norm2(x)))
        else:
            idx2 = torch.as_tensor(idx2, dtype=torch.long)
            r = self.ls2(self.mlp(self.norm2(x[idx2])))  # subset of the updated tensor
            x = torch.index_add(x, 0, idx2, r, alpha=n / idx2.numel())
        return x


# ---------------------------------------------------------------- backbone

class DinoVit(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        assert cfg.dim % (4 * cfg.heads) == 0, "RoPE needs dim % (4*heads) == 0"
        self.cfg = cfg
        d = cfg.dim
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        self.storage_tokens = nn.Parameter(torch.zeros(1, cfg.registers, d))
        self.mask_token = nn.Parameter(torch.zeros(1, d))
        self.patch_embed = PatchEmbed(cfg)
        self.rope_embed = RopeEmbed(cfg)
        self.blocks = nn.ModuleList([Block(cfg) for _ in range(cfg.depth)])
        self.norm = nn.LayerNorm(d, eps=cfg.ln_eps)

    def trainable_names(self):
        return [n for n, _ in self.named_parameters()]

    def prepare_tokens(self, x, mask=None):
        """x [N,3,H,W], mask [N,P] bool (True = replace by mask_token) -> [N, 1+R+P, D]."""
        p = self.patch_embed(x)                                          # [N, P, D]
        if mask is not None:
            m = torch.as_tensor(mask).bool()
            p = torch.where(m[:, :, None], self.mask_token[None].to(p.dtype), p)
        n = p.shape[0]
        cls = self.cls_token.expand(n, -1, -1)
        reg = self.storage_tokens.expand(n, -1, -1)
        return torch.cat([cls, reg, p], dim=1)

    def forward_features_list(self, groups, drop_idx=None, rope_aug=None):
        """groups: list of (images [N,3,H,W], mask [N,P] or None).
        drop_idx: None or per group None / list over blocks of (idx1, idx2)
          (each None or a LongTensor of k sample indices) - stochastic depth.
        rope_aug: None or per group None / [depth, 4] (shift_y, shift_x, scale_y, scale_x),
          one coordinate augmentation per block and group (train mode, student).
        Returns per group the final-norm tokens [N, 1+R+P, D] (cls, registers, patches)."""
        outs = []
        for g, (x, mask) in enumerate(groups):
            hp = x.shape[2] // self.cfg.patch
            wp = x.shape[3] // self.cfg.patch
            t = self.prepare_tokens(x, mask)
            aug_g = None if rope_aug is None else rope_aug[g]
            drop_g = None if drop_idx is None else drop_idx[g]
            base = self.rope_embed.tables(hp, wp) if aug_g is None else None
            for l, blk in enumerate(self.blocks):
                sin, cos = base if aug_g is None else self.rope_embed.tables(hp, wp, aug_g[l])
                sin, cos = sin.to(t.dtype), cos.to(t.dtype)
                i1, i2 = (None, None) if drop_g is None else drop_g[l]
                t = blk(t, sin, cos, i1, i2)
            outs.append(self.norm(t))
        return outs


def flops_forward_per_image(cfg, h, w):
    """Forward matmul FLOPs of one image (perf-baselines.md convention):
    patch-embed GEMM + per block 2*T*(linear params) + 4*T*T*D (QK^T and PV)."""
    p = (h // cfg.patch) * (w // cfg.patch)
    t = 1 + cfg.registers + p
    d, f = cfg.dim, cfg.ffn_hidden
    ffn = (3 if cfg.ffn == "swiglu" else 2) * d * f
    lin = 3 * d * d + d * d + ffn
    per_block = 2 * t * lin + 4 * t * t * d
    return 2 * p * (cfg.in_chans * cfg.patch * cfg.patch) * d + cfg.depth * per_block
