"""A tiny phantom data set and a tiny training config shared by the training tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from multimodal.data.phantom import write_phantom_dataset

TINY_MODEL = {
    "observations": "phantom", "image_size": 32, "patch_size": 8, "image_hidden": 32, "image_layers": 1,
    "image_heads": 2, "image_mlp_dim": 64, "max_views": 1, "text_layers": 1, "text_max_length": 16,
    "freeze_text": "all", "fusion_layers": 1, "fusion_heads": 2, "fusion_hidden": 32, "fusion_mlp_ratio": 2.0,
    "decoder_layers": 1, "decoder_max_length": 16,
}


@pytest.fixture(scope="session")
def phantom_manifest(tmp_path_factory) -> Path:
    """24 SYNTHETIC phantom studies at 64 px (train/val/test splits); returns the manifest path."""
    return write_phantom_dataset(tmp_path_factory.mktemp("phantom"), studies=24, seed=0, size=64)


@pytest.fixture()
def tiny_config(phantom_manifest) -> dict:
    """A TrainConfig dict that trains a few steps in seconds on a CPU."""
    return {
        "model": dict(TINY_MODEL),
        "data": {"manifest": str(phantom_manifest), "batch_size": 4, "augment": False},
        "optim": {"lr": 1e-3, "max_steps": 4, "warmup_steps": 1},
        "eval_every": 2,
        "precision": "fp32",
        "logging": {"progress": False, "heatmap_images": 2},
        "seed": 0,
    }


@pytest.fixture(autouse=True)
def state_key(tmp_path_factory, monkeypatch) -> Path:
    """The key that signs resume state lives in a test folder, not in the user's ~/.config."""
    path = tmp_path_factory.getbasetemp() / "state.key"
    monkeypatch.setenv("MMDX_STATE_KEY", str(path))
    return path
