#!/usr/bin/env bash
# test_eval_peer.sh - the evaluation statistics of `dinox eval` (AUC, logistic
# regression, probe protocol, k-NN, Dice/IoU, effective rank, pairwise cosine,
# eigenvalues, bilinear upsampling) against scikit-learn / numpy / torch on the
# same random inputs (tests/ref/eval_peer.py drives `dinox eval --selftest`).
set -euo pipefail
: "${DINOX:?}" "${DINOX_SOURCE_DIR:?}"
PY=/usr/bin/python3
if ! $PY -c "import sklearn, torch, numpy" 2>/dev/null; then
    echo "FAIL: $PY cannot import sklearn + torch + numpy (apt-get install python3-sklearn python3-torch python3-numpy; scripts/setup.sh does)"
    exit 1
fi
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
$PY "$DINOX_SOURCE_DIR/tests/ref/eval_peer.py" "$(readlink -f "$DINOX")" "$work"
