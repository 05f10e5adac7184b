#!/usr/bin/env python3
"""convert_dinov3_pth.py - a DINOv3 PyTorch checkpoint (.pth) or a Hugging Face
transformers DINOv3ViTModel folder -> the safetensors backbone file that
`dinox train --init`, `dinox embed` and `dinox eval --weights` take, with the
model's shape in its metadata (model.*) so that no shape option is needed
afterwards.

Accepts the released backbone files (a plain state dict with DINOv3's names:
cls_token, storage_tokens, patch_embed.proj.*, rope_embed.periods, blocks.N.*,
norm.*) and training checkpoints that nest it ({"teacher": {"backbone.x": ...}},
{"model": ...}, {"state_dict": ...}; prefixes "backbone." and "module." are
stripped). Head tensors (dino_head.*, ibot_head.*) and ViT-7B's pre-training-only
local_cls_norm.* are dropped and counted;
any other unknown name stops the conversion unless --drop-unknown.

The shape is read off the tensors: dim (cls_token), depth (blocks), registers
(storage_tokens), patch and input channels (patch_embed.proj.weight), FFN kind
and width (mlp.fc1 / mlp.w1), biases, the k-bias mask, heads (dim / (4 x the
number of RoPE periods)) and the RoPE base (from the periods, which releases
store rounded to bf16: rounded to the nearest integer when within 1%).
LayerNorm eps cannot be read off weights: 1e-5 (DINOv3's), or --ln-eps.

A folder (or its model.safetensors) with a transformers config.json of
model_type "dinov3_vit" -- the Hub's facebook/dinov3-vit*-pretrain-* downloads,
`dinox export --format hf`, any DINOv3ViTModel.save_pretrained -- is renamed
back to DINOv3's names (embeddings.* -> cls_token, storage_tokens, mask_token,
patch_embed.proj; layer.N / model.layer.N -> blocks.N; q/k/v_proj stacked into
attn.qkv, with a zero k bias and the bias mask when key_bias is false;
o_proj -> attn.proj; layer_scale1/2.lambda1 -> ls1/ls2.gamma; up/down_proj ->
mlp.fc1/fc2, or gate/up/down_proj -> mlp.w1/w2/w3). Heads, LayerNorm eps and
the RoPE base come from config.json; the RoPE periods are left for dinox to
compute, as transformers does. F32, BF16 and F16 tensors are read (no
safetensors package needed).

Needs torch (Debian: python3-torch) to unpickle the .pth; writes safetensors
itself (float32, every bf16/fp16 value exactly). No network.

    python3 tools/convert_dinov3_pth.py dinov3_vits16_pretrain_lvd1689m.pth -o vits16.safetensors
    python3 tools/convert_dinov3_pth.py dinov3-vits16-pretrain-lvd1689m/ -o vits16.safetensors
    dinox train -c configs/... --init vits16.safetensors
"""
import argparse
import json
import math
import os
import re
import struct
import sys
import tempfile

LN_EPS_DEFAULT = 1e-5
PRESETS = {(192, 12, 3): "vit_tiny", (384, 12, 6): "vit_small", (768, 12, 12): "vit_base",
           (1024, 24, 16): "vit_large", (1536, 40, 24): "vit_giant"}


def load_state_dict(path, which):
    import torch
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except TypeError:  # torch without weights_only
        obj = torch.load(path, map_location="cpu")
    if not isinstance(obj, dict):
        raise SystemExit("%s: not a state dict (a %s)" % (path, type(obj).__name__))
    keys = [which] if which else ["teacher", "model", "state_dict", "student"]
    for k in keys:
        if k in obj and isinstance(obj[k], dict):
            obj = obj[k]
            break
    else:
        if which:
            raise SystemExit("%s: no '%s' entry (top-level keys: %s)" % (path, which, ", ".join(list(obj)[:10])))
    sd = {}
    for name, t in obj.items():
        if not hasattr(t, "shape"):
            continue
        for p in ("module.", "backbone."):
            if name.startswith(p):
                name = name[len(p):]
        sd[name] = t
    return sd


