"""An indeterminate decision reaches the JSON results, the CSV table and the DICOM SR (dciodvfy clean)."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess

import pydicom
import pytest

from multimodal.cli import main
from multimodal.models.configuration import MultimodalConfig

INDETERMINATE = "82334004"  # SNOMED CT "Indeterminate"


@pytest.fixture(scope="module")
def banded_model(tiny_model_dir, tmp_path_factory):
    """The tiny model with a calibration whose band makes every Pleural Effusion indeterminate."""
    out = tmp_path_factory.mktemp("banded") / "model"
    shutil.copytree(tiny_model_dir, out)
    config = MultimodalConfig.load(out)
    config.calibration = {"method": "temperature", "params": {"Pleural Effusion": {"temperature": 2.0}},
                          "indeterminate": {"Pleural Effusion": [0.0, 1.0], "Cardiomegaly": [0.0, 0.0]}}
    config.validate()
    config.save(out)
    return out


def test_indeterminate_appears_in_json_csv_and_sr(banded_model, phantom_dir, tmp_path):
    assert main(["score", "--model", str(banded_model), "--input", str(phantom_dir / "dicom"), "--out",
                 str(tmp_path / "r.csv"), "--format", "csv", "--sr-dir", str(tmp_path / "sr"), "--workers", "0",
                 "--no-findings", "--quiet"]) == 0
    records = [json.loads(line) for line in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert records and all(r["observations"]["Pleural Effusion"]["decision"] == "indeterminate" for r in records)
    assert all(r["observations"]["Cardiomegaly"]["decision"] == "present" for r in records)
    assert {r["observations"]["Pneumothorax"]["decision"] for r in records} == {"absent"}  # no band: threshold 1.0
    rows = list(csv.DictReader(open(tmp_path / "r.csv")))
    assert {row["Pleural Effusion.decision"] for row in rows} == {"indeterminate"}
    sr_path = next((tmp_path / "sr").glob("*.dcm"))
    codes = {item.ConceptCodeSequence[0].CodeValue for item in _items(pydicom.dcmread(sr_path))
             if "ConceptCodeSequence" in item}
    assert INDETERMINATE in codes
    if shutil.which("dciodvfy"):
        report = subprocess.run(["dciodvfy", "-new", str(sr_path)], capture_output=True, text=True)
        assert [line for line in (report.stdout + report.stderr).splitlines() if line.startswith("Error")] == []


def _items(ds):
    for item in ds.get("ContentSequence", []):
        yield item
        yield from _items(item)
