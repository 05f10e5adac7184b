#!/usr/bin/env bash
# test_ssl_ref_selfcheck.sh - the whole-step SSL reference (tests/ref/ssl_ref.py)
# checks itself against independent formulations (explicit bicubic kernel, head
# formulas, §7.2 group table, finite-difference gradient, AdamW/EMA by hand) and
# reruns ssl_tiny.safetensors from the file alone (float64 must reproduce it).
set -euo pipefail
: "${DINOX_SOURCE_DIR:?}"
PY=/usr/bin/python3
if ! $PY -c "import torch" 2>/dev/null; then
  echo "FAIL: $PY cannot import torch (apt-get install python3-torch; scripts/setup.sh does)"; exit 1
fi
cd "$DINOX_SOURCE_DIR/tests/ref"
$PY selfcheck_ssl_ref.py
$PY check_ssl_fixture.py --dir "${DINOX_FIXTURE_DIR:-$DINOX_SOURCE_DIR/tests/fixtures}"
