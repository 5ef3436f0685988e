"""A tiny saved model and a small phantom archive, built once for the inference tests."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from multimodal.data.phantom import write_phantom_dataset
from multimodal.models.configuration import MultimodalConfig
from multimodal.models.modeling import MultimodalModel


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised 64-px, one-layer model over the phantom observations, saved.

    Thresholds make Cardiomegaly always positive and Pneumothorax always negative.
    """
    torch.manual_seed(0)
    config = MultimodalConfig(observations="phantom", image_size=64, patch_size=16, image_hidden=32, image_layers=1,
                              image_heads=2, image_mlp_dim=64, text_layers=1, text_max_length=32, fusion_layers=1,
                              fusion_heads=2, fusion_hidden=32, decoder_layers=1, decoder_max_length=6,
                              thresholds={"Cardiomegaly": 0.0, "Pneumothorax": 1.0}, name="mmdx-test", version="0.0.1")
    return MultimodalModel.from_config(config, load_pretrained=False).save_pretrained(
        tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="session")
def phantom_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Folder holding ``manifest.jsonl`` and ``dicom/<study>/<view>.dcm`` for 8 SYNTHETIC studies."""
    out = tmp_path_factory.mktemp("phantom")
    write_phantom_dataset(out, studies=8, seed=1, size=64)
    return out
