"""Training runs end to end, resumes exactly after a stop, and runs as two processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from multimodal.models.modeling import MultimodalModel
from multimodal.training import train
from preprocessing.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parents[3]


def _weights(model_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(model_dir / "model.safetensors"))


def test_stopped_and_resumed_run_ends_where_an_uninterrupted_run_ends(tiny_config, tmp_path):
    full = train(tiny_config, tmp_path / "full")
    assert full.steps == 4 and full.best is not None
    # A time-boxed first job stops after 2 of 4 steps; the second continues from RUN_DIR/state.
    part = train(tiny_config, tmp_path / "part", overrides=["halt_after_steps=2"])
    assert part.steps == 2
    resumed = train(tiny_config, tmp_path / "part", resume=True)
    assert resumed.steps == 4
    a, b = _weights(full.last), _weights(resumed.last)
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-4, atol=1e-5, msg=name)
    assert (tmp_path / "part" / "history.jsonl").read_text().count("\n") == 2  # evaluations at steps 2 and 4


def test_run_dir_holds_loadable_checkpoints_with_tuned_thresholds_and_resolved_config(tiny_config, tmp_path):
    result = train(tiny_config, tmp_path / "run", overrides=["optim.max_steps=2"])
    model = MultimodalModel.from_pretrained(result.best)
    assert set(model.config.thresholds) == set(model.config.observations)
    assert "macro_auroc" in result.best_metrics and "val_loss" in result.metrics
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert saved["optim"]["max_steps"] == 2 and saved["optim"]["grad_accum"] == 1  # defaults filled in
    assert any((tmp_path / "run" / "tb").rglob("events.out.tfevents.*"))
    with pytest.raises(ConfigError, match="--resume"):  # refuses to overwrite a run silently
        train(tiny_config, tmp_path / "run")


def test_two_cpu_processes_train_and_write_one_checkpoint(tiny_config, tmp_path):
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(tiny_config))
    # `accelerate launch --cpu` starts one process unless MPI is set up; the torchrun-based launcher
    # (--multi_gpu) with ACCELERATE_USE_CPU starts two CPU processes that talk over gloo.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "ACCELERATE_USE_CPU": "1"}
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           "--main_process_port", "0", "-m", "multimodal.cli", "train",
           "--config", str(config), "--set", "optim.max_steps=2", "--out", str(tmp_path / "ddp"),
           # Every part of the model gets a gradient (every tiny study has findings): DDP's faster
           # mode, which fails on a trainable parameter left without one, must work.
           "--set", "ddp_find_unused_parameters=false"]
    done = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, (done.stdout + done.stderr)[-6000:]
    run = tmp_path / "ddp"
    assert sorted(p.name for p in run.iterdir() if p.is_dir()) == ["best", "last", "state", "tb"]
    assert (run / "last" / "model.safetensors").is_file()
    assert len(list((run / "state").glob("random_states_*.pkl"))) == 2  # one RNG state per process


def test_decoder_vocab_from_train_restricts_the_saved_decoder_to_training_findings(tiny_config, tmp_path):
    from multimodal.data.manifest import load_manifest
    from multimodal.models import build_decoder_vocab

    result = train(tiny_config, tmp_path / "run", overrides=["optim.max_steps=1", "data.decoder_vocab_from_train=true"])
    model = MultimodalModel.from_pretrained(result.last)
    findings = [r.findings for r in load_manifest(tiny_config["data"]["manifest"], splits="train")]
    assert model.config.decoder_vocab == build_decoder_vocab(findings, model.tokenizer)
    assert model.decoder.lm.config.vocab_size == len(model.config.decoder_vocab) < 1000


def test_ddp_looks_for_unused_parameters_only_when_some_training_study_lacks_findings(tiny_config, tmp_path):
    from multimodal.training.config import load_train_config
    from multimodal.training.trainer import find_unused_parameters, split_records

    def choice(config):
        return find_unused_parameters(config, split_records(config, config.data.train_split))

    assert choice(load_train_config(tiny_config)) is False  # every phantom study has findings
    rows = [json.loads(line) for line in Path(tiny_config["data"]["manifest"]).read_text().splitlines()]
    next(r for r in rows if r["split"] == "train")["findings"] = ""
    folder = Path(tiny_config["data"]["manifest"]).parent
    for r in rows:
        r["images"] = [str(folder / image) for image in r["images"]]
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    tiny_config["data"]["manifest"] = str(manifest)
    assert choice(load_train_config(tiny_config)) is True
    assert choice(load_train_config(tiny_config, ["ddp_find_unused_parameters=false"])) is False


def test_ema_run_is_calibrated_and_exports_its_top_k_checkpoints_as_an_ensemble(tiny_config, tmp_path):
    from multimodal.models.ensemble import EnsembleModel

    result = train(tiny_config, tmp_path / "run", overrides=["averaging.kind=ema", "averaging.ema_decay=0.5",
                                                            "averaging.export_top_k=2",
                                                            "early_stopping.metric=val_loss"])
    run = tmp_path / "run"
    assert sorted(p.name for p in (run / "top_k").iterdir()) == ["step-2", "step-4"]
    ensemble = MultimodalModel.from_pretrained(run / "ensemble")
    assert isinstance(ensemble, EnsembleModel) and len(ensemble.members) == 2
    for model_dir in (result.best, result.last, run / "ensemble"):
        calibration = MultimodalModel.from_pretrained(model_dir).config.calibration
        assert calibration["method"] == "temperature" and calibration["fitted_on"]["split"] == "val"
    # The checkpoints hold the averaged weights; the resumable state keeps training's raw ones.
    raw = load_file(str(run / "state" / "model.safetensors"))
    assert any(not torch.equal(w, raw[k]) for k, w in _weights(result.last).items() if k in raw)


def test_the_spatial_prior_starts_from_the_training_boxes_and_validation_scores_the_pointing_game(tiny_config,
                                                                                                  tmp_path):
    from multimodal.data.dataset import StudyDataset, box_frequency
    from multimodal.models.heads import prior_from_box_frequency
    from multimodal.training.config import load_train_config
    from multimodal.training.trainer import init_spatial_prior, split_records

    tiny_config["model"]["spatial_prior"] = True
    cfg = load_train_config(tiny_config)
    records = split_records(cfg, "train")
    model = MultimodalModel.from_config(cfg.multimodal_config())
    frequency = init_spatial_prior(model, records, cfg)
    assert frequency.amax() > 0  # the phantom's training studies carry boxes
    expected = box_frequency(StudyDataset(records, model.config, tokenizer=model.tokenizer, grid_size=model.grid_size))
    torch.testing.assert_close(frequency, expected)
    torch.testing.assert_close(model.heads.prior.detach(), prior_from_box_frequency(frequency))

    result = train(tiny_config, tmp_path / "run", overrides=["optim.max_steps=2",
                                                               "early_stopping.metric=auroc_pointing"])
    history = [json.loads(line) for line in (tmp_path / "run" / "history.jsonl").read_text().splitlines()]
    assert 0.0 <= history[-1]["pointing_game"] <= 1.0
    assert history[-1]["auroc_pointing"] == pytest.approx((history[-1]["macro_auroc"] + history[-1]["pointing_game"]) / 2)
    assert result.best_metrics["auroc_pointing"] == max(h["auroc_pointing"] for h in history)
    assert MultimodalModel.from_pretrained(result.best).heads.prior is not None
