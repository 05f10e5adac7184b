#!/usr/bin/env bash
# test_ingest_uid_clash.sh - a SeriesInstanceUID shared by two patients (an
# anonymiser that reuses UIDs, a copy relabelled by hand) keeps both series
# (issue 13 point 8): ingest reports the clash on stderr, naming both
# PatientIDs, and stores the second series under a key that cannot collide;
# re-running finds both stored ("already stored"), and the same patient +
# series ingested again is still "already stored".
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
"$DINOX" synth --out in --patients 2 --size 128 --slices-max 6 --seed 8 >/dev/null 2>&1 || { echo "FAIL synth"; exit 1; }
rm -rf in/ground_truth
# A copy of patient 1's slices relabelled as patient 9: same StudyInstanceUID,
# SeriesInstanceUID and pixels, another PatientID (same length: no DICOM
# length field changes).
src=$(dirname "$(find in/LIDC-IDRI-0001 -name '1-001.dcm')")
mkdir -p in/LIDC-IDRI-0009/copy
"$PY" - "$src" in/LIDC-IDRI-0009/copy <<'EOF' || { echo "FAIL relabelling"; exit 1; }
import glob, os, sys
src, dst = sys.argv[1], sys.argv[2]
for p in sorted(glob.glob(os.path.join(src, "*.dcm"))):
    b = open(p, "rb").read()
    assert b.count(b"LIDC-IDRI-0001") >= 1
    open(os.path.join(dst, os.path.basename(p)), "wb").write(b.replace(b"LIDC-IDRI-0001", b"LIDC-IDRI-0009"))
EOF
uid=$("$DINOX" ingest in/LIDC-IDRI-0001 --out probe --no-progress >/dev/null 2>&1 &&
      "$DINOX" store list probe | awk 'NR == 2 {print $2}')
[ -n "$uid" ] || { echo "FAIL no series UID for patient 1"; exit 1; }

"$DINOX" ingest in --out store --no-progress >/dev/null 2>err.log
rc=$?
[ "$rc" = 0 ] && ok "ingest exit 0" || bad "ingest exit $rc: $(tail -3 err.log)"
grep -q "added 3 series" err.log && ok "3 series added" || bad "not 3 added: $(grep 'added' err.log)"
clash=$(grep -i "$uid" err.log | grep "LIDC-IDRI-0001" | grep "LIDC-IDRI-0009")
[ -n "$clash" ] && ok "clash reported: $(cut -c1-200 <<<"$clash")" ||
    bad "no stderr line naming $uid and both patients"
"$DINOX" store list store >list.txt 2>&1
for p in LIDC-IDRI-0001 LIDC-IDRI-0002 LIDC-IDRI-0009; do
    [ "$(grep -c "^$p " list.txt)" = 1 ] && ok "$p stored once" || bad "$p stored $(grep -c "^$p " list.txt) times"
done
[ "$(awk 'NR > 1 && $1 == "LIDC-IDRI-0001" {print $2}' list.txt)" = "$uid" ] &&
    ok "the first patient keeps the plain UID" || bad "LIDC-IDRI-0001 not stored under $uid"
key9=$(awk 'NR > 1 && $1 == "LIDC-IDRI-0009" {print $2}' list.txt)
[ -n "$key9" ] && [ "$key9" != "$uid" ] && ok "the second is keyed apart: $key9" || bad "LIDC-IDRI-0009 key '$key9'"
# both volumes are readable and hold the same (copied) pixels
if [ -n "$key9" ] && "$DINOX" store export store --series "$uid" --out a.npy >/dev/null 2>&1 &&
   "$DINOX" store export store --series "$key9" --out b.npy >/dev/null 2>&1 && cmp -s a.npy b.npy; then
    ok "both volumes export, identical pixels"
else
    bad "exporting $uid / $key9"
fi

# Re-running: everything already stored, nothing added, no clash re-stored.
"$DINOX" ingest in --out store --no-progress >/dev/null 2>err2.log
rc=$?
[ "$rc" = 0 ] && grep -q "added 0 series" err2.log && grep -q "3 already stored" err2.log &&
    ok "re-run: 3 already stored" || bad "re-run exit $rc: $(grep added err2.log)"
# The same patient + series again, from another folder: already stored.
"$DINOX" ingest in/LIDC-IDRI-0009 --out store --no-progress >/dev/null 2>err3.log
rc=$?
[ "$rc" = 0 ] && grep -q "1 already stored" err3.log && ok "patient 9 alone: 1 already stored" ||
    bad "patient 9 alone: exit $rc: $(grep added err3.log)"
"$DINOX" ingest in/LIDC-IDRI-0001 --out store --no-progress >/dev/null 2>err4.log
rc=$?
[ "$rc" = 0 ] && grep -q "1 already stored" err4.log && ok "patient 1 alone: 1 already stored" ||
    bad "patient 1 alone: exit $rc: $(grep added err4.log)"
[ "$("$DINOX" store list store | tail -n +2 | grep -vc '^total:')" = 3 ] && ok "store still 3 series" || bad "store size changed"

[ "$fails" = 0 ] && echo "all UID-clash checks passed" || { echo "$fails check(s) failed"; exit 1; }
