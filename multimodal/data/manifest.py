"""Study manifests: one JSON object per line, one study per object (format in ``docs/data.md``).

A study holds one or more images (DICOM, PNG or JPEG paths; the first is the frontal view the
region targets refer to), its indication text, its findings text, labels, zones and boxes::

    {"study_id": "s1", "images": ["s1/pa.dcm", "s1/lat.dcm"], "views": ["PA", "LL"],
     "text": "Cough and fever.", "findings": "There is a small left pleural effusion.",
     "labels": {"Pleural Effusion": 1, "Pneumothorax": 0, "Edema": null},
     "regions": {"Pleural Effusion": ["left_lower"]},
     "boxes": [{"label": "Pleural Effusion", "xywh": [150, 170, 60, 40], "image": 0}],
     "split": "train", "patient_id": "p1", "meta": {}}

Relative image paths are resolved against the manifest's folder on load, so a manifest and its
images move together.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from preprocessing.errors import ManifestError
from preprocessing.vocab import ZONES

LABEL_VALUES = (1, 0, -1, None)


class Box(BaseModel):
    """A rectangle around one observation, ``xywh`` = (left, top, width, height) in pixels.

    Pixels are those of ``images[image]`` as the reader displays it (patient's right on the image
    left for frontal views) at its original resolution; x to the right, y downwards.
    """

    model_config = ConfigDict(extra="forbid")

    label: str = Field(min_length=1)
    xywh: tuple[float, float, float, float]
    image: int = Field(default=0, ge=0)

    @field_validator("xywh")
    @classmethod
    def _positive_extent(cls, v: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
        if v[2] <= 0 or v[3] <= 0:
            raise ValueError(f"width and height must be > 0, got {list(v)}")
        return v


class StudyRecord(BaseModel):
    """One study of a manifest; see the module docstring for an example line.

    ``labels`` maps an observation name to 1 (present), 0 (absent), -1 (uncertain) or None
    (unknown); observations missing from the dict are unknown too. ``regions`` maps an observation
    to the zones (:data:`preprocessing.vocab.ZONES`) where it lies. ``views`` (e.g. "PA", "LL") is
    None or one entry per image.
    """

    model_config = ConfigDict(extra="forbid")

    study_id: str = Field(min_length=1)
    images: list[str] = Field(default_factory=list)
    views: list[str] | None = None
    text: str = ""
    findings: str = ""
    labels: dict[str, int | None] = Field(default_factory=dict)
    regions: dict[str, list[str]] = Field(default_factory=dict)
    boxes: list[Box] = Field(default_factory=list)
    split: str = Field(default="train", min_length=1)
    patient_id: str | None = None
    meta: dict[str, Any] = Field(default_factory=dict)

    @field_validator("study_id", "patient_id", mode="before")
    @classmethod
    def _ids_as_text(cls, v: Any) -> Any:
        # Datasets number their studies and patients; the manifest keeps ids as strings.
        return str(v) if isinstance(v, int) and not isinstance(v, bool) else v

    @field_validator("labels")
    @classmethod
    def _label_values(cls, v: dict[str, int | None]) -> dict[str, int | None]:
        bad = {k: x for k, x in v.items() if x not in LABEL_VALUES}
        if bad:
            raise ValueError(f"values must be 1, 0, -1 or null; bad: {bad}")
        return v

    @field_validator("regions")
    @classmethod
    def _known_zones(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        bad = {k: [z for z in zones if z not in ZONES] for k, zones in v.items()}
        bad = {k: zones for k, zones in bad.items() if zones}
        if bad:
            raise ValueError(f"unknown zones {bad}; known: {list(ZONES)}")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> StudyRecord:
        if self.views is not None and len(self.views) != len(self.images):
            raise ValueError(f"views has {len(self.views)} entries but images has {len(self.images)}")
        for i, box in enumerate(self.boxes):
            if box.image >= max(len(self.images), 1):
                raise ValueError(f"boxes[{i}] refers to image {box.image} but the study has {len(self.images)}")
        return self


def _field_name(loc: tuple[Any, ...]) -> str | None:
    return ".".join(str(p) for p in loc) or None


def _reason(error: dict[str, Any]) -> str:
    return error["msg"].removeprefix("Value error, ")


def _resolve_images(record: StudyRecord, folder: Path) -> StudyRecord:
    images = [p if Path(p).is_absolute() else str(folder / p) for p in record.images]
    return record.model_copy(update={"images": images})


def manifest_lines(path: str | Path, lines: list[str] | None = None) -> Iterator[tuple[int, StudyRecord | ManifestError]]:
    """Each non-blank line of a manifest validated on its own: ``(line number, record)`` with image
    paths made absolute, or ``(line number, ManifestError)`` for a bad line. Repeated study ids are
    left to the caller (:func:`load_manifest` refuses them; batch scoring skips them with a reason)."""
    path = Path(path)
    folder = path.resolve().parent
    for number, line in enumerate(lines if lines is not None else path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            yield number, _resolve_images(StudyRecord.model_validate_json(line), folder)
        except ValidationError as err:
            first = err.errors()[0]
            if first["type"] == "json_invalid":
                yield number, ManifestError(path, number, None, f"not valid JSON: {first['msg']}")
            else:
                yield number, ManifestError(path, number, _field_name(first["loc"]), _reason(first))


def load_manifest(path: str | Path, splits: str | Iterable[str] | None = None) -> list[StudyRecord]:
    """Read and validate a JSONL manifest; return its studies (only those in ``splits`` if given).

    Every line is validated before anything is returned. Raises :class:`ManifestError` naming the
    first bad line and field (its reason counts further bad lines); a repeated ``study_id`` is an
    error. Blank lines are skipped. Image paths come back absolute.
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as err:
        raise ManifestError(path, 0, None, f"cannot read the manifest: {err.strerror or err}") from err
    wanted = {splits} if isinstance(splits, str) else (set(splits) if splits is not None else None)
    records: list[StudyRecord] = []
    errors: list[ManifestError] = []
    first_line: dict[str, int] = {}
    for number, record in manifest_lines(path, lines):
        if isinstance(record, ManifestError):
            errors.append(record)
            continue
        if record.study_id in first_line:
            errors.append(ManifestError(path, number, "study_id",
                                        f"duplicate study_id {record.study_id!r} (first on line {first_line[record.study_id]})"))
            continue
        first_line[record.study_id] = number
        if wanted is None or record.split in wanted:
            records.append(record)
    if errors:
        first = errors[0]
        more = f" ({len(errors) - 1} more bad lines)" if len(errors) > 1 else ""
        raise ManifestError(first.path, first.line, first.field, first.reason + more)
    return records


