"""An ensemble directory is a model directory: from_pretrained, Predictor, mmdx score/evaluate/calibrate."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from multimodal.cli import main
from multimodal.data.phantom import write_phantom_dataset
from multimodal.inference import Predictor
from multimodal.models.configuration import MultimodalConfig
from multimodal.models.ensemble import EnsembleModel, build_ensemble
from multimodal.models.modeling import MultimodalModel
from preprocessing.errors import ConfigError


def _tiny(size: int, seed: int, path):
    """A random one-layer phantom model at ``size`` px (members may differ in size)."""
    torch.manual_seed(seed)
    config = MultimodalConfig(observations="phantom", image_size=size, patch_size=8, image_hidden=32, image_layers=1,
                              image_heads=2, image_mlp_dim=64, max_views=2, text_layers=1, text_max_length=16,
                              fusion_layers=1, fusion_heads=2, fusion_hidden=32, decoder_layers=1, decoder_max_length=6,
                              thresholds={"Cardiomegaly": 0.4}, name=f"m{seed}")
    return MultimodalModel.from_config(config, load_pretrained=False).save_pretrained(path)


@pytest.fixture(scope="module")
def ensemble(tmp_path_factory):
    root = tmp_path_factory.mktemp("ens")
    manifest = write_phantom_dataset(root / "phantom", studies=10, seed=2, size=64)
    members = [_tiny(32, 0, root / "a"), _tiny(48, 1, root / "b"), _tiny(32, 2, root / "c")]
    code = main(["ensemble", "--models", *map(str, members), "--weights", "2", "1", "1", "--out", str(root / "E"),
                 "--findings-from", "1"])
    assert code == 0
    return root, members, manifest


def test_ensemble_round_trips_and_averages_its_members(ensemble):
    root, members, _ = ensemble
    model = MultimodalModel.from_pretrained(root / "E")
    assert isinstance(model, EnsembleModel) and model.weights == pytest.approx([0.5, 0.25, 0.25])
    spec = json.loads((root / "E" / "ensemble.json").read_text())
    assert [m["config"]["name"] for m in spec["members"]] == ["m0", "m1", "m2"] and spec["findings_member"] == 1
    assert all(len(m["weights_sha256"]) == 64 for m in spec["members"])
    singles = [MultimodalModel.from_pretrained(m) for m in members]
    pixels = torch.randn(2, 1, 1, 32, 32)
    ids = singles[0].tokenizer(["", "cough"], padding=True, return_tensors="pt")
    inputs = {"view_mask": torch.ones(2, 1, dtype=torch.bool), "input_ids": ids["input_ids"],
              "attention_mask": ids["attention_mask"]}
    with torch.no_grad():
        out = model(pixel_values=pixels, **inputs)
        member_probs = [m(pixel_values=torch.nn.functional.interpolate(pixels[:, 0], size=m.config.image_size,
                                                                       mode="bilinear", antialias=True)[:, None],
                          **inputs).probs for m in singles]
    expected = 0.5 * member_probs[0] + 0.25 * member_probs[1] + 0.25 * member_probs[2]
    torch.testing.assert_close(out.probs, expected, atol=1e-5, rtol=1e-4)  # uncalibrated: probabilities averaged
    assert out.sample_probs.shape == (2, 3, 5) and out.uncertainty_method == "ensemble"
    assert out.heatmaps.shape[-2:] == singles[0].grid_size


def test_ensemble_scores_the_same_through_the_cli_and_the_predictor(ensemble, tmp_path):
    root, _, manifest = ensemble
    assert main(["score", "--model", str(root / "E"), "--input", str(manifest), "--out", str(tmp_path / "r.jsonl"),
                 "--workers", "0", "--no-findings", "--quiet"]) == 0
    cli = {r["study_id"]: r for r in map(json.loads, (tmp_path / "r.jsonl").read_text().splitlines())}
    predictor = Predictor.from_pretrained(root / "E", device="cpu")
    records = [json.loads(line) for line in manifest.read_text().splitlines()]
    for record in records[:3]:
        result = predictor.predict([str(manifest.parent / p) for p in record["images"]], text=record["text"] or None,
                                   study_id=record["study_id"], generate=False)
        for name, obs in result.observations.items():
            assert cli[record["study_id"]]["observations"][name]["probability"] == pytest.approx(obs.probability, abs=1e-5)
            assert cli[record["study_id"]]["observations"][name]["uncertainty"] == pytest.approx(obs.uncertainty, abs=1e-5)
        assert result.uncertainty_method == "ensemble" and cli[record["study_id"]]["uncertainty_method"] == "ensemble"


def test_ensemble_is_calibrated_and_evaluated_as_one_model(ensemble, tmp_path):
    root, _, manifest = ensemble
    assert main(["calibrate", "--model", str(root / "E"), "--manifest", str(manifest), "--split", "train",
                 "--out", str(tmp_path / "Ec")]) == 0
    calibration = json.loads((tmp_path / "Ec" / "config.json").read_text())["calibration"]
    assert calibration["method"] == "temperature" and calibration["fitted_on"]["split"] == "train"
    assert isinstance(MultimodalModel.from_pretrained(tmp_path / "Ec"), EnsembleModel)
    assert main(["evaluate", "--model", str(tmp_path / "Ec"), "--manifest", str(manifest), "--out",
                 str(tmp_path / "ev"), "--split", "train", "--no-findings", "--by", "view", "--tta", "2"]) == 0
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert metrics["selective"]["uncertainty"] == "ensemble+tta" and metrics["tta"] == 2
    assert set(metrics["subgroups"]["view"]["groups"]) <= {"PA", "AP"}


def test_a_changed_member_is_refused(ensemble, tmp_path):
    root, members, _ = ensemble
    shutil.copytree(root / "E", tmp_path / "E")
    shutil.copy(members[1] / "model.safetensors", tmp_path / "E" / "members" / "0" / "model.safetensors")
    with pytest.raises(ConfigError, match="members\\[0\\]"):
        MultimodalModel.from_pretrained(tmp_path / "E")
    with pytest.raises(ConfigError, match="--out"):  # an existing directory is never overwritten
        build_ensemble(members[:2], root / "E")
    with pytest.raises(ConfigError, match="--weights"):
        build_ensemble(members[:2], tmp_path / "W", weights=[1.0, -1.0])


def test_pacs_scoring_takes_an_ensemble_directory(ensemble):
    import pydicom

    from multimodal.pacs.scoring import load_scorer

    root, _, manifest = ensemble
    study = sorted((manifest.parent / "dicom").iterdir())[0]
    datasets = [pydicom.dcmread(p) for p in sorted(study.glob("*.dcm"))]
    scored = load_scorer(root / "E", device="cpu")(datasets)
    assert scored.sr.StudyInstanceUID == datasets[0].StudyInstanceUID
    assert scored.sr.SeriesDescription.startswith("mmdx-ensemble") and scored.result.uncertainty_method == "ensemble"
