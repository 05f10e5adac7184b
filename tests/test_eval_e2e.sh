#!/usr/bin/env bash
# test_eval_e2e.sh - `dinox eval` and `dinox report` end to end on a synthetic
# store: synth (12 patients, 128 px) -> ingest -> a tiny training run with
# checkpoints -> eval --run --track (teacher of the newest checkpoint) and
# eval --weights of the exported backbone (must give the same numbers) ->
# report --compare -> headless Chromium renders it (screenshot; a missing
# chromium is a failure: scripts/setup.sh installs it).
# Checks: eval.json keys, patient-level split.json, attention PNG geometry,
# the checkpoint track, a self-contained HTML page.
set -euo pipefail
: "${DINOX:?}" "${DINOX_SOURCE_DIR:?}"
PY=/usr/bin/python3
DINOX=$(readlink -f "$DINOX")
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
cd "$work"
"$DINOX" synth --out synth --patients 12 --size 128 --seed 1 >/dev/null 2>&1
"$DINOX" ingest synth --out store >/dev/null 2>&1
SET=(model.dim=32 model.depth=2 model.heads=2 model.registers=2 heads.dino_hidden=32 heads.dino_bottleneck=16
     heads.dino_k=64 heads.ibot_hidden=32 heads.ibot_bottleneck=16 heads.ibot_k=64 train.batch_size=4
     crops.local_count=2 crops.global_size=32 crops.local_size=16 train.epochs=1 train.log_every=1
     train.threads=2 train.epoch_length=20 train.ckpt_every_steps=5 train.keep_last=10)
"$DINOX" train --quiet -c "$DINOX_SOURCE_DIR/configs/demo.yaml" --store store --out run "${SET[@]}" 2>/dev/null
ls run/checkpoints

# 1. from the run: config.yaml + newest checkpoint (no backbone.safetensors yet), with the track
"$DINOX" eval --store store --run run --out run/eval --size 64 --min-readers 2 --track --boot 200
# 2. the exported teacher backbone, same config: identical results expected
"$DINOX" export run --out backbone.safetensors 2>/dev/null
"$DINOX" eval --store store --weights backbone.safetensors --config run/config.yaml --out ev2 --size 64 \
    --min-readers 2 --boot 200 --also backbone.safetensors
# 3. a variant (2D input) for the comparison table; its --out is nested in folders that do not exist yet
"$DINOX" eval --store store --weights backbone.safetensors --config run/config.yaml --out deep/er/ev3 --size 64 \
    --min-readers 2 --boot 200 --no-25d --no-random-baseline --attention 1
ln -s deep/er/ev3 ev3

$PY - <<'PYEOF'
import json, struct, sys
fails = 0
def check(ok, what):
    global fails
    print(("ok   " if ok else "FAIL ") + what)
    fails += not ok
def get(d, dotted):
    for k in dotted.split("."):
        d = d[k]
    return d
a = json.load(open("run/eval/eval.json"))
b = json.load(open("ev2/eval.json"))
c = json.load(open("ev3/eval.json"))
keys = ["probe.test_auc", "probe.test_auc_ci", "probe.n_train", "probe.n_test", "baselines.size_only_auc",
        "baselines.random_init_auc", "knn.test_accuracy", "seg.test_dice", "seg.test_iou",
        "collapse.patch_cosine", "collapse.effective_rank"]
for k in keys:
    try:
        v = get(a, k)
        ok = v is None or isinstance(v, (int, float)) or (isinstance(v, list) and len(v) == 2)
    except KeyError:
        ok = False
    check(ok, "eval.json has %s = %r" % (k, get(a, k) if ok else None))
