"""Rebuild part of the shared NIH boxed subset in the official ChestX-ray14 layout at 1024 px.

The shared subset holds NIH's PNGs downsampled to 512 px with a project JSONL of labels and boxes;
the release has 1024-px PNGs under ``images/`` with ``Data_Entry_2017.csv``, ``BBox_List_2017.csv``
(``Infiltrate`` for Infiltration) and the split lists. This writes that layout for the studies of
one split of a manifest made from the subset (``--split test``: the same patients the 512-px
evaluation scores), upsampling each PNG to 1024 px (PIL bicubic) and scaling its boxes by the same
factor, and lists them all in ``test_list.txt``. Then::

    python scripts/nih_official_layout.py --subset ../shared/data/nih_cxr14_bbox \\
        --manifest runs/nih/manifest.jsonl --out runs/nih-1024
    mmdx manifest nih runs/nih-1024 --out runs/nih-1024/manifest.jsonl
    mmdx evaluate --model RUN/best --manifest runs/nih-1024/manifest.jsonl --out runs/nih-1024-eval --no-findings

checks that a model trained on the 512-px subset scores the released layout and resolution the same.
Nothing here is committed data: the tree is written where ``--out`` says.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

from PIL import Image

RELEASED = 1024
BOX_NAMES = {"Infiltration": "Infiltrate"}  # the box list's spelling


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subset", required=True, help="the shared subset folder (labels.jsonl, images/)")
    parser.add_argument("--manifest", required=True, help="a manifest made from the subset (for its split)")
    parser.add_argument("--split", default="test", help="the manifest split to rebuild (default: test)")
    parser.add_argument("--out", required=True)
    a = parser.parse_args()
    subset, out = Path(a.subset), Path(a.out)
    wanted = {json.loads(line)["study_id"] for line in open(a.manifest)
              if line.strip() and json.loads(line).get("split") == a.split}
    (out / "images").mkdir(parents=True, exist_ok=True)
    entries, boxes, names = [], [], []
    for line in open(subset / "labels.jsonl"):
        row = json.loads(line)
        name = Path(row["image"]).name
        if Path(name).stem not in wanted:
            continue
        with Image.open(subset / row["image"]) as image:
            scale = RELEASED / max(image.size)
            image.convert("L").resize((RELEASED, RELEASED), Image.BICUBIC).save(out / "images" / name)
        names.append(name)
        entries.append([name, "|".join(row["finding_labels"]) or "No Finding", 0, row["patient_id"],
                        row["patient_age"], row["patient_sex"], row["view_position"], RELEASED, RELEASED, 0.143, 0.143])
        boxes += [[name, BOX_NAMES.get(b["label"], b["label"]), *(round(v * scale, 3) for v in b["xywh"])]
                  for b in row["boxes"]]
    with open(out / "Data_Entry_2017.csv", "w", newline="") as f:
        csv.writer(f).writerows([["Image Index", "Finding Labels", "Follow-up #", "Patient ID", "Patient Age",
                                  "Patient Gender", "View Position", "OriginalImage[Width", "Height]",
                                  "OriginalImagePixelSpacing[x", "y]"], *entries])
    with open(out / "BBox_List_2017.csv", "w", newline="") as f:
        csv.writer(f).writerows([["Image Index", "Finding Label", "Bbox [x", "y", "w", "h]"], *boxes])
    (out / "test_list.txt").write_text("\n".join(sorted(names)) + "\n")
    print(f"{len(names)} images, {len(boxes)} boxes -> {out}")


if __name__ == "__main__":
    main()
