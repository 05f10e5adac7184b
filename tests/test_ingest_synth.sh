#!/bin/bash
# test_ingest_synth.sh - `dinox synth` tree -> `dinox ingest` -> store, checked
# against the synthesiser's ground truth (which ingest never reads):
#  - every stored HU volume equals truth hu.npy under ingest's documented
#    policy (padding -> -1024, clamp to [-1024, 3071]);
#  - one stored nodule per true nodule marked (>= 3 mm class) by >= 1 reader,
#    at the true centroid (consensus of noisy readers: within 1 voxel), with
#    n_readers = the readers who outlined it and malignancy = their median;
#  - consensus labels overlap the true masks (Dice >= 0.8 where >= 2 readers).
set -u
D=${DINOX:?DINOX must point at the dinox binary}
PY=/usr/bin/python3
T=$(mktemp -d /tmp/dx_ingest_synth.XXXXXX)
trap 'rm -rf "$T"' EXIT
$D synth --out "$T/tree" --patients 5 --seed 11 --size 128 --gt-volume >/dev/null 2>"$T/synth.err" ||
    { echo "FAIL: dinox synth: $(tail -3 "$T/synth.err")"; exit 1; }
$D ingest "$T/tree" --out "$T/store" --no-progress 2>"$T/ingest.err" ||
    { echo "FAIL: ingest: $(cat "$T/ingest.err")"; exit 1; }
$PY - "$D" "$T" <<'EOF'
import csv, glob, json, subprocess, sys
import numpy as np
D, T = sys.argv[1], sys.argv[2]
npass = fails = 0
dices = []
def check(c, msg):
    global npass, fails
    if c: npass += 1
    else: print("FAIL:", msg); fails += 1
rows = list(csv.DictReader(open(T + "/store/nodules.csv")))
listing = subprocess.run([D, "store", "list", T + "/store"], capture_output=True, text=True).stdout
truths = sorted(glob.glob(T + "/tree/ground_truth/LIDC-*/truth.json"))
check(len(truths) == 5 and len(listing.splitlines()) == 7 and "total: 5 series" in listing, "5 series stored")
for tj in truths:
    t = json.load(open(tj))
    uid, pid = t["series_uid"], t["patient_id"]
    check(pid in listing and uid in listing, pid + " listed")
    subprocess.run([D, "store", "export", T + "/store", "--series", uid, "--out", T + "/v.npy"], check=True)
    subprocess.run([D, "store", "export", T + "/store", "--series", uid, "--out", T + "/m.npy", "--mask"], check=True)
    got, want = np.load(T + "/v.npy"), np.load(tj.replace("truth.json", "hu.npy")).astype(np.int32)
    want = np.clip(want, -1024, 3071)   # padding (-2000/-3024 HU) -> -1024, clamp
    check(got.shape == want.shape and np.array_equal(got, want),
          "%s HU: %s voxels differ" % (pid, (got != want).sum() if got.shape == want.shape else "shape"))
    meta = json.load(open(T + "/v.json"))
    check(np.allclose(meta["origin"], t["scan"]["origin_xyz"], atol=1e-3), "%s origin" % pid)
    check(abs(meta["spacing"][1] - t["scan"]["pixel_spacing"]) < 1e-5 and
          abs(meta["spacing"][0] - t["scan"]["slice_spacing"]) < 1e-3, "%s spacing" % pid)
    labels = np.load(T + "/m.npy")
    ours = [r for r in rows if r["series_uid"] == uid and r["kind"] == "nodule"]
    true = [l for l in t["lesions"] if l["class"] == "nodule"
            and any(r["marked"] and not r["as_small"] for r in l["readers"])]
    check(len(ours) == len(true), "%s: %d stored nodules, %d true" % (pid, len(ours), len(true)))
    used = set()
    for l in true:
        c = np.array(l["centroid_voxel_xyz"])
        full = [r for r in l["readers"] if r["marked"] and not r["as_small"]]
        d = [np.abs(np.array([float(o[k]) for k in "xyz"]) - c).max() for o in ours]
        j = int(np.argmin(d)) if d else -1
        if j < 0:
            continue
        o = ours[j]
        used.add(j)
        check(d[j] <= 1.0, "%s lesion %d: centroid off by %.2f voxels" % (pid, l["index"], d[j]))
        check(int(o["n_readers"]) == len(full), "%s lesion %d: %s readers, truth %d" % (pid, l["index"], o["n_readers"], len(full)))
        mal = float(np.median([r["characteristics"][8] for r in full]))
        check(float(o["malignancy"]) == mal, "%s lesion %d: malignancy %s vs %s" % (pid, l["index"], o["malignancy"], mal))
        if len(full) >= 2 and l["mask_voxels"] >= 20:
            m = np.load(tj.replace("truth.json", l["mask_file"])).astype(bool)
            tm = np.zeros(labels.shape, bool)
            x0, y0, z0 = l["mask_origin_xyz"]
            tm[z0:z0 + m.shape[0], y0:y0 + m.shape[1], x0:x0 + m.shape[2]] = m
            cm = labels == int(o["label"])
            dice = 2 * (cm & tm).sum() / max(1, cm.sum() + tm.sum())
            dices.append(dice)
            check(dice >= 0.8, "%s lesion %d: consensus Dice %.3f" % (pid, l["index"], dice))
    check(len(used) == len(ours), "%s: each stored nodule matches one true nodule" % pid)
check(len(dices) >= 5, "enough multi-reader nodules for the Dice check (%d)" % len(dices))
print("consensus vs true mask Dice: n=%d min %.3f mean %.3f" % (len(dices), min(dices or [0]), np.mean(dices or [0])))
print("%d passed, %d failed" % (npass, fails))
sys.exit(1 if fails else 0)
EOF
