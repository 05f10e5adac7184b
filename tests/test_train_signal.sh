#!/usr/bin/env bash
# test_train_signal.sh - SIGTERM/SIGINT at random moments of a training run
# always end in a stop checkpoint and exit 128+signal, never in a crash.
#
# Before the stop thread (src/cli/cli_signal.c) a plain handler interrupted
# oneDNN GEMMs and about 1 run in 10 aborted with a corrupted heap and no
# stop checkpoint; 30 signals make a pass on that code unlikely (< 5%).
# Each run: SIGTERM (or SIGINT) after a random delay - during start-up,
# during steps, during a checkpoint write - then: exit 143/130 (or 0 when the
# signal lands after the run ended), "checkpoint written" on stderr, the
# newest checkpoint loads, and its step is the one the run stopped at.
# A second signal during the stop exits at once with 128+signal and leaves
# the previous checkpoints loadable.
#
# SIGINT is sent only once the run is training. A background job of a
# non-interactive shell starts with SIGINT ignored (POSIX: the shell sets
# SIG_IGN for asynchronous commands), so a SIGINT that lands between the fork
# and dinox blocking it at start-up is discarded by the kernel and the run
# goes on: a hang of this test (1 run in ~30 of the random early ones), not a
# defect of dinox. Early signals are SIGTERM. Every wait is bounded: a run
# that does not end within 120 s of its signal is reported with its signal
# masks and killed, instead of stalling CTest until its timeout.
set -uo pipefail
: "${DINOX:?}" "${DINOX_SOURCE_DIR:?}"
DINOX=$(readlink -f "$DINOX")
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
cd "$work"
"$DINOX" synth --out synth --patients 2 --size 128 --seed 5 --slices-max 24 >/dev/null 2>&1
"$DINOX" ingest synth --out store >/dev/null 2>&1 || { echo "ingest failed"; exit 1; }
C="$DINOX_SOURCE_DIR/configs/demo.yaml"
SET=(train.epochs=1 train.epoch_length=100000 train.batch_size=8 train.threads=2 train.ckpt_every_steps=3)
N=${DINOX_SIGNAL_RUNS:-30}
bounded_wait() { # PID: its exit status, or 255 (after printing why and killing it) if it outlives 120 s
  for _ in $(seq 1 1200); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$1" 2>/dev/null; then
    grep -E "SigBlk|SigIgn|SigPnd|ShdPnd" /proc/"$1"/status 2>/dev/null | tr '\n' ' '; echo; tail -3 err
    kill -9 "$1"; wait "$1" 2>/dev/null; return 255
  fi
  wait "$1"
}
fail=0; stopped=0; early=0
# The test's folder vanished mid-test in 2 of 4 fresh-clone CI runs (2026-12-08; every later run then
# failed to open 'err'), never locally: name that case and what else was running, instead of 30 confusing lines.
gone() {
  echo "FAIL: this test's folder $work was removed while it ran (not by this test); processes then:"
  ps -eo pid,ppid,etime,args 2>/dev/null | grep -v " ps -eo" | tail -40
  exit 1
}
for i in $(seq 1 "$N"); do
  [ -d "$work" ] || gone
  rm -rf r
  "$DINOX" train --quiet -c "$C" --store store --out r "${SET[@]}" 2>err &
  pid=$!
  sig=TERM; want=143
  if [ $((i % 4)) -eq 0 ]; then sig=INT; want=130; fi   # even runs only: after the first logged step
  if [ $((i % 2)) -eq 0 ]; then
    # half of the runs: a random moment after the first logged step
    for _ in $(seq 1 600); do [ -s r/metrics.jsonl ] && break; kill -0 $pid 2>/dev/null || break; sleep 0.05; done
    sleep "0.$((RANDOM % 10))$((RANDOM % 10))"
  else
    sleep "$((RANDOM % 3)).$((RANDOM % 10))"
  fi
  kill -$sig $pid 2>/dev/null
  bounded_wait $pid; rc=$?
  if [ $rc -eq 255 ]; then echo "run $i: SIG$sig: still running 120 s after the signal"; fail=1; continue; fi
  if grep -q "stop requested" err; then
    stopped=$((stopped + 1))
    if [ $rc -ne $want ]; then echo "run $i: SIG$sig: exit $rc, want $want"; tail -3 err; fail=1; continue; fi
    grep -q "checkpoint written" err || { echo "run $i: no stop checkpoint"; tail -3 err; fail=1; continue; }
    at=$(sed -n 's/.*stopped at step \([0-9]*\);.*/\1/p' err)
    "$DINOX" export r --out r.safetensors >exp 2>&1 || { echo "run $i: export failed"; cat exp; fail=1; continue; }
    grep -q "(step $at)" exp || { echo "run $i: newest checkpoint is not step $at"; cat exp; fail=1; continue; }
  else
    # the signal came before the stop thread existed (process start-up): killed, no run yet
    early=$((early + 1))
    if [ $rc -ne $want ]; then echo "run $i: early SIG$sig: exit $rc"; tail -3 err; fail=1; fi
  fi
done
echo "signals: $N, stopped with a checkpoint: $stopped, during start-up: $early"
[ $stopped -ge $((N / 2)) ] || { echo "too few signals landed during training ($stopped of $N)"; fail=1; }

# a second signal while stopping: exits at once; the checkpoints on disk still load
rm -rf r
"$DINOX" train --quiet -c "$C" --store store --out r "${SET[@]}" 2>err &
pid=$!
for _ in $(seq 1 600); do [ -e r/checkpoints/ckpt-0000000003.safetensors ] && break; sleep 0.05; done
kill -TERM $pid; sleep 0.2; kill -TERM $pid 2>/dev/null
bounded_wait $pid; rc=$?
[ $rc -eq 143 ] || { echo "double SIGTERM: exit $rc"; cat err; fail=1; }
"$DINOX" export r --out r2.safetensors >/dev/null 2>&1 || { echo "double SIGTERM: no loadable checkpoint left"; fail=1; }
[ $fail -eq 0 ] && echo "test_train_signal: all checks passed"
exit $fail
