"""Which images of a study the model sees, and in which slot: the one view rule of the project.

``mmdx score``, the :class:`~multimodal.inference.predictor.Predictor`, ``mmdx pacs score`` and the
DIMSE listener all choose views here, from the DICOM header, never from file order alone.

**What a file shows** (:func:`view_of`, first clue that decides wins):

1. ViewPosition: ``PA`` / ``AP`` are frontal; ``LL`` / ``RL`` / ``LATERAL`` are lateral;
2. ViewCodeSequence: the code meaning (``postero-anterior``, ``antero-posterior``, ``... lateral``);
3. PatientOrientation: rows running left/right (``L``/``R``) is a frontal, anterior/posterior
   (``A``/``P``) a lateral projection;
4. SeriesDescription: the words ``PA``, ``AP``, ``FRONTAL``, ``LAT``/``LATERAL``, ``LL``, ``RL``;
5. ImageLaterality ``B`` (both sides): a frontal chest film.

A lateral's side comes from ViewPosition (``LL``/``RL``) or, failing that, ImageLaterality.

**Which files are used** (:func:`choose_views`): non-image objects (structured reports, key object
selections, presentation states, encapsulated documents, raw data, waveforms) never take a slot,
and a second file with the SOPInstanceUID of an earlier one is a duplicate. The first slot goes to
the best *readable* frontal (PA before AP before a frontal of unknown projection); the second to
the best readable lateral (LL before RL); the remaining slots to the other readable images in that
rank, then in input order (instance number for DICOM folders, list order otherwise). A frontal
that fails to decode is recorded as failed and the next frontal is tried. When a study has no
frontal, the first slot goes to the best image it has. Files left over are *skipped*, with the
reason.

This module reads headers only and imports nothing from ``multimodal``.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import pydicom
from pydicom import Dataset
from pydicom.uid import UID

from preprocessing.errors import ImageReadError

# The header elements the rule reads (for header-only reads of large archives).
VIEW_TAGS = ["SOPClassUID", "SOPInstanceUID", "ViewPosition", "ViewCodeSequence", "PatientOrientation",
             "SeriesDescription", "ImageLaterality", "Laterality", "InstanceNumber", "NumberOfFrames"]
FRONTAL, LATERAL, UNKNOWN = "frontal", "lateral", "unknown"
# Storage SOP class families that hold no image (PS3.4 B.5), by UID prefix.
_NON_IMAGE_FAMILIES = (
    ("1.2.840.10008.5.1.4.1.1.88.", "structured report"),
    ("1.2.840.10008.5.1.4.1.1.11.", "presentation state"),
    ("1.2.840.10008.5.1.4.1.1.104.", "encapsulated document"),
    ("1.2.840.10008.5.1.4.1.1.9.", "waveform"),
    ("1.2.840.10008.5.1.4.1.1.66", "raw data or registration"),
    ("1.2.840.10008.5.1.4.1.1.481.", "radiotherapy object"),
)
_WORDS = re.compile(r"[A-Z]+")
_FRONTAL_WORDS = {"PA": "PA", "AP": "AP", "FRONTAL": "", "PAC": "PA"}
_LATERAL_WORDS = {"LAT": "", "LATERAL": "", "LL": "LL", "RL": "RL", "LLAT": "LL", "RLAT": "RL"}
_RANK = {(FRONTAL, "PA"): 0, (FRONTAL, "AP"): 1, (FRONTAL, ""): 2, (LATERAL, "LL"): 3, (LATERAL, ""): 4,
         (LATERAL, "RL"): 5}
_OTHER_RANK = 6


@dataclass(frozen=True)
class ViewInfo:
    """What the header says about one file: ``kind`` (frontal / lateral / unknown), ``projection``
    (``PA``, ``AP``, ``LL``, ``RL`` or ""), ``not_image`` (why it is no image, or None),
    ``sop_instance_uid`` and ``frames`` (NumberOfFrames, 1 when absent)."""

    kind: str = UNKNOWN
    projection: str = ""
    not_image: str | None = None
    sop_instance_uid: str | None = None
    frames: int = 1

    @property
    def label(self) -> str:
        """``"frontal (PA)"``, ``"lateral"``, ``"unknown"``: the view a file became, for people."""
        return f"{self.kind} ({self.projection})" if self.projection else self.kind

    @property
    def rank(self) -> int:
        return _RANK.get((self.kind, self.projection), _OTHER_RANK)


def view_of(ds: Dataset) -> ViewInfo:
    """The :class:`ViewInfo` of a DICOM header (see the module docstring for the clues and order)."""
    kind, projection = _from_view_position(_text(ds, "ViewPosition"))
    if kind == UNKNOWN:
        kind, projection = _from_view_code(ds.get("ViewCodeSequence"))
    if kind == UNKNOWN:
        kind = _from_orientation(ds.get("PatientOrientation"))
    if kind == UNKNOWN:
        kind, projection = _from_words(_text(ds, "SeriesDescription"))
    laterality = _text(ds, "ImageLaterality") or _text(ds, "Laterality")
    if kind == UNKNOWN and laterality == "B":
        kind = FRONTAL
    if kind == LATERAL and not projection and laterality in ("L", "R"):
        projection = laterality + "L"
    frames = ds.get("NumberOfFrames")
    try:
        frames = max(1, int(frames)) if frames not in (None, "") else 1
    except (TypeError, ValueError):
        frames = 1
    sop = _text(ds, "SOPInstanceUID", upper=False) or None
    return ViewInfo(kind, projection, not_image_reason(ds), sop, frames)


def position_rank(view_position: str | None) -> int:
    """The rule's rank of a bare view name (a data set's ViewPosition column: ``PA``, ``AP``,
    ``LATERAL``, ``LL``...; other text is read like a series description); lower comes first."""
    text = (view_position or "").strip().upper()
    kind, projection = _from_view_position(text)
    if kind == UNKNOWN:
        kind, projection = _from_words(text)
    return ViewInfo(kind, projection).rank


def view_of_file(path: str | os.PathLike[str]) -> ViewInfo:
    """The :class:`ViewInfo` of a file from a header-only read; a view of unknown kind when the
    file is no DICOM (PNG...) or unreadable (its decoder says why later)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return view_of(pydicom.dcmread(path, stop_before_pixels=True, specific_tags=VIEW_TAGS))
    except Exception:  # noqa: BLE001
        return ViewInfo()


