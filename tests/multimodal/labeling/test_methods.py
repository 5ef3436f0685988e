"""mmdx label and label_file: one output line per input line, the rules / bert / ensemble methods, the
conventions and the uncertain-label policies of the dataset layouts."""

from __future__ import annotations

import json

import pytest

from multimodal.cli import main as mmdx
from multimodal.labeling import label_file, label_texts
from multimodal.labeling.bert_labeler import BertLabeler, BertLabelerConfig
from preprocessing.errors import ConfigError
from preprocessing.report_labeler import label_report


@pytest.fixture(scope="module")
def saved_labeler(tiny_encoder, tmp_path_factory):
    return BertLabeler(BertLabelerConfig(encoder=tiny_encoder)).save_pretrained(tmp_path_factory.mktemp("labeler"))


def test_cli_label_writes_one_line_per_input_line(tmp_path, monkeypatch):
    src = tmp_path / "reports.jsonl"
    src.write_text("\n".join([
        json.dumps({"uid": 7, "findings": "Mild cardiomegaly.", "impression": "No pneumothorax."}),
        "{not json",
        json.dumps({"study_id": "s2", "findings": None, "impression": "Normal chest."}),
        json.dumps(["a list"]),
    ]) + "\n")
    monkeypatch.chdir(tmp_path)
    assert mmdx(["label", "--input", "reports.jsonl", "--out", "out/labels.jsonl"]) == 0
    rows = [json.loads(line) for line in (tmp_path / "out/labels.jsonl").read_text().splitlines()]
    assert [r["line"] for r in rows] == [1, 2, 3, 4]
    assert rows[0]["id"] == 7 and rows[0]["values"]["Cardiomegaly"] == 1 and rows[0]["values"]["Pneumothorax"] == 0
    assert rows[0]["text"][rows[0]["evidence"]["Cardiomegaly"][0]["start"]:].startswith("cardiomegaly")
    assert rows[1]["id"] is None and "invalid JSON" in rows[1]["error"]
    assert rows[2]["id"] == "s2" and rows[2]["values"]["No Finding"] == 1
    assert "error" in rows[3]


def test_label_file_id_field_and_observations(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"accession": "A1", "id": "x", "text": "Left effusion."}) + "\n")
    n = label_file(src, tmp_path / "o.jsonl", fields=["text"], id_field="accession", observations="nih")
    row = json.loads((tmp_path / "o.jsonl").read_text())
    assert n == 1 and row["id"] == "A1" and row["values"]["Effusion"] == 1


def test_cli_label_convention(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"id": "r1", "findings": "Right basilar atelectasis versus scarring."}) + "\n")
    values = {}
    for name in ("iu", "chexpert"):
        assert mmdx(["label", "--input", str(src), "--out", str(tmp_path / f"{name}.jsonl"), "--convention", name]) == 0
        values[name] = json.loads((tmp_path / f"{name}.jsonl").read_text())["values"]["Atelectasis"]
    assert values == {"iu": 1, "chexpert": -1}


def test_cli_label_reports_missing_input_and_unknown_vocabulary(tmp_path, capsys):
    assert mmdx(["label", "--input", str(tmp_path / "nope.jsonl"), "--out", str(tmp_path / "o.jsonl")]) == 2
    assert "nope.jsonl" in capsys.readouterr().err
    (tmp_path / "a.jsonl").write_text("{}\n")
    assert mmdx(["label", "--input", str(tmp_path / "a.jsonl"), "--out", str(tmp_path / "o.jsonl"),
                 "--observations", "bogus"]) == 2
    assert "bogus" in capsys.readouterr().err




@pytest.mark.parametrize("policy, expected", [(None, -1), ("keep", -1), ("U-Ignore", None), ("U-Zeros", 0),
                                              ("U-Ones", 1), ("ones", 1)])
def test_uncertain_policy_rewrites_only_uncertain_values(tmp_path, policy, expected):
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"id": 1, "findings": "Possible pneumonia. No effusion."}) + "\n")
    label_file(src, tmp_path / "o.jsonl", uncertain=policy)
    values = json.loads((tmp_path / "o.jsonl").read_text())["values"]
    assert values["Pneumonia"] == expected and values["Pleural Effusion"] == 0


