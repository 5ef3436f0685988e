"""Report labeler, third and fourth rounds: the radiology-language rules a new report relies on (abnormal
heart size, double negation, change words, history, hypotheticals, lists after a negation, scope across
"with", "but" and "although"; "X versus Y", infection words, pleural thickening phrasings, strong hedges,
edema and mediastinal phrasings; synonyms from CheXpert's phrase lists), each with real-style sentences.

These rules were written against the IU coders' codes, so the sentences are read under the IU convention
(``convention="iu"``); where CheXpert's convention reads them differently, tests/preprocessing/
test_report_labeler_conventions.py says so."""

from __future__ import annotations

import pytest

from preprocessing.report_labeler import label_report


def values(text: str) -> dict:
    """Only the mentioned observations' values (IU convention)."""
    return {k: v for k, v in label_report(text, convention="iu").values.items() if v is not None}


def values_of(text: str, expected: dict) -> dict:
    """The values of the observations named in ``expected`` (None where not mentioned)."""
    got = values(text)
    return {k: got.get(k) for k in expected}


@pytest.mark.parametrize("text, expected", [
    # an abnormal heart size is an enlarged one
    ("Heart size is not normal.", 1),
    ("The heart size is not within normal limits.", 1),
    ("The cardiac silhouette is abnormal.", 1),
    ("Stable enlarged cardiomediastinal silhouette.", 1),
    # ... while a negated abnormality or a plain normal statement is still negative
    ("The heart size is not abnormal.", 0),
    ("The cardiomediastinal silhouette is not enlarged.", 0),
    ("Heart size is within normal limits.", 0),
])
def test_abnormal_heart_size(text, expected):
    assert values(text)["Cardiomegaly"] == expected


@pytest.mark.parametrize("text, observation", [
    ("Cannot exclude a small left pleural effusion.", "Pleural Effusion"),
    ("Early pneumonia is not excluded.", "Pneumonia"),
    ("A small apical pneumothorax is not ruled out.", "Pneumothorax"),
    ("Underlying consolidation cannot be entirely excluded.", "Consolidation"),
])
def test_double_negation_is_uncertain(text, observation):
    assert values(text)[observation] == -1


@pytest.mark.parametrize("text, expected", [
    # a finding that has not changed is still there
    ("No change in the small right pleural effusion.", {"Pleural Effusion": 1}),
    ("Left basilar atelectasis without change.", {"Atelectasis": 1}),
    ("Stable right upper lobe nodule.", {"Lung Lesion": 1}),
    ("Unchanged mild cardiomegaly.", {"Cardiomegaly": 1}),
    ("Right lower lobe opacity, no interval change.", {"Lung Opacity": 1}),
    # a finding that has gone is negative
    ("The right pleural effusion has resolved.", {"Pleural Effusion": 0}),
    ("Prior right lower lobe pneumonia has resolved.", {"Pneumonia": 0}),
    ("Left basilar opacity has cleared.", {"Lung Opacity": 0}),
    ("The left chest tube has been removed.", {"Support Devices": 0}),
])
def test_change_words(text, expected):
    assert values_of(text, expected) == expected


@pytest.mark.parametrize("text, expected", [
    # "history of" names a past condition, not a finding of this study (negative, as in CheXpert)
    ("History of pneumonia.", {"Pneumonia": 0}),
    ("Stable right suprahilar opacity, compatible with history of right upper lobe mass.",
     {"Lung Opacity": 1, "Lung Lesion": 0}),
    ("Patient with a history of CHF. No pleural effusion.", {"Edema": 0}),
    # a hypothetical sentence states nothing
    ("No displaced rib fracture. If there is concern for fracture, consider rib series.", {"Fracture": 0}),
    # "status post" names a procedure; what it leaves behind is still seen
    ("Status post pacemaker placement.", {"Support Devices": 1}),
    ("Status post remote right humerus fracture.", {"Fracture": 1}),
    ("Status post median sternotomy and CABG.", {"Support Devices": None}),
    # age-indeterminate fractures are fractures
    ("Several age-indeterminate left-sided rib fractures.", {"Fracture": 1}),
])
def test_history_hypotheticals_and_procedures(text, expected):
    assert values_of(text, expected) == expected


