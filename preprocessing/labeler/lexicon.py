"""Mention lexicon: concepts, their regex patterns (synonyms, misspellings) and the observation each
concept names in each vocabulary of :mod:`preprocessing.vocab`.

Three kinds of pattern:

- ``finding``: a finding named in the text ("left basilar atelectasis", "the heart is enlarged");
  its value (1 / 0 / -1) comes from the negation and uncertainty context.
- ``normal``: a statement of normality ("heart size is normal", "lungs are clear", "no acute
  cardiopulmonary abnormality") that implies a negative (0) for the concepts it lists, as CheXpert
  labels "heart size is normal" Cardiomegaly 0. A negated or hedged normal statement counts for nothing.

Patterns are matched case-insensitively on whole words; the compiled regexes are built once at import.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

FINDING, NORMAL = "finding", "normal"


@dataclass(frozen=True)
class Concept:
    """One thing the text can state; ``targets`` maps a vocabulary's observation names it feeds.

    ``zoned`` is False for things whose side words name no lung zone ("right PICC" is a device
    inserted on the right, not a finding in the right lung): they get no zones and take no location
    phrase from a neighbouring finding. ``in_lung`` is True for findings that are lung findings only
    where they lie in the lung (a density "projecting over the posterior 9th rib" is not one).
    ``suggests_only`` is True for words that name a cause which suggests the observation without
    naming it ("likely infectious etiology" of an opacity): a positive mention counts as uncertain.
    """

    name: str
    targets: tuple[str, ...]
    default_levels: tuple[str, ...] = ("upper", "middle", "lower")
    default_zones: tuple[str, ...] = ()
    zoned: bool = True
    in_lung: bool = False
    suggests_only: bool = False


# CheXpert and NIH names live side by side: a concept feeds every name present in the chosen list.
CONCEPTS: dict[str, Concept] = {c.name: c for c in (
    Concept("cardiomegaly", ("Cardiomegaly",), default_zones=("cardiac",)),
    Concept("mediastinum", ("Enlarged Cardiomediastinum",), default_zones=("mediastinum",)),
    Concept("nodule", ("Lung Lesion", "Nodule"), in_lung=True),
    Concept("mass", ("Lung Lesion", "Mass"), in_lung=True),
    Concept("opacity", ("Lung Opacity", "Infiltration"), in_lung=True),
    Concept("scarring", ("Lung Opacity",)),
    Concept("fibrosis", ("Lung Opacity", "Fibrosis")),
    Concept("edema", ("Edema",)),
    Concept("consolidation", ("Consolidation",)),
    Concept("pneumonia", ("Pneumonia",)),
    Concept("infection", ("Pneumonia",), suggests_only=True),
    Concept("atelectasis", ("Atelectasis",)),
    Concept("pneumothorax", ("Pneumothorax",)),
    Concept("effusion", ("Pleural Effusion", "Effusion"), default_levels=("lower",)),
    Concept("pleural_other", ("Pleural Other", "Pleural_Thickening")),
    Concept("fracture", ("Fracture",)),
    Concept("device", ("Support Devices",), zoned=False),
    Concept("emphysema", ("Emphysema",)),
    Concept("hernia", ("Hernia",)),
)}

# Concepts a normal statement about the lungs or the whole chest rules out.
_PARENCHYMA = ("opacity", "consolidation", "pneumonia", "edema", "atelectasis")
_ACUTE = ("edema", "consolidation", "pneumonia", "pneumothorax", "effusion")
_ALL_PATHOLOGY = tuple(n for n in CONCEPTS if n != "device")

_HEART = (r"(?:heart|cardiac\s+(?:silhouette|shadow|contours?|size|outline|borders?)|heart\s+size|cardiac"
          r"|(?:cardio)?pericardial\s+silhouette)")
_CM = r"(?:cardio[\s-]?mediastinal|cardiomediastinum)\s*(?:silhouettes?|contours?|shadows?|outlines?|structures|size|width|configuration)?"
_MEDIASTINUM = r"(?:(?:superior\s+)?mediastin(?:um|al\s+(?:silhouette|contours?|width|shadow|structures|outline|configuration)s?))"
# A few words within one clause: no punctuation, and not across "and the" / "but" / "with".
_GAP = r"(?:(?!\b(?:and\s+the|and\s+there|but|with|however)\b)[\w\s/-]){0,50}?\b"
# The gap of a normal statement holds no negation: "heart size is *not* within normal limits" is no
# normal statement (it is an abnormal one, below).
_AFFIRMED_GAP = r"(?:(?!\b(?:and\s+the|and\s+there|but|with|however|not|no)\b)[\w\s/-]){0,50}?\b"
_LARGE = r"(?:enlarged|enlargement|enlarging|large|bulky|increased|prominent|prominence|widened|widening|wide|fullness)"
_NORMAL = (r"(?:normal|within\s+normal\s+limits|wnl|unremarkable|stable|unchanged|satisfactory|"
           r"not\s+(?:enlarged|widened)|(?:is|are)\s+clear|maintained|preserved)")
# "Upper limits of normal" is still normal; "borderline" size reads as mild enlargement (CheXpert: positive).
_TOP_NORMAL = r"(?:(?:near|at|towards?|on)\s+(?:the\s+)?)?(?:upper\s+limits?\s+(?:of\s+)?normal|top(?:\s+of)?\s+normal|high[\s-]normal)"
# "normal size and configuration of the cardiac silhouette": the outline's normality, stated before it
_NORMAL_OUTLINE_OF = (r"(?:normal|unremarkable)\s+(?:size|contours?|configuration|shape)"
                      r"(?:\s+and\s+(?:size|contours?|configuration|shape))?\s+of\s+the\s+")

# (concept or concepts, kind, pattern)
_ENTRIES: tuple[tuple[tuple[str, ...], str, str], ...] = (
    # --- heart and mediastinum
    (("cardiomegaly",), FINDING, r"card[io]{1,2}megal(?:y|ic)|cardiomeg[ae]ly|cardiac\s+(?:enlargement|hypertrophy)"
                                 r"|enlarged\s+(?:heart|cardiac\s+(?:silhouette|shadow|size|contour))"
                                 r"|enlargement\s+of\s+the\s+(?:heart|cardiac\s+(?:silhouette|shadow|contour))"),
    (("cardiomegaly",), FINDING, rf"borderline\s+(?:cardiomegaly|(?:heart|cardiac)\s+(?:size|silhouette|enlargement))"
                                 rf"|{_HEART}{_GAP}(?:{_LARGE}|borderline)"),
    # A heart (or cardiomediastinal silhouette) that is "abnormal" / "not (within) normal" is enlarged:
    # size is what the statement is about. The named group is the mention's head, so that a "not"
    # inside it is the statement itself, while "not abnormal" is still a negation.
    # An enlarged cardiomediastinal *silhouette* is read as cardiomegaly, as the IU coders do
    # ("Cardiac Shadow/enlarged" for every such tune report); a widened mediastinum is named as such.
    (("cardiomegaly",), FINDING, rf"(?:{_HEART}|{_CM}){_GAP}(?P<head>abnormal|not\s+(?:within\s+(?:the\s+)?)?normal)"
                                 rf"|abnormal\s+(?:{_HEART}|{_CM})|(?:enlarged|enlargement\s+of\s+the)\s+{_CM}"
                                 rf"|{_CM}{_GAP}(?:enlarged|enlargement)"),
    (("cardiomegaly",), NORMAL, rf"(?:(?:normal|unremarkable)\s+(?:sized?\s+)?|{_NORMAL_OUTLINE_OF}){_HEART}|{_HEART}{_AFFIRMED_GAP}(?:{_NORMAL}|{_TOP_NORMAL})"),
    (("cardiomegaly", "mediastinum"), NORMAL, rf"(?:normal\s+|{_NORMAL_OUTLINE_OF}){_CM}|{_CM}{_AFFIRMED_GAP}{_NORMAL}"),
    (("mediastinum",), FINDING, rf"{_LARGE}\s+(?:of\s+the\s+)?(?:(?!and\b|normal\b|with\b|calcified\b)[\w/-]+[\s/]+){{0,3}}?mediastin\w*"
                                rf"|{_MEDIASTINUM}{_GAP}{_LARGE}|(?<!calcified\s)(?<!calcified\sright\s)(?<!calcified\sleft\s)mediastinal\s+(?:lymph\s*)?adenopathy|mediastinal\s+mass"
                                rf"|{_LARGE}\s+(?:right\s+|left\s+)?paratracheal|paratracheal\s+(?:\w+\s+){{0,2}}{_LARGE}"
                                # enlarged mediastinal nodes are mediastinal adenopathy ("lymph XXXX": IU redaction)
                                rf"|(?<!calcified\s)mediastinal\s+(?:and\s+\w+\s+)?lymph\s*(?:nodes?|xxxx)?\s+"
                                rf"(?:(?:are|is|appear|appears|remain|remains)\s+)?(?:\w+\s+)?{_LARGE}"
                                r"|mediastinal\s+(?:widening|enlargement|prominence|fullness)"
                                # a widened cardiomediastinal silhouette is a wide mediastinum (an enlarged one
                                # is read as the heart's, above)
                                rf"|widen(?:ed|ing)\s+(?:of\s+the\s+)?{_CM}|{_CM}{_GAP}widen(?:ed|ing)"),
    (("mediastinum",), NORMAL, rf"normal\s+mediastin\w*|{_NORMAL_OUTLINE_OF}{_MEDIASTINUM}|{_MEDIASTINUM}{_AFFIRMED_GAP}{_NORMAL}"),
    # --- lung parenchyma
    # "nodular" that shapes an outline ("a nodular soft tissue contour" of the diaphragm) names no nodule
    (("nodule",), FINDING, r"(?:fibro|reticulo)?nodul(?:e|es|ar(?!\s+(?:soft\s+tissue\s+)?(?:contours?|margins?|borders?|outlines?)))"
                           r"|nodlues?|noduels?|micronodul\w*"
                           r"|(?:round|rounded|ovoid|oval|spherical)\s+(?:\w+\s+)?(?:opacit\w+|densit\w+|lesions?)"),
    (("mass",), FINDING, r"mass(?:es)?(?!\s+effect)|mass[\s-]?like|cavit(?:y|ies)|(?:cavitary|cavitating|pulmonary|lung|parenchymal)\s+lesions?"
                         r"|cavitation|tumou?rs?|(?<!palpable\s)lumps?|neoplasms?|carcinoma|malignan\w*|metastas[ie]s|metastatic"),
    (("opacity",), FINDING, r"opaci\w*|opactiy|opacites|opcaity|(?<!bone\s)(?<!breast\s)(?<!tissue\s)densit(?:y|ies)"
                            r"|infiltra\w*|air[\s-]?space\s+(?:disease|process|opacit\w*|filling)|decreased\s+(?:trans)?lucency"),
    (("scarring",), FINDING, r"(?:interstitial|reticular|reticulonodular)\s+(?:markings?|patterns?|opacit\w+|prominence"
                             r"|changes?|disease|thickening|lung\s+disease)|reticulation|peribronchial\s+(?:thickening|cuffing)"
                             # a pleural, pleuro-parenchymal or pleuro-pericardial scar and scarring at a
                             # costophrenic angle are pleural (Pleural Other, below), not in the lung
                             r"|(?<!pleural\s)(?<!pleural-parenchymal\s)(?<!pleuroparenchymal\s)(?<!pleuro-parenchymal\s)(?<!pericardial\s)"
                             r"scar(?:s|ring|red)?"
                             r"(?!\s+(?:(?:at|of|in)\s+)?(?:the\s+)?(?:\w+\s+)?costophrenic)"),
    (("fibrosis",), FINDING, r"(?<!cystic\s)(?<!pleural\s)fibros[ie]s|fibrotic|honeycomb\w*"),
    (("edema",), FINDING, r"(?<!soft\stissue\s)(?<!subcutaneous\s)o?edema(?:tous)?|(?:heart|cardiac)\s+failure|chf|(?:pulmonary\s+)?(?:vascular|venous)\s+congestion"
                          r"|pulmonary\s+congestion|congestive|(?:pulmonary\s+)?venous\s+hypertension"
                          r"|cephaliz\w*|kerley|(?:interlobular\s+)?septal\s+lines|(?:fluid|volume)\s+overload"
                          r"|vascular\s+(?:prominence|engorgement|indistinctness|redistribution)"
                          r"|redistribution\s+of\s+(?:the\s+)?(?:pulmonary\s+)?(?:vascula\w*|blood\s+flow)"
                          # the vessels' size or outline, in either order, with a degree word between
                          r"|(?:prominen\w+|engorge\w*|indistinct\w*|increased|congested)\s+(?:of\s+)?(?:the\s+)?(?:central\s+)?"
                          r"(?:pulmonary\s+|lung\s+)?(?:vascula\w*|vessels)"
                          r"|(?:pulmonary\s+|lung\s+)?(?:vascula\w*|vessels)\s+(?:markings\s+)?(?:is\s+|are\s+|appears?\s+|remains?\s+)?"
                          r"(?:(?:somewhat|slightly|mildly|moderately|minimally|again)\s+)?(?:prominen\w+|engorged|indistinct|congested|increased)"),
    (("edema",), NORMAL, r"(?:pulmonary\s+)?vascula(?:ture|rity)\s+(?:is\s+|are\s+|appears\s+)?(?:normal|within\s+normal\s+limits)"
                         r"|normal\s+(?:pulmonary\s+)?vascula\w*"),
    (("consolidation",), FINDING, r"consol[io]?dat\w*|consoildat\w*"),
    (("pneumonia",), FINDING, r"p(?:neu|nue)moni\w*|bronchopneumonia"),
    # An infection is a cause, not a diagnosis of pneumonia: "opacities, likely infectious etiology" is
    # coded as the opacity only (IU), so it reads as pneumonia possible. Healed granulomatous disease
    # and "symptoms of infection" are no pneumonia at all.
    (("infection",), FINDING, r"(?<!granulomatous\s)(?<!prior\s)(?<!old\s)(?<!previous\s)(?<!remote\s)(?<!healed\s)"
                               r"(?<!of\s)(?<!for\s)infect(?:ion|ious|ive)"),
    (("atelectasis",), FINDING, r"at[ea]l[ea]?cta\w*|atelctasis"
                                # any collapse is the lung's unless a vertebra or a bone is named ("T12 compression
                                # collapse", "collapse of the L1 vertebral body")
                                r"|(?<!compression\s)(?<!vertebral\s)(?<!body\s)(?<!wedge\s)(?<!height\s)collapsed?"
                                r"(?!\s+(?:of\s+)?(?:the\s+)?(?:\w+\s+){0,3}?(?:vertebra\w*|bod(?:y|ies)|[tl]\d+|spine|spinal))"),
    (("emphysema",), FINDING, r"(?<!subcutaneous\s)emphysem\w*"),
    (_PARENCHYMA, NORMAL, r"(?:lungs?|lung\s+fields|lung\s+parenchyma)\s+(?:(?:are|is|appear|appears|remain|remains)\s+)?"
                          r"(?:(?:otherwise|now|grossly|well[\s-]expanded\s+and|hyper(?:expanded|inflated|aerated)\s+but|essentially)\s+)*clear"
                          r"|clear\s+lungs?"),
    # --- pleura
    (("pneumothorax",), FINDING, r"(?:hydro)?p(?:neu|nue)mo?th?(?:or|ro)a(?:x|ces)|pneumothora\w*|ptx"
                                 r"|pleural\s+air\b|(?:pleural|apical)\s+(?:\w+\s+)?air\s+collections?"
                                 r"|(?:effusions?|pleural\s+fluid)\s+with\s+(?:an?\s+)?air[\s-]fluid\s+levels?"),
    (("effusion",), FINDING, r"(?<!pericardial\s)(?<!joint\s)eff?us(?:ion|ions|oin)|effsuions?|pleural\s+(?:fluid|fusions?)"
                             r"|hydropneumothorax|fluid\s+in\s+the\s+(?:\w+\s+)?(?:pleural\s+space|fissure)"),
    (("effusion",), NORMAL, r"costophrenic\s+(?:angles?|sulc[iu]s?)\s+(?:are\s+|is\s+)?(?:sharp|clear|normal|preserved)"),
    (("effusion", "pneumothorax"), NORMAL, r"pleural\s+spaces?\s+(?:are\s+|is\s+)?(?:clear|normal|unremarkable)"),
    (("pleural_other",), FINDING, r"pleural\s+(?:thickening|plaques?|scar\w*|fibrosis|calcifications?|based\s+(?:opacit\w+|densit\w+))"
                                  r"|(?:pleural[\s-]+|pleuro-?)(?:parenchymal|peripheral|pericardial)\s+(?:scar\w*|thickening|changes?)|fibrothorax"
                                  r"|thickened\s+pleura|(?:apical\s+)?pleural\s+cap\w*|thickening\s+of\s+the\s+pleura"
                                  r"|(?:fissural|fissure)\s+thickening|thickened\s+(?:\w+\s+)?fissures?|thickening\s+of\s+the\s+(?:\w+\s+)?fissures?"
                                  r"|(?:scarring|thickening)\s+(?:(?:at|of|in)\s+)?(?:the\s+)?(?:\w+\s+)?costophrenic"
                                  # "thickening" set beside pleural fluid is pleural: "small effusion versus
                                  # thickening", "loculated pleural fluid or thickening", "thickening and/or effusion"
                                  r"|(?:effusions?|pleural\s+fluid)\s+(?:versus|vs\.?|or|and/or)\s+(?:\w+\s+){0,2}?(?P<head>thickening)"
                                  r"|thickening(?=\s+(?:versus|vs\.?|or|and/or)\s+(?:\w+\s+){0,2}?(?:effusions?|pleural\s+fluid))"),
    # --- bones and devices
    (("fracture",), FINDING, r"fractur\w*|fracure\w*|fratcure\w*|fx"),
    (("device",), FINDING, r"pace(?:maker|r)s?|(?:a)?icd|defibrillator|(?:neuro|nerve\s+|spinal\s+cord\s+)?stimulators?|cannulas?|cannulae"
                           r"|intra-?aortic\s+balloon(?:\s+pump)?|iabp|l?vad|ventricular\s+assist|midline(?=\s+(?:catheter|in\s+place|tip))|(?:picc|central(?:\s+venous)?|venous|arterial|ij"
                           r"|jugular|subclavian|dialysis|swan[\s-]ganz)\s+(?:catheters?|lines?)|catheters?|picc|port[\s-]?a[\s-]?cath"
                           r"|mediport|(?:power)?port|(?:endotracheal|et|nasogastric|ng|orogastric|og|chest|feeding|tracheostomy"
                           r"|enteric|dobhoff|gastrostomy)\s+tubes?|tracheostomy|(?:sternotomy|sternal)\s+(?:wires?|sutures?)|(?:surgical|vascular"
                           r"|cholecystectomy|metallic|axillary)?\s*clips?|staples|stents?|(?:mechanical|replacement)\s+(?:\w+\s+)?valves?"
                           r"|valve\s+(?:replacement|prosthesis)|hardware|(?:fixation\s+)?(?:plates?|screws?)|coils?|devices?"
                           r"|(?:pacer|pacemaker|epicardial)\s+(?:wires?|leads?)|wires?|drains?|loop\s+recorder|(?<!breast\s)prosthe(?:sis|ses|tic)|arthroplast\w*"
                           r"|leads|generators?|shunt(?:\s+tubing|\s+catheter)?|tips|(?:bone\s+)?anchors?|internal\s+fixation"
                           r"|fixation\s+(?:rods?|hardware)|rods|vertebroplasty|kyphoplasty"
                           # a redacted device is still recognisable by its tip ("right chest XXXX tip in the SVC")
                           r"|tip\s+(?:(?:is|are)\s+)?(?:project\w*|overl\w+|terminat\w+|in|at|within|visualized|located|extend\w*"
                           r"|positioned|near|lies|ending|overlying)"
                           r"|(?:suture|surgical)\s+material|sutures?|tubes?"
                           r"|apparatus|(?:monitoring|support|life\s+support)\s+(?:equipment|lines?|devices?)"),
    (("hernia",), FINDING, r"hernia\w*"),
    # --- the whole study
    (_ACUTE, NORMAL, r"no\s+(?:\w+\s+)?(?:acute|active)\s+(?:\w+\s+){0,2}(?:cardio\w*|pulmonary|lung|chest|intrathoracic|thoracic|disease"
                     r"|abnormalit\w*|process|findings?|pathology)"),
    (_ALL_PATHOLOGY, NORMAL, r"normal\s+(?:\w+\s+)?(?:chest|study|exam\w*|radiographs?)|negative\s+(?:chest|study|exam\w*)"),
)


@dataclass(frozen=True)
class Pattern:
    """One compiled lexicon entry."""

    concepts: tuple[str, ...]
    kind: str
    regex: re.Pattern[str]


PATTERNS: tuple[Pattern, ...] = tuple(
    Pattern(concepts, kind, re.compile(rf"\b(?:{body})\b")) for concepts, kind, body in _ENTRIES
)


# Where a density lies outside the lung: over a bone, the breast or soft tissues, in the mediastinum or a
# hiatal hernia (the same anatomy the IU codes exclude, preprocessing.iu_codes.NON_LUNG), or named as an
# extrapulmonary shadow ("nodular densities ... consistent with nipple shadows").
_OUTSIDE = (r"(?:ribs?|clavicles?|(?:thoracic\s+)?spine|vertebra\w*|sternum|breasts?|nipples?|glenoid|humer\w*|scapula\w*"
            r"|shoulders?|soft\s+tissues?|(?:anterior\s+|posterior\s+|superior\s+|lower\s+)?mediastinum|hiatal\s+hernia"
            r"|nipple\s+shadows?|bone\s+islands?|piercings?|(?:upper\s+)?abdomen|upper\s+quadrant|artifacts?)\b")
_OUTSIDE_AFTER = re.compile(
    # an adjective mention ("nodular") is placed by its noun's phrase ("nodular densities projecting over")
    r"\W*(?:(?:densit\w+|opacit\w+|lesions?|foci|focus)\s+)?(?:(?:measuring|seen|noted|is|are|on\s+the\s+\w+\s+view)\s+(?:[\w.]+\s+){0,3}?)?"
    r"(?:(?:projecting|projected|overlying|overlies|overlie|over|in|within|along|of|at|involving|superimposed)\s+"
    r"(?:(?:on|over|upon|through|to)\s+)?(?:the\s+)?(?:(?!lungs?\b)[\w-]+\s+){0,5}?"
    r"|(?:[\w-]+\s+){0,8}?(?:consistent\s+with|compatible\s+with|represent(?:s|ing)|due\s+to|reflects?|from)\s+(?:an?\s+|the\s+)?"
    r"(?:[\w-]+\s+){0,2}?)" + _OUTSIDE)
_OUTSIDE_BEFORE = re.compile(r"\b(?:bony|osseous|sclerotic|mediastinal|paratracheal|substernal|retrosternal|breast|nipple)"
                             r"\s+(?:[\w-]+\s+)?$")


# ... unless the text says it is in the lung ("pulmonary nodule partially overlying the 6th rib").
_IN_LUNG_BEFORE = re.compile(r"\b(?:pulmonary|lung|parenchymal)\s+(?:[\w-]+\s+)?$")


def outside_lung(low: str, start: int, end: int, clause_end: int) -> bool:
    """True when the mention ``low[start:end]`` (lower-cased text) is placed outside the lung by the
    words just before it or by its clause after it (up to ``clause_end``)."""
    before = max(0, start - 40)
    if _IN_LUNG_BEFORE.search(low, before, start):
        return False
    return bool(_OUTSIDE_BEFORE.search(low, before, start) or _OUTSIDE_AFTER.match(low, end, clause_end))


def observation_map(observations: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    """Concept name -> the observation names it feeds in ``observations`` (concepts feeding none are left out)."""
    wanted = set(observations)
    out = {name: tuple(t for t in c.targets if t in wanted) for name, c in CONCEPTS.items()}
    return {k: v for k, v in out.items() if v}


def default_levels(observation: str) -> tuple[str, ...]:
    """Levels a side-only location of ``observation`` covers (lower for an effusion, else all)."""
    for c in CONCEPTS.values():
        if observation in c.targets:
            return c.default_levels
    return ("upper", "middle", "lower")
