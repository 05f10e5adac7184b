#!/usr/bin/env bash
# test_ingest_bad_nifti.sh - NIfTI files whose voxel data is not all there are
# refused, never stored as a zero-filled volume (issue 13 point 5):
# a truncated .nii and .nii.gz, a header announcing more voxels than the file
# holds (plain and gzip), vox_offset = 1e12, and vox_offset past the end of a
# small file. Each is ingested alone: ingest must exit non-zero, name the file
# and the reason, and store nothing. A well-formed file (plain and gzip) next to
# them is the control: it is stored.
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

"$PY" - <<'EOF' || { echo "FAIL writing the NIfTI files"; exit 1; }
import gzip, os, struct
import numpy as np

def header(nx, ny, nz, vox_offset=352.0, dtype=4, bitpix=16):
    """NIfTI-1 single-file header (348 bytes, little endian) + 4-byte extension flag."""
    h = bytearray(352)
    struct.pack_into("<i", h, 0, 348)
    struct.pack_into("<8h", h, 40, 3, nx, ny, nz, 1, 1, 1, 1)
    struct.pack_into("<hh", h, 70, dtype, bitpix)
    struct.pack_into("<4f", h, 76, 1.0, 0.8, 0.8, 2.5)   # pixdim (qfac, x, y, z)
    struct.pack_into("<f", h, 108, vox_offset)
    struct.pack_into("<hh", h, 252, 0, 1)                # sform only
    for r, row in enumerate([[-0.8, 0, 0, 90.0], [0, -0.8, 0, 120.0], [0, 0, 2.5, -300.0]]):
        struct.pack_into("<4f", h, 280 + 16 * r, *row)
    h[344:348] = b"n+1\0"
    return bytes(h)

rng = np.random.default_rng(5)
vol = rng.integers(-1000, 1500, size=(8, 16, 16)).astype("<i2")   # z, y, x
full = header(16, 16, 8) + vol.tobytes()

def put(name, body, gz=False):
    os.makedirs(name, exist_ok=True)
    path = os.path.join(name, name + (".nii.gz" if gz else ".nii"))
    if gz:
        with gzip.open(path, "wb") as f:
            f.write(body)
    else:
        open(path, "wb").write(body)
    return path

put("good", full)
put("goodgz", full, gz=True)
put("truncated", full[: 352 + vol.nbytes // 2])
p = put("truncatedgz", full, gz=True)
z = open(p, "rb").read()
open(p, "wb").write(z[: len(z) // 2])                     # cut in the middle of the deflate stream
put("bigheader", header(64, 64, 64) + vol.tobytes())       # 64^3 announced, 16x16x8 present
put("bigheadergz", header(64, 64, 64) + vol.tobytes(), gz=True)
put("farvox", header(16, 16, 8, vox_offset=1e12) + vol.tobytes())
put("farvoxgz", header(16, 16, 8, vox_offset=1e12) + vol.tobytes(), gz=True)
put("pastend", header(16, 16, 8, vox_offset=4096.0) + vol.tobytes())
EOF

stored() { "$DINOX" store list "$1" 2>/dev/null | tail -n +2 | grep -vc '^total:'; }

for good in good goodgz; do
    "$DINOX" ingest "$good" --out "store_$good" --no-progress >/dev/null 2>"err_$good.log"
    rc=$?
    [ "$rc" = 0 ] && [ "$(stored "store_$good")" = 1 ] && ok "$good: stored (control)" ||
        bad "$good: exit $rc, $(stored "store_$good") series stored: $(tail -2 "err_$good.log")"
done
for b in truncated truncatedgz bigheader bigheadergz farvox farvoxgz pastend; do
    "$DINOX" ingest "$b" --out "store_$b" --no-progress >/dev/null 2>"err_$b.log"
    rc=$?
    n=$(stored "store_$b")
    if [ "$rc" != 0 ] && [ "$n" = 0 ]; then ok "$b: refused (exit $rc), nothing stored"
    else bad "$b: exit $rc, $n series stored"; fi
    # the reason follows the file name ("not stored: DIR/b.nii: ... truncated ...")
    why="not stored: .*$b\.nii(\.gz)?: .*(truncated|vox_offset)"
    if grep -Eq "$why" "err_$b.log"; then
        ok "$b: $(grep -E "$why" "err_$b.log" | head -1 | sed 's/.*not stored: //' | cut -c1-160)"
    else
        bad "$b: no error naming the file and the reason: $(grep -i "not stored" "err_$b.log" | head -1)"
    fi
done

[ "$fails" = 0 ] && echo "all bad-NIfTI checks passed" || { echo "$fails check(s) failed"; exit 1; }
