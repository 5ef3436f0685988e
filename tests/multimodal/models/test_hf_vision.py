"""`hf:<path>` image encoders: tiny randomly initialised Hugging Face checkpoints saved to a temporary
folder (no network): patch tokens and grid, the checkpoint's normalisation and size, grey input fed
as the checkpoint expects, offline rebuild from a saved model, LoRA and freezing."""

from __future__ import annotations

import shutil

import pytest
import torch
import transformers as hf

from multimodal.models import MultimodalConfig, MultimodalModel
from preprocessing.letterbox import IMAGE_MEAN, IMAGE_STD

TINY = dict(observations="phantom", text_layers=1, text_max_length=8, fusion_layers=1, fusion_heads=2,
            fusion_hidden=32, decoder_layers=1, decoder_max_length=8, max_views=1, dropout=0.0)
VIT = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, image_size=32,
           patch_size=8)
MEAN, STD = [0.4, 0.5, 0.6], [0.2, 0.25, 0.3]


def _checkpoint(kind: str):
    """(model, image processor, expected grid at 32 px) of a tiny random checkpoint."""
    if kind == "vit":
        model = hf.ViTModel(hf.ViTConfig(**VIT))
        processor = hf.ViTImageProcessor(size={"height": 32, "width": 32}, image_mean=MEAN, image_std=STD)
        return model, processor, (4, 4)
    if kind == "dinov2-registers":  # RAD-DINO's family (DINOv2), here with register tokens
        model = hf.Dinov2WithRegistersModel(hf.Dinov2WithRegistersConfig(
            **{k: v for k, v in VIT.items() if k != "intermediate_size"}, mlp_ratio=2, num_register_tokens=2))
        processor = hf.BitImageProcessor(size={"shortest_edge": 40}, crop_size={"height": 32, "width": 32},
                                         do_center_crop=True, image_mean=MEAN, image_std=STD)
        return model, processor, (4, 4)
    if kind == "clip":  # a whole CLIP checkpoint: only its vision tower is used
        config = hf.CLIPConfig(text_config=dict(hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                                intermediate_size=32), vision_config=VIT, projection_dim=16)
        processor = hf.CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32},
                                          image_mean=MEAN, image_std=STD)
        return hf.CLIPModel(config), processor, (4, 4)
    if kind == "siglip":
        model = hf.SiglipVisionModel(hf.SiglipVisionConfig(**VIT))
        processor = hf.SiglipImageProcessor(size={"height": 32, "width": 32}, image_mean=MEAN, image_std=STD)
        return model, processor, (4, 4)
    if kind == "swin":
        model = hf.SwinModel(hf.SwinConfig(image_size=32, patch_size=4, embed_dim=16, depths=[1, 1],
                                           num_heads=[1, 2], window_size=4))
        return model, hf.ViTImageProcessor(size={"height": 32, "width": 32}, image_mean=MEAN, image_std=STD), (4, 4)
    if kind == "convnext-grey":  # a one-channel checkpoint gets one channel
        model = hf.ConvNextModel(hf.ConvNextConfig(num_channels=1, hidden_sizes=[8, 16], depths=[1, 1],
                                                   num_stages=2))
        processor = hf.ConvNextImageProcessor(size={"shortest_edge": 32}, crop_pct=1.0, image_mean=[0.3],
                                              image_std=[0.2])
        return model, processor, (4, 4)
    raise ValueError(kind)


KINDS = ["vit", "dinov2-registers", "clip", "siglip", "swin", "convnext-grey"]


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("hf")
    out = {}
    for kind in KINDS:
        torch.manual_seed(0)
        model, processor, grid = _checkpoint(kind)
        model.save_pretrained(root / kind)
        processor.save_pretrained(root / kind)
        out[kind] = (root / kind, model, grid)
    return out


def _inputs(model, b=2, size=32):
    text = model.tokenizer([""] * b, return_tensors="pt")
    pixels = torch.randn(b, 1, 1, size, size, generator=torch.Generator().manual_seed(0))
    return {"pixel_values": pixels, "view_mask": torch.ones(b, 1, dtype=torch.bool), "input_ids": text.input_ids,
            "attention_mask": text.attention_mask}


