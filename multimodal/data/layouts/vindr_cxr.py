"""VinDr-CXR as released on PhysioNet: ``train/`` and ``test/`` DICOMs (``IMAGE_ID.dicom``) and
``annotations/``: ``annotations_{train,test}.csv`` (``image_id, rad_id, class_name, x_min, y_min,
x_max, y_max``: one row per box per radiologist; three radiologists per training image, a consensus
for test) and ``image_labels_{train,test}.csv`` (one 0/1 column per finding or diagnosis, one row
per radiologist).

One image is one study: a label is 1 when any radiologist marked it (the release's reading of its
own labels), boxes of every radiologist become region targets, meta sex / age / number of
radiologists. Split: the official test folder is test; train is train/val by hash (85/15). The
release carries no patient ids: an image is its own patient.
"""

from __future__ import annotations

from pathlib import Path

from multimodal.data.manifest_writers import box_zones

from .common import Collector, dicom_header, find_table, read_table, train_val_by_patient

ID_COLUMNS = {"image_id", "rad_id", "rad_ID"}
NO_FINDING = "No finding"


def manifest_from_vindr_cxr(root: str | Path, out: str | Path | None = None) -> Path:
    """A manifest from a VinDr-CXR release folder (holding ``annotations/``, ``train/``, ``test/``)."""
    root = Path(root)
    out = Path(out) if out is not None else root / "manifest.jsonl"
    found = Collector()
    for part in ("train", "test"):
        labels_path = find_table(root / "annotations", f"image_labels_{part}.csv")
        votes: dict[str, dict[str, int]] = {}
        raters: dict[str, int] = {}
        for line, row in read_table(labels_path, ("image_id",)):
            names = [k for k in row if not k.startswith("#") and k not in ID_COLUMNS and k != NO_FINDING]
            try:
                values = {k: int(float(row[k])) for k in names}
            except ValueError as err:
                found.bad(labels_path, line, None, f"a label is not 0/1: {err}")
                continue
            image_id = row["image_id"].strip()
            votes[image_id] = {k: max(v, votes.get(image_id, {}).get(k, 0)) for k, v in values.items()}
            raters[image_id] = raters.get(image_id, 0) + 1
        for image_id, labels in votes.items():
            image = root / part / f"{image_id}.dicom"
            if not image.is_file():
                found.bad(labels_path, 0, "image_id", f"{image} not found")
                continue
            view, meta = dicom_header(image)
            study = found.study(image_id, patient_id=image_id, labels=labels,
                                split="test" if part == "test" else train_val_by_patient(image_id),
                                meta={**meta, "radiologists": raters[image_id]})
            study["images"].append(str(image))
            study["views"].append(view)
        _add_boxes(find_table(root / "annotations", f"annotations_{part}.csv"), found)
    return found.write(out)


def _add_boxes(path: Path, found: Collector) -> None:
    for line, row in read_table(path, ("image_id", "class_name", "x_min", "y_min", "x_max", "y_max")):
        label, study = row["class_name"].strip(), found.records.get(row["image_id"].strip())
        if label == NO_FINDING or study is None:
            continue
        try:
            x0, y0, x1, y1 = (float(row[k]) for k in ("x_min", "y_min", "x_max", "y_max"))
        except ValueError:
            found.bad(path, line, "x_min", "box corners must be numbers")
            continue
        if x1 <= x0 or y1 <= y0:
            found.bad(path, line, "x_max", "empty box")
            continue
        xywh = (x0, y0, x1 - x0, y1 - y0)
        study["boxes"].append({"label": label, "xywh": xywh, "image": 0})
        study["labels"][label] = 1
        shape = study["meta"].get("shape")
        if shape:
            zones = study["regions"].setdefault(label, [])
            zones += [z for z in box_zones(xywh, tuple(shape)) if z not in zones]
