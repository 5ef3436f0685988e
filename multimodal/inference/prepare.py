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
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydicom import Dataset
from pydicom.datadict import dictionary_VR
from pydicom.dataset import FileMetaDataset

from multimodal.inference.results import SourceImage
from multimodal.inference.sources import InputError, SkippedInput, StudyInput
from preprocessing.errors import ImageReadError
from preprocessing.letterbox import IMAGE_MEAN, IMAGE_STD, LetterboxGeometry
from preprocessing.model_input import model_view, read_for_model
from preprocessing.radiograph import Radiograph
from preprocessing.text import normalize_text
from preprocessing.views import Candidate, ViewInfo, choose_views, view_of, view_of_file

View = str | os.PathLike | Dataset | np.ndarray
# Header elements larger than this (overlays, LUTs, private blobs) are not sent with a study.
_MAX_HEADER_VALUE = 16 * 1024
# Code sequences (a view, an anatomic region) nest two levels; deeper ones are not sent.
_MAX_SEQUENCE_DEPTH = 2


@dataclass
class PreparedStudy:
    """A study ready for the model: views letterboxed and normalised, plus what the result needs.

    ``pixel_values`` is float32 ``[V, 1, S, S]`` (normalised with IMAGE_MEAN/IMAGE_STD, in the
    view rule's slot order, frontal first); ``headers`` holds, when asked for (SR writing), a flat
    copy of each used view's DICOM header (no sequences, no pixel or other bulk data: what the SR
    copies, and cheap and safe to send between processes). ``failed`` lists files of the study
    that could not be read (the study was scored without them), ``skipped`` files not used, each
    with the reason. ``timings_ms`` has ``decode`` and ``preprocess`` in milliseconds.
    """

    study_id: str
    pixel_values: np.ndarray
    sources: list[SourceImage]
    text: str = ""
    study_instance_uid: str | None = None
    headers: list[Dataset] = field(default_factory=list)
    timings_ms: dict[str, float] = field(default_factory=dict)
    failed: list[InputError] = field(default_factory=list)
    skipped: list[SkippedInput] = field(default_factory=list)

    def display_images(self) -> list[np.ndarray]:
        """The views as the model saw them, float ``[S, S]`` in [0, 1] (for overlays)."""
        return [np.clip(v[0] * IMAGE_STD + IMAGE_MEAN, 0.0, 1.0) for v in self.pixel_values]


class StudyReadError(ImageReadError):
    """No file of a study could be used. ``path``/``reason`` are the first failure's; ``failed``
    lists every file tried and ``skipped`` the files not used, for the accounting."""

    def __init__(self, study_id: str | None, failed: list[InputError], skipped: list[SkippedInput]):
        if failed:
            path, reason = failed[0].path, failed[0].reason
        else:
            path, reason = study_id, "no image to score: " + "; ".join(sorted({s.reason for s in skipped}) or
                                                                       ["the study has no image files"])
        super().__init__(path, reason)
        self.failed, self.skipped = failed, skipped


def prepare_study(study: StudyInput, image_size: int, max_views: int, keep_headers: bool = False) -> PreparedStudy:
    """Choose, decode and preprocess the views of ``study`` by the view rule
    (:mod:`preprocessing.views`): at most ``max_views``, a failed frontal replaced by the next one.

    Files whose header discovery did not read (manifest studies) have it read here first.
    Raises :class:`StudyReadError` when no file of the study can be used.
    """
    candidates = study.candidates() if study.views else candidates_for(study.paths)
    return prepare_candidates(candidates, image_size, max_views, study.study_id, study.text,
                              study.study_instance_uid, keep_headers)


def make_preparer(config, keep_headers: bool = False) -> functools.partial:
    """:func:`prepare_study` bound to a model config's image size and views (picklable, for worker
    processes; needs only the config, so decoding can start before the model is loaded)."""
    return functools.partial(prepare_study, image_size=config.image_size, max_views=config.max_views,
                             keep_headers=keep_headers)


def candidates_for(views: Sequence[View]) -> list[Candidate]:
    """In-memory or on-disk views as view-rule candidates: Datasets and DICOM files by their header
    (a header read only), arrays and other files as views of unknown kind, in the given order."""
    candidates = []
    for k, view in enumerate(views):
        if isinstance(view, np.ndarray):
            candidates.append(Candidate(view, f"<array {k}>"))
        elif isinstance(view, Dataset):
            candidates.append(Candidate(view, dataset_name(view, k), _view_or_unknown(view)))
        else:
            candidates.append(Candidate(view, str(view), view_of_file(view)))
    return candidates


def dataset_name(ds: Dataset, index: int) -> str:
    """How results name an in-memory view: its file name when read from one, else
    ``<dataset SOPInstanceUID>`` (``<dataset INDEX>`` without one)."""
    filename = getattr(ds, "filename", None)
    return filename if isinstance(filename, str) else f"<dataset {ds.get('SOPInstanceUID', index)}>"