@pytest.mark.parametrize("kind", KINDS)
def test_checkpoint_weights_tokens_grid_and_offline_rebuild(kind, checkpoints, tmp_path):
    path, source, grid = checkpoints[kind]
    config = MultimodalConfig(**TINY, image_encoder=f"hf:{path}")
    assert config.image_size == 32  # the checkpoint's processor size (its crop where it crops)
    model = MultimodalModel.from_config(config).eval()
    assert model.grid_size == grid
    name, weight = next((n, p) for n, p in source.state_dict().items() if n.endswith("weight") and p.ndim > 1
                        and "text" not in n)
    loaded = dict(model.image_encoder.model.state_dict())
    torch.testing.assert_close(loaded[name.removeprefix("vision_model.")] if name not in loaded else loaded[name],
                               weight)
    inputs = _inputs(model)
    with torch.no_grad():
        out = model(**inputs)
    assert out.heatmaps.shape == (2, 5, *grid)
    # Rebuilt from the saved directory alone: the checkpoint folder is gone.
    model.save_pretrained(tmp_path / "saved")
    moved = tmp_path / "moved"
    shutil.copytree(path, moved)
    shutil.rmtree(path)
    try:
        again = MultimodalModel.from_pretrained(tmp_path / "saved")
        with torch.no_grad():
            torch.testing.assert_close(again(**inputs).logits, out.logits)
    finally:
        shutil.copytree(moved, path)


@pytest.mark.parametrize(("kind", "channels", "mean", "std"),
                         [("vit", 3, MEAN, STD), ("convnext-grey", 1, [0.3], [0.2])])
def test_grey_radiograph_is_fed_with_the_checkpoints_normalisation(kind, channels, mean, std, checkpoints):
    path = checkpoints[kind][0]
    model = MultimodalModel.from_config(MultimodalConfig(**TINY, image_encoder=f"hf:{path}"),
                                        load_pretrained=False).eval()
    seen = {}
    model.image_encoder.model.register_forward_pre_hook(lambda m, a, kw: seen.update(kw), with_kwargs=True)
    grey = torch.rand(1, 1, 32, 32)
    model.image_encoder((grey - IMAGE_MEAN) / IMAGE_STD)
    fed = seen["pixel_values"]
    assert fed.shape == (1, channels, 32, 32)
    expected = (grey.expand(-1, channels, -1, -1) - torch.tensor(mean).view(1, -1, 1, 1)) / torch.tensor(std).view(1, -1, 1, 1)
    torch.testing.assert_close(fed, expected)


def test_other_input_sizes_interpolate_the_position_embeddings(checkpoints):
    model = MultimodalModel.from_config(
        MultimodalConfig(**TINY, image_encoder=f"hf:{checkpoints['vit'][0]}", image_size=48), load_pretrained=False)
    assert model.grid_size == (6, 6)


@pytest.mark.parametrize("kind", ["vit", "clip"])
def test_lora_and_freezing_work_the_same(kind, checkpoints):
    path = checkpoints[kind][0]
    model = MultimodalModel.from_config(MultimodalConfig(**TINY, image_encoder=f"hf:{path}", lora_image={"r": 2}),
                                        load_pretrained=False)
    trainable = [n for n, p in model.image_encoder.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    frozen = MultimodalModel.from_config(MultimodalConfig(**TINY, image_encoder=f"hf:{path}", freeze_image=1),
                                         load_pretrained=False)
    encoder = frozen.image_encoder
    assert not any(p.requires_grad for p in encoder.stem().parameters())
    assert not any(p.requires_grad for p in encoder.blocks()[0].parameters())
    assert all(p.requires_grad for p in encoder.blocks()[1].parameters())


def test_a_missing_checkpoint_names_the_key(tmp_path):
    from preprocessing.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        MultimodalConfig(image_encoder=f"hf:{tmp_path / 'nothing'}")
    assert info.value.key == "image_encoder"