@pytest.mark.parametrize("text, expected", [
    # a list after a negation is negated as a whole
    ("No focal consolidation, pneumothorax or effusion.",
     {"Consolidation": 0, "Pneumothorax": 0, "Pleural Effusion": 0}),
    ("The lungs are clear without focal airspace disease, pleural effusion, or pneumothorax.",
     {"Lung Opacity": 0, "Pleural Effusion": 0, "Pneumothorax": 0}),
    # a negation does not cross "but", "however", "although"
    ("No pneumothorax, but there is a small left effusion.", {"Pneumothorax": 0, "Pleural Effusion": 1}),
    ("No focal consolidation; however, there is mild bibasilar atelectasis.",
     {"Consolidation": 0, "Atelectasis": 1}),
    ("No pleural effusion, although mild atelectasis is seen at the bases.",
     {"Pleural Effusion": 0, "Atelectasis": 1}),
    # a negation stops at "with" ...
    ("No pneumothorax with small left pleural effusion.", {"Pneumothorax": 0, "Pleural Effusion": 1}),
    # ... but a hedge carries across it, unless "with" opens a graded or negated finding
    ("Findings may represent atelectasis with superimposed pneumonia.", {"Atelectasis": -1, "Pneumonia": -1}),
    ("Worsening masslike opacification, suggesting malignancy with postobstructive pneumonia.",
     {"Pneumonia": -1}),
    ("Possible right lower lobe pneumonia with small right pleural effusion.",
     {"Pneumonia": -1, "Pleural Effusion": 1}),
    ("Possible pneumonia with no pleural effusion.", {"Pneumonia": -1, "Pleural Effusion": 0}),
])
def test_scope(text, expected):
    assert values_of(text, expected) == expected


@pytest.mark.parametrize("text, expected", [
    # a density over a bone, the breast or in the mediastinum is not a lung finding
    ("Nodular densities projecting over the posterior 9th ribs bilaterally are consistent with nipple shadows.",
     {"Lung Lesion": None, "Lung Opacity": None}),
    ("Focal density overlying the right first rib and medial right clavicle.", {"Lung Opacity": None}),
    ("Round opacity measuring 2 cm in diameter within the posterior mediastinum.", {"Lung Lesion": None}),
    ("Retrocardiac density compatible with hiatal hernia.", {"Lung Opacity": None}),
    ("Oval sclerotic density in the right humeral head.", {"Lung Opacity": None}),
    # ... while a lung density stays one, wherever it projects
    ("A 9 mm pulmonary nodule is noted partially overlying the posterior 6th right rib.", {"Lung Lesion": 1}),
    ("Patchy opacity in the right lung base.", {"Lung Opacity": 1}),
    ("Retrocardiac opacity.", {"Lung Opacity": 1}),
])
def test_densities_outside_the_lung(text, expected):
    assert values_of(text, expected) == expected


@pytest.mark.parametrize("text, expected", [
    ("Borderline enlargement of the heart.", {"Cardiomegaly": 1}),
    ("There is enlargement of the cardiac silhouette.", {"Cardiomegaly": 1}),
    ("There is neurostimulator overlying the mid and lower thoracic spine.", {"Support Devices": 1}),
    ("ECMO cannula in the right atrium. Intra-aortic balloon pump 2 cm below the aortic knob.", {"Support Devices": 1}),
    ("Midline structures are normal.", {"Support Devices": None}),
    # soft-tissue edema is no pulmonary edema
    ("Left ankle: soft tissue edema with no visible bony injury.", {"Edema": None}),
    ("A large calcified right mediastinal adenopathy, likely chronic fungal.", {"Enlarged Cardiomediastinum": None}),
])
def test_lexicon_third_round(text, expected):
    assert values_of(text, expected) == expected


