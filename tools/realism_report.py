#!/usr/bin/python3
"""realism_report.py - how LIDC-like is a `dinox synth` set?

Usage: /usr/bin/python3 tools/realism_report.py DIR [--json OUT.json]

Reads what a user of the data would see (the DICOM series via pydicom, the
LIDC XML) plus the ground-truth sidecar (lesions.csv, truth.json, and
labels.npy where the set was made with --gt-volume) and prints:
  1. HU by tissue (labels.npy; mean, sd, percentiles) next to ct-data.md §7.1;
  2. noise: sd of HU in the lungs' and muscle's label regions (includes texture);
  3. scan protocol mix (pixel spacing, thickness, transfer syntax, vendors);
  4. nodule counts, size distribution (diameter) and texture/location mix;
  5. reader malignancy ratings (from the XML) and per-nodule variant-A labels
     (median rating > 3 malignant, < 3 benign, 3 dropped);
  6. AUC of a size-only logistic regression (5-fold CV, sklearn) and of
     size + the readers' other mean ratings, the two figures ct-data.md §2.4
     and §7.4 use (LIDC: size-only ~0.80-0.85, ratings ~0.93-0.95).
Exit status 0; prints "n/a" where the set is too small for a figure.
"""
import argparse
import csv
import glob
import json
import os
import sys
import xml.etree.ElementTree as ET

import numpy as np

NS = "{http://www.nih.gov}"
LABELS = ["air", "lung", "fat", "muscle", "bone", "heart", "abdomen", "vessel", "airway", "table", "lesion"]
EXPECT = {"air": "-1000", "lung": "-900..-800 (dependent -700)", "fat": "-120..-60", "muscle": "+35..+60",
          "bone": "+150..+1500", "heart": "+35..+55 (contrast +150..+400)", "abdomen": "+50..+130",
          "vessel": "+35..+55 (contrast +150..+400)", "airway": "-1000 (walls ~0)", "lesion": "solid 0..+60, GGO -750..-350"}
CHARS = ["subtlety", "internalStructure", "calcification", "sphericity", "margin", "lobulation", "spiculation",
         "texture", "malignancy"]


def tissue_stats(gt_dirs, max_per_label=400000, rng=np.random.default_rng(0)):
    vals = {l: [] for l in LABELS}
    for d in gt_dirs:
        hp, lp = os.path.join(d, "hu.npy"), os.path.join(d, "labels.npy")
        if not (os.path.exists(hp) and os.path.exists(lp)):
            continue
        hu, lab = np.load(hp), np.load(lp)
        for i, name in enumerate(LABELS):
            v = hu[lab == i]
            if v.size > 50000:
                v = rng.choice(v, 50000, replace=False)
            vals[name].append(v)
    out = {}
    for name, parts in vals.items():
        if not parts:
            continue
        v = np.concatenate(parts).astype(float)
        if v.size == 0:
            continue
        p = np.percentile(v, [5, 50, 95])
        out[name] = dict(n=int(v.size), mean=float(v.mean()), sd=float(v.std()), p5=float(p[0]), p50=float(p[1]),
                         p95=float(p[2]))
    return out


def read_xml_ratings(root):
    """Per series: list of sessions, each a list of (has_chars, {char: value}, n_roi)."""
    ratings = []
    for x in glob.glob(os.path.join(root, "LIDC-IDRI-*", "*", "*", "*.xml")):
        r = ET.parse(x).getroot()
        for s in r.findall(NS + "readingSession"):
            for n in s.findall(NS + "unblindedReadNodule"):
                ch = n.find(NS + "characteristics")
                if ch is not None:
                    ratings.append({c.tag[len(NS):]: int(c.text) for c in ch})
    return ratings


