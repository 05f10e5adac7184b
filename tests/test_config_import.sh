#!/usr/bin/env bash
# test_config_import.sh - `dinox config import` on a DINOv3-style training YAML
# (tests/data/dinov3_vitl16_example.yaml, ViT-L/16 Gram stage, on
# configs/vits16_lidc.yaml, --gpus 32):
#   1. every key of the input gets exactly one report line, with the class
#      expected (an unsupported and an unknown key among them);
#   2. the written config holds the converted values (global batch, Gram crop
#      factor, flips, betas, milestones, arch, bf16, checkpointing) and keeps
#      the base's CT keys; `dinox plan` accepts it;
#   3. --strict exits 3 and writes nothing; a value dinox rejects fails naming
#      the file, line and key; --out onto the input is refused;
#   4. a tiny training runs from an imported config.
source "$DINOX_SOURCE_DIR/tests/lib/common.sh"
IN="$DINOX_SOURCE_DIR/tests/data/dinov3_vitl16_example.yaml"
"$DINOX" config import "$IN" --out imp.yaml -c "$DINOX_SOURCE_DIR/configs/vits16_lidc.yaml" --gpus 32 >rep.txt 2>err.txt \
    || bad "import: $(cat err.txt)"
$PY - "$IN" <<'PYEOF' && ok "import: one report line per input key, classes as expected ($(tail -2 rep.txt | head -1))" || bad "report"
import re, sys, yaml
d = yaml.safe_load(open(sys.argv[1]))
def flat(x, p=""):
    for k, v in x.items():
        if isinstance(v, dict) and v:
            yield from flat(v, p + k + ".")
        else:
            yield p + k
keys = list(flat(d))
lines = [l.split() for l in open("rep.txt") if l.startswith("  ")]
seen = {}
for l in lines:
    seen.setdefault(l[1], []).append(l[0])
fails = 0
for k in keys:
    if k not in seen:
        print("FAIL: no report line for", k); fails += 1
extra = set(seen) - set(keys)
if extra:
    print("FAIL: report lines for keys not in the input:", extra); fails += 1
expect = {"student.untie_global_and_local_cls_norm": "UNSUPPORTED", "some_future_section.new_knob": "unknown",
          "MODEL.DEVICE": "ignored", "train.compile": "ignored", "student.qkv_bias": "same",
          "student.arch": "mapped", "crops.gram_teacher_crops_size": "mapped", "dino.local_loss_weight_schedule.peak": "ignored"}
for k, c in expect.items():
    if seen.get(k, [None])[0] != c:
        print("FAIL: %s classed %s, expected %s" % (k, seen.get(k), c)); fails += 1
tail = open("rep.txt").read()
if not re.search(r"\d+ mapped, \d+ same as dinox, \d+ ignored, 1 unsupported, 1 unknown", tail):
    print("FAIL: summary line"); fails += 1
sys.exit(fails)
PYEOF
$PY - <<'PYEOF' && ok "imported config: converted values, base CT keys kept" || bad "imported values"
import sys, yaml
c = yaml.safe_load(open("imp.yaml"))
want = {("model", "arch"): "vit_large", ("model", "precision"): "bf16", ("model", "ffn_hidden"): 4096,
        ("model", "drop_path"): 0.4, ("model", "rope_rescale"): 2, ("train", "batch_size"): 512,
        ("train", "checkpointing"): "block", ("train", "milestone_every"): 0, ("train", "seed"): 7,
        ("train", "epoch_length"): 1000, ("train", "epochs"): 1200, ("gram", "enabled"): True,
        ("gram", "teacher_res_factor"): 2, ("gram", "refresh_every"): 10000, ("gram", "refresh_max"): 3,
        ("crops", "flip_p"): 0, ("crops", "global_size"): 256, ("crops", "local_size"): 112,
        ("optim", "betas"): [0.9, 0.99], ("optim", "layer_decay"): 0.98, ("optim", "wd_end"): 0.2,
        ("heads", "dino_k"): 262144, ("heads", "ibot_k"): 98304, ("loss", "koleo_group"): 16,
        ("loss", "local_weight_start"): 0.5, ("teacher", "momentum_start"): 0.994,
        ("teacher", "temp_warmup_epochs"): 120,
        # from the base (configs/vits16_lidc.yaml), which the input does not touch
        ("heads", "norm_last_layer"): True, ("data", "window_per_crop"): False, ("data", "slice_spacing_mm"): 2}
bad = [(k, c[k[0]][k[1]], v) for k, v in want.items() if c[k[0]][k[1]] != v]
for b in bad:
    print("FAIL: %s = %r, expected %r" % b)
sys.exit(1 if bad else 0)
PYEOF
"$DINOX" plan -c imp.yaml --device strix-halo >plan.txt 2>&1; rc=$?
[ "$rc" = 0 ] || [ "$rc" = 3 ] && grep -q "memory" plan.txt && ok "dinox plan reads the imported config (exit $rc)" || bad "plan: $(tail -3 plan.txt)"

"$DINOX" config import "$IN" --out strict.yaml --strict >/dev/null 2>err.txt; rc=$?
[ "$rc" = 3 ] && [ ! -e strict.yaml ] && ok "--strict: exit 3, nothing written ($(cat err.txt))" || bad "--strict: rc $rc"
printf 'student:\n  arch: vit_small\n  patch_size: 1000\n' > badval.yaml
"$DINOX" config import badval.yaml --out bv.yaml >/dev/null 2>err.txt; rc=$?
[ "$rc" = 1 ] && grep -q "badval.yaml:3: student.patch_size = 1000" err.txt && [ ! -e bv.yaml ] \
    && ok "a value dinox rejects: $(cat err.txt)" || bad "bad value: rc $rc $(cat err.txt)"
cp badval.yaml same.yaml
"$DINOX" config import same.yaml --out same.yaml >/dev/null 2>&1; rc=$?
[ "$rc" = 2 ] && cmp -s badval.yaml same.yaml && ok "--out onto the input refused" || bad "--out onto the input: rc $rc"

# 4. a tiny run from an imported config
printf 'student:\n  arch: vit_small\n  n_storage_tokens: 2\n  patch_size: 8\ncrops:\n  horizontal_flips: true\n' > tiny_dinov3.yaml
"$DINOX" config import tiny_dinov3.yaml --out tiny.yaml -c "$C" >/dev/null 2>&1 || bad "tiny import"
"$DINOX" synth --out synth --patients 4 --size 128 --seed 1 >/dev/null 2>&1
"$DINOX" ingest synth --out store >/dev/null 2>&1
"$DINOX" train --quiet -c tiny.yaml --store store --out run "${TINY[@]}" model.arch=custom train.threads=2 \
    train.epoch_length=2 2>err.txt && [ -s run/metrics.jsonl ] && ok "dinox train runs from an imported config" \
    || bad "train from the imported config: $(tail -2 err.txt)"
echo "# $fails failure(s)"
exit "$fail"
