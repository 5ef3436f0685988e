"""`txrv:<name>`: torchxrayvision's DenseNet as the image encoder, its [-1024, 1024] intensity range,
weights from a local state-dict file, and the round trip through save_pretrained."""

from __future__ import annotations

import pytest
import torch

from multimodal.models import MultimodalConfig, MultimodalModel
from preprocessing.letterbox import IMAGE_MEAN, IMAGE_STD

xrv = pytest.importorskip("torchxrayvision", reason="the txrv extra (torchxrayvision) is not installed")

TINY = dict(observations="phantom", image_encoder="txrv:densenet121-res224-all", image_size=64, text_layers=1,
            text_max_length=8, fusion_layers=1, fusion_heads=2, fusion_hidden=32, decoder_layers=1,
            decoder_max_length=8, max_views=1)


def test_weights_from_a_file_intensity_range_grid_and_round_trip(tmp_path):
    from safetensors.torch import save_file

    torch.manual_seed(0)
    released = xrv.models.DenseNet(weights=None)  # stands in for a released model: features + classifier
    weights = tmp_path / "densenet.safetensors"
    save_file({k: v.contiguous() for k, v in released.state_dict().items()}, str(weights))
    model = MultimodalModel.from_config(MultimodalConfig(**TINY, image_pretrained=str(weights))).eval()
    torch.testing.assert_close(model.image_encoder.features.conv0.weight, released.features.conv0.weight)
    assert model.grid_size == (2, 2) and model.image_encoder.out_dim == 1024

    seen = []
    model.image_encoder.features.register_forward_pre_hook(lambda m, args: seen.append(args[0]))
    black_white = torch.zeros(1, 1, 64, 64)
    black_white[..., 32:] = 1.0
    tokens = model.image_encoder((black_white - IMAGE_MEAN) / IMAGE_STD)
    assert tokens.shape == (1, 4, 1024)
    assert seen[0].min().item() == pytest.approx(-1024) and seen[0].max().item() == pytest.approx(1024)

    text = model.tokenizer([""], return_tensors="pt")
    inputs = {"pixel_values": torch.randn(1, 1, 1, 64, 64), "view_mask": torch.ones(1, 1, dtype=torch.bool),
              "input_ids": text.input_ids, "attention_mask": text.attention_mask}
    model.save_pretrained(tmp_path / "saved")
    weights.unlink()
    again = MultimodalModel.from_pretrained(tmp_path / "saved")
    with torch.no_grad():
        torch.testing.assert_close(again(**inputs).logits, model(**inputs).logits)


def test_freezing_the_stem_and_first_blocks():
    model = MultimodalModel.from_config(MultimodalConfig(**TINY, freeze_image=1), load_pretrained=False)
    encoder = model.image_encoder
    assert not any(p.requires_grad for p in encoder.features.conv0.parameters())
    assert not any(p.requires_grad for p in encoder.features.denseblock1.parameters())
    assert all(p.requires_grad for p in encoder.features.denseblock2.parameters())
