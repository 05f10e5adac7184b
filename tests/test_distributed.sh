#!/usr/bin/env bash
# test_distributed.sh - data-parallel training over Open MPI on this machine's
# loopback equals the single-process run with the same global batch.
#
#  1. mpirun -np 2 (and 3, batch 6) vs one process: every logged loss term and
#     gradient norm of 20 steps within 1e-5 of the term's largest magnitude, the final student,
#     teacher and Gram teacher within 1e-5 (the order of the ranks' sums is
#     the only difference). Gram on, Sinkhorn-Knopp and (np 2) softmax
#     centring, iBOT masks, 1 thread per rank; loss.koleo_group = the rank's
#     batch and drop_path 0 (both are per rank, as in DINOv3: docs/distributed.md).
#     Gradients all-reduced block by block during backward (the default) and
#     in one piece (train.overlap_allreduce=false). The student in passes
#     (train.micro_batch=2) alone and on 2 ranks against one pass, and with
#     drop path 0.3 one process in passes of 2 against 2 ranks of 2; 2 ranks
#     in passes with the iBOT targets pass by pass (train.ibot_recompute); a run
#     stopped at step 10 and resumed in passes of 2 against one pass.
#  2. A global batch that does not divide over the ranks: non-zero exit, the
#     reason, no run directory.
#  3. SIGKILL one rank mid-run: mpirun and every rank exit non-zero within 60 s,
#     the newest checkpoint loads, and resuming it with ONE process continues
#     the trajectory of an uninterrupted run (1e-5).
#  4. SIGSTOP one rank (a hang): the others end the job within
#     train.comm_timeout_s (10 s here) + 20 s, saying why.
source "$(dirname "$0")/lib/common.sh"
command -v mpirun >/dev/null || { echo "FAIL: mpirun not found (openmpi-bin: scripts/setup.sh)"; exit 1; }
# CI runs as root; Open MPI refuses that without these two
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
export OMP_NUM_THREADS=1
# MPI's own allocations outlive MPI_Finalize by design: leak checking would only report those
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
MPI=(mpirun -np)

"$DINOX" synth --out synth --patients 2 --size 128 --seed 5 --slices-max 24 >/dev/null 2>&1
"$DINOX" ingest synth --out store >/dev/null 2>&1
SET=("${TINY[@]}" train.threads=1 model.drop_path=0 gram.enabled=true gram.teacher_res_factor=2
     gram.refresh_every=7 train.epoch_length=20 train.ckpt_every_steps=5)
train() { "$DINOX" train --quiet -c "$C" --store store "$@"; }

# compare A B: loss terms and gradient norms per step, then the newest checkpoints' weights
compare() {
  $PY - "$1" "$2" <<'PYEOF'
import json, os, struct, sys
import numpy as np
a, b = sys.argv[1], sys.argv[2]
def steps(d): # a resumed run appends the steps after its checkpoint again: the last line of a step counts
    rows = {}
    for l in open(d + "/metrics.jsonl"):
        r = json.loads(l); rows[r["step"]] = r
    return [rows[k] for k in sorted(rows)]
ma, mb = steps(a), steps(b)
assert len(ma) == len(mb) and len(ma) >= 20, (len(ma), len(mb))
keys = [k for k in ma[0] if k.startswith(("loss/", "grad_norm/")) or k == "train/masked_patches"]
# relative to each term's largest magnitude over the run: KoLeo crosses zero, where a
# per-step relative error measures nothing but the summation order
scale = {k: max(max(abs(x[k]) for x in ma), 1e-6) for k in keys}
worst, where = 0.0, None
for x, y in zip(ma, mb):
    assert x["step"] == y["step"]
    for k in keys:
        d = abs(x[k] - y[k]) / scale[k]
        if d > worst: worst, where = d, (x["step"], k, x[k], y[k])
def tensors(d):
    p = os.path.join(d, "checkpoints", open(os.path.join(d, "checkpoints", "latest")).read().strip())
    raw = open(p, "rb").read(); n = struct.unpack("<Q", raw[:8])[0]
    h = json.loads(raw[8:8 + n]); h.pop("__metadata__", None)
    return {k: np.frombuffer(raw[8 + n + v["data_offsets"][0]: 8 + n + v["data_offsets"][1]], np.float32)
            for k, v in h.items() if k.startswith(("student.", "teacher.", "gram."))}
ta, tb = tensors(a), tensors(b)
assert set(ta) == set(tb) and ta
wworst = max(float(np.abs(ta[k] - tb[k]).max() / max(np.abs(ta[k]).max(), 1e-6)) for k in ta)
ok = worst <= 1e-5 and wworst <= 1e-5
print(f"{len(ma)} steps, {len(keys)} terms: worst rel {worst:.2e} at {where}; weights worst rel {wworst:.2e}")
sys.exit(0 if ok else 1)
PYEOF
}

