"""Input discovery for batch scoring: folders, manifests and path lists turned into studies.

A *study* is what the model scores at once: one or more views of one patient visit. DICOM files
are grouped by their StudyInstanceUID, read header-only (no pixel data), so that discovering a
large archive costs little; PNG/JPEG files are one-image studies. Discovery never decodes pixels:
a file whose pixels are broken is found out later, in a decode worker, and recorded as a failure.

Every input is accounted for: it becomes part of a study, an :class:`InputError` (a path that
does not exist, a bad manifest line) or a :class:`SkippedInput` (a DICOM object that holds no
image, a second copy of a SOPInstanceUID, a repeated manifest study id), each with its reason.
"""

from __future__ import annotations

import hashlib
import warnings
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pydicom

from preprocessing.views import VIEW_TAGS, Candidate, ViewInfo, rank_candidates, view_of

# Read as plain images without trying a DICOM header first.
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"})
# Files that sit beside radiographs in an archive and are never images; everything else in a
# folder is tried as DICOM (archives often hold DICOM files without any suffix).
IGNORED_SUFFIXES = frozenset({".json", ".jsonl", ".txt", ".csv", ".tsv", ".md", ".parquet", ".yaml", ".yml",
                              ".xml", ".html", ".pdf", ".log", ".npz", ".npy", ".py", ".zip", ".gz"})
MANIFEST_SUFFIX = ".jsonl"
PATH_LIST_SUFFIX = ".txt"
_HEADER_TAGS = ["StudyInstanceUID", *VIEW_TAGS]


@dataclass(frozen=True)
class StudyInput:
    """One study to score: its id, its files (in the view rule's order, frontal first), optional
    clinical text, and per file the :class:`~preprocessing.views.ViewInfo` its header gave (empty
    when no header was read: manifests, plain images)."""

    study_id: str
    paths: tuple[str, ...]
    text: str | None = None
    study_instance_uid: str | None = None
    views: tuple[ViewInfo, ...] = ()

    def candidates(self) -> list[Candidate[str]]:
        """The files as :func:`~preprocessing.views.choose_views` candidates."""
        views = self.views or tuple(ViewInfo() for _ in self.paths)
        return [Candidate(path, path, view) for path, view in zip(self.paths, views)]


@dataclass(frozen=True)
class InputError:
    """A file or study that could not be scored; ``study_id`` is None when the file has no study.

    ``scope`` is ``study`` (the study could not be scored; a resumed run skips it), ``file`` (one
    file of a study that was scored without it, e.g. an unreadable frontal replaced by another) or
    ``output`` (an SR or heat map of a scored study could not be written).
    """

    path: str
    reason: str
    study_id: str | None = None
    stage: str = "decode"
    scope: str = "study"

    @property
    def key(self) -> str:
        """What a resumed run matches on: the study id, else (or for one file) ``file:<path>``."""
        if self.scope == "file" or self.study_id is None:
            return f"file:{self.path}"
        return self.study_id  # a study, or for scope "output" (an SR not written) "<study>#sr"

    def to_dict(self) -> dict:
        return {"study_id": self.study_id, "path": self.path, "reason": self.reason, "stage": self.stage,
                "scope": self.scope, "key": self.key}


@dataclass(frozen=True)
class SkippedInput:
    """A readable input deliberately not used, with a reason a person understands. ``path`` is the
    file, or ``<manifest>:<line>`` for a manifest line."""

    path: str
    reason: str
    study_id: str | None = None

    @property
    def key(self) -> str:
        return f"file:{self.path}"

    def to_dict(self) -> dict:
        return {"study_id": self.study_id, "path": self.path, "reason": self.reason, "key": self.key}


@dataclass
class Discovery:
    """What :func:`discover_studies` found: studies to score, inputs that cannot be scored
    (``errors``) and inputs deliberately not used (``skipped``)."""

    studies: list[StudyInput] = field(default_factory=list)
    errors: list[InputError] = field(default_factory=list)
    skipped: list[SkippedInput] = field(default_factory=list)


def discover_studies(inputs: Sequence[str | Path]) -> Discovery:
    """Turn folders, manifests (``.jsonl``), path lists (``.txt``) and single files into studies.

    Folders are walked recursively in sorted order; a file reached twice (the same folder given
    twice) counts once. A manifest line gives its study id, image paths and text (the project's
    manifest format, :func:`multimodal.data.manifest.load_manifest`); a bad line is an error and a
    repeated study id is skipped, both naming the line. A path list holds one file or folder per
    line, relative to the list's own folder. DICOM objects that hold no image (SR, KO, PR,
    encapsulated PDF...) and second copies of a SOPInstanceUID are skipped with the reason.

    Study ids: the StudyInstanceUID, the manifest's id, or the file's path under its input folder
    (suffix included, so ``1.png`` and ``1.jpg`` differ). Ids are unique: a study whose id an
    earlier, different study already has gets a short hash of its files appended
    (``<id>~1a2b3c4d``), the same in every run over the same inputs.
    """
    found = Discovery()
    files: dict[Path, tuple[Path, Path]] = {}  # resolved path -> (file, root its study id is relative to)
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            listed = [(f, path) for f in _walk(path)]
        elif path.suffix.lower() == MANIFEST_SUFFIX:
            found.studies.extend(_studies_from_manifest(path, found))
            continue
        elif path.suffix.lower() == PATH_LIST_SUFFIX:
            listed = _files_from_path_list(path, found.errors)
        elif path.is_file():
            listed = [(path, path.parent)]
        else:
            found.errors.append(InputError(str(path), "no such file or folder", stage="discover"))
            continue
        for file, root in listed:
            files.setdefault(file.resolve(), (file, root))
    found.studies.extend(_group_files(list(files.values()), found.skipped))
    found.studies = _unique_ids(found.studies)
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


