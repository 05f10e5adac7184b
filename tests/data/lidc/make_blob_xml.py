#!/usr/bin/python3
"""make_blob_xml.py - random LIDC reads with irregular contours for the
pylidc cross-check in tests/test_ingest_lidc.sh.

Each physical nodule is a random star-shaped blob spanning a few slices; each
of up to 4 readers (sessions) outlines it with a perturbed radius, as a dense
8-connected pixel chain like the real edgeMaps; some readers skip a nodule,
some draw an inclusion=FALSE hole, some leave out the SOP UID (z matching).

usage: make_blob_xml.py OUT.xml --series UID --sop-prefix P [--sop-start 40
       --nz 12 --z0 -110 --dz 2.5 --nx 96 --ny 96 --seed 1 --nodules 4]"""
import argparse
import math
import random


def chain(cx, cy, radii):
    """dense 8-connected boundary chain of a star-shaped polygon"""
    n = len(radii)
    pts = []
    steps = 720
    for s in range(steps + 1):
        t = 2 * math.pi * s / steps
        f = t / (2 * math.pi) * n
        i0 = int(f) % n
        w = f - int(f)
        r = radii[i0] * (1 - w) + radii[(i0 + 1) % n] * w
        p = (int(round(cx + r * math.cos(t))), int(round(cy + r * math.sin(t))))
        if not pts or p != pts[-1]:
            # keep the chain 8-connected: fill a jump pixel by pixel
            while pts and max(abs(p[0] - pts[-1][0]), abs(p[1] - pts[-1][1])) > 1:
                q = pts[-1]
                pts.append((q[0] + (p[0] > q[0]) - (p[0] < q[0]), q[1] + (p[1] > q[1]) - (p[1] < q[1])))
            pts.append(p)
    if pts[-1] != pts[0]:
        pts.append(pts[0])
    return pts


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--series", required=True)
    ap.add_argument("--sop-prefix", required=True)
    ap.add_argument("--sop-start", type=int, default=40)
    ap.add_argument("--nz", type=int, default=12)
    ap.add_argument("--z0", type=float, default=-110.0)
    ap.add_argument("--dz", type=float, default=2.5)
    ap.add_argument("--nx", type=int, default=96)
    ap.add_argument("--ny", type=int, default=96)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--nodules", type=int, default=4)
    a = ap.parse_args()
    rng = random.Random(a.seed)
    nods = []
    while len(nods) < a.nodules:
        r = rng.uniform(4, 11)
        cand = (rng.uniform(14, a.nx - 14), rng.uniform(14, a.ny - 14), r,
                rng.randrange(1, a.nz - 4), rng.randrange(1, 4),
                [rng.uniform(0.7, 1.3) for _ in range(9)])
        # physical nodules apart: readers' outlines (up to 1.3 x 1.15 x r,
        # shifted 1.5 px) of two nodules never come within a few pixels
        if all(math.hypot(cand[0] - o[0], cand[1] - o[1]) > 1.5 * (cand[2] + o[2]) + 8 for o in nods):
            nods.append(cand)
    out = ['<?xml version="1.0" encoding="UTF-8"?>',
           '<LidcReadMessage xmlns="http://www.nih.gov">',
           "<ResponseHeader><SeriesInstanceUid>%s</SeriesInstanceUid>"
           "<StudyInstanceUID>1.9</StudyInstanceUID></ResponseHeader>" % a.series]
    for reader in range(4):
        out.append("<readingSession><servicingRadiologistID>r%d</servicingRadiologistID>" % reader)
        for ni, (cx, cy, r, k0, nk, shape) in enumerate(nods):
            if rng.random() < 0.2:
                continue  # this reader missed it
            out.append("<unblindedReadNodule><noduleID>%d</noduleID><characteristics>" % ni)
            for name in ["subtlety", "internalStructure", "calcification", "sphericity", "margin",
                         "lobulation", "spiculation", "texture", "malignancy"]:
                out.append("<%s>%d</%s>" % (name, rng.randint(1, 5), name))
            out.append("</characteristics>")
            dk = rng.choice([0, 0, 1, -1])
            for k in range(max(0, k0 + dk), min(a.nz, k0 + dk + nk + rng.randint(0, 1))):
                rr = [r * s * rng.uniform(0.85, 1.15) for s in shape]
                ox, oy = cx + rng.uniform(-1.5, 1.5), cy + rng.uniform(-1.5, 1.5)
                rois = [(True, chain(ox, oy, rr))]
                if r > 6 and rng.random() < 0.4:
                    rois.append((False, chain(ox, oy, [r * 0.3] * 6)))
                for incl, pts in rois:
                    sop = "" if rng.random() < 0.2 else "%s.%d" % (a.sop_prefix, a.sop_start + k)
                    out.append("<roi><imageZposition>%.6f</imageZposition><imageSOP_UID>%s</imageSOP_UID>"
                               "<inclusion>%s</inclusion>" % (a.z0 + a.dz * k, sop, "TRUE" if incl else "FALSE"))
                    out.extend("<edgeMap><xCoord>%d</xCoord><yCoord>%d</yCoord></edgeMap>" % p for p in pts)
                    out.append("</roi>")
            out.append("</unblindedReadNodule>")
        out.append("</readingSession>")
    out.append("</LidcReadMessage>")
    with open(a.out, "w") as f:
        f.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
