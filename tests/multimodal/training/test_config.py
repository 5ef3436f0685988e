"""Training configs: YAML + overrides, validated with errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from multimodal.training.config import load_train_config, save_train_config
from preprocessing.errors import ConfigError

CONFIGS = sorted((Path(__file__).resolve().parents[3] / "configs").glob("*.yaml"))
BASE = {"data": {"manifest": "m.jsonl"}}


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_every_shipped_config_validates(path):
    cfg = load_train_config(path)
    assert cfg.data.manifest and cfg.multimodal_config().observations


@pytest.mark.parametrize("override, key, words", [
    (["optim.lr=-1"], "optim.lr", "greater than 0"),
    (["optim.lrr=1e-3"], "optim.lrr", "did you mean 'lr'"),
    (["modle.image_size=64"], "modle", "did you mean 'model'"),
    (["model.image_sise=64"], "model.image_sise", "did you mean 'image_size'"),
    (["model.image_size=64", "model.patch_size=7"], "model.patch_size", "does not divide"),
    (["data.batch_size=many"], "data.batch_size", "integer"),
    (["precision=fp8"], "precision", "'bf16'"),
    (["optim.lr"], "optim.lr", "key.sub=value"),
])
def test_errors_name_the_key(override, key, words):
    with pytest.raises(ConfigError) as err:
        load_train_config(BASE, override)
    assert err.value.key == key
    assert words in str(err.value) and f"config key {key!r}" in str(err.value)


def test_overrides_are_parsed_as_yaml_and_the_resolved_config_round_trips(tmp_path):
    cfg = load_train_config(BASE, ["optim.lr=3e-4", "optim.betas=[0.9, 0.95]", "optim.max_grad_norm=null",
                                   "model.observations=[A, B]", "data.manifest=[a.jsonl, b.jsonl]"])
    assert cfg.optim.lr == 3e-4 and cfg.optim.betas == (0.9, 0.95) and cfg.optim.max_grad_norm is None
    assert cfg.multimodal_config().observations == ["A", "B"] and cfg.data.manifest == ["a.jsonl", "b.jsonl"]
    again = load_train_config(save_train_config(cfg, tmp_path / "config.yaml"))
    assert again == cfg


def test_a_missing_or_broken_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_train_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: [unclosed\n")
    with pytest.raises(ConfigError, match="bad.yaml is not valid YAML"):
        load_train_config(bad)
