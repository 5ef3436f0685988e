"""``mmdx inspect``: read files as the models will and report, one dict per file, what came out."""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from preprocessing.dicom import read_radiograph
from preprocessing.errors import ImageReadError
from preprocessing.letterbox import letterbox
from preprocessing.model_input import read_for_model


def iter_files(paths: Iterable[str | os.PathLike[str]]) -> Iterator[Path]:
    """Each path, with directories expanded recursively (sorted; hidden files skipped)."""
    for path in map(Path, paths):
        if path.is_dir():
            for root, dirs, files in os.walk(path):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                yield from (Path(root) / f for f in sorted(files) if not f.startswith("."))
        else:
            yield path


def inspect_paths(paths: Iterable[str | os.PathLike[str]], image_size: int | None = None,
                  preview_dir: str | os.PathLike[str] | None = None) -> Iterator[dict[str, Any]]:
    """Read every file under ``paths`` and yield one JSON-serialisable dict per file.

    Keys: path, ok, error (the reason, when not ok), modality, transfer_syntax (UID),
    original_shape [rows, cols], shape (of the preprocessed pixels), photometric, view_position,
    number_of_frames (only the first is read), voi_source, min/max/mean of the preprocessed pixels
    in [0, 1]. ``image_size`` reads and letterboxes the pixels as a model of that size sees them
    (:mod:`preprocessing.model_input`, before normalisation). Size claims a file cannot back are
    refused before decoding (:func:`preprocessing.dicom.check_pixel_budget`). ``preview_dir``
    gets an 8-bit PNG of the preprocessed pixels per readable file, named after the file. Bad files
    give ``ok: False`` and never stop the walk.
    """
    preview = Path(preview_dir) if preview_dir is not None else None
    if preview is not None:
        preview.mkdir(parents=True, exist_ok=True)
    for index, path in enumerate(iter_files(paths)):
        row: dict[str, Any] = {"path": str(path), "ok": False}
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                radiograph = read_radiograph(path) if image_size is None else read_for_model(path, image_size)
        except ImageReadError as err:
            row["error"] = err.reason
            yield row
            continue
        pixels = radiograph.pixels
        if image_size is not None:
            pixels, _ = letterbox(pixels, image_size)
        row.update(
            ok=True,
            modality=radiograph.modality,
            transfer_syntax=radiograph.transfer_syntax,
            original_shape=list(radiograph.original_shape),
            shape=list(pixels.shape),
            photometric=radiograph.photometric,
            view_position=radiograph.view_position,
            number_of_frames=radiograph.number_of_frames,
            voi_source=radiograph.voi_source,
            min=round(float(pixels.min()), 4),
            max=round(float(pixels.max()), 4),
            mean=round(float(pixels.mean()), 4),
        )
        if preview is not None:
            row["preview"] = str(_write_preview(pixels, preview / f"{index:05d}_{path.stem}.png"))
        yield row


def _write_preview(pixels: np.ndarray, out: Path) -> Path:
    from PIL import Image

    Image.fromarray(np.round(pixels * 255).astype(np.uint8)).save(out)
    return out
