"""PNG/JPEG inputs come out as the same Radiograph type as DICOM."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from preprocessing.dicom import read_radiograph
from preprocessing.errors import ImageReadError
from preprocessing.image_io import read_image


def gradient(rows: int = 60, cols: int = 40) -> np.ndarray:
    return np.tile(np.linspace(0, 1, cols, dtype=np.float32), (rows, 1))


def test_8bit_png(tmp_path):
    path = tmp_path / "a.png"
    Image.fromarray(np.round(gradient() * 255).astype(np.uint8)).save(path)
    rg = read_image(path)
    assert rg.pixels.dtype == np.float32 and rg.pixels.shape == (60, 40)
    np.testing.assert_allclose(rg.pixels, gradient(), atol=1 / 255)
    assert (rg.bits_stored, rg.transfer_syntax, rg.dataset, rg.original_shape) == (8, None, None, (60, 40))


def test_16bit_png_uses_the_full_range(tmp_path):
    path = tmp_path / "a16.png"
    Image.fromarray(np.round(gradient() * 65535).astype(np.uint16)).save(path)
    rg = read_image(path)
    assert rg.bits_stored == 16
    np.testing.assert_allclose(rg.pixels, gradient(), atol=1e-4)


def test_rgb_jpeg_becomes_gray(tmp_path):
    path = tmp_path / "c.jpg"
    gray = np.round(gradient() * 255).astype(np.uint8)
    Image.fromarray(np.stack([gray] * 3, -1)).save(path, quality=95)
    rg = read_image(path)
    assert rg.pixels.shape == (60, 40) and rg.photometric == "RGB"
    assert np.abs(rg.pixels - gradient()).mean() < 0.02


def test_read_radiograph_dispatches_by_content_not_suffix(tmp_path):
    path = tmp_path / "no_suffix"
    Image.fromarray(np.round(gradient() * 255).astype(np.uint8)).save(path, format="PNG")
    assert read_radiograph(path).pixels.shape == (60, 40)


def test_target_size_shrinks_the_short_side(tmp_path):
    path = tmp_path / "big.png"
    Image.fromarray(np.round(gradient(200, 100) * 255).astype(np.uint8)).save(path)
    rg = read_radiograph(path, target_size=50)
    assert rg.pixels.shape == (100, 50) and rg.original_shape == (200, 100)


def test_truncated_png(tmp_path):
    path = tmp_path / "t.png"
    Image.fromarray((np.random.default_rng(0).random((64, 64)) * 255).astype(np.uint8)).save(path)
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(ImageReadError, match="corrupt or truncated") as err:
        read_radiograph(path)
    assert str(path) in str(err.value)


def test_not_an_image(tmp_path):
    path = tmp_path / "x.png"
    path.write_text("hello")
    with pytest.raises(ImageReadError, match="not an image"):
        read_image(path)
