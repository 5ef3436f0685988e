"""Size claims a file cannot back are refused before decoding; hostile files never take a reader down."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from preprocessing.dicom import MAX_FRAME_PIXELS, read_radiograph
from preprocessing.errors import ImageReadError

REPO_ROOT = Path(__file__).resolve().parents[2]
TWO_GB = 2 * 1024**3


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (TWO_GB, TWO_GB))


def test_adversarial_corpus_is_inspected_within_2_gb_and_every_file_reported(adversarial_corpus):
    folder, readable = adversarial_corpus
    run = subprocess.run([sys.executable, "-m", "multimodal.cli", "inspect", str(folder), "--size", "64"],
                         env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}, capture_output=True, text=True,
                         timeout=120, preexec_fn=_limit_memory)
    assert run.returncode == 0, run.stderr[-2000:]
    rows = {Path(row["path"]).name: row for row in map(json.loads, run.stdout.splitlines())}
    assert sorted(rows) == sorted(readable)
    assert {name: row["ok"] for name, row in rows.items()} == readable
    for row in rows.values():
        assert "MemoryError" not in row.get("error", "")


@pytest.mark.parametrize(("name", "expected"), [
    ("native_65535.dcm", "65535 x 65535 pixels per frame"),
    ("rle_65535.dcm", "65535 x 65535 pixels per frame"),
    ("rle_4000_tiny.dcm", "RLE data can hold"),
    ("j2k_claims_60000.dcm", "codestream claims 60000 x 60000"),
    ("frames_1000_claimed.dcm", "1000 frames"),
    ("truncated_0.dcm", "empty file"),
])
def test_size_claims_are_refused_with_the_numbers(adversarial_corpus, name, expected):
    folder, _ = adversarial_corpus
    with pytest.raises(ImageReadError, match=expected):
        read_radiograph(folder / name, target_size=64)


def test_the_pixel_cap_leaves_room_for_real_detectors():
    assert MAX_FRAME_PIXELS >= 4300 * 4300
