"""PNG / JPEG / TIFF radiographs (research sets such as NIH ChestX-ray14) as :class:`Radiograph`.

Such files carry no intensity window: values are scaled by the container's bit depth (8-bit by
255, 16-bit by 65535), colour becomes gray with BT.601 luma weights, the EXIF orientation (JPEG)
is applied, and the image is taken to be in display orientation already (research sets put the
patient's right on the image left).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from preprocessing.errors import ImageReadError, UnsupportedImageError
from preprocessing.radiograph import Radiograph, shrink_to_target

# Pillow mode -> (mode to convert to before reading the array, or None to keep it; full-scale value).
_8BIT_GRAY = ("L", 255.0)
_MODES: dict[str, tuple[str | None, float]] = {
    "1": _8BIT_GRAY, "L": (None, 255.0), "LA": _8BIT_GRAY, "P": _8BIT_GRAY, "PA": _8BIT_GRAY,
    "RGB": _8BIT_GRAY, "RGBA": _8BIT_GRAY, "CMYK": _8BIT_GRAY, "YCbCr": _8BIT_GRAY,
    "I;16": (None, 65535.0), "I;16B": (None, 65535.0), "I;16L": (None, 65535.0),
    "I": (None, 65535.0),  # 16-bit PNGs open as "I" in some Pillow versions
    "F": (None, 1.0),
}
_GRAY_MODES = ("1", "L", "LA", "I;16", "I;16B", "I;16L", "I", "F")

def read_image(path: str | os.PathLike[str], target_size: int | None = None, fit: str = "short") -> Radiograph:
    """Read a PNG/JPEG/TIFF file. ``pixels`` float32 ``[H, W]`` in [0, 1]; see the module docstring.

    ``target_size``: shrink (area) so the short side (``fit="long"``: the long side) equals it when
    larger, as for DICOM.
    """
    path = Path(path)
    try:
        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im)
            if im.mode not in _MODES:
                raise UnsupportedImageError(path, f"image mode {im.mode!r} is not supported")
            convert_to, full_scale = _MODES[im.mode]
            original_mode = im.mode
            array = np.asarray(im.convert(convert_to) if convert_to else im)
    except FileNotFoundError as err:
        raise ImageReadError(path, "no such file") from err
    except UnidentifiedImageError as err:
        raise ImageReadError(path, "not an image Pillow can read (PNG, JPEG, TIFF, BMP)") from err
    except (OSError, ValueError, SyntaxError) as err:  # Pillow's errors for truncated/corrupt files
        raise ImageReadError(path, f"corrupt or truncated image: {err}") from err
    if array.ndim != 2:
        raise UnsupportedImageError(path, f"unexpected image array shape {array.shape}")
    original_shape = (int(array.shape[0]), int(array.shape[1]))
    pixels = shrink_to_target(array.astype(np.float32) / np.float32(full_scale), target_size, fit)
    return Radiograph(
        pixels=np.ascontiguousarray(np.clip(pixels, 0.0, 1.0), dtype=np.float32),
        path=str(path),
        photometric="MONOCHROME2" if original_mode in _GRAY_MODES else "RGB",
        bits_stored=16 if full_scale == 65535.0 else 8,
        original_shape=original_shape,
        decoded_shape=original_shape,
        voi_source="bit_depth",
    )
