"""Report labeler: negation, uncertainty, conflicts, zones, No Finding, redactions, evidence, vocabularies
(the JSONL / CLI tests: tests/multimodal/labeling; the IU code agreement: tests/benchmarks/test_iu_codes.py)."""

from __future__ import annotations

import json

import pytest

from preprocessing.report_labeler import label_report

def values(text: str, observations="chexpert") -> dict:
    """Only the mentioned observations' values."""
    return {k: v for k, v in label_report(text, observations).values.items() if v is not None}


@pytest.mark.parametrize("text, observation", [
    ("There is no pneumothorax.", "Pneumothorax"),
    ("No focal consolidation, pleural effusion, or pneumothorax.", "Pneumothorax"),
    ("The lungs are without focal consolidation.", "Consolidation"),
    ("Negative for pleural effusion.", "Pleural Effusion"),
    ("The previously seen right effusion has resolved.", "Pleural Effusion"),
    ("Pneumothorax is not seen.", "Pneumothorax"),
    ("There are no XXXX of a pleural effusion.", "Pleural Effusion"),
    ("No evidence of pneumonia.", "Pneumonia"),
    ("The heart is not enlarged.", "Cardiomegaly"),
    ("Interval removal of the right chest tube.", "Support Devices"),
    ("No focal air space opacity to suggest a pneumonia.", "Pneumonia"),
])
def test_negated_mentions_are_zero(text, observation):
    assert values(text)[observation] == 0


@pytest.mark.parametrize("text, observation", [
    ("Left basilar opacity may represent atelectasis.", "Atelectasis"),
    ("Pneumonia cannot be excluded.", "Pneumonia"),
    ("Cannot exclude a small right pleural effusion.", "Pleural Effusion"),
    ("Findings are suggestive of mild pulmonary edema.", "Edema"),
    ("Question of a small left apical pneumothorax.", "Pneumothorax"),
    ("Opacity concerning for pneumonia.", "Pneumonia"),
    ("Possible small left effusion.", "Pleural Effusion"),
])
def test_hedged_mentions_are_uncertain(text, observation):
    assert values(text)[observation] == -1


@pytest.mark.parametrize("text, observation", [
    ("Stable cardiomegaly.", "Cardiomegaly"),
    ("No change in the small bilateral pleural effusions.", "Pleural Effusion"),
    ("The heart is mildly enlarged.", "Cardiomegaly"),
    ("Borderline cardiomegaly.", "Cardiomegaly"),
    ("Bibasilar atelectasis, likely chronic.", "Atelectasis"),
    ("Right PICC tip in the SVC.", "Support Devices"),
    ("Healed left rib fractures.", "Fracture"),
    ("Calcified pleural plaques.", "Pleural Other"),
])
def test_plain_mentions_are_positive(text, observation):
    assert values(text)[observation] == 1


def test_scope_ends_at_a_terminator_and_at_the_sentence():
    got = values("No pleural effusion, but there is a small right pneumothorax. Mild cardiomegaly.")
    assert got["Pleural Effusion"] == 0 and got["Pneumothorax"] == 1 and got["Cardiomegaly"] == 1


def test_normal_statements_give_negatives():
    got = values("Heart size normal. Lungs are clear. No acute cardiopulmonary abnormality.")
    assert got["Cardiomegaly"] == 0
    assert got["Lung Opacity"] == got["Consolidation"] == got["Edema"] == 0
    assert got["Pneumothorax"] == got["Pleural Effusion"] == 0
    assert got["No Finding"] == 1
    assert "Fracture" not in got  # never mentioned: unknown, not negative


def test_heart_size_at_upper_limits_of_normal_is_normal():
    assert values("Heart size is at the upper limits of normal.")["Cardiomegaly"] == 0


def test_conflicting_mentions_follow_chexpert_priority():
    # positive beats uncertain beats negative, whatever the order
    assert values("No effusion on the left. Small right pleural effusion.")["Pleural Effusion"] == 1
    assert values("Possible small effusion. No large pleural effusion.")["Pleural Effusion"] == -1
    assert values("Heart size is normal. Cardiomegaly cannot be excluded.")["Cardiomegaly"] == -1


