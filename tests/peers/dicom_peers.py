#!/usr/bin/python3
"""dicom_peers.py - compares dinox's DICOM / series / NIfTI readers with
independent tools. Driven by tests/test_dicom_peers.sh.

Fixtures come from outside dinox: the CT/MR samples shipped in Debian's
python3-pydicom, and files written at test time by dcmtk (dump2dcm, dcmconv,
dcmcrle, dcmcjpls) and gdcm (gdcmconv). References come from pydicom
(headers, pixel_array), gdcmraw (decompressed pixel bytes) and gdcminfo
(geometry). dinox's side is `test_dicom --dump/--series/--nifti`, which writes
JSON + raw arrays. Exit status 0 only if every check passed.

usage: dicom_peers.py TEST_DICOM_BINARY WORK_DIR
"""
import gzip
import json
import os
import random
import re
import shutil
import struct
import subprocess
import sys

import numpy as np
import pydicom
import pydicom.data
import pydicom.uid

HU_MIN, HU_MAX, HU_PAD = -1024, 3071, -1024
TOOL, WORK = sys.argv[1], sys.argv[2]
PYDATA = os.path.join(os.path.dirname(pydicom.data.__file__), "test_files")
npass = nfail = 0


def check(cond, what):
    global npass, nfail
    if cond:
        npass += 1
    else:
        nfail += 1
        print("FAIL:", what, flush=True)


