"""The learned spatial prior of the heat map, and timm's output stride as a finer heat-map grid."""

from __future__ import annotations

import pytest
import torch

from multimodal.evaluation.region import heatmap_peak
from multimodal.models import MultimodalConfig, MultimodalModel
from multimodal.models.heads import prior_from_box_frequency
from preprocessing.errors import ConfigError

SIZE = 64
TINY = dict(observations="phantom", image_size=SIZE, patch_size=16, image_hidden=32, image_layers=1, image_heads=2,
            image_mlp_dim=64, max_views=1, text_layers=1, text_max_length=8, freeze_text="all", fusion_layers=1,
            fusion_heads=2, fusion_hidden=32, decoder_layers=1, decoder_max_length=8, dropout=0.0)


def inputs(model: MultimodalModel, b: int = 3) -> dict[str, torch.Tensor]:
    text = model.tokenizer([""] * b, return_tensors="pt")
    return {"pixel_values": torch.randn(b, 1, 1, SIZE, SIZE, generator=torch.Generator().manual_seed(0)),
            "view_mask": torch.ones(b, 1, dtype=torch.bool), "input_ids": text.input_ids,
            "attention_mask": text.attention_mask}


def test_prior_starts_at_the_log_odds_of_the_box_frequency_less_its_maximum():
    frequency = torch.zeros(2, 2, 2)
    frequency[0] = torch.tensor([[0.8, 0.2], [0.0, 0.5]])  # observation 1 has no boxes
    prior = prior_from_box_frequency(frequency)
    assert prior[0, 0, 0] == 0 and torch.all(prior[0] <= 0)
    assert prior[0, 1, 1] > prior[0, 0, 1] > prior[0, 1, 0]  # ordered like the frequencies
    assert torch.allclose(prior[0, 1, 0], torch.logit(torch.tensor(0.01)) - torch.logit(torch.tensor(0.8)))
    assert torch.equal(prior[1], torch.zeros(2, 2))


def test_the_prior_places_the_peak_when_the_image_gives_no_evidence_and_survives_save_and_load(tmp_path):
    torch.manual_seed(0)
    model = MultimodalModel.from_config(MultimodalConfig(**TINY, spatial_prior=True), load_pretrained=False).eval()
    d, (h, w) = len(model.config.observations), model.grid_size
    assert model.heads.prior.shape == (d, h, w) and model.heads.prior.requires_grad
    with torch.no_grad():
        model.heads.patch.weight.zero_()  # flat image evidence: every patch scores the same
        model.heads.prior.zero_()
        model.heads.prior[:, 3, 1] = 2.0  # the peak every observation's map should take
    with torch.no_grad():
        before = model(**inputs(model)).heatmaps
    cell = SIZE // h
    for study in before:
        for heat in study:
            x, y = heatmap_peak(heat.numpy(), SIZE)
            assert (int(x // cell), int(y // cell)) == (1, 3)
    model.save_pretrained(tmp_path / "m")
    loaded = MultimodalModel.from_pretrained(tmp_path / "m")
    assert torch.equal(loaded.heads.prior, model.heads.prior)
    with torch.no_grad():
        assert torch.allclose(loaded(**inputs(loaded)).heatmaps, before)


def test_without_the_flag_there_is_no_prior_parameter():
    model = MultimodalModel.from_config(MultimodalConfig(**TINY), load_pretrained=False)
    assert model.heads.prior is None
    assert not any("prior" in name for name in model.state_dict())  # earlier checkpoints load unchanged


def test_output_stride_16_doubles_a_timm_cnn_grid_and_other_kinds_refuse_it():
    cnn = {**TINY, "image_encoder": "timm:resnet18"}
    coarse = MultimodalModel.from_config(MultimodalConfig(**cnn), load_pretrained=False)
    fine = MultimodalModel.from_config(MultimodalConfig(**cnn, image_output_stride=16), load_pretrained=False)
    assert coarse.grid_size == (SIZE // 32, SIZE // 32) and fine.grid_size == (SIZE // 16, SIZE // 16)
    with torch.no_grad():
        assert fine(**inputs(fine)).heatmaps.shape[-2:] == (SIZE // 16, SIZE // 16)
    with pytest.raises(ConfigError, match="image_output_stride"):
        MultimodalConfig(**TINY, image_output_stride=16)
    with pytest.raises(ConfigError, match="image_output_stride"):
        MultimodalConfig(**cnn, image_output_stride=12)


def test_skip_stride_8_gives_a_timm_cnn_a_stride_8_grid_that_reads_the_finer_map_and_round_trips(tmp_path):
    cnn = {**TINY, "image_encoder": "timm:resnet18", "image_output_stride": 16}
    torch.manual_seed(0)
    model = MultimodalModel.from_config(MultimodalConfig(**cnn, image_skip_stride=8), load_pretrained=False).eval()
    assert model.grid_size == (SIZE // 8, SIZE // 8)
    encoder = model.image_encoder
    assert encoder.lateral.in_channels == 128 and encoder.lateral.out_channels == encoder.out_dim == 512
    batch = inputs(model)
    with torch.no_grad():
        heat = model(**batch).heatmaps
        assert heat.shape[-2:] == (SIZE // 8, SIZE // 8)
        # The finer map is really used: silencing the lateral projection changes the tokens.
        tokens = encoder(batch["pixel_values"][:, 0])
        encoder.lateral.weight.zero_()
        encoder.lateral.bias.zero_()
        assert not torch.allclose(encoder(batch["pixel_values"][:, 0]), tokens)
    model.save_pretrained(tmp_path / "m")
    loaded = MultimodalModel.from_pretrained(tmp_path / "m")
    assert loaded.config.image_skip_stride == 8 and loaded.grid_size == model.grid_size
    with torch.no_grad():
        assert torch.allclose(loaded(**batch).heatmaps, model(**batch).heatmaps)


def test_skip_stride_is_refused_where_it_cannot_apply():
    cnn = {**TINY, "image_encoder": "timm:resnet18"}
    with pytest.raises(ConfigError, match="image_skip_stride"):
        MultimodalConfig(**TINY, image_skip_stride=8)  # MONAI ViT
    with pytest.raises(ConfigError, match="image_skip_stride"):
        MultimodalConfig(**cnn, image_output_stride=8, image_skip_stride=8)  # not finer
    with pytest.raises(ConfigError, match="image_skip_stride"):
        MultimodalConfig(**cnn, image_skip_stride=6)
    with pytest.raises(ConfigError, match="image_skip_stride"):  # a timm ViT has no stride-8 map
        MultimodalModel.from_config(MultimodalConfig(**{**TINY, "image_encoder": "timm:vit_tiny_patch16_224"},
                                                     image_skip_stride=8), load_pretrained=False)
