"""Letterboxing and intensity normalisation: the model's square input frame, without MONAI or torch.

Kept apart from :mod:`preprocessing.transforms` (the MONAI/albumentations pipeline) so that code
that only letterboxes, such as the decode worker processes of batch scoring, imports numpy and
OpenCV alone and starts in well under a second.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from preprocessing.radiograph import Radiograph

# Windowed chest radiographs in [0, 1] average about 0.5 with spread about 0.25 (measured on NIH
# ChestX-ray14 PNGs: 0.48 / 0.26); every model input is (x - IMAGE_MEAN) / IMAGE_STD.
IMAGE_MEAN = 0.5
IMAGE_STD = 0.25


@dataclass(frozen=True)
class LetterboxGeometry:
    """How a ``[H, W]`` image (``shape``) sits in the ``size x size`` letterboxed square.

    Square pixel = (source pixel * ``scale``) + (``pad_x``, ``pad_y``). Boxes may be given in
    another frame, ``coord_shape`` (e.g. the DICOM file's rows/cols when the pixels were decoded
    at lower resolution), before the display ``flips`` (left-right, up-down) the reader applied.
    """

    shape: tuple[int, int]
    size: int
    scale: float
    pad_x: float
    pad_y: float
    coord_shape: tuple[int, int]
    flips: tuple[bool, bool] = (False, False)

    def map_boxes(self, boxes: Sequence[Sequence[float]] | np.ndarray, normalized: bool = False) -> np.ndarray:
        """Boxes ``[N, 4]`` xywh (top-left x, y, width, height) in ``coord_shape`` pixels ->
        ``[N, 4]`` xywh in square pixels, or in [0, 1] of the square with ``normalized=True``."""
        out = np.asarray(boxes, dtype=np.float64).reshape(-1, 4).copy()
        rows, cols = self.coord_shape
        if self.flips[0]:
            out[:, 0] = cols - out[:, 0] - out[:, 2]
        if self.flips[1]:
            out[:, 1] = rows - out[:, 1] - out[:, 3]
        sy, sx = self.shape[0] / rows, self.shape[1] / cols
        out *= np.array([sx, sy, sx, sy]) * self.scale
        out[:, 0] += self.pad_x
        out[:, 1] += self.pad_y
        return out / self.size if normalized else out


def letterbox_geometry(shape: tuple[int, int], size: int, coord_shape: tuple[int, int] | None = None,
                       flips: tuple[bool, bool] = (False, False)) -> LetterboxGeometry:
    """Geometry of letterboxing an image of ``shape`` (rows, cols) into ``size x size``."""
    rows, cols = int(shape[0]), int(shape[1])
    scale = size / max(rows, cols)
    new_rows, new_cols = _scaled(rows, scale, size), _scaled(cols, scale, size)
    return LetterboxGeometry(
        shape=(rows, cols), size=size, scale=scale,
        pad_x=float((size - new_cols) // 2), pad_y=float((size - new_rows) // 2),
        coord_shape=tuple(coord_shape) if coord_shape is not None else (rows, cols), flips=tuple(flips),
    )


def geometry_for(radiograph: Radiograph, size: int) -> LetterboxGeometry:
    """Letterbox geometry of ``radiograph.pixels`` with boxes given in the file's own pixels."""
    return letterbox_geometry(radiograph.pixels.shape, size, radiograph.original_shape, radiograph.flips)


def _scaled(length: int, scale: float, size: int) -> int:
    return min(size, max(1, round(length * scale)))


def letterbox(pixels: np.ndarray, size: int, interpolation: int = cv2.INTER_AREA
              ) -> tuple[np.ndarray, LetterboxGeometry]:
    """Resize ``[H, W]`` (or ``[H, W, K]``) keeping aspect so the long side is ``size``, pad with 0.

    Returns (``[size, size]`` (``[size, size, K]``) of the input dtype, geometry). Use
    ``cv2.INTER_NEAREST`` for masks; the default area interpolation suits shrinking images.
    """
    geometry = letterbox_geometry(pixels.shape[:2], size)
    rows, cols = _scaled(pixels.shape[0], geometry.scale, size), _scaled(pixels.shape[1], geometry.scale, size)
    if geometry.scale > 1 and interpolation == cv2.INTER_AREA:
        interpolation = cv2.INTER_LINEAR  # area is for shrinking
    resized = cv2.resize(pixels, (cols, rows), interpolation=interpolation)
    if resized.ndim < pixels.ndim:  # cv2 drops a trailing channel axis of length 1
        resized = resized[..., None]
    out = np.zeros((size, size, *pixels.shape[2:]), dtype=pixels.dtype)
    y, x = int(geometry.pad_y), int(geometry.pad_x)
    out[y:y + rows, x:x + cols] = resized
    return out, geometry


def normalize(pixels: np.ndarray) -> np.ndarray:
    """``(pixels - IMAGE_MEAN) / IMAGE_STD`` for inference code that letterboxes by itself (numpy
    arrays or torch tensors, same shape)."""
    return (pixels - IMAGE_MEAN) / IMAGE_STD
