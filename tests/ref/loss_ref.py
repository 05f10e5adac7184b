"""loss_ref.py - PyTorch reference of the DINOv3 objective, written from
/work/shared/design/dinov3-spec.md §3-§7 (not from the dinov3 code).

Every function works in the dtype of its inputs (the fixture generator uses
float64); gradients come from autograd of these forward formulas, so they are
independent of the hand-derived backward kernels in src/backend/cpu/cpu_loss_impl.h.
Row layouts are crop-major as in the collate (row = crop * B + b).
"""
import math

import numpy as np
import torch
import torch.nn.functional as F


# ---- teacher centring (§4.2, §4.3) -------------------------------------------

def sinkhorn_knopp(logits, temp, n_iter=3):
    """§4.2 literally: Q = exp(Z/temp)^T (K x N), global normalisation, n_iter
    rounds of prototype (row of Q) then sample (column of Q) normalisation,
    times N; returns N x K. No max subtraction (float64 does not overflow here)."""
    Q = torch.exp(logits / temp).t()
    K, N = Q.shape
    Q = Q / Q.sum()
    for _ in range(n_iter):
        Q = Q / Q.sum(dim=1, keepdim=True)
        Q = Q / K
        Q = Q / Q.sum(dim=0, keepdim=True)
        Q = Q / N
    Q = Q * N
    return Q.t()


def softmax_center(logits, center, temp):
    """§4.3: softmax((Z - c)/temp) per row."""
    return F.softmax((logits - center) / temp, dim=-1)


# ---- cross-entropy family (§3.1, §3.2) --------------------------------------

def ce_rows(T, S, temp):
    """CE(t, s) = -sum_k t_k log softmax(s/temp)_k per row."""
    return -(T * F.log_softmax(S / temp, dim=-1)).sum(dim=-1)


def dino_loss(S, T, B, temp, ignore_diag):
    """S [ns*B, K] student, T [nt*B, K] teacher; mean over valid (c, t) pairs and b."""
    ns, nt = S.shape[0] // B, T.shape[0] // B
    total, pairs = 0.0, 0
    for c in range(ns):
        for t in range(nt):
            if ignore_diag and c == t:
                continue
            total = total + ce_rows(T[t * B:(t + 1) * B], S[c * B:(c + 1) * B], temp).sum()
            pairs += 1
    return total / (pairs * B)


def ibot_loss(S, T, weights, n_crops, temp):
    """§3.2: sum_j CE_j / n_i(j), divided by the number of ALL global crops."""
    return (ce_rows(T, S, temp) * weights).sum() / n_crops


# ---- KoLeo (§3.3) -----------------------------------------------------------

def koleo_loss(x, eps=1e-8):
    """Returns (loss, nn indices). z = normalize(x, eps); NN by the largest dot
    with the diagonal set to -1 (indices without gradient); PairwiseDistance
    adds eps to the difference: d = |z_b - z_n + eps|; -mean log(d + eps)."""
    z = F.normalize(x, p=2, dim=-1, eps=eps)
    with torch.no_grad():
        dots = z @ z.t()
        dots.fill_diagonal_(-1)
        idx = torch.max(dots, dim=1).indices
    diff = z - z[idx] + eps
    d = torch.sqrt((diff * diff).sum(dim=-1))
    return -torch.log(d + eps).mean(), idx


# ---- Gram (§3.4, §5.1) -----------------------------------------------------

def gram_loss(xs, xt, img_level):
    """xs, xt [nimg, P, D]; normalise rows (eps 1e-12); MSE mean over Gram entries."""
    xs = F.normalize(xs, dim=-1, eps=1e-12)
    xt = F.normalize(xt, dim=-1, eps=1e-12)
    if not img_level:
        xs = xs.reshape(1, -1, xs.shape[-1])
        xt = xt.reshape(1, -1, xt.shape[-1])
    gs = xs @ xs.transpose(-1, -2)
    gt = xt @ xt.transpose(-1, -2)
    return ((gs - gt) ** 2).mean()


def resize_bicubic(x, size):
    """x [n, C, H, W] -> [n, C, size, size]: F.interpolate bicubic, align_corners False, no antialias."""
    return F.interpolate(x, size=size, mode="bicubic", align_corners=False)


def l2norm(x, eps=1e-12):
    return F.normalize(x, p=2, dim=-1, eps=eps)


# ---- schedules (§7.4) ------------------------------------------------------

def libm_cos(a):
    """elementwise correctly rounded (glibc) cos; np.cos may use a SIMD
    implementation that is 1 ulp off on some CPUs (AVX-512)"""
    return np.array([math.cos(x) for x in np.asarray(a, dtype=np.float64)], dtype=np.float64)


def cosine_scheduler(base, final, total, warmup=0, start_warmup=0.0, freeze=0, cos=np.cos):
    """v1: [zeros(freeze) | linspace(start_warmup, base, warmup) | cosine]."""
    fr = np.zeros((freeze,))
    wu = np.linspace(start_warmup, base, warmup)
    it = np.arange(total - warmup - freeze)
    cos = final + 0.5 * (base - final) * (1 + cos(np.pi * it / len(it)))
    return np.concatenate((fr, wu, cos))


def cosine_at(sched, final, it):
    return final if it >= len(sched) else sched[it]


