"""Public chest-radiograph releases read in their own layout, written as the project's manifest.

``write_layout_manifest(dataset, root, out, **options)`` is the one door (``mmdx manifest``); each
dataset is a module here named after it. Every reader keeps the release's own file and column names,
reports bad rows with file and line in ``<manifest>.errors.jsonl`` instead of stopping, and splits by
patient (the official split where the release has one): a patient never spans two splits.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

from multimodal.data.manifest_writers import manifest_from_dicom_dir
from preprocessing.errors import ConfigError

from .chexpert import manifest_from_chexpert
from .iu import manifest_from_iu_release
from .mimic_cxr import manifest_from_mimic_cxr
from .nih import manifest_from_nih_release
from .padchest import manifest_from_padchest
from .rsna_pneumonia import manifest_from_rsna_pneumonia
from .vindr_cxr import manifest_from_vindr_cxr

LAYOUTS: dict[str, Callable[..., Path]] = {
    "dicom": manifest_from_dicom_dir,
    "nih": manifest_from_nih_release,
    "mimic-cxr": manifest_from_mimic_cxr,
    "chexpert": manifest_from_chexpert,
    "iu": manifest_from_iu_release,
    "vindr-cxr": manifest_from_vindr_cxr,
    "rsna-pneumonia": manifest_from_rsna_pneumonia,
    "padchest": manifest_from_padchest,
}


def write_layout_manifest(dataset: str, root: str | Path, out: str | Path | None = None, **options: Any) -> Path:
    """Read ``root`` as the release ``dataset`` (a key of :data:`LAYOUTS`) and write its manifest
    (default ``ROOT/manifest.jsonl``); ``options`` are the reader's own (``uncertain`` for chexpert,
    mimic-cxr and iu, ``convention`` for iu, ``reports`` for mimic-cxr, ``boxed_only`` for nih). Returns the
    manifest path."""
    if dataset not in LAYOUTS:
        raise ConfigError("dataset", f"unknown dataset {dataset!r}; known: {', '.join(LAYOUTS)}")
    accepted = inspect.signature(LAYOUTS[dataset]).parameters
    for name in options:
        if name not in accepted:
            raise ConfigError(name, f"not an option of {dataset} (its options: "
                              f"{[p for p in accepted if p not in ('root', 'path', 'directory', 'out')]})")
    return LAYOUTS[dataset](root, out=out, **options)
