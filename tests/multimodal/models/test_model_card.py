"""The model card every saved model carries: HF format, honest about what is not recorded."""

from __future__ import annotations

import pytest
import yaml

from multimodal.data.manifest import StudyRecord
from multimodal.models.configuration import MultimodalConfig
from multimodal.models.model_card import ModelCard, data_summary, read_card, weights_sha256
from preprocessing.errors import MmdxError


def test_card_without_training_record_says_so_and_names_the_weights(tmp_path):
    config = MultimodalConfig(observations="phantom", name="m", version="2")
    text = ModelCard().render(config, "ab" * 32)
    meta = yaml.safe_load(text.split("---")[1])
    assert meta["model_name"] == "m" and meta["weights_sha256"] == "ab" * 32 and "model-index" not in meta
    assert "Training data: not recorded" in text and "Metrics: not recorded" in text
    assert "## Out-of-scope use" in text and "not be used for clinical decisions" in text


def test_data_summary_counts_labels_per_split_and_reads_provenance():
    records = [StudyRecord(study_id="a", labels={"Effusion": 1, "Edema": -1}, split="train",
                           meta={"source": "NIH ChestX-ray14", "license": "CC0-1.0", "deidentified": True}),
               StudyRecord(study_id="b", labels={"Effusion": 0, "Edema": None}, split="train"),
               StudyRecord(study_id="c", labels={"Effusion": 1}, split="val")]
    summary = data_summary({"train": records[:2], "val": records[2:]}, ["manifest m.jsonl"])
    assert summary["splits"]["train"] == {"studies": 2, "labels": {
        "Effusion": {"positive": 1, "negative": 1, "uncertain": 0}, "Edema": {"positive": 0, "negative": 0, "uncertain": 1}}}
    assert summary["sources"] == ["NIH ChestX-ray14", "manifest m.jsonl"] and summary["licences"] == ["CC0-1.0"]
    assert summary["deidentification"] == "de-identified"
    text = ModelCard(data=summary).render(MultimodalConfig(observations="phantom"), "0" * 64)
    assert "| Effusion | 1 / 1 / 0 | 1 / 0 / 0 |" in text and "license_name: CC0-1.0" in text


def test_read_card_of_a_model_without_one_is_a_clear_error(tmp_path):
    with pytest.raises(MmdxError, match="no model card"):
        read_card(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"w")
    assert len(weights_sha256(tmp_path)) == 64
