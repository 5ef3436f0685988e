"""Manifests from dataset layouts: a DICOM folder, the NIH ChestX-ray14 boxes, the IU X-ray reports.

Each writer returns the path of the manifest it wrote (by default ``manifest.jsonl`` beside the
input). Where a dataset has no split of its own, studies are split 70/15/15 into train/val/test by
a hash of the patient id, so a patient never appears in two splits and reruns give the same split.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import pydicom

from multimodal.data.manifest import Box, StudyRecord, write_manifest
from preprocessing.errors import ConfigError, ManifestError
from preprocessing.report_labeler import join_fields, label_report
from preprocessing.transforms import letterbox_geometry
from preprocessing.views import view_of
from preprocessing.vocab import NIH_OBSERVATIONS, ZONE_BOXES, apply_uncertain_policy, uncertain_value

log = logging.getLogger(__name__)

SPLIT_BOUNDS = (("train", 70), ("val", 85), ("test", 100))  # cumulative percent
MIN_ZONE_SHARE = 0.25
NIH_LABELS = "labels.jsonl"
IU_REPORTS = "reports_dev.jsonl"


def split_for(patient_id: str) -> str:
    """train / val / test (70/15/15) from a hash of the patient id: stable across runs and machines."""
    bucket = int(hashlib.sha256(patient_id.encode("utf-8")).hexdigest(), 16) % 100
    return next(name for name, bound in SPLIT_BOUNDS if bucket < bound)


def box_zones(xywh: tuple[float, float, float, float], shape: tuple[int, int]) -> list[str]:
    """Zones covering at least a quarter of a box (always the one covering most), for an image of
    ``shape`` (rows, cols) letterboxed to a square as the model sees it."""
    x, y, w, h = letterbox_geometry(shape, 1024).map_boxes([xywh], normalized=True)[0]
    shares = {}
    for zone, (x0, y0, x1, y1) in ZONE_BOXES.items():
        overlap = max(0.0, min(x + w, x1) - max(x, x0)) * max(0.0, min(y + h, y1) - max(y, y0))
        shares[zone] = overlap / (w * h)
    best = max(shares, key=shares.get)
    if shares[best] == 0.0:
        return []
    return [z for z, share in shares.items() if share >= MIN_ZONE_SHARE or z == best]


def _read_jsonl(path: Path) -> list[tuple[int, dict[str, Any]]]:
    rows = []
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                rows.append((number, json.loads(line)))
            except json.JSONDecodeError as err:
                raise ManifestError(path, number, None, f"not valid JSON: {err.msg}") from err
    return rows


def _source_file(path: str | Path, default_name: str) -> Path:
    path = Path(path)
    source = path / default_name if path.is_dir() else path
    if not source.is_file():
        raise ManifestError(source, 0, None, "no such file")
    return source


def _require(source: Path, number: int, row: dict[str, Any], field: str) -> Any:
    if row.get(field) in (None, ""):
        raise ManifestError(source, number, field, "missing")
    return row[field]


# --------------------------------------------------------------------------------------------- DICOM


def manifest_from_dicom_dir(directory: str | Path, out: str | Path | None = None) -> Path:
    """One study per StudyInstanceUID found (recursively) under ``directory``; returns the manifest path.

    Only headers are read (``stop_before_pixels``). Views are ordered by the project's view rule
    (:mod:`preprocessing.views`: PA, AP, other frontal, LL, lateral, RL, unknown), then by series
    and instance number. Files that are not DICOM images (unreadable,
    no StudyInstanceUID, no image rows) are listed with the reason in ``<manifest>.errors.jsonl``
    instead of stopping the run. Labels are unknown; the split is by patient hash.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise ManifestError(directory, 0, None, "not a directory")
    out = Path(out) if out is not None else directory / "manifest.jsonl"
    studies: dict[str, list[tuple[tuple, Path, pydicom.Dataset]]] = {}
    errors: list[dict[str, str]] = []
    for path in sorted(p for p in directory.rglob("*") if p.is_file() and p.resolve() != out.resolve()):
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
        except Exception as err:  # pydicom raises many types on non-DICOM or corrupt input
            errors.append({"path": str(path), "error": f"not readable as DICOM: {err}"})
            continue
        study_uid = str(ds.get("StudyInstanceUID", "")).strip()
        if not study_uid:
            errors.append({"path": str(path), "error": "no StudyInstanceUID"})
            continue
        if "Rows" not in ds:
            errors.append({"path": str(path), "error": f"not an image (Modality {ds.get('Modality', '?')})"})
            continue
        order = (view_of(ds).rank, int(ds.get("SeriesNumber") or 0), int(ds.get("InstanceNumber") or 0),
                 str(path))
        studies.setdefault(study_uid, []).append((order, path, ds))
    records = []
    for study_uid, members in studies.items():
        members.sort(key=lambda m: m[0])
        first = members[0][2]
        patient_id = str(first.get("PatientID", "")) or study_uid
        records.append(StudyRecord(
            study_id=study_uid, images=[str(p) for _, p, _ in members],
            views=[str(ds.get("ViewPosition", "")) for _, _, ds in members],
            text=str(first.get("ReasonForTheRequestedProcedure", "") or ""),
            split=split_for(patient_id), patient_id=patient_id,
            meta={"modality": str(first.get("Modality", "")), "study_date": str(first.get("StudyDate", "")),
                  "accession_number": str(first.get("AccessionNumber", ""))},
        ))
    errors_path = out.with_suffix(".errors.jsonl")
    if errors:
        errors_path.parent.mkdir(parents=True, exist_ok=True)
        errors_path.write_text("".join(json.dumps(e) + "\n" for e in errors), encoding="utf-8")
        log.warning("%d files under %s were not usable DICOM images; see %s", len(errors), directory, errors_path)
    else:
        errors_path.unlink(missing_ok=True)
    return write_manifest(records, out)