check(isinstance(a["probe"]["n_train"], (int, float)) and a["probe"]["n_train"] > 0, "probe trained on %s nodules" % a["probe"]["n_train"])
check(0 <= a["seg"]["test_dice"] <= 1 and 0 <= a["seg"]["test_iou"] <= a["seg"]["test_dice"] + 1e-12, "Dice/IoU in range, IoU <= Dice")
check(-1 <= a["collapse"]["patch_cosine"] <= 1 and 1 <= a["collapse"]["effective_rank"] <= a["model"]["dim"],
      "patch cosine %.4f, effective rank %.2f of dim %d" % (a["collapse"]["patch_cosine"], a["collapse"]["effective_rank"], a["model"]["dim"]))
check("step 20" in a["model"]["source"], "--run used the newest checkpoint: %s" % a["model"]["source"])
same = all(get(a, k) == get(b, k) for k in keys)
check(same, "checkpoint teacher and exported backbone give identical results")
check(b["baselines"]["extra"][0]["probe"]["test_auc"] == b["probe"]["test_auc"] or b["probe"]["test_auc"] is None,
      "--also with the same file reproduces the main probe")
check(a["baselines"]["random_init"]["source"].startswith("random init"), "random-init baseline evaluated")
check(c["data"]["stack25d"] is False and a["data"]["stack25d"] is True, "--no-25d recorded")
check(a.get("dinox_version", "").startswith("dinox ") and " (git " in a["dinox_version"],
      "eval.json records the version: %r" % a.get("dinox_version"))
# the scientific comparisons: paired differences, features + diameter, attention inside the nodule
cm = a.get("comparisons", {})
for k in ("ssl_minus_random_init_auc", "features_plus_diameter_minus_diameter_auc", "ssl_minus_diameter_auc",
          "radiomics_minus_diameter_auc", "features_plus_diameter_minus_radiomics_auc",
          "attention_in_nodule_ssl_minus_random_init"):
    d = cm.get(k)
    check(isinstance(d, dict) and "difference" in d and len(d.get("ci95", [])) == 2 and d.get("n_test", 0) > 0,
          "comparisons.%s = %r" % (k, {x: d.get(x) for x in ("difference", "ci95", "n_test")} if d else None))
    if d and d["difference"] is not None and d["ci95"][0] is not None:
        check(d["ci95"][0] <= d["ci95"][1] and 0 <= d["p_le0"] <= 1, "%s: CI ordered, p in [0, 1]" % k)
ma = b.get("comparisons", {}).get("main_minus_also_auc", [])
check(len(ma) == 1 and ma[0]["difference"] in (0, None), "--also with the same file: paired AUC difference %r"
      % (ma[0]["difference"] if ma else None))
ar = cm.get("attention_in_nodule", {})
check(isinstance(ar.get("ratio"), (int, float)) and ar["ratio"] > 0 and len(ar.get("per_head", [])) == a["model"]["heads"],
      "attention_in_nodule ratio %r, %d heads" % (ar.get("ratio"), len(ar.get("per_head", []))))
check("test_auc" in cm.get("features_plus_diameter_probe", {}), "features + diameter probe")
# the per-nodule scores behind the comparisons: equal columns, and the probe's test AUC recomputed from them
ns = a.get("nodule_scores", {})
cols = ["patient", "label", "diameter_mm", "backbone", "random_init", "diameter", "radiomics", "features_plus_diameter",
        "attention_backbone", "attention_random_init"]
n_ns = len(ns.get("patient", []))
check(n_ns == a["probe"]["n_test"] and all(len(ns.get(k, [])) == n_ns for k in cols),
      "nodule_scores: %d rows (probe n_test %r), columns %s" % (n_ns, a["probe"]["n_test"], sorted(ns)))
v = a.get("verdicts", [])
check(len(v) >= 6 and all(isinstance(x, str) and len(x) > 20 for x in v), "verdict sentences: %r" % v[:1])
# split: patient level
s = json.load(open("run/eval/split.json"))
per = {}
for n in s["nodules"]:
    per.setdefault(n["patient_id"], set()).add(n["split"])
