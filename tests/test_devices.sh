#!/usr/bin/env bash
# test_devices.sh - `dinox doctor` and device selection (issue 14):
#   doctor exits 0 with the cpu backend usable, names the backends that are
#   not in this build as such (never as usable), and --json is valid JSON with
#   the same verdicts; --device / model.backend accept cpu and cpu:0, refuse a
#   backend that is not built, an unknown one and a bad index, naming the
#   problem, before any output is written.
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

"$DINOX" doctor >doctor.txt 2>&1; rc=$?
[ $rc -eq 0 ] || bad "doctor exit $rc"
grep -q "^backend cpu: usable" doctor.txt || bad "doctor: cpu not usable: $(grep '^backend cpu' doctor.txt)"
grep -q "^oneDNN ISA: " doctor.txt || bad "doctor: no oneDNN ISA line"
grep -q "HSA_OVERRIDE_GFX_VERSION" doctor.txt || bad "doctor: the Strix Halo overrides are not listed"
HSA_OVERRIDE_GFX_VERSION=11.0.0 "$DINOX" doctor | grep -q "advice: HSA_OVERRIDE_GFX_VERSION=11.0.0 is set" ||
  bad "doctor: a set HSA_OVERRIDE_GFX_VERSION is not pointed out"
"$DINOX" doctor --json >doctor.json; rc=$?
[ $rc -eq 0 ] || bad "doctor --json exit $rc"
$PY - doctor.json doctor.txt <<'PYEOF' || fail=1
import json, sys
d = json.load(open(sys.argv[1]))
txt = open(sys.argv[2]).read()
bes = {b["name"]: b for b in d["backends"]}
ok = True
def bad(m):
    global ok
    print("FAIL:", m); ok = False
if not bes.get("cpu", {}).get("usable"): bad("json: cpu not usable")
if not bes["cpu"]["devices"] or bes["cpu"]["devices"][0]["mem_bytes"] <= 0: bad("json: cpu device without memory")
for name, b in bes.items():
    if not b["compiled"]:
        if b["usable"]: bad(f"json: {name} not compiled but usable")
        if "not in this build" not in b["verdict"]: bad(f"json: {name} verdict {b['verdict']!r}")
    if f"backend {name}: {b['verdict']}" not in txt: bad(f"text and json verdicts differ for {name}")
if "HSA_XNACK" not in d["environment"]: bad("json: environment lacks HSA_XNACK")
print("doctor json: backends", {n: (b["compiled"], b["usable"]) for n, b in bes.items()})
sys.exit(0 if ok else 1)
PYEOF
"$DINOX" doctor --bogus >/dev/null 2>&1; [ $? -eq 2 ] || bad "doctor --bogus should exit 2"

# device selection: the same refusal from every command that runs a backbone
"$DINOX" synth --out synth --patients 4 --size 128 --seed 3 >/dev/null 2>&1
"$DINOX" ingest synth --out store >/dev/null 2>&1 || { echo "ingest failed"; exit 1; }
SET=("${TINY[@]}" train.threads=2 train.epoch_length=3)
refuse() { # WANT OUTDIR command...
  local want=$1 dir=$2; shift 2
  local msg; msg=$("$@" 2>&1 >/dev/null); local rc=$?
  [ $rc -ne 0 ] || bad "accepted: $* ($msg)"
  grep -qi -- "$want" <<<"$msg" || bad "'$*': message lacks '$want': $msg"
  [ -z "$dir" ] || [ ! -e "$dir" ] || bad "'$*' left $dir behind"
}
for dev in cuda hip:1; do
  refuse "not in this build" r1 "$DINOX" train --quiet -c "$C" --store store --out r1 --device "$dev" "${SET[@]}"
done
refuse "unknown backend 'tpu'" r2 "$DINOX" train --quiet -c "$C" --store store --out r2 --device tpu "${SET[@]}"
refuse "index after ':'" r3 "$DINOX" train --quiet -c "$C" --store store --out r3 --device cpu:x "${SET[@]}"
refuse "no device 1" r4 "$DINOX" train --quiet -c "$C" --store store --out r4 --device cpu:1 "${SET[@]}"
refuse "not in this build" r5 "$DINOX" train --quiet -c "$C" --store store --out r5 model.backend=cuda:0 "${SET[@]}"
"$DINOX" train --quiet -c "$C" --store store --out run --device cpu:0 "${SET[@]}" 2>/dev/null || bad "train --device cpu:0"
grep -Eq '^  backend: "?cpu:0"?' run/config.yaml || bad "config.yaml does not record model.backend"
"$DINOX" export run --out w.safetensors 2>/dev/null || bad "export"
refuse "not in this build" "" "$DINOX" eval --store store --weights w.safetensors --device cuda --out ev
refuse "not in this build" "" "$DINOX" embed --weights w.safetensors --device hip --input x.npy --output y.npy

[ $fail -eq 0 ] && echo "test_devices: all checks passed"
exit $fail
