"""The ``Radiograph`` type: what every reader (DICOM, PNG, JPEG) returns."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
from pydicom.dataset import Dataset

# Sources of the intensity window, in ``Radiograph.voi_source``.
VOI_SOURCES = ("window", "voi_lut", "percentile", "bit_depth")


@dataclass
class Radiograph:
    """One projection radiograph ready for preprocessing.

    ``pixels`` is float32 ``[H, W]`` in [0, 1], in display orientation (the patient's right on the
    image left for frontal views when the file says how it is oriented), higher = brighter =
    denser (bone white). ``H, W`` is ``decoded_shape`` resized so that its short side (or, with the
    reader's ``fit="long"``, its long side) equals the reader's ``target_size`` when one was given
    and the image was larger, else ``decoded_shape``.

    Coordinates in the source file (e.g. boxes drawn on it) are in ``original_shape`` pixels,
    before the flips in ``flips``; :func:`preprocessing.transforms.geometry_for` maps them.
    """

    pixels: np.ndarray
    path: str | None = None
    study_uid: str | None = None
    series_uid: str | None = None
    sop_uid: str | None = None
    patient_id: str | None = None
    accession_number: str | None = None
    modality: str | None = None
    view_position: str | None = None
    laterality: str | None = None
    pixel_spacing: tuple[float, float] | None = None  # (row, column) in mm of ``original_shape``
    photometric: str | None = None
    bits_stored: int | None = None
    transfer_syntax: str | None = None  # UID; None for PNG/JPEG files
    original_shape: tuple[int, int] = (0, 0)  # (rows, cols) as stored in the file
    decoded_shape: tuple[int, int] = (0, 0)  # (rows, cols) the codec produced
    decode_reduction: int = 0  # JPEG 2000 resolution levels skipped; 0 = full resolution
    number_of_frames: int = 1  # frames in the file; only the first one is read
    window: tuple[float, float] | None = None  # (center, width) in modality units, when linear/sigmoid
    voi_source: str = "bit_depth"  # one of VOI_SOURCES: how raw values became [0, 1]
    flips: tuple[bool, bool] = (False, False)  # (left-right, up-down) applied for display orientation
    dataset: Dataset | None = field(default=None, repr=False)  # DICOM header without PixelData

    def metadata(self) -> dict[str, Any]:
        """Everything but ``pixels`` and ``dataset``, JSON-serialisable (tuples become lists)."""
        return {
            f.name: (list(v) if isinstance(v, tuple) else v)
            for f in fields(self)
            if f.name not in ("pixels", "dataset")
            for v in [getattr(self, f.name)]
        }

    @classmethod
    def from_metadata(cls, pixels: np.ndarray, meta: dict[str, Any]) -> "Radiograph":
        """Inverse of :meth:`metadata` (the ``dataset`` is not restored)."""
        tuple_fields = {"pixel_spacing", "original_shape", "decoded_shape", "window", "flips"}
        known = {f.name for f in fields(cls)}
        kwargs = {
            k: (tuple(v) if k in tuple_fields and v is not None else v) for k, v in meta.items() if k in known
        }
        return cls(pixels=pixels, **kwargs)


FITS = ("short", "long")


def shrink_to_target(array: np.ndarray, target_size: int | None, fit: str = "short") -> np.ndarray:
    """Area-resize ``[H, W]`` (or ``[H, W, C]``) float32 keeping aspect so that its short side
    (``fit="short"``) or long side (``fit="long"``) equals ``target_size``; never enlarges."""
    import cv2

    side = min(array.shape[:2]) if fit == "short" else max(array.shape[:2])
    if not target_size or side <= target_size:
        return array
    scale = target_size / side
    height = max(1, round(array.shape[0] * scale))
    width = max(1, round(array.shape[1] * scale))
    return cv2.resize(array, (width, height), interpolation=cv2.INTER_AREA)
