#!/usr/bin/env bash
# test_synth_e2e.sh - end-to-end check of `dinox synth` against independent tools.
#
#  1. every DICOM file passes dicom3tools `dciodvfy` (CT Image IOD) with no
#     "Error" line;
#  2. pydicom reads pixels + geometry identical to the ground-truth sidecar
#     (hu.npy, slice_z, origin, spacing; crc32 per slice), in both transfer
#     syntaxes (implicit default, --explicit-vr);
#  3. gdcminfo/gdcmraw read the files (raw bytes == stored values);
#  4. XML: xmllint --noout, plus an ElementTree check of names/nesting
#     (ct-data.md §2.1), UIDs and z positions pointing at real slices;
#  5. pylidc-style consensus of the readers' contours (matplotlib Path fill
#     minus contour points, >= 50% of readers) matches the true masks
#     (centroid within 1 voxel, Dice >= 0.8 for nodules with >= 2 readers
#     and >= 20 true voxels; median Dice over all reported);
#  6. same seed -> identical bytes (1 vs 2 threads); other seed -> different;
#  7. tools/realism_report.py runs on the set.
set -euo pipefail
DINOX=${DINOX:?DINOX must point at the dinox binary}
PY=/usr/bin/python3
SRC=${DINOX_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
T=$(mktemp -d "${TMPDIR:-/tmp}/dx_synth.XXXXXX")
trap 'rm -rf "$T"' EXIT
fail=0
pass=0
ok() { echo "ok   $*"; pass=$((pass + 1)); }
bad() { echo "FAIL $*"; fail=$((fail + 1)); }

for tool in dciodvfy gdcminfo gdcmraw xmllint; do
    command -v $tool >/dev/null || { echo "FAIL missing tool $tool (apt-get install dicom3tools libgdcm-tools libxml2-utils)"; exit 1; }
done

# --- generate: implicit (3 patients at 128, threads 2) and explicit (1 at 256)
"$DINOX" synth --help | grep -q -- "--explicit-vr" && ok "help" || bad "help"
"$DINOX" synth --out "$T/a" --patients 3 --seed 11 --size 128 --slices-max 24 --gt-volume --threads 2
"$DINOX" synth --out "$T/b" --patients 3 --seed 11 --size 128 --slices-max 24 --gt-volume --threads 1
"$DINOX" synth --out "$T/c" --patients 3 --seed 12 --size 128 --slices-max 24 --gt-volume --threads 2
"$DINOX" synth --out "$T/e" --patients 2 --first 7 --seed 5 --size 512 --slices-max 24 --gt-volume --explicit-vr
if "$DINOX" synth --out "$T/x" --patients 1 --seed 1 --size 300 2>/dev/null; then bad "size 300 accepted"; else ok "size 300 refused"; fi

# --- 6. determinism
if diff -r -q "$T/a" "$T/b" >/dev/null; then ok "same seed, 1 vs 2 threads: identical trees"; else bad "same seed differs"; fi
if cmp -s "$T/a/ground_truth/LIDC-IDRI-0001/hu.npy" "$T/c/ground_truth/LIDC-IDRI-0001/hu.npy"; then
    bad "different seed gives the same volume"
else ok "different seed differs"; fi

# --- 1. dciodvfy
nerr=0
nfiles=0
while IFS= read -r f; do
    nfiles=$((nfiles + 1))
    out=$(dciodvfy "$f" 2>&1 || true)
    if grep -q "^Error" <<<"$out"; then
        nerr=$((nerr + 1))
        [ $nerr -le 3 ] && { echo "$f"; grep "^Error" <<<"$out" | head -5; }
    fi
    grep -q "^CTImage" <<<"$out" || { nerr=$((nerr + 1)); echo "$f: not recognised as CTImage"; }
done < <(find "$T/a" "$T/e" -name "*.dcm")
[ $nfiles -gt 50 ] && [ $nerr -eq 0 ] && ok "dciodvfy: $nfiles files, no errors" || bad "dciodvfy: $nerr of $nfiles files with errors"

# --- 3. gdcm
f=$(find "$T/e" -name "1-001.dcm" | head -1)
gi=$(gdcminfo "$f")
grep -q "Explicit VR Little Endian" <<<"$gi" && ok "gdcminfo: explicit VR LE" || bad "gdcminfo transfer syntax: $gi"
grep -q "Dimensions: (512,512,1)" <<<"$gi" && ok "gdcminfo: 512x512" || bad "gdcminfo dimensions"
gdcmraw -i "$f" -o "$T/raw.bin"
fa=$(find "$T/a" -name "1-005.dcm" | head -1)
gdcmraw -i "$fa" -o "$T/raw_a.bin"

# --- 2, 4, 5: python (pydicom, ElementTree, matplotlib Path)
py_rc=0
$PY - "$T" "$f" "$fa" <<'EOF' || py_rc=$?
import sys, os, glob, json, re, zlib
import numpy as np, pydicom
import xml.etree.ElementTree as ET
from matplotlib.path import Path

T, f_e, f_a = sys.argv[1:4]
npass = nfail = 0
def check(cond, msg):
    global npass, nfail
    if cond: npass += 1
    else:
        nfail += 1
        print("FAIL", msg)

UID_RE = re.compile(r"^2\.25\.(0|[1-9][0-9]*)$")
NS = "{http://www.nih.gov}"
CHARS = {"subtlety": (1, 5), "internalStructure": (1, 4), "calcification": (1, 6), "sphericity": (1, 5),
         "margin": (1, 5), "lobulation": (1, 5), "spiculation": (1, 5), "texture": (1, 5), "malignancy": (1, 5)}
HEADER = ["Version", "MessageId", "DateRequest", "TimeRequest", "RequestingSite", "ServicingSite",
          "TaskDescription", "CtImageFile", "SeriesInstanceUid", "DateService", "TimeService",
          "ResponseDescription", "StudyInstanceUID"]

def fill(pts, shape):
    """pylidc Contour semantics: pixels whose centres are inside the polygon
    through the chain, minus the chain pixels themselves."""
    pts = np.asarray(pts, float)
    ny, nx = shape
    x0, x1 = int(pts[:, 0].min()), int(pts[:, 0].max())
    y0, y1 = int(pts[:, 1].min()), int(pts[:, 1].max())
    m = np.zeros(shape, bool)
    if len(pts) < 3: return m
    yy, xx = np.mgrid[y0:y1 + 1, x0:x1 + 1]
    inside = Path(pts).contains_points(np.c_[xx.ravel(), yy.ravel()]).reshape(xx.shape)
    m[y0:y1 + 1, x0:x1 + 1] = inside
    for x, y in pts.astype(int): m[y, x] = False
    return m

dices = []
for root, want_ts in ((T + "/a", "1.2.840.10008.1.2"), (T + "/e", "1.2.840.10008.1.2.1")):
    for gtdir in sorted(glob.glob(root + "/ground_truth/LIDC-IDRI-*")):
        truth = json.load(open(gtdir + "/truth.json"))
        hu = np.load(gtdir + "/hu.npy")
        sc = truth["scan"]
        sdir = root + "/" + truth["series_dir"]
        files = sorted(glob.glob(sdir + "/*.dcm"))
        check(len(files) == hu.shape[0], f"{sdir}: {len(files)} files vs {hu.shape[0]} slices")
        ds = [pydicom.dcmread(f) for f in files]
        check(all(d.file_meta.TransferSyntaxUID == want_ts for d in ds), f"{sdir}: transfer syntax")
        check(all(d.preamble == b"\0" * 128 for d in ds), "preamble")
        ds.sort(key=lambda d: float(d.ImagePositionPatient[2]))
        sops = {}
        for k, d in enumerate(ds):
            img = d.pixel_array.astype(np.int32) * int(float(d.RescaleSlope)) + int(float(d.RescaleIntercept))
            check(np.array_equal(img, hu[k].astype(np.int32)), f"{sdir} slice {k}: pixels differ from hu.npy")
            check(zlib.crc32(hu[k].astype("<i2").tobytes()) == sc["slice_hu_crc32"][k], f"slice {k} crc")
            ipp = [float(v) for v in d.ImagePositionPatient]
            check(abs(ipp[0] - sc["origin_xyz"][0]) < 1e-6 and abs(ipp[1] - sc["origin_xyz"][1]) < 1e-6
                  and abs(ipp[2] - sc["slice_z"][k]) < 1e-6, f"slice {k} IPP {ipp}")
            check([float(v) for v in d.ImageOrientationPatient] == [1, 0, 0, 0, 1, 0], "IOP")
            check(abs(float(d.PixelSpacing[0]) - sc["pixel_spacing"]) < 1e-9, "PixelSpacing")
            check(abs(float(d.SliceLocation) - sc["slice_z"][k]) < 1e-6, "SliceLocation")
            check(d.SOPClassUID == "1.2.840.10008.5.1.4.1.1.2" and d.Modality == "CT", "SOP class / modality")
            for u in (d.SOPInstanceUID, d.SeriesInstanceUID, d.StudyInstanceUID, d.FrameOfReferenceUID):
                check(UID_RE.match(u) and len(u) <= 64 and int(u[5:]) < 2**128, f"UID {u}")
            check(d.PatientID == truth["patient_id"] and d.SeriesInstanceUID == truth["series_uid"], "ids")
            check(d.file_meta.MediaStorageSOPInstanceUID == d.SOPInstanceUID, "meta SOP UID")
            check(d.PixelRepresentation == (1 if sc["pixel_signed"] else 0), "PixelRepresentation")
            check(("PixelPaddingValue" in d) == bool(sc["has_padding"]), "padding presence")
            if "PixelPaddingValue" in d:
                check(d.PixelPaddingValue + float(d.RescaleIntercept) == sc["outside_fov_hu"], "padding value")
            check(img[0, 0] == sc["outside_fov_hu"], "corner outside FOV")
            sops[d.SOPInstanceUID] = (k, float(d.ImagePositionPatient[2]))
        check(len(sops) == len(ds), "SOP UIDs unique")
        # --- XML structure
        xmls = glob.glob(sdir + "/*.xml")
        check(len(xmls) == 1, f"{sdir}: one xml")
        rootx = ET.parse(xmls[0]).getroot()
        check(rootx.tag == NS + "LidcReadMessage", "root element")
        hdr = rootx.find(NS + "ResponseHeader")
        check([c.tag[len(NS):] for c in hdr] == HEADER, "ResponseHeader children")
        check(hdr.find(NS + "SeriesInstanceUid").text == truth["series_uid"], "xml series uid")
        check(hdr.find(NS + "StudyInstanceUID").text == truth["study_uid"], "xml study uid")
        sessions = rootx.findall(NS + "readingSession")
        check(len(sessions) == truth["n_readers"] and 1 <= len(sessions) <= 4, "reader count")
        check([c.tag for c in rootx][1:] == [NS + "readingSession"] * len(sessions), "root children")
        shape = hu.shape[1:]
        per_reader = []
        for s in sessions:
            tags = [c.tag[len(NS):] for c in s]
            check(tags[:2] == ["annotationVersion", "servicingRadiologistID"], "session head")
            check(set(tags[2:]) <= {"unblindedReadNodule", "nonNodule"}, f"session children {set(tags)}")
            marks = []
            for n in s.findall(NS + "unblindedReadNodule"):
                kids = [c.tag[len(NS):] for c in n]
                check(kids[0] == "noduleID" and set(kids[1:]) <= {"characteristics", "roi"}, f"nodule children {kids}")
                ch = n.find(NS + "characteristics")
                rois = n.findall(NS + "roi")
                check(len(rois) >= 1, "nodule has roi")
                vol = np.zeros(hu.shape, bool)
                for roi in rois:
                    rk = [c.tag[len(NS):] for c in roi]
                    check(rk[:3] == ["imageZposition", "imageSOP_UID", "inclusion"] and set(rk[3:]) == {"edgeMap"},
                          f"roi children {rk[:4]}")
                    sop = roi.find(NS + "imageSOP_UID").text
                    z = float(roi.find(NS + "imageZposition").text)
                    check(sop in sops and abs(sops[sop][1] - z) < 1e-3, "roi SOP/z points at its slice")
                    check(roi.find(NS + "inclusion").text == "TRUE", "inclusion")
                    pts = [(int(e.find(NS + "xCoord").text), int(e.find(NS + "yCoord").text))
                           for e in roi.findall(NS + "edgeMap")]
                    check(all(0 <= x < shape[1] and 0 <= y < shape[0] for x, y in pts), "edgeMap in image")
                    if ch is not None:
                        check(len(pts) >= 4 and pts[0] == pts[-1], "closed contour")
                        if sop in sops: vol[sops[sop][0]] |= fill(pts, shape)
                    else:
                        check(len(pts) == 1, "small nodule: one point")
                if ch is not None:
                    names = [c.tag[len(NS):] for c in ch]
                    check(sorted(names) == sorted(CHARS), f"characteristics {names}")
                    for c in ch:
                        lo, hi = CHARS[c.tag[len(NS):]]
                        check(lo <= int(c.text) <= hi, f"{c.tag} = {c.text}")
                    marks.append(vol)
            for nn in s.findall(NS + "nonNodule"):
                check([c.tag[len(NS):] for c in nn] == ["nonNoduleID", "imageZposition", "imageSOP_UID", "locus"],
                      "nonNodule children")
                check(nn.find(NS + "imageSOP_UID").text in sops, "nonNodule SOP")
            per_reader.append(marks)
        # --- consensus vs truth (ingest's contract)
        for les in truth["lesions"]:
            if les["class"] != "nodule": continue
            m = np.load(gtdir + "/" + les["mask_file"]).astype(bool)
            full = np.zeros(hu.shape, bool)
            x0, y0, z0 = les["mask_origin_xyz"]
            full[z0:z0 + m.shape[0], y0:y0 + m.shape[1], x0:x0 + m.shape[2]] = m
            check(full.sum() == les["mask_voxels"] and full.sum() > 0, "mask voxels")
            zz, yy, xx = np.nonzero(full)
            c = np.array([xx.mean(), yy.mean(), zz.mean()])
            check(np.allclose(c, les["centroid_voxel_xyz"], atol=1e-6), "centroid")
            # the readers' marks that overlap this nodule
            hits = [v for marks in per_reader for v in marks if (v & full).any()]
            full_marks = [r for r in les["readers"] if r["marked"] and not r["as_small"]]
            check(len(hits) == len(full_marks), f"{les['index']}: {len(hits)} overlapping marks vs {len(full_marks)} readers")
            if len(hits) >= 2 and full.sum() >= 20:
                cons = np.mean(hits, axis=0) >= 0.5
                dice = 2 * (cons & full).sum() / (cons.sum() + full.sum())
                zz, yy, xx = np.nonzero(cons)
                cc = np.array([xx.mean(), yy.mean(), zz.mean()])
                dices.append(dice)
                check(dice >= 0.8, f"{gtdir} lesion {les['index']}: consensus Dice {dice:.3f}")
                check(np.all(np.abs(cc - c) <= 1.0), f"consensus centroid {cc} vs {c}")

# gdcmraw bytes == stored values
for fpath, rawp, root in ((f_e, T + "/raw.bin", T + "/e"), (f_a, T + "/raw_a.bin", T + "/a")):
    d = pydicom.dcmread(fpath)
    raw = np.fromfile(rawp, dtype="<i2" if d.PixelRepresentation else "<u2").reshape(d.Rows, d.Columns)
    check(np.array_equal(raw, d.pixel_array), f"gdcmraw {fpath}")
print(f"consensus Dice: n={len(dices)} median={np.median(dices) if dices else float('nan'):.3f} "
      f"min={min(dices) if dices else float('nan'):.3f}")
print(f"python checks: {npass} passed, {nfail} failed")
sys.exit(1 if nfail or npass < 100 else 0)
EOF
[ $py_rc -eq 0 ] && ok "pydicom/xml/consensus checks" || bad "pydicom/xml/consensus checks"

# --- 4. xmllint
nx=0
for x in $(find "$T/a" "$T/e" -name "*.xml"); do
    xmllint --noout "$x" || { bad "xmllint $x"; continue; }
    nx=$((nx + 1))
done
[ $nx -eq 5 ] && ok "xmllint: $nx files well-formed" || bad "xmllint: $nx of 5"

# --- tools/realism_report.py runs on the set and prints its figures
rr=$($PY "$SRC/tools/realism_report.py" "$T/a" 2>&1) || true
if grep -q "^size-only logistic regression AUC" <<<"$rr" && grep -q "^lung " <<<"$rr"; then
    ok "realism_report.py"
else
    bad "realism_report.py: $rr"
fi

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
