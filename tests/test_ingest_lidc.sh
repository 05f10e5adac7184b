#!/bin/bash
# test_ingest_lidc.sh - end to end: DICOM tree + LIDC XML -> `dinox ingest` ->
# `dinox store list/export/nodules`, checked against independent references:
#  - HU volumes against the generator's formula (numpy, np.load of the export);
#  - label volumes against pylidc's semantics re-implemented with
#    matplotlib/scipy (tests/data/lidc/pylidc_ref.py), on the hand-made
#    fixtures and on random irregular contours with holes;
#  - skip reasons (CXR read, malformed XML, XML of an absent series);
#  - incremental re-run, kill -9 at random moments, corrupt/truncated index.
set -u
D=${DINOX:?DINOX must point at the dinox binary}
SRC=${DINOX_SOURCE_DIR:?}
PY=/usr/bin/python3
L=$SRC/tests/data/lidc
T=$(mktemp -d /tmp/dx_ingest_test.XXXXXX)
trap 'rm -rf "$T"' EXIT
pass=0
fails=0
ok() { pass=$((pass + 1)); }
bad() { echo "FAIL: $*"; fails=$((fails + 1)); }
check() { if eval "$1"; then ok; else bad "$2"; fi; }

SA=1.2.826.0.1.3680043.2.1125.9.3
SB=1.2.826.0.1.3680043.2.1125.9.13
SC=1.2.826.0.1.3680043.2.1125.9.23

# ---- input tree: series A (fixtures, XML split over two files), B (implicit
# VR, no XML), C (random irregular reads); XML for an absent series; CXR; junk
mkdir -p "$T/in/LIDC-IDRI-9001/study/a" "$T/in/LIDC-IDRI-9001/xml" "$T/in/LIDC-IDRI-9002" "$T/in/other"
$PY "$L/gen_ct.py" "$T/in/LIDC-IDRI-9001/study/a" --series $SA --study 1.2.826.0.1.3680043.2.1125.9.2 \
    --patient LIDC-IDRI-9001 --sop-prefix 1.2.826.0.1.3680043.2.1125.9.4 --npy-out "$T/a.npy" || bad "gen A"
$PY "$L/gen_ct.py" "$T/in/LIDC-IDRI-9002" --series $SB --study 1.2.826.0.1.3680043.2.1125.9.12 \
    --patient LIDC-IDRI-9002 --nx 40 --ny 48 --nz 5 --z0 30 --dz 1.25 --seed 2 --implicit --npy-out "$T/b.npy" ||
    bad "gen B"
$PY "$L/gen_ct.py" "$T/in/LIDC-IDRI-9003" --series $SC --study 1.9 --patient LIDC-IDRI-9003 --nx 96 --ny 96 \
    --nz 12 --seed 3 --sop-prefix $SC.4 --npy-out "$T/c.npy" || bad "gen C"
$PY "$L/make_blob_xml.py" "$T/in/LIDC-IDRI-9003/reads.xml" --series $SC --sop-prefix $SC.4 --seed 5 \
    --nodules 3 || bad "gen C xml"
cp "$L/series_a_1.xml" "$T/in/LIDC-IDRI-9001/study/a/069.xml"
cp "$L/series_a_2.xml" "$T/in/LIDC-IDRI-9001/xml/070.xml"
cp "$L/other_series.xml" "$L/cxr_read.xml" "$L/broken.xml" "$T/in/other/"
echo "not dicom" >"$T/in/other/readme.txt"

# ---- first ingest
$D ingest "$T/in" --out "$T/store" >"$T/out1" 2>"$T/err1"
rc=$?
check "[ $rc -eq 0 ]" "ingest rc $rc: $(cat "$T/err1")"
check "grep -q 'added 3 series' '$T/err1'" "3 series added: $(cat "$T/err1")"
check "grep -q 'IdriReadMessage' '$T/err1'" "CXR read reported as skipped"
check "grep -q 'malformed LIDC XML' '$T/err1'" "broken XML reported"
check "grep -q 'its series is not in the input' '$T/err1'" "XML of an absent series reported"
check "grep -q 'duplicate reading sessions dropped' '$T/err1'" "duplicate session across two XML files reported"
check "grep -q 'ETA' '$T/err1'" "progress with ETA on stderr"
check "grep -q 'readme.txt' '$T/err1'" "non-DICOM file listed with its reason"

