#!/usr/bin/env bash
# gpu-check.sh - what can be checked on a lent GPU machine (NVIDIA, CUDA
# toolkit with NCCL), in one short run: build with the NCCL engine and run
# the tests that need a GPU. Everything that cannot run prints SKIPPED.
# Today that is the NCCL communication engine with one rank (and with N
# ranks when several GPUs and mpirun are there); the GPU backend (issue of
# its own) will add its op suite here.
#   usage: scripts/gpu-check.sh [BUILD_DIR]   (default build-gpu)
set -euo pipefail
cd "$(dirname "$0")/.."
B=${1:-build-gpu}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"
cmake -S . -B "$B" -DCMAKE_BUILD_TYPE=Release -DDINOX_NCCL=ON >/dev/null
cmake --build "$B" -j"$(nproc)" --target test_comm_nccl dinox >/dev/null
echo "== NCCL engine, 1 rank"
"$B"/test_comm_nccl || { rc=$?; [ $rc = 77 ] || exit $rc; }
n=$(nvidia-smi -L 2>/dev/null | wc -l || echo 0)
if [ "$n" -gt 1 ] && command -v mpirun >/dev/null; then
  echo "== NCCL engine, $n ranks"
  OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 mpirun -np "$n" "$B"/test_comm_nccl
else
  echo "SKIPPED: NCCL with several ranks ($n GPU(s))"
fi
