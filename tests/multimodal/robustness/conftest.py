"""A tiny random model and a synthetic batch with labels, for the attack tests."""

from __future__ import annotations

import pytest
import torch

from multimodal.models.configuration import MultimodalConfig
from multimodal.models.modeling import MultimodalModel

TINY = dict(observations="phantom", image_size=32, patch_size=8, image_hidden=32, image_layers=1, image_heads=2,
            image_mlp_dim=64, max_views=2, text_layers=1, text_max_length=16, fusion_layers=1, fusion_heads=2,
            fusion_hidden=32, decoder_layers=1, decoder_max_length=8)


@pytest.fixture()
def tiny_settings() -> dict:
    """MultimodalConfig keyword arguments of a 32-px, one-layer model over the phantom observations."""
    return dict(TINY)


@pytest.fixture(scope="session")
def tiny_model() -> MultimodalModel:
    torch.manual_seed(0)
    return MultimodalModel.from_config(MultimodalConfig(**TINY), load_pretrained=False).eval()


@pytest.fixture()
def labelled_batch() -> dict[str, torch.Tensor]:
    """Four studies (the last with one view), pixels in the normalised [0, 1] range, labels 0/1."""
    g = torch.Generator().manual_seed(1)
    pixels = (torch.rand(4, 2, 1, 32, 32, generator=g) - 0.5) / 0.25
    view_mask = torch.tensor([[True, True]] * 3 + [[True, False]])
    pixels[3, 1] = 0
    return {"pixel_values": pixels, "view_mask": view_mask, "input_ids": torch.randint(1000, 2000, (4, 6), generator=g),
            "attention_mask": torch.ones(4, 6, dtype=torch.long),
            "labels": torch.randint(0, 2, (4, 5), generator=g).float(), "label_mask": torch.ones(4, 5, dtype=torch.bool)}
