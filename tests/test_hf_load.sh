#!/usr/bin/env bash
# test_hf_load.sh - `dinox export --format hf` in the real Hugging Face
# transformers: two tiny runs (GELU MLP with 2 registers; SwiGLU with none)
# are exported as folders; DINOv3ViTModel.from_pretrained must load each with
# no missing, unexpected or mismatched keys, and its last_hidden_state must
# equal `dinox embed`'s tokens within 1e-5 on a non-square input
# (pooler_output = the CLS token). config.json must say what the file's
# metadata says; dinox's own readers refuse the folder's tensor names; a
# folder holding other files is refused and left as it was.
# The other way: tools/convert_dinov3_pth.py turns an hf folder back into
# DINOv3 names (bit-identical tokens after the round trip), and turns folders
# that transformers itself wrote (save_pretrained of random DINOv3ViTModels:
# GELU with 4 registers, LN eps 1e-6, RoPE base 50; SwiGLU with an unmasked k
# bias, 3 heads, no registers) into files whose `dinox embed` tokens equal
# transformers' last_hidden_state within 1e-5.
# transformers and PyPI's torch come from the virtual environment
# scripts/setup.sh makes (DINOX_HFENV, default ~/.cache/dinox/hfenv);
# without it: SKIPPED (exit 77).
source "$DINOX_SOURCE_DIR/tests/lib/common.sh"
pyenv_or_skip "import transformers, torch, safetensors; from transformers import DINOv3ViTModel" transformers hf
"$DINOX" synth --out synth --patients 4 --size 128 --seed 1 >/dev/null 2>&1
"$DINOX" ingest synth --out store >/dev/null 2>&1
$PY -c "import numpy as np; np.save('x.npy', np.random.RandomState(0).randn(2, 3, 48, 32).astype('f4'))"
for v in mlp swiglu; do
  extra=(); [ $v = swiglu ] && extra=(model.ffn=swiglu model.registers=0)
  "$DINOX" train --quiet -c "$C" --store store --out run_$v "${TINY[@]}" "${extra[@]}" train.threads=2 \
    train.epoch_length=4 2>/dev/null || bad "train $v"
  "$DINOX" export run_$v --out $v.safetensors 2>/dev/null || bad "export $v"
  "$DINOX" export run_$v --format hf --out hf_$v 2>export_$v.txt || { cat export_$v.txt; bad "export --format hf $v"; }
  "$DINOX" embed --weights $v.safetensors --input x.npy --output y_$v.npy 2>/dev/null || bad "embed $v"
done

# a local folder only: never the Hub (no network at run time)
HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 "$TPY" - >hf.txt 2>&1 <<'PYEOF'; rc=$?
import json, sys
import numpy as np, torch, transformers
from safetensors import safe_open
from transformers import DINOv3ViTModel
x = torch.from_numpy(np.load("x.npy"))
fails = 0
def check(ok, msg):
    global fails
    fails += not ok
    print("%s %s" % ("ok  " if ok else "FAIL", msg))
for v in ("mlp", "swiglu"):
    d = "hf_" + v
    m, info = DINOv3ViTModel.from_pretrained(d, output_loading_info=True)
    m.eval()
    keys = {k: list(info[k]) for k in ("missing_keys", "unexpected_keys", "mismatched_keys")}
    check(not any(keys.values()) and not info["error_msgs"], "%s: from_pretrained in transformers %s, torch %s: %s"
          % (d, transformers.__version__, torch.__version__, keys))
    with torch.no_grad():
        o = m(pixel_values=x)
    ref = np.load("y_%s.npy" % v)
    t = o.last_hidden_state.numpy()
    diff = float(abs(t - ref).max()) if t.shape == ref.shape else float("inf")
    check(diff <= 1e-5, "%s: last_hidden_state %s vs dinox embed %s, max |diff| %.2e" % (d, t.shape, ref.shape, diff))
    pd = float(abs(o.pooler_output.numpy() - ref[:, 0]).max())
    check(pd <= 1e-5, "%s: pooler_output = dinox's CLS token, max |diff| %.2e" % (d, pd))
    meta = safe_open(d + "/model.safetensors", "pt").metadata()
    cfg = json.load(open(d + "/config.json"))
    same = {"hidden_size": "model.dim", "num_hidden_layers": "model.depth", "num_attention_heads": "model.heads",
            "num_register_tokens": "model.registers", "patch_size": "model.patch", "num_channels": "model.in_chans",
            "intermediate_size": "model.ffn_hidden", "layer_norm_eps": "model.ln_eps", "rope_theta": "model.rope_base"}
    wrong = [(k, cfg[k], meta[mk]) for k, mk in same.items() if float(cfg[k]) != float(meta[mk])]
    gated = meta["model.ffn"] == "swiglu"
    if cfg["use_gated_mlp"] != gated or cfg["hidden_act"] != ("silu" if gated else "gelu"):
        wrong.append(("use_gated_mlp/hidden_act", cfg["use_gated_mlp"], cfg["hidden_act"]))
    if cfg["key_bias"] != (meta["model.qkv_bias"] == "1" and meta["model.mask_k_bias"] == "0"):
        wrong.append(("key_bias", cfg["key_bias"], meta["model.mask_k_bias"]))
    check(not wrong and meta["format"] == "pt" and "timm.model" not in meta,
          "%s: config.json agrees with the metadata (%d fields, ffn %s), format pt, no timm keys: %s"
          % (d, len(same) + 2, meta["model.ffn"], wrong))
