#!/bin/bash
# bench_distributed.sh - data-parallel step time: 1 process vs N ranks over
# Open MPI on this machine, the same global batch and the same cores.
#
# 1 rank runs with OMP_NUM_THREADS = CORES; N ranks with CORES / N threads
# each (mpirun --bind-to none), so both use the same cores and only the split
# of the work differs. Config: configs/demo.yaml (ViT 96-wide, 4 blocks,
# 64/32 px crops, Gram on) with train.batch_size BATCH and loss.koleo_group
# BATCH/N in both runs (equal work). Prints the median step time over the
# steps after warm-up, the median time in the gradient all-reduce
# (perf/comm_s: includes waiting for the slowest rank), the bytes each rank
# sends per step (ring: 2 (N-1)/N of the gradients) and the scaling
# efficiency T1 / TN (one host: the ranks share its cores and memory
# bandwidth, so this measures the overhead of the split, not a speed-up).
#
# usage: DINOX=build/dinox bench/bench_distributed.sh [N] [BATCH] [STEPS] [CORES]
set -eu
SRC=$(cd "$(dirname "$0")/.." && pwd)
D=${DINOX:-$SRC/build/dinox}
N=${1:-2}
BATCH=${2:-8}
STEPS=${3:-40}
CORES=${4:-$(nproc)}
PY=/usr/bin/python3
W=$(mktemp -d /tmp/dx_bench_dist.XXXXXX)
trap 'rm -rf "$W"' EXIT
[ -x "$D" ] || { echo "no dinox binary at $D (set DINOX)"; exit 2; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
cd "$W"
"$D" synth --out synth --patients 4 --size 128 --seed 3 --slices-max 40 >/dev/null 2>&1
"$D" ingest synth --out store >/dev/null 2>&1
SET=(train.batch_size="$BATCH" loss.koleo_group=$((BATCH / N)) train.epochs=1 train.epoch_length="$STEPS"
     train.log_every=1 train.threads=1 train.ckpt_every_steps=0 train.ckpt_every_minutes=0)
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg); $CORES cores; global batch $BATCH; $STEPS steps"
OMP_NUM_THREADS=$CORES "$D" train --quiet -c "$SRC/configs/demo.yaml" --store store --out one "${SET[@]}" 2>/dev/null
OMP_NUM_THREADS=$((CORES / N > 0 ? CORES / N : 1)) mpirun -np "$N" --bind-to none \
    "$D" train --quiet -c "$SRC/configs/demo.yaml" --store store --out many "${SET[@]}" 2>/dev/null
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
$PY - one many "$N" <<'PYEOF'
import json, statistics, sys
def rows(d):
    return [json.loads(l) for l in open(d + "/metrics.jsonl")]
one, many, n = rows(sys.argv[1]), rows(sys.argv[2]), int(sys.argv[3])
skip = 5  # warm-up: first steps allocate and fill caches
t1 = statistics.median(r["perf/step_s"] for r in one[skip:])
tn = statistics.median(r["perf/step_s"] for r in many[skip:])
cn = statistics.median(r["perf/comm_s"] for r in many[skip:])
# gradient bytes from the run's own log line is not in metrics: recompute from the checkpoint size
import os, struct
d = os.path.join(sys.argv[2], "checkpoints"); p = os.path.join(d, open(os.path.join(d, "latest")).read().strip())
raw = open(p, "rb").read(); h = json.loads(raw[8:8 + struct.unpack("<Q", raw[:8])[0]])
grad = sum((v["data_offsets"][1] - v["data_offsets"][0]) for k, v in h.items() if k.startswith("student."))
print(f"1 rank : median step {t1 * 1e3:8.1f} ms")
print(f"{n} ranks: median step {tn * 1e3:8.1f} ms, of which all-reduce (incl. waiting) {cn * 1e3:.1f} ms")
print(f"gradients {grad / 1e6:.2f} MB per step; a ring sends {2 * (n - 1) / n * grad / 1e6:.2f} MB per rank per step")
print(f"scaling efficiency T1/T{n} = {t1 / tn:.2f} (same cores: 1.0 = no overhead from splitting)")
PYEOF
