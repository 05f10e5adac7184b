#!/usr/bin/env bash
# test_ref_selfcheck.sh - the PyTorch reference checks itself (RoPE algebra,
# masked k-bias, attention vs nn.MultiheadAttention, float64 gradcheck of the
# whole backbone) and recomputes every committed fixture from its own weights.
set -euo pipefail
: "${DINOX_SOURCE_DIR:?}"
PY=/usr/bin/python3
if ! $PY -c "import torch" 2>/dev/null; then
  echo "FAIL: $PY cannot import torch (apt-get install python3-torch; scripts/setup.sh does)"; exit 1
fi
cd "$DINOX_SOURCE_DIR/tests/ref"
$PY selfcheck_vit_ref.py
$PY check_fixtures.py