def read_safetensors(path):
    """({name: torch float32 tensor}, metadata) from a safetensors file (F32/BF16/F16/F64)."""
    import numpy as np
    import torch
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        if n > 100 << 20:
            raise SystemExit("%s: a %d-byte header is not a safetensors file" % (path, n))
        header = json.loads(f.read(n))
        base = 8 + n
        out = {}
        for name, e in header.items():
            if name == "__metadata__":
                continue
            a, b = e["data_offsets"]
            f.seek(base + a)
            raw = f.read(b - a)
            if e["dtype"] == "BF16":
                x = (np.frombuffer(raw, "<u2").astype("<u4") << 16).view("<f4")
            elif e["dtype"] in ("F32", "F16", "F64"):
                x = np.frombuffer(raw, {"F32": "<f4", "F16": "<f2", "F64": "<f8"}[e["dtype"]]).astype("<f4")
            else:
                raise SystemExit("%s: %s is %s, not a float tensor" % (path, name, e["dtype"]))
            out[name] = torch.from_numpy(x.copy().reshape(e["shape"]))
    return out, header.get("__metadata__") or {}


def load_hf(path):
    """A transformers DINOv3ViTModel folder -> (DINOv3-names state dict, config.json, the file's
    preprocessing.* metadata: present when dinox exported it)."""
    import torch
    folder = path if os.path.isdir(path) else os.path.dirname(os.path.abspath(path))
    st = os.path.join(path, "model.safetensors") if os.path.isdir(path) else path
    try:
        cfg = json.load(open(os.path.join(folder, "config.json")))
    except (OSError, ValueError) as e:
        raise SystemExit("%s: no readable config.json beside the weights (%s)" % (folder, e))
    if cfg.get("model_type") != "dinov3_vit":
        raise SystemExit("%s: config.json model_type is %r, not 'dinov3_vit'" % (folder, cfg.get("model_type")))
    gated = bool(cfg.get("use_gated_mlp", False))
    act = cfg.get("hidden_act", "gelu")
    if act != ("silu" if gated else "gelu"):
        raise SystemExit("%s: hidden_act %r with use_gated_mlp %s: dinox has a GELU MLP and SwiGLU (silu gate) only"
                         % (folder, act, gated))
    hf, meta = read_safetensors(st)
    sd, used = {}, set()

    def take(src, dst, fn=None):
        if src in hf:
            sd[dst] = fn(hf[src]) if fn else hf[src]
            used.add(src)
    take("embeddings.cls_token", "cls_token")
    take("embeddings.mask_token", "mask_token", lambda t: t.reshape(1, -1))
    if "embeddings.register_tokens" in hf and hf["embeddings.register_tokens"].shape[1] > 0:
        take("embeddings.register_tokens", "storage_tokens")
    used.add("embeddings.register_tokens")
    take("embeddings.patch_embeddings.weight", "patch_embed.proj.weight")
    take("embeddings.patch_embeddings.bias", "patch_embed.proj.bias")
    take("norm.weight", "norm.weight")
    take("norm.bias", "norm.bias")
    layers = sorted({int(m.group(2)) for n in hf for m in [re.match(r"^(model\.)?layer\.(\d+)\.", n)] if m})
    key_bias = bool(cfg.get("key_bias", False))
    for i in layers:
        pre = "model.layer.%d." % i if "model.layer.%d.norm1.weight" % i in hf else "layer.%d." % i
        b = "blocks.%d." % i
        for a, d in (("norm1", "norm1"), ("norm2", "norm2"), ("attention.o_proj", "attn.proj")):
            take(pre + a + ".weight", b + d + ".weight")
            take(pre + a + ".bias", b + d + ".bias")
        take(pre + "layer_scale1.lambda1", b + "ls1.gamma")
        take(pre + "layer_scale2.lambda1", b + "ls2.gamma")
        q = [pre + "attention.%s_proj.weight" % c for c in "qkv"]
        if all(n in hf for n in q):
            sd[b + "attn.qkv.weight"] = torch.cat([hf[n] for n in q], 0)
            used.update(q)
        qb, kb, vb = (pre + "attention.%s_proj.bias" % c for c in "qkv")
        if qb in hf and vb in hf:
            D = hf[qb].shape[0]
            k = hf[kb] if key_bias and kb in hf else torch.zeros(D)
            sd[b + "attn.qkv.bias"] = torch.cat([hf[qb], k, hf[vb]])
            used.update({qb, vb} | ({kb} if kb in hf else set()))
            if not key_bias:  # DINOv3's masked k bias: zero, kept zero by the mask
                sd[b + "attn.qkv.bias_mask"] = torch.cat([torch.ones(D), torch.zeros(D), torch.ones(D)])
        names = (("gate_proj", "w1"), ("up_proj", "w2"), ("down_proj", "w3")) if gated else \
                (("up_proj", "fc1"), ("down_proj", "fc2"))
        for a, d in names:
            take(pre + "mlp.%s.weight" % a, b + "mlp.%s.weight" % d)
            take(pre + "mlp.%s.bias" % a, b + "mlp.%s.bias" % d)
    left = sorted(set(hf) - used)
    if left:
        raise SystemExit("%s: %d tensor(s) that DINOv3ViTModel's backbone does not have (first: %s)"
                         % (st, len(left), ", ".join(left[:5])))
    return sd, cfg, {k: v for k, v in meta.items() if k.startswith("preprocessing.")}