# ---- 1. parity with one process ------------------------------------------------
train --out one "${SET[@]}" loss.koleo_group=2 2>/dev/null || bad "single-process run failed"
if "${MPI[@]}" 2 "$DINOX" train --quiet -c "$C" --store store --out two "${SET[@]}" >two.log 2>&1; then
  grep -q "data parallel: 2 ranks" two.log && ok "np 2: rank 0 reports the data-parallel run" \
    || bad "np 2: no data-parallel line: $(head -3 two.log)"
  [ "$(grep -c '^dinox train: 20 steps' two.log)" = 1 ] && ok "np 2: one summary line (rank 0's)" \
    || bad "np 2: $(grep -c '^dinox train: 20 steps' two.log) summary lines"
  out=$(compare one two) && ok "np 2 = one process: $out" || bad "np 2 differs from one process: $out"
else
  bad "mpirun -np 2 failed: $(tail -5 two.log)"
fi
"${MPI[@]}" 2 "$DINOX" train --quiet -c "$C" --store store --out two_flat "${SET[@]}" train.overlap_allreduce=false \
    >two_flat.log 2>&1 || bad "np 2 without overlap failed: $(tail -3 two_flat.log)"
grep -q "block by block during backward" two.log && grep -q "in one piece after backward" two_flat.log \
  && ok "np 2: gradients reduced block by block during backward (default), in one piece with overlap_allreduce=false" \
  || bad "np 2: the reduction modes are not what the config asks"
out=$(compare one two_flat) && ok "np 2 without overlap = one process: $out" || bad "np 2 without overlap differs: $out"
train --out one_sm "${SET[@]}" loss.koleo_group=2 teacher.centering=softmax 2>/dev/null || bad "softmax run failed"
"${MPI[@]}" 2 "$DINOX" train --quiet -c "$C" --store store --out two_sm "${SET[@]}" teacher.centering=softmax \
    >two_sm.log 2>&1 || bad "np 2 softmax failed: $(tail -3 two_sm.log)"
out=$(compare one_sm two_sm) && ok "np 2 = one process, softmax centring: $out" || bad "np 2 softmax differs: $out"
train --out one6 "${SET[@]}" train.batch_size=6 loss.koleo_group=2 2>/dev/null || bad "batch-6 run failed"
"${MPI[@]}" 3 "$DINOX" train --quiet -c "$C" --store store --out three "${SET[@]}" train.batch_size=6 \
    >three.log 2>&1 || bad "np 3 failed: $(tail -3 three.log)"
out=$(compare one6 three) && ok "np 3 (batch 6) = one process: $out" || bad "np 3 differs from one process: $out"

# the student in passes (train.micro_batch): the same run as one pass, alone and on 2 ranks (overlap on the last pass)
train --out micro "${SET[@]}" loss.koleo_group=2 train.micro_batch=2 2>/dev/null || bad "micro_batch run failed"
out=$(compare one micro) && ok "passes of 2 = one pass: $out" || bad "passes of 2 differ from one pass: $out"
train --out one8 "${SET[@]}" train.batch_size=8 loss.koleo_group=2 2>/dev/null || bad "batch-8 run failed"
"${MPI[@]}" 2 "$DINOX" train --quiet -c "$C" --store store --out two_micro "${SET[@]}" train.batch_size=8 \
    train.micro_batch=2 loss.koleo_group=2 >two_micro.log 2>&1 || bad "np 2 in passes failed: $(tail -3 two_micro.log)"
