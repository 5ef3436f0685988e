"""Manifest writers: DICOM folders, the NIH box layout, the IU report layout (generated and real data)."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from multimodal.data.manifest import load_manifest
from multimodal.data.manifest_writers import (
    box_zones,
    manifest_from_dicom_dir,
    manifest_from_iu,
    manifest_from_nih,
    split_for,
)
from preprocessing.errors import ManifestError
from preprocessing.vocab import NIH_OBSERVATIONS


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_a_dicom_folder_becomes_one_study_per_study_uid_with_bad_files_listed(phantom_manifest, tmp_path):
    phantom = load_manifest(phantom_manifest)
    folder = phantom_manifest.parent / "dicom"
    (folder / "notes.txt").write_text("not DICOM")
    try:
        out = manifest_from_dicom_dir(folder, out=tmp_path / "m.jsonl")
    finally:
        (folder / "notes.txt").unlink()
    studies = load_manifest(out)
    assert sorted(len(s.images) for s in studies) == sorted(len(r.images) for r in phantom)
    assert all(s.views[0] == "PA" and s.images[0].endswith("PA.dcm") for s in studies)
    assert {s.patient_id for s in studies} == {r.patient_id for r in phantom}
    errors = [json.loads(line) for line in (tmp_path / "m.errors.jsonl").read_text().splitlines()]
    assert [e["path"] for e in errors] == [str(folder / "notes.txt")] and "DICOM" in errors[0]["error"]


def test_patient_hash_split_is_stable_and_about_70_15_15():
    counts = Counter(split_for(str(i)) for i in range(3000))
    assert split_for("123") == split_for("123")
    assert abs(counts["train"] / 3000 - 0.70) < 0.04 and abs(counts["test"] / 3000 - 0.15) < 0.03


def test_box_zones_name_the_zones_a_box_covers():
    assert box_zones((60, 40, 60, 60), (512, 512)) == ["right_upper"]  # image left = patient's right
    assert box_zones((300, 280, 80, 60), (512, 512)) == ["left_middle", "left_lower", "cardiac"]
    assert box_zones((0, 0, 10, 10), (512, 512)) == []


def test_nih_layout_gives_nih_labels_boxes_zones_and_patient_disjoint_splits(tmp_path):
    rows = [{"image": f"images/{i:03d}.png", "finding_labels": ["Effusion"] if i % 2 else ["No Finding"],
             "boxes": [{"label": "Effusion", "xywh": [400, 350, 50, 80]}] if i % 2 else [],
             "view_position": "PA", "patient_id": i // 3, "patient_age": 50, "patient_sex": "M", "size_wh": [512, 512]}
            for i in range(30)]
    out = manifest_from_nih(_jsonl(tmp_path / "labels.jsonl", rows).parent)
    studies = load_manifest(out)
    assert out == tmp_path / "manifest.jsonl" and len(studies) == 30
    first, second = studies[0], studies[1]
    assert list(first.labels) == list(NIH_OBSERVATIONS) and set(first.labels.values()) == {0}
    assert second.labels["Effusion"] == 1 and second.boxes[0].xywh == (400, 350, 50, 80)
    assert second.regions == {"Effusion": ["left_lower"]} and second.images[0] == str(tmp_path / "images/001.png")
    splits_of = {}
    for s in studies:
        splits_of.setdefault(s.patient_id, set()).add(s.split)
    assert all(len(v) == 1 for v in splits_of.values())


def test_nih_layout_errors_name_the_line_and_field(tmp_path):
    rows = [{"image": "a.png", "finding_labels": [], "patient_id": 1},
            {"image": "b.png", "finding_labels": ["Covid"], "patient_id": 2}]
    with pytest.raises(ManifestError) as err:
        manifest_from_nih(_jsonl(tmp_path / "labels.jsonl", rows))
    assert (err.value.line, err.value.field) == (2, "finding_labels")


def test_iu_reports_give_text_only_studies_labelled_by_the_report_labeler(tmp_path):
    rows = [
        {"uid": 1, "indication": "Cough.", "comparison": "None.", "findings": "There is a small left pleural effusion.",
         "impression": "No pneumothorax.", "split": "train"},
        {"uid": 2, "indication": "", "findings": "", "impression": "Cardiomegaly.", "split": "unsplit"},
    ]
    studies = load_manifest(manifest_from_iu(_jsonl(tmp_path / "reports_dev.jsonl", rows), out=tmp_path / "iu.jsonl"))
    first, second = studies
    assert (first.study_id, first.images, first.text, first.split) == ("iu-1", [], "Cough.", "train")
    assert first.labels["Pleural Effusion"] == 1 and first.labels["Pneumothorax"] == 0
    assert first.regions["Pleural Effusion"] == ["left_lower"]
    assert second.labels["Cardiomegaly"] == 1 and second.split == "test" and second.findings == ""


@pytest.mark.parametrize("policy, expected", [(None, -1), ("U-Ignore", None), ("U-Zeros", 0), ("U-Ones", 1)])
def test_iu_manifest_applies_the_uncertain_policy_of_the_dataset_layouts(tmp_path, policy, expected):
    rows = [{"uid": 1, "findings": "Left basilar opacity may represent atelectasis.", "impression": "", "split": "train"}]
    study, = load_manifest(manifest_from_iu(_jsonl(tmp_path / "r.jsonl", rows), out=tmp_path / "iu.jsonl",
                                            uncertain=policy))
    assert study.labels["Atelectasis"] == expected and study.labels["Lung Opacity"] == 1


def test_real_nih_and_iu_layouts(shared_data, tmp_path):
    nih = load_manifest(manifest_from_nih(shared_data / "nih_cxr14_bbox", out=tmp_path / "nih.jsonl"))
    assert len(nih) == 481 and all(r.images[0].endswith(".png") for r in nih)
    by_patient = {}
    for r in nih:
        by_patient.setdefault(r.patient_id, set()).add(r.split)
    assert all(len(s) == 1 for s in by_patient.values())
    assert sum(len(r.boxes) for r in nih) >= 481 and all(r.regions for r in nih if r.boxes)
    lines = (shared_data / "iu_xray_reports" / "reports_dev.jsonl").read_text().splitlines()[:200]
    iu = load_manifest(manifest_from_iu(_jsonl(tmp_path / "reports.jsonl", [json.loads(x) for x in lines]),
                                        out=tmp_path / "iu.jsonl"))
    assert len(iu) == 200 and all(not r.images for r in iu)
    assert Counter(r.labels["Cardiomegaly"] for r in iu)[1] > 0


def test_real_dicom_folder(shared_data, tmp_path):
    studies = load_manifest(manifest_from_dicom_dir(shared_data / "dicom", out=tmp_path / "m.jsonl"))
    assert sum(len(s.images) for s in studies) >= 4
