#!/usr/bin/python3
"""gen_ct.py - writes one synthetic axial CT series as DICOM files (pydicom).

Used by tests/test_ingest*.sh and bench/bench_ingest.sh. HU of voxel (x, y, k)
is a deterministic pattern (see hu_volume) so a test can recompute the volume
with numpy independently of the C reader. Files get shuffled names and
instance numbers running against z so nothing can rely on file order.

usage: gen_ct.py OUTDIR --series UID --study UID --patient ID [--nx 64 --ny 64
       --nz 8 --z0 -110 --dz 2.5 --px 0.7 --sop-prefix P --sop-start 40 --seed 0
       --implicit --npy-out V.npy]
SOP UID of slice k = <sop-prefix>.<sop-start + k>; z of slice k = z0 + k*dz.
"""
import argparse
import os
import random

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"


def hu_volume(nx, ny, nz, seed):
    """(nz, ny, nx) int16 HU in [-1024, 1975]."""
    k, y, x = np.meshgrid(np.arange(nz), np.arange(ny), np.arange(nx), indexing="ij")
    return (((x * 7 + y * 13 + k * 31 + seed * 101) % 3000) - 1024).astype(np.int16)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--series", required=True)
    ap.add_argument("--study", required=True)
    ap.add_argument("--patient", required=True)
    ap.add_argument("--nx", type=int, default=64)
    ap.add_argument("--ny", type=int, default=64)
    ap.add_argument("--nz", type=int, default=8)
    ap.add_argument("--z0", type=float, default=-110.0)
    ap.add_argument("--dz", type=float, default=2.5)
    ap.add_argument("--px", type=float, default=0.7)
    ap.add_argument("--sop-prefix", default=None)
    ap.add_argument("--sop-start", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--implicit", action="store_true")
    ap.add_argument("--npy-out", default=None)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    vol = hu_volume(a.nx, a.ny, a.nz, a.seed)
    if a.npy_out:
        np.save(a.npy_out, vol)
    prefix = a.sop_prefix or (a.series + ".4")
    rng = random.Random(a.seed)
    names = list(range(a.nz))
    rng.shuffle(names)
    ts = ImplicitVRLittleEndian if a.implicit else ExplicitVRLittleEndian
    for k in range(a.nz):
        sop = "%s.%d" % (prefix, a.sop_start + k)
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CT_IMAGE_STORAGE
        meta.MediaStorageSOPInstanceUID = sop
        meta.TransferSyntaxUID = ts
        meta.ImplementationClassUID = "1.2.826.0.1.3680043.2.1125.1"
        path = os.path.join(a.out, "img-%04d.dcm" % names[k])
        ds = FileDataset(path, {}, file_meta=meta, preamble=b"\0" * 128)
        ds.is_little_endian = True
        ds.is_implicit_VR = a.implicit
        ds.SOPClassUID = CT_IMAGE_STORAGE
        ds.SOPInstanceUID = sop
        ds.StudyInstanceUID = a.study
        ds.SeriesInstanceUID = a.series
        ds.PatientID = a.patient
        ds.Modality = "CT"
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.InstanceNumber = a.nz - k  # runs against z on purpose
        ds.ImagePositionPatient = [-100.0, -120.0, a.z0 + k * a.dz]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing = [a.px, a.px]
        ds.SliceThickness = a.dz
        ds.Rows, ds.Columns = a.ny, a.nx
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
        ds.PixelRepresentation = 0
        ds.RescaleIntercept = -1024
        ds.RescaleSlope = 1
        ds.WindowCenter = -600
        ds.WindowWidth = 1500
        ds.PixelData = (vol[k].astype(np.int32) + 1024).astype("<u2").tobytes()
        ds.save_as(path, write_like_original=False)


if __name__ == "__main__":
    main()