@pytest.mark.parametrize("text, observation", [
    ("Suspicion for small bilateral pleural effusions.", "Pleural Effusion"),
    ("Mild opacities bilaterally, favoring scar or atelectasis.", "Atelectasis"),
    ("Patchy airspace opacity within the lingula favored as atelectasis.", "Atelectasis"),
    ("Pneumonia is unlikely.", "Pneumonia"),
    ("Findings are less likely to represent pneumonia.", "Pneumonia"),
    ("Cardiomegaly cannot be assessed on this AP film.", "Cardiomegaly"),
    ("A small effusion is poorly evaluated on the frontal view.", "Pleural Effusion"),
])
def test_more_hedges(text, observation):
    assert values(text)[observation] == -1


def test_sections_of_other_body_parts_are_not_chest_findings():
    text = ("Chest: Heart size is normal. No pleural effusion or pneumothorax. Left shoulder: There is a mildly "
            "comminuted fracture of the left clavicle. Pelvis. Numerous clips overlying the pelvis.\n\n"
            "1. Chest. Mild left basilar atelectasis. 2. Left knee. Small joint effusion.")
    got = values(text)
    assert got.get("Fracture") is None and got.get("Support Devices") is None
    assert got["Pleural Effusion"] == 0 and got["Atelectasis"] == 1


def test_costophrenic_scarring_is_pleural():
    got = values("Elevated left hemidiaphragm with scarring at the left costophrenic angle.")
    assert got.get("Lung Opacity") is None and got["Pleural Other"] == 1
    assert values("Right basilar scarring.")["Lung Opacity"] == 1


# Fourth round.
@pytest.mark.parametrize("text, expected", [
    # "X versus Y" names an abnormality seen, with two readings: both count (the IU coders code both)
    ("Small right pleural effusion versus pleural thickening.", {"Pleural Effusion": 1, "Pleural Other": 1}),
    ("Left basilar opacity, atelectasis vs. scarring.", {"Atelectasis": 1, "Lung Opacity": 1}),
    ("Right lower lobe atelectasis versus pneumonia.", {"Atelectasis": 1, "Pneumonia": 1}),
    # ... unless the sentence hedges or negates the finding itself
    ("Left basilar opacity may represent atelectasis versus pneumonia.", {"Atelectasis": -1, "Pneumonia": -1}),
    ("No focal consolidation or effusion versus thickening.", {"Consolidation": 0, "Pleural Effusion": 0}),
])
def test_versus_names_both_readings(text, expected):
    assert values_of(text, expected) == expected


@pytest.mark.parametrize("text, expected", [
    ("Small right pleural effusion versus pleural thickening.", {"Pleural Effusion": -1, "Pleural Other": -1}),
    ("Left basilar opacity, atelectasis vs. scarring.", {"Atelectasis": -1, "Lung Opacity": 1}),
    ("Right lower lobe atelectasis versus pneumonia.", {"Atelectasis": -1, "Pneumonia": -1}),
    ("No focal consolidation or effusion versus thickening.", {"Consolidation": 0, "Pleural Effusion": 0}),
])
def test_versus_under_the_chexpert_convention_hedges_both_readings(text, expected):
    got = label_report(text, convention="chexpert").values
    assert {k: got[k] for k in expected} == expected


def test_convention_is_validated():
    with pytest.raises(ValueError, match="convention"):
        label_report("Atelectasis versus scarring.", convention="either")


@pytest.mark.parametrize("text, expected", [
    # an infection is a cause, not a diagnosis of pneumonia: at most pneumonia possible
    ("Patchy right lower lobe opacities, likely infectious infiltrate.", {"Lung Opacity": 1, "Pneumonia": -1}),
    ("Bilateral lower lung airspace disease, most likely representing acute infectious process.",
     {"Lung Opacity": 1, "Pneumonia": -1}),
    ("No evidence of active infection.", {"Pneumonia": 0}),
    # pneumonia named is pneumonia
    ("Right lower lobe pneumonia.", {"Pneumonia": 1}),
])
def test_infection_suggests_pneumonia(text, expected):
    assert values_of(text, expected) == expected


