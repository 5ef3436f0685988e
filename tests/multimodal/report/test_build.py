"""The report's files: what each page holds, without a browser (tests/multimodal/report/test_browser.py opens them)."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from multimodal.cli import main
from multimodal.inference.results import SourceImage, read_jsonl
from multimodal.report import write_report
from multimodal.report.evaluation import confusion_counts
from multimodal.report.images import overlay_box
from preprocessing.errors import MmdxError


@pytest.fixture(scope="module")
def report(scored, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    index = write_report(scored["results"], out, eval_dir=scored["eval"], images=scored["heatmaps"])
    return index


def _data(index) -> dict:
    text = (index.parent / "data" / "studies.js").read_text()
    return json.loads(text[text.index("=") + 1:].rstrip().rstrip(";"))


def test_the_index_lists_every_scored_failed_and_skipped_study_with_its_numbers(report, scored):
    data = _data(report)
    lines = list(read_jsonl(scored["results"]))
    by_id = {row["id"]: row for row in data["rows"]}
    assert {row["status"] for row in data["rows"]} == {"scored", "error", "skipped"}
    assert by_id["broken-study"]["reason"] == "not a DICOM file"
    for line in lines:
        row = by_id[line["study_id"]]
        assert row["p"] == {k: v["probability"] for k, v in line["observations"].items()}
        assert row["u"] == {k: v["uncertainty"] for k, v in line["observations"].items()
                            if v.get("uncertainty") is not None}
    indeterminate = [row for row in data["rows"] if "indeterminate" in row["d"].values()]
    assert indeterminate and all(row["u"] for row in indeterminate)


def test_a_study_page_shows_views_toggled_overlays_codes_and_the_model(report, scored):
    line = next(read_jsonl(scored["results"]))
    page = (report.parent / _data(report)["rows"][0]["page"]).read_text()
    assert line["findings"] in page and "mmdx-test" in page and "abcd" in page
    for name, obs in line["observations"].items():
        assert f'data-value="{obs["probability"]}"' in page
    positives = [k for k, v in line["observations"].items() if v["positive"]]
    overlays = re.findall(r'class="overlay" data-observation="([^"]+)" src="\.\./([^"]+)"', page)
    assert sorted(o for o, _ in overlays) == sorted(positives)
    assert all((report.parent / src).is_file() for _, src in overlays)
    assert "SCT:60046008" in page or "Pleural Effusion" not in line["observations"]
    assert "frontal (PA)" in page and "a third view (max_views is 2)" in page


def test_the_report_loads_nothing_from_the_network(report):
    for path in report.parent.rglob("*"):
        if path.suffix in {".html", ".js", ".css"}:
            assert not re.search(r"(?:src|href)=\"(?:https?:)?//|url\((?:https?:)?//|import\s", path.read_text()), path


def test_the_evaluation_page_has_curves_intervals_confusion_counts_and_pointing_examples(report, scored):
    page = (report.parent / "evaluation.html").read_text()
    for figure in ("roc.png", "pr.png", "reliability.png"):
        assert (report.parent / "eval" / figure).stat().st_size > 1000 and f"eval/{figure}" in page
    assert "0.800–0.950" in page  # an AUROC interval
    with np.load(scored["eval"] / "predictions.npz") as d:
        counts = confusion_counts(d["probs"], d["labels"], d["label_mask"], [str(o) for o in d["observations"]],
                                  {str(o): 0.5 for o in d["observations"]})
    first = counts[0]
    assert first["tp"] + first["fp"] + first["fn"] + first["tn"] == 40
    assert f"<td>{first['tp']}</td><td>{first['fp']}</td><td>{first['fn']}</td><td>{first['tn']}</td>" in page
    assert "eval/s1_Cardiomegaly.png" in page and "eval/s2_Pneumothorax.png" in page


def test_errors_page_and_missing_inputs(report, scored, tmp_path):
    page = (report.parent / "errors.html").read_text()
    assert "broken-study" in page and "no frontal view" in page
    with pytest.raises(MmdxError, match="--results"):
        write_report(tmp_path / "nothing.jsonl", tmp_path / "r")
    with pytest.raises(MmdxError, match="--images"):
        write_report(scored["results"], tmp_path / "r", images=tmp_path / "none")


def test_overlay_box_mirrors_a_flipped_axis_back_to_the_displayed_view():
    plain = SourceImage("a.dcm", rows=100, columns=200, square_to_pixels=(200.0, 0.0, 200.0, -50.0))
    assert overlay_box(plain) == {"left": 0.0, "top": -50.0, "width": 100.0, "height": 200.0}
    flipped = SourceImage("a.dcm", rows=100, columns=200, square_to_pixels=(-200.0, 200.0, 200.0, -50.0))
    assert overlay_box(flipped)["left"] == 0.0 and overlay_box(flipped)["width"] == 100.0



def test_a_report_of_real_predictions_places_each_positive_heat_map_on_its_view(tmp_path, capsys):
    """`mmdx report` over Predictor output (results lines, heat-map files, source geometry) as `mmdx score` writes it."""
    import torch

    from multimodal.data.phantom import write_phantom_dataset
    from multimodal.inference.predictor import Predictor
    from multimodal.models.configuration import MultimodalConfig
    from multimodal.models.modeling import MultimodalModel

    torch.manual_seed(0)
    config = MultimodalConfig(observations="phantom", image_size=32, patch_size=8, image_hidden=32, image_layers=1,
                              image_heads=2, image_mlp_dim=64, text_layers=1, text_max_length=16, fusion_layers=1,
                              fusion_heads=2, fusion_hidden=32, decoder_layers=1, decoder_max_length=4,
                              thresholds={"Cardiomegaly": 0.0}, name="mmdx-real", version="1")
    model_dir = MultimodalModel.from_config(config, load_pretrained=False).save_pretrained(tmp_path / "model")
    write_phantom_dataset(tmp_path / "phantom", studies=3, seed=2, size=48)
    predictor = Predictor.from_pretrained(model_dir, device="cpu")
    results = tmp_path / "results.jsonl"
    with results.open("w") as f:
        for path in sorted((tmp_path / "phantom" / "dicom").rglob("PA.dcm")):
            result = predictor.predict(path, generate=False, heatmap_dir=tmp_path / "heatmaps")
            f.write(json.dumps(result.to_dict()) + "\n")
    assert main(["report", "--results", str(results), "--images", str(tmp_path / "heatmaps"),
                 "--out", str(tmp_path / "report")]) == 0
    index = tmp_path / "report" / "index.html"
    assert capsys.readouterr().out.strip() == str(index)  # the command prints the page to open
    for row in _data(index)["rows"]:
        page = (index.parent / row["page"]).read_text()
        assert "mmdx-real" in page and 'class="base"' in page
        assert re.findall(r'class="overlay" data-observation="([^"]+)"', page)[0] == "Cardiomegaly"
        box = re.search(r"left: ([-\d.]+)%; top: ([-\d.]+)%; width: ([\d.]+)%; height: ([\d.]+)%", page)
        left, top, width, height = map(float, box.groups())
        assert width > 0 and height > 0 and left <= 0.5 and top <= 0.5  # the square covers the view
