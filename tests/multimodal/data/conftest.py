"""A small phantom data set shared by the data tests (generated once per session)."""

from __future__ import annotations

from pathlib import Path

import pytest

from multimodal.data.phantom import write_phantom_dataset

PHANTOM_STUDIES = 12
PHANTOM_SIZE = 64
PHANTOM_SEED = 3


@pytest.fixture(scope="session")
def phantom_manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Manifest of 12 SYNTHETIC phantom studies at 64 px (seed 3)."""
    out = tmp_path_factory.mktemp("phantom")
    return write_phantom_dataset(out, studies=PHANTOM_STUDIES, seed=PHANTOM_SEED, size=PHANTOM_SIZE)
