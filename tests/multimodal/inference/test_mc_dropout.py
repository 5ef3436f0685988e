"""MC dropout: dropout on only during its passes, a seeded spread, the same numbers through the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from multimodal.cli import main
from multimodal.inference import Predictor
from multimodal.models.configuration import MultimodalConfig
from multimodal.models.ensemble import build_ensemble
from multimodal.models.mc_dropout import MCDropoutModel, dropout_layers, with_mc_dropout
from multimodal.models.modeling import MultimodalModel
from preprocessing.errors import ConfigError


@pytest.fixture()
def model(tiny_model_dir):
    return MultimodalModel.from_pretrained(tiny_model_dir)


def _inputs(model, batch: int = 2) -> dict[str, torch.Tensor]:
    size = model.config.image_size
    ids = model.tokenizer(["", "cough and fever"][:batch], padding=True, return_tensors="pt")
    return {"pixel_values": torch.randn(batch, 1, 1, size, size, generator=torch.Generator().manual_seed(0)),
            "view_mask": torch.ones(batch, 1, dtype=torch.bool), "input_ids": ids["input_ids"],
            "attention_mask": ids["attention_mask"]}


def _dropping(model) -> list[bool]:
    """Runs ``model``'s forward hooks record: per dropout call, whether it changed its input."""
    calls: list[bool] = []
    for layer in dropout_layers(model):
        layer.register_forward_hook(lambda m, args, out: calls.append(not torch.equal(args[0], out)))
    return calls


@torch.no_grad()
def test_dropout_acts_only_during_mc_passes_and_the_model_stays_in_eval_mode(model):
    inputs = _inputs(model)
    plain = model(**inputs).probs
    mc = MCDropoutModel(model, 4)
    calls = _dropping(model)  # registered after the MC hook: sees its output
    out = mc(**inputs)
    assert calls and all(calls)  # every dropout layer dropped something in every pass
    assert not any(m.training for m in mc.modules())  # eval mode throughout: no batch-norm or other switch
    calls.clear()
    torch.testing.assert_close(model(**inputs).probs, plain, rtol=0, atol=0)  # off again afterwards
    assert calls and not any(calls)
    assert out.sample_probs.shape == (2, 4, 5) and out.uncertainty_method == "mc_dropout"
    torch.testing.assert_close(out.probs, out.sample_probs.mean(1))


@torch.no_grad()
def test_dropout_is_off_again_after_a_pass_that_raises(model):
    inputs = _inputs(model)
    plain = model(**inputs).probs
    mc = MCDropoutModel(model, 3)
    passes = []

    def fail_on_second_pass(module, args, output):
        passes.append(1)
        if len(passes) == 2:
            raise RuntimeError("out of memory")

    handle = model.heads.register_forward_hook(fail_on_second_pass)
    with pytest.raises(RuntimeError, match="out of memory"):
        mc(**inputs)
    handle.remove()
    assert not any(m.training for m in model.modules())
    torch.testing.assert_close(model(**inputs).probs, plain, rtol=0, atol=0)


@torch.no_grad()
def test_the_spread_is_positive_and_fixed_by_the_seed(model):
    inputs = _inputs(model)
    first, again = MCDropoutModel(model, 8)(**inputs), MCDropoutModel(model, 8)(**inputs)
    other = MCDropoutModel(model, 8, seed=1)(**inputs)
    spread = first.sample_probs.std(1)
    assert bool((spread > 0).all())
    torch.testing.assert_close(first.sample_probs, again.sample_probs, rtol=0, atol=0)
    assert not torch.equal(first.sample_probs, other.sample_probs)


def test_one_pass_is_a_plain_pass_and_no_dropout_is_refused(tiny_model_dir, tmp_path, model):
    assert with_mc_dropout(model, 1) is model and with_mc_dropout(model, None) is model
    image = np.random.default_rng(0).random((80, 64), dtype=np.float32)
    plain = Predictor.from_pretrained(tiny_model_dir, device="cpu").predict(image, generate=False)
    one = Predictor.from_pretrained(tiny_model_dir, device="cpu", mc_dropout=1).predict(image, generate=False)
    assert one.uncertainty_method is None and all(o.uncertainty is None for o in one.observations.values())
    assert ({k: o.probability for k, o in one.observations.items()}
            == {k: o.probability for k, o in plain.observations.items()})
    with pytest.raises(ConfigError, match="mc_dropout"):
        with_mc_dropout(model, 0)
    config = MultimodalConfig.load(tiny_model_dir)
    config.dropout, config.text_config = 0.0, None  # the text encoder's dropout follows config.dropout again
    undropped = MultimodalModel.from_config(config, load_pretrained=False).save_pretrained(tmp_path / "no-dropout")
    with pytest.raises(ConfigError, match="no dropout layer"):
        Predictor.from_pretrained(undropped, device="cpu", mc_dropout=4)


def test_mc_dropout_nests_with_tta_and_ensembles(tiny_model_dir, tmp_path, model):
    image = np.random.default_rng(0).random((80, 64), dtype=np.float32)
    both = Predictor.from_pretrained(tiny_model_dir, device="cpu", tta=2, mc_dropout=3).predict(image, generate=False)
    assert both.uncertainty_method == "mc_dropout+tta"
    ensemble = build_ensemble([tiny_model_dir, tiny_model_dir], tmp_path / "E")
    with torch.no_grad():
        out = with_mc_dropout(MultimodalModel.from_pretrained(ensemble), 3)(**_inputs(model))
    assert out.uncertainty_method == "ensemble+mc_dropout" and out.sample_probs.shape == (2, 6, 5)


def test_cli_and_predictor_give_the_same_numbers(tiny_model_dir, phantom_dir, tmp_path):
    manifest = phantom_dir / "manifest.jsonl"
    assert main(["score", "--model", str(tiny_model_dir), "--input", str(manifest), "--out", str(tmp_path / "r.jsonl"),
                 "--workers", "0", "--threads", "2", "--batch-size", "4", "--mc-dropout", "5", "--no-findings",
                 "--quiet"]) == 0
    cli = {r["study_id"]: r for r in map(json.loads, (tmp_path / "r.jsonl").read_text().splitlines())}
    records = [json.loads(line) for line in manifest.read_text().splitlines()]
    predictor = Predictor.from_pretrained(tiny_model_dir, device="cpu", mc_dropout=5)
    results = predictor.predict_many([[str(phantom_dir / p) for p in r["images"]] for r in records], batch_size=4,
                                     texts=[r["text"] or None for r in records], generate=False)
    assert len(cli) == len(results) == len(records)
    for record, result in zip(records, results):
        line = cli[record["study_id"]]
        assert line["uncertainty_method"] == result.uncertainty_method == "mc_dropout"
        for name, obs in result.observations.items():
            assert line["observations"][name]["probability"] == pytest.approx(obs.probability, abs=1e-5)
            assert line["observations"][name]["uncertainty"] == pytest.approx(obs.uncertainty, abs=1e-5)
            assert obs.uncertainty > 0
    assert main(["evaluate", "--model", str(tiny_model_dir), "--manifest", str(manifest), "--out",
                 str(tmp_path / "ev"), "--split", "train", "--no-findings", "--mc-dropout", "3"]) == 0
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert metrics["mc_dropout"] == 3 and metrics["selective"]["uncertainty"] == "mc_dropout"