# ----------------------------------------------------------------------------------------------- NIH


def manifest_from_nih(path: str | Path, out: str | Path | None = None) -> Path:
    """A manifest from the NIH ChestX-ray14 box subset (``labels.jsonl`` or the folder holding it).

    Each image is one study: labels over :data:`preprocessing.vocab.NIH_OBSERVATIONS` (1 when in
    ``finding_labels``, else 0: NIH's text-mined labels), boxes as given (pixels of the listed
    image), regions = the zones each box covers, no text, split by patient hash.
    """
    source = _source_file(path, NIH_LABELS)
    out = Path(out) if out is not None else source.parent / "manifest.jsonl"
    records = []
    for number, row in _read_jsonl(source):
        image = str(_require(source, number, row, "image"))
        patient_id = str(_require(source, number, row, "patient_id"))
        found = set(row.get("finding_labels") or [])
        unknown = found - set(NIH_OBSERVATIONS) - {"No Finding"}
        if unknown:
            raise ManifestError(source, number, "finding_labels", f"unknown labels {sorted(unknown)}")
        width, height = row.get("size_wh") or (None, None)
        boxes, regions = [], {}
        for i, box in enumerate(row.get("boxes") or []):
            if box.get("label") not in NIH_OBSERVATIONS:
                raise ManifestError(source, number, f"boxes.{i}.label", f"unknown label {box.get('label')!r}")
            boxes.append(Box(label=box["label"], xywh=box["xywh"]))
            if width and height:
                zones = regions.setdefault(box["label"], [])
                zones += [z for z in box_zones(tuple(box["xywh"]), (height, width)) if z not in zones]
        view = row.get("view_position")
        records.append(StudyRecord(
            study_id=Path(image).stem, images=[str(source.parent / image)], views=[view] if view else None,
            labels={o: int(o in found) for o in NIH_OBSERVATIONS}, regions=regions, boxes=boxes,
            split=split_for(patient_id), patient_id=patient_id,
            meta={k: row[k] for k in ("patient_age", "patient_sex", "size_wh") if k in row},
        ))
    return write_manifest(records, out)


# ------------------------------------------------------------------------------------------------ IU


def manifest_from_iu(path: str | Path, out: str | Path | None = None, convention: str = "chexpert",
                     uncertain: str | None = "keep") -> Path:
    """A TEXT-ONLY manifest from the IU X-ray reports (``reports_dev.jsonl`` or its folder).

    The images of these reports are not available here, so ``images`` is empty. ``text`` is the
    indication, ``findings`` the findings; labels (CheXpert's 14) and zones come from the
    project's report labeler on findings + impression (joined as ``mmdx label`` joins them) under
    ``convention`` ("chexpert" or "iu"), uncertain labels as ``uncertain`` says (keep, U-Ignore, U-Ones,
    U-Zeros: :func:`preprocessing.vocab.uncertain_value`, the one policy of ``mmdx label`` and the dataset
    layouts), so its labels equal ``mmdx label``'s for the same options. The file's
    R2Gen split is kept for train/val; its "unsplit" studies (R2Gen's test studies are among them)
    become "test".
    """
    try:
        uncertain_value(uncertain)
    except ValueError as err:
        raise ConfigError("uncertain", str(err)) from err
    source = _source_file(path, IU_REPORTS)
    out = Path(out) if out is not None else source.parent / "manifest.jsonl"
    records = []
    for number, row in _read_jsonl(source):
        uid = str(_require(source, number, row, "uid"))
        findings, impression = row.get("findings") or "", row.get("impression") or ""
        labels = label_report(join_fields(row, ("findings", "impression")), "chexpert", convention)
        split = row.get("split") if row.get("split") in ("train", "val", "test") else "test"
        records.append(StudyRecord(
            study_id=f"iu-{uid}", text=row.get("indication") or "", findings=findings,
            labels=apply_uncertain_policy(labels.values, uncertain),
            regions={k: v for k, v in labels.zones.items() if v}, split=split,
            meta={"impression": impression, "comparison": row.get("comparison") or "",
                  "expected_images": row.get("expected_images") or [], "problems": row.get("problems") or []},
        ))
    return write_manifest(records, out)