def auc_cv(X, y, seed=0):
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    n_splits = int(min(5, np.bincount(y).min()))
    if n_splits < 2:
        return float("nan")
    cv = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    p = cross_val_predict(model, X, y, cv=cv, method="predict_proba")[:, 1]
    return float(roc_auc_score(y, p))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dir")
    ap.add_argument("--json", help="also write the figures as JSON")
    ap.add_argument("--no-dicom", action="store_true", help="skip reading DICOM headers (faster)")
    a = ap.parse_args()
    root = a.dir
    rep = {}
    gt = os.path.join(root, "ground_truth")
    gt_dirs = sorted(glob.glob(os.path.join(gt, "LIDC-IDRI-*")))
    truths = [json.load(open(os.path.join(d, "truth.json"))) for d in gt_dirs]
    print(f"== dinox synth realism report: {root}")
    print(f"patients: {len(truths)}")

    # 3. protocol mix
    ps = [t["scan"]["pixel_spacing"] for t in truths]
    th = [t["scan"]["slice_thickness"] for t in truths]
    nz = [t["scan"]["shape_zyx"][0] for t in truths]
    vend = {}
    for t in truths:
        vend[t["scan"]["vendor_style"]] = vend.get(t["scan"]["vendor_style"], 0) + 1
    sig = [t["scan"]["noise_sigma_hu"] for t in truths]
    print(f"\n-- protocol\npixel spacing mm: min {min(ps):.3f} median {np.median(ps):.3f} max {max(ps):.3f}")
    print(f"slice thickness mm: " + ", ".join(f"{v:g}: {th.count(v)}" for v in sorted(set(th))))
    print(f"slices per series: min {min(nz)} median {np.median(nz):.0f} max {max(nz)}")
    print(f"scanner styles: {vend}; noise sigma HU: min {min(sig):.1f} median {np.median(sig):.1f} max {max(sig):.1f}")
    rep["protocol"] = dict(pixel_spacing=ps, thickness=th, slices=nz, vendors=vend, noise_sigma=sig)
    if not a.no_dicom:
        import pydicom
        ts = {}
        for t in truths:
            f = sorted(glob.glob(os.path.join(root, t["series_dir"], "*.dcm")))[0]
            d = pydicom.dcmread(f, stop_before_pixels=True)
            ts[d.file_meta.TransferSyntaxUID] = ts.get(d.file_meta.TransferSyntaxUID, 0) + 1
        print(f"transfer syntaxes: {ts}")

    # 1-2. tissue HU
    st = tissue_stats(gt_dirs)
    rep["tissue_hu"] = st
    print("\n-- HU by tissue (labels.npy at slice centres; includes noise and partial volume)")
    if not st:
        print("n/a (generate with --gt-volume for labels.npy)")
    else:
        print(f"{'tissue':8s} {'n':>9s} {'mean':>8s} {'sd':>7s} {'p5':>7s} {'p50':>7s} {'p95':>7s}   expected (ct-data.md 7.1)")
        for name in LABELS:
            if name in st:
                s = st[name]
                print(f"{name:8s} {s['n']:9d} {s['mean']:8.1f} {s['sd']:7.1f} {s['p5']:7.0f} {s['p50']:7.0f} "
                      f"{s['p95']:7.0f}   {EXPECT.get(name, '')}")

    # 4. nodules
    rows = list(csv.DictReader(open(os.path.join(gt, "lesions.csv"))))
    nod = [r for r in rows if r["class"] == "nodule"]
    per_pat = {}
    for r in nod:
        per_pat[r["patient_id"]] = per_pat.get(r["patient_id"], 0) + 1
    counts = [per_pat.get(t["patient_id"], 0) for t in truths]
    d = np.array([float(r["diameter_mm"]) for r in nod])
    print(f"\n-- lesions: {len(nod)} nodules >= 3 mm, "
          f"{sum(r['class'] == 'small_nodule' for r in rows)} small (< 3 mm), "
          f"{sum(r['class'] == 'non_nodule' for r in rows)} non-nodules")
    print("nodules per patient: " + ", ".join(f"{k}: {counts.count(k)}" for k in range(7)) +
          f" (mean {np.mean(counts):.2f}; LIDC ~2.6)")
    if d.size:
        bins = [3, 4, 6, 10, 20, 30.01]
        h, _ = np.histogram(d, bins)
        print(f"diameter mm: min {d.min():.1f} median {np.median(d):.2f} mean {d.mean():.2f} max {d.max():.1f} "
              f"(LIDC median ~5.7-6, mean ~7-8)")
        print("  " + ", ".join(f"[{bins[i]:g},{bins[i + 1]:.0f}): {h[i]}" for i in range(len(h))))
        for key in ("texture", "location", "calcification"):
            mix = {}
            for r in nod:
                mix[r[key]] = mix.get(r[key], 0) + 1
            print(f"{key}: {mix}")
    rep["nodules"] = dict(n=len(nod), diameter=d.tolist(), per_patient=counts)

    # 5. ratings (XML)
    ratings = read_xml_ratings(root)
    mal = [r["malignancy"] for r in ratings]
    print(f"\n-- reader ratings from the XML: {len(ratings)} nodule reads with characteristics")
    for c in CHARS:
        v = [r[c] for r in ratings]
        if v:
            print(f"{c:18s} " + " ".join(f"{k}:{v.count(k)}" for k in range(1, 7) if v.count(k)))
    rep["ratings"] = {c: [r[c] for r in ratings] for c in CHARS}

    # per-nodule label (variant A) from the readers' ratings recorded in the sidecar
    X1, X2, y, agg = [], [], [], []
    for t in truths:
        for les in t["lesions"]:
            if les["class"] != "nodule":
                continue
            ch = [r["characteristics"] for r in les["readers"] if r.get("characteristics")]
            if not ch:
                continue
            ch = np.array(ch, float)
            m = float(np.median(ch[:, 8]))
            agg.append(m)
            if m == 3:
                continue
            y.append(int(m > 3))
            X1.append([np.log(les["diameter_mm"])])
            X2.append([np.log(les["diameter_mm"])] + list(ch[:, [0, 3, 4, 5, 6, 7]].mean(0)) +
                      [float((ch[:, 2] != 6).mean())])
    agg = np.array(agg)
    print(f"per-nodule median malignancy: " + " ".join(
        f"{k}:{int(np.sum(np.round(agg) == k))}" for k in range(1, 6)) + " (LIDC 88/262/508/278/49)")
    y = np.array(y, int)
    print(f"variant A: {int((y == 0).sum())} benign, {int((y == 1).sum())} malignant, {int(np.sum(agg == 3))} dropped (=3)")
    if len(y) >= 10 and 0 < y.sum() < len(y):
        auc1 = auc_cv(np.array(X1), y)
        auc2 = auc_cv(np.array(X2), y)
    else:
        auc1 = auc2 = float("nan")
    print(f"\nsize-only logistic regression AUC (5-fold CV): {auc1:.3f}   (LIDC-like target 0.80-0.85)")
    print(f"size + readers' other ratings AUC (5-fold CV): {auc2:.3f}   (LIDC ~0.93-0.95)")
    rep["auc_size_only"] = auc1
    rep["auc_size_and_ratings"] = auc2
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rep, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
