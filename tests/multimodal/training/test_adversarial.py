"""Adversarial training: the config block, the batch perturbation, and whole runs (bf16, accumulation, 2 processes)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from accelerate.state import AcceleratorState

from multimodal.models.configuration import MultimodalConfig
from multimodal.models.modeling import MultimodalModel
from multimodal.training import load_train_config, train
from multimodal.training.adversarial import AdversarialConfig, Adversary
from preprocessing.errors import ConfigError
from preprocessing.letterbox import IMAGE_STD

REPO_ROOT = Path(__file__).resolve().parents[3]
PGD = {"method": "pgd", "eps": 0.02, "steps": 2, "share": 0.5}


def _batch() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {"pixel_values": (torch.rand(4, 1, 1, 32, 32, generator=g) - 0.5) / 0.25, "view_mask": torch.ones(4, 1, dtype=torch.bool),
            "input_ids": torch.randint(1000, 2000, (4, 5), generator=g), "attention_mask": torch.ones(4, 5, dtype=torch.long),
            "labels": torch.randint(0, 2, (4, 5), generator=g).float(), "label_mask": torch.ones(4, 5, dtype=torch.bool)}


def test_adversary_perturbs_the_batch_share_within_eps_under_bf16_autocast(tiny_config):
    torch.manual_seed(0)
    model = MultimodalModel.from_config(MultimodalConfig(**tiny_config["model"]), load_pretrained=False).train()
    adversary = Adversary(AdversarialConfig(**PGD, text_eps=0.01), model)
    batch = _batch()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = adversary.perturb(batch)
        assert adversary.text_offset.pending is not None  # waits for the training forward
        loss = model(**out).loss
    loss.backward()
    assert adversary.text_offset.pending is None
    diff = (out["pixel_values"] - batch["pixel_values"]).abs().flatten(1).amax(1) * IMAGE_STD
    assert (diff[:2] > 0.01).all() and (diff[:2] <= 0.02 + 1e-6).all()  # the first half, within eps
    assert (diff[2:] == 0).all()  # the rest stays clean
    assert out["labels"] is batch["labels"]


def test_method_none_is_the_identity_and_stray_keys_are_named(tiny_config):
    batch = _batch()
    assert Adversary(AdversarialConfig(), model=None).perturb(batch) is batch
    with pytest.raises(ConfigError, match="adversarial.method"):
        AdversarialConfig(eps=0.01)
    assert AdversarialConfig(**AdversarialConfig().model_dump()).method == "none"  # a resolved config reloads
    with pytest.raises(ConfigError, match="adversarial.share"):
        load_train_config({"data": {"manifest": "m.jsonl"}, "model": tiny_config["model"],
                           "adversarial": {"method": "fgsm", "share": 0}})


def test_adversarial_training_runs_under_bf16_autocast_with_gradient_accumulation(tiny_config, tmp_path):
    tiny_config.update(precision="bf16", adversarial=PGD)
    tiny_config["optim"].update(grad_accum=2, max_steps=1)
    try:  # an earlier fp32 run in this process (any test that trains) must not decide this one's precision
        result = train(tiny_config, tmp_path / "adv")
    finally:  # Accelerate keeps its precision per process: later fp32 runs in this process need a fresh state
        AcceleratorState._reset_state(reset_partial_state=True)
    assert result.steps == 1 and torch.isfinite(torch.tensor(result.metrics["val_loss"]))
    saved = yaml.safe_load((tmp_path / "adv" / "config.yaml").read_text())
    assert saved["adversarial"]["method"] == "pgd" and saved["precision"] == "bf16"
    MultimodalModel.from_pretrained(result.last)


def test_adversarial_training_runs_in_two_cpu_processes(tiny_config, tmp_path):
    tiny_config["adversarial"] = {"method": "fgsm", "eps": 0.02, "share": 1.0}
    config = tmp_path / "adv.yaml"
    config.write_text(yaml.safe_dump(tiny_config))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "ACCELERATE_USE_CPU": "1"}
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "0",
           "-m", "multimodal.cli", "train", "--config", str(config), "--set", "optim.max_steps=2",
           "--set", "ddp_find_unused_parameters=false", "--out", str(tmp_path / "ddp")]
    done = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, (done.stdout + done.stderr)[-6000:]
    assert (tmp_path / "ddp" / "last" / "model.safetensors").is_file()
