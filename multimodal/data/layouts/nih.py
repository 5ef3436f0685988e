"""NIH ChestX-ray14 as released: ``Data_Entry_2017_v2020.csv`` (or ``Data_Entry_2017.csv``),
``BBox_List_2017.csv``, ``images/`` (or the Kaggle copy's ``images_001/images/``...), and the official
``train_val_list.txt`` / ``test_list.txt`` when present. The project's own ``labels.jsonl`` subset
keeps working (:func:`multimodal.data.manifest_writers.manifest_from_nih`).

One image is one study: labels over the 14 NIH findings (1 when in ``Finding Labels``, else 0),
boxes in pixels of the released 1024-px PNG (``Infiltrate`` read as Infiltration), regions = the
zones each box covers, meta sex / age / follow-up / original size and pixel spacing.
"""

from __future__ import annotations

from pathlib import Path

from multimodal.data.manifest_writers import NIH_LABELS, box_zones, manifest_from_nih
from preprocessing.errors import ManifestError
from preprocessing.vocab import NIH_OBSERVATIONS

from .common import Collector, age_years, find_table, index_images, read_table, sex_code, train_val_by_patient

RELEASED_SIZE = (1024, 1024)  # rows, cols of every released PNG; boxes are in these pixels
BOX_NAMES = {"Infiltrate": "Infiltration"}


def manifest_from_nih_release(root: str | Path, out: str | Path | None = None, boxed_only: bool = False) -> Path:
    """A manifest from the NIH release folder (or the project's ``labels.jsonl`` subset).

    ``boxed_only`` keeps the 880 images with radiologist boxes. Split: the official
    ``test_list.txt`` is test; the rest (``train_val_list.txt``) train/val by patient hash (85/15);
    without the lists, 70/15/15 by patient hash.
    """
    root = Path(root)
    if root.suffix == ".jsonl" or (root / NIH_LABELS).is_file():
        return manifest_from_nih(root, out=out)
    out = Path(out) if out is not None else root / "manifest.jsonl"
    entries = find_table(root, "Data_Entry_2017_v2020.csv", "Data_Entry_2017.csv")
    images = index_images(root, (".png",))
    found = Collector()
    boxes = _boxes(root, found)
    official = _official_split(root)
    for line, row in read_table(entries, ("Image Index", "Finding Labels", "Patient ID", "View Position")):
        name = row["Image Index"].strip()
        if boxed_only and name not in boxes:
            continue
        labels = {x.strip() for x in row["Finding Labels"].split("|")} - {"No Finding", ""}
        unknown = labels - set(NIH_OBSERVATIONS)
        if unknown:
            found.bad(entries, line, "Finding Labels", f"unknown labels {sorted(unknown)}")
            continue
        if name not in images:
            found.bad(entries, line, "Image Index", f"image {name} not found under {root}")
            continue
        patient = row["Patient ID"].strip().lstrip("0") or "0"
        study = found.study(Path(name).stem, patient_id=patient, labels={o: int(o in labels) for o in NIH_OBSERVATIONS})
        study["images"].append(str(images[name]))
        study["views"].append(row["View Position"].strip())
        study["meta"] = {"sex": sex_code(row.get("Patient Gender", "")), "age": age_years(row.get("Patient Age", "")),
                         "follow_up": row.get("Follow-up #", "").strip(), **_original_geometry(row)}
        for label, xywh in boxes.get(name, []):
            study["boxes"].append({"label": label, "xywh": xywh, "image": 0})
            zones = study["regions"].setdefault(label, [])
            zones += [z for z in box_zones(xywh, RELEASED_SIZE) if z not in zones]
        if official:
            study["split"] = "test" if name in official["test"] else train_val_by_patient(patient)
    return found.write(out)


def _boxes(root: Path, found: Collector) -> dict[str, list[tuple[str, tuple[float, float, float, float]]]]:
    """Image name → [(label, xywh)] from BBox_List_2017.csv (absent: no boxes)."""
    try:
        path = find_table(root, "BBox_List_2017.csv")
    except ManifestError:  # the box list is optional: most of the release has no boxes
        return {}
    boxes: dict[str, list] = {}
    for line, row in read_table(path, ("Image Index", "Finding Label")):
        label = BOX_NAMES.get(row["Finding Label"].strip(), row["Finding Label"].strip())
        try:  # "Bbox [x,y,w,h]" is split by its own commas into cells #2-#5
            x, y, w, h = (float(row[f"#{i}"]) for i in range(2, 6))
        except (KeyError, ValueError):
            found.bad(path, line, "Bbox [x,y,w,h]", "needs four numbers")
            continue
        if label not in NIH_OBSERVATIONS or w <= 0 or h <= 0:
            found.bad(path, line, "Finding Label", f"unknown label {label!r} or an empty box")
            continue
        boxes.setdefault(row["Image Index"].strip(), []).append((label, (x, y, w, h)))
    return boxes


def _official_split(root: Path) -> dict[str, set[str]] | None:
    lists = {name: root / f"{name}_list.txt" for name in ("train_val", "test")}
    if not lists["test"].is_file():
        return None
    return {name: {x.strip() for x in path.read_text().splitlines() if x.strip()}
            for name, path in lists.items() if path.is_file()}


def _original_geometry(row: dict[str, str]) -> dict[str, list[float]]:
    """Acquisition size and pixel spacing: ``OriginalImage[Width,Height]`` and
    ``OriginalImagePixelSpacing[x,y]`` are split by their own commas into cells #7-#8 and #9-#10."""
    try:
        return {"original_size_wh": [float(row["#7"]), float(row["#8"])],
                "pixel_spacing_xy": [float(row["#9"]), float(row["#10"])]}
    except (KeyError, ValueError):
        return {}
