"""A run can start from a saved model (``init_from``) and call hooks after each optimizer step."""

from __future__ import annotations

import pytest
import torch

from multimodal.models.modeling import MultimodalModel
from multimodal.training import train
from multimodal.training.config import load_train_config
from multimodal.training.trainer import build_model
from preprocessing.errors import ConfigError


def test_init_from_starts_from_the_saved_model_and_hooks_run_once_per_optimizer_step(tiny_config, tmp_path):
    first = train(tiny_config, tmp_path / "first", overrides=["optim.max_steps=2"])
    config = {k: v for k, v in tiny_config.items() if k != "model"}
    config.update(init_from=str(first.last), optim={"lr": 1e-3, "max_steps": 3, "grad_accum": 2})
    cfg = load_train_config(config)
    start, saved = build_model(cfg, tmp_path, []), MultimodalModel.from_pretrained(first.last)
    assert start.training
    for (name, a), b in zip(start.state_dict().items(), saved.state_dict().values()):
        torch.testing.assert_close(a, b, msg=name)

    seen = []
    result = train(config, tmp_path / "second", after_step=[lambda model: seen.append(type(model))])
    assert result.steps == 3 and seen == [MultimodalModel] * 3  # 6 micro-batches, 3 optimizer steps


def test_init_from_refuses_a_model_section_too(tiny_config, tmp_path):
    with pytest.raises(ConfigError, match="model"):
        load_train_config({**tiny_config, "init_from": str(tmp_path)})
