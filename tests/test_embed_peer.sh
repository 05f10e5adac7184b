#!/usr/bin/env bash
# test_embed_peer.sh - `dinox embed` on a released-style ViT-S/16 file (188 keys,
# bf16 RoPE periods) against the PyTorch reference, plus its error messages on
# a missing key, a wrong shape, a non-float dtype and a truncated file.
set -euo pipefail
: "${DINOX:?}" "${DINOX_SOURCE_DIR:?}"
PY=/usr/bin/python3
if ! $PY -c "import torch" 2>/dev/null; then
  echo "FAIL: $PY cannot import torch (apt-get install python3-torch; scripts/setup.sh does)"; exit 1
fi
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
$PY "$DINOX_SOURCE_DIR/tests/ref/embed_peer.py" --out "$work"
"$DINOX" embed --weights "$work/W.safetensors" --arch vit_small --input "$work/X.npy" --output "$work/Y.npy" --batch 1
$PY - "$work" <<'PYEOF'
import sys, numpy as np
d = sys.argv[1]
y, r = np.load(d + "/Y.npy"), np.load(d + "/ref.npy")
assert y.shape == r.shape == (2, 1 + 4 + 196, 384), (y.shape, r.shape)
err = np.abs(y - r).max() / np.abs(r).max()
print("embed vs PyTorch: max normwise error %.3g" % err)
assert err <= 1e-4, err
PYEOF

# Broken files: each must fail with a message naming the problem.
expect_fail() { # file pattern
  if "$DINOX" embed --weights "$1" --arch vit_small --input "$work/X.npy" --output "$work/bad.npy" 2>"$work/err"; then
    echo "FAIL: $1 was accepted"; exit 1
  fi
  grep -q "$2" "$work/err" || { echo "FAIL: message for $1 lacks '$2':"; cat "$work/err"; exit 1; }
  echo "ok: $(head -c 200 "$work/err")"
}
$PY - "$work" <<'PYEOF'
import json, struct, sys
d = sys.argv[1]
raw = open(d + "/W.safetensors", "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
hdr = json.loads(raw[8:8 + n]); body = raw[8 + n:]
def write(name, h, b):
    t = json.dumps(h).encode(); t += b" " * ((8 - len(t) % 8) % 8)
    open(d + "/" + name, "wb").write(struct.pack("<Q", len(t)) + t + b)
h = dict(hdr); h.pop("blocks.3.attn.qkv.weight"); write("missing.safetensors", h, body)
h = dict(hdr); h["blocks.99.attn.qkv.weight"] = {"dtype": "F32", "shape": [384], "data_offsets": [len(body), len(body) + 1536]}
write("extra.safetensors", h, body + bytes(1536))
h = json.loads(json.dumps(hdr)); h["norm.weight"]["shape"] = [2, 192]; write("shape.safetensors", h, body)
h = json.loads(json.dumps(hdr)); e = h["norm.bias"]; e["dtype"] = "I32"; write("dtype.safetensors", h, body)
open(d + "/trunc.safetensors", "wb").write(raw[: len(raw) // 2])
PYEOF
expect_fail "$work/missing.safetensors" "missing tensor 'blocks.3.attn.qkv.weight'"
expect_fail "$work/extra.safetensors" "blocks.99.attn.qkv.weight' is not part of this model"
expect_fail "$work/shape.safetensors" "norm.weight"
expect_fail "$work/dtype.safetensors" "norm.bias"
expect_fail "$work/trunc.safetensors" "outside the data section"
echo "test_embed_peer: all checks passed"
