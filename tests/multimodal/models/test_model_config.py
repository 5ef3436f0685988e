"""MultimodalConfig: defaults, JSON round trip, and validation errors that name the key."""

from __future__ import annotations

import json

import pytest

from multimodal.models import MultimodalConfig
from preprocessing.errors import ConfigError
from preprocessing.vocab import PHANTOM_OBSERVATIONS, ZONES


def test_named_observation_set_resolves_and_thresholds_default_to_half():
    config = MultimodalConfig(observations="phantom", thresholds={"Cardiomegaly": 0.3})
    assert config.observations == list(PHANTOM_OBSERVATIONS)
    assert config.thresholds["Cardiomegaly"] == 0.3
    assert config.thresholds["Pneumothorax"] == 0.5
    assert config.zones == list(ZONES)
    assert config.grid_size == (14, 14)


def test_save_load_round_trip(tmp_path):
    config = MultimodalConfig(observations="nih", lora_text={"r": 4}, freeze_image=2, mil_pooling="attention")
    config.save(tmp_path)
    loaded = MultimodalConfig.load(tmp_path)
    assert loaded == config
    assert loaded.lora_text == {"r": 4, "alpha": 8, "dropout": 0.05, "target_modules": None}
    assert json.loads((tmp_path / "config.json").read_text())["observations"][0] == "Atelectasis"


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        ({"observations": "nope"}, "observations"),
        ({"zones": ["left_upper", "belly"]}, "zones"),
        ({"image_encoder": "resnet"}, "image_encoder"),
        ({"image_size": 100, "patch_size": 16}, "patch_size"),
        ({"fusion_hidden": 100, "fusion_heads": 12}, "fusion_heads"),
        ({"image_layers": 0}, "image_layers"),
        ({"freeze_text": "some"}, "freeze_text"),
        ({"lora_image": {"rank": 4}}, "lora_image.rank"),
        ({"image_encoder": "timm:"}, "image_encoder"),
        ({"image_encoder": "txrv:resnet"}, "image_encoder"),
        ({"image_encoder": "txrv:densenet121-res224-all", "image_size": 100}, "image_size"),
        ({"image_size": "big"}, "image_size"),
        ({"decoder_vocab": [3, -1]}, "decoder_vocab"),
        ({"lora_text": {"r": 4, "dropout": 2.0}}, "lora_text.dropout"),
        ({"mil_pooling": "max"}, "mil_pooling"),
        ({"uncertain_policy": "maybe"}, "uncertain_policy"),
        ({"loss_weights": {"regoin": 1.0}}, "loss_weights"),
        ({"thresholds": {"Cardiomegaly": 1.5}}, "thresholds"),
        ({"dropout": 1.0}, "dropout"),
    ],
)
def test_invalid_values_name_the_key(overrides, key):
    with pytest.raises(ConfigError) as info:
        MultimodalConfig(**{"observations": "chexpert", **overrides})
    assert info.value.key == key
    assert repr(key) in str(info.value)


def test_unknown_key_and_missing_file_are_reported(tmp_path):
    with pytest.raises(ConfigError, match="image_sise.*did you mean 'image_size'"):
        MultimodalConfig.from_dict({"image_sise": 64})
    with pytest.raises(ConfigError, match="does not exist"):
        MultimodalConfig.load(tmp_path)


def test_registry_gives_the_grid_and_lists_kinds():
    assert MultimodalConfig(image_size=64, patch_size=8).grid_size == (8, 8)
    assert MultimodalConfig(image_encoder="txrv:densenet121-res224-all", image_size=128).grid_size == (4, 4)
    assert MultimodalConfig(image_encoder="timm:resnet18").grid_size is None
    with pytest.raises(ConfigError, match="hf:<id-or-path>"):
        MultimodalConfig(image_encoder="vit:base")


def test_config_json_of_the_dataclass_era_still_loads(tmp_path):
    """A config.json written before the pydantic config (no image_config key) loads unchanged."""
    old = MultimodalConfig(observations="nih").to_dict()
    del old["image_config"]
    (tmp_path / "config.json").write_text(json.dumps(old))
    loaded = MultimodalConfig.load(tmp_path)
    assert loaded.observations[0] == "Atelectasis" and loaded.image_config is None


def test_validate_rechecks_assigned_fields():
    config = MultimodalConfig()
    config.patch_size = 15
    with pytest.raises(ConfigError, match="patch_size"):
        config.validate()
