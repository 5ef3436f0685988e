"""``inspect_paths`` and ``mmdx inspect``: one JSON line per file, bad files reported, exit 0."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from multimodal.cli import main
from preprocessing.inspect import inspect_paths

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture
def folder(tmp_path, dx_dataset, chest_like, save):
    root = tmp_path / "in"
    (root / "nested").mkdir(parents=True)
    save(dx_dataset(chest_like(), PhotometricInterpretation="MONOCHROME1"), root / "a.dcm")
    Image.fromarray(np.full((30, 20), 128, np.uint8)).save(root / "nested" / "b.png")
    (root / "nested" / "broken.dcm").write_bytes(b"\x00" * 200)
    return root


def test_one_row_per_file_with_errors_reported(folder, tmp_path):
    rows = {r["path"].rsplit("/", 1)[-1]: r for r in inspect_paths([folder], image_size=32,
                                                                   preview_dir=tmp_path / "prev")}
    assert set(rows) == {"a.dcm", "b.png", "broken.dcm"}
    dicom = rows["a.dcm"]
    assert dicom["ok"] and dicom["modality"] == "DX" and dicom["photometric"] == "MONOCHROME1"
    assert dicom["original_shape"] == [96, 80] and dicom["shape"] == [32, 32]
    assert dicom["transfer_syntax"] == "1.2.840.10008.1.2.1" and dicom["view_position"] == "PA"
    assert 0.0 <= dicom["min"] <= dicom["mean"] <= dicom["max"] <= 1.0
    assert rows["b.png"]["ok"] and rows["b.png"]["transfer_syntax"] is None
    assert not rows["broken.dcm"]["ok"] and "not a DICOM file" in rows["broken.dcm"]["error"]
    preview = Image.open(dicom["preview"])
    assert preview.size == (32, 32) and preview.mode == "L"


def test_cli_prints_json_lines_and_exits_zero_with_bad_files(folder, capsys):
    assert main(["inspect", str(folder), str(folder / "missing.dcm")]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(rows) == 4 and sum(r["ok"] for r in rows) == 2
    assert any(r.get("error") == "no such file" for r in rows)


def test_real_files_all_read(shared_dicom):
    rows = [r for r in inspect_paths([shared_dicom], image_size=64) if r["path"].endswith(".dcm")]
    assert len(rows) == 6 and all(r["ok"] for r in rows), rows
