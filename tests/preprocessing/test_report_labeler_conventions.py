"""The two labelling conventions (CheXpert's, the default, and the IU coders'), the phrase-family rules of
the fifth round, and the lexicon data file they come from."""

from __future__ import annotations

import pytest
import yaml

from preprocessing.labeler.lexicon import CONCEPTS, CONVENTIONS, LEXICON_FILE, PATTERNS
from preprocessing.report_labeler import label_report


def values_of(text: str, expected: dict, convention: str = "chexpert") -> dict:
    got = label_report(text, convention=convention).values
    return {k: got[k] for k in expected}


@pytest.mark.parametrize("text, chexpert, iu", [
    # "X versus Y" and "X or Y": CheXpert hedges both sides, the IU coders code both
    ("Right basilar atelectasis versus scarring.", {"Atelectasis": -1, "Lung Opacity": -1},
     {"Atelectasis": 1, "Lung Opacity": 1}),
    ("Minimal left basilar scarring or subsegmental atelectasis.", {"Atelectasis": -1, "Lung Opacity": -1},
     {"Atelectasis": 1, "Lung Opacity": 1}),
    ("Streaky opacities compatible with atelectasis/scarring.", {"Atelectasis": -1, "Lung Opacity": 1},
     {"Atelectasis": 1, "Lung Opacity": 1}),
    ("Bibasilar opacities, atelectasis and/or infiltrate.", {"Atelectasis": -1}, {"Atelectasis": 1}),
    # an infection is pneumonia for CheXpert ("infection" is on its list), a cause for the IU coders
    ("Patchy opacity, likely infectious process.", {"Pneumonia": 1}, {"Pneumonia": -1}),
    # CheXpert files fibrosis under Pleural Other, the IU coders under the lung
    ("Mild biapical fibrosis.", {"Pleural Other": 1, "Lung Opacity": None}, {"Pleural Other": None, "Lung Opacity": 1}),
    # a calcified nodule, or a nodule called a granuloma, is no lung lesion for CheXpert
    ("Calcified nodule in the right upper lobe.", {"Lung Lesion": None}, {"Lung Lesion": 1}),
    ("A 6 mm nodule in the right base, probably a calcified granuloma.", {"Lung Lesion": None}, {"Lung Lesion": 1}),
    ("Stable left apical nodule, presumably granuloma.", {"Lung Lesion": None}, {"Lung Lesion": 1}),
    # an enlarged cardiomediastinal silhouette: CheXpert's "cardiomediastinum", the IU coders' heart
    ("The cardiomediastinal silhouette is enlarged.", {"Enlarged Cardiomediastinum": 1, "Cardiomegaly": None},
     {"Enlarged Cardiomediastinum": None, "Cardiomegaly": 1}),
    # a vertebral compression deformity is a compression fracture
    ("Mild compression deformity of T11, age-indeterminate.", {"Fracture": 1}, {"Fracture": None}),
    # the redacted word after "sternotomy" is its wires
    ("Median sternotomy XXXX are intact.", {"Support Devices": 1}, {"Support Devices": None}),
    # wedging of a vertebral body is a wedge (compression) deformity, also with the word redacted
    ("Mild anterior wedging of a midthoracic vertebral body, age-indeterminate.", {"Fracture": 1}, {"Fracture": None}),
    ("Mild wedge XXXX deformity of T12.", {"Fracture": 1}, {"Fracture": None}),
    # a broken device is no broken bone for CheXpert; the IU coders code the sternum
    ("There is a fracture of the superior sternotomy wire, unchanged.", {"Fracture": None}, {"Fracture": 1}),
    ("Fractured pacer lead.", {"Fracture": None}, {"Fracture": 1}),
    ("Sternal wire fracture.", {"Fracture": None}, {"Fracture": 1}),
])
def test_conventions_read_the_same_sentence_differently(text, chexpert, iu):
    assert values_of(text, chexpert) == chexpert
    assert values_of(text, iu, "iu") == iu


def test_chexpert_is_the_default_convention():
    assert label_report("Atelectasis versus pneumonia.").values == label_report(
        "Atelectasis versus pneumonia.", convention="chexpert").values


