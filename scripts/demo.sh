#!/usr/bin/env bash
# demo.sh - set up, then run the whole main job on a small built-in default:
#   synthetic LIDC-like CT (DICOM + reader XML) -> volume store -> DINOv3
#   pre-training (configs/demo.yaml) -> exported backbone -> frozen-feature
#   evaluation -> HTML report.
# Usage: scripts/demo.sh [WORK_DIR]   (default: demo-run; re-running starts over)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
work=${1:-demo-run}
scripts/setup.sh build >/dev/null
dinox=$root/build/dinox
rm -rf "$work"
mkdir -p "$work"
cd "$work"
t0=$SECONDS
step() { printf '\n== %s (%ds)\n' "$*" $((SECONDS - t0)); }

step "1/6 synthetic chest CT: 40 patients, 128x128, LIDC-IDRI layout"
"$dinox" synth --out dicom --patients 40 --size 128 --seed 1

step "2/6 ingest: DICOM + LIDC XML -> volume store"
"$dinox" ingest dicom --out store
"$dinox" store list store

step "3/6 DINOv3 pre-training (configs/demo.yaml)"
"$dinox" plan -c "$root/configs/demo.yaml" --device cpu
"$dinox" train -c "$root/configs/demo.yaml" --store store --out run

step "4/6 export the EMA-teacher backbone"
"$dinox" export run --out run/backbone.safetensors

step "5/6 frozen-feature evaluation (malignancy probe, segmentation, attention, collapse)"
"$dinox" eval --store store --run run --out run/eval

step "6/6 report"
"$dinox" report run
printf '\ndone in %ds: open %s/run/report.html\n' $((SECONDS - t0)) "$(pwd)"
