#!/usr/bin/env bash
# gpu-check.sh - everything that needs an NVIDIA GPU, in one run of at most
# ~8 minutes on an H100/H200 (16 cores), logs in the folder given as argument:
#   0. nvidia-smi, the build (-DDINOX_CUDA=ON for this GPU's architecture, plus
#      -DDINOX_NCCL=ON where NCCL is installed), dinox doctor;
#   1. test_backend_ops: every op of both ops tables on the GPU against the CPU
#      double kernels;
#   2. test_ssl_device: one whole DINOv3 step GPU vs CPU (every loss term and
#      gradient norm: fp32 within 1e-4, bf16 within 2e-2) and a 20-step
#      trajectory, tiny config in fp32 and bf16 (and fp32 with the student in
#      passes of 2), then ViT-S/16 at 224/96 for 3 steps in both;
#   3. the trainer unchanged on the GPU: synth -> ingest -> dinox train
#      --device cuda for 20 steps of configs/demo.yaml, the same on the CPU, the
#      two loss curves side by side;
#   4. bench_vit_step --device cuda: ViT-S/16 multicrop (2x224 + 8x96) batch 64
#      fp32 and bf16, the whole DINOv3 step ViT-S/16 batch 64 bf16 and ViT-L/16
#      at 512/112 batch 8 bf16 (img/s, TFLOP/s, fraction of the measured GEMM peak);
#      bench_attention at T 1025, Dh 64, 16 heads, 8 images (ViT-L/16 at 512 px):
#      forward + backward against the GEMM peak of the same run, fp32 and bf16;
#   5. the NCCL engine (1 rank; N ranks with several GPUs and mpirun).
# A stage that fails or runs out of its time is recorded and the next one runs;
# the exit status is non-zero if any failed. A stage that cannot run says SKIPPED.
#   usage: scripts/gpu-check.sh [LOG_DIR]   (default gpu-check-logs)
#   DINOX_GPU_BUILD: build folder (default build-gpu)
set -uo pipefail
cd "$(dirname "$0")/.."
LOG=$(mkdir -p "${1:-gpu-check-logs}" && cd "${1:-gpu-check-logs}" && pwd)
B=${DINOX_GPU_BUILD:-build-gpu}
exec > >(tee "$LOG/gpu-check.log") 2>&1
t0=$SECONDS
failed=()
stage() { printf '\n== %s (%ds)\n' "$1" $((SECONDS - t0)); }
run() { # NAME SECONDS CMD... : runs with a time limit, log in LOG/NAME.log
  local name=$1 limit=$2; shift 2
  timeout "$limit" "$@" >"$LOG/$name.log" 2>&1
  local rc=$?
  tail -25 "$LOG/$name.log"
  case $rc in
    0) echo "-- $name: ok" ;;
    77) echo "-- $name: SKIPPED" ;;
    124) echo "-- $name: FAILED (over ${limit}s)"; failed+=("$name") ;;
    *) echo "-- $name: FAILED (exit $rc)"; failed+=("$name") ;;
  esac
}

stage "0 GPU, build, doctor"
nvidia-smi --query-gpu=name,memory.total,driver_version,compute_cap,clocks.max.sm,temperature.gpu \
  --format=csv 2>&1 | tee "$LOG/nvidia-smi.txt"
cap=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d '. ')
arch=${cap:-90}
nccl=OFF
ldconfig -p 2>/dev/null | grep -q libnccl.so && nccl=ON
nvcc=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
if ! cmake -S . -B "$B" -DCMAKE_BUILD_TYPE=Release -DDINOX_CUDA=ON -DCMAKE_CUDA_COMPILER="$nvcc" \
     -DCMAKE_CUDA_ARCHITECTURES="$arch" -DDINOX_NCCL=$nccl >"$LOG/configure.log" 2>&1 ||
   ! cmake --build "$B" -j"$(nproc)" --target dinox test_backend_ops test_ssl_device bench_vit_step bench_attention \
     $([ $nccl = ON ] && echo test_comm_nccl) >"$LOG/build.log" 2>&1; then
  tail -40 "$LOG/configure.log" "$LOG/build.log"
  echo "gpu-check: FAILED: the CUDA build (sm_$arch)"
  exit 1
fi
grep -i "warning" "$LOG/build.log" | head -20
echo "built for sm_$arch (NCCL $nccl) in $((SECONDS - t0))s"
"$B"/dinox doctor >"$LOG/doctor.txt" 2>&1; sed -n '/^backend cuda/,/^$/p' "$LOG/doctor.txt"

stage "1 every op on the GPU vs the CPU double kernels"
run backend_ops 120 "$B"/test_backend_ops
grep -q "^cuda: [0-9]* cases passed" "$LOG/backend_ops.log" ||
  { echo "-- backend_ops: FAILED (the cuda backend did not run: no GPU?)"; failed+=(backend_ops_cuda); }

