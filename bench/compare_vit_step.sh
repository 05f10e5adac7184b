#!/usr/bin/env bash
# compare_vit_step.sh - the C ViT step benchmark and its PyTorch peer, side by side.
#
# usage: bench/compare_vit_step.sh [BUILD_DIR] [--steps S] [--warmup W] [--threads T] [--rounds R]
#                                  [--configs multicrop,single,dinov3] [--gram-scale F] [--precision fp32|bf16]
#
# For each config (multicrop: ViT-S/16, 2x224 + 8x96 crops, batch 8; single: 112 px,
# batch 32; dinov3: the whole DINOv3 SSL step of that multicrop batch - EMA teacher,
# heads 65536, all losses, clipping, AdamW, EMA - vs bench/torch_dinov3_step.py;
# default all three) it alternates the two implementations R times (default 3) so that
# load from other users of the machine hits both alike, prints every JSON line, then a
# summary with the median img/s of each and the ratio dinox / torch.
# --gram-scale (dinov3 only, default 1): Gram teacher crops at F x 224 px.
# --precision bf16: dinox with model.precision bf16 against PyTorch under
# torch.autocast('cpu', bfloat16) (the peers' --bf16), both with fp32 master weights.
# The torch peer runs with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset in that one
# command (perf-baselines.md: set, they force OpenBLAS onto its AVX2 kernels); the C
# benchmark runs in the environment as given. Needs /usr/bin/python3 with torch and
# libopenblas0-openmp (the torch BLAS; see bench/torch_vit_step.py).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
[ $# -gt 0 ] && shift
steps=5 warmup=1 threads=2 rounds=3 configs=multicrop,single,dinov3 gram_scale=1 precision=fp32
while [ $# -gt 0 ]; do
  case "$1" in
    --steps) steps=$2; shift 2 ;;
    --warmup) warmup=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --configs) configs=$2; shift 2 ;;
    --gram-scale) gram_scale=$2; shift 2 ;;
    --precision) precision=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
cbench=$build/bench_vit_step
[ -x "$cbench" ] || { echo "no $cbench (build the project first)" >&2; exit 1; }
out=$(mktemp)
trap 'rm -f "$out"' EXIT

IFS=, read -r -a config_list <<<"$configs"
for config in "${config_list[@]}"; do
  case "$config" in
    multicrop|single)
      cargs=() peer=("$root/bench/torch_vit_step.py" --config "$config") ;;
    dinov3)
      cargs=(--gram-scale "$gram_scale") peer=("$root/bench/torch_dinov3_step.py" --gram-scale "$gram_scale") ;;
    *) echo "unknown config $config (multicrop, single, dinov3)" >&2; exit 2 ;;
  esac
  if [ "$precision" = bf16 ]; then cargs+=(--precision bf16); peer+=(--bf16); fi
  for r in $(seq "$rounds"); do
    echo "# $config round $r/$rounds $(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
    "$cbench" "$config" "${cargs[@]}" --steps "$steps" --warmup "$warmup" --threads "$threads" | tee -a "$out"
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OMP_NUM_THREADS="$threads" \
      /usr/bin/python3 "${peer[@]}" --steps "$steps" --warmup "$warmup" --threads "$threads" | tee -a "$out"
  done
done

/usr/bin/python3 - "$out" "$configs" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
for config in sys.argv[2].split(","):
    med = {}
    for impl in ("dinox", "torch"):  # "dinox-bf16" / "torch-bf16" count as their implementation
        v = [r["img_per_s"] for r in rows if r.get("config") == config and r.get("impl", "").split("-")[0] == impl]
        med[impl] = statistics.median(v) if v else float("nan")
    ratio = med["dinox"] / med["torch"] if med["torch"] else float("nan")
    print("summary %-9s dinox %.3f img/s  torch %.3f img/s  ratio %.2fx" % (config, med["dinox"], med["torch"], ratio))
EOF
