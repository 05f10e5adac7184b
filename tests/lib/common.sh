# common.sh - sourced by the end-to-end test scripts: the checks' prelude and
# the tiny model that trains in seconds.
#   DINOX, DINOX_SOURCE_DIR (from CTest) must be set; after sourcing, the
#   script runs in a fresh temporary directory that is removed on exit,
#   `ok MSG` prints a passed check, `bad MSG` records a failure ($fail = 1,
#   $fails counts them), and TINY holds the overrides of a
#   2-block, 32-wide ViT with 64-prototype heads and 32/16 px crops.
set -uo pipefail
: "${DINOX:?}" "${DINOX_SOURCE_DIR:?}"
PY=/usr/bin/python3
DINOX=$(readlink -f "$DINOX")
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
cd "$work"
fail=0 fails=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL: $*"; fail=1; fails=$((fails + 1)); }
C="$DINOX_SOURCE_DIR/configs/demo.yaml"
TINY=(model.dim=32 model.depth=2 model.heads=2 model.registers=2 heads.dino_hidden=32 heads.dino_bottleneck=16
      heads.dino_k=64 heads.ibot_hidden=32 heads.ibot_bottleneck=16 heads.ibot_k=64 train.batch_size=4
      crops.local_count=2 crops.global_size=32 crops.local_size=16 train.epochs=1 train.log_every=1)
# pyenv_or_skip "import a, b" WHAT [hf]: TPY = the Python of one of
# scripts/setup.sh's PyPI environments: DINOX_PYENV (default
# ~/.cache/dinox/pyenv: timm, TensorBoard over Debian's torch) or, with "hf",
# DINOX_HFENV (default ~/.cache/dinox/hfenv: PyPI's torch and transformers);
# exits 77 (CTest: skipped) with a SKIPPED line when it cannot run the imports.
pyenv_or_skip() {
  local cache=${XDG_CACHE_HOME:-$HOME/.cache}/dinox
  if [ "${3:-}" = hf ]; then TPY=${DINOX_HFENV:-$cache/hfenv}/bin/python
  else TPY=${DINOX_PYENV:-$cache/pyenv}/bin/python; fi
  if ! "$TPY" -c "$1" 2>/dev/null; then
    echo "SKIPPED: no $2 in ${TPY%/bin/python} (scripts/setup.sh installs it from PyPI)"
    exit 77
  fi
}