def linear_warmup_cosine_decay(start, peak, end, warmup, total, cosine=None, cos=np.cos):
    """v2: [linspace(start, peak, W, endpoint=False) | end + (peak-end)(1+cos(linspace(0,pi,C)))/2 | end]."""
    lin = np.linspace(start, peak, warmup, endpoint=False)
    if cosine is None:
        cosine = total - warmup
    c = cos(np.linspace(0, np.pi, cosine))
    c = (c + 1) / 2
    c = (peak - end) * c + end
    rest = total - cosine - warmup
    assert rest >= 0
    return np.concatenate([lin, c, np.full((rest,), end)])


# ---- optimizer groups (§7.2) and clipping (§7.1) ----------------------------

def param_mult(name, depth, decay, patch_embed_mult):
    """Returns (lr_mult, wd_mult, is_last_layer) from the §7.2 table."""
    layer_id = depth + 1
    if depth > 0:
        if any(k in name for k in ("pos_embed", "patch_embed", "mask_token", "cls_token",
                                   "storage_tokens")):
            layer_id = 0
        elif "blocks." in name and "residual." not in name:
            layer_id = int(name[name.find("blocks."):].split(".")[1]) + 1
    lr = decay ** (depth + 1 - layer_id)
    wd = 1.0
    if name.endswith("bias") or "norm" in name or "gamma" in name or "fourier_w" in name:
        wd = 0.0
    if "patch_embed" in name:
        lr *= patch_embed_mult
    return lr, wd, "last_layer" in name


def vits_names(depth=12):
    """Trainable ViT-S/16 parameter names (§11.2) without buffers."""
    names = ["cls_token", "storage_tokens", "mask_token", "patch_embed.proj.weight",
             "patch_embed.proj.bias"]
    for i in range(depth):
        for s in ("norm1.weight", "norm1.bias", "attn.qkv.weight", "attn.qkv.bias",
                  "attn.proj.weight", "attn.proj.bias", "ls1.gamma", "norm2.weight",
                  "norm2.bias", "mlp.fc1.weight", "mlp.fc1.bias", "mlp.fc2.weight",
                  "mlp.fc2.bias", "ls2.gamma"):
            names.append("blocks.%d.%s" % (i, s))
    names += ["norm.weight", "norm.bias", "local_cls_norm.weight", "local_cls_norm.bias"]
    return names


def head_names():
    return ["mlp.0.weight", "mlp.0.bias", "mlp.2.weight", "mlp.2.bias", "mlp.4.weight",
            "mlp.4.bias", "last_layer.weight"]


def clip_factor(norm, clip):
    return min(1.0, clip / (norm + 1e-6))


# ---- total objective (§3.5) -------------------------------------------------

def total_loss(terms, w_dino=1.0, w_koleo=0.1, w_ibot=1.0, w_gram=None, local_weight=1.0,
               G=2, L=8):
    """terms: dict dino_local, dino_global, koleo, ibot, gram. Returns (total, contributions)."""
    n_glob, n_loc = G * (G - 1), G * L
    s_glob, s_loc = n_glob / (n_glob + n_loc), n_loc / (n_glob + n_loc)
    c = {
        "dino_local": w_dino * s_loc * local_weight * terms["dino_local"],
        "dino_global": w_dino * s_glob * terms["dino_global"],
        "koleo": w_koleo * G * terms["koleo"],
        "ibot": w_ibot * terms["ibot"],
        "gram": (w_gram * terms["gram"]) if w_gram is not None else 0.0,
    }
    return sum(c.values()), c


def mask_counts(N, n_crops, prob=0.5, rmin=0.1, rmax=0.5):
    """§6.3: n = int(n_crops*prob); m_i = int(N * linspace(rmin, rmax, n+1)[i+1]) in float32."""
    n = int(n_crops * prob)
    r = torch.linspace(rmin, rmax, n + 1)  # float32
    return [int(N * r[i + 1]) for i in range(n)]


# ---- iBOT mask generator (§6.3), Python's `random` as the reference does ----

class MaskGen:
    """Block masking on an H x W grid: min 4 patches, max 0.5*N per block,
    aspect in [0.3, 1/0.3], 10 tries per round, random completion to m."""

    def __init__(self, H, W, rng):
        self.H, self.W, self.rng = H, W, rng
        self.min_p, self.max_p = 4, 0.5 * H * W
        self.log_aspect = (math.log(0.3), math.log(1 / 0.3))

    def round(self, mask, cap):
        """one round; returns (delta, box or None)"""
        delta, box = 0, None
        for _ in range(10):
            area = self.rng.uniform(self.min_p, cap)
            asp = math.exp(self.rng.uniform(*self.log_aspect))
            h = int(round(math.sqrt(area / asp)))
            w = int(round(math.sqrt(area * asp)))
            if w < self.W and h < self.H:
                top = self.rng.randint(0, self.H - h)
                left = self.rng.randint(0, self.W - w)
                sub = mask[top:top + h, left:left + w]
                fresh = h * w - int(sub.sum())
                if 0 < fresh <= cap:
                    sub[...] = True
                    delta, box = fresh, (top, left, h, w)
                if delta > 0:
                    break
        return delta, box

    def blocks(self, m):
        mask = np.zeros((self.H, self.W), dtype=bool)
        count = 0
        while count < m:
            d, _ = self.round(mask, min(m - count, self.max_p))
            if d == 0:
                break
            count += d
        return mask, count

    def __call__(self, m):
        mask, count = self.blocks(m)
        flat = mask.reshape(-1)
        free = np.flatnonzero(~flat)
        pick = self.rng.sample(list(free), m - count)
        flat[pick] = True
        return flat.reshape(self.H, self.W)