BACKBONE = re.compile(r"^(cls_token|storage_tokens|mask_token|patch_embed\.proj\.(weight|bias)|rope_embed\.periods|"
                      r"norm\.(weight|bias)|blocks\.\d+\.(norm1|norm2)\.(weight|bias)|"
                      r"blocks\.\d+\.attn\.qkv\.(weight|bias|bias_mask)|blocks\.\d+\.attn\.proj\.(weight|bias)|"
                      r"blocks\.\d+\.ls[12]\.gamma|blocks\.\d+\.mlp\.(fc1|fc2|w1|w2|w3)\.(weight|bias))$")


def infer_shape(sd, args):
    def has(n):
        return n in sd
    if not has("cls_token") or not has("patch_embed.proj.weight"):
        raise SystemExit("no cls_token / patch_embed.proj.weight: not a DINOv3 ViT backbone")
    dim = int(sd["cls_token"].shape[-1])
    depth = len({int(m.group(1)) for n in sd for m in [re.match(r"blocks\.(\d+)\.", n)] if m})
    pe = sd["patch_embed.proj.weight"].shape
    m = {"dim": dim, "depth": depth, "patch": int(pe[2]), "in_chans": int(pe[1]),
         "registers": int(sd["storage_tokens"].shape[1]) if has("storage_tokens") else 0,
         "qkv_bias": int(has("blocks.0.attn.qkv.bias")), "mask_k_bias": int(has("blocks.0.attn.qkv.bias_mask")),
         "proj_bias": int(has("blocks.0.attn.proj.bias"))}
    if has("blocks.0.mlp.w1.weight"):
        m["ffn"], m["ffn_hidden"] = "swiglu", int(sd["blocks.0.mlp.w1.weight"].shape[0])
        m["ffn_bias"] = int(has("blocks.0.mlp.w1.bias"))
    else:
        m["ffn"], m["ffn_hidden"] = "mlp", int(sd["blocks.0.mlp.fc1.weight"].shape[0])
        m["ffn_bias"] = int(has("blocks.0.mlp.fc1.bias"))
    periods = sd["rope_embed.periods"].float().tolist() if has("rope_embed.periods") else None
    if args.heads:
        m["heads"] = args.heads
    elif periods:
        if dim % (4 * len(periods)):
            raise SystemExit("rope_embed.periods has %d entries: dim %d is not 4 x that x heads" % (len(periods), dim))
        m["heads"] = dim // (4 * len(periods))
    else:
        raise SystemExit("no rope_embed.periods to read the head count from: give --heads")
    if args.rope_base:
        m["rope_base"] = args.rope_base
    elif periods and len(periods) > 1:
        # periods[j] = base ** (4 j / Dh), Dh = 4 len(periods)
        base = periods[-1] ** (len(periods) / (len(periods) - 1))
        m["rope_base"] = float(round(base)) if abs(base - round(base)) < 0.01 * base else base
    else:
        m["rope_base"] = 100.0
    m["ln_eps"] = args.ln_eps
    m["arch"] = PRESETS.get((dim, depth, m["heads"]), "custom")
    if m["arch"] == "vit_giant" and m["ffn"] != "swiglu":
        m["arch"] = "custom"
    return m


