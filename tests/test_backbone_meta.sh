#!/usr/bin/env bash
# test_backbone_meta.sh - a backbone file says its own shape and preprocessing,
# and every reader uses or checks it: synth -> ingest -> tiny run -> export,
# then
#   1. the metadata holds model.* (= the run's config), preprocessing.* and
#      timm.* keys;
#   2. `dinox embed` with no shape option gives the same tokens as with the
#      full shape spelled out; a disagreeing option is refused (exit 2);
#   3. `dinox eval --weights` with no config gives the same k-NN, segmentation
#      and collapse figures as with --config run/config.yaml;
#   4. `dinox train --init` with another shape is refused before the run
#      directory exists; a metadata edit to ln_eps alone is refused too (a
#      value the tensor shapes cannot catch); other preprocessing is a warning;
#   5. tools/convert_dinov3_pth.py on a DINOv3-style training checkpoint
#      (teacher dict, backbone. prefix, head tensors, bf16 RoPE periods) and on
#      a plain state dict: shape inferred = the export's, tokens equal.
source "$DINOX_SOURCE_DIR/tests/lib/common.sh"
"$DINOX" synth --out synth --patients 12 --size 128 --seed 1 >/dev/null 2>&1
"$DINOX" ingest synth --out store >/dev/null 2>&1
"$DINOX" train --quiet -c "$C" --store store --out run "${TINY[@]}" train.threads=2 train.epoch_length=6 2>/dev/null
"$DINOX" export run --out bb.safetensors >/dev/null 2>&1 || bad "export"

# 1. metadata
$PY - <<'EOF' || bad "metadata"
import json, struct, sys
def meta(p):
    f = open(p, "rb"); n = struct.unpack("<Q", f.read(8))[0]; return json.loads(f.read(n))["__metadata__"]
m = meta("bb.safetensors")
want = {"format": "dinox-backbone", "model.dim": "32", "model.depth": "2", "model.heads": "2", "model.registers": "2",
        "model.patch": "8", "model.in_chans": "3", "model.ffn": "mlp", "model.ffn_hidden": "128",
        "model.mask_k_bias": "1", "model.rope_base": "100", "preprocessing.stack25d": "1",
        "preprocessing.windows": "1500,-600;400,40", "preprocessing.norm_mean": "0.5",
        "preprocessing.norm_std": "0.25", "preprocessing.crop_size": "32", "source": "ema_teacher",
        "timm.model": "vit_small_patch16_dinov3_qkvb"}
bad = [(k, m.get(k), v) for k, v in want.items() if m.get(k) != v]
kw = json.loads(m["timm.kwargs"])
if kw != {"embed_dim": 32, "depth": 2, "num_heads": 2, "num_reg_tokens": 2, "patch_size": 8, "in_chans": 3,
          "mlp_ratio": 4, "rope_temperature": 100}:
    bad.append(("timm.kwargs", kw, "..."))
if abs(float(m["model.ln_eps"]) - 1e-5) > 1e-12 or "dinox" not in m.get("dinox_version", ""):
    bad.append(("model.ln_eps / dinox_version", m.get("model.ln_eps"), m.get("dinox_version")))
for b in bad:
    print("FAIL: metadata %s = %r, expected %r" % b)
sys.exit(1 if bad else 0)
EOF
[ "$fail" = 0 ] && ok "export metadata: model.*, preprocessing.*, timm.* as configured"

# 2. embed
$PY -c "import numpy as np; np.save('x.npy', np.random.RandomState(0).randn(3, 3, 32, 32).astype('f4'))"
"$DINOX" embed --weights bb.safetensors --input x.npy --output y_meta.npy 2>/dev/null || bad "embed without shape options"
"$DINOX" embed --weights bb.safetensors --input x.npy --output y_opts.npy --arch custom --dim 32 --depth 2 --heads 2 \
    --registers 2 --patch 8 2>/dev/null || bad "embed with the shape spelled out"
cmp -s y_meta.npy y_opts.npy && ok "embed: the file's shape = the spelled-out shape (identical tokens)" \
    || bad "embed tokens differ between the metadata shape and the options"
"$DINOX" embed --weights bb.safetensors --input x.npy --output y_bad.npy --heads 4 2>err.txt; rc=$?
[ "$rc" = 2 ] && grep -q "heads 2 but the model is configured with heads 4" err.txt && [ ! -e y_bad.npy ] \
    && ok "embed --heads 4 against a heads-2 file refused (exit 2): $(cat err.txt)" || bad "embed --heads 4: rc $rc, $(cat err.txt)"

# 3. eval without a config
E=(--size 32 --min-readers 2 --boot 100 --no-random-baseline --seg-steps 5 --attention 0 --threads 2)
"$DINOX" eval --store store --weights bb.safetensors --out e_meta "${E[@]}" >/dev/null 2>&1 || bad "eval --weights alone"
"$DINOX" eval --store store --weights bb.safetensors --config run/config.yaml --out e_cfg "${E[@]}" >/dev/null 2>&1 \
    || bad "eval --weights --config"
