"""OpenJPEG called through ctypes: exact full decodes, reduced levels, clear errors."""

from __future__ import annotations

import importlib.util

import numpy as np
import pydicom
import pytest
from pydicom import uid
from pydicom.encaps import generate_frames

from preprocessing import openjpeg
from preprocessing.dicom import read_radiograph

pytestmark = [
    pytest.mark.skipif(not openjpeg.available(), reason="no libopenjp2 (system or Pillow's) to load"),
    pytest.mark.skipif(importlib.util.find_spec("openjpeg") is None, reason="pylibjpeg-openjpeg (encoder) missing"),
]


def _codestream(ds: pydicom.Dataset) -> bytes:
    return next(generate_frames(ds.PixelData, number_of_frames=1))


@pytest.fixture
def j2k(dx_dataset, chest_like):
    """A 12-bit 200 x 150 radiograph compressed losslessly: (dataset, original pixels)."""
    pixels = chest_like(200, 150)
    ds = dx_dataset(pixels.copy())
    ds.compress(uid.JPEG2000Lossless)
    return ds, pixels


def test_full_decode_is_exact(j2k):
    ds, pixels = j2k
    samples, precision = openjpeg.decode(_codestream(ds))
    assert precision == 12 and samples.shape == (200, 150)
    np.testing.assert_array_equal(samples, pixels)


def test_each_level_halves_the_size_rounding_up(j2k):
    ds, pixels = j2k
    for level, shape in ((1, (100, 75)), (2, (50, 38)), (3, (25, 19))):
        samples, _ = openjpeg.decode(_codestream(ds), level)
        assert samples.shape == shape
        # the low-pass band keeps the image: its mean stays the original's
        assert abs(float(samples.mean()) - float(pixels.mean())) < 0.02 * 4095


def test_errors_carry_openjpeg_message(j2k):
    ds, _ = j2k
    stream = _codestream(ds)
    with pytest.raises(openjpeg.OpenJPEGError, match="[Rr]esolution"):
        openjpeg.decode(stream, 12)  # more levels than the codestream has (5)
    with pytest.raises(openjpeg.OpenJPEGError, match="short"):
        openjpeg.decode(stream[:120])  # header only: no tile data
    with pytest.raises(openjpeg.OpenJPEGError, match="marker"):
        openjpeg.decode(b"\xff\x4f\xff\x51" + b"\x00" * 64)


def test_signed_samples_keep_their_sign(dx_dataset, chest_like):
    pixels = (chest_like(64, 48).astype(np.int32) - 2048).astype(np.int16)
    ds = dx_dataset(pixels.copy(), PixelRepresentation=1)
    ds.compress(uid.JPEG2000Lossless)
    samples, _ = openjpeg.decode(_codestream(ds))
    np.testing.assert_array_equal(samples, pixels)


def test_real_lossy_file_decodes_where_pillow_failed(shared_dicom):
    """RG1_J2KI.dcm: Pillow's reduce glue fails at level >= 2 ("broken data stream")."""
    ds = pydicom.dcmread(shared_dicom / "RG1_J2KI.dcm")
    reduced, precision = openjpeg.decode(_codestream(ds), 3)
    assert reduced.shape == (245, 231) and precision == 15
    rg = read_radiograph(shared_dicom / "RG1_J2KI.dcm", target_size=224, fit="long")
    assert rg.decode_reduction == 3 and rg.decoded_shape == (245, 231)
    full = ds.pixel_array.astype(np.float64)
    block = full[: 244 * 8, : 230 * 8].reshape(244, 8, 230, 8).mean(axis=(1, 3))
    assert np.corrcoef(block.ravel(), reduced[:244, :230].ravel())[0, 1] > 0.99


def test_real_file_full_decode_matches_pydicom(shared_dicom):
    ds = pydicom.dcmread(shared_dicom / "RG3_J2KR.dcm")
    samples, _ = openjpeg.decode(_codestream(ds))
    np.testing.assert_array_equal(samples, ds.pixel_array)
