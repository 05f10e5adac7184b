#!/usr/bin/env bash
# bench_plan_memory.sh - `dinox plan`'s memory prediction vs the measured peak
# resident memory of `dinox train` (3 steps, so that a checkpoint is written),
# for several CPU configurations (fp32 and bf16, without activation checkpointing
# and with both of its modes, teacher passes in chunks, the student in passes). Prints one line per
# config and the error.
# usage: bench/bench_plan_memory.sh [BUILD_DIR]   (DINOX_BENCH_ONLY=REGEX: only the configs it matches)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dinox=$(readlink -f "${1:-$root/build}/dinox")
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
cd "$work"
"$dinox" synth --out synth --patients 3 --size 128 --seed 2 >/dev/null 2>&1
"$dinox" ingest synth --out store >/dev/null 2>&1
demo=$root/configs/demo.yaml
configs=(
  "demo|$demo|"
  "demo-b64|$demo|train.batch_size=64"
  "vit_small-112|$demo|model.arch=vit_small model.dim=0 model.depth=0 model.heads=0 model.patch=16 crops.global_size=112 crops.local_size=48 train.batch_size=8 heads.dino_k=8192 heads.ibot_k=8192 heads.dino_hidden=2048 heads.ibot_hidden=2048 heads.dino_bottleneck=256 heads.ibot_bottleneck=256 gram.teacher_res_factor=2"
  "vit_small-112-ckpt|$demo|model.arch=vit_small model.dim=0 model.depth=0 model.heads=0 model.patch=16 crops.global_size=112 crops.local_size=48 train.batch_size=8 heads.dino_k=8192 heads.ibot_k=8192 heads.dino_hidden=2048 heads.ibot_hidden=2048 heads.dino_bottleneck=256 heads.ibot_bottleneck=256 gram.teacher_res_factor=2 train.checkpointing=block"
  "vit_small-112-sel|$demo|model.arch=vit_small model.dim=0 model.depth=0 model.heads=0 model.patch=16 crops.global_size=112 crops.local_size=48 train.batch_size=8 heads.dino_k=8192 heads.ibot_k=8192 heads.dino_hidden=2048 heads.ibot_hidden=2048 heads.dino_bottleneck=256 heads.ibot_bottleneck=256 gram.teacher_res_factor=2 train.checkpointing=selective"
  "vit_small-112-bf16|$demo|model.arch=vit_small model.dim=0 model.depth=0 model.heads=0 model.patch=16 crops.global_size=112 crops.local_size=48 train.batch_size=8 heads.dino_k=8192 heads.ibot_k=8192 heads.dino_hidden=2048 heads.ibot_hidden=2048 heads.dino_bottleneck=256 heads.ibot_bottleneck=256 gram.teacher_res_factor=2 model.precision=bf16"
  "vit_small-112-bf16-sel|$demo|model.arch=vit_small model.dim=0 model.depth=0 model.heads=0 model.patch=16 crops.global_size=112 crops.local_size=48 train.batch_size=8 heads.dino_k=8192 heads.ibot_k=8192 heads.dino_hidden=2048 heads.ibot_hidden=2048 heads.dino_bottleneck=256 heads.ibot_bottleneck=256 gram.teacher_res_factor=2 model.precision=bf16 train.checkpointing=selective"
  "vit_small-112-chunk4|$demo|model.arch=vit_small model.dim=0 model.depth=0 model.heads=0 model.patch=16 crops.global_size=112 crops.local_size=48 train.batch_size=8 heads.dino_k=8192 heads.ibot_k=8192 heads.dino_hidden=2048 heads.ibot_hidden=2048 heads.dino_bottleneck=256 heads.ibot_bottleneck=256 gram.teacher_res_factor=2 train.teacher_chunk=4"
  "vit_small-112-micro2|$demo|model.arch=vit_small model.dim=0 model.depth=0 model.heads=0 model.patch=16 crops.global_size=112 crops.local_size=48 train.batch_size=8 heads.dino_k=8192 heads.ibot_k=8192 heads.dino_hidden=2048 heads.ibot_hidden=2048 heads.dino_bottleneck=256 heads.ibot_bottleneck=256 gram.teacher_res_factor=2 train.micro_batch=2"
  "vit_small-112-micro2-ckpt|$demo|model.arch=vit_small model.dim=0 model.depth=0 model.heads=0 model.patch=16 crops.global_size=112 crops.local_size=48 train.batch_size=8 heads.dino_k=8192 heads.ibot_k=8192 heads.dino_hidden=2048 heads.ibot_hidden=2048 heads.dino_bottleneck=256 heads.ibot_bottleneck=256 gram.teacher_res_factor=2 train.micro_batch=2 train.checkpointing=block"
)
printf '%-26s %12s %12s %8s\n' config predicted_MB measured_MB error
for c in "${configs[@]}"; do
  IFS='|' read -r name cfg over <<<"$c"
  [[ -z "${DINOX_BENCH_ONLY:-}" || "$name" =~ ${DINOX_BENCH_ONLY:-} ]] || continue
  read -r -a ov <<<"$over"
  pred=$("$dinox" plan -c "$cfg" --device cpu --json "${ov[@]}" | /usr/bin/python3 -c "import json,sys; print(json.load(sys.stdin)['total_bytes'])")
  rm -rf run
  /usr/bin/time -f "%M" -o rss.txt "$dinox" train --quiet -c "$cfg" --store store --out run --stop-at 3 \
    train.ckpt_every_steps=2 "${ov[@]}" 2>/dev/null
  meas=$(( $(cat rss.txt) * 1024 ))
  /usr/bin/python3 -c "p,m=$pred,$meas; print('%-26s %12.1f %12.1f %+7.1f%%' % ('$name', p/1e6, m/1e6, 100*(p-m)/m))"
done
