#!/usr/bin/env bash
# test_precision_bf16.sh - model.precision bf16 (issue 16): the policy is
# active (weights after training differ from fp32's), the losses follow the
# fp32 run closely (every logged loss term within 5% relative over the first
# steps of the same seed), everything stays finite, and resume is bit-exact in
# bf16 too (a run stopped and resumed ends with the bytes of a straight run).
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
"$DINOX" synth --out synth --patients 3 --size 128 --seed 8 --slices-max 24 >/dev/null 2>&1
"$DINOX" ingest synth --out store >/dev/null 2>&1 || { echo "ingest failed"; exit 1; }
SET=("${TINY[@]}" train.threads=1 train.epoch_length=6 train.ckpt_every_steps=3 gram.enabled=true
     gram.weight_start_epochs=0.5 model.dim=64 heads.dino_k=256 heads.ibot_k=256)
"$DINOX" train --quiet -c "$C" --store store --out fp32 "${SET[@]}" 2>/dev/null || bad "fp32 training"
"$DINOX" train --quiet -c "$C" --store store --out bf16 --precision bf16 "${SET[@]}" 2>/dev/null || bad "bf16 training"
grep -Eq '^  precision: "?bf16' bf16/config.yaml || bad "config.yaml does not record model.precision bf16"
for r in fp32 bf16; do "$DINOX" export $r --out $r.safetensors 2>/dev/null || bad "export $r"; done
cmp -s fp32.safetensors bf16.safetensors && bad "bf16 training gave the fp32 weights: the policy is not applied"
$PY - fp32/metrics.jsonl bf16/metrics.jsonl <<'PYEOF' || fail=1
import json, math, sys
a = [json.loads(l) for l in open(sys.argv[1])]
b = [json.loads(l) for l in open(sys.argv[2])]
keys = [k for k in a[0] if k.startswith("loss/")]
worst = 0.0
for ra, rb in zip(a, b):
    for k in keys:
        x, y = ra[k], rb[k]
        if not (math.isfinite(x) and math.isfinite(y)): print("FAIL: non-finite", k); sys.exit(1)
        if abs(x) > 1e-3: worst = max(worst, abs(x - y) / abs(x))
print(f"{len(a)} steps: worst relative difference of a loss term bf16 vs fp32 = {worst:.2e}")
sys.exit(0 if worst < 0.05 and len(a) == len(b) and keys else 1)
PYEOF
# resume in bf16: stop at 3 (a checkpoint), resume to the end; the straight bf16 run is the reference
"$DINOX" train --quiet -c "$C" --store store --out half --precision bf16 --stop-at 3 "${SET[@]}" 2>/dev/null
"$DINOX" train --quiet --resume half --store store 2>/dev/null || bad "bf16 resume"
"$DINOX" export half --out half.safetensors 2>/dev/null || bad "export half"
cmp -s half.safetensors bf16.safetensors || bad "bf16 resume is not bit-exact"
[ $fail -eq 0 ] && echo "test_precision_bf16: all checks passed"
exit $fail
