"""NIH ChestX-ray14 as released: Data_Entry + BBox_List + images/ + the official split lists."""

from __future__ import annotations

import json

import pytest

from multimodal.data.layouts.nih import manifest_from_nih_release
from multimodal.data.manifest import load_manifest
from preprocessing.errors import ManifestError

ENTRIES = """
Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position,OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y]
00000001_000.png,Cardiomegaly,0,1,57,M,PA,2682,2749,0.14300000000000002,0.14300000000000002
00000001_001.png,Cardiomegaly|Emphysema,1,1,58,M,PA,2894,2729,0.14300000000000002,0.14300000000000002
00000002_000.png,No Finding,0,2,80,M,PA,2500,2048,0.171,0.171
00000003_000.png,Hernia|Infiltration,0,3,74,F,AP,2582,2905,0.143,0.143
00000004_000.png,Mass|Nodule,0,4,82,M,AP,2048,2500,0.168,0.168
00000005_000.png,Flu,0,5,69,F,PA,2048,2500,0.168,0.168
"""
BOXES = """
Image Index,Finding Label,Bbox [x,y,w,h],,,
00000003_000.png,Infiltrate,225.084745762712,547.019216763771,86.7796610169491,79.1864406779661
00000004_000.png,Mass,686.101694915254,131.543498411017,185.491525423729,313.491525423729
00000004_000.png,Nodule,abc,1,2,3
"""


@pytest.fixture
def release(tmp_path, write_image, write_table):
    root = tmp_path / "ChestX-ray14"
    write_table(root / "Data_Entry_2017_v2020.csv", ENTRIES)
    write_table(root / "BBox_List_2017.csv", BOXES)
    for i, name in enumerate(["00000001_000.png", "00000001_001.png", "00000002_000.png", "00000003_000.png",
                              "00000004_000.png", "00000005_000.png"]):
        write_image(root / f"images_00{1 + i % 2}" / "images" / name)  # the Kaggle copy's folders
    (root / "train_val_list.txt").write_text("00000001_000.png\n00000001_001.png\n00000003_000.png\n00000004_000.png\n")
    (root / "test_list.txt").write_text("00000002_000.png\n")
    return root


def test_labels_boxes_meta_and_official_split(release, no_patient_crosses_splits):
    records = {r.study_id: r for r in load_manifest(manifest_from_nih_release(release, out=release / "m.jsonl"))}
    assert set(records) == {"00000001_000", "00000001_001", "00000002_000", "00000003_000", "00000004_000"}
    hernia = records["00000003_000"]
    assert hernia.labels["Hernia"] == 1 and hernia.labels["Infiltration"] == 1 and hernia.labels["Mass"] == 0
    assert [(b.label, round(b.xywh[0], 1)) for b in hernia.boxes] == [("Infiltration", 225.1)]
    assert hernia.regions["Infiltration"]  # zones covered by the box
    assert hernia.meta["sex"] == "F" and hernia.meta["age"] == 74 and hernia.views == ["AP"]
    assert hernia.meta["original_size_wh"] == [2582.0, 2905.0]
    assert [b.label for b in records["00000004_000"].boxes] == ["Mass"]  # the bad Nodule row is skipped
    assert set(records["00000002_000"].labels.values()) == {0}
    assert records["00000002_000"].split == "test"
    assert {r.split for r in records.values() if r.patient_id != "2"} <= {"train", "val"}
    assert records["00000001_000"].split == records["00000001_001"].split
    no_patient_crosses_splits(records.values())
    errors = [json.loads(x) for x in (release / "m.errors.jsonl").read_text().splitlines()]
    assert {(e["file"].rsplit("/", 1)[-1], e["line"]) for e in errors} == {("BBox_List_2017.csv", 4),
                                                                            ("Data_Entry_2017_v2020.csv", 7)}


def test_boxed_only_and_the_2017_file_name(release):
    (release / "Data_Entry_2017_v2020.csv").rename(release / "Data_Entry_2017.csv")
    records = load_manifest(manifest_from_nih_release(release, out=release / "m.jsonl", boxed_only=True))
    assert sorted(r.study_id for r in records) == ["00000003_000", "00000004_000"]


def test_a_missing_column_names_the_file_and_column(tmp_path, write_table):
    write_table(tmp_path / "Data_Entry_2017.csv", "Image Index,Finding Labels\nx.png,Mass\n")
    with pytest.raises(ManifestError, match="Data_Entry_2017.csv:1 field 'Patient ID'"):
        manifest_from_nih_release(tmp_path)


def test_the_projects_jsonl_subset_still_reads(tmp_path, write_image):
    write_image(tmp_path / "a.png")
    (tmp_path / "labels.jsonl").write_text(json.dumps({"image": "a.png", "patient_id": "7", "finding_labels": ["Mass"],
                                                       "boxes": []}) + "\n")
    (record,) = load_manifest(manifest_from_nih_release(tmp_path))
    assert record.labels["Mass"] == 1


def test_the_real_nih_tables_as_released(tmp_path, no_patient_crosses_splits):
    """NIH's own Data_Entry_2017_v2020.csv and BBox_List_2017.csv (carried by the torchxrayvision wheel):
    every boxed image becomes a study with its boxes, patients stay in one split."""
    import gzip
    import shutil
    from pathlib import Path

    xrv = pytest.importorskip("torchxrayvision", reason="the real NIH tables come with torchxrayvision")
    data = Path(xrv.__file__).parent / "data"
    for name in ("Data_Entry_2017_v2020.csv", "BBox_List_2017.csv"):
        with gzip.open(data / f"{name}.gz") as src, (tmp_path / name).open("wb") as dst:
            shutil.copyfileobj(src, dst)
    boxed = {line.split(",")[0] for line in (tmp_path / "BBox_List_2017.csv").read_text().splitlines()[1:]}
    (tmp_path / "images").mkdir()
    for name in boxed:
        (tmp_path / "images" / name).write_bytes(b"")  # only their presence is read here
    records = load_manifest(manifest_from_nih_release(tmp_path, out=tmp_path / "m.jsonl", boxed_only=True))
    assert len(records) == len(boxed) == 880
    assert sum(len(r.boxes) for r in records) == 984
    assert {b.label for r in records for b in r.boxes} == {"Atelectasis", "Cardiomegaly", "Effusion", "Infiltration",
                                                          "Mass", "Nodule", "Pneumonia", "Pneumothorax"}
    no_patient_crosses_splits(records)
    assert not (tmp_path / "m.errors.jsonl").exists()