sys.exit(fails)
PYEOF
grep -v "Loading weights\|Warning" hf.txt
[ "$rc" = 0 ] || bad "transformers: exit $rc"

grep -q "preprocessing.windows | 1500,-600;400,40" hf_mlp/README.md &&
  grep -q "DINOv3ViTModel.from_pretrained" hf_mlp/README.md && ok "README.md: loading recipe and preprocessing" ||
  bad "README.md lacks the recipe or the windows"
if "$DINOX" embed --weights hf_mlp/model.safetensors --input x.npy --output z.npy 2>embed_err.txt; then
  bad "dinox embed read transformers' names"
else
  grep -q "Hugging Face transformers' tensor names" embed_err.txt && ok "dinox embed refuses the hf file: $(head -c 120 embed_err.txt)" ||
    bad "embed's refusal does not say why: $(cat embed_err.txt)"
fi
mkdir notes && echo "mine" >notes/todo.txt
if "$DINOX" export run_mlp --format hf --out notes 2>refuse.txt; then bad "export into a folder with other files"
else
  [ "$(ls notes)" = todo.txt ] && grep -q "todo.txt" refuse.txt && ok "a folder holding todo.txt is refused, untouched" ||
    bad "folder refusal: $(cat refuse.txt); $(ls notes)"
fi
before=$(md5sum hf_mlp/model.safetensors | cut -c1-32)
"$DINOX" export run_mlp --format hf --out hf_mlp 2>/dev/null && [ "$(md5sum hf_mlp/model.safetensors | cut -c1-32)" = "$before" ] &&
  ok "exporting again into the same folder replaces it (same bytes)" || bad "re-export into hf_mlp"

# the other way round: an hf folder -> DINOv3 names (the file --init takes)
T="$DINOX_SOURCE_DIR/tools/convert_dinov3_pth.py"
for v in mlp swiglu; do
  $PY "$T" hf_$v -o back_$v.safetensors >/dev/null || bad "convert hf_$v"
  "$DINOX" embed --weights back_$v.safetensors --input x.npy --output yb_$v.npy 2>/dev/null || bad "embed back_$v"
done
HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 "$TPY" - >hfsave.txt 2>&1 <<'PYEOF' || { cat hfsave.txt; bad "save_pretrained"; }
import numpy as np, torch
from transformers import DINOv3ViTConfig, DINOv3ViTModel
torch.manual_seed(0)
x = torch.from_numpy(np.load("x.npy"))
for name, kw in (("tfA", dict(hidden_size=48, num_attention_heads=2, num_hidden_layers=2, intermediate_size=96,
                              patch_size=8, num_register_tokens=4, key_bias=False, layer_norm_eps=1e-6, rope_theta=50.0)),
                 ("tfB", dict(hidden_size=48, num_attention_heads=3, num_hidden_layers=3, intermediate_size=64,
                              patch_size=8, num_register_tokens=0, key_bias=True, use_gated_mlp=True,
                              hidden_act="silu"))):
    m = DINOv3ViTModel(DINOv3ViTConfig(**kw)).eval()
    with torch.no_grad():
        for p in m.parameters():  # every tensor random, LayerNorm and LayerScale included
            p.normal_(0, 0.2)
        np.save(name + ".npy", m(pixel_values=x).last_hidden_state.numpy())
    m.save_pretrained(name)
PYEOF
for v in tfA tfB; do
  $PY "$T" $v -o $v.safetensors >conv_$v.txt || { cat conv_$v.txt; bad "convert $v"; }
  "$DINOX" embed --weights $v.safetensors --input x.npy --output y_$v.npy 2>/dev/null || bad "embed $v"
done
$PY - <<'PYEOF' || bad "conversion comparisons"
import json, sys
import numpy as np
fails = 0
for v in ("mlp", "swiglu"):
    d = float(abs(np.load("yb_%s.npy" % v) - np.load("y_%s.npy" % v)).max())
    fails += d != 0
    print("%s hf_%s -> convert_dinov3_pth.py -> dinox embed: same tokens as before the export, max |diff| %.1e"
          % ("ok  " if d == 0 else "FAIL", v, d))
for v, what in (("tfA", "GELU, 4 registers, eps 1e-6, RoPE base 50"), ("tfB", "SwiGLU, k bias, 3 heads, no registers")):
    a, b = np.load(v + ".npy"), np.load("y_%s.npy" % v)
    d = float(abs(a - b).max()) if a.shape == b.shape else float("inf")
    fails += not d <= 1e-5
    print("%s transformers' save_pretrained (%s) -> convert -> dinox embed %s vs last_hidden_state %s: max |diff| %.2e"
          % ("ok  " if d <= 1e-5 else "FAIL", what, b.shape, a.shape, d))
sys.exit(fails)
PYEOF
grep -h "backbone tensors" conv_tfA.txt conv_tfB.txt
"$DINOX" train --quiet -c "$C" --store store --out run_init --init back_mlp.safetensors "${TINY[@]}" train.threads=2 train.epoch_length=1 \
  2>init.txt && ok "train --init takes the converted hf folder (shape and preprocessing agree)" ||
  bad "train --init back_mlp.safetensors: $(tail -2 init.txt)"
grep -qi warn init.txt && bad "--init warned: $(grep -i warn init.txt)"
echo "# $fails failure(s)"
exit "$fail"