$PY - <<'EOF' && ok "eval --weights alone = eval --weights --config (k-NN, segmentation, collapse)" || bad "eval figures differ"
import json, sys
a = json.load(open("e_meta/eval.json")); b = json.load(open("e_cfg/eval.json"))
sys.exit(0 if all(a[k] == b[k] for k in ("knn", "seg", "collapse")) and a["seg"]["test_dice"] is not None else 1)
EOF

# 4. train --init
"$DINOX" train --quiet -c "$C" --store store --out r_dim --init bb.safetensors "${TINY[@]}" model.dim=64 \
    train.epoch_length=2 2>err.txt; rc=$?
[ "$rc" != 0 ] && grep -q "dim 32 but the model is configured with dim 64" err.txt && [ ! -e r_dim ] \
    && ok "train --init of a dim-32 file into a dim-64 model refused, no run directory" || bad "init dim: rc $rc $(cat err.txt)"
$PY - <<'EOF'
import json, struct
f = open("bb.safetensors", "rb"); n = struct.unpack("<Q", f.read(8))[0]; h = json.loads(f.read(n)); rest = f.read()
h["__metadata__"]["model.ln_eps"] = "1e-06"
b = json.dumps(h).encode(); b += b" " * (-len(b) % 8)
open("eps.safetensors", "wb").write(struct.pack("<Q", len(b)) + b + rest)
EOF
"$DINOX" train --quiet -c "$C" --store store --out r_eps --init eps.safetensors "${TINY[@]}" train.epoch_length=2 2>err.txt; rc=$?
[ "$rc" != 0 ] && grep -q "ln_eps 1e-06" err.txt && [ ! -e r_eps ] && ok "train --init with ln_eps 1e-6 in the metadata refused" \
    || bad "init eps: rc $rc $(cat err.txt)"
"$DINOX" train --quiet -c "$C" --store store --out r_prep --init bb.safetensors "${TINY[@]}" data.norm_mean=0.4 \
    train.epoch_length=2 train.threads=2 2>err.txt; rc=$?
[ "$rc" = 0 ] && grep -q "other preprocessing" err.txt && ok "train --init with other normalisation: runs, warns" \
    || bad "init prep: rc $rc $(cat err.txt)"

# 5. the .pth converter
$PY - <<'EOF' || bad "writing the .pth files"
import json, struct, numpy as np, torch
f = open("bb.safetensors", "rb"); n = struct.unpack("<Q", f.read(8))[0]; h = json.loads(f.read(n)); data = f.read()
sd = {}
for k, v in h.items():
    if k != "__metadata__":
        a, b = v["data_offsets"]
        sd[k] = torch.from_numpy(np.frombuffer(data[a:b], dtype="<f4").reshape(v["shape"]).copy())
ck = {"teacher": {"backbone." + k: (t.bfloat16() if k == "rope_embed.periods" else t) for k, t in sd.items()}}
ck["teacher"]["dino_head.mlp.0.weight"] = torch.zeros(4, 4)
ck["iteration"] = 10
torch.save(ck, "ck.pth")
torch.save(sd, "plain.pth")
EOF
T="$DINOX_SOURCE_DIR/tools/convert_dinov3_pth.py"
$PY "$T" ck.pth -o conv_ck.safetensors >conv.txt 2>&1 || bad "convert ck.pth: $(cat conv.txt)"
$PY "$T" plain.pth -o conv_plain.safetensors >>conv.txt 2>&1 || bad "convert plain.pth: $(cat conv.txt)"
grep -q "1 head / pre-training-only tensors dropped" conv.txt && ok "converter: head tensors dropped ($(head -1 conv.txt))" || bad "converter output: $(cat conv.txt)"
$PY - <<'EOF' && ok "converter: inferred model.* = the export's (heads and RoPE base from bf16 periods)" || bad "inferred shape"
import json, struct, sys
def meta(p):
    f = open(p, "rb"); n = struct.unpack("<Q", f.read(8))[0]; return json.loads(f.read(n))["__metadata__"]
a = meta("bb.safetensors")
for p in ("conv_ck.safetensors", "conv_plain.safetensors"):
    b = meta(p)
    for k in a:
        if k.startswith("model.") and (float(a[k]) != float(b[k]) if k != "model.ffn" else a[k] != b[k]):
            print("FAIL: %s %s = %s, export says %s" % (p, k, b[k], a[k])); sys.exit(1)
EOF
"$DINOX" embed --weights conv_plain.safetensors --input x.npy --output y_plain.npy 2>/dev/null
"$DINOX" embed --weights conv_ck.safetensors --input x.npy --output y_ck.npy 2>/dev/null
cmp -s y_meta.npy y_plain.npy && ok "converted plain state dict: identical tokens" || bad "plain conversion tokens differ"
$PY - <<'EOF' && ok "converted checkpoint with bf16 RoPE periods: tokens within 1e-4" || bad "checkpoint conversion tokens"
import numpy as np, sys
d = abs(np.load("y_meta.npy") - np.load("y_ck.npy")).max(); print("     max |diff| %.2e" % d); sys.exit(0 if d < 1e-4 else 1)
EOF
echo "# $fails failure(s)"
exit "$fail"
