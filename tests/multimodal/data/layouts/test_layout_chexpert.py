"""CheXpert as released: train.csv / valid.csv with the release folder's name in every Path."""

from __future__ import annotations

import pytest

from multimodal.data.layouts.chexpert import manifest_from_chexpert
from multimodal.data.manifest import load_manifest

HEADER = ("Path,Sex,Age,Frontal/Lateral,AP/PA,No Finding,Enlarged Cardiomediastinum,Cardiomegaly,Lung Opacity,"
          "Lung Lesion,Edema,Consolidation,Pneumonia,Atelectasis,Pneumothorax,Pleural Effusion,Pleural Other,"
          "Fracture,Support Devices")
TRAIN = HEADER + """
CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg,Female,68,Frontal,AP,1.0,,,,,,,,,0.0,,,,1.0
CheXpert-v1.0-small/train/patient00002/study2/view1_frontal.jpg,Female,87,Frontal,AP,,,-1.0,1.0,,-1.0,-1.0,,-1.0,,-1.0,,1.0,
CheXpert-v1.0-small/train/patient00002/study2/view2_lateral.jpg,Female,87,Lateral,,,,-1.0,1.0,,-1.0,-1.0,,-1.0,,-1.0,,1.0,
CheXpert-v1.0-small/train/patient00002/study1/view1_frontal.jpg,Female,83,Frontal,AP,,,,1.0,,,-1.0,,,,,,1.0,
CheXpert-v1.0-small/train/patient00003/study1/view1_frontal.jpg,Male,41,Frontal,AP,,,,,,1.0,,,,0.0,,,,
CheXpert-v1.0-small/train/patient00004/study1/view1_frontal.jpg,Female,20,Frontal,PA,1.0,,,,,,,,,,,,0.0,2.0
"""
VALID = HEADER + """
CheXpert-v1.0-small/valid/patient64541/study1/view1_frontal.jpg,Male,73,Frontal,AP,0.0,1.0,1.0,1.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0
CheXpert-v1.0-small/valid/patient64542/study1/view1_frontal.jpg,Male,70,Frontal,PA,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,1.0
"""


@pytest.fixture
def release(tmp_path, write_image, write_table):
    root = tmp_path / "CheXpert-v1.0-small"
    write_table(root / "train.csv", TRAIN)
    write_table(root / "valid.csv", VALID)
    for line in (TRAIN + VALID).splitlines():
        if line.startswith("CheXpert"):
            write_image(root / line.split(",")[0].split("/", 1)[1])
    return root


@pytest.mark.parametrize(("policy", "uncertain"), [("keep", -1), ("U-Ignore", None), ("U-Ones", 1), ("U-Zeros", 0)])
def test_labels_views_splits_and_the_uncertain_policy(release, policy, uncertain, no_patient_crosses_splits):
    records = {r.study_id: r for r in load_manifest(manifest_from_chexpert(release, out=release / "m.jsonl",
                                                                          uncertain=policy))}
    assert set(records) == {"patient00001/study1", "patient00002/study2", "patient00002/study1",
                            "patient00003/study1", "patient64541/study1", "patient64542/study1"}
    study = records["patient00002/study2"]
    assert study.views == ["AP", "LATERAL"] and study.images[0].endswith("patient00002/study2/view1_frontal.jpg")
    assert study.labels["Cardiomegaly"] == uncertain and study.labels["Lung Opacity"] == 1
    assert study.labels["Pneumothorax"] is None  # blank: not mentioned
    assert records["patient00001/study1"].labels["Pneumothorax"] == 0
    assert study.meta == {"sex": "F", "age": 87}
    assert {records[s].split for s in ("patient64541/study1", "patient64542/study1")} == {"test"}
    assert {r.split for s, r in records.items() if not s.startswith("patient645")} <= {"train", "val"}
    no_patient_crosses_splits(records.values())
    # patient00004's label 2.0 is a bad row, reported with its file and line
    assert '"line": 7' in (release / "m.errors.jsonl").read_text()


def test_the_command_line(release, tmp_path, capsys):
    from multimodal.cli import main

    out = tmp_path / "chexpert.jsonl"
    assert main(["manifest", "chexpert", str(release), "--out", str(out), "--uncertain", "U-Zeros"]) == 0
    assert str(out) in capsys.readouterr().out
    assert load_manifest(out, splits="test")[0].labels["Pneumothorax"] == 0
    assert main(["manifest", "chexpert", str(tmp_path / "absent")]) == 2
    assert "valid.csv" in capsys.readouterr().err