check(all(len(v) == 1 for v in per.values()), "every patient's nodules are in one split")
check(all(s["patients"][p] == list(v)[0] for p, v in per.items()), "nodule split = patient split")
check(set(s["patients"].values()) <= {"train", "val", "test"} and len(s["patients"]) == 12, "12 patients split")
# attention PNGs: (heads + 3) tiles of 128 px (64 px crops shown x2): CT, PCA, mean, heads
for e in a["attention"]:
    raw = open("run/eval/" + e["file"], "rb").read()
    w, h = struct.unpack(">II", raw[16:24])
    check(raw[:8] == b"\x89PNG\r\n\x1a\n" and w == 128 * (a["model"]["heads"] + 3) and h == 128
          and e["columns"] == ["CT", "PCA", "mean"] + ["head %d" % k for k in range(a["model"]["heads"])],
          "%s %dx%d, columns %s" % (e["file"], w, h, e["columns"]))
t = json.load(open("run/eval/collapse_track.json"))
check([e["step"] for e in t] == [0, 5, 10, 15, 20], "track over checkpoints %s" % [e["step"] for e in t])
check(t[-1]["patch_cosine"] == a["collapse"]["patch_cosine"], "track's last step = the main evaluation")
sys.exit(1 if fails else 0)
PYEOF

"$DINOX" report run --compare ev2 ev3
# a compared evaluation with its own checkpoint track: the tracks side by side
cp run/eval/collapse_track.json ev2/
"$DINOX" report run --compare ev2 --out cmp_track.html
grep -q "Collapse diagnostics over training, side by side" cmp_track.html
[ "$(grep -o 'patch_cosine: ev2' cmp_track.html | wc -l)" -ge 1 ]
test -s run/report.html
$PY - <<'PYEOF'
import json, re, sys
h = open("run/report.html").read()
bad = [p for p in ("<script", "<link", "src=\"http", "href=\"http", "url(") if p in h]
print("external references / scripts:", bad or "none")
svgs = h.count("<svg")
imgs = h.count("data:image/png;base64,")
rows = len(re.findall(r"<tr><td title=\"[^\"]*\">(run|ev2|ev3)</td>", h))
print("svg charts %d, inline PNGs %d, comparison rows %d" % (svgs, imgs, rows))
ver = json.load(open("run/eval/eval.json"))["dinox_version"]
print("report names the version:", ver in h)
run = re.search(r"<h2>Run</h2>.*?backbone</td><td>custom: dim 32, depth 2, 2 heads.*?steps</td><td>20 of 20 logged.*?"
                r"duration</td><td>\d+:\d\d:\d\d .*?resolved config \(config.yaml\)", h, re.S)
print("run section (backbone, steps, duration, version, config):", bool(run))
flat = re.search(r"constant over the run \(not drawn\): [^<]*perf/comm_s = 0", h)
drawn_flat = 'class="ttl">perf/comm_s<' in h  # the chart title of a flat panel
print("constant keys named, not drawn:", bool(flat), not drawn_flat)
run = run and flat and not drawn_flat
ok = not bad and svgs >= 10 and imgs >= 1 and rows == 3 and "Malignancy probe" in h and ver in h and run
sys.exit(0 if ok else 1)
PYEOF

# --layer: the features after block 1 of 2 (final norm kept) equal those of the same file cut to its
# first block by hand (blocks.1.* removed, metadata depth 1); --layer above the depth is a usage error
"$DINOX" eval --store store --weights backbone.safetensors --config run/config.yaml --out ev4 --size 64 \
    --min-readers 2 --boot 200 --layer 1