@pytest.mark.parametrize("text, expected", [
    # "thickening" set beside pleural fluid is pleural thickening
    ("Stable blunting of right costophrenic angle with small pleural effusion versus thickening.",
     {"Pleural Other": 1, "Pleural Effusion": 1}),
    ("Peripheral opacity along the right mid lung reflects scar or loculated pleural fluid or thickening.",
     {"Pleural Other": 1}),
    ("Right pleural opacity compatible with thickening and/or some loculated effusion.", {"Pleural Other": 1}),
    ("Peribronchial thickening.", {"Pleural Other": None}),
    # pleuroparenchymal scarring is pleural, pleuroparenchymal "irregularities" are not named as such
    ("Biapical pleuroparenchymal scarring.", {"Pleural Other": 1, "Lung Opacity": None}),
    ("Biapical pleuroparenchymal irregularities.", {"Pleural Other": None}),
])
def test_pleural_thickening_phrasings(text, expected):
    assert values_of(text, expected) == expected


@pytest.mark.parametrize("text, expected", [
    # a hedge made strong reads as "most likely" (positive); a plain one stays uncertain
    ("Abnormal pulmonary opacities most suggestive of pulmonary edema.", {"Edema": 1}),
    ("Findings are strongly suggestive of acute pneumonia.", {"Pneumonia": 1}),
    ("Findings are suggestive of mild pulmonary edema.", {"Edema": -1}),
    # an indeterminate nodule is a nodule of unknown nature
    ("Indeterminate 1.4 cm opacity seen only on the lateral view.", {"Lung Opacity": 1}),
    ("Indeterminate pulmonary nodule in the right upper lobe.", {"Lung Lesion": 1}),
    ("Findings are indeterminate for pneumonia.", {"Pneumonia": -1}),
    # "no X seen," closes the negated phrase
    ("No definite pleural effusion seen, dense nodule in the left lung suggests prior granulomatous disease.",
     {"Pleural Effusion": 0, "Lung Lesion": 1}),
    ("No pleural effusion, pneumothorax, or consolidation is seen.",
     {"Pleural Effusion": 0, "Pneumothorax": 0, "Consolidation": 0}),
    # "rule-out" with a hyphen hedges as "rule out" does; so do "maybe" and "perhaps"
    ("Follow-up CT recommended to rule-out underlying pulmonary nodule.", {"Lung Lesion": -1}),
    ("Basilar opacity. Maybe due to pulmonary fibrosis, scarring and/or atelectasis.", {"Atelectasis": -1}),
    ("Perhaps there is some chronic indolent infection here.", {"Pneumonia": -1}),
    # "clear" with its "of" dropped still negates; clear lungs beside a finding do not
    ("Lungs are expanded and clear airspace disease.", {"Lung Opacity": 0}),
    ("The lungs are clear. Small left pleural effusion.", {"Lung Opacity": 0, "Pleural Effusion": 1}),
])
def test_strong_hedges_indeterminate_and_closed_negations(text, expected):
    assert values_of(text, expected) == expected


@pytest.mark.parametrize("text", [
    "Cephalization of the pulmonary vasculature.",
    "Mild vascular redistribution to the upper lobes.",
    "Interlobular septal lines at the bases, consistent with interstitial edema.",
    "Findings compatible with fluid overload.",
    "The pulmonary vessels are engorged.",
    "The pulmonary vasculature is somewhat indistinct.",
    "Pulmonary vascular markings are mildly increased.",
])
def test_edema_phrasings(text):
    assert values(text)["Edema"] == 1


