#!/usr/bin/env python3
"""DICOM series written by pydicom (an independent writer), for the TypeScript DICOM reader's tests
(test/data/dicom.test.ts, test/cli/dicom-cli.test.ts). Run with Debian's pydicom and numpy
(apt-get install -y python3-pydicom python3-numpy dcm2niix):

  /usr/bin/python3 scripts/make_dicom_fixtures.py [--out test/golden/dicom]

Each series' voxel values are a known pattern, so a reader that swaps rows and columns, sorts slices by
file name or InstanceNumber, or forgets RescaleSlope/Intercept reads different numbers. Folders:

  axial/          12 slices, 20 columns x 16 rows, PixelSpacing 0.7 (rows) x 0.8 (columns) mm, 2.5 mm apart,
                  stored unsigned with RescaleIntercept -1024; file names shuffled, InstanceNumber counting from
                  head to feet (so against the reader's order of increasing position along the normal)
  shuffled_numbers/ the same kind of series with InstanceNumber shuffled too (dcm2niix still orders it by
                  position, warning that the instance numbers are out of order; position is what counts)
  two_series/     two series in one folder, interleaved: a CT (signed int16, implicit VR little endian,
                  RescaleSlope 2, RescaleIntercept -1000) in coronal orientation, and an axial CT
  missing_slice/  10 positions, the 6th file left out
  mr/             an MR series (Modality MR): the reader must say so
  tilt/           a CT acquired with 15 degrees of gantry tilt (ImagePositionPatient moves along y slice by slice)

expected.json: per folder and SeriesInstanceUID, the shape [columns, rows, slices], the HU values with
columns fastest and slices in the order of position along the slice normal (row x column direction), and the
voxel-to-world affine in NIfTI's RAS+ convention (DICOM's LPS with x and y negated), computed here with numpy
from the same numbers written to the files.

dcm2niix/FOLDER/UID.nii: Debian's dcm2niix run on each folder (`dcm2niix -z n -b n -f %j`), committed so the
comparison runs where dcm2niix is not installed; the test reruns it when it is. dcm2niix also writes
UID_Eq_1.nii (a missing slice filled by interpolation) and UID_Tilt_1.nii (tilt resampled away).
"""
import argparse
import json
import os
import random
import shutil
import subprocess

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, generate_uid

CT_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
MR_STORAGE = "1.2.840.10008.5.1.4.1.1.4"


def uid(*parts):
    return generate_uid(entropy_srcs=[str(p) for p in parts])


def hu_pattern(cols, rows, slices, seed):
    """HU volume indexed [slice, row, column]; distinct enough along every axis to catch a flip or a swap."""
    k, r, c = np.meshgrid(np.arange(slices), np.arange(rows), np.arange(cols), indexing="ij")
    return (-1000 + ((c * 7 + r * 31 + k * 101 + seed) % 1400)).astype(np.int32)