def prepare_candidates(candidates: Sequence[Candidate], image_size: int, max_views: int, study_id: str | None,
                       text: str | None, study_uid: str | None, keep_headers: bool) -> PreparedStudy:
    """Apply the view rule to ``candidates``, decode the chosen views and build the PreparedStudy."""
    choice = choose_views(candidates, max_views, functools.partial(read_view, image_size=image_size))
    failed = [InputError(c.name, reason, study_id, scope="file") for c, reason in choice.failed]
    skipped = [SkippedInput(c.name, reason, study_id) for c, reason in choice.skipped]
    if not choice.used:
        raise StudyReadError(study_id, failed, skipped)
    views = [(radiograph, ms, c.view) for c, (radiograph, ms) in choice.used]
    prepared = prepared_study(study_id, views, image_size, text, study_uid, keep_headers)
    prepared.failed, prepared.skipped = failed, skipped
    return prepared


def read_view(view: View, image_size: int) -> tuple[Radiograph, float]:
    """A view as a :class:`Radiograph` (read as every model reads it:
    :func:`preprocessing.model_input.read_for_model`) and its decode time in ms."""
    t0 = time.perf_counter()
    if isinstance(view, np.ndarray):
        radiograph = radiograph_from_array(view)
    else:
        radiograph = read_for_model(view if isinstance(view, Dataset) else Path(view), image_size)
    return radiograph, (time.perf_counter() - t0) * 1e3


def _view_or_unknown(ds: Dataset) -> ViewInfo:
    try:
        return view_of(ds)
    except Exception:  # noqa: BLE001 - a header the rule cannot read is a view of unknown kind
        return ViewInfo()


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


def prepared_study(study_id: str | None, views: list[tuple[Radiograph, float, ViewInfo | None]], image_size: int,
                   text: str | None, study_uid: str | None, keep_headers: bool) -> PreparedStudy:
    """Letterbox and normalise decoded views ((radiograph, decode ms, view) in slot order) into a PreparedStudy."""
    t0 = time.perf_counter()
    pixel_values = np.empty((len(views), 1, image_size, image_size), dtype=np.float32)
    sources = []
    for k, (radiograph, _, view) in enumerate(views):
        pixel_values[k, 0], geometry = model_view(radiograph, image_size)
        sources.append(_source_image(radiograph, geometry, view))
    preprocess_ms = (time.perf_counter() - t0) * 1e3
    first = views[0][0]
    study_uid = study_uid or first.study_uid
    return PreparedStudy(
        study_id=study_id or study_uid or (Path(first.path).stem if first.path else "study"),
        pixel_values=pixel_values, sources=sources, text=normalize_text(text), study_instance_uid=study_uid,
        headers=[sr_header(r.dataset) for r, _, _ in views if r.dataset is not None] if keep_headers else [],
        timings_ms={"decode": sum(ms for _, ms, _ in views), "preprocess": preprocess_ms})


def sr_header(ds: Dataset) -> Dataset:
    """The part of a DICOM header a Structured Report may copy: top-level elements, sequences at
    most ``_MAX_SEQUENCE_DEPTH`` deep (code sequences), no private tags, overlays or bulk values
    (> 16 KiB), and the file meta. Small and shallow, so it pickles between processes whatever the
    source holds (a file with 100 nested sequences once broke that)."""
    header = Dataset()
    for tag, raw in ds.items():
        if tag.is_private or tag.group >= 0x6000 or _vr(raw) is None:
            continue
        try:
            element = ds[tag]
            value = element.value
            if element.VR == "SQ" and not _shallow(value, _MAX_SEQUENCE_DEPTH):
                continue
        except Exception:  # noqa: BLE001 - a value that does not parse is not copied
            continue
        if isinstance(value, (bytes, bytearray)) and len(value) > _MAX_HEADER_VALUE:
            continue
        header[tag] = element
    if hasattr(ds, "file_meta"):
        header.file_meta = FileMetaDataset(ds.file_meta)
    return header


def _shallow(sequence, depth: int) -> bool:
    """Whether a sequence nests at most ``depth`` levels (a sequence of plain items is depth 1)."""
    if depth == 0:
        return False
    return all(_shallow(element.value, depth - 1) for item in sequence for element in item if element.VR == "SQ")


def _vr(element) -> str | None:
    """An element's VR, from the data dictionary when the file left it implicit (None: unknown tag)."""
    if element.VR:
        return element.VR
    try:
        return dictionary_VR(element.tag)
    except KeyError:
        return None


def _source_image(radiograph: Radiograph, geometry: LetterboxGeometry, view: ViewInfo | None) -> SourceImage:
    ds = radiograph.dataset
    rows, cols = geometry.coord_shape
    return SourceImage(path=radiograph.path, rows=int(rows), columns=int(cols), sop_instance_uid=radiograph.sop_uid,
                       sop_class_uid=str(ds.SOPClassUID) if ds is not None and "SOPClassUID" in ds else None,
                       series_instance_uid=radiograph.series_uid, square_to_pixels=square_to_pixels(geometry),
                       view=view.label if view is not None else None, frame=1,
                       number_of_frames=radiograph.number_of_frames)


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