@pytest.mark.parametrize("text, expected", [
    ("The mediastinal and hilar lymph XXXX are less prominent than previously.", {"Enlarged Cardiomediastinum": 1}),
    ("Mediastinal lymph nodes are enlarged.", {"Enlarged Cardiomediastinum": 1}),
    ("Bulky mediastinal lymph nodes.", {"Enlarged Cardiomediastinum": 1}),
    ("Mediastinal fullness, possibly vascular.", {"Enlarged Cardiomediastinum": 1}),
    ("Calcified mediastinal lymph nodes are again noted.", {"Enlarged Cardiomediastinum": None}),
    ("Superior mediastinal widening is unchanged.", {"Enlarged Cardiomediastinum": 1}),
    ("No mediastinal widening.", {"Enlarged Cardiomediastinum": 0}),
    # a thickened fissure is pleural; collapse of several lobes is atelectasis
    ("Thickening of the minor fissure.", {"Pleural Other": 1}),
    ("Partial collapse of the left upper and lower lobes.", {"Atelectasis": 1}),
    # a nodular outline is a shape, not a nodule; a density that is an artifact is no lung finding
    ("Elevated right hemidiaphragm, with a nodular soft tissue contour, containing liver.", {"Lung Lesion": None}),
    ("Nodular density noted on the prior radiograph represents an artifact.", {"Lung Lesion": None}),
    ("Nodular densities projecting over right anterior fifth and sixth ribs.", {"Lung Lesion": None}),
    ("Small nodular opacity in the left lower lobe.", {"Lung Lesion": 1}),
])
def test_mediastinum_fissures_collapse_and_lesion_lookalikes(text, expected):
    assert values_of(text, expected) == expected


def test_section_header_without_punctuation():
    text = ("Chest: The heart is borderline enlarged. No pleural effusion.  Pelvis and left hip There is an impacted "
            "fracture through the neck of the left femur.")
    got = values(text)
    assert got.get("Fracture") is None and got["Cardiomegaly"] == 1 and got["Pleural Effusion"] == 0
    # a capital after a chest word that is no header changes nothing
    assert values("Chest tube in place. Old right rib Fractures.")["Fracture"] == 1


# CheXpert phrase coverage: synonyms from the public CheXpert labeler's phrase lists
# (stanfordmlgroup/chexpert-labeler, phrases/mention and phrases/unmention) that the lexicon lacked.
@pytest.mark.parametrize("text, expected", [
    # any collapse is the lung's, a vertebra's is not
    ("There is collapse at the left base.", {"Atelectasis": 1}),
    ("No lobar collapse.", {"Atelectasis": 0}),
    ("Mild T12 compression collapse, unchanged.", {"Atelectasis": None}),
    ("Partial collapse of the L1 vertebral body.", {"Atelectasis": None}),
    # a widened cardiomediastinal silhouette is the mediastinum's; an enlarged one stays the heart's
    ("The cardiomediastinal silhouette is widened.", {"Enlarged Cardiomediastinum": 1, "Cardiomegaly": None}),
    ("The cardiomediastinal silhouette is enlarged.", {"Cardiomegaly": 1}),
    ("Normal mediastinal configuration.", {"Enlarged Cardiomediastinum": 0}),
    ("Frontal and lateral views show normal size and configuration of the cardiac silhouette.", {"Cardiomegaly": 0}),
    ("Normal size and contour of the cardiomediastinal silhouette.", {"Cardiomegaly": 0, "Enlarged Cardiomediastinum": 0}),
    ("The cardiopericardial silhouette is enlarged.", {"Cardiomegaly": 1}),
    # pleural scars and fibrosis in any spelling are pleural, a parenchymal scar is a lung opacity
    ("Left apical pleuro-parenchymal scarring.", {"Pleural Other": 1, "Lung Opacity": None}),
    ("Pleuro-pericardial scarring at the left base.", {"Pleural Other": 1, "Lung Opacity": None}),
    ("Pleural fibrosis on the right.", {"Pleural Other": 1, "Lung Opacity": None}),
    ("Parenchymal scarring in the right upper lobe.", {"Lung Opacity": 1}),
    # lesion, opacity and device words
    ("A lump in the right upper lobe.", {"Lung Lesion": 1}),
    ("Palpable lump marker over the left breast.", {"Lung Lesion": None}),
    ("Decreased lucency at the left base.", {"Lung Opacity": 1}),
    ("Monitoring equipment overlies the chest.", {"Support Devices": 1}),
    ("Support apparatus is unchanged in position.", {"Support Devices": 1}),
    # "no increased density" negates the density; "no increase in" still negates nothing
    ("No increased density at the lung bases.", {"Lung Opacity": 0}),
    ("No increase in the right basilar opacity.", {"Lung Opacity": 1}),
])
def test_chexpert_phrase_coverage(text, expected):
    assert values_of(text, expected) == expected