def test_no_finding_ignores_support_devices_only():
    assert values("Right IJ catheter tip in the SVC. Lungs are clear.")["No Finding"] == 1
    assert values("Possible right lower lobe pneumonia.")["No Finding"] == 0
    assert values("Small left pleural effusion.")["No Finding"] == 0
    assert values("No pneumothorax.")["No Finding"] == 1
    assert label_report("").values["No Finding"] is None


@pytest.mark.parametrize("text, observation, zones", [
    ("Left lower lobe consolidation.", "Consolidation", ["left_lower"]),
    ("Bibasilar atelectasis.", "Atelectasis", ["right_lower", "left_lower"]),
    ("Opacities in the right upper and middle lobes.", "Lung Opacity", ["right_upper", "right_middle"]),
    ("Lingular scarring.", "Lung Opacity", ["left_middle"]),
    ("Retrocardiac opacity.", "Lung Opacity", ["left_lower", "cardiac"]),
    ("Bilateral perihilar opacities.", "Lung Opacity", ["right_middle", "left_middle"]),
    ("Small bilateral pleural effusions.", "Pleural Effusion", ["right_lower", "left_lower"]),
    ("Small right pleural effusion.", "Pleural Effusion", ["right_lower"]),
    ("Biapical pleural thickening.", "Pleural Other", ["right_upper", "left_upper"]),
    ("Blunting of the left costophrenic angle with pleural thickening.", "Pleural Other", ["left_lower"]),
    ("Mild cardiomegaly.", "Cardiomegaly", ["cardiac"]),
    ("Opacity at the base of the left lung.", "Lung Opacity", ["left_lower"]),
])
def test_zones_of_positive_mentions(text, observation, zones):
    assert label_report(text).zones[observation] == zones


def test_each_location_goes_to_the_nearest_finding():
    labels = label_report("Left lower lobe consolidation and right apical pneumothorax.")
    assert labels.zones["Consolidation"] == ["left_lower"]
    assert labels.zones["Pneumothorax"] == ["right_upper"]


def test_negated_findings_get_no_zones():
    assert label_report("No left pleural effusion.").zones["Pleural Effusion"] == []


@pytest.mark.parametrize("text, expected", [
    # a finding that has only partly gone is still there
    ("Almost completely resolved right apical pneumothorax.", {"Pneumothorax": 1}),
    ("Partially resolved left lower lobe consolidation.", {"Consolidation": 1}),
    ("Interval clearing of left base airspace opacities.", {"Lung Opacity": 0}),
    # post-negation reaches a few words only, and "not seen previously" means new
    ("New right lower lobe opacity, not seen previously.", {"Lung Opacity": 1}),
    ("The previously noted nodule in the right lower lobe is not well-seen on today's study.", {"Lung Lesion": 0}),
    # "have cleared" after a list negates the whole list
    ("Consolidation, atelectasis, and blunting in the left lower lobe have cleared in the interval.",
     {"Consolidation": 0, "Atelectasis": 0}),
    # "compatible with" / "consistent with" does not end the hedge's scope
    ("Abnormal opacity in the right lung base which may be compatible with pneumonia.", {"Pneumonia": -1}),
    ("Right upper lobe airspace consolidation. Please correlate clinically for pneumonia.",
     {"Consolidation": 1, "Pneumonia": -1}),
    ("Left lower lobe airspace disease, compatible with pneumonia in the appropriate clinical setting.",
     {"Lung Opacity": 1, "Pneumonia": -1}),
    ("In the appropriate clinical setting, this is compatible with infection.", {"Pneumonia": -1}),
    ("Patchy bibasilar opacities representing an infectious etiology versus chronic lung disease.",
     {"Lung Opacity": 1, "Pneumonia": -1}),
    ("Pneumonia is in the differential.", {"Pneumonia": -1}),
    ("It would be difficult to completely exclude a superimposed pneumonia.", {"Pneumonia": -1}),
    ("Findings may be secondary to edema. Atypical infection is another consideration.", {"Pneumonia": -1}),
    ("CT is recommended to determine if there is mediastinal adenopathy.", {"Enlarged Cardiomediastinum": -1}),
    # "and" before a graded finding, or before a new statement, starts a new clause
    ("No pleural effusion and mild cardiomegaly.", {"Pleural Effusion": 0, "Cardiomegaly": 1}),
    ("No pneumothorax and heart size is normal.", {"Pneumothorax": 0, "Cardiomegaly": 0}),
])
def test_scope_and_pseudo_triggers(text, expected):
    got = values(text)
    assert {k: got.get(k) for k in expected} == expected


