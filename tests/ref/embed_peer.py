"""embed_peer.py - a released-style DINOv3 backbone file and its PyTorch output,
for tests/test_embed_peer.sh (the `dinox embed` interface check).

Writes into --out:
  W.safetensors  the backbone state dict under the DINOv3 key names (spec §11.2),
                 float32 except rope_embed.periods, stored as BF16 (bf16-rounded)
                 as the released checkpoints do; for vit_small exactly 188 keys
  X.npy          float32 [N, 3, H, W] input
  ref.npy        float32 [N, 1+R+P, D] final-norm tokens of vit_ref.py (float64 compute)
Weights are random but non-trivial (LayerScale ~0.1, non-zero biases, a non-zero
k-bias third that the masked k-bias must ignore)."""
import argparse
import json
import os
import struct
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vit_ref  # noqa: E402

ARCHS = {"vit_small": (384, 12, 6), "vit_tiny": (192, 12, 3)}


def bf16_bits(a):
    """float32 -> bf16 bit patterns (round to nearest even), and the rounded float32."""
    u = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32).astype(np.uint64)
    r = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
    back = (r.astype(np.uint32) << 16).view(np.float32)
    return r, back


def save_st(path, tensors):
    """tensors: name -> (dtype name, shape, bytes)."""
    header, off, blobs = {}, 0, []
    for name, (dt, shape, b) in tensors.items():
        header[name] = {"dtype": dt, "shape": list(shape), "data_offsets": [off, off + len(b)]}
        off += len(b)
        blobs.append(b)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--arch", default="vit_small")
    ap.add_argument("--n", type=int, default=2)
    ap.add_argument("--size", type=int, default=224)
    args = ap.parse_args()
    dim, depth, heads = ARCHS[args.arch]
    cfg = vit_ref.VitConfig(dim=dim, depth=depth, heads=heads)  # released defaults otherwise
    torch.manual_seed(1234)
    m = vit_ref.DinoVit(cfg)
    with torch.no_grad():
        for name, p in m.named_parameters():
            if name.endswith("gamma"):
                p.uniform_(0.05, 0.2)
            elif "norm" in name and name.endswith("weight"):
                p.uniform_(0.8, 1.2)
            elif name.endswith("bias"):
                p.normal_(0, 0.02)
            else:
                p.normal_(0, 0.02)
        bits, rounded = bf16_bits(m.rope_embed.periods.numpy())
        m.rope_embed.periods.copy_(torch.from_numpy(rounded))
    sd = m.state_dict()
    tensors = {}
    for k, v in sd.items():
        if k == "rope_embed.periods":
            tensors[k] = ("BF16", v.shape, bits.tobytes())
        else:
            tensors[k] = ("F32", v.shape, v.float().numpy().astype("<f4").tobytes())
    if args.arch == "vit_small":
        assert len(tensors) == 188, len(tensors)
        n_train = sum(p.numel() for p in m.parameters())
        assert n_train == 21601152, n_train
    os.makedirs(args.out, exist_ok=True)
    save_st(os.path.join(args.out, "W.safetensors"), tensors)
    x = torch.randn(args.n, 3, args.size, args.size)
    np.save(os.path.join(args.out, "X.npy"), x.numpy().astype(np.float32))
    with torch.no_grad():
        ref = m.double().forward_features_list([(x.double(), None)])[0]
    np.save(os.path.join(args.out, "ref.npy"), ref.float().numpy())
    print("embed_peer: %s, %d keys, ref %s" % (args.arch, len(tensors), tuple(ref.shape)))


if __name__ == "__main__":
    main()
