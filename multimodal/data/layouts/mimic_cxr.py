"""MIMIC-CXR as released on PhysioNet: MIMIC-CXR-JPG's ``mimic-cxr-2.0.0-metadata.csv.gz``,
``mimic-cxr-2.0.0-chexpert.csv.gz`` and ``mimic-cxr-2.0.0-split.csv.gz`` beside
``files/pXX/pSUBJECT/sSTUDY/DICOM_ID.jpg`` (or MIMIC-CXR's ``DICOM_ID.dcm``: the DICOM variant, same
ids), and the free-text reports as the reports archive extracts, ``files/pXX/pSUBJECT/sSTUDY.txt``
(or under ``reports``, same relative layout).

One study per ``study_id``: its images (frontal first), views from ``ViewPosition``, labels over
CheXpert's 14 observations from the CheXpert labeler file (1 / 0 / -1 / blank = unknown), findings and
impression sections extracted from the report (``text`` = indication / history), uncertain labels as
``uncertain`` says (the CheXpert layout's option), regions (zones)
from the project's report labeler on findings + impression, the official split
(``validate`` → val), meta view, study date.
"""

from __future__ import annotations

import re
from pathlib import Path

from preprocessing.report_labeler import join_fields, label_report
from preprocessing.vocab import CHEXPERT_OBSERVATIONS

from .chexpert import checked_uncertain
from .common import Collector, find_table, read_table

METADATA = "mimic-cxr-2.0.0-metadata.csv"
LABELS = ("mimic-cxr-2.0.0-chexpert.csv", "mimic-cxr-2.0.0-negbio.csv")
SPLITS = "mimic-cxr-2.0.0-split.csv"
SPLIT_NAMES = {"train": "train", "validate": "val", "test": "test"}
SECTION = re.compile(r"^\s*([A-Z][A-Z /&]+):", re.MULTILINE)
INDICATION_SECTIONS = ("INDICATION", "HISTORY", "CLINICAL HISTORY", "REASON FOR EXAMINATION", "CLINICAL INFORMATION")


def manifest_from_mimic_cxr(root: str | Path, out: str | Path | None = None, reports: str | Path | None = None,
                            uncertain: str | None = "keep") -> Path:
    """A manifest from a MIMIC-CXR-JPG (or MIMIC-CXR DICOM) release folder; ``reports`` is where the
    ``files/pXX/...sSTUDY.txt`` reports are when not beside the images; ``uncertain`` as in
    :func:`~multimodal.data.layouts.chexpert.manifest_from_chexpert`."""
    root = Path(root)
    out = Path(out) if out is not None else root / "manifest.jsonl"
    report_root = Path(reports) if reports is not None else root
    replacement = checked_uncertain(uncertain)
    found = Collector()
    labels = _labels(find_table(root, *LABELS), found, replacement)
    splits = {}
    for _, row in read_table(find_table(root, SPLITS), ("dicom_id", "split")):
        splits[row["dicom_id"].strip()] = SPLIT_NAMES.get(row["split"].strip(), row["split"].strip())
    metadata = find_table(root, METADATA)
    for line, row in read_table(metadata, ("dicom_id", "subject_id", "study_id", "ViewPosition")):
        dicom_id, subject, study_id = (row[k].strip() for k in ("dicom_id", "subject_id", "study_id"))
        folder = Path("files") / f"p{subject[:2]}" / f"p{subject}" / f"s{study_id}"
        image = next((root / folder / f"{dicom_id}{ext}" for ext in (".jpg", ".dcm")
                      if (root / folder / f"{dicom_id}{ext}").is_file()), None)
        if image is None:
            found.bad(metadata, line, "dicom_id", f"no {folder}/{dicom_id}.jpg or .dcm under {root}")
            continue
        if f"s{study_id}" not in found.records:
            report = _report(report_root / folder.with_suffix(".txt"))
            meta = {"study_date": row.get("StudyDate", "").strip(), **report.pop("meta", {})}
            found.study(f"s{study_id}", patient_id=subject, labels=labels.get(study_id, {}), meta=meta, **report)
        study = found.records[f"s{study_id}"]
        study["images"].append(str(image))
        study["views"].append(row["ViewPosition"].strip())
        if dicom_id in splits:
            study["split"] = splits[dicom_id]
    return found.write(out)


def _labels(path: Path, found: Collector, replacement: int | None = -1) -> dict[str, dict[str, int | None]]:
    """study_id → {observation: 1 / 0 / -1 / None}, -1 replaced by ``replacement``."""
    out = {}
    for line, row in read_table(path, ("study_id", *CHEXPERT_OBSERVATIONS)):
        try:
            values = {o: int(float(row[o])) if row[o].strip() else None for o in CHEXPERT_OBSERVATIONS}
            out[row["study_id"].strip()] = {o: replacement if v == -1 else v for o, v in values.items()}
        except ValueError as err:
            found.bad(path, line, None, f"a label is not a number: {err}")
    return out


def report_sections(text: str) -> dict[str, str]:
    """``{"FINDINGS": ..., "IMPRESSION": ..., ...}`` of a free-text report (upper-case headings ending
    in a colon; text before the first heading under ``""``), whitespace collapsed."""
    sections: dict[str, str] = {}
    heads = list(SECTION.finditer(text))
    starts = [(m.group(1).strip(), m.end()) for m in heads]
    ends = [m.start() for m in heads[1:]] + [len(text)]
    if heads:
        sections[""] = " ".join(text[:heads[0].start()].split())
    for (name, start), end in zip(starts, ends):
        sections[name] = " ".join(text[start:end].split())
    return sections


def _report(path: Path) -> dict[str, object]:
    """text (indication / history), findings and impression of a report file; nothing when absent."""
    if not path.is_file():
        return {}
    sections = report_sections(path.read_text(encoding="utf-8", errors="replace"))
    text = next((sections[k] for k in INDICATION_SECTIONS if sections.get(k)), "")
    findings, impression = sections.get("FINDINGS", ""), sections.get("IMPRESSION", "")
    zones = label_report(join_fields({"findings": findings, "impression": impression}, ("findings", "impression")),
                         "chexpert").zones
    return {"text": text, "findings": findings, "regions": {k: v for k, v in zones.items() if v},
            "meta": {"impression": impression}}