# ---- list
$D store list "$T/store" >"$T/list" 2>&1
rc=$?
check "[ $rc -eq 0 ] && [ \$(wc -l <'$T/list') -eq 5 ] && grep -q '^total: 3 series' '$T/list'" "store list: $(cat "$T/list")"
check "grep -E -q '^LIDC-IDRI-9001 +$SA +64x64x8 +0.700x0.700x2.500 +8 +2\$' '$T/list'" "list line A: $(cat "$T/list")"
check "grep -E -q '^LIDC-IDRI-9002 +$SB +40x48x5 +0.700x0.700x1.250 +5 +0\$' '$T/list'" "list line B"

# ---- export HU + masks and compare with numpy references
for s in A:$SA B:$SB C:$SC; do
    n=${s%%:*}
    u=${s#*:}
    $D store export "$T/store" --series "$u" --out "$T/exp_$n.npy" || bad "export $n"
done
$D store export "$T/store" --series $SA --out "$T/mask_A.npy" --mask || bad "export mask A"
$D store export "$T/store" --series $SC --out "$T/mask_C.npy" --mask || bad "export mask C"
$D store export "$T/store" --series $SB --out "$T/mask_B.npy" --mask 2>/dev/null && bad "mask export of a series without XML should fail"
$D store export "$T/store" --series 9.9.9 --out "$T/x.npy" 2>/dev/null && bad "export of an unknown series should fail"
$PY "$L/pylidc_ref.py" "$T/ref_A" --sop-prefix 1.2.826.0.1.3680043.2.1125.9.4 \
    "$T/in/LIDC-IDRI-9001/study/a/069.xml" "$T/in/LIDC-IDRI-9001/xml/070.xml" || bad "reference A"
$PY "$L/pylidc_ref.py" "$T/ref_C" --nx 96 --ny 96 --nz 12 --sop-prefix $SC.4 "$T/in/LIDC-IDRI-9003/reads.xml" ||
    bad "reference C"
$D store nodules "$T/store" --out "$T/nodules.csv" || bad "store nodules"
cmp -s "$T/nodules.csv" "$T/store/nodules.csv" || bad "store nodules == STORE/nodules.csv"

$PY - "$T" <<'EOF'
import csv, json, sys
import numpy as np
t = sys.argv[1]
fails = 0
def check(c, msg):
    global fails
    if not c:
        print("FAIL:", msg); fails += 1
for n, ref in [("A", "a"), ("B", "b"), ("C", "c")]:
    got, want = np.load("%s/exp_%s.npy" % (t, n)), np.load("%s/%s.npy" % (t, ref))
    check(got.dtype == np.int16 and got.shape == want.shape, "%s dtype/shape %s %s" % (n, got.dtype, got.shape))
    check(np.array_equal(got, want), "%s HU differ in %d voxels" % (n, int((got != want).sum())))
js = json.load(open(t + "/exp_A.json"))
check(js["spacing"] == [2.5, 0.7, 0.7], "A spacing (z,y,x) %s" % js["spacing"])
check(js["origin"] == [-100, -120, -110], "A origin %s" % js["origin"])
check(js["direction"] == [1, 0, 0, 0, 1, 0, 0, 0, 1], "A direction")
check(js["shape"] == [8, 64, 64] and js["patient_id"] == "LIDC-IDRI-9001", "A shape/patient")
jb = json.load(open(t + "/exp_B.json"))
check(jb["spacing"] == [1.25, 0.7, 0.7] and jb["origin"][2] == 30, "B geometry %s" % jb)
rows = list(csv.DictReader(open(t + "/nodules.csv")))
for n in "AC":
    got, want = np.load("%s/mask_%s.npy" % (t, n)), np.load("%s/ref_%s.npy" % (t, n))
    check(got.dtype == np.uint8 and got.shape == want.shape, "mask %s dtype/shape" % n)
    check(np.array_equal(got, want), "mask %s differs from the pylidc reference in %d voxels" % (n, int((got != want).sum())))
    check(got.max() >= 2, "mask %s has nodules" % n)
    ref = json.load(open("%s/ref_%s.json" % (t, n)))
    uid = {"A": "1.2.826.0.1.3680043.2.1125.9.3", "C": "1.2.826.0.1.3680043.2.1125.9.23"}[n]
    nod = [r for r in rows if r["series_uid"] == uid and r["kind"] == "nodule"]
    check(len(nod) == len(ref), "%s: %d nodule rows, reference %d" % (n, len(nod), len(ref)))
    for r, w in zip(nod, ref):
        check(int(r["label"]) == w["label"] and int(r["n_readers"]) == w["n_readers"], "%s label/readers %s %s" % (n, r, w))
        check(float(r["malignancy"]) == w["malignancy"], "%s malignancy %s vs %s" % (n, r["malignancy"], w["malignancy"]))
        check(int(r["n_voxels"]) == w["n_voxels"], "%s voxels" % n)
        check(all(abs(float(r[k]) - c) < 2e-3 for k, c in zip("xyz", w["centroid"])), "%s centroid %s %s" % (n, r, w))
        check(abs(float(r["z_mm"]) - (-110 + 2.5 * w["centroid"][2])) < 2e-3, "%s centroid z mm" % n)
kinds = [r["kind"] for r in rows if r["series_uid"] == "1.2.826.0.1.3680043.2.1125.9.3"]
check(kinds == ["nodule", "nodule", "small", "small", "nonnodule"], "A row kinds %s" % kinds)
sys.exit(1 if fails else 0)
EOF
rc=$?
check "[ $rc -eq 0 ]" "numpy / pylidc reference comparisons"

# ---- incremental: nothing to do, index untouched
sum1=$(md5sum <"$T/store/index.dxs")
$D ingest "$T/in" --out "$T/store" >/dev/null 2>"$T/err2"
rc=$?
check "[ $rc -eq 0 ] && grep -q '3 already stored' '$T/err2' && grep -q '0 to add' '$T/err2'" "re-run: $(cat "$T/err2")"
check "[ '$sum1' = \"\$(md5sum <'$T/store/index.dxs')\" ]" "index unchanged by a no-op re-run"
# a new series appears: only it is added
$PY "$L/gen_ct.py" "$T/in/LIDC-IDRI-9004" --series 1.2.3.4.5 --study 1.2.3.4 --patient LIDC-IDRI-9004 --nx 64 \
    --ny 64 --nz 8 --seed 4 || bad "gen D"
$D ingest "$T/in" --out "$T/store" --no-progress >/dev/null 2>"$T/err3"
check "grep -q 'added 1 series' '$T/err3' && grep -q 'store now 4 series' '$T/err3'" "incremental add: $(cat "$T/err3")"
# its reads arrive later: the series is re-ingested with its mask, nothing else
$PY "$L/make_blob_xml.py" "$T/in/LIDC-IDRI-9004/late.xml" --series 1.2.3.4.5 --sop-prefix 1.2.3.4.5.4 --nx 64 \
    --ny 64 --nz 8 --seed 9 --nodules 2 || bad "gen D xml"
$D ingest "$T/in" --out "$T/store" --no-progress >/dev/null 2>"$T/err3"
check "grep -q 'added 1 series' '$T/err3' && grep -q 'store now 4 series' '$T/err3'" "late XML re-ingest: $(cat "$T/err3")"
$D store export "$T/store" --series 1.2.3.4.5 --out "$T/mask_D.npy" --mask || bad "mask of late-XML series"

# a series with a missing slice is stored and flagged
$PY "$L/gen_ct.py" "$T/in/LIDC-IDRI-9005" --series 1.2.3.4.6 --study 1.2.3.4 --patient LIDC-IDRI-9005 --nx 16 \
    --ny 16 --nz 8 --seed 5 || bad "gen E"
rm -f "$(grep -l -a '1\.2\.3\.4\.6\.4\.43' "$T/in/LIDC-IDRI-9005/"*.dcm)"
$D ingest "$T/in" --out "$T/store" --no-progress >/dev/null 2>"$T/err4"
$D store export "$T/store" --series 1.2.3.4.6 --out "$T/gap.npy" || bad "export gap series"
check "grep -q '\"gaps\"' '$T/gap.json' && grep -q 'gap' '$T/err4'" "gap flagged: $(cat "$T/err4") $(cat "$T/gap.json")"
check "[ \"\$($PY -c 'import numpy; print(numpy.load(\"$T/gap.npy\").shape)')\" = '(7, 16, 16)' ]" "gap series has 7 slices"

# ---- kill -9 at random moments: the store must open after every kill, and
# the finished store must equal one made in a single run
mkdir -p "$T/big"
for i in 1 2 3 4 5 6; do
    $PY "$L/gen_ct.py" "$T/big/s$i" --series 1.2.840.99.$i --study 1.2.840.99 --patient P$i --nx 256 --ny 256 \
        --nz 32 --seed $i >/dev/null || bad "gen big $i"
done
cp "$T/in/LIDC-IDRI-9001/study/a/069.xml" "$T/big/"
$D ingest "$T/big" --out "$T/clean" --no-progress >/dev/null 2>&1 || bad "clean ingest"
kills=0
partial=0 # kills that left a store holding some but not all series
for attempt in $(seq 1 25); do
    $D ingest "$T/big" --out "$T/killed" --no-progress >/dev/null 2>&1 &
    pid=$!
    if [ $attempt -eq 1 ]; then
        # first time: kill right after the first series is committed
        for _ in $(seq 1 2000); do
            [ -f "$T/killed/index.dxs" ] && break
            sleep 0.005
        done
    else
        sleep "0.$((RANDOM % 3))$((RANDOM % 10))"
    fi
    kill -9 $pid 2>/dev/null && kills=$((kills + 1))
    wait $pid 2>/dev/null
    if [ -f "$T/killed/index.dxs" ]; then
        $D store list "$T/killed" >/dev/null 2>"$T/kerr" || bad "store unreadable after kill -9: $(cat "$T/kerr")"
    fi
    n=$($D store list "$T/killed" 2>/dev/null | tail -n +2 | grep -vc '^total:')
    [ "$n" -ge 1 ] && [ "$n" -lt 6 ] && partial=$((partial + 1))
    # On a loaded machine the whole ingest can finish before the kill lands:
    # start over until one kill has landed between series commits.
    if [ "$n" -ge 6 ] && [ $partial = 0 ]; then rm -rf "$T/killed"; continue; fi
    [ "$n" -ge 6 ] && break
done
$D ingest "$T/big" --out "$T/killed" --no-progress >/dev/null 2>"$T/kerr" || bad "final ingest after kills: $(cat "$T/kerr")"
echo "ingest runs killed with -9: $kills, $partial of them between series commits"
check "[ $kills -ge 1 ] && [ $partial -ge 1 ]" "at least one ingest was killed mid-way ($kills kills, $partial partial)"
check "[ -z \"\$(ls '$T/killed/series' | grep tmp)\" ]" "no temp debris after the final run"
check "diff <($D store list '$T/clean') <($D store list '$T/killed') >/dev/null" "killed+resumed store lists like a clean one"
same=1
for f in "$T/clean/series/"*; do cmp -s "$f" "$T/killed/series/$(basename "$f")" || same=0; done
check "[ $same -eq 1 ]" "killed+resumed data files identical to a clean run"
check "cmp -s '$T/clean/nodules.csv' '$T/killed/nodules.csv'" "nodules.csv identical"

# ---- corrupt / truncated index: clear errors, ingest refuses to touch it
cp -r "$T/store" "$T/trunc"
truncate -s -10 "$T/trunc/index.dxs"
$D store list "$T/trunc" >/dev/null 2>"$T/e"
rc=$?
check "[ $rc -ne 0 ] && grep -q 'truncated' '$T/e'" "truncated index message: $(cat "$T/e")"
$D ingest "$T/in" --out "$T/trunc" >/dev/null 2>"$T/e"
rc=$?
check "[ $rc -ne 0 ] && grep -q 'refusing' '$T/e'" "ingest refuses a bad index: $(cat "$T/e")"
cp -r "$T/store" "$T/flip"
printf '\x55' | dd of="$T/flip/index.dxs" bs=1 seek=200 conv=notrunc 2>/dev/null
$D store list "$T/flip" >/dev/null 2>"$T/e"
rc=$?
check "[ $rc -ne 0 ] && grep -q 'CRC' '$T/e'" "corrupt index message: $(cat "$T/e")"
$D store list "$T/nowhere" >/dev/null 2>"$T/e"
rc=$?
check "[ $rc -ne 0 ] && grep -q 'no store index' '$T/e'" "missing store: $(cat "$T/e")"

# ---- help and usage
$D ingest --help | grep -q 'usage: dinox ingest' || bad "ingest --help"
$D store --help | grep -q 'usage: dinox store' || bad "store --help"
$D ingest >/dev/null 2>&1
rc=$?
check "[ $rc -eq 2 ]" "ingest without arguments is a usage error"

echo "$pass passed, $fails failed"
[ $fails -eq 0 ]
