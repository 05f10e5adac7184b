#!/usr/bin/env bash
# test_store_nifti.sh - `dinox store export --out V.nii[.gz]` (issue 12 point 4):
# nibabel (an independent reader) sees the same voxels as the .npy export,
# sform and qform both coded scanner, equal to the sidecar's LPS geometry
# turned into RAS; masks are uint8; dinox ingest reads the file back to the
# same volume and geometry; an unknown extension is refused, not written as
# .npy under that name; `store list` has totals, --csv and --json; dcm2niix's
# conversion of the same DICOM series puts the same HU at the same world positions.
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
"$DINOX" synth --out synth --patients 2 --size 128 --seed 9 --slices-max 32 >/dev/null 2>&1
"$DINOX" ingest synth --out store >/dev/null 2>&1 || { echo "ingest failed"; exit 1; }
uid=$("$DINOX" store list store | awk 'NR==2{print $2}')
"$DINOX" store export store --series "$uid" --out v.npy || bad "npy export"
"$DINOX" store export store --series "$uid" --out m.npy --mask || bad "npy mask export"
for f in v.nii v.nii.gz; do "$DINOX" store export store --series "$uid" --out $f || bad "$f export"; done
"$DINOX" store export store --series "$uid" --out m.nii.gz --mask || bad "mask export"
"$DINOX" store export store --series "$uid" --out v.nrrd 2>nrrd.txt; rc=$?
[ $rc -eq 2 ] && [ ! -e v.nrrd ] && grep -q ".npy, .nii or .nii.gz" nrrd.txt || bad "an unknown extension: exit $rc"
ls ./*.tmp.* >/dev/null 2>&1 && bad "a temporary file was left behind"
$PY - <<'PYEOF' || fail=1
import json, numpy as np, nibabel as nib
ok = True
def bad(m):
    global ok
    print("FAIL:", m); ok = False
v = np.load("v.npy"); m = np.load("m.npy"); g = json.load(open("v.json"))
sz, sy, sx = g["spacing"]; d = np.array(g["direction"], float).reshape(3, 3)  # rows: row dir, col dir, normal
lps = np.eye(4)
for c, s in enumerate((sx, sy, sz)): lps[:3, c] = d[c] * s
lps[:3, 3] = g["origin"]
ras = np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps
for f, ref, dt in (("v.nii", v, np.int16), ("v.nii.gz", v, np.int16), ("m.nii.gz", m, np.uint8)):
    im = nib.load(f)
    data = np.asarray(im.dataobj)
    if data.dtype != dt: bad(f"{f}: dtype {data.dtype}")
    if not np.array_equal(data.transpose(2, 1, 0), ref): bad(f"{f}: voxels differ from the .npy export")
    sf, sc = im.header.get_sform(coded=True); qf, qc = im.header.get_qform(coded=True)
    if sc != 1 or qc != 1: bad(f"{f}: sform/qform codes {sc}/{qc}, want 1 (scanner)")
    if not np.allclose(sf, ras, atol=1e-3): bad(f"{f}: sform\n{sf}\n!= RAS of the sidecar\n{ras}")
    if not np.allclose(qf, ras, atol=1e-3): bad(f"{f}: qform differs from the affine")
    if im.header.get_xyzt_units()[0] != "mm": bad(f"{f}: units {im.header.get_xyzt_units()}")
print("nibabel: voxels, sform, qform and units as expected;", nib.aff2axcodes(ras), "axes")
raise SystemExit(0 if ok else 1)
PYEOF
# dcm2niix (an independent DICOM -> NIfTI converter) on the same DICOM series: the same voxels at the
# same world positions, same HU once its raw padding (-3024) and out-of-range values get dinox's clamp to [-1024, 3071]
mkdir d2n
dcm2niix -z y -f %j -o d2n synth >d2n.log 2>&1 || bad "dcm2niix: $(tail -2 d2n.log)"
$PY - "$uid" <<'PYEOF' || fail=1
import sys, numpy as np, nibabel as nib
uid = sys.argv[1]
a = nib.load("v.nii.gz"); b = nib.load("d2n/%s.nii.gz" % uid)
ca, cb = nib.as_closest_canonical(a), nib.as_closest_canonical(b)
ok = True
# dcm2niix flips the row axis when it stores (LAS voxel order; dinox keeps the DICOM order, LPS);
# both are right if the voxels land at the same world positions: compare in canonical RAS order
if ca.shape != cb.shape or not np.allclose(ca.affine, cb.affine, atol=1e-3):
    print("FAIL: affine\n", ca.affine, "\nvs dcm2niix\n", cb.affine); ok = False
else:
    da, db = ca.get_fdata(), np.clip(cb.get_fdata(), -1024, 3071)
    d = np.abs(da - db).max()
    if d != 0:
        print("FAIL: HU differ from dcm2niix's by up to", d); ok = False
if ok:
    print("ok   dcm2niix agrees in world space (voxel axes dinox %s, dcm2niix %s): affine to 1e-3 mm, HU identical "
          "after the clamp (%d of %d voxels padding)" % ("".join(nib.aff2axcodes(a.affine)), "".join(nib.aff2axcodes(b.affine)),
                                                           int((b.get_fdata() < -1024).sum()), b.get_fdata().size))
raise SystemExit(0 if ok else 1)
PYEOF

# dinox reads its own NIfTI back: same HU and geometry
mkdir nii && cp v.nii.gz nii/
"$DINOX" ingest nii --out store2 >/dev/null 2>&1 || bad "ingest of the exported NIfTI"
uid2=$("$DINOX" store list store2 | awk 'NR==2{print $2}')
"$DINOX" store export store2 --series "$uid2" --out back.npy || bad "export of the re-ingested NIfTI"
$PY - <<'PYEOF' || fail=1
import json, numpy as np
a, b = np.load("v.npy"), np.load("back.npy")
ga, gb = json.load(open("v.json")), json.load(open("back.json"))
ok = np.array_equal(a, b)
for k in ("spacing", "origin", "direction"):
    if not np.allclose(ga[k], gb[k], atol=1e-3): print("FAIL: round trip", k, ga[k], gb[k]); ok = False
if not ok or not np.array_equal(a, b): print("FAIL: round trip voxels differ"); raise SystemExit(1)
print("round trip through dinox ingest: voxels and geometry equal")
PYEOF
# store list: a total line, and the same table as CSV and JSON (issue 12 point 8)
"$DINOX" store list store >list.txt || bad "store list"
"$DINOX" store list store --csv >list.csv || bad "store list --csv"
"$DINOX" store list store --json >list.json || bad "store list --json"
$PY - <<'PYEOF' || fail=1
import csv, json
txt = open("list.txt").read().splitlines()
rows = list(csv.DictReader(open("list.csv")))
j = json.load(open("list.json"))
tot = [l for l in txt if l.startswith("total: ")]
ok = len(tot) == 1 and len(rows) == len(j["series"]) == len(txt) - 2 == j["total"]["series"]
ok &= f"total: {len(rows)} series" in tot[0] and sum(int(r["nodules"]) for r in rows) == j["total"]["nodules"]
ok &= all(r["series_uid"] == s["series_uid"] for r, s in zip(rows, j["series"]))
print("store list text / CSV / JSON agree:", ok)
raise SystemExit(0 if ok else 1)
PYEOF
[ $fail -eq 0 ] && echo "test_store_nifti: all checks passed"
exit $fail