def not_image_reason(ds: Dataset) -> str | None:
    """``"not an image (Basic Text SR)"`` for SR, KO, PR, PDF... SOP classes; None for images."""
    sop_class = _text(ds, "SOPClassUID", upper=False)
    for prefix, family in _NON_IMAGE_FAMILIES:
        if sop_class.startswith(prefix):
            name = UID(sop_class).name
            return f"not an image ({name if name != sop_class else family})"
    return None


def _text(ds: Dataset, keyword: str, upper: bool = True) -> str:
    try:
        value = ds.get(keyword)
    except Exception:  # noqa: BLE001 - a value that does not parse is no clue
        return ""
    text = str(value).strip() if value is not None and not isinstance(value, bytes) else ""
    return text.upper() if upper else text


def _from_view_position(value: str) -> tuple[str, str]:
    if value in ("PA", "AP"):
        return FRONTAL, value
    if value in ("LL", "RL"):
        return LATERAL, value
    if value in ("LAT", "LATERAL", "LLD", "RLD"):
        return LATERAL, value[:2] if value in ("LLD", "RLD") else ""
    return UNKNOWN, ""


def _from_view_code(sequence: Any) -> tuple[str, str]:
    try:
        meaning = str(sequence[0].get("CodeMeaning", "")).lower() if sequence else ""
    except Exception:  # noqa: BLE001
        return UNKNOWN, ""
    if "lateral" in meaning:
        return LATERAL, "LL" if "left" in meaning else "RL" if "right" in meaning else ""
    if "postero-anterior" in meaning or "posteroanterior" in meaning:
        return FRONTAL, "PA"
    if "antero-posterior" in meaning or "anteroposterior" in meaning:
        return FRONTAL, "AP"
    return UNKNOWN, ""


