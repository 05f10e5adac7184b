#!/bin/bash
# bench_ingest.sh - `dinox ingest` throughput on generated 512x512 CT slices.
#
# Generates N_SERIES series of NZ slices (default 8 x 256 = 2048 slices,
# ~1 GiB of DICOM) with tests/data/lidc/gen_ct.py (pydicom), then times:
#   1. a fresh ingest (scan + decode + HU + write with fsync),
#   2. a no-op re-run (scan headers only, everything already stored),
#   3. one `store export` (mmap -> .npy).
# Prints slices/s and MB/s. Page cache is not dropped (shared machine): the
# first ingest reads files the generator just wrote, i.e. a warm-cache figure.
#
# usage: DINOX=build/dinox bench/bench_ingest.sh [N_SERIES] [NZ] [WORKDIR]
set -eu
SRC=$(cd "$(dirname "$0")/.." && pwd)
D=${DINOX:-$SRC/build/dinox}
NS=${1:-8}
NZ=${2:-256}
W=${3:-$(mktemp -d /tmp/dx_bench_ingest.XXXXXX)}
PY=/usr/bin/python3
trap 'rm -rf "$W"' EXIT
[ -x "$D" ] || { echo "no dinox binary at $D (set DINOX)"; exit 2; }
echo "generating $NS series x $NZ slices of 512x512 in $W ..."
t0=$(date +%s.%N)
for i in $(seq 1 "$NS"); do
    $PY "$SRC/tests/data/lidc/gen_ct.py" "$W/in/P$i/s" --series "1.2.840.777.$i" --study "1.2.840.777" \
        --patient "BENCH-$i" --nx 512 --ny 512 --nz "$NZ" --dz 1.0 --seed "$i" &
    # two generators at a time (2 cores)
    if [ $((i % 2)) -eq 0 ]; then wait; fi
done
wait
t1=$(date +%s.%N)
bytes=$(du -sb "$W/in" | cut -f1)
slices=$((NS * NZ))
echo "generated $slices slices, $((bytes / 1048576)) MiB in $(echo "$t1 - $t0" | bc) s"

t0=$(date +%s.%N)
$D ingest "$W/in" --out "$W/store" --no-progress
t1=$(date +%s.%N)
dt=$(echo "$t1 - $t0" | bc)
echo "fresh ingest:  $slices slices in $dt s = $(echo "$slices / $dt" | bc) slices/s, $(echo "$bytes / 1048576 / $dt" | bc) MiB/s of DICOM"
echo "store size: $(du -sb "$W/store" | cut -f1 | awk '{print int($1/1048576)}') MiB"

t0=$(date +%s.%N)
$D ingest "$W/in" --out "$W/store" --no-progress 2>/dev/null
t1=$(date +%s.%N)
echo "no-op re-run: $(echo "$t1 - $t0" | bc) s (header scan of $slices files)"

t0=$(date +%s.%N)
$D store export "$W/store" --series 1.2.840.777.1 --out "$W/v.npy"
t1=$(date +%s.%N)
echo "export of one series ($NZ slices): $(echo "$t1 - $t0" | bc) s"
