"""`mmdx robustness` on a tiny model: JSON, Markdown table and plots, every condition measured."""

from __future__ import annotations

import json

from multimodal.cli import main
from multimodal.data.phantom import write_phantom_dataset
from multimodal.models.configuration import MultimodalConfig
from multimodal.models.modeling import MultimodalModel
from multimodal.robustness.text import text_variant, with_typos


def test_robustness_cli_writes_json_table_and_plots(tmp_path, capsys, tiny_settings):
    manifest = write_phantom_dataset(tmp_path / "phantom", studies=12, seed=1, size=64)
    config = MultimodalConfig(**{**tiny_settings, "max_views": 1})
    MultimodalModel.from_config(config, load_pretrained=False).save_pretrained(tmp_path / "model")
    out = tmp_path / "robust"
    code = main(["robustness", "--model", str(tmp_path / "model"), "--manifest", str(manifest), "--out", str(out),
                 "--split", "train", "--eps", "0.01", "--pgd-steps", "2", "--corruptions", "jpeg", "rotation",
                 "--severities", "1", "5", "--batch-size", "4", "--quiet"])
    assert code == 0
    result = json.loads((out / "robustness.json").read_text())
    assert result["n_studies"] == 8
    assert [(r["method"], r["eps"]) for r in result["adversarial"]] == [("fgsm", 0.01), ("pgd", 0.01)]
    assert [(r["corruption"], r["severity"]) for r in result["corruptions"]] == [
        ("jpeg", 1), ("jpeg", 5), ("rotation", 1), ("rotation", 5)]
    for row in [result["clean"], *result["adversarial"], *result["corruptions"]]:
        assert {"macro_auroc", "pointing_game", "ece"} <= set(row)
        assert row["pointing_game"] is not None and 0 <= row["ece"] <= 1
    assert set(result["text"]) == {"empty", "other_study", "negated", "typos"}
    empty = result["text"]["empty"]
    assert empty["decisions"] == 8 * 5 and 0 <= empty["flips"] <= empty["decisions"]
    table = (out / "robustness.md").read_text()
    assert "| pgd (2 steps) | 0.0100 |" in table and "| rotation | 5 |" in table and "| negated |" in table
    assert (out / "plots" / "adversarial.png").stat().st_size > 0 and (out / "plots" / "corruptions.png").stat().st_size > 0
    assert json.loads(capsys.readouterr().out)["clean"] == result["clean"]


def test_text_variants_change_only_what_they_say():
    texts, positives = ["Cough and fever.", "Chest pain."], [["Pleural Effusion", "Cardiomegaly"], []]
    assert text_variant("empty", texts, positives) == ["", ""]
    assert text_variant("other_study", texts, positives) == ["Chest pain.", "Cough and fever."]
    assert text_variant("negated", texts, positives) == ["Cough and fever. No pleural effusion.", "Chest pain."]
    typos = text_variant("typos", ["shortness of breath while walking"] * 5, [[]] * 5)
    assert any(t != "shortness of breath while walking" for t in typos)
    assert all(sorted(t) == sorted("shortness of breath while walking") for t in typos)  # letters swapped, none lost
    assert with_typos("a an the", __import__("numpy").random.default_rng(0)) == "a an the"  # short words kept
