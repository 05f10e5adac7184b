#!/usr/bin/env bash
# test_train_threads.sh - the CPU backend's OpenMP threads (train.compute_threads)
# and the loader's workers (train.threads) are set separately, and the run says
# what it got: compute_threads=1 with 3 loader workers gives "1 threads" and
# "3 worker threads"; unset, the backend takes train.threads (the behaviour
# before the key existed); a value out of range is refused.
source "$DINOX_SOURCE_DIR/tests/lib/common.sh"
"$DINOX" synth --out synth --patients 2 --size 128 --seed 3 --slices-max 12 >/dev/null 2>&1
"$DINOX" ingest synth --out store >/dev/null 2>&1 || bad "ingest"
run() { "$DINOX" train -c "$C" --store store --out "$1" "${TINY[@]}" train.epoch_length=1 "${@:2}" 2>&1 | grep 'compute:'; }
line=$(run a train.threads=3 train.compute_threads=1)
grep -Eq "[a-z]+ backend, 1 threads \(train.compute_threads\)" <<<"$line" && grep -q "loader: 3 worker threads" <<<"$line" &&
  ok "compute_threads=1, threads=3: $line" || bad "compute_threads=1, threads=3 gave: $line"
line=$(run b train.threads=2)
grep -Eq "[a-z]+ backend, 2 threads" <<<"$line" && grep -q "loader: 2 worker threads" <<<"$line" &&
  ok "unset: the backend takes train.threads: $line" || bad "unset gave: $line"
if "$DINOX" train -c "$C" --store store --out c "${TINY[@]}" train.compute_threads=-1 >/dev/null 2>err.txt; then
  bad "train.compute_threads=-1 accepted"
else
  grep -q "compute_threads" err.txt && ok "train.compute_threads=-1 refused: $(head -c 100 err.txt)" || bad "refusal: $(cat err.txt)"
fi
echo "# $fails failure(s)"
exit "$fail"