stage "2 one DINOv3 step and a 20-step trajectory, GPU vs CPU"
run ssl_tiny_fp32 60 "$B"/test_ssl_device --device cuda --precision fp32 --steps 20
run ssl_tiny_bf16 60 "$B"/test_ssl_device --device cuda --precision bf16 --steps 20
run ssl_tiny_micro 60 "$B"/test_ssl_device --device cuda --precision fp32 --steps 10 --micro-batch 2
run ssl_tiny_recompute 60 "$B"/test_ssl_device --device cuda --precision fp32 --steps 10 --micro-batch 2 --ibot-recompute
run ssl_small_fp32 90 "$B"/test_ssl_device --device cuda --precision fp32 --steps 3 --size small
run ssl_small_bf16 90 "$B"/test_ssl_device --device cuda --precision bf16 --steps 3 --size small

stage "3 dinox train on the GPU (20 steps of configs/demo.yaml) beside the CPU"
W=$(mktemp -d)
if "$B"/dinox synth --out "$W/dicom" --patients 8 --size 128 --seed 1 >"$LOG/synth.log" 2>&1 &&
   "$B"/dinox ingest "$W/dicom" --out "$W/store" >"$LOG/ingest.log" 2>&1; then
  run train_cuda 120 "$B"/dinox train -c configs/demo.yaml --store "$W/store" --out "$W/run-cuda" \
    --device cuda --stop-at 20 --quiet train.log_every=1
  run train_cpu 120 "$B"/dinox train -c configs/demo.yaml --store "$W/store" --out "$W/run-cpu" \
    --device cpu --stop-at 20 --quiet train.log_every=1
  for d in cuda cpu; do cp "$W/run-$d/metrics.jsonl" "$LOG/metrics-$d.jsonl" 2>/dev/null; done
  if [ -s "$LOG/metrics-cuda.jsonl" ] && [ -s "$LOG/metrics-cpu.jsonl" ]; then
    python3 - "$LOG/metrics-cpu.jsonl" "$LOG/metrics-cuda.jsonl" <<'PY' || echo "(no python3: compare $LOG/metrics-*.jsonl by hand)"
import json, sys
cpu, gpu = ([r for r in map(json.loads, filter(str.strip, open(f))) if "loss/total" in r] for f in sys.argv[1:3])
print("step  loss/total cpu  cuda       rel      dino_global cpu  cuda")
for a, b in zip(cpu, gpu):
    x, y = a["loss/total"], b["loss/total"]
    print("%4d  %12.6f  %12.6f  %.1e  %10.5f  %10.5f" % (a["step"], x, y, abs(x - y) / max(abs(x), 1e-30),
          a["loss/dino_global"], b["loss/dino_global"]))
PY
  fi
else
  echo "-- train: FAILED (synth/ingest)"; failed+=(train)
fi
rm -rf "$W"

stage "4 benchmarks on the GPU"
run bench_vits_multicrop_fp32 90 "$B"/bench_vit_step multicrop --device cuda --batch 64 --steps 5
run bench_vits_multicrop_bf16 90 "$B"/bench_vit_step multicrop --device cuda --batch 64 --steps 5 --precision bf16
run bench_vits_dinov3_bf16 90 "$B"/bench_vit_step dinov3 --device cuda --batch 64 --steps 3 --precision bf16
run bench_attention_fp32 60 "$B"/bench_attention --device cuda --n 8 --t 1025 --heads 16 --dh 64
run bench_attention_bf16 60 "$B"/bench_attention --device cuda --precision bf16 --n 8 --t 1025 --heads 16 --dh 64
run bench_vitl_dinov3_bf16 120 "$B"/bench_vit_step dinov3 --device cuda --arch vit_large --sizes 512/112 \
  --batch 8 --steps 3 --precision bf16

stage "5 NCCL engine"
if [ $nccl = ON ]; then
  run nccl_1rank 60 "$B"/test_comm_nccl
  n=$(nvidia-smi -L 2>/dev/null | wc -l)
  if [ "$n" -gt 1 ] && command -v mpirun >/dev/null; then
    run nccl_nranks 120 env OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 mpirun -np "$n" "$B"/test_comm_nccl
  else
    echo "SKIPPED: NCCL with several ranks ($n GPU(s))"
  fi
else
  echo "SKIPPED: no libnccl on this machine"
fi

printf '\n== done in %ds; logs in %s\n' $((SECONDS - t0)) "$LOG"
if ((${#failed[@]})); then echo "gpu-check: FAILED: ${failed[*]}"; exit 1; fi
echo "gpu-check: all stages passed"
