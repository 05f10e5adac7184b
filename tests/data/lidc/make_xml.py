#!/usr/bin/python3
"""make_xml.py - writes the LIDC XML fixtures of tests/data/lidc (run once;
the outputs are committed). The shapes are rectangles and a diamond drawn as
dense boundary-pixel chains, like the real edgeMaps, so the expected masks can
be written down by hand (tests/test_lidc.c):
  rect chain x0..x1, y0..y1 -> mask interior x0<x<x1, y0<y<y1 (contour excluded)
  diamond |x-cx|+|y-cy| = r -> mask |x-cx|+|y-cy| <= r-1
Series A (64x64x8, z = -110 + 2.5 k, SOP UID ...9.4.<40+k>) is written by
gen_ct.py with the same UIDs. See README in this folder."""
import os

HERE = os.path.dirname(os.path.abspath(__file__))
SERIES_A = "1.2.826.0.1.3680043.2.1125.9.3"
STUDY_A = "1.2.826.0.1.3680043.2.1125.9.2"


def sop(k):
    return "1.2.826.0.1.3680043.2.1125.9.4.%d" % (40 + k)


def z(k):
    return -110.0 + 2.5 * k


def rect(x0, y0, x1, y1):
    pts = [(x, y0) for x in range(x0, x1 + 1)]
    pts += [(x1, y) for y in range(y0 + 1, y1 + 1)]
    pts += [(x, y1) for x in range(x1 - 1, x0 - 1, -1)]
    pts += [(x0, y) for y in range(y1 - 1, y0, -1)]
    return pts + [pts[0]]


def diamond(cx, cy, r):
    pts = []
    for i in range(r):
        pts.append((cx + i, cy - r + i))
    for i in range(r):
        pts.append((cx + r - i, cy + i))
    for i in range(r):
        pts.append((cx - i, cy + r - i))
    for i in range(r):
        pts.append((cx - r + i, cy - i))
    return pts + [pts[0]]


def roi(p, k, pts, inclusion="TRUE", with_sop=True, pad=""):
    s = p + "<roi>\n"
    s += p + "  <imageZposition>%s%f%s</imageZposition>\n" % (pad, z(k), pad)
    s += p + "  <imageSOP_UID>%s</imageSOP_UID>\n" % (sop(k) if with_sop else "")
    s += p + "  <inclusion>%s</inclusion>\n" % inclusion
    for x, y in pts:
        s += p + "  <edgeMap><xCoord>%d</xCoord><yCoord>%d</yCoord></edgeMap>\n" % (x, y)
    return s + p + "</roi>\n"


def chars(p, vals, order=None):
    names = ["subtlety", "internalStructure", "calcification", "sphericity", "margin",
             "lobulation", "spiculation", "texture", "malignancy"]
    idx = order or range(9)
    s = p + "<characteristics>\n"
    for i in idx:
        s += p + "  <%s>%s</%s>\n" % (names[i], vals[i], names[i])
    return s + p + "</characteristics>\n"


def header(series_tag="SeriesInstanceUid", series=SERIES_A, study=STUDY_A, prefix=""):
    p = prefix
    return (
        "  <%sResponseHeader>\n"
        "    <%sVersion>1.8.1</%sVersion>\n"
        "    <%sMessageId>0</%sMessageId>\n"
        "    <%sTaskDescription>Second unblinded read</%sTaskDescription>\n"
        "    <%s%s>%s</%s%s>\n"
        "    <%sResponseDescription>1 - Reading complete</%sResponseDescription>\n"
        "    <%sStudyInstanceUID>%s</%sStudyInstanceUID>\n"
        "  </%sResponseHeader>\n" % (p, p, p, p, p, p, p, p, series_tag, series, p, series_tag, p, p, p, study, p, p))


SESSION_B = (
    "  <readingSession>\n"
    "    <annotationVersion>3.12</annotationVersion>\n"
    "    <servicingRadiologistID> reader-B </servicingRadiologistID>\n"
    "    <unblindedReadNodule>\n"
    "      <noduleID>IL057_127364</noduleID>\n"
    + chars("      ", [" 5", "1", "6", "3", "4", "1", "2", "5 ", " 3 "], order=[8, 0, 1, 2, 3, 4, 5, 6, 7])
    + roi("      ", 2, rect(22, 22, 32, 32), inclusion="true")
    + roi("      ", 3, rect(22, 22, 32, 32), inclusion=" TRUE ", pad=" ")
    + roi("      ", 5, [(27, 27)])   # stray single-point ROI: dropped
    + "    </unblindedReadNodule>\n"
    "    <nonNodule>\n"
    "      <nonNoduleID>Non-nodule 001</nonNoduleID>\n"
    "      <imageZposition>%f</imageZposition>\n"
    "      <imageSOP_UID>%s</imageSOP_UID>\n"
    "      <locus><xCoord>50</xCoord><yCoord>10</yCoord></locus>\n"
    "    </nonNodule>\n"
    "  </readingSession>\n" % (z(6), sop(6)))


