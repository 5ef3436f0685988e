"""Test-wide settings: no network, few threads, and the shared real-data folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Nothing in the suite may reach a hub; fail loudly instead of downloading.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real-data folder ``../shared/data``; skips the test when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not available: {SHARED_DATA} is absent")
    return SHARED_DATA


@pytest.fixture
def adversarial_corpus(tmp_path) -> tuple[Path, dict[str, bool]]:
    """A folder of generated hostile DICOM files (``tests/adversarial_dicom.py``) and, per file
    name, whether it is readable."""
    from adversarial_dicom import write_corpus

    folder = tmp_path / "adversarial"
    return folder, write_corpus(folder)
