#!/usr/bin/env bash
# test_collapse_alarm.sh - the collapse alarm (docs/objective.md, Training health)
# fires on the DINOv3 recipe run unchanged at demo scale (the old demo settings,
# whose DINO and iBOT losses sat at ln K), does not fire on configs/demo.yaml,
# and with train.stop_on_collapse ends the run non-zero after a checkpoint;
# the window-shortcut metrics are logged and reported.
set -euo pipefail
: "${DINOX:?}" "${DINOX_SOURCE_DIR:?}"
PY=/usr/bin/python3
DINOX=$(readlink -f "$DINOX")
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
cd "$work"
"$DINOX" synth --out synth --patients 4 --size 128 --seed 3 --slices-max 32 >/dev/null 2>&1
"$DINOX" ingest synth --out store >/dev/null 2>&1
C="$DINOX_SOURCE_DIR/configs/demo.yaml"
# 120 steps, alarm armed after a 30-step warm-up, window 40
RUN=(train.epochs=2 train.epoch_length=60 optim.warmup_epochs=0.5 teacher.temp_warmup_epochs=0.5
     train.collapse_window=40 train.batch_size=16 gram.enabled=false train.ckpt_every_steps=0)
OLD=(model.layerscale=1e-5 heads.norm_last_layer=false data.window_per_crop=true teacher.temp_start=0.04
     teacher.temp_end=0.07 teacher.momentum_start=0.992 teacher.momentum_end=1 optim.lr=1e-3)
fail=0; pass=0
ok() { echo "ok: $*"; pass=$((pass + 1)); }
bad() { echo "FAIL: $*"; fail=$((fail + 1)); }

"$DINOX" train -c "$C" --store store --out old "${RUN[@]}" "${OLD[@]}" 2>old.log || bad "old recipe run exited non-zero"
grep -q "COLLAPSE ALARM" old.log && ok "old recipe: COLLAPSE ALARM logged" || bad "old recipe: no alarm in the log"
grep -q "collapse alarm fired" old.log && ok "old recipe: final line says so" || bad "old recipe: final line silent"

"$DINOX" train -c "$C" --store store --out new "${RUN[@]}" 2>new.log || bad "demo recipe run exited non-zero"
grep -q "COLLAPSE ALARM" new.log && bad "demo recipe: alarm fired" || ok "demo recipe: no alarm"

$PY - old/metrics.jsonl new/metrics.jsonl <<'PYEOF' && ok "metrics: alarm flag and entropies as expected" || bad "metrics"
import json, sys
old = [json.loads(l) for l in open(sys.argv[1])]
new = [json.loads(l) for l in open(sys.argv[2])]
fired = [r["step"] for r in old if r.get("health/collapse_alarm") == 1]
assert fired and 70 <= fired[0] <= 110, f"old: alarm steps {fired[:3]}"
assert all(r["health/dino_teacher_entropy"] > 0.98 for r in old if r["step"] >= 30), "old: targets not uniform"
assert not any(r.get("health/collapse_alarm") for r in new), "new: alarm flag set"
late = [r["health/dino_teacher_entropy"] for r in new if r["step"] >= 30]
assert max(late) < 0.98, f"new: teacher entropy {max(late)}"
# the window-shortcut metrics: logged at every logged step, shares in [0, 1]
for k in ("health/dino_teacher_window_r2", "health/cls_window_r2"):
    v = [r[k] for r in new]
    assert len(v) == len(new) and all(0 <= x <= 1 for x in v), f"new: {k} {v[:4]}"
print("old: alarm from step", fired[0], "; new: teacher entropy <=", round(max(late), 3),
      "; window R^2 of the targets at the end", round(new[-1]["health/dino_teacher_window_r2"], 3))
PYEOF

"$DINOX" report old --out old.html >/dev/null 2>&1 && grep -q "Training collapsed" old.html && ok "report of the old recipe: Training collapsed" || bad "report of the old recipe silent"
"$DINOX" report new --out new.html >/dev/null 2>&1 && ! grep -q "Training collapsed" new.html && grep -q "no collapse alarm" new.html && ok "report of the demo recipe: no collapse" || bad "report of the demo recipe"
grep -q "window shortcut: the CT window" new.html && ok "report: the window-shortcut sentence" || bad "report: no window-shortcut sentence"

set +e
"$DINOX" train -c "$C" --store store --out stop "${RUN[@]}" "${OLD[@]}" train.stop_on_collapse=true 2>stop.log
rc=$?
set -e
[ $rc -ne 0 ] && ok "stop_on_collapse: exit $rc" || bad "stop_on_collapse: exit 0"
grep -q "stopped at step .* by the collapse alarm" stop.log && ok "stop_on_collapse: message" || bad "stop_on_collapse: no message"
last=$(ls stop/checkpoints | grep -c safetensors || true)
[ "$last" -ge 2 ] && ok "stop_on_collapse: checkpoint written ($(ls stop/checkpoints | tail -1))" || bad "stop_on_collapse: no checkpoint"
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
