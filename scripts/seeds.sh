#!/usr/bin/env bash
# seeds.sh - one arm of the experiment (scripts/experiment.sh) trained with
# several training seeds on one store, each evaluated the same way, then the
# figures across seeds: per seed, their mean, spread and a t interval over the
# seeds. A single run's CI resamples test patients for one trained backbone;
# it does not contain the run-to-run variation of training, which this does.
# Not a test: it prints and writes figures.
#
# Usage: scripts/seeds.sh WORK_DIR STORE SEEDS [key=value ...]
#   SEEDS: a comma-separated list of train.seed values, e.g. 0,1,2
#   key=value: overrides for every training (the arm), after the experiment's
#   run settings, e.g. gram.enabled=false
#   DINOX_EPOCHS (16): the training length, as scripts/experiment.sh's EPOCHS.
# A seed whose WORK_DIR/seed_S/backbone.safetensors exists is not trained again,
# and one whose eval/eval.json exists is not evaluated again, so finished runs
# can be linked in (ln -s RUN WORK_DIR/seed_S). Writes WORK_DIR/seeds.json.
set -euo pipefail
[ $# -ge 3 ] || { sed -n '2,17p' "$0"; exit 2; }
root=$(cd "$(dirname "$0")/.." && pwd)
work=$1 store=$(readlink -f "$2") seeds=$3
shift 3
dinox=${DINOX:-$root/build/dinox}
[ -x "$dinox" ] || { echo "seeds.sh: no $dinox (scripts/setup.sh build)"; exit 1; }
epochs=${DINOX_EPOCHS:-16}
mkdir -p "$work"
cd "$work"
# the experiment's run settings (scripts/experiment.sh): Gram over the last third when on
g0=$((epochs * 2 / 3)) gstep=$((epochs * 2 / 3 * 100))
RUN=(train.epochs=$epochs gram.weight_start_epochs=$g0 gram.refresh_first=$gstep gram.refresh_every=$gstep
     train.ckpt_every_steps=$((epochs * 25)) train.log_every=20)
EV=(--size 64 --crop-min-mm 32 --folds 5) # probe crops max(32 mm, 2 x diameter): the nodule fills a quarter (docs/results.md)
dirs=()
IFS=',' read -r -a list <<<"$seeds"
for s in "${list[@]}"; do
  d=seed_$s
  dirs+=("$d")
  if [ ! -f "$d/backbone.safetensors" ]; then
    echo "== seed $s: train"
    rm -rf "$d"
    "$dinox" train -c "$root/configs/demo.yaml" --store "$store" --out "$d" "${RUN[@]}" train.seed="$s" "$@" 2>&1 |
      grep -v '^step ' || true
    "$dinox" export "$d" --out "$d/backbone.safetensors"
  fi
  if [ ! -f "$d/eval/eval.json" ]; then
    echo "== seed $s: evaluate"
    "$dinox" eval --store "$store" --run "$d" --out "$d/eval" "${EV[@]}" >"$d.eval.log" 2>&1 ||
      { echo "seeds.sh: eval of seed $s failed: $(tail -3 "$d.eval.log")"; exit 1; }
  fi
done
/usr/bin/python3 "$root/scripts/lib/seed_summary.py" "${dirs[@]}" --json seeds.json