def series_a_1():
    s = '<?xml version="1.0" encoding="UTF-8"?>\n'
    s += ('<LidcReadMessage uid="1.2.826.0.1.3680043.2.1125.9.1" xmlns="http://www.nih.gov" '
          'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
          'xsi:schemaLocation="http://www.nih.gov http://troll.rad.med.umich.edu/lidc/LidcReadMessage.xsd">\n')
    s += header()
    s += "  <readingSession>\n"
    s += "    <annotationVersion>3.12</annotationVersion>\n"
    s += "    <servicingRadiologistID>reader-A</servicingRadiologistID>\n"
    s += "    <unblindedReadNodule>\n      <noduleID>Nodule 001</noduleID>\n"
    s += chars("      ", [4, 1, 6, 4, 3, 2, 3, 5, 4])
    s += roi("      ", 2, rect(20, 20, 30, 30))
    s += roi("      ", 3, rect(20, 20, 30, 30))
    s += roi("      ", 3, rect(24, 24, 26, 26), inclusion="FALSE")   # a hole
    s += roi("      ", 4, rect(20, 20, 30, 30))
    s += "    </unblindedReadNodule>\n"
    s += "    <unblindedReadNodule>\n      <noduleID>Nodule 002</noduleID>\n"   # < 3 mm
    s += roi("      ", 1, [(10, 50)])
    s += "    </unblindedReadNodule>\n"
    s += "  </readingSession>\n"
    s += SESSION_B
    s += "</LidcReadMessage>\n"
    return s


def series_a_2():
    P = "lidc:"
    s = '<?xml version="1.0" encoding="UTF-8"?>\n'
    s += '<lidc:LidcReadMessage xmlns:lidc="http://www.nih.gov">\n'
    s += header(series_tag="SeriesInstanceUID", prefix=P)
    s += "  <lidc:readingSession>\n"
    s += "    <lidc:servicingRadiologistID>reader-C</lidc:servicingRadiologistID>\n"
    s += "    <lidc:unblindedReadNodule>\n      <lidc:noduleID>1</lidc:noduleID>\n"
    body = chars("      ", [3, 1, 6, 5, 5, 1, 1, 5, 5])
    body += roi("      ", 3, rect(18, 18, 29, 29))
    body += roi("      ", 4, rect(18, 18, 29, 29), with_sop=False)   # z fallback
    s += body.replace("<", "<" + P).replace("<" + P + "/", "</" + P)
    s += "    </lidc:unblindedReadNodule>\n"
    s += "  </lidc:readingSession>\n"
    s += "  <lidc:readingSession>\n"
    s += "    <lidc:servicingRadiologistID>reader-D</lidc:servicingRadiologistID>\n"
    s += "    <lidc:unblindedReadNodule>\n      <lidc:noduleID>Nodule 7</lidc:noduleID>\n"
    body = chars("      ", [2, 1, 6, 5, 5, 1, 1, 5, 2])
    body += roi("      ", 5, diamond(45, 45, 5))
    s += body.replace("<", "<" + P).replace("<" + P + "/", "</" + P)
    s += "    </lidc:unblindedReadNodule>\n"
    s += "    <lidc:unblindedReadNodule>\n      <lidc:noduleID>Nodule 8</lidc:noduleID>\n"
    body = chars("      ", [0, 0, 0, 0, 0, 0, 0, 0, ""])   # all-zero/blank: treated as < 3 mm
    body += roi("      ", 0, [(60, 5)])
    s += body.replace("<", "<" + P).replace("<" + P + "/", "</" + P)
    s += "    </lidc:unblindedReadNodule>\n"
    s += "  </lidc:readingSession>\n"
    # the same session as in series_a_1.xml (a resubmitted file): merged once
    s += SESSION_B.replace("<", "<" + P).replace("<" + P + "/", "</" + P)
    s += "</lidc:LidcReadMessage>\n"
    return s


def other_series():
    s = '<?xml version="1.0"?>\n<LidcReadMessage>\n'
    s += header(series="1.2.826.0.1.3680043.2.1125.9.99", study="1.2.826.0.1.3680043.2.1125.9.98")
    s += "  <readingSession>\n    <servicingRadiologistID>x</servicingRadiologistID>\n"
    s += "    <unblindedReadNodule>\n      <noduleID>1</noduleID>\n"
    s += chars("      ", [3, 1, 6, 3, 3, 1, 1, 5, 3])
    s += roi("      ", 0, rect(5, 5, 9, 9))
    s += "    </unblindedReadNodule>\n  </readingSession>\n</LidcReadMessage>\n"
    return s


CXR = ('<?xml version="1.0"?>\n<IdriReadMessage xmlns="http://www.nih.gov/idri">\n'
       '  <ResponseHeader><SeriesInstanceUid>1.2.3</SeriesInstanceUid></ResponseHeader>\n'
       '  <CXRreadingSession><unblindedRead/></CXRreadingSession>\n</IdriReadMessage>\n')

BROKEN = ('<?xml version="1.0"?>\n<LidcReadMessage xmlns="http://www.nih.gov">\n'
          '  <ResponseHeader><SeriesInstanceUid>1.2.3</SeriesInstanceUid>\n'
          '  <readingSession><unblindedReadNodule>\n')

if __name__ == "__main__":
    for name, text in [("series_a_1.xml", series_a_1()), ("series_a_2.xml", series_a_2()),
                       ("other_series.xml", other_series()), ("cxr_read.xml", CXR), ("broken.xml", BROKEN)]:
        with open(os.path.join(HERE, name), "w") as f:
            f.write(text)
