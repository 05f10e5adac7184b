#!/usr/bin/env bash
# test_rundir_safety.sh - a run directory cannot be destroyed or mixed:
#  1. `train --out` onto an existing run is refused before anything is written
#     (also when --init is then rejected): metrics.jsonl, config.yaml, the
#     checkpoints and `latest` stay byte-identical;
#  2. two trainings on one directory: the second is refused (the lock), the
#     first finishes with a clean metrics.jsonl;
#  3. --init with NaN weights fails (non-zero exit) and writes no run;
#  4. --resume with -c is refused; a missing option is named.
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
"$DINOX" synth --out synth --patients 2 --size 128 --seed 5 --slices-max 24 >/dev/null 2>&1
"$DINOX" ingest synth --out store >/dev/null 2>&1 || { echo "ingest failed"; exit 1; }
SET=("${TINY[@]}" train.threads=1)
train() { "$DINOX" train --quiet "$@" "${SET[@]}"; }

train -c "$C" --store store --out RUN train.epoch_length=8 2>/dev/null || { echo "first run failed"; exit 1; }
"$DINOX" export RUN --out backbone.safetensors >/dev/null 2>&1 || { echo "export failed"; exit 1; }
snap() { (cd RUN && find . -type f ! -name .lock -print0 | sort -z | xargs -0 sha256sum); }
before=$(snap)
[ "$(wc -l < RUN/metrics.jsonl)" -ge 8 ] || bad "first run logged $(wc -l < RUN/metrics.jsonl) lines"

# 1. --out onto the existing run: with a rejected --init, and with a valid config
: > empty.safetensors
train -c "$C" --store store --out RUN --init empty.safetensors train.epoch_length=2 2>err1 && bad "--out onto a run with a bad --init exited 0"
train -c "$C" --store store --out RUN train.epoch_length=2 2>err2 && bad "--out onto a run exited 0"
grep -q "already holds a training run" err2 || { bad "no 'already holds a training run' message"; cat err2; }
grep -q -- "--resume RUN" err2 || bad "the message does not say how to continue the run"
[ "$(snap)" = "$before" ] || bad "the existing run changed"
mkdir notempty; echo x > notempty/notes.txt
train -c "$C" --store store --out notempty train.epoch_length=2 2>err3 && bad "--out into a non-empty directory exited 0"
grep -q "not empty" err3 || { bad "no 'not empty' message"; cat err3; }
echo "1. existing run kept byte-identical; non-empty directory refused"

# 2. two trainings on one directory at the same time
train -c "$C" --store store --out TWO train.epoch_length=200 2>errA & pa=$!
for _ in $(seq 1 400); do [ -s TWO/metrics.jsonl ] && break; sleep 0.05; done
train -c "$C" --store store --out TWO train.epoch_length=200 2>errB & pb=$!
train --resume TWO --store store train.epoch_length=200 2>errC & pc=$!
wait $pb; rb=$?; wait $pc; rc=$?; wait $pa; ra=$?
[ $ra -eq 0 ] || { bad "the first training failed ($ra)"; tail -3 errA; }
[ $rb -ne 0 ] || bad "a second training (--out) on a directory in use exited 0"
[ $rc -ne 0 ] || bad "a --resume of a directory in use exited 0"
grep -q "in use by another dinox process (pid [0-9]*)" errC || { bad "--resume: no 'in use ... (pid N)' message"; cat errC; }
$PY - TWO/metrics.jsonl <<'PYEOF' || bad "metrics.jsonl of the first run is not clean"
import json, sys
steps = [json.loads(l)["step"] for l in open(sys.argv[1])]
assert steps == list(range(200)), steps[:5]
PYEOF
echo "2. concurrent trainings: one ran, the others were refused"

# 3. --init with NaN weights
$PY - backbone.safetensors nan.safetensors <<'PYEOF'
import json, struct, sys
raw = bytearray(open(sys.argv[1], "rb").read())
n = struct.unpack("<Q", raw[:8])[0]
h = json.loads(raw[8:8 + n])
for k, v in h.items():
    if k != "__metadata__" and v["dtype"] == "F32":
        a, b = v["data_offsets"]
        raw[8 + n + a: 8 + n + b] = struct.pack("<f", float("nan")) * ((b - a) // 4)
open(sys.argv[2], "wb").write(raw)
PYEOF
train -c "$C" --store store --out NAN --init nan.safetensors train.epoch_length=6 2>err4; r4=$?
[ $r4 -ne 0 ] || bad "--init with NaN weights exited 0"
grep -q "NaN or Inf" err4 || { bad "no NaN message"; cat err4; }
[ ! -e NAN/checkpoints ] || bad "a NaN --init wrote checkpoints: $(ls NAN/checkpoints)"
echo "3. NaN --init: exit $r4, no run written"

# 4. option errors are named
train --resume RUN -c "$C" --store store 2>err5; r5=$?
[ $r5 -eq 2 ] && grep -q "not used with it" err5 || { bad "--resume with -c: exit $r5"; cat err5; }
train -c "$C" --out X 2>err6; grep -q "missing --store" err6 || { bad "missing --store not named"; cat err6; }
[ "$(snap)" = "$before" ] || bad "the existing run changed"
echo "4. --resume with -c refused; missing options named"
[ $fail -eq 0 ] && echo "test_rundir_safety: all checks passed"
exit $fail