@pytest.mark.parametrize("text, expected", [
    # the pleura or a fissure with a side or place named between
    ("Thickening of the right pleura.", {"Pleural Other": 1}),
    ("Thickened left apical pleura.", {"Pleural Other": 1}),
    ("Mild thickening of the right major fissure.", {"Pleural Other": 1}),
    ("No thickening of the left pleura.", {"Pleural Other": 0}),
    # a rib fracture next to a device is still a fracture
    ("Healed fracture of the left 7th rib. Sternotomy wires.", {"Fracture": 1, "Support Devices": 1}),
    # a negation still wins over an alternative
    ("No pleural effusion or pneumothorax.", {"Pleural Effusion": 0, "Pneumothorax": 0}),
    # "s/p" (status post) is no alternative, and a device named two ways is still a device
    ("S/p sternotomy wires intact.", {"Support Devices": 1}),
    ("Left chest pacemaker/ICD with leads in the right heart.", {"Support Devices": 1}),
    ("Right PICC or central line with tip in the SVC.", {"Support Devices": 1}),
    # a nodule that is not called a granuloma stays a lesion, whatever else the report says
    ("Right upper lobe nodule. Scattered calcified granulomas.", {"Lung Lesion": 1}),
    # healed and old fractures are fractures
    ("Healed left posterior rib fractures.", {"Fracture": 1}),
    ("Old healed right clavicle fracture.", {"Fracture": 1}),
    # "not seen on the prior exam" makes a finding new, not absent
    ("Small right basilar opacity, not seen on the prior study, and a healed rib fracture.",
     {"Lung Opacity": 1, "Fracture": 1}),
    # hedged edema
    ("Vascular congestion which may represent mild edema.", {"Edema": 1}),
    ("Interstitial prominence may represent mild edema.", {"Edema": -1, "Lung Opacity": 1}),
    # what cannot be assessed is not known either way
    ("Limited assessment of the heart size due to rotation.", {"Cardiomegaly": -1}),
    ("The heart size cannot be assessed on this AP view.", {"Cardiomegaly": -1}),
    ("Pleural reaction in the left base.", {"Pleural Other": 1}),
    ("Right apical pleural thickening.", {"Pleural Other": 1, "Lung Opacity": None}),
    ("Biapical scarring.", {"Lung Opacity": 1}),
    # "stable" and "unchanged" say nothing about size
    ("Stable cardiomediastinal silhouette.", {"Cardiomegaly": None, "Enlarged Cardiomediastinum": None}),
    ("The mediastinum is unchanged.", {"Enlarged Cardiomediastinum": None}),
    # a density named as bone or artifact is no lung finding
    ("Density in the right upper lung represents superimposed bony structures.", {"Lung Opacity": None}),
])
def test_phrase_families(text, expected):
    assert values_of(text, expected) == expected


@pytest.mark.parametrize("text, expected", [
    # lists of structures stated normal together
    ("Heart size, mediastinal contour, and pulmonary vascularity are within normal limits.",
     {"Cardiomegaly": 0, "Enlarged Cardiomediastinum": 0, "Edema": 0}),
    ("The heart, pulmonary XXXX and mediastinum are within normal limits.",
     {"Cardiomegaly": 0, "Enlarged Cardiomediastinum": 0}),
    ("Normal heart size and mediastinal contours.", {"Cardiomegaly": 0, "Enlarged Cardiomediastinum": 0}),
    ("The cardiomediastinal contours, lungs, pleura and osseous structures are normal.",
     {"Cardiomegaly": 0, "Lung Opacity": 0, "Pleural Effusion": 0, "Pneumothorax": 0}),
    # ... but a list with an abnormal member is no normal statement for it
    ("Heart size is enlarged and the mediastinum is normal.", {"Cardiomegaly": 1, "Enlarged Cardiomediastinum": 0}),
    # clear lungs after a word on their volume
    ("The lungs are hypoinflated but clear.", {"Lung Opacity": 0, "Atelectasis": 0}),
    ("The lungs are normally inflated and clear.", {"Lung Opacity": 0}),
    ("Pulmonary vascular markings are symmetric and normal.", {"Edema": 0}),
    # whole-study statements
    ("No evidence of active disease.", {"Pneumothorax": 0, "Pleural Effusion": 0, "Edema": 0}),
    ("No acute or active cardiac, pulmonary or pleural disease.", {"Pneumothorax": 0, "Consolidation": 0}),
    ("Negative for acute cardiopulmonary abnormality.", {"Pleural Effusion": 0}),
    ("No cardiopulmonary abnormality.", {"Pneumonia": 0}),
    ("Unremarkable chest radiograph.", {"Cardiomegaly": 0, "Fracture": 0, "Support Devices": None}),
    # a statement about the bones is not one about the heart and lungs
    ("No acute bony findings.", {"Pneumothorax": None, "Edema": None}),
])
def test_normal_statements(text, expected):
    assert values_of(text, expected) == expected


def test_the_lexicon_is_data_with_every_concept_and_convention_defined():
    data = yaml.safe_load(LEXICON_FILE.read_text(encoding="utf-8"))
    assert {"concepts", "conventions", "macros", "patterns", "unmention"} <= set(data)
    assert set(CONVENTIONS) == {"chexpert", "iu"}
    for pattern in PATTERNS:
        assert set(pattern.concepts) <= set(CONCEPTS), pattern.regex.pattern[:60]
        assert pattern.conventions is None or pattern.conventions <= set(CONVENTIONS)
    for conv in CONVENTIONS.values():
        assert set(conv.targets) | conv.suggests_only <= set(CONCEPTS)


def test_the_zone_phrases_are_data_and_every_level_word_parses_to_its_level():
    from preprocessing.labeler.zones import ZONES_FILE, parse_location, resolve_zones

    data = yaml.safe_load(ZONES_FILE.read_text(encoding="utf-8"))
    assert set(data["levels"]) == {"upper", "middle", "lower"}
    for level, words in data["levels"].items():
        for word in words:
            assert level in (parse_location(word).levels or ()), word
    for place in data["places"]:
        assert set(place.get("zones", ())) <= {"cardiac", "mediastinum"}
    assert resolve_zones([parse_location("lingular")]) == ["left_middle"]
    assert resolve_zones([parse_location("retrocardiac")]) == ["left_lower", "cardiac"]
    assert resolve_zones([parse_location("right middle lobe")]) == ["right_middle"]
    assert resolve_zones([parse_location("middle lobe")]) == ["right_middle"]
    assert label_report("Bibasilar atelectasis.").zones["Atelectasis"] == ["right_lower", "left_lower"]
