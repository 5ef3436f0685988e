"""`mmdx evaluate` on a saved model: metrics.json with a summary, ROC curve, overlays, findings."""

from __future__ import annotations

import json

from multimodal.cli import main
from multimodal.data.phantom import write_phantom_dataset
from multimodal.models.configuration import MultimodalConfig
from multimodal.models.modeling import MultimodalModel


def test_evaluate_writes_metrics_json_roc_and_overlays(tmp_path, capsys):
    manifest = write_phantom_dataset(tmp_path / "phantom", studies=20, seed=1, size=64)
    config = MultimodalConfig(observations="phantom", image_size=32, patch_size=8, image_hidden=32, image_layers=1,
                              image_heads=2, image_mlp_dim=64, max_views=1, text_layers=1, text_max_length=16,
                              fusion_layers=1, fusion_heads=2, fusion_hidden=32, decoder_layers=1, decoder_max_length=8,
                              thresholds={"Cardiomegaly": 0.3})
    MultimodalModel.from_config(config, load_pretrained=False).save_pretrained(tmp_path / "model")
    out = tmp_path / "eval"
    code = main(["evaluate", "--model", str(tmp_path / "model"), "--manifest", str(manifest), "--out", str(out),
                 "--split", "train", "--batch-size", "8"])
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    summary = metrics["summary"]
    printed = capsys.readouterr().out
    assert json.loads(printed[printed.index("{"):]) == summary  # the CLI prints the summary
    assert summary["n_studies"] == 14  # the phantom's 70 % train split of 20
    assert 0.0 <= summary["macro_auroc"] <= 1.0 and summary["macro_auroc_ci"][0] <= summary["macro_auroc_ci"][1]
    assert 0.0 <= summary["pointing_game"] <= 1.0 and summary["bleu4"] is not None
    # F1/precision/recall are judged at the thresholds stored with the model, not at 0.5.
    assert metrics["classification"]["thresholds"]["Cardiomegaly"] == 0.3
    assert (out / "roc.png").stat().st_size > 0 and list((out / "overlays").glob("*.png"))
    lines = (out / "findings.jsonl").read_text().splitlines()
    assert len(lines) == 14 and {"study_id", "reference", "generated"} <= set(json.loads(lines[0]))
    # What `mmdx report --eval` draws from: the predictions and the pointing trials, best first.
    import numpy as np

    with np.load(out / "predictions.npz") as predictions:
        assert predictions["probs"].shape == predictions["labels"].shape == (14, 5)
        assert list(predictions["observations"]) == list(config.observations)
    trials = [json.loads(line) for line in (out / "pointing.jsonl").read_text().splitlines()]
    assert trials and [t["error_px"] for t in trials] == sorted(t["error_px"] for t in trials)
    tolerance = metrics["region"]["tolerance_px_model_input"]
    assert all(t["hit"] for t in trials if t["error_px"] == 0) and all(t["error_px"] > tolerance for t in trials if not t["hit"])
    assert (out / "overlays" / trials[0]["overlay"]).is_file() and (out / "overlays" / trials[-1]["overlay"]).is_file()
