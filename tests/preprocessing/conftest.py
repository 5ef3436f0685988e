"""Shared fixtures for the preprocessing tests: generated DICOM files, pydicom's bundled files, real data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom import uid
from pydicom.dataset import Dataset, FileMetaDataset

PYDICOM_FILES = Path(pydicom.__file__).parent / "data" / "test_files"


def _chest_like(rows: int = 96, cols: int = 80, bits: int = 12) -> np.ndarray:
    """A smooth ``[rows, cols]`` uint16 image: bright vertical band (spine) on a dim field, with a
    bright blob in the upper image-left corner so flips are detectable."""
    y, x = np.mgrid[0:rows, 0:cols].astype(np.float32)
    band = np.exp(-(((x - cols / 2) / (cols / 10)) ** 2))
    blob = np.exp(-(((x - cols * 0.2) ** 2 + (y - rows * 0.2) ** 2) / (min(rows, cols) / 10) ** 2))
    image = 0.2 + 0.5 * band + 0.3 * blob
    return np.round(image / image.max() * (2**bits - 1)).astype(np.uint16)


def _dx_dataset(pixels: np.ndarray, bits_stored: int = 12, photometric: str = "MONOCHROME2",
               **tags: object) -> Dataset:
    """A DX-for-presentation Dataset (explicit VR little endian) holding ``pixels`` (uint16 [R, C]
    or [F, R, C] frames); ``tags`` set or override elements by keyword."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = uid.ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = uid.DigitalXRayImageStorageForPresentation
    ds.SOPClassUID = uid.DigitalXRayImageStorageForPresentation
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = uid.generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = uid.generate_uid(), uid.generate_uid()
    ds.PatientID, ds.PatientName, ds.AccessionNumber = "P001", "Test^Patient", "A42"
    ds.Modality, ds.ViewPosition, ds.ImageLaterality = "DX", "PA", "U"
    ds.ImagerPixelSpacing = [0.2, 0.2]
    if pixels.ndim == 3:
        ds.NumberOfFrames = pixels.shape[0]
    ds.Rows, ds.Columns = pixels.shape[-2:]
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, bits_stored, bits_stored - 1, 0
    ds.PixelData = pixels.astype(np.uint16).tobytes()
    for keyword, value in tags.items():
        setattr(ds, keyword, value)
    return ds


def _save(ds: Dataset, path: Path) -> Path:
    ds.save_as(path, enforce_file_format=True)
    return path


@pytest.fixture
def pydicom_file():
    """Path of one of pydicom's bundled test files; skips (never downloads) when it is missing."""

    def get(name: str) -> Path:
        path = PYDICOM_FILES / name
        if not path.is_file():
            pytest.skip(f"pydicom does not ship {name} in this version")
        return path

    return get


@pytest.fixture
def chest_like():
    """Factory: ``chest_like(rows, cols, bits) -> uint16 [rows, cols]`` (see ``_chest_like``)."""
    return _chest_like


@pytest.fixture
def dx_dataset():
    """Factory: ``dx_dataset(pixels, bits_stored=12, photometric=..., **tags) -> Dataset``."""
    return _dx_dataset


@pytest.fixture
def save():
    """``save(ds, path) -> path``: write ``ds`` as a DICOM file with file meta."""
    return _save


@pytest.fixture
def shared_dicom(shared_data: Path) -> Path:
    """``../shared/data/dicom`` (skips when absent)."""
    folder = shared_data / "dicom"
    if not folder.is_dir():
        pytest.skip(f"real DICOM files not present ({folder} is absent)")
    return folder