out=$(compare one8 two_micro) && ok "np 2 in passes of 2 (batch 8) = one process: $out" || bad "np 2 in passes differs: $out"
# the iBOT targets pass by pass (Sinkhorn-Knopp over chunks, its sums reduced over the ranks after each pass)
"${MPI[@]}" 2 "$DINOX" train --quiet -c "$C" --store store --out two_rc "${SET[@]}" train.batch_size=8 \
    train.micro_batch=2 loss.koleo_group=2 train.ibot_recompute=true >two_rc.log 2>&1 ||
  bad "np 2 with ibot_recompute failed: $(tail -3 two_rc.log)"
out=$(compare one8 two_rc) && ok "np 2 in passes of 2 with ibot_recompute = one process with the whole targets: $out" ||
  bad "np 2 with ibot_recompute differs: $out"
# with stochastic depth: passes draw what ranks draw, so one process in passes of 2 = 2 ranks of 2
train --out micro_dp "${SET[@]}" loss.koleo_group=2 train.micro_batch=2 model.drop_path=0.3 2>/dev/null ||
  bad "micro_batch run with drop path failed"
"${MPI[@]}" 2 "$DINOX" train --quiet -c "$C" --store store --out two_dp "${SET[@]}" loss.koleo_group=2 \
    model.drop_path=0.3 >two_dp.log 2>&1 || bad "np 2 with drop path failed: $(tail -3 two_dp.log)"
out=$(compare two_dp micro_dp) && ok "drop path 0.3: one process in passes of 2 = np 2: $out" ||
  bad "drop path 0.3: passes of 2 differ from 2 ranks: $out"
# resumed in passes (a staged run's next stage, or a machine with less memory): the one-pass trajectory goes on
train --stop-at 10 --out resumed "${SET[@]}" loss.koleo_group=2 2>/dev/null || bad "run to step 10 failed"
"$DINOX" train --quiet --resume resumed --store store train.micro_batch=2 >resumed.log 2>&1 ||
  bad "resume in passes of 2 failed: $(tail -3 resumed.log)"
grep -q "micro_batch: 2" resumed/config.resume.yaml 2>/dev/null || bad "the resume's micro_batch is not recorded in config.resume.yaml"
out=$(compare one resumed) && ok "one pass to step 10, resumed in passes of 2 = one pass throughout: $out" ||
  bad "resumed in passes differs from one pass: $out"

# ---- 2. a batch that does not divide ---------------------------------------------
if "${MPI[@]}" 3 "$DINOX" train --quiet -c "$C" --store store --out nodiv "${SET[@]}" >nodiv.log 2>&1; then
  bad "np 3 with batch 4 succeeded"
else
  grep -q "does not divide over 3 ranks" nodiv.log && [ ! -e nodiv ] \
    && ok "np 3, batch 4: refused ($(grep -m1 -o 'train.batch_size 4 does not divide over 3 ranks' nodiv.log)), no run directory" \
    || bad "np 3, batch 4: wrong failure: $(head -3 nodiv.log)"
fi

