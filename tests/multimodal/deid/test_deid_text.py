"""Report-text scrubbing: identifiers become typed placeholders, clinical content stays."""

from __future__ import annotations

import json
import re

import pytest

from multimodal.deid.text import scrub_manifest, scrub_text


@pytest.mark.parametrize("text, secret, placeholder", [
    ("Discussed with Dr. Smith at noon.", "Smith", "[NAME]"),
    ("Mrs Jane O'Brien was informed.", "O'Brien", "[NAME]"),
    ("Read by: Alan Turing", "Turing", "[NAME]"),
    ("John Smith, MD", "John Smith", "[NAME]"),
    ("Compared with 03/14/2023.", "03/14/2023", "[DATE]"),
    ("Compared with 2023-03-14.", "2023-03-14", "[DATE]"),
    ("Prior from 14 March 2023.", "14 March 2023", "[DATE]"),
    ("Prior from March 14th, 2023.", "March 14th, 2023", "[DATE]"),
    ("Acquired 20230314.", "20230314", "[DATE]"),
    ("MRN: 00123456", "00123456", "[ID]"),
    ("Accession # AB1234567", "AB1234567", "[ID]"),
    ("Call 555-123-4567 with results.", "555-123-4567", "[PHONE]"),
    ("Call (617) 555-0100.", "555-0100", "[PHONE]"),
    ("Send to jane.doe@hospital.org please.", "jane.doe@hospital.org", "[EMAIL]"),
    ("Lives at 42 Baker Street, Apt 3.", "42 Baker Street", "[ADDRESS]"),
])
def test_identifiers_are_replaced_by_typed_placeholders(text, secret, placeholder):
    scrubbed = scrub_text(text)
    assert secret not in scrubbed and placeholder in scrubbed


def test_clinical_text_is_left_alone():
    text = "Heart size is normal. A 3 cm nodule in the right upper lobe. T12 compression, 2 views. No effusion."
    assert scrub_text(text) == text


def test_manifest_text_fields_are_scrubbed_and_others_kept(tmp_path):
    src, out = tmp_path / "m.jsonl", tmp_path / "clean.jsonl"
    record = {"study_id": "s1", "images": ["a.dcm"], "text": "Cough. Ordered by Dr. House.",
              "findings": "Unchanged since 01/02/2020.", "labels": {"Cardiomegaly": 1}}
    src.write_text(json.dumps(record) + "\n")
    assert scrub_manifest(src, out) == 1
    clean = json.loads(out.read_text())
    assert clean["text"] == "Cough. Ordered by [NAME]."
    assert clean["findings"] == "Unchanged since [DATE]."
    assert {k: clean[k] for k in ("study_id", "images", "labels")} == {k: record[k] for k in ("study_id", "images", "labels")}


def test_a_ratio_is_not_a_date():
    text = "Cardiothoracic ratio of 16.2/24.7. Follow-up 1.31.24."
    assert scrub_text(text) == "Cardiothoracic ratio of 16.2/24.7. Follow-up [DATE]."


def test_real_reports_lose_their_titled_names_and_keep_their_clinical_text(shared_data):
    """IU X-ray reports (already de-identified; XXXX marks a redaction): a titled redacted name
    ("Dr. XXXX") is found in every field that has one, and nothing else in the text is touched."""
    path = shared_data / "iu_xray_reports" / "reports_dev.jsonl"
    if not path.exists():
        pytest.skip(f"IU reports not available: {path} is absent")
    titled = re.compile(r"\b(?:Dr|Mr|Mrs|Ms|Miss|Prof|Doctor)\.?\s+XXXX")
    fields = [record.get(key) or "" for line in path.read_text().splitlines() if line.strip()
              for record in [json.loads(line)] for key in ("indication", "comparison", "findings", "impression")]
    with_names = [text for text in fields if titled.search(text)]
    assert with_names and all(not titled.search(scrub_text(text)) for text in with_names)
    assert [text for text in fields if not titled.search(text) and scrub_text(text) != text] == []
