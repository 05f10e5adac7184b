#!/usr/bin/python3
"""pylidc_ref.py - an independent reference for dinox's LIDC nodule masks.

Re-implements, with numpy/scipy/matplotlib (the libraries pylidc itself uses),
pylidc's semantics as documented in shared/design/ct-data.md §2.3:
Annotation.boolean_mask (matplotlib Path.contains_points on (row, col)
pixel centres, contour points removed, inclusion=FALSE subtracted),
Scan.cluster_annotations (metric 'min' = cdist of contours_matrix (i, j, k),
tol = slice thickness, connected components, tol *= 0.9 while a group has > 4)
and utils.consensus (mean of masks over the union bbox >= clevel). The XML is
read with ElementTree, namespaces stripped. Writes the label volume
(z, y, x) uint8 as .npy and the nodule rows as JSON.

usage: pylidc_ref.py OUT_PREFIX --nx 64 --ny 64 --nz 8 --z0 -110 --dz 2.5
       --sop-prefix P --sop-start 40 --px 0.7 XML [XML ...]
"""
import argparse
import json

import numpy as np
import xml.etree.ElementTree as ET
from matplotlib.path import Path
from scipy.sparse.csgraph import connected_components
from scipy.spatial.distance import cdist

CHARS = ["subtlety", "internalStructure", "calcification", "sphericity", "margin",
         "lobulation", "spiculation", "texture", "malignancy"]


def local(tag):
    return tag.rsplit("}", 1)[-1].split(":")[-1].lower()


def kids(e, name):
    return [c for c in e if local(c.tag) == name.lower()]


def text(e, name, default=""):
    k = kids(e, name)
    return (k[0].text or "").strip() if k else default


def canon(e):
    """namespace-free structural key of an element (duplicate session test)"""
    return (local(e.tag), (e.text or "").strip(), tuple(canon(c) for c in e))


def sessions_of(path):
    root = ET.parse(path).getroot()
    return kids(root, "readingSession")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("xml", nargs="+")
    for n, t, d in [("nx", int, 64), ("ny", int, 64), ("nz", int, 8), ("z0", float, -110.0),
                    ("dz", float, 2.5), ("sop-start", int, 40), ("px", float, 0.7)]:
        ap.add_argument("--" + n, type=t, default=d)
    ap.add_argument("--sop-prefix", required=True)
    ap.add_argument("--clevel", type=float, default=0.5)
    a = ap.parse_args()
    zs = a.z0 + a.dz * np.arange(a.nz)
    sops = {"%s.%d" % (a.sop_prefix, a.sop_start + k): k for k in range(a.nz)}

    def slice_of(roi):
        s = text(roi, "imageSOP_UID")
        if s in sops:
            return sops[s]
        z = float(text(roi, "imageZposition"))
        k = int(np.argmin(np.abs(zs - z)))
        return k if abs(zs[k] - z) <= a.dz / 2 else None

    # sessions of all files; an exact repeat (resubmitted file) counts once
    seen, sessions = set(), []
    for p in a.xml:
        for s in sessions_of(p):
            key = canon(s)
            if key in seen:
                continue
            seen.add(key)
            sessions.append(s)

    anns = []  # (session index, chars, contours [(k, inclusion, C (i, j))])
    for si, s in enumerate(sessions):
        for nod in kids(s, "unblindedReadNodule"):
            ch = kids(nod, "characteristics")
            vals = [0] * 9
            if ch:
                for i, n in enumerate(CHARS):
                    t = text(ch[0], n)
                    vals[i] = int(t) if t else 0
            if not any(vals):
                continue
            conts = []
            for roi in kids(nod, "roi"):
                pts = [(int(text(e, "yCoord")), int(text(e, "xCoord"))) for e in kids(roi, "edgeMap")]
                if len(pts) <= 1:
                    continue
                k = slice_of(roi)
                if k is None:
                    continue
                conts.append((k, text(roi, "inclusion").upper() == "TRUE", np.array(pts)))
            if conts:
                anns.append((si, vals, conts))

    def cmat(ann):
        return np.vstack([np.c_[C, np.full(len(C), k)] for k, _, C in ann[2]])

    def bbox(ann):
        m = cmat(ann)
        return np.c_[m.min(0), m.max(0)]  # rows i, j, k; [min, max]

    def boolean_mask(ann, bb):
        ni, nj, nk = (bb[:, 1] - bb[:, 0] + 1).astype(int)
        mask = np.zeros((ni, nj, nk), bool)
        ii, jj = np.indices((ni, nj))
        test = bb[:2, 0] + np.c_[ii.flatten(), jj.flatten()]
        for incl_pass in (True, False):
            for k, incl, C in ann[2]:
                if incl != incl_pass:
                    continue
                zi = k - bb[2, 0]
                if (C[0] != C[-1]).any():
                    C = np.vstack([C, C[:1]])
                inside = Path(C, closed=True).contains_points(test).reshape(ni, nj)
                if incl:
                    mask[:, :, zi] |= inside
                else:
                    mask[:, :, zi] &= ~inside
                i, j = (C - bb[:2, 0]).T
                mask[i, j, zi] = False
        return mask

    n = len(anns)
    labels = np.zeros((a.nz, a.ny, a.nx), np.uint8)
    rows = []
    if n:
        D = np.zeros((n, n))
        for i in range(n):
            for j in range(i + 1, n):
                D[i, j] = D[j, i] = cdist(cmat(anns[i]), cmat(anns[j])).min()
        tol = a.dz  # pylidc: scan.slice_thickness
        _, cids = connected_components(D <= tol, directed=False)
        while max(np.bincount(cids)) > 4:
            tol *= 0.9
            if tol < 0.1:
                raise SystemExit("ClusterError: cannot reduce groups to <= 4 annotations")
            _, cids = connected_components(D <= tol, directed=False)
        groups = [[anns[i] for i in range(n) if cids[i] == c] for c in np.unique(cids)]
        groups.sort(key=lambda g: np.mean([cmat(x).mean(0)[2] for x in g]))
        for c, g in enumerate(groups):
            bbs = np.array([bbox(x) for x in g])
            cb = np.c_[bbs[:, :, 0].min(0), bbs[:, :, 1].max(0)]
            cmask = np.mean([boolean_mask(x, cb) for x in g], axis=0) >= a.clevel
            ii, jj, kk = np.nonzero(cmask)
            ii, jj, kk = ii + cb[0, 0], jj + cb[1, 0], kk + cb[2, 0]
            labels[kk, ii, jj] = c + 1
            mal = float(np.median([x[1][8] for x in g]))
            rows.append({"label": c + 1, "n_readers": len(g), "malignancy": mal,
                         "n_voxels": int(len(ii)),
                         "centroid": [float(jj.mean()), float(ii.mean()), float(kk.mean())]})
    np.save(a.out + ".npy", labels)
    with open(a.out + ".json", "w") as f:
        json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