# ---- 3 and 4: a rank that dies, a rank that hangs ------------------------------------
# Only this test's processes (its working directory): ctest runs other tests' trainings beside it.
here=$(pwd -P)
our_trains() { # [PATTERN]: pids of dinox trainings started in this test's directory
  local p
  for p in $(pgrep -f "$DINOX train${1:-}"); do
    [ "$(readlink /proc/$p/cwd 2>/dev/null)" = "$here" ] && echo $p
  done
  return 0
}
rank_pid() { # RANK: the pid of that rank's dinox (looked up a few times: a process listing can miss it once)
  local p t
  for t in 1 2 3 4 5 6 7 8 9 10; do
    for p in $(our_trains); do
      tr '\0' '\n' </proc/$p/environ 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$1" && { echo $p; return; }
    done
    sleep 0.2
  done
}
long_run() { # DIR: a 2-rank run far longer than the test; returns once checkpoint 10 exists and rank 1
  # runs (at most 120 s: an ASan build on a loaded machine is slow), or once the job has ended
  "${MPI[@]}" 2 "$DINOX" train --quiet -c "$C" --store store --out "$1" "${SET[@]}" train.epoch_length=100000 \
      train.comm_timeout_s=10 loss.koleo_group=2 >"$1.log" 2>&1 & # koleo_group: the same run at any world size
  mp=$!
  for _ in $(seq 1200); do
    [ -e "$1/checkpoints/ckpt-0000000010.safetensors" ] && [ -n "$(rank_pid 1)" ] && break
    kill -0 $mp 2>/dev/null || break
    sleep 0.1
  done
}
no_rank1() { # DIR: why there was no rank 1 to kill
  if kill -0 $mp 2>/dev/null; then bad "no rank 1 process found, the job still runs: $(tail -3 "$1.log")"; kill -9 $mp
  else wait $mp; bad "no rank 1 process found: the job had ended (rc $?): $(tail -3 "$1.log")"; fi
}
ended_within() { # PID SECONDS: waits at most SECONDS; sets rc (or "hung") and secs
  local t0=$SECONDS
  for _ in $(seq $(($2 * 10))); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
  secs=$((SECONDS - t0))
  if kill -0 "$1" 2>/dev/null; then kill -9 "$1"; wait "$1" 2>/dev/null; rc=hung; return; fi
  wait "$1"; rc=$?
}

long_run die
victim=$(rank_pid 1)
if [ -n "$victim" ]; then
  kill -9 "$victim"
  ended_within $mp 60
  left=$(our_trains ".*--out die" | wc -l)
  [ "$rc" != hung ] && [ "$rc" != 0 ] && [ "$left" = 0 ] \
    && ok "rank 1 killed: the job exited $rc after ${secs} s, no rank left" \
    || bad "rank 1 killed: rc $rc after ${secs} s, $left ranks left: $(tail -3 die.log)"
  "$DINOX" export die --out die.safetensors >/dev/null 2>&1 && ok "the newest checkpoint ($(cat die/checkpoints/latest)) loads" \
    || bad "the newest checkpoint does not load"
  # resume with one process and finish 10 steps after the newest checkpoint (at least at step 30: the kill can
  # land after checkpoint 30 on a fast machine); an uninterrupted one-process run to the same step is the reference
  last=$(sed -n 's/^ckpt-0*\([0-9][0-9]*\)\.safetensors$/\1/p' die/checkpoints/latest)
  stop=$((${last:-0} + 10 > 30 ? ${last:-0} + 10 : 30))
  "$DINOX" train --quiet --stop-at $stop --resume die --store store train.epoch_length=100000 2>/dev/null \
    || bad "one-process resume of the 2-rank run failed"
  train --stop-at $stop --out straight "${SET[@]}" train.epoch_length=100000 loss.koleo_group=2 2>/dev/null
  out=$(compare straight die) && ok "resumed with 1 rank = uninterrupted run: $out" || bad "resume with 1 rank differs: $out"
else
  no_rank1 die
fi

long_run hang
victim=$(rank_pid 1)
if [ -n "$victim" ]; then
  kill -STOP "$victim"
  ended_within $mp 40
  kill -9 "$victim" 2>/dev/null
  [ "$rc" != hung ] && [ "$rc" != 0 ] && grep -q "train.comm_timeout_s" hang.log \
    && ok "rank 1 hung: the others ended the job (rc $rc) after ${secs} s: $(grep -m1 -o 'step [0-9]* has not finished after [0-9]* s' hang.log)" \
    || bad "rank 1 hung: rc $rc after ${secs} s: $(tail -3 hang.log)"
else
  no_rank1 hang
fi
left=$(our_trains); [ -n "$left" ] && kill -9 $left 2>/dev/null
[ $fail = 0 ] && echo "test_distributed: all checks passed" || echo "test_distributed: $fail checks failed"
exit $fail