def test_bert_and_ensemble_methods(saved_labeler, tmp_path):
    texts = ["Mild cardiomegaly. No pneumothorax.", "Possible left basilar atelectasis."]
    bert = label_texts(texts, "bert", str(saved_labeler))
    assert [set(r) for r in bert] == [{"values", "codes"}] * 2 and len(bert[0]["values"]) == 14
    model = BertLabeler.from_pretrained(saved_labeler)
    rules = [label_report(t).values for t in texts]
    # the ensemble keeps the rules unless the learned labeler is sure enough of another class
    model.config.ensemble_threshold = 1.0
    ensemble = label_texts(texts, "ensemble", model)
    assert [r["values"] for r in ensemble] == rules and ensemble[0]["evidence"]["Cardiomegaly"]
    # ... and takes the learned labeler's classes when it is always sure enough; No Finding then follows
    # CheXpert's rule from the other values
    model.config.ensemble_threshold = 0.0
    for got, learned in zip(label_texts(texts, "ensemble", model), bert):
        findings = {k: v for k, v in got["values"].items() if k != "No Finding"}
        assert findings == {k: v for k, v in learned["values"].items() if k != "No Finding"}
        others = [v for k, v in findings.items() if k != "Support Devices"]
        assert got["values"]["No Finding"] in (None, int(not any(v in (1, -1) for v in others)))


def test_cli_label_with_a_learned_labeler_and_the_errors_that_name_what_is_missing(saved_labeler, tmp_path, capsys):
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"id": "r1", "findings": "Small right pleural effusion."}) + "\n")
    assert mmdx(["label", "--input", str(src), "--out", str(tmp_path / "o.jsonl"), "--method", "ensemble",
                 "--model", str(saved_labeler), "--quiet"]) == 0
    row = json.loads((tmp_path / "o.jsonl").read_text())
    assert row["method"] == "ensemble" and set(row["values"]) >= {"Pleural Effusion", "No Finding"}
    assert mmdx(["label", "--input", str(src), "--out", str(tmp_path / "o.jsonl"), "--method", "bert"]) == 2
    assert "--model" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="uncertain.*sometimes"):
        label_file(src, tmp_path / "o.jsonl", uncertain="sometimes")


def test_cli_label_train_then_label(tiny_encoder, tmp_path):
    src = tmp_path / "reports.jsonl"
    src.write_text("".join(json.dumps({"uid": i, "findings": t}) + "\n"
                           for i, t in enumerate(["Mild cardiomegaly.", "Clear lungs.", "Small left effusion."])))
    assert mmdx(["label-train", "--input", str(src), "--out", str(tmp_path / "m"), "--encoder", tiny_encoder,
                 "--epochs", "1", "--quiet"]) == 0
    assert mmdx(["label", "--input", str(src), "--out", str(tmp_path / "o.jsonl"), "--method", "bert",
                 "--model", str(tmp_path / "m"), "--quiet"]) == 0
    assert len((tmp_path / "o.jsonl").read_text().splitlines()) == 3


@pytest.mark.parametrize("policy", ["keep", "U-Ignore", "U-Ones", "U-Zeros"])
def test_mmdx_label_and_mmdx_manifest_give_the_same_label_values(tmp_path, policy):
    """The labels that feed training: ``mmdx label`` and the IU manifest (``mmdx manifest iu``) read the same
    text the same way and apply the one uncertain policy; the CheXpert layout applies it to its -1 too."""
    from multimodal.data.manifest import load_manifest

    rows = [{"uid": 1, "findings": "Left basilar opacity may represent atelectasis. No effusion",
             "impression": "Possible pneumonia.", "split": "train"},
            {"uid": 2, "findings": "Heart size is normal. Lungs are clear.", "impression": "", "split": "val"},
            {"uid": 3, "findings": "", "impression": "Cardiomegaly versus pericardial effusion.", "split": "train"}]
    src = tmp_path / "reports_dev.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    for convention in ("chexpert", "iu"):
        assert mmdx(["label", "--input", str(src), "--out", str(tmp_path / "l.jsonl"), "--quiet", "--uncertain", policy,
                     "--convention", convention]) == 0
        assert mmdx(["manifest", "iu", str(src), "--out", str(tmp_path / "m.jsonl"), "--uncertain", policy,
                     "--convention", convention]) == 0
        labelled = [json.loads(x)["values"] for x in (tmp_path / "l.jsonl").read_text().splitlines()]
        manifest = [s.labels for s in load_manifest(tmp_path / "m.jsonl")]
        assert labelled == manifest
    values = {v for row in labelled for v in row.values()}
    assert (-1 in values) == (policy == "keep") and values - {-1} <= {1, 0, None}