def write_series(folder, name, *, cols, rows, slices, row_spacing, col_spacing, step, row_dir, col_dir, origin,
                 slope, intercept, signed, implicit, modality="CT", tilt=0.0, skip=(), seed=0, rng=None,
                 description="", shift=(0.0, 0.0, 0.0), shuffle_numbers=False):
    """Writes one series; returns its expected entry. `shift` is added to ImagePositionPatient per slice
    on top of the normal step (gantry tilt)."""
    row_dir = np.asarray(row_dir, float)
    col_dir = np.asarray(col_dir, float)
    normal = np.cross(row_dir, col_dir)
    origin = np.asarray(origin, float)
    shift = np.asarray(shift, float)
    hu = hu_pattern(cols, rows, slices, seed)
    if slope == 2:
        hu = hu - (hu % 2)  # stored = (HU - intercept) / slope must be an integer
    study = uid("study", folder)
    series = uid("series", folder, name)
    frame = uid("frame", folder)
    positions = [origin + k * step * normal + k * shift for k in range(slices)]
    kept = [k for k in range(slices) if k not in skip]
    numbers = list(range(1, len(kept) + 1))
    if shuffle_numbers:
        rng.shuffle(numbers)  # InstanceNumber must not decide the order either
    files = []
    for n, k in zip(numbers, kept):
        meta = FileMetaDataset()
        sop_class = CT_STORAGE if modality == "CT" else MR_STORAGE
        sop = uid("sop", folder, name, k)
        meta.MediaStorageSOPClassUID = sop_class
        meta.MediaStorageSOPInstanceUID = sop
        meta.TransferSyntaxUID = ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian
        meta.ImplementationClassUID = uid("tgnet-fixtures")
        ds = Dataset()
        ds.file_meta = meta
        ds.is_little_endian = True
        ds.is_implicit_VR = implicit
        ds.SOPClassUID = sop_class
        ds.SOPInstanceUID = sop
        ds.StudyInstanceUID = study
        ds.SeriesInstanceUID = series
        ds.FrameOfReferenceUID = frame
        ds.Modality = modality
        ds.PatientName = "Phantom^Pydicom"
        ds.PatientID = "tgnet-0001"
        ds.StudyDate = "20240101"
        ds.SeriesDescription = description
        ds.SeriesNumber = 1 if name == "a" else 2
        ds.InstanceNumber = n
        ds.ImagePositionPatient = [f"{v:.4f}" for v in positions[k]]
        ds.ImageOrientationPatient = [f"{v:.6f}" for v in list(row_dir) + list(col_dir)]
        ds.PixelSpacing = [f"{row_spacing}", f"{col_spacing}"]
        ds.SliceThickness = f"{abs(step)}"
        if tilt:
            ds.GantryDetectorTilt = f"{tilt}"
        ds.Rows = rows
        ds.Columns = cols
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated = 16
        ds.BitsStored = 16 if signed else 12
        ds.HighBit = ds.BitsStored - 1
        ds.PixelRepresentation = 1 if signed else 0
        ds.RescaleSlope = f"{slope}"
        ds.RescaleIntercept = f"{intercept}"
        ds.RescaleType = "HU"
        stored = (hu[k] - intercept) // slope
        ds.PixelData = stored.astype("<i2" if signed else "<u2").tobytes()
        files.append(ds)
    order = list(range(len(files)))
    if rng is not None:
        rng.shuffle(order)
    for i in order:
        ds = files[i]
        # Names say nothing about position: a hash-like name, as PACS exports often are.
        fname = f"{name}_{uid('name', folder, name, i)[-10:]}.dcm"
        ds.save_as(os.path.join(folder, fname), write_like_original=False)
    # Expected: slices in increasing position along the normal, the reader's order.
    proj = [float(np.dot(positions[k], normal)) for k in kept]
    ordered = [k for _, k in sorted(zip(proj, kept))]
    first = positions[ordered[0]]
    last = positions[ordered[-1]]
    n_kept = len(ordered)
    slice_vec = (last - first) / (n_kept - 1) if n_kept > 1 else normal * step
    lps = np.eye(4)
    lps[:3, 0] = row_dir * col_spacing
    lps[:3, 1] = col_dir * row_spacing
    lps[:3, 2] = slice_vec
    lps[:3, 3] = first
    ras = np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps
    values = np.stack([hu[k] for k in ordered])  # [slice, row, column]: columns fastest when flattened
    return series, {
        "modality": modality,
        "shape": [cols, rows, n_kept],
        "spacing": [col_spacing, row_spacing, float(np.linalg.norm(slice_vec))],
        "affine": [round(float(v), 6) for v in ras.flatten()],
        "hu": [int(v) for v in values.flatten()],
        "positions": [int(k) for k in ordered],
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "test", "golden", "dicom"))
    out = os.path.abspath(ap.parse_args().out)
    shutil.rmtree(os.path.join(out, "dcm2niix"), ignore_errors=True) if shutil.which("dcm2niix") else None
    rng = random.Random(18)
    expected = {"pydicom": pydicom.__version__}
    axial = dict(row_dir=(1, 0, 0), col_dir=(0, 1, 0))

    def folder(name):
        path = os.path.join(out, name)
        shutil.rmtree(path, ignore_errors=True)
        os.makedirs(path)
        expected[name] = {}
        return path

    f = folder("axial")
    s, e = write_series(f, "a", cols=20, rows=16, slices=12, row_spacing=0.7, col_spacing=0.8, step=-2.5, **axial,
                        origin=(-8.0, -5.6, 40.0), slope=1, intercept=-1024, signed=False, implicit=False, rng=rng,
                        description="axial 2.5 mm", seed=1)
    expected["axial"][s] = e
    f = folder("shuffled_numbers")
    s, e = write_series(f, "a", cols=20, rows=16, slices=12, row_spacing=0.7, col_spacing=0.8, step=-2.5, **axial,
                        origin=(-8.0, -5.6, 40.0), slope=1, intercept=-1024, signed=False, implicit=False, rng=rng,
                        description="axial, numbers shuffled", seed=7, shuffle_numbers=True)
    expected["shuffled_numbers"][s] = e
    f = folder("two_series")
    s, e = write_series(f, "a", cols=18, rows=10, slices=8, row_spacing=1.5, col_spacing=0.9, step=1.2,
                        row_dir=(1, 0, 0), col_dir=(0, 0, -1), origin=(-10.0, 20.0, 30.0), slope=2, intercept=-1000,
                        signed=True, implicit=True, rng=rng, description="coronal", seed=2)
    expected["two_series"][s] = e
    s, e = write_series(f, "b", cols=12, rows=14, slices=6, row_spacing=1.0, col_spacing=1.0, step=3.0, **axial,
                        origin=(0.0, 0.0, -20.0), slope=1, intercept=0, signed=True, implicit=False, rng=rng,
                        description="axial 3 mm", seed=3)
    expected["two_series"][s] = e
    f = folder("missing_slice")
    s, e = write_series(f, "a", cols=16, rows=16, slices=10, row_spacing=0.8, col_spacing=0.8, step=2.0, **axial,
                        origin=(0.0, 0.0, 0.0), slope=1, intercept=-1024, signed=False, implicit=False, rng=rng,
                        skip=(5,), description="missing slice", seed=4)
    expected["missing_slice"][s] = e
    f = folder("mr")
    s, e = write_series(f, "a", cols=12, rows=12, slices=6, row_spacing=1.0, col_spacing=1.0, step=4.0, **axial,
                        origin=(0.0, 0.0, 0.0), slope=1, intercept=0, signed=True, implicit=False, modality="MR",
                        rng=rng, description="T1", seed=5)
    expected["mr"][s] = e
    f = folder("tilt")
    tilt = 15.0
    s, e = write_series(f, "a", cols=16, rows=16, slices=8, row_spacing=0.8, col_spacing=0.8, step=2.0, **axial,
                        origin=(0.0, 0.0, 0.0), slope=1, intercept=-1024, signed=False, implicit=False, rng=rng,
                        tilt=tilt, shift=(0.0, -2.0 * np.tan(np.radians(tilt)), 0.0), description="tilted", seed=6)
    expected["tilt"][s] = e
    if shutil.which("dcm2niix"):
        for name in [k for k in expected if k != "pydicom"]:
            dest = os.path.join(out, "dcm2niix", name)
            shutil.rmtree(dest, ignore_errors=True)
            os.makedirs(dest)
            subprocess.run(["dcm2niix", "-z", "n", "-b", "n", "-f", "%j", "-o", dest, os.path.join(out, name)],
                           check=True, stdout=subprocess.DEVNULL)
        expected["dcm2niix"] = subprocess.run(["dcm2niix", "-v"], capture_output=True, text=True).stdout.split("\n")[0]
    else:
        print("dcm2niix not found: test/golden/dicom/dcm2niix left as it was (apt-get install -y dcm2niix)")
    with open(os.path.join(out, "expected.json"), "w") as fh:
        json.dump(expected, fh, separators=(",", ":"))
        fh.write("\n")
    print(f"wrote {', '.join(k for k in expected if k not in ('pydicom', 'dcm2niix'))} under {out}")


if __name__ == "__main__":
    main()
