"""A tiny random model (two views) saved once for the compression tests."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from multimodal.models.configuration import MultimodalConfig
from multimodal.models.modeling import MultimodalModel


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    config = MultimodalConfig(observations="phantom", image_size=32, patch_size=8, image_hidden=32, image_layers=1,
                              image_heads=2, image_mlp_dim=64, max_views=2, text_layers=1, text_max_length=16,
                              fusion_layers=1, fusion_heads=2, fusion_hidden=32, decoder_layers=1, decoder_max_length=8)
    return MultimodalModel.from_config(config, load_pretrained=False).save_pretrained(tmp_path_factory.mktemp("tiny"))