$PY - <<'PYEOF'
import json, struct
raw = open("backbone.safetensors", "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
head = json.loads(raw[8:8 + n])
data = raw[8 + n:]
out, blob = {}, b""
for k, v in head.items():
    if k == "__metadata__":
        out[k] = dict(v, **({"model.depth": "1"} if "model.depth" in v else {}))
        continue
    if k.startswith("blocks.1."):
        continue
    b0, b1 = v["data_offsets"]
    out[k] = dict(v, data_offsets=[len(blob), len(blob) + b1 - b0])
    blob += data[b0:b1]
h = json.dumps(out).encode()
h += b" " * (-len(h) % 8)
open("cut1.safetensors", "wb").write(struct.pack("<Q", len(h)) + h + blob)
PYEOF
"$DINOX" eval --store store --weights cut1.safetensors --config run/config.yaml --depth 1 --out ev5 --size 64 \
    --min-readers 2 --boot 200
rc=0; "$DINOX" eval --store store --weights backbone.safetensors --config run/config.yaml --out ev6 --size 64 \
    --layer 3 2>layer3.txt || rc=$?
$PY - "$rc" <<'PYEOF'
import json, sys
d, e, full = (json.load(open(p + "/eval.json")) for p in ("ev4", "ev5", "ev2"))
keys = [("probe", "test_auc"), ("baselines", "random_init_auc"), ("knn", "test_accuracy"), ("seg", "test_dice"),
        ("collapse", "patch_cosine"), ("collapse", "effective_rank")]
nums = [(a, b) for a, b in keys if isinstance(d[a][b], (int, float))]
same = len(nums) >= 3 and all(d[a][b] == e[a][b] for a, b in keys)
differs = d["collapse"]["patch_cosine"] != full["collapse"]["patch_cosine"]
shape = d["model"]["depth"] == 1 and d["model"].get("full_depth") == 2 and "full_depth" not in e["model"]
refused = sys.argv[1] == "2" and "--layer 3: the backbone has 2 blocks" in open("layer3.txt").read()
print("--layer 1 = the file cut to 1 block by hand:", same, [(a + "." + b, d[a][b]) for a, b in nums])
print("--layer 1 differs from the whole backbone:", differs, "; eval.json depth 1 of 2:", shape,
      "; --layer 3 refused (exit 2):", refused)
sys.exit(0 if same and differs and shape and refused else 1)
PYEOF

# ROC curves: a store with enough labelled test nodules; the exported file alone (its metadata gives the shape)
"$DINOX" synth --out synth40 --patients 40 --size 128 --seed 3 >/dev/null 2>&1
"$DINOX" ingest synth40 --out store40 >/dev/null 2>&1
"$DINOX" eval --store store40 --weights backbone.safetensors --out ev40 --size 32 --min-readers 2 --boot 100 \
    --seg-steps 5 --attention 1 >/dev/null 2>&1
"$DINOX" report --eval ev40 --out ev40.html >/dev/null 2>&1
$PY - <<'PYEOF'
import json, sys
e = json.load(open("ev40/eval.json"))
fails = 0
keys = {"backbone": "probe", "diameter": "baselines.size_only", "random_init": "baselines.random_init.probe",
        "features_plus_diameter": "comparisons.features_plus_diameter_probe", "radiomics": "baselines.radiomics"}
for k, where in keys.items():
    pts = e["roc"].get(k)
    node = e
    for part in where.split("."):
        node = node[part]
    if not pts:
        print("FAIL: no ROC for", k); fails += 1; continue
    mono = all(b[0] >= a[0] and b[1] >= a[1] for a, b in zip(pts, pts[1:]))
    auc = sum((b[0] - a[0]) * (a[1] + b[1]) / 2 for a, b in zip(pts, pts[1:]))
    ok = pts[0] == [0, 0] and pts[-1] == [1, 1] and mono and abs(auc - node["test_auc"]) < 1e-9
    print("%s ROC %s: %d points, monotone, area %.6f = test AUC %.6f" % ("ok  " if ok else "FAIL", k, len(pts), auc, node["test_auc"]))
    fails += not ok
# the per-nodule scores give back every reported test AUC (Mann-Whitney, ties half)
ns = e["nodule_scores"]
def mw_auc(sc, y):
    pos = [v for v, l in zip(sc, y) if l > 0 and v is not None]
    neg = [v for v, l in zip(sc, y) if l <= 0 and v is not None]
    return sum((p > q) + 0.5 * (p == q) for p in pos for q in neg) / (len(pos) * len(neg))
for k, where in keys.items():
    node = e
    for part in where.split("."):
        node = node[part]
    got = mw_auc(ns[k], ns["label"])
    ok = abs(got - node["test_auc"]) < 1e-9 and len(ns[k]) == len(ns["patient"]) > 10
    print("%s nodule_scores.%s: AUC %.6f = test AUC %.6f (%d nodules)" % ("ok  " if ok else "FAIL", k, got,
          node["test_auc"], len(ns[k])))
    fails += not ok
h = open("ev40.html").read()
ok = "ROC, test nodules" in h and h.count("<polyline") >= 5 and "(AUC %.3f)" % e["probe"]["test_auc"] in h
ok = ok and "radiomics + diameter (AUC %.3f)" % e["baselines"]["radiomics_auc"] in h and "hand-crafted radiomics" in h
print(("ok  " if ok else "FAIL") + " report: ROC chart with the five curves and the AUCs in the legend, the radiomics row")
# the radiomics baseline names its columns: the diameter, then the descriptors
rf = e["baselines"]["radiomics"]["features"]
ok = rf[0] == "diameter_mm" and len(rf) == 9 and "sphericity" in rf
print(("ok  " if ok else "FAIL") + " radiomics features %s" % rf)
fails += not ok
sys.exit(fails + (not ok))
PYEOF

# no metrics / no eval: still a valid page
mkdir empty_run
"$DINOX" report empty_run
grep -q "no eval.json" empty_run/report.html

CHROME=$(command -v chromium || true)
if [ -z "$CHROME" ]; then
    echo "FAIL: chromium not installed (apt-get install chromium; scripts/setup.sh does) - report not rendered"
    exit 1
fi
export HOME="$work"   # chromium writes a profile under $HOME
timeout 120 "$CHROME" --headless --no-sandbox --disable-gpu --hide-scrollbars --enable-logging=stderr --v=0 \
    --window-size=1400,3200 --screenshot="$work/report.png" "file://$work/run/report.html" 2>chrome.log \
    || echo "chromium --screenshot exited $?"
timeout 120 "$CHROME" --headless --no-sandbox --disable-gpu --dump-dom "file://$work/run/report.html" \
    >dom.html 2>/dev/null || echo "chromium --dump-dom exited $?"
if [ ! -s "$work/report.png" ] || [ ! -s dom.html ]; then
    tail -20 chrome.log
    echo "FAIL: chromium wrote no screenshot or no DOM"
    exit 1
fi
if grep -E "CONSOLE|Uncaught|Not allowed to load" chrome.log; then
    echo "FAIL: console errors while rendering the report"
    exit 1
fi
$PY - "$work/report.png" <<'PYEOF'
import struct, sys
raw = open(sys.argv[1], "rb").read()
w, h = struct.unpack(">II", raw[16:24])
print("screenshot %dx%d, %d bytes" % (w, h, len(raw)))
sys.exit(0 if raw[:8] == b"\x89PNG\r\n\x1a\n" and w == 1400 and len(raw) > 20000 else 1)
PYEOF
grep -q "Malignancy probe" dom.html && grep -q "<svg" dom.html
grep -q "<h3>Verdict</h3>" dom.html && grep -q "Paired comparisons on the same test nodules" dom.html \
    && grep -q "CLS attention inside the nodule" dom.html
mkdir -p "${DINOX_BINARY_DIR:-$work}/test_artifacts" && cp "$work/report.png" "${DINOX_BINARY_DIR:-$work}/test_artifacts/eval_report.png"
echo "report rendered: ${DINOX_BINARY_DIR:-$work}/test_artifacts/eval_report.png"
