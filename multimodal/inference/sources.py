"""Input discovery for batch scoring: folders, manifests and path lists turned into studies.

A *study* is what the model scores at once: one or more views of one patient visit. DICOM files
are grouped by their StudyInstanceUID, read header-only (no pixel data), so that discovering a
large archive costs little; PNG/JPEG files are one-image studies. Discovery never decodes pixels:
a file whose pixels are broken is found out later, in a decode worker, and recorded as a failure of
its study.
"""

from __future__ import annotations

import hashlib
import warnings
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pydicom

# Read as plain images without trying a DICOM header first.
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"})
# Files that sit beside radiographs in an archive and are never images; everything else in a
# folder is tried as DICOM (archives often hold DICOM files without any suffix).
IGNORED_SUFFIXES = frozenset({".json", ".jsonl", ".txt", ".csv", ".tsv", ".md", ".parquet", ".yaml", ".yml",
                              ".xml", ".html", ".pdf", ".log", ".npz", ".npy", ".py", ".zip", ".gz"})
MANIFEST_SUFFIX = ".jsonl"
PATH_LIST_SUFFIX = ".txt"
# Frontal views come first: the model's heat maps are computed on the first view.
FRONTAL_VIEWS = ("PA", "AP")
_HEADER_TAGS = ["StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "ViewPosition", "InstanceNumber"]


@dataclass(frozen=True)
class StudyInput:
    """One study to score: its id, its image files (frontal first) and optional clinical text."""

    study_id: str
    paths: tuple[str, ...]
    text: str | None = None
    study_instance_uid: str | None = None


@dataclass(frozen=True)
class InputError:
    """A file or study that could not be scored; ``study_id`` is None when the file has no study."""

    path: str
    reason: str
    study_id: str | None = None
    stage: str = "decode"

    @property
    def key(self) -> str:
        """What a resumed run matches on: the study id, else the file path."""
        return self.study_id if self.study_id is not None else self.path

    def to_dict(self) -> dict:
        return {"study_id": self.study_id, "path": self.path, "reason": self.reason, "stage": self.stage,
                "key": self.key}


@dataclass
class Discovery:
    """What :func:`discover_studies` found: studies to score and files that are not scorable."""

    studies: list[StudyInput] = field(default_factory=list)
    errors: list[InputError] = field(default_factory=list)


@dataclass
class _DicomHeader:
    path: str
    study_uid: str | None
    view: str
    instance: int


def discover_studies(inputs: Sequence[str | Path]) -> Discovery:
    """Turn folders, manifests (``.jsonl``), path lists (``.txt``) and single files into studies.

    Folders are walked recursively in sorted order. A manifest line gives its study id, image paths
    and text (the project's manifest format, :func:`multimodal.data.manifest.load_manifest`). A path
    list holds one file or folder per line, relative to the list's own folder. Studies come back in
    a deterministic order; a study id found twice (e.g. the same folder given twice) is kept once.
    """
    found = Discovery()
    files: list[tuple[Path, Path]] = []  # (file, root its study id is relative to)
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            files.extend((f, path) for f in _walk(path))
        elif path.suffix.lower() == MANIFEST_SUFFIX:
            found.studies.extend(_studies_from_manifest(path))
        elif path.suffix.lower() == PATH_LIST_SUFFIX:
            files.extend(_files_from_path_list(path, found.errors))
        elif path.is_file():
            files.append((path, path.parent))
        else:
            found.errors.append(InputError(str(path), "no such file or folder", stage="discover"))
    found.studies.extend(_group_files(files))
    found.studies = _unique(found.studies)
    return found


def shard(studies: Iterable[StudyInput], rank: int, world_size: int) -> list[StudyInput]:
    """The studies this rank scores: a stable hash of the study id modulo ``world_size``.

    Stable across processes and machines (unlike Python's ``hash``), so every rank agrees on the
    split without talking to the others.
    """
    if world_size <= 1:
        return list(studies)
    return [s for s in studies if _stable_hash(s.study_id) % world_size == rank]


def _stable_hash(text: str) -> int:
    return int.from_bytes(hashlib.sha1(text.encode()).digest()[:8], "big")


def _walk(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")
                  and p.suffix.lower() not in IGNORED_SUFFIXES)


def _files_from_path_list(path_list: Path, errors: list[InputError]) -> list[tuple[Path, Path]]:
    files = []
    for line in path_list.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        path = Path(line) if Path(line).is_absolute() else path_list.parent / line
        if path.is_dir():
            files.extend((f, path) for f in _walk(path))
        elif path.is_file():
            files.append((path, path.parent))
        else:
            errors.append(InputError(str(path), f"listed in {path_list} but does not exist", stage="discover"))
    return files


def _studies_from_manifest(path: Path) -> list[StudyInput]:
    from multimodal.data.manifest import load_manifest

    return [StudyInput(study_id=r.study_id, paths=tuple(r.images), text=r.text or None) for r in load_manifest(path)]


def _group_files(files: list[tuple[Path, Path]]) -> list[StudyInput]:
    """DICOM files with a StudyInstanceUID are grouped by it; every other file is a study of its own.

    A file whose header cannot be read is still a study: its decode worker then reports why it
    is unreadable (not DICOM, truncated...), with the reader's own words.
    """
    studies: list[StudyInput] = []
    by_uid: dict[str, list[_DicomHeader]] = defaultdict(list)
    for path, root in files:
        header = None if path.suffix.lower() in IMAGE_SUFFIXES else _read_header(path)
        if header is None or header.study_uid is None:
            studies.append(StudyInput(study_id=_relative_id(path, root), paths=(str(path),)))
        else:
            by_uid[header.study_uid].append(header)
    for uid, headers in by_uid.items():
        headers.sort(key=lambda h: (h.view not in FRONTAL_VIEWS, h.instance, h.path))
        studies.append(StudyInput(study_id=uid, paths=tuple(h.path for h in headers), study_instance_uid=uid))
    return studies


def _read_header(path: Path) -> _DicomHeader | None:
    """The grouping tags of a DICOM file, or None when its header does not parse."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # over-long values and other fixable quirks do not matter here
            ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=_HEADER_TAGS)
        uid = str(ds.get("StudyInstanceUID", "") or "") or None
        instance = ds.get("InstanceNumber")
        return _DicomHeader(path=str(path), study_uid=uid, view=str(ds.get("ViewPosition", "") or "").upper(),
                            instance=int(instance) if instance not in (None, "") else 0)
    except Exception:  # noqa: BLE001 - any parse failure means "not groupable"; the decoder names the cause
        return None


def _relative_id(path: Path, root: Path) -> str:
    """A readable, stable study id for a file without a study UID: its path under the input, no suffix."""
    try:
        rel = path.relative_to(root)
    except ValueError:
        rel = Path(path.name)
    return rel.with_suffix("").as_posix()


def _unique(studies: list[StudyInput]) -> list[StudyInput]:
    seen: dict[str, StudyInput] = {}
    for study in studies:
        seen.setdefault(study.study_id, study)
    return list(seen.values())

