"""What every dataset layout reader shares: CSV tables as released (``.csv`` or ``.csv.gz``) read
with their line numbers, bad rows collected with file and line, patient-level splits, the manifest
and its ``.errors.jsonl`` written at the end.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from multimodal.data.manifest import StudyRecord, write_manifest
from multimodal.data.manifest_writers import split_for
from preprocessing.errors import ManifestError
from preprocessing.views import position_rank

log = logging.getLogger(__name__)

SPLIT_ORDER = ("test", "val", "train")  # a patient in several official splits goes to the first


def open_text(path: Path) -> io.TextIOBase:
    """A text handle on ``path``, decompressing ``.gz`` as released (MIMIC-CXR's ``*.csv.gz``)."""
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path), encoding="utf-8", newline="")
    return path.open(encoding="utf-8", newline="")


def find_table(root: Path, *names: str) -> Path:
    """The first of ``names`` (each also tried with ``.gz``) found under ``root``; ManifestError if none."""
    for name in names:
        for candidate in (root / name, root / f"{name}.gz"):
            if candidate.is_file():
                return candidate
    raise ManifestError(root, 0, None, f"none of {list(names)} found (as released, .csv or .csv.gz)")


def read_table(path: Path, required: Iterable[str] = ()) -> Iterator[tuple[int, dict[str, str]]]:
    """Rows of a CSV table as ``(line number, {column: text})``; a missing column raises ManifestError
    on line 1. Columns named twice or left unnamed (NIH's ``Bbox [x,y,w,h]`` split by commas) keep
    their position: ``row["#3"]`` is the fourth cell."""
    with open_text(path) as f:
        reader = csv.reader(f)
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            raise ManifestError(path, 1, None, "empty table") from None
        missing = [c for c in required if c not in header]
        if missing:
            raise ManifestError(path, 1, missing[0], f"missing column (the table has {header})")
        for cells in reader:
            if not any(c.strip() for c in cells):
                continue
            row = {f"#{i}": c for i, c in enumerate(cells)}
            row.update({h: c for h, c in zip(header, cells) if h and h not in row})
            yield reader.line_num, row


@dataclass
class Collector:
    """Studies in the making plus the bad rows met on the way (file, line, field, reason)."""

    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    errors: list[ManifestError] = field(default_factory=list)

    def bad(self, path: Path, line: int, column: str | None, reason: str) -> None:
        self.errors.append(ManifestError(path, line, column, reason))

    def study(self, study_id: str, **fields: Any) -> dict[str, Any]:
        """The study ``study_id``, created with ``fields`` the first time."""
        if study_id not in self.records:
            self.records[study_id] = {"study_id": study_id, "images": [], "views": [], "labels": {}, "boxes": [],
                                      "regions": {}, "meta": {}, **fields}
        return self.records[study_id]

    def write(self, out: Path, splits: dict[str, str] | None = None) -> Path:
        """Write the manifest (patient-level splits) and ``<out>.errors.jsonl``; return the manifest path."""
        records = [_finish(r) for r in self.records.values() if r["images"] or r.get("text") or r.get("findings")]
        assign_patient_splits(records, splits or {})
        errors_path = out.with_suffix(".errors.jsonl")
        if self.errors:
            errors_path.parent.mkdir(parents=True, exist_ok=True)
            errors_path.write_text("".join(json.dumps({"file": e.path, "line": e.line, "field": e.field,
                                                       "reason": e.reason}) + "\n" for e in self.errors))
            log.warning("%d bad rows skipped (first: %s); see %s", len(self.errors), self.errors[0], errors_path)
        else:
            errors_path.unlink(missing_ok=True)
        return write_manifest(records, out)


def _finish(record: dict[str, Any]) -> dict[str, Any]:
    """Views in the project's view rule order (PA, AP, lateral...; boxes follow their image); views
    None when none is known."""
    order = sorted(range(len(record["images"])), key=lambda i: position_rank(record["views"][i]))
    new_index = {old: new for new, old in enumerate(order)}
    record = {**record, "images": [record["images"][i] for i in order], "views": [record["views"][i] for i in order]}
    for box in record["boxes"]:
        box["image"] = new_index.get(box.get("image", 0), 0)
    if not any(record["views"]):
        record["views"] = None
    return record


def assign_patient_splits(records: list[dict[str, Any]], official: dict[str, str]) -> None:
    """Set each study's split in place, per patient: the official split of any of the patient's
    studies (``official`` maps study id → train/val/test; test wins over val over train), else the
    one already set, else a 70/15/15 hash of the patient id. A patient never spans two splits."""
    by_patient: dict[str, set[str]] = {}
    for r in records:
        chosen = official.get(r["study_id"]) or r.get("split")
        if chosen:
            by_patient.setdefault(r["patient_id"], set()).add(chosen)
    for r in records:
        chosen = by_patient.get(r["patient_id"])
        r["split"] = next(s for s in SPLIT_ORDER if s in chosen) if chosen else split_for(r["patient_id"])


def train_val_by_patient(patient_id: str) -> str:
    """train or val (85/15, the stable hash of :func:`split_for`) for a patient of an official training set."""
    return "val" if split_for(patient_id) == "val" else "train"


def number(text: str) -> float | None:
    """A CSV cell as a number, None when blank."""
    text = text.strip()
    return float(text) if text else None


def age_years(text: str) -> int | None:
    """NIH 2017's ``058Y`` / v2020's ``58`` / CheXpert's ``68`` as years; None when blank."""
    text = text.strip().upper().rstrip("Y")
    return int(float(text)) if text else None


def sex_code(text: str) -> str | None:
    """``M`` / ``F`` from Male/Female/M/F; None when unknown."""
    text = text.strip().upper()[:1]
    return text if text in ("M", "F") else None


def index_images(root: Path, suffixes: tuple[str, ...]) -> dict[str, Path]:
    """File name → path of every image under ``root`` (datasets spread images over numbered folders)."""
    return {p.name: p for p in root.rglob("*") if p.suffix.lower() in suffixes and p.is_file()}


def dicom_header(path: Path) -> tuple[str, dict[str, Any]]:
    """(view, {"sex", "age", "shape": [rows, cols]}) from a DICOM file's header (pixels not read);
    ("", {}) when unreadable."""
    import pydicom

    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
    except Exception:  # pydicom raises many types on non-DICOM input; the image is reported when read
        return "", {}
    age = str(ds.get("PatientAge", "") or "")
    return str(ds.get("ViewPosition", "") or "").upper(), {
        "sex": sex_code(str(ds.get("PatientSex", "") or "")),
        "age": age_years(age) if age[:-1].isdigit() or age.isdigit() else None,
        **({"shape": [int(ds.Rows), int(ds.Columns)]} if "Rows" in ds and "Columns" in ds else {})}
