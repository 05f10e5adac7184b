#!/bin/bash
# test_dicom_peers.sh - dinox's DICOM/series/NIfTI readers against independent
# tools: pydicom (headers, pixel_array, series assembly written again in
# Python), gdcm (gdcminfo geometry, gdcmconv/gdcmraw decompressed pixels) and
# dcmtk (dump2dcm/dcmconv/dcmcrle/dcmcjpls write the fixtures at test time).
# The comparison lives in tests/peers/dicom_peers.py; dinox's side is
# `test_dicom --dump/--series/--nifti`. A missing peer tool is a failure
# (scripts/setup.sh installs them all).
set -u
SRC=${DINOX_SOURCE_DIR:?DINOX_SOURCE_DIR not set}
BIN=${DINOX_BINARY_DIR:?DINOX_BINARY_DIR not set}
TOOL="$BIN/test_dicom"
PY=/usr/bin/python3

for t in dump2dcm dcmconv dcmcrle dcmcjpls gdcmconv gdcminfo gdcmraw; do
    if ! command -v "$t" >/dev/null 2>&1; then
        echo "FAIL: peer tool '$t' not installed (apt-get install dcmtk libgdcm-tools; scripts/setup.sh does)"
        exit 1
    fi
done
if ! "$PY" -c "import pydicom, numpy" >/dev/null 2>&1; then
    echo "FAIL: $PY cannot import pydicom + numpy (apt-get install python3-pydicom python3-numpy; scripts/setup.sh does)"
    exit 1
fi
if [ ! -x "$TOOL" ]; then
    echo "FAIL: $TOOL not built"
    exit 1
fi
WORK=$(mktemp -d "${TMPDIR:-/tmp}/dinox-dicom-peers.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
"$PY" "$SRC/tests/peers/dicom_peers.py" "$TOOL" "$WORK"
