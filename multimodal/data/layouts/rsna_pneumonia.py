"""RSNA Pneumonia Detection Challenge (Kaggle, stage 2) as released: ``stage_2_train_labels.csv``
(``patientId, x, y, width, height, Target``: one row per box, one blank row for an image without),
``stage_2_detailed_class_info.csv`` (``patientId, class``) and ``stage_2_train_images/PATIENTID.dcm``.

One image (one patient) is one study: ``Pneumonia`` = Target, its boxes as region targets, meta
sex / age / the detailed class; view from the DICOM header. The challenge's test images carry no
labels and are left out; the training images split 70/15/15 by patient hash.
"""

from __future__ import annotations

from pathlib import Path

from multimodal.data.manifest_writers import box_zones

from .common import Collector, dicom_header, find_table, number, read_table

LABEL = "Pneumonia"


def manifest_from_rsna_pneumonia(root: str | Path, out: str | Path | None = None) -> Path:
    """A manifest from the challenge folder (holding ``stage_2_train_labels.csv`` and the images)."""
    root = Path(root)
    out = Path(out) if out is not None else root / "manifest.jsonl"
    found = Collector()
    classes = {}
    for _, row in read_table(find_table(root, "stage_2_detailed_class_info.csv"), ("patientId", "class")):
        classes[row["patientId"].strip()] = row["class"].strip()
    labels = find_table(root, "stage_2_train_labels.csv")
    for line, row in read_table(labels, ("patientId", "x", "y", "width", "height", "Target")):
        patient = row["patientId"].strip()
        try:
            target = int(float(row["Target"]))
            box = [number(row[k]) for k in ("x", "y", "width", "height")]
        except ValueError as err:
            found.bad(labels, line, None, f"not a number: {err}")
            continue
        if target == 1 and (None in box or box[2] <= 0 or box[3] <= 0):
            found.bad(labels, line, "width", "Target 1 needs a box with positive width and height")
            continue
        if patient not in found.records:
            image = root / "stage_2_train_images" / f"{patient}.dcm"
            if not image.is_file():
                found.bad(labels, line, "patientId", f"{image} not found")
                continue
            view, meta = dicom_header(image)
            found.study(patient, patient_id=patient, images=[str(image)], views=[view],
                        labels={LABEL: 0}, meta={**meta, "class": classes.get(patient, "")})
        study = found.records[patient]
        if target == 1:
            study["labels"][LABEL] = 1
            study["boxes"].append({"label": LABEL, "xywh": box, "image": 0})
            if study["meta"].get("shape"):
                zones = study["regions"].setdefault(LABEL, [])
                zones += [z for z in box_zones(tuple(box), tuple(study["meta"]["shape"])) if z not in zones]
    return found.write(out)