def write_safetensors(path, tensors, metadata):
    """float32 little-endian, atomically (temp file in the same folder, fsync, rename)."""
    import numpy as np
    header, blobs, off = {}, [], 0
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name].detach().float().cpu().numpy().astype("<f4"))
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [off, off + a.nbytes]}
        blobs.append(a)
        off += a.nbytes
    header["__metadata__"] = metadata
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    d = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".convert-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(struct.pack("<Q", len(h)))
            f.write(h)
            for a in blobs:
                f.write(a.tobytes())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("pth", help="a .pth, or a transformers folder (config.json + model.safetensors)")
    ap.add_argument("-o", "--out", required=True, help="output .safetensors")
    ap.add_argument("--which", help="entry of a training checkpoint to take (default: teacher, model, state_dict, "
                                    "student, else the top level)")
    ap.add_argument("--heads", type=int, help="attention heads (default: from rope_embed.periods)")
    ap.add_argument("--rope-base", type=float, help="RoPE base (default: from rope_embed.periods)")
    ap.add_argument("--ln-eps", type=float, default=LN_EPS_DEFAULT,
                    help="LayerNorm eps (1e-5; a transformers folder: its config.json's)")
    ap.add_argument("--drop-unknown", action="store_true", help="drop tensors that are not backbone tensors")
    args = ap.parse_args()
    if os.path.abspath(args.out) == os.path.abspath(args.pth):
        raise SystemExit("--out would replace the input")
    hf_cfg, prep = None, {}
    if os.path.isdir(args.pth) or args.pth.endswith(".safetensors"):
        sd, hf_cfg, prep = load_hf(args.pth)
        # what config.json says and no tensor shows
        args.heads = args.heads or int(hf_cfg.get("num_attention_heads", 6))
        args.rope_base = args.rope_base or float(hf_cfg.get("rope_theta", 100.0))
        if args.ln_eps == LN_EPS_DEFAULT:
            args.ln_eps = float(hf_cfg.get("layer_norm_eps", LN_EPS_DEFAULT))
    else:
        sd = load_state_dict(args.pth, args.which)
    # heads and pre-training-only tensors (ViT-7B's local_cls_norm): not part of a backbone
    heads = [n for n in sd if n.startswith(("dino_head.", "ibot_head.", "head.", "local_cls_norm."))]
    unknown = [n for n in sd if n not in heads and not BACKBONE.match(n)]
    if unknown and not args.drop_unknown:
        raise SystemExit("%d tensor(s) are not DINOv3 backbone tensors (first: %s); --drop-unknown drops them"
                         % (len(unknown), ", ".join(unknown[:5])))
    keep = {n: t for n, t in sd.items() if BACKBONE.match(n)}
    m = infer_shape(keep, args)
    meta = {"format": "dinox-backbone", "source": "converted from " + os.path.basename(args.pth), "arch": m["arch"]}
    for k in ("dim", "depth", "heads", "registers", "patch", "in_chans", "ffn", "ffn_hidden", "ln_eps", "qkv_bias",
              "mask_k_bias", "proj_bias", "ffn_bias", "rope_base"):
        v = m[k]
        meta["model." + k] = ("%.9g" % v) if isinstance(v, float) else str(v)
    meta.update(prep)
    write_safetensors(args.out, keep, meta)
    print("%s: %d backbone tensors (%s, dim %d, depth %d, heads %d, patch %d, %d registers, %s %d)%s%s -> %s"
          % (args.pth, len(keep), m["arch"], m["dim"], m["depth"], m["heads"], m["patch"], m["registers"], m["ffn"],
             m["ffn_hidden"], "; %d head / pre-training-only tensors dropped" % len(heads) if heads else "",
             "; %d unknown dropped" % len(unknown) if unknown else "", args.out))


if __name__ == "__main__":
    main()
