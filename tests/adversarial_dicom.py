"""A small corpus of hostile DICOM files, generated (nothing vendored), for the "no single file can
take a run down" tests of inspect and scoring.

Each file is either readable (a tiny odd-but-valid image) or must fail with a reason; none may make
a reader allocate gigabytes or hang.
"""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
from pydicom import uid
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.sequence import Sequence

STUDY_UID = "1.2.826.0.1.3680043.8.498.999"


def _image(rows: int = 32, cols: int = 32, syntax: str = uid.ExplicitVRLittleEndian, bits: int = 16,
           **tags: object) -> Dataset:
    """A DX image header + pixels (uint of ``bits``), every file its own study unless told."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = syntax
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = uid.DigitalXRayImageStorageForPresentation
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = uid.generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = uid.generate_uid(), uid.generate_uid()
    ds.PatientID, ds.Modality, ds.ViewPosition = "ADV", "DX", "PA"
    ds.PatientName, ds.PatientBirthDate, ds.PatientSex = "Adversarial^Test", "", ""
    ds.StudyDate, ds.StudyTime, ds.StudyID, ds.AccessionNumber, ds.ReferringPhysicianName = "20240101", "", "", "", ""
    ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.PhotometricInterpretation = rows, cols, 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = bits, min(bits, 12), min(bits, 12) - 1, 0
    if bits == 1:
        ds.BitsStored, ds.HighBit = 1, 0
        ds.PixelData = np.packbits(np.indices((rows, cols)).sum(0) % 2, bitorder="little").tobytes()
    else:
        dtype = {8: np.uint8, 16: np.uint16, 32: np.uint32}[bits]
        ds.PixelData = (np.arange(rows * cols) % 4000).astype(dtype).tobytes()
    for keyword, value in tags.items():
        setattr(ds, keyword, value)
    return ds


def _bytes(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def _nested(depth: int) -> Sequence:
    item = Dataset()
    item.CodeMeaning = "leaf"
    for _ in range(depth):
        outer = Dataset()
        outer.ContentSequence = Sequence([item])
        item = outer
    return Sequence([item])


def write_corpus(folder: Path) -> dict[str, bool]:
    """Write the corpus into ``folder``; returns {file name: whether it is readable}."""
    folder.mkdir(parents=True, exist_ok=True)
    files: dict[str, tuple[bytes, bool]] = {}
    huge = _image()
    huge.Rows = huge.Columns = 65535
    files["native_65535.dcm"] = (_bytes(huge), False)
    rle = _image(syntax=uid.RLELossless)
    rle.Rows = rle.Columns = 65535
    rle.PixelData = encapsulate([struct.pack("<16I", 1, 64, *[0] * 14) + b"\x81\x00" * 286])
    files["rle_65535.dcm"] = (_bytes(rle), False)  # 636 bytes of pixel data, the size of the reported file
    rle.Rows = rle.Columns = 4000
    rle.SOPInstanceUID = rle.file_meta.MediaStorageSOPInstanceUID = uid.generate_uid()
    files["rle_4000_tiny.dcm"] = (_bytes(rle), False)  # under the pixel cap, but 64x beyond what RLE can hold
    j2k = _image(syntax=uid.JPEG2000Lossless)
    siz = b"\xff\x4f\xff\x51" + struct.pack(">HHIIIIIIIIH", 41, 0, 60000, 60000, 0, 0, 60000, 60000, 0, 0, 1)
    j2k.PixelData = encapsulate([siz + b"\x07\x01\x01" + b"\x00" * 64])
    files["j2k_claims_60000.dcm"] = (_bytes(j2k), False)
    for cut in (0, 100, 132, 300, -700):  # every file its own SOP instance: no duplicates here
        good = _bytes(_image())
        files[f"truncated_{cut % len(good)}.dcm"] = (good[:cut], False)
    good = _bytes(_image())
    # native pixels labelled RLE Lossless (a UID of the same length, so the file meta stays valid)
    files["wrong_syntax.dcm"] = (good.replace(b"1.2.840.10008.1.2.1\x00", b"1.2.840.10008.1.2.5\x00", 1), False)
    files["bits_1.dcm"] = (_bytes(_image(bits=1)), True)
    files["bits_32.dcm"] = (_bytes(_image(bits=32)), True)
    frames = _image()
    frames.NumberOfFrames = 1000
    files["frames_1000_claimed.dcm"] = (_bytes(frames), False)
    files["nested_100.dcm"] = (_bytes(_image(ReferencedStudySequence=_nested(100))), True)
    charset = _image(SpecificCharacterSet="ISO_IR 999")
    charset.PatientName = b"\xff\xfe\xc3\x28bad"
    files["bad_charset.dcm"] = (_bytes(charset), True)
    for name, (data, _) in files.items():
        (folder / name).write_bytes(data)
    return {name: readable for name, (_, readable) in files.items()}
