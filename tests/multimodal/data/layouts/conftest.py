"""Helpers for the dataset-layout tests: tiny files in each release's exact layout."""

from __future__ import annotations

import gzip
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def _write_image(path: Path, size: int = 16) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size, size), 128, np.uint8)).save(path)
    return path


def _write_table(path: Path, text: str) -> Path:
    """Write CSV text (dedented, as released; ``.gz`` compressed when the name says so)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = "\n".join(line.strip() for line in text.strip().splitlines()) + "\n"
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(data.encode()))
    else:
        path.write_text(data)
    return path


def splits_by_patient(records) -> dict[str, set[str]]:
    seen: dict[str, set[str]] = defaultdict(set)
    for r in records:
        seen[r.patient_id].add(r.split)
    return seen


@pytest.fixture
def no_patient_crosses_splits():
    def check(records):
        crossing = {p: s for p, s in splits_by_patient(records).items() if len(s) > 1}
        assert not crossing, crossing
    return check


@pytest.fixture
def write_image():
    """write_image(path, size=16): a grey PNG/JPEG at ``path``."""
    return _write_image


@pytest.fixture
def write_table():
    """write_table(path, text): CSV text as released (``.gz`` compressed when the name says so)."""
    return _write_table


def _write_dicom(path: Path, patient_id: str = "", sex: str = "F", age: str = "045Y", view: str = "PA",
                 rows: int = 64, cols: int = 64) -> Path:
    """A tiny secondary-capture DICOM with the header fields the layouts read."""
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.Modality = generate_uid(), "CR"
    ds.PatientID, ds.PatientSex, ds.PatientAge, ds.ViewPosition = patient_id, sex, age, view
    ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.PhotometricInterpretation = rows, cols, 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = bytes(rows * cols)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


@pytest.fixture
def write_dicom():
    """write_dicom(path, patient_id, sex, age, view, rows, cols): a tiny DICOM image."""
    return _write_dicom