def run(*args):
    r = subprocess.run(args, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError("%s failed (%d): %s" % (" ".join(args), r.returncode, r.stderr.strip()[:500]))
    return r.stdout


def dinox_dump(path):
    out = os.path.join(WORK, "dump_" + re.sub(r"[^A-Za-z0-9_.]", "_", os.path.relpath(path, "/")))
    run(TOOL, "--dump", path, out)
    j = json.load(open(out + ".json"))
    if j["status"] == "ok":
        j["stored"] = np.fromfile(out + ".i32", dtype="<i4")
        j["hu"] = np.fromfile(out + ".i16", dtype="<i2")
    return j


# ---- independent references --------------------------------------------------------

def stored_from_words(words, bits_stored, high_bit, signed):
    """DICOM PS3.5 8.1.1: the value is the BitsStored-bit field ending at HighBit."""
    w = words.astype(np.int64) >> (high_bit + 1 - bits_stored)
    w &= (1 << bits_stored) - 1
    if signed:
        w = np.where(w >= (1 << (bits_stored - 1)), w - (1 << bits_stored), w)
    return w


def gdcmraw_stored(path, ds):
    """Pixel bytes as gdcm decompresses them (little endian), masked per header."""
    raw = os.path.join(WORK, "gdcmraw.bin")
    if ds.file_meta.TransferSyntaxUID.is_compressed:
        # gdcmraw copies fragments as they are: let gdcm decompress first.
        plain = os.path.join(WORK, "gdcm_decompressed.dcm")
        run("gdcmconv", "--raw", path, plain)
        path = plain
    run("gdcmraw", "-i", path, "-o", raw)
    dt = "<u2" if ds.BitsAllocated == 16 else "u1"
    words = np.fromfile(raw, dtype=dt)
    n = int(ds.Rows) * int(ds.Columns) * int(getattr(ds, "NumberOfFrames", 1) or 1)
    return stored_from_words(words[:n], int(ds.BitsStored), int(ds.HighBit), int(ds.PixelRepresentation) == 1)


def expected_hu(stored, ds):
    slope = float(getattr(ds, "RescaleSlope", 1) or 1)
    icpt = float(getattr(ds, "RescaleIntercept", 0) or 0)
    hu = np.clip(np.rint(stored.astype(np.float64) * slope + icpt), HU_MIN, HU_MAX).astype(np.int16)
    pad = ds.get((0x0028, 0x0120))
    if pad is not None:
        pv = int(pad.value) if not isinstance(pad.value, bytes) else struct.unpack("<H", pad.value[:2])[0]
        if int(ds.PixelRepresentation) == 1 and pv >= 32768:
            pv -= 65536
        lim = ds.get((0x0028, 0x0121))
        if lim is not None:
            lv = int(lim.value)
            if int(ds.PixelRepresentation) == 1 and lv >= 32768:
                lv -= 65536
            lo, hi = min(pv, lv), max(pv, lv)
            hu[(stored >= lo) & (stored <= hi)] = HU_PAD
        else:
            hu[stored == pv] = HU_PAD
    return hu


def gdcminfo_geom(path):
    out = run("gdcminfo", path)
    g = {}
    for key in ("Origin", "Spacing", "DirectionCosines"):
        m = re.search(key + r": \(([^)]*)\)", out)
        g[key] = [float(x) for x in m.group(1).split(",")] if m else None
    return g


def close(a, b, tol):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return a.shape == b.shape and bool(np.all(np.abs(a - b) <= tol * (1 + np.abs(b))))


# ---- single files -------------------------------------------------------------------

def check_file(path, label, pydicom_pixels=True, gdcm_pixels=True, gdcm_geom=True):
    ds = pydicom.dcmread(path)
    j = dinox_dump(path)
    check(j["status"] == "ok", "%s: dinox read failed: %s" % (label, j["error"]))
    if j["status"] != "ok":
        return
    check(j["transfer_syntax"] == str(ds.file_meta.TransferSyntaxUID), "%s: transfer syntax %s vs pydicom %s"
          % (label, j["transfer_syntax"], ds.file_meta.TransferSyntaxUID))
    for key, attr in (("rows", "Rows"), ("cols", "Columns"), ("bits_allocated", "BitsAllocated"),
                      ("bits_stored", "BitsStored"), ("high_bit", "HighBit"),
                      ("pixel_representation", "PixelRepresentation"), ("instance_number", "InstanceNumber")):
        if attr in ds and ds.data_element(attr).value not in (None, ""):
            check(j[key] == int(ds.data_element(attr).value), "%s: %s %s vs pydicom %s" % (label, key, j[key], ds.data_element(attr).value))
    for key, attr in (("sop_instance_uid", "SOPInstanceUID"), ("series_uid", "SeriesInstanceUID"),
                      ("study_uid", "StudyInstanceUID"), ("sop_class_uid", "SOPClassUID"),
                      ("modality", "Modality"), ("patient_id", "PatientID")):
        if attr in ds:
            check(j[key] == str(ds.data_element(attr).value), "%s: %s '%s' vs pydicom '%s'" % (label, key, j[key], ds.data_element(attr).value))
    if "ImageType" in ds:
        check(j["image_type"] == "\\".join(ds.ImageType), "%s: image_type %s" % (label, j["image_type"]))
    if "ImagePositionPatient" in ds:
        check(close(j["ipp"], [float(x) for x in ds.ImagePositionPatient], 1e-12), "%s: IPP %s vs %s" % (label, j["ipp"], ds.ImagePositionPatient))
    if "ImageOrientationPatient" in ds:
        check(close(j["iop"], [float(x) for x in ds.ImageOrientationPatient], 1e-12), "%s: IOP" % label)
    if "PixelSpacing" in ds:
        check(close(j["pixel_spacing"], [float(x) for x in ds.PixelSpacing], 1e-12), "%s: PixelSpacing" % label)
    if "RescaleIntercept" in ds:
        check(close([j["rescale_intercept"], j["rescale_slope"]], [float(ds.RescaleIntercept), float(ds.RescaleSlope)], 1e-12),
              "%s: rescale" % label)
    if "SliceThickness" in ds and ds.SliceThickness not in (None, ""):
        check(close(j["slice_thickness"], float(ds.SliceThickness), 1e-12), "%s: SliceThickness" % label)
    if gdcm_geom and "ImagePositionPatient" in ds:
        g = gdcminfo_geom(path)
        check(close(j["ipp"], g["Origin"], 1e-5), "%s: IPP %s vs gdcminfo Origin %s" % (label, j["ipp"], g["Origin"]))
        check(close(j["iop"], g["DirectionCosines"], 1e-5), "%s: IOP vs gdcminfo" % label)
        # gdcm Spacing is (x = between columns, y = between rows): PixelSpacing reversed.
        check(close([j["pixel_spacing"][1], j["pixel_spacing"][0]], g["Spacing"][:2], 1e-5),
              "%s: PixelSpacing %s vs gdcminfo Spacing %s" % (label, j["pixel_spacing"], g["Spacing"]))
    refs = []
    if pydicom_pixels and ds.file_meta.TransferSyntaxUID.is_compressed and \
            ds.file_meta.TransferSyntaxUID != pydicom.uid.RLELossless:
        pydicom_pixels = False  # Debian's pydicom has no JPEG-LS / J2K decoder: gdcm is the oracle
    if pydicom_pixels:
        arr = ds.pixel_array.astype(np.int64).ravel()
        # pydicom does not mask unsigned data to BitsStored; apply the standard rule to its words.
        arr = stored_from_words(arr & ((1 << int(ds.BitsAllocated)) - 1), int(ds.BitsStored), int(ds.HighBit),
                                int(ds.PixelRepresentation) == 1)
        refs.append(("pydicom", arr))
    if gdcm_pixels:
        refs.append(("gdcmraw", gdcmraw_stored(path, ds)))
    for name, ref in refs:
        ok = ref.shape == j["stored"].shape and np.array_equal(ref, j["stored"])
        check(ok, "%s: stored pixels differ from %s (%s vs %s, max |d| %s)" % (
            label, name, j["stored"].shape, ref.shape,
            np.max(np.abs(ref - j["stored"])) if ref.shape == j["stored"].shape else "n/a"))
    if refs:
        hu = expected_hu(refs[0][1], ds)
        check(np.array_equal(hu, j["hu"]), "%s: HU differs (max |d| %s)" % (
            label, np.max(np.abs(hu.astype(int) - j["hu"])) if hu.shape == j["hu"].shape else "shape"))
    print("ok   %s (%s, %dx%d)" % (label, j["transfer_syntax"], j["cols"], j["rows"]), flush=True)


def check_refused(path, label, want_status, want_text):
    j = dinox_dump(path)
    check(j["status"] == want_status and want_text in j["error"] and path in j["error"],
          "%s: expected %s naming '%s', got %s: %s" % (label, want_status, want_text, j["status"], j["error"]))
    print("ok   %s refused: %s" % (label, j["error"][-100:]), flush=True)


# ---- fixtures written by dcmtk ---------------------------------------------------------

def dump_text(a):
    """dump2dcm input for one CT slice; a: dict of attributes."""
    lines = [
        "(0008,0008) CS [%s]" % a.get("image_type", "ORIGINAL\\PRIMARY\\AXIAL"),
        "(0008,0016) UI [%s]" % a.get("sop_class", "1.2.840.10008.5.1.4.1.1.2"),
        "(0008,0018) UI [%s]" % a["sop"],
        "(0008,0060) CS [%s]" % a.get("modality", "CT"),
        "(0010,0020) LO [%s]" % a.get("patient", "DXTEST-0001"),
        "(0018,0050) DS [%s]" % a.get("thickness", "2.5"),
        "(0020,000d) UI [%s]" % a.get("study", "1.2.826.0.1.3680043.2.1125.1"),
        "(0020,000e) UI [%s]" % a.get("series", "1.2.826.0.1.3680043.2.1125.1.1"),
        "(0020,0013) IS [%d]" % a.get("instance", 1),
        "(0020,0032) DS [%s]" % "\\".join("%.6g" % x for x in a["ipp"]),
        "(0020,0037) DS [%s]" % "\\".join("%.6g" % x for x in a.get("iop", (1, 0, 0, 0, 1, 0))),
        "(0028,0002) US 1",
        "(0028,0004) CS [MONOCHROME2]",
        "(0028,0010) US %d" % a["rows"],
        "(0028,0011) US %d" % a["cols"],
        "(0028,0030) DS [%s]" % a.get("spacing", "0.7\\0.8"),
        "(0028,0100) US %d" % a.get("ba", 16),
        "(0028,0101) US %d" % a.get("bs", 12),
        "(0028,0102) US %d" % a.get("hb", 11),
        "(0028,0103) US %d" % a.get("pixrep", 1),
    ]
    if "padding" in a:
        lines.append("(0028,0120) %s %d" % ("SS" if a.get("pixrep", 1) else "US", a["padding"]))
    lines += [
        "(0028,1050) DS [40]",
        "(0028,1051) DS [400]",
        "(0028,1052) DS [%s]" % a.get("intercept", "-1024"),
        "(0028,1053) DS [%s]" % a.get("slope", "1"),
        "(7fe0,0010) %s =%s" % ("OB" if a.get("ba", 16) == 8 else "OW", a["raw"]),
    ]
    return "\n".join(lines) + "\n"


def write_slice(path, a, words, xfer="+te"):
    raw = path + ".raw"
    words.astype("<u2" if a.get("ba", 16) == 16 else "u1").tofile(raw)
    a = dict(a, raw=raw)
    txt = path + ".txt"
    open(txt, "w").write(dump_text(a))
    run("dump2dcm", xfer, txt, path)
    os.remove(raw)
    os.remove(txt)


def synthetic_words(rows, cols, bs, signed, seed, padding=None, garbage_high=False, ba=16):
    rng = np.random.default_rng(seed)
    lo, hi = (-(1 << (bs - 1)), (1 << (bs - 1))) if signed else (0, 1 << bs)
    v = rng.integers(lo, hi, size=rows * cols)
    # A smooth "body" so compressed codecs see realistic structure, plus noise.
    yy, xx = np.mgrid[0:rows, 0:cols]
    body = ((yy - rows / 2) ** 2 / (rows / 2.5) ** 2 + (xx - cols / 2) ** 2 / (cols / 2.5) ** 2) < 1
    v = np.where(body.ravel(), v, lo if signed else 0)
    if padding is not None:
        v[: cols] = padding  # first row is outside the FOV
    w = v & ((1 << ba) - 1)  # two's complement in the allocated word
    if garbage_high and bs < ba:
        w |= (rng.integers(0, 1 << (ba - bs), size=w.size) << bs) & ((1 << ba) - 1)
    return w


def write_bmp8(path, px):
    """8-bit grey palette BMP (bottom-up rows padded to 4 bytes), from the format's layout."""
    h, w = px.shape
    row = (w + 3) // 4 * 4
    pal = b"".join(bytes([i, i, i, 0]) for i in range(256))
    data = b"".join(bytes(px[h - 1 - r]) + b"\0" * (row - w) for r in range(h))
    off = 14 + 40 + len(pal)
    hdr = b"BM" + struct.pack("<IHHI", off + len(data), 0, 0, off) + \
        struct.pack("<IiiHHIIiiII", 40, w, h, 1, 8, 0, len(data), 2835, 2835, 256, 0)
    open(path, "wb").write(hdr + pal + data)


def img2dcm_fixture(d):
    """img2dcm (dcmtk) turns a BMP into a Secondary Capture file: our pixels must equal the BMP's."""
    px = np.random.default_rng(5).integers(0, 256, size=(16, 20)).astype(np.uint8)
    bmp, out = os.path.join(d, "grey.bmp"), os.path.join(d, "img2dcm_sc.dcm")
    write_bmp8(bmp, px)
    run("img2dcm", "-i", "BMP", bmp, out)
    os.remove(bmp)
    j = dinox_dump(out)
    check(j["status"] == "ok" and j["rows"] == 16 and j["cols"] == 20 and
          np.array_equal(j["stored"], px.ravel().astype(np.int32)), "img2dcm: pixels differ from the BMP written")
    print("ok   img2dcm BMP -> DICOM pixels equal the source image", flush=True)
    return out


def single_file_fixtures():
    d = os.path.join(WORK, "gen")
    os.makedirs(d, exist_ok=True)
    base = dict(sop="1.2.826.0.1.3680043.2.1125.9.1", rows=16, cols=20, ipp=(-100.5, -120.25, 5.5), instance=3)
    files = []
    # signed 12-in-16 with padding (GE-like), explicit LE / implicit / big endian
    w = synthetic_words(16, 20, 12, True, 1, padding=-2000)
    p = os.path.join(d, "s12_explicit.dcm")
    write_slice(p, dict(base, padding=-2000), w, "+te")
    files.append((p, "dump2dcm explicit LE signed 12-bit + padding"))
    p2 = os.path.join(d, "s12_implicit.dcm")
    write_slice(p2, dict(base, padding=-2000), w, "+ti")
    files.append((p2, "dump2dcm implicit LE signed 12-bit + padding"))
    pd = os.path.join(d, "s12_deflated.dcm")
    write_slice(pd, dict(base, padding=-2000), w, "+td")
    files.append((pd, "dump2dcm deflated explicit LE"))
    p3 = os.path.join(d, "s12_big.dcm")
    run("dcmconv", "+tb", p, p3)
    files.append((p3, "dcmconv +tb explicit BE"))
    # unsigned 12-in-16 with garbage in the top 4 bits (must be masked), slope 0.5, HighBit 11
    w = synthetic_words(16, 20, 12, False, 2, garbage_high=True)
    p4 = os.path.join(d, "u12_garbage.dcm")
    write_slice(p4, dict(base, pixrep=0, slope="0.5", intercept="-1000.25"), w, "+te")
    files.append((p4, "dump2dcm unsigned 12-bit, garbage high bits, slope 0.5"))
    # unsigned 16 with values above the clamp range; stored 16 / high bit 15
    w = synthetic_words(16, 20, 16, False, 3)
    p5 = os.path.join(d, "u16.dcm")
    write_slice(p5, dict(base, pixrep=0, bs=16, hb=15), w, "+ti")
    files.append((p5, "dump2dcm implicit unsigned 16-bit (clamp)"))
    # 8-bit unsigned
    w = synthetic_words(16, 20, 8, False, 4, ba=8)
    p6 = os.path.join(d, "u8.dcm")
    write_slice(p6, dict(base, pixrep=0, ba=8, bs=8, hb=7, intercept="-100"), w, "+te")
    files.append((p6, "dump2dcm 8-bit unsigned"))
    # compressed versions of the signed file, by dcmtk and by gdcm
    for tool, args, name in (("dcmcrle", [], "dcmtk_rle"), ("dcmcjpls", [], "dcmtk_jpegls"),
                             ("gdcmconv", ["--rle"], "gdcm_rle"), ("gdcmconv", ["--jpegls"], "gdcm_jpegls"),
                             ("gdcmconv", ["--j2k"], "gdcm_j2k")):
        out = os.path.join(d, name + ".dcm")
        if tool == "gdcmconv":
            run(tool, *args, p, out)
        else:
            run(tool, p, out)
        files.append((out, "%s of signed 12-bit" % name))
    # gdcm round trips: decompress (raw) and implicit
    out = os.path.join(d, "gdcm_raw_from_j2k.dcm")
    run("gdcmconv", "--raw", os.path.join(d, "gdcm_j2k.dcm"), out)
    files.append((out, "gdcmconv --raw of the J2K file"))
    out = os.path.join(d, "gdcm_implicit.dcm")
    run("gdcmconv", "--implicit", p, out)
    files.append((out, "gdcmconv --implicit"))
    return files


# ---- series ---------------------------------------------------------------------------

def reference_series(files):
    """Independent assembly with pydicom: the documented rules, written again."""
    groups = {}
    for f in files:
        try:
            ds = pydicom.dcmread(f)
        except Exception:
            continue
        if ds.get("Modality") != "CT" or "PixelData" not in ds:
            continue
        if str(ds.get("SOPClassUID", "1.2.840.10008.5.1.4.1.1.2")) != "1.2.840.10008.5.1.4.1.1.2":
            continue
        if "LOCALIZER" in list(ds.get("ImageType", [])):
            continue
        iop = np.array([float(x) for x in ds.ImageOrientationPatient])
        n = np.cross(iop[:3], iop[3:])
        if abs(n[2]) / np.linalg.norm(n) < 0.99:
            continue
        groups.setdefault((ds.PatientID, ds.StudyInstanceUID, ds.SeriesInstanceUID), []).append(ds)
    out = {}
    for key, dss in groups.items():
        iop = np.array([float(x) for x in dss[0].ImageOrientationPatient])
        n = np.cross(iop[:3], iop[3:])
        n /= np.linalg.norm(n)
        dss.sort(key=lambda ds: (float(np.dot([float(x) for x in ds.ImagePositionPatient], n)), int(ds.InstanceNumber)))
        kept, dups = [], 0
        for ds in dss:
            d = float(np.dot([float(x) for x in ds.ImagePositionPatient], n))
            if kept and abs(d - kept[-1][0]) < 0.01:
                dups += 1
                continue
            kept.append((d, ds))
        p0 = np.array([float(x) for x in kept[0][1].ImagePositionPatient])
        shift = max([float(np.hypot(np.dot(np.array([float(x) for x in k[1].ImagePositionPatient]) - p0, iop[:3]),
                                    np.dot(np.array([float(x) for x in k[1].ImagePositionPatient]) - p0, iop[3:])))
                     for k in kept] + [0.0])
        pos = np.array([k[0] for k in kept])
        steps = np.diff(pos)
        med = float(np.median(steps)) if len(steps) else 0.0
        vol = []
        for _, ds in kept:
            arr = stored_from_words(ds.pixel_array.astype(np.int64).ravel() & ((1 << int(ds.BitsAllocated)) - 1),
                                    int(ds.BitsStored), int(ds.HighBit), int(ds.PixelRepresentation) == 1)
            vol.append(expected_hu(arr, ds))
        ps = [float(x) for x in kept[0][1].PixelSpacing]
        out[key[2]] = dict(
            n_files=len(dss), nz=len(kept), dups=dups, gaps=int(np.sum(steps > 1.5 * med)) if len(steps) else 0,
            spacing=[ps[1], ps[0], med if len(steps) else None],
            origin=[float(x) for x in kept[0][1].ImagePositionPatient],
            direction=list(iop) + list(n), slice_z=[float(k[1].ImagePositionPatient[2]) for k in kept],
            sop_uids=[str(k[1].SOPInstanceUID) for k in kept], hu=np.concatenate(vol),
            nx=int(kept[0][1].Columns), ny=int(kept[0][1].Rows), shift=shift)
    return out


def check_series(directory, label, want_series, want_skipped, ref_dir=None):
    """ref_dir: build the reference from these (uncompressed) files instead - Debian's pydicom
    cannot decode JPEG-LS, and lossless copies must give identical volumes."""
    out = os.path.join(WORK, "series_" + re.sub(r"[^A-Za-z0-9]", "_", label))
    run(TOOL, "--series", directory, out)
    j = json.load(open(out + ".json"))
    check(j["status"] == "ok", "%s: scan failed: %s" % (label, j["error"]))
    if j["status"] != "ok":
        return j
    files = sorted(os.path.join(r, f) for r, _, fs in os.walk(ref_dir or directory) for f in fs)
    ref = reference_series(files)
    check(len(j["series"]) == want_series and len(ref) == want_series,
          "%s: %d series (reference %d, expected %d)" % (label, len(j["series"]), len(ref), want_series))
    check(len(j["skipped"]) == want_skipped, "%s: %d skipped, expected %d: %s" % (
        label, len(j["skipped"]), want_skipped, [(os.path.basename(s["path"]), s["reason"]) for s in j["skipped"]]))
    for k, s in enumerate(j["series"]):
        r = ref.get(s["series_uid"])
        check(r is not None, "%s: series %s not in the reference" % (label, s["series_uid"]))
        check(s["status"] == "ok", "%s: load failed: %s" % (label, s["error"]))
        if r is None or s["status"] != "ok":
            continue
        rep = s["report"]
        check(rep["n_files"] == r["n_files"] and rep["n_slices"] == r["nz"] == s["nz"], "%s: slice counts %s vs %s" % (label, rep, r["nz"]))
        check(rep["n_duplicates"] == r["dups"], "%s: duplicates %d vs %d" % (label, rep["n_duplicates"], r["dups"]))
        check(rep["n_gaps"] == r["gaps"], "%s: gaps %d vs %d" % (label, rep["n_gaps"], r["gaps"]))
        check(abs(rep["inplane_shift_max"] - r["shift"]) < 1e-6, "%s: in-plane shift %g vs %g" % (label, rep["inplane_shift_max"], r["shift"]))
        check(s["nx"] == r["nx"] and s["ny"] == r["ny"], "%s: in-plane size" % label)
        if r["spacing"][2] is not None:
            check(close(s["spacing"], r["spacing"], 1e-9), "%s: spacing %s vs %s" % (label, s["spacing"], r["spacing"]))
        check(close(s["origin"], r["origin"], 1e-9), "%s: origin %s vs %s" % (label, s["origin"], r["origin"]))
        check(close(s["direction"], r["direction"], 1e-9), "%s: direction" % label)
        check(close(s["slice_z"], r["slice_z"], 1e-9), "%s: slice_z %s vs %s" % (label, s["slice_z"], r["slice_z"]))
        check(s["sop_uids"] == r["sop_uids"], "%s: SOP UID order" % label)
        hu = np.fromfile("%s.%d.i16" % (out, k), dtype="<i2")
        check(hu.shape == r["hu"].shape and np.array_equal(hu, r["hu"]), "%s: HU volume differs" % label)
    print("ok   %s: %d series, %d skipped" % (label, len(j["series"]), len(j["skipped"])), flush=True)
    return j


def series_fixture():
    """One folder: two CT series (shuffled names, descending positions, a duplicate,
    a gap), a localizer, an MR object and a non-DICOM file."""
    d = os.path.join(WORK, "mixed")
    os.makedirs(d, exist_ok=True)
    rnd = random.Random(7)
    names = ["f%03d.dcm" % i for i in range(40)]
    rnd.shuffle(names)
    k = 0
    sA, sB = "1.2.826.0.1.3680043.2.1125.2.1", "1.2.826.0.1.3680043.2.1125.2.2"
    # Series A: 8 slices, z descending with instance number, a duplicate of z=-5 (higher instance)
    zs = [10.0, 7.5, 5.0, 2.5, 0.0, -2.5, -5.0, -7.5]
    for i, z in enumerate(zs):
        w = synthetic_words(12, 10, 12, True, 100 + i, padding=-2000)
        write_slice(os.path.join(d, names[k]), dict(sop="%s.%d" % (sA, i + 1), series=sA, rows=12, cols=10,
                    ipp=(-50.0, -60.0, z), instance=i + 1, padding=-2000), w, rnd.choice(["+te", "+ti"]))
        k += 1
    w = synthetic_words(12, 10, 12, True, 999, padding=-2000)
    write_slice(os.path.join(d, names[k]), dict(sop="%s.99" % sA, series=sA, rows=12, cols=10, ipp=(-50.0, -60.0, -5.0),
                instance=99, padding=-2000), w)
    k += 1
    # Series B: 6 slices ascending with a missing slice (gap) and unsigned data
    for i, z in enumerate([100.0, 101.25, 102.5, 105.0, 106.25, 107.5]):
        w = synthetic_words(12, 10, 12, False, 200 + i)
        write_slice(os.path.join(d, names[k]), dict(sop="%s.%d" % (sB, i + 1), series=sB, rows=12, cols=10,
                    ipp=(-40.0, -30.0, z), instance=i + 1, pixrep=0, spacing="0.5\\0.6"), w, "+te")
        k += 1
    # Series C: a sheared stack (gantry tilt: y drifts 0.4 mm a slice, IOP still axial)
    sC = "1.2.826.0.1.3680043.2.1125.2.3"
    for i in range(4):
        w = synthetic_words(12, 10, 12, True, 400 + i)
        write_slice(os.path.join(d, names[k]), dict(sop="%s.%d" % (sC, i + 1), series=sC, rows=12, cols=10,
                    ipp=(-40.0, -30.0 + 0.4 * i, 2.0 * i), instance=i + 1), w, "+te")
        k += 1
    # A localizer (ImageType LOCALIZER, coronal) and a tilted "axial-labelled" one, same series as A
    w = synthetic_words(12, 10, 12, True, 300)
    write_slice(os.path.join(d, names[k]), dict(sop="%s.500" % sA, series=sA, rows=12, cols=10, ipp=(0, 0, 0),
                image_type="ORIGINAL\\PRIMARY\\LOCALIZER", iop=(1, 0, 0, 0, 0, -1), thickness="650"), w)
    k += 1
    write_slice(os.path.join(d, names[k]), dict(sop="%s.501" % sA, series=sA, rows=12, cols=10, ipp=(0, 0, 0),
                iop=(0, 1, 0, 0, 0, -1)), w)
    k += 1
    # An MR image in the same folder
    write_slice(os.path.join(d, names[k]), dict(sop="1.2.826.0.1.3680043.2.1125.3.1", series="1.2.826.0.1.3680043.2.1125.3",
                modality="MR", sop_class="1.2.840.10008.5.1.4.1.1.4", rows=12, cols=10, ipp=(0, 0, 0)), w)
    k += 1
    open(os.path.join(d, "069.xml"), "w").write("<?xml version=\"1.0\"?><LidcReadMessage/>\n")
    # A Secondary Capture made by img2dcm: not CT, skipped.
    shutil.copy(img2dcm_fixture(os.path.join(WORK, "gen")), os.path.join(d, "sc.dcm"))
    return d, 3, 5


def pydicom_series_fixtures():
    base = os.path.join(PYDATA, "dicomdirtests")
    d = os.path.join(WORK, "pyseries")
    shutil.copytree(os.path.join(base, "77654033", "CT2"), os.path.join(d, "a"))
    shutil.copytree(os.path.join(base, "98892001", "CT5N"), os.path.join(d, "b", "CT5N"))
    shutil.copytree(os.path.join(base, "98892001", "CT2N"), os.path.join(d, "b", "CT2N"))
    return d


# ---- NIfTI ----------------------------------------------------------------------------

def quat_from_rot(R):
    """qb, qc, qd of a proper rotation (NIfTI-1 qform, qfac handled by caller)."""
    a = 0.5 * np.sqrt(max(0.0, 1 + R[0, 0] + R[1, 1] + R[2, 2]))
    if a > 1e-6:
        return (R[2, 1] - R[1, 2]) / (4 * a), (R[0, 2] - R[2, 0]) / (4 * a), (R[1, 0] - R[0, 1]) / (4 * a)
    b = 0.5 * np.sqrt(1 + R[0, 0] - R[1, 1] - R[2, 2])
    return b, (R[0, 1] + R[1, 0]) / (4 * b), (R[0, 2] + R[2, 0]) / (4 * b)


def write_nifti1(path, data, dtype_code, affine, sform=True, qform=False, slope=0.0, inter=0.0, qfac=1.0):
    """Minimal NIfTI-1 single-file writer (348-byte header + 4 bytes extension flag), written
    from the format's header layout, independent of libniftiio."""
    nx, ny, nz = data.shape[2], data.shape[1], data.shape[0]
    sp = np.linalg.norm(affine[:3, :3], axis=0)
    R = affine[:3, :3] / sp
    if qfac < 0:
        R = R.copy()
        R[:, 2] *= -1
    qb, qc, qd = quat_from_rot(R) if qform else (0, 0, 0)
    bitpix = {2: 8, 4: 16, 16: 32, 256: 8, 512: 16, 8: 32, 64: 64}[dtype_code]
    h = bytearray(348)
    struct.pack_into("<i", h, 0, 348)
    struct.pack_into("<8h", h, 40, 3, nx, ny, nz, 1, 1, 1, 1)
    struct.pack_into("<hhh", h, 70, dtype_code, bitpix, 0)
    struct.pack_into("<8f", h, 76, qfac, sp[0], sp[1], sp[2], 0, 0, 0, 0)
    struct.pack_into("<f", h, 108, 352.0)
    struct.pack_into("<ff", h, 112, slope, inter)
    struct.pack_into("<hh", h, 252, 1 if qform else 0, 1 if sform else 0)
    struct.pack_into("<6f", h, 256, qb, qc, qd, affine[0, 3], affine[1, 3], affine[2, 3])
    for r in range(3):
        struct.pack_into("<4f", h, 280 + 16 * r, *[float(x) for x in affine[r]])
    h[344:348] = b"n+1\0"
    body = bytes(h) + b"\0\0\0\0" + data.tobytes()
    if path.endswith(".gz"):
        with gzip.open(path, "wb") as f:
            f.write(body)
    else:
        open(path, "wb").write(body)


def check_nifti(path, label, data_hu, affine_ras, want_flip):
    out = os.path.join(WORK, "nifti_" + re.sub(r"[^A-Za-z0-9]", "_", label))
    run(TOOL, "--nifti", path, out)
    j = json.load(open(out + ".json"))
    check(j["status"] == "ok", "%s: %s" % (label, j["error"]))
    if j["status"] != "ok":
        return
    hu = np.fromfile(out + ".i16", dtype="<i2").reshape(j["nz"], j["ny"], j["nx"])
    # Expected world (LPS) position of every voxel corner we check, from the file's affine.
    lps = np.diag([-1.0, -1.0, 1.0]) @ affine_ras[:3]
    o, sp, dr = np.array(j["origin"]), np.array(j["spacing"]), np.array(j["direction"]).reshape(3, 3)
    nz = data_hu.shape[0]
    flipped = want_flip
    for (i, jj, kk) in [(0, 0, 0), (j["nx"] - 1, 0, 0), (0, j["ny"] - 1, 0), (2, 3, nz - 1), (1, 1, 1)]:
        ours = o + i * sp[0] * dr[0] + jj * sp[1] * dr[1] + kk * sp[2] * dr[2]
        kf = nz - 1 - kk if flipped else kk
        want = lps @ np.array([i, jj, kf, 1.0])
        check(close(ours, want, 1e-5), "%s: voxel (%d,%d,%d) at %s, file affine says %s" % (label, i, jj, kk, ours, want))
        check(hu[kk, jj, i] == data_hu[kf, jj, i], "%s: voxel value (%d,%d,%d)" % (label, i, jj, kk))
    check(np.allclose(np.cross(dr[0], dr[1]) @ dr[2], 1, atol=1e-5), "%s: normal = row x col" % label)
    check(np.array_equal(hu, data_hu[::-1] if flipped else data_hu), "%s: all voxels" % label)
    print("ok   %s%s" % (label, " (k flipped)" if flipped else ""), flush=True)


def nifti_fixtures():
    d = os.path.join(WORK, "nifti")
    os.makedirs(d, exist_ok=True)
    rng = np.random.default_rng(11)
    vol = rng.integers(-1024, 3072, size=(5, 6, 7)).astype(np.int16)
    # A typical affine from a DICOM->NIfTI converter: LPS axial -> RAS, diagonal with flips.
    A = np.array([[-0.7, 0, 0, 90.0], [0, -0.8, 0, 120.5], [0, 0, 2.5, -300.0], [0, 0, 0, 1]])
    p = os.path.join(d, "sform.nii")
    write_nifti1(p, vol, 4, A)
    check_nifti(p, "NIfTI-1 sform int16", vol, A, False)
    p = os.path.join(d, "sform.nii.gz")
    write_nifti1(p, vol, 4, A)
    check_nifti(p, "NIfTI-1 .nii.gz", vol, A, False)
    # qform only, rotated and with qfac = -1 (k against row x col) and scaling, float32 data
    th = 0.3
    R = np.array([[np.cos(th), -np.sin(th), 0], [np.sin(th), np.cos(th), 0], [0, 0, 1.0]])
    B = np.eye(4)
    B[:3, :3] = R @ np.diag([0.9, 0.6, -2.0])
    B[:3, 3] = [-10.0, 20.0, 30.0]
    raw = ((vol.astype(np.float32) - 24.0) / 2.0).astype(np.float32)
    p = os.path.join(d, "qform.nii")
    write_nifti1(p, raw, 16, B, sform=False, qform=True, slope=2.0, inter=24.0, qfac=-1.0)
    check_nifti(p, "NIfTI-1 qform qfac=-1, float32, scl_slope", vol, B, True)
    # NIfTI-2 is refused with a named reason
    p = os.path.join(d, "v2.nii")
    h = bytearray(544)
    struct.pack_into("<i", h, 0, 540)
    h[4:12] = b"n+2\0\r\n\x1a\n"
    open(p, "wb").write(bytes(h))
    out = os.path.join(WORK, "nifti_v2")
    run(TOOL, "--nifti", p, out)
    j = json.load(open(out + ".json"))
    check(j["status"] != "ok" and "NIfTI-2" in j["error"], "NIfTI-2: %s" % j["error"])


def main():
    os.makedirs(WORK, exist_ok=True)
    # 1. Real CT samples and encodings from pydicom's test set.
    P = PYDATA
    check_file(os.path.join(P, "CT_small.dcm"), "pydicom CT_small (GE, explicit LE, padding)")
    for f, what in (("MR_small.dcm", "explicit LE"), ("MR_small_implicit.dcm", "implicit LE"),
                    ("MR_small_bigendian.dcm", "explicit BE"), ("MR_small_RLE.dcm", "RLE")):
        check_file(os.path.join(P, f), "pydicom %s (%s)" % (f, what))
    for f in ("MR_small_jp2klossless.dcm", "MR_small_jpeg_ls_lossless.dcm", "J2K_pixelrep_mismatch.dcm", "693_J2KI.dcm"):
        check_file(os.path.join(P, f), "pydicom %s (gdcm pixels)" % f, pydicom_pixels=False)
    for f in ("77654033/CT2/17106", "98892001/CT5N/2062"):
        check_file(os.path.join(P, "dicomdirtests", f), "pydicom series file %s" % f)
    check_refused(os.path.join(P, "JPEG-lossy.dcm"), "JPEG baseline", "unsupported", "1.2.840.10008.1.2.4.51")
    check_file(os.path.join(P, "image_dfl.dcm"), "pydicom image_dfl.dcm (deflated)", gdcm_geom=False)
    check_refused(os.path.join(P, "MR_truncated.dcm"), "truncated", "malformed input", "(7FE0,0010)")
    # 2. Files written by dcmtk and gdcm.
    for path, label in single_file_fixtures():
        check_file(path, label)
    # 3. Series assembly.
    d, ns, nskip = series_fixture()
    check_series(d, "mixed folder", ns, nskip)
    # The same CT series with every file compressed (gdcm RLE / JPEG-LS / J2K, dcmtk RLE):
    # header-only scanning of encapsulated files, then decoding, must give the same volumes.
    dc = os.path.join(WORK, "mixed_compressed")
    os.makedirs(dc)
    codecs = [("gdcmconv", "--rle"), ("gdcmconv", "--jpegls"), ("gdcmconv", "--j2k"), ("dcmcrle", None)]
    n = 0
    for name in sorted(os.listdir(d)):
        src = os.path.join(d, name)
        try:
            ds = pydicom.dcmread(src, stop_before_pixels=True)
        except Exception:
            continue
        if ds.get("Modality") != "CT" or "LOCALIZER" in list(ds.get("ImageType", [])):
            continue
        tool, opt = codecs[n % len(codecs)]
        n += 1
        run(*([tool, opt, src, os.path.join(dc, name)] if opt else [tool, src, os.path.join(dc, name)]))
    check_series(dc, "mixed folder, compressed copies", 3, 1, ref_dir=d)  # the tilted-normal file is CT too
    j = check_series(pydicom_series_fixtures(), "pydicom CT2 + CT5N + CT2N", 2, 2)
    if j.get("series"):
        gapped = [s for s in j["series"] if s["n_files"] == 4]
        desc = [s for s in j["series"] if s["n_files"] == 5]
        check(len(gapped) == 1 and gapped[0]["report"]["n_gaps"] == 1, "CT2: one gap flagged")
        check(len(desc) == 1 and desc[0]["report"]["descending"] == 1 and desc[0]["report"]["n_gaps"] == 0,
              "CT5N: descending, no gap")
        loc = [s for s in j["skipped"] if "LOCALIZER" in s["reason"] and "/CT2N/" in s["path"]]
        check(len(loc) == 2, "CT2N: both localizers skipped: %s" % j["skipped"])
    # 4. NIfTI.
    nifti_fixtures()
    print("%d passed, %d failed" % (npass, nfail))
    return 1 if nfail or npass == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
