"""Manifest format: validation errors that name the line and field, round trip, splits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from multimodal.data.manifest import Box, StudyRecord, load_manifest, write_manifest
from preprocessing.errors import ManifestError

GOOD = {"study_id": "s1", "images": ["s1/pa.dcm"], "labels": {"Pneumothorax": 1}, "regions": {"Pneumothorax": ["left_upper"]},
        "boxes": [{"label": "Pneumothorax", "xywh": [10, 10, 20, 20]}]}


def _write_lines(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


@pytest.mark.parametrize("bad, field", [
    ({"study_id": "s2", "labels": {"Edema": 2}}, "labels"),
    ({"study_id": "s2", "regions": {"Edema": ["upper_left"]}}, "regions"),
    ({"study_id": "s2", "images": ["a.dcm"], "boxes": [{"label": "Edema", "xywh": [0, 0, 0, 5]}]}, "boxes.0.xywh"),
    ({"study_id": "s2", "boxes": [{"label": "Edema", "xywh": [0, 0, 5]}]}, "boxes.0.xywh.3"),
    ({"study_id": "s2", "images": ["a.dcm"], "boxes": [{"label": "Edema", "xywh": [0, 0, 5, 5], "image": 1}]}, None),
    ({"study_id": "s2", "images": ["a.dcm"], "views": ["PA", "LL"]}, None),
    ({"images": ["a.dcm"]}, "study_id"),
    ({"study_id": "s2", "finding": "typo in the key"}, "finding"),
    ("{not json", None),
])
def test_a_bad_line_is_reported_with_its_line_and_field(tmp_path, bad, field):
    path = _write_lines(tmp_path / "m.jsonl", [GOOD, bad])
    with pytest.raises(ManifestError) as err:
        load_manifest(path)
    assert err.value.line == 2
    assert err.value.field == field
    assert f"m.jsonl:2" in str(err.value)


def test_every_bad_line_is_counted_and_the_first_named(tmp_path):
    path = _write_lines(tmp_path / "m.jsonl", [GOOD, {"study_id": "a", "labels": {"X": 5}}, "[]", {"study_id": "b"}])
    with pytest.raises(ManifestError, match="1 more bad lines") as err:
        load_manifest(path)
    assert (err.value.line, err.value.field) == (2, "labels")


def test_a_repeated_study_id_names_both_lines(tmp_path):
    path = _write_lines(tmp_path / "m.jsonl", [GOOD, "", {"study_id": "s1"}])
    with pytest.raises(ManifestError, match="first on line 1") as err:
        load_manifest(path)
    assert (err.value.line, err.value.field) == (3, "study_id")


def test_round_trip_keeps_records_and_resolves_images_against_the_manifest_folder(tmp_path):
    records = [
        StudyRecord(study_id="s1", images=[str(tmp_path / "s1" / "pa.dcm"), "/elsewhere/lat.dcm"], views=["PA", "LL"],
                    text="Cough.", findings="No pneumothorax.", labels={"Pneumothorax": 0, "Edema": None, "Atelectasis": -1},
                    regions={"Atelectasis": ["right_lower"]}, boxes=[Box(label="Atelectasis", xywh=(1, 2, 3, 4))],
                    split="val", patient_id="p1", meta={"age": 50}),
        StudyRecord(study_id="s2", split="test"),
    ]
    path = write_manifest(records, tmp_path / "m.jsonl")
    first_line = json.loads(path.read_text().splitlines()[0])
    assert first_line["images"] == ["s1/pa.dcm", "/elsewhere/lat.dcm"]
    assert load_manifest(path) == records
    assert [r.study_id for r in load_manifest(path, splits="test")] == ["s2"]
    assert [r.study_id for r in load_manifest(path, splits=["val", "test"])] == ["s1", "s2"]


def test_integer_ids_are_kept_as_text(tmp_path):
    path = _write_lines(tmp_path / "m.jsonl", [{"study_id": 7, "patient_id": 32}])
    record = load_manifest(path)[0]
    assert (record.study_id, record.patient_id) == ("7", "32")


def test_a_failed_write_leaves_the_old_manifest_untouched(tmp_path):
    path = write_manifest([StudyRecord(study_id="s1")], tmp_path / "m.jsonl")
    before = path.read_bytes()
    with pytest.raises(ManifestError, match="duplicate"):
        write_manifest([StudyRecord(study_id="a"), {"study_id": "a"}], path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.jsonl"]


def test_a_missing_manifest_is_a_manifest_error(tmp_path):
    with pytest.raises(ManifestError, match="cannot read"):
        load_manifest(tmp_path / "absent.jsonl")


def test_an_image_path_relative_to_the_working_directory_survives_a_manifest_elsewhere(tmp_path, monkeypatch):
    # `mmdx manifest nih ../data --out runs/m.jsonl`: paths given relative to the shell's folder
    # must still point at the images when read back relative to the manifest's folder.
    (tmp_path / "data").mkdir()
    image = tmp_path / "data" / "a.png"
    image.write_bytes(b"")
    monkeypatch.chdir(tmp_path / "data")
    out = write_manifest([StudyRecord(study_id="a", images=["a.png"])], tmp_path / "runs" / "m.jsonl")
    assert Path(load_manifest(out)[0].images[0]) == image.resolve()
