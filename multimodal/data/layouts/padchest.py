"""PadChest as released (BIMCV): ``PADCHEST_chest_x_ray_images_labels_160K_01.02.19.csv`` (``.csv.gz``
as well) beside the image folders ``0/`` ... ``54/`` (``ImageDir/ImageID``, 16-bit PNG).

One study per ``StudyID``: its images (frontal first; ``Projection`` PA / AP / L ...), labels = the
release's ``Labels`` list (its 174 findings and diagnoses, as written): 1 when listed, 0 when listed
for another study only (PadChest labels every report exhaustively), meta sex / age at the study /
localisations / the (stemmed Spanish) report. Split 70/15/15 by ``PatientID`` hash.
"""

from __future__ import annotations

import ast
from pathlib import Path

from .common import Collector, find_table, read_table, sex_code

TABLE = "PADCHEST_chest_x_ray_images_labels_160K_01.02.19.csv"
VIEWS = {"L": "LATERAL", "AP_horizontal": "AP"}


def manifest_from_padchest(root: str | Path, out: str | Path | None = None) -> Path:
    """A manifest from the PadChest folder (the label CSV and the numbered image folders)."""
    root = Path(root)
    out = Path(out) if out is not None else root / "manifest.jsonl"
    found = Collector()
    table = find_table(root, TABLE)
    vocabulary: set[str] = set()
    for line, row in read_table(table, ("ImageID", "ImageDir", "StudyID", "PatientID", "Projection", "Labels")):
        try:
            labels = {str(x).strip() for x in ast.literal_eval(row["Labels"].strip() or "None")}
        except (ValueError, SyntaxError, TypeError):
            found.bad(table, line, "Labels", f"not a list of labels: {row['Labels'][:60]!r}")
            continue
        labels.discard("")
        image = root / row["ImageDir"].strip() / row["ImageID"].strip()
        if not image.is_file():
            found.bad(table, line, "ImageID", f"{image} not found")
            continue
        vocabulary |= labels
        study = found.study(row["StudyID"].strip(), patient_id=row["PatientID"].strip(),
                            labels=dict.fromkeys(labels, 1),
                            meta={"sex": sex_code(row.get("PatientSex_DICOM", "")), "age": _age(row),
                                  "localizations": _list(row.get("Localizations", "")),
                                  "report": " ".join(row.get("Report", "").split())})
        study["images"].append(str(image))
        study["views"].append(VIEWS.get(row["Projection"].strip(), row["Projection"].strip()))
    for study in found.records.values():
        study["labels"] = {name: study["labels"].get(name, 0) for name in sorted(vocabulary)}
    return found.write(out)


def _age(row: dict[str, str]) -> int | None:
    try:
        return int(row["StudyDate_DICOM"].strip()[:4]) - int(float(row["PatientBirth"]))
    except (KeyError, ValueError):
        return None


def _list(cell: str) -> list[str]:
    try:
        return [str(x) for x in ast.literal_eval(cell.strip() or "[]")]
    except (ValueError, SyntaxError):
        return []
