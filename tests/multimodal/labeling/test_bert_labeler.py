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


def test_cls_pooling_is_chexberts_head_and_both_poolings_reload_exactly(tiny_encoder, tmp_path):
    texts = ["Small right pleural effusion.", "Normal chest."]
    for pooling in ("cls", "attention"):
        model = BertLabeler(BertLabelerConfig(encoder=tiny_encoder, pooling=pooling)).eval()
        assert hasattr(model, "queries") == (pooling == "attention")
        loaded = BertLabeler.from_pretrained(model.save_pretrained(tmp_path / pooling))
        assert loaded.config.pooling == pooling
        assert torch.allclose(model.predict_proba(texts), loaded.predict_proba(texts), atol=1e-6)


def test_attention_pooling_ignores_padding(tiny_encoder):
    model = BertLabeler(BertLabelerConfig(encoder=tiny_encoder)).eval()
    alone = model.predict_proba(["Mild cardiomegaly."])
    padded = model.predict_proba(["Mild cardiomegaly.", "No pleural effusion and no pneumothorax, the lungs are clear."])
    assert torch.allclose(alone[0], padded[0], atol=1e-5)


def test_class_weights_favour_rare_classes_and_average_one():
    from multimodal.labeling.training import class_weights

    targets = torch.tensor([[0, 1]] * 8 + [[1, 1], [3, 2]])  # [N=10, O=2]
    weights = class_weights(targets, balance=0.5)
    assert weights.shape == (2, 4)
    assert weights[0, 3] == weights[0, 1] > weights[0, 0]  # seen once each, against eight blanks
    for o in range(2):
        counts = torch.bincount(targets[:, o], minlength=4).float()
        assert torch.isclose((weights[o] * counts).sum() / counts.sum(), torch.tensor(1.0))
    assert torch.allclose(class_weights(targets, balance=0.0), torch.ones(2, 4))


def test_frozen_layers_do_not_change_in_training(tiny_encoder, tmp_path):
    config = BertLabelerConfig(encoder=tiny_encoder, observations=["Cardiomegaly"])
    before = BertLabeler(config)
    out = train_bert_labeler(["Mild cardiomegaly.", "Heart size is normal."], [{"Cardiomegaly": 1}, {"Cardiomegaly": 0}],
                             tmp_path / "frozen", config=config, epochs=3, batch_size=2, lr=1e-2, freeze_layers=1,
                             progress=False)
    after = BertLabeler.from_pretrained(out)
    first, top = before.encoder.encoder.layer, after.encoder.encoder.layer
    assert all(torch.equal(a, b) for a, b in zip(first[0].parameters(), top[0].parameters()))
    assert torch.equal(before.encoder.embeddings.word_embeddings.weight, after.encoder.embeddings.word_embeddings.weight)
    assert not all(torch.equal(a, b) for a, b in zip(first[1].parameters(), top[1].parameters()))


@pytest.mark.parametrize("pooling", ["attention", "cls"])
def test_the_cached_frozen_part_gives_the_logits_of_the_whole_encoder(tiny_encoder, pooling):
    from multimodal.labeling.training import frozen_states, pad_states

    model = BertLabeler(BertLabelerConfig(encoder=tiny_encoder, pooling=pooling)).eval()
    texts = ["Mild cardiomegaly.", "No pleural effusion and no pneumothorax, the lungs are clear.", "Normal chest."]
    whole = model(**model.tokenize(texts))
    for layers in (0, 1, 2):  # nothing, part and all of the two-layer encoder frozen
        cached = model.forward_from(*pad_states(frozen_states(model, texts, layers, batch_size=2)), layers)
        assert torch.allclose(cached, whole, atol=1e-5)



def test_training_only_the_heads_over_the_cache_learns_and_reloads_for_mmdx_label(tiny_encoder, tmp_path):
    from multimodal.labeling import label_texts

    texts = ["Mild cardiomegaly.", "Heart size is normal.", "Small left effusion."]
    labels = [{"Cardiomegaly": 1}, {"Cardiomegaly": 0}, {"Pleural Effusion": 1}]
    config = BertLabelerConfig(encoder=tiny_encoder, observations=["Cardiomegaly", "Pleural Effusion"], dropout=0.0)
    out = train_bert_labeler(texts, labels, tmp_path / "heads", config=config, epochs=60, batch_size=3, lr=1e-2,
                             freeze_layers=2, progress=False)  # both layers frozen: the cache is the last layer
    got = label_texts(texts, "bert", str(out))
    assert [r["values"]["Cardiomegaly"] for r in got] == [1, 0, None]
    assert [r["values"]["Pleural Effusion"] for r in got] == [None, None, 1]
    with pytest.raises(MmdxError, match="freeze_layers"):
        train_bert_labeler(texts, labels, tmp_path / "bad", config=config, freeze_layers=3, progress=False)
