"""The CPU half of inference: files, Datasets or arrays → :class:`PreparedStudy` (no model, no torch).

:func:`prepare_study` reads each view with resolution-aware decoding (``target_size =
config.image_size``), letterboxes and normalises it, and records where the model's square frame
lies in the source image. It runs in the decode worker processes of batch scoring, so this module
imports only numpy, OpenCV and the DICOM readers: a worker starts in about a second instead of
the ~10 s that importing torch and MONAI takes on the 2-core dev machine, and a worker restarted
after a codec crash is back as quickly.
"""

from __future__ import annotations

import functools
import os
import time
from dataclasses import dataclass, field
from fnmatch import fnmatch
from pathlib import Path

import numpy as np
from pydicom import Dataset

from multimodal.inference.results import SourceImage
from multimodal.inference.sources import StudyInput
from preprocessing.dicom import read_radiograph
from preprocessing.errors import ImageReadError
from preprocessing.letterbox import IMAGE_MEAN, IMAGE_STD, LetterboxGeometry, geometry_for, letterbox, normalize
from preprocessing.radiograph import Radiograph
from preprocessing.text import normalize_text

View = str | os.PathLike | Dataset | np.ndarray


@dataclass
class PreparedStudy:
    """A study ready for the model: views letterboxed and normalised, plus what the result needs.

    ``pixel_values`` is float32 ``[V, 1, S, S]`` (normalised with IMAGE_MEAN/IMAGE_STD, frontal
    first); ``headers`` holds the DICOM headers (no pixel data) when asked for (SR writing).
    ``timings_ms`` has ``decode`` and ``preprocess`` in milliseconds.
    """

    study_id: str
    pixel_values: np.ndarray
    sources: list[SourceImage]
    text: str = ""
    study_instance_uid: str | None = None
    headers: list[Dataset] = field(default_factory=list)
    timings_ms: dict[str, float] = field(default_factory=dict)

    def display_images(self) -> list[np.ndarray]:
        """The views as the model saw them, float ``[S, S]`` in [0, 1] (for overlays)."""
        return [np.clip(v[0] * IMAGE_STD + IMAGE_MEAN, 0.0, 1.0) for v in self.pixel_values]


def prepare_study(study: StudyInput, image_size: int, max_views: int, keep_headers: bool = False,
                  fault_inject: str | None = None) -> PreparedStudy:
    """Decode and preprocess the first ``max_views`` files of ``study`` (see module docstring).

    Raises :class:`~preprocessing.errors.ImageReadError` naming the file that failed.
    ``fault_inject`` is a test hook: a file name matching this glob aborts the process, as a
    crashing native decoder would.
    """
    if not study.paths:
        raise ImageReadError(study.study_id, "the study has no image files")
    if fault_inject and any(fnmatch(Path(p).name, fault_inject) for p in study.paths):
        os.abort()
    views = [read_view(path, image_size) for path in study.paths[:max_views]]
    return prepared_study(study.study_id, views, image_size, study.text, study.study_instance_uid, keep_headers)


def make_preparer(config, keep_headers: bool = False, fault_inject: str | None = None) -> functools.partial:
    """:func:`prepare_study` bound to a model config's image size and views (picklable, for worker
    processes; needs only the config, so decoding can start before the model is loaded)."""
    return functools.partial(prepare_study, image_size=config.image_size, max_views=config.max_views,
                             keep_headers=keep_headers, fault_inject=fault_inject)


def read_view(view: View, image_size: int) -> tuple[Radiograph, float]:
    """A view as a :class:`Radiograph` and its decode time in ms.

    Files are read with ``fit="long"``: the letterbox scales the long side to ``image_size``, so
    that is the side the (JPEG 2000 reduced-resolution) decode must keep at or above it.
    """
    t0 = time.perf_counter()
    if isinstance(view, np.ndarray):
        radiograph = radiograph_from_array(view)
    else:
        radiograph = read_radiograph(view if isinstance(view, Dataset) else Path(view), target_size=image_size,
                                     fit="long")
    return radiograph, (time.perf_counter() - t0) * 1e3


def radiograph_from_array(pixels: np.ndarray) -> Radiograph:
    """A ``[H, W]`` array in display orientation as a Radiograph: floats must be in [0, 1]; integer
    arrays are scaled by their own minimum and maximum."""
    array = np.asarray(pixels)
    if array.ndim != 2:
        raise ImageReadError(None, f"an image array must be [H, W] grayscale, got shape {array.shape}")
    if np.issubdtype(array.dtype, np.integer):
        lo, hi = float(array.min()), float(array.max())
        array = (array.astype(np.float32) - lo) / max(hi - lo, 1.0)
    return Radiograph(pixels=np.clip(array, 0.0, 1.0).astype(np.float32), original_shape=array.shape,
                      decoded_shape=array.shape)


def prepared_study(study_id: str | None, views: list[tuple[Radiograph, float]], image_size: int, text: str | None,
                   study_uid: str | None, keep_headers: bool) -> PreparedStudy:
    """Letterbox and normalise decoded views (as :func:`read_view` returns them) into a PreparedStudy."""
    t0 = time.perf_counter()
    pixel_values = np.empty((len(views), 1, image_size, image_size), dtype=np.float32)
    sources = []
    for k, (radiograph, _) in enumerate(views):
        square, _ = letterbox(radiograph.pixels, image_size)
        pixel_values[k, 0] = normalize(square)
        sources.append(_source_image(radiograph, geometry_for(radiograph, image_size)))
    preprocess_ms = (time.perf_counter() - t0) * 1e3
    first = views[0][0]
    study_uid = study_uid or first.study_uid
    return PreparedStudy(
        study_id=study_id or study_uid or (Path(first.path).stem if first.path else "study"),
        pixel_values=pixel_values, sources=sources, text=normalize_text(text), study_instance_uid=study_uid,
        headers=[r.dataset for r, _ in views if r.dataset is not None] if keep_headers else [],
        timings_ms={"decode": sum(ms for _, ms in views), "preprocess": preprocess_ms})


def _source_image(radiograph: Radiograph, geometry: LetterboxGeometry) -> SourceImage:
    ds = radiograph.dataset
    rows, cols = geometry.coord_shape
    return SourceImage(path=radiograph.path, rows=int(rows), columns=int(cols), sop_instance_uid=radiograph.sop_uid,
                       sop_class_uid=str(ds.SOPClassUID) if ds is not None and "SOPClassUID" in ds else None,
                       series_instance_uid=radiograph.series_uid, square_to_pixels=square_to_pixels(geometry))


def square_to_pixels(geometry: LetterboxGeometry) -> tuple[float, float, float, float]:
    """The inverse of the letterbox (and display flips): (ax, bx, ay, by) with x = ax * u + bx,
    y = ay * v + by mapping the model's normalised square (u, v in [0, 1]) to source pixels."""
    rows, cols = geometry.coord_shape
    # square px -> displayed px: (s - pad) / scale; displayed px -> source px: * source / displayed.
    kx = cols / geometry.shape[1] / geometry.scale
    ky = rows / geometry.shape[0] / geometry.scale
    ax, bx = geometry.size * kx, -geometry.pad_x * kx
    ay, by = geometry.size * ky, -geometry.pad_y * ky
    if geometry.flips[0]:
        ax, bx = -ax, cols - bx
    if geometry.flips[1]:
        ay, by = -ay, rows - by
    return float(ax), float(bx), float(ay), float(by)
