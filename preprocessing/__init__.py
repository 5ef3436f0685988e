"""Files and text to arrays and token ids (no model code).

The main entry points are re-exported here and imported on first use, so that importing a light
module (``preprocessing.vocab``, ``preprocessing.errors``) does not pull in pydicom, MONAI or torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Radiograph": "preprocessing.radiograph",
    "read_radiograph": "preprocessing.dicom",
    "read_dicom_dataset": "preprocessing.dicom",
    "read_image": "preprocessing.image_io",
    "inspect_paths": "preprocessing.inspect",
    "IMAGE_MEAN": "preprocessing.letterbox",
    "IMAGE_STD": "preprocessing.letterbox",
    "LetterboxGeometry": "preprocessing.letterbox",
    "letterbox": "preprocessing.letterbox",
    "letterbox_geometry": "preprocessing.letterbox",
    "geometry_for": "preprocessing.letterbox",
    "build_image_transforms": "preprocessing.transforms",
    "PreprocessCache": "preprocessing.cache",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'preprocessing' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