def write_manifest(records: Iterable[StudyRecord | dict[str, Any]], path: str | Path) -> Path:
    """Write studies as JSONL atomically (temporary file + rename); return the path.

    Image paths under the manifest's folder are written relative to it, others absolute.
    Dicts are validated as :class:`StudyRecord` first; a repeated ``study_id`` raises
    :class:`ManifestError` and leaves any existing file untouched.
    """
    path = Path(path)
    folder = path.resolve().parent
    lines: list[str] = []
    seen: set[str] = set()
    for number, item in enumerate(records, start=1):
        try:
            record = item if isinstance(item, StudyRecord) else StudyRecord.model_validate(item)
        except ValidationError as err:
            first = err.errors()[0]
            raise ManifestError(path, number, _field_name(first["loc"]), _reason(first)) from err
        if record.study_id in seen:
            raise ManifestError(path, number, "study_id", f"duplicate study_id {record.study_id!r}")
        seen.add(record.study_id)
        images = [_relative_if_inside(p, folder) for p in record.images]
        lines.append(record.model_copy(update={"images": images}).model_dump_json())
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write("".join(line + "\n" for line in lines))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _relative_if_inside(image: str, folder: Path) -> str:
    # A relative path in memory means relative to the working directory; on disk it will be read
    # relative to the manifest's folder, so resolve it first.
    p = Path(image).resolve()
    try:
        return p.relative_to(folder).as_posix()
    except ValueError:
        return str(p)