@pytest.mark.parametrize("text, expected", [
    # CheXpert unmentions a calcified nodule (the IU convention counts it: test_report_labeler_conventions.py)
    ("Calcified nodule in the left upper lobe.", {"Lung Lesion": None}),
    ("Minimal fibronodular scarring in the right apex.", {"Lung Lesion": 1, "Lung Opacity": 1}),
    ("Worsening masslike opacification of the right apex.", {"Lung Lesion": 1}),
    ("Decreasing right upper lobe cavity.", {"Lung Lesion": 1}),
    ("Moderate layering right pleural effusion with air-fluid level.", {"Pneumothorax": 1, "Pleural Effusion": 1}),
    ("Mild biapical pleural-peripheral scarring.", {"Pleural Other": 1}),
    ("Stable mild cardiomegaly and increased lung vascularity.", {"Edema": 1}),
    ("Collapse of a substantial portion of the left lung.", {"Atelectasis": 1}),
    # calcified mediastinal nodes are old granulomatous disease, not a widened mediastinum
    ("There are large calcified mediastinal and right hilar granulomas.", {"Enlarged Cardiomediastinum": None}),
])
def test_lexicon_synonyms(text, expected):
    got = values(text)
    assert {k: got.get(k) for k in expected} == expected


def test_device_side_words_give_no_zones():
    labels = label_report("Right PICC with tip in the SVC and left basilar atelectasis.")
    assert labels.values["Support Devices"] == 1 and labels.zones["Support Devices"] == []
    assert labels.zones["Atelectasis"] == ["left_lower"]


def test_redactions_do_not_break_sentences_or_mentions():
    text = "XXXX XXXX. The heart is XXXX enlarged.There is XXXX left basilar atelectasis. No XXXX pneumothorax."
    labels = label_report(text)
    assert labels.values["Cardiomegaly"] == 1
    assert labels.values["Atelectasis"] == 1 and labels.zones["Atelectasis"] == ["left_lower"]
    assert labels.values["Pneumothorax"] == 0
    assert {m.sentence for m in labels.evidence["Atelectasis"]} == {2}


def test_evidence_offsets_point_at_the_text():
    text = "Comparison XXXX. Mild cardiomegaly.\nNo PLEURAL EFFUSION. Possible pneumonia."
    labels = label_report(text)
    for mentions in labels.evidence.values():
        for m in mentions:
            assert text[m.start:m.end] == m.text
    (effusion,) = labels.evidence["Pleural Effusion"]
    assert effusion.text == "EFFUSION" and effusion.value == 0
    assert json.loads(json.dumps(labels.to_dict()))["evidence"]["Pneumonia"][0]["value"] == -1


def test_other_vocabularies():
    text = "Small right pleural effusion. Left upper lobe nodule. Emphysema. Small hiatal hernia."
    nih = values(text, "nih")
    assert nih == {"Effusion": 1, "Nodule": 1, "Emphysema": 1, "Hernia": 1}
    phantom = values(text, "phantom")
    assert phantom == {"Pleural Effusion": 1, "Lung Lesion": 1}
    assert values("Right lung mass.", ["Mass", "Nodule"]) == {"Mass": 1}


def test_labels_name_the_standard_code_of_each_stated_observation():
    labels = label_report("Small right pleural effusion. No pneumothorax.").to_dict()
    assert labels["codes"]["Pleural Effusion"] == "SCT:60046008"
    assert labels["codes"]["Pneumothorax"] == "SCT:36118008"
    assert "Fracture" not in labels["codes"]  # not stated: no value, no code
