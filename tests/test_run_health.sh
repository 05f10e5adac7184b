#!/usr/bin/env bash
# test_run_health.sh - the device's run-health metrics of `dinox train`
# (docs/gpu.md "Run health") on the CPU backend:
#  1. every logged step has device/mem_in_use_gb > 0 and <= device/mem_peak_gb,
#     a peak fraction in (0, 1), perf/data_wait_fraction in [0, 1];
#  2. the peak covers at least the run's tensor state (student, gradients, AdamW
#     m and v, EMA and Gram teachers: 6 x 4 bytes per parameter) and is within
#     the memory plan's total (dinox plan --json, the same config);
#  3. no device/busy_fraction on the CPU (it is not measured there, so it is not
#     invented), and the report's run-health sentence says so.
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
"$DINOX" synth --out synth --patients 2 --size 128 --seed 3 --slices-max 24 >/dev/null 2>&1
"$DINOX" ingest synth --out store >/dev/null 2>&1 || { echo "ingest failed"; exit 1; }
SET=("${TINY[@]}" train.threads=1 train.epoch_length=4)
"$DINOX" train --quiet -c "$C" --store store --out run "${SET[@]}" 2>train.log || { cat train.log; echo "train failed"; exit 1; }
"$DINOX" plan -c "$C" --device cpu --json "${SET[@]}" >plan.json 2>plan.err || { cat plan.err; bad "plan --json failed"; }
params=$(grep -o "training custom ([0-9]* params" train.log | grep -o "[0-9]*" | head -1)
$PY - run/metrics.jsonl plan.json "${params:-0}" <<'PY' && ok "metrics: memory, peak, fractions; state within the peak, peak within the plan" || bad "metrics"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
rows = [r for r in rows if "loss/total" in r]
assert len(rows) >= 4, len(rows)
for r in rows:
    u, p, f, w = r["device/mem_in_use_gb"], r["device/mem_peak_gb"], r["device/mem_peak_fraction"], r["perf/data_wait_fraction"]
    assert 0 < u <= p, (u, p)
    assert 0 < f < 1, f
    assert 0 <= w <= 1, w
    assert "device/busy_fraction" not in r, "busy fraction reported on the CPU"
params = int(sys.argv[3])
assert params > 0, "parameter count not in the log"
peak = rows[-1]["device/mem_peak_gb"] * 1e9
assert peak >= 6 * 4 * params, (peak, params)
plans = [json.loads(l) for l in open(sys.argv[2]) if l.strip().startswith("{")]
total = max(float(p.get("total_bytes", 0)) for p in plans)
assert total > 0, plans
# the plan adds the loader's buffers and a margin the backend's alloc does not hold
assert peak <= 1.05 * total, (peak, total)
print("peak %.1f MB, state %.1f MB, plan %.1f MB" % (peak / 1e6, 24 * params / 1e6, total / 1e6))
PY
"$DINOX" report run >/dev/null 2>&1
grep -q "run health: peak device memory" run/report.html && grep -q "busy fraction not measured" run/report.html &&
  ok "report: run-health sentence" || bad "report: no run-health sentence"
exit $fail
