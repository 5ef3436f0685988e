"""Calibration: fitted on one split, stored in config.json, applied wherever the model is loaded."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from multimodal.cli import main
from multimodal.data.phantom import write_phantom_dataset
from multimodal.evaluation.evaluate import evaluate
from multimodal.inference import Predictor
from multimodal.models.calibration import calibrated_probs
from multimodal.models.configuration import MultimodalConfig
from multimodal.models.modeling import MultimodalModel


@pytest.fixture(scope="module")
def overconfident(tmp_path_factory):
    """A random tiny model whose classification head is scaled x40: probabilities near 0 or 1 that
    mean nothing (the deliberately over-confident model), and a 40-study phantom."""
    root = tmp_path_factory.mktemp("calib")
    manifest = write_phantom_dataset(root / "phantom", studies=40, seed=3, size=64)
    torch.manual_seed(0)
    config = MultimodalConfig(observations="phantom", image_size=32, patch_size=8, image_hidden=32, image_layers=1,
                              image_heads=2, image_mlp_dim=64, max_views=1, text_layers=1, text_max_length=16,
                              fusion_layers=1, fusion_heads=2, fusion_hidden=32, decoder_layers=1, decoder_max_length=8)
    model = MultimodalModel.from_config(config, load_pretrained=False)
    with torch.no_grad():
        for layer in (model.heads.patch, model.heads.offset):
            layer.weight.mul_(40.0)
    return model.save_pretrained(root / "model"), manifest


def test_calibration_lowers_ece_of_an_overconfident_model(overconfident, tmp_path):
    model_dir, manifest = overconfident
    before = evaluate(model_dir, manifest, tmp_path / "e0", split="train", generate=False, n_bootstrap=0, overlays=0)
    assert main(["calibrate", "--model", str(model_dir), "--manifest", str(manifest), "--split", "train",
                 "--out", str(tmp_path / "cal")]) == 0
    config = json.loads((tmp_path / "cal" / "config.json").read_text())
    assert config["calibration"]["method"] == "temperature"
    assert all(p["temperature"] > 1 for p in config["calibration"]["params"].values())  # softens over-confidence
    metrics = evaluate(tmp_path / "cal", manifest, tmp_path / "e1", split="train", generate=False, n_bootstrap=0,
                       overlays=0)
    ece0 = before["calibration"]["calibrated"]["macro"]["ece"]
    ece1 = metrics["calibration"]["calibrated"]["macro"]["ece"]
    assert ece1 < ece0 - 0.1
    # The uncalibrated logits stay available: evaluation reports them next to the calibrated ones.
    assert metrics["calibration"]["uncalibrated"]["macro"]["ece"] == pytest.approx(ece0, abs=1e-6)
    assert (tmp_path / "e1" / "reliability.png").stat().st_size > 0
    assert json.loads((model_dir / "config.json").read_text())["calibration"] is None  # the source is untouched
    assert metrics["summary"]["macro_ece"] == ece1 and before["summary"]["macro_ece"] == ece0


def test_a_calibrated_directory_reports_calibrated_probabilities_everywhere(overconfident, tmp_path):
    model_dir, manifest = overconfident
    assert main(["calibrate", "--model", str(model_dir), "--manifest", str(manifest), "--split", "train",
                 "--out", str(tmp_path / "cal"), "--method", "platt", "--error-share", "0"]) == 0
    model = MultimodalModel.from_pretrained(tmp_path / "cal")
    assert model.config.calibration["indeterminate"]["Cardiomegaly"] == [model.config.thresholds["Cardiomegaly"]] * 2
    image = np.random.default_rng(0).random((64, 64), dtype=np.float32)
    predictor = Predictor.from_pretrained(tmp_path / "cal", device="cpu")
    inputs = predictor.batch_inputs([predictor.prepare(image)])
    with torch.no_grad():
        out = model(**inputs)
    expected = calibrated_probs(out.logits, model.config.calibration, model.config.observations)
    torch.testing.assert_close(out.probs, expected)
    assert not torch.allclose(out.probs, out.logits.sigmoid())  # the raw logits are still the raw ones
    result = predictor.predict(image, generate=False)
    assert [o.probability for o in result.observations.values()] == pytest.approx(expected[0].tolist(), abs=1e-5)