def _studies_from_manifest(path: Path, found: Discovery) -> list[StudyInput]:
    from multimodal.data.manifest import manifest_lines
    from preprocessing.errors import ManifestError

    studies, first_line = [], {}
    for number, record in manifest_lines(path):
        where = f"{path}:{number}"
        if isinstance(record, ManifestError):
            found.errors.append(InputError(where, f"bad manifest line: {record.reason}", stage="discover"))
        elif record.study_id in first_line:
            found.skipped.append(SkippedInput(where, f"duplicate study id in manifest line {number} (first on "
                                                     f"line {first_line[record.study_id]})", record.study_id))
        else:
            first_line[record.study_id] = number
            studies.append(StudyInput(study_id=record.study_id, paths=tuple(record.images), text=record.text or None))
    return studies


@dataclass
class _Header:
    path: str
    study_uid: str | None
    view: ViewInfo
    instance: int


def _group_files(files: list[tuple[Path, Path]], skipped: list[SkippedInput]) -> list[StudyInput]:
    """DICOM files with a StudyInstanceUID are grouped by it; every other file is a study of its own.

    A file whose header cannot be read is still a study: its decode worker then reports why it
    is unreadable (not DICOM, truncated...), with the reader's own words. Non-image objects and
    repeated SOPInstanceUIDs go to ``skipped``.
    """
    studies: list[StudyInput] = []
    by_uid: dict[str, list[_Header]] = defaultdict(list)
    for path, root in files:
        header = None if path.suffix.lower() in IMAGE_SUFFIXES else _read_header(path)
        if header is not None and header.view.not_image:
            skipped.append(SkippedInput(str(path), header.view.not_image, header.study_uid))
        elif header is None or header.study_uid is None:
            views = (header.view,) if header is not None else ()
            studies.append(StudyInput(study_id=_relative_id(path, root), paths=(str(path),), views=views))
        else:
            by_uid[header.study_uid].append(header)
    for uid, headers in by_uid.items():
        headers.sort(key=lambda h: (h.instance, h.path))
        first_of: dict[str, str] = {}
        kept = []
        for header in headers:
            sop = header.view.sop_instance_uid
            if sop and sop in first_of:
                skipped.append(SkippedInput(header.path, f"same SOPInstanceUID as {first_of[sop]}", uid))
                continue
            first_of.setdefault(sop or header.path, header.path)
            kept.append(Candidate(header.path, header.path, header.view))
        ranked = rank_candidates(kept)
        studies.append(StudyInput(study_id=uid, paths=tuple(c.item for c in ranked), study_instance_uid=uid,
                                  views=tuple(c.view for c in ranked)))
    return studies


def _read_header(path: Path) -> _Header | None:
    """The grouping and view tags of a DICOM file, or None when its header does not parse."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # over-long values and other fixable quirks do not matter here
            ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=_HEADER_TAGS)
        uid = str(ds.get("StudyInstanceUID", "") or "").strip() or None
        instance = ds.get("InstanceNumber")
        return _Header(path=str(path), study_uid=uid, view=view_of(ds),
                       instance=int(instance) if instance not in (None, "") else 0)
    except Exception:  # noqa: BLE001 - any parse failure means "not groupable"; the decoder names the cause
        return None


def _relative_id(path: Path, root: Path) -> str:
    """A readable, stable study id for a file without a study UID: its path under the input folder."""
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.name


def _unique_ids(studies: list[StudyInput]) -> list[StudyInput]:
    """Keep ids unique: a later study with a taken id gets ``~<hash of its files>`` appended; the
    very same study found again (a manifest given twice) is kept once."""
    taken: dict[str, tuple[str, ...]] = {}
    unique = []
    for study in studies:
        study_id = study.study_id
        if taken.get(study_id) == study.paths:
            continue
        if study_id in taken:
            digest = hashlib.sha1("\n".join(str(Path(p).resolve()) for p in study.paths).encode()).hexdigest()
            study_id = f"{study_id}~{digest[:8]}"
            study = StudyInput(study_id, study.paths, study.text, study.study_instance_uid, study.views)
        taken[study_id] = study.paths
        unique.append(study)
    return unique
