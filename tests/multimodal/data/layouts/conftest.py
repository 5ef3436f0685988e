"""Helpers for the dataset-layout tests: tiny files in each release's exact layout."""

from __future__ import annotations

import gzip
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def _write_image(path: Path, size: int = 16) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size, size), 128, np.uint8)).save(path)
    return path


def _write_table(path: Path, text: str) -> Path:
    """Write CSV text (dedented, as released; ``.gz`` compressed when the name says so)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = "\n".join(line.strip() for line in text.strip().splitlines()) + "\n"
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(data.encode()))
    else:
        path.write_text(data)
    return path


def splits_by_patient(records) -> dict[str, set[str]]:
    seen: dict[str, set[str]] = defaultdict(set)
    for r in records:
        seen[r.patient_id].add(r.split)
    return seen


@pytest.fixture
def no_patient_crosses_splits():
    def check(records):
        crossing = {p: s for p, s in splits_by_patient(records).items() if len(s) > 1}
        assert not crossing, crossing
    return check


@pytest.fixture
def write_image():
    """write_image(path, size=16): a grey PNG/JPEG at ``path``."""
    return _write_image


@pytest.fixture
def write_table():
    """write_table(path, text): CSV text as released (``.gz`` compressed when the name says so)."""
    return _write_table
