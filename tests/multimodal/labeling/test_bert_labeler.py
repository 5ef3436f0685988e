"""The learned labeler: 4-class heads per observation, saved and reloaded offline like a model, trained
on rule labels and then on hand labels."""

from __future__ import annotations

import json

import pytest
import torch

from multimodal.labeling.bert_labeler import CLASSES, CONFIG_NAME, BertLabeler, BertLabelerConfig
from multimodal.labeling.training import train_bert_labeler, train_from_files
from preprocessing.errors import ConfigError, MmdxError


def test_logits_have_four_classes_per_observation_and_predictions_are_label_values(tiny_encoder):
    model = BertLabeler(BertLabelerConfig(encoder=tiny_encoder, observations=["Cardiomegaly", "Edema"]))
    batch = model.tokenize(["Mild cardiomegaly.", "No edema. XXXX normal."])
    assert model(**batch).shape == (2, 2, len(CLASSES))
    proba = model.predict_proba(["Mild cardiomegaly."] * 3, batch_size=2)
    assert proba.shape == (3, 2, 4) and torch.allclose(proba.sum(-1), torch.ones(3, 2))
    values = model.values_from_proba(proba)
    assert set(values[0]) == {"Cardiomegaly", "Edema"} and {v for row in values for v in row.values()} <= {1, 0, -1, None}


def test_save_and_reload_give_the_same_probabilities_without_the_encoder(tiny_encoder, tmp_path):
    model = BertLabeler(BertLabelerConfig(encoder=tiny_encoder, encoder_layers=1))
    model.save_pretrained(tmp_path / "labeler")
    saved = json.loads((tmp_path / "labeler" / CONFIG_NAME).read_text())
    assert saved["encoder_config"]["num_hidden_layers"] == 1
    loaded = BertLabeler.from_pretrained(tmp_path / "labeler")
    texts = ["Small right pleural effusion.", "Normal chest."]
    assert torch.allclose(model.eval().predict_proba(texts), loaded.predict_proba(texts), atol=1e-6)


def test_loading_names_the_missing_file_and_the_bad_key(tiny_encoder, tmp_path):
    with pytest.raises(ConfigError, match="labeler_config.json"):
        BertLabeler.from_pretrained(tmp_path)
    (tmp_path / CONFIG_NAME).write_text(json.dumps({"encoder": tiny_encoder, "max_length": 2}))
    with pytest.raises(ConfigError, match="max_length"):
        BertLabeler.from_pretrained(tmp_path)
    (tmp_path / CONFIG_NAME).write_text(json.dumps({"encoder": tiny_encoder}))
    with pytest.raises(ConfigError, match="model.safetensors"):
        BertLabeler.from_pretrained(tmp_path)


def test_training_learns_the_labels_and_a_second_stage_continues_from_the_first(tiny_encoder, tmp_path):
    texts = ["Mild cardiomegaly.", "Heart size is normal.", "Small left effusion."]
    labels = [{"Cardiomegaly": 1}, {"Cardiomegaly": 0}, {"Pleural Effusion": 1}]
    config = BertLabelerConfig(encoder=tiny_encoder, observations=["Cardiomegaly", "Pleural Effusion"], dropout=0.0)
    first = train_bert_labeler(texts, labels, tmp_path / "rules", config=config, epochs=30, batch_size=3, lr=1e-2,
                               progress=False)
    model = BertLabeler.from_pretrained(first)
    assert [v["Cardiomegaly"] for v in model.values_from_proba(model.predict_proba(texts))] == [1, 0, None]
    # the hand-labelled stage changes what the first stage learned
    second = train_bert_labeler(texts[:1], [{"Cardiomegaly": -1}], tmp_path / "hand", init=first, epochs=30,
                                batch_size=1, lr=1e-2, progress=False)
    model = BertLabeler.from_pretrained(second)
    assert model.values_from_proba(model.predict_proba(texts[:1]))[0]["Cardiomegaly"] == -1


def test_training_from_files_uses_rule_labels_or_only_the_hand_labelled_reports(tiny_encoder, tmp_path):
    reports = tmp_path / "reports.jsonl"
    reports.write_text("".join(json.dumps({"uid": i, "findings": t}) + "\n"
                               for i, t in enumerate(["Mild cardiomegaly.", "No effusion.", "Clear lungs."])))
    out = train_from_files(reports, tmp_path / "a", encoder=tiny_encoder, encoder_layers=1, epochs=1, progress=False)
    assert BertLabeler.from_pretrained(out).config.encoder_layers == 1
    hand = tmp_path / "hand.jsonl"
    hand.write_text(json.dumps({"uid": 1, "labels": {"Pleural Effusion": 0}}) + "\n")
    assert train_from_files(reports, tmp_path / "b", labels=hand, init=out, epochs=1, progress=False).is_dir()
    hand.write_text("{not json\n")
    with pytest.raises(MmdxError, match="hand.jsonl:1"):
        train_from_files(reports, tmp_path / "c", labels=hand, init=out, progress=False)
    with pytest.raises(MmdxError, match="as many label rows"):
        train_bert_labeler([], [], tmp_path / "d", progress=False)