def _from_orientation(orientation: Any) -> str:
    try:
        if orientation is None or isinstance(orientation, str) or len(orientation) != 2:
            return UNKNOWN
        row = str(orientation[0]).upper()[:1]
    except Exception:  # noqa: BLE001
        return UNKNOWN
    return FRONTAL if row in ("L", "R") else LATERAL if row in ("A", "P") else UNKNOWN


def _from_words(description: str) -> tuple[str, str]:
    for word in _WORDS.findall(description):
        if word in _FRONTAL_WORDS:
            return FRONTAL, _FRONTAL_WORDS[word]
        if word in _LATERAL_WORDS:
            return LATERAL, _LATERAL_WORDS[word]
    return UNKNOWN, ""


T = TypeVar("T")


@dataclass
class Candidate(Generic[T]):
    """One file (or Dataset, or array) of a study: ``item`` is what ``read`` gets, ``name`` names it
    for people (its path), ``view`` is its :class:`ViewInfo` (unknown when not DICOM)."""

    item: T
    name: str
    view: ViewInfo = field(default_factory=ViewInfo)


@dataclass
class ViewChoice(Generic[T]):
    """What :func:`choose_views` decided: ``used`` (candidate, what ``read`` returned) in slot order,
    ``failed`` and ``skipped`` as (candidate, reason)."""

    used: list[tuple[Candidate[T], Any]] = field(default_factory=list)
    failed: list[tuple[Candidate[T], str]] = field(default_factory=list)
    skipped: list[tuple[Candidate[T], str]] = field(default_factory=list)


def slots_description(max_views: int) -> str:
    """``"frontal + lateral"`` for two slots: what the model takes, for skip reasons."""
    roles = [FRONTAL, LATERAL][:max_views] + ["any view"] * max(0, max_views - 2)
    return " + ".join(roles)


def rank_candidates(candidates: Sequence[Candidate[T]]) -> list[Candidate[T]]:
    """Candidates in the rule's order: PA, AP, other frontal, LL, lateral, RL, unknown; ties by input order."""
    order = {id(c): k for k, c in enumerate(candidates)}
    return sorted(candidates, key=lambda c: (c.view.rank, order[id(c)]))


def choose_views(candidates: Sequence[Candidate[T]], max_views: int, read: Callable[[T], Any]) -> ViewChoice[T]:
    """Apply the rule (module docstring): decode candidates with ``read`` until ``max_views`` are used.

    ``read`` raises :class:`~preprocessing.errors.ImageReadError` for a file it cannot use; that
    candidate is ``failed`` and the next one of the same kind is tried. Nothing is lost: every
    candidate ends in exactly one of ``used``, ``failed``, ``skipped``.
    """
    choice: ViewChoice[T] = ViewChoice()
    seen: dict[str, str] = {}
    images = []
    for candidate in candidates:
        sop = candidate.view.sop_instance_uid
        if candidate.view.not_image:
            choice.skipped.append((candidate, candidate.view.not_image))
        elif sop and sop in seen:
            choice.skipped.append((candidate, f"same SOPInstanceUID as {seen[sop]}"))
        else:
            if sop:
                seen[sop] = candidate.name
            images.append(candidate)
    ranked = rank_candidates(images)
    tried: set[int] = set()

    def take(wanted: str | None) -> None:
        for candidate in ranked:
            if len(choice.used) >= max_views:
                return
            if id(candidate) in tried or (wanted is not None and candidate.view.kind != wanted):
                continue
            tried.add(id(candidate))
            try:
                choice.used.append((candidate, read(candidate.item)))
            except ImageReadError as err:
                choice.failed.append((candidate, err.reason))
                continue
            if wanted is not None:
                return

    take(FRONTAL)
    take(LATERAL)
    take(None)
    left = [c for c in ranked if id(c) not in tried]
    for candidate in left:
        choice.skipped.append((candidate, f"study has {len(images)} images, the model takes {max_views} "
                                          f"({slots_description(max_views)})"))
    return choice
