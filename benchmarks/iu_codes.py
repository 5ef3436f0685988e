"""IU X-ray (Open-I) MeSH-based codes -> CheXpert observations and zones, and labeler agreement.

The Indiana University reports carry manual codes such as ``"Opacity/lung/base/left/mild"`` or
``"Cardiomegaly/borderline"``: a heading, then anatomy, side, level and qualifiers separated by
``/``. They mark *positive* (and hedged) findings only, so agreement treats a covered observation
whose codes are absent as negative. Reports coded ``"No Indexing"`` are not coded at all and are
left out. The table below is the whole mapping (documented in docs/labeler.md).

Zones of a code come from its side and level parts through the labeler's own resolver
(:func:`preprocessing.labeler.zones.resolve_zones`); codes without either have no zone truth.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass

from preprocessing.labeler.lexicon import default_levels
from preprocessing.labeler.zones import parse_location, resolve_zones
from preprocessing.vocab import CHEXPERT_OBSERVATIONS

# Anatomy parts that put an opacity / density / nodule / mass outside the lung.
NON_LUNG = frozenset({
    "ribs", "heart", "mediastinum", "thoracic vertebrae", "supracardiac", "breast", "clavicle", "sternum",
    "mitral valve", "pleura", "pleural sinus", "paratracheal", "spine", "shoulder", "humerus", "abdomen",
    "diaphragm", "aorta", "soft tissue", "trachea", "lumbar vertebrae", "cervical vertebrae", "bone and bones",
})


@dataclass(frozen=True)
class CodeRule:
    """Codes with this ``heading`` map to ``observations`` when they hold any part of ``requires``
    (if set) and no part of ``excludes``."""

    heading: str
    observations: tuple[str, ...]
    requires: frozenset[str] = frozenset()
    excludes: frozenset[str] = frozenset()


_DEVICE_HEADINGS = ("Catheters, Indwelling", "Implanted Medical Device", "Surgical Instruments", "Stents",
                    "Tube, Inserted", "Medical Device", "Sutures")

RULES: tuple[CodeRule, ...] = (
    CodeRule("Cardiomegaly", ("Cardiomegaly",)),
    CodeRule("Cardiac Shadow", ("Cardiomegaly",), frozenset({"enlarged", "borderline"})),
    CodeRule("Heart", ("Cardiomegaly",), frozenset({"enlarged"})),
    CodeRule("Mediastinum", ("Enlarged Cardiomediastinum",), frozenset({"prominent", "enlarged", "widened"})),
    CodeRule("Nodule", ("Lung Lesion",), excludes=NON_LUNG),
    CodeRule("Mass", ("Lung Lesion",), excludes=NON_LUNG),
    CodeRule("Lung Neoplasms", ("Lung Lesion",)),
    CodeRule("Cavitation", ("Lung Lesion",)),
    CodeRule("Opacity", ("Lung Opacity",), excludes=NON_LUNG),
    CodeRule("Density", ("Lung Opacity",), excludes=NON_LUNG),
    CodeRule("Infiltrate", ("Lung Opacity",)),
    CodeRule("Airspace Disease", ("Lung Opacity",)),
    CodeRule("Cicatrix", ("Lung Opacity",), excludes=NON_LUNG | {"costophrenic angle"}),
    CodeRule("Pulmonary Fibrosis", ("Lung Opacity",)),
    CodeRule("Lung Diseases, Interstitial", ("Lung Opacity",)),
    CodeRule("Markings", ("Lung Opacity",), frozenset({"interstitial", "reticular"})),
    # "Lung/interstitial/prominent" is the coders' other spelling of increased interstitial markings.
    CodeRule("Lung", ("Lung Opacity",), frozenset({"interstitial"})),
    CodeRule("Pulmonary Edema", ("Edema",)),
    CodeRule("Pulmonary Congestion", ("Edema",)),
    CodeRule("Heart Failure", ("Edema",)),
    CodeRule("Consolidation", ("Consolidation",)),
    CodeRule("Pneumonia", ("Pneumonia",)),
    CodeRule("Pulmonary Atelectasis", ("Atelectasis",)),
    CodeRule("Pneumothorax", ("Pneumothorax",)),
    CodeRule("Hydropneumothorax", ("Pneumothorax", "Pleural Effusion")),
    CodeRule("Pleural Effusion", ("Pleural Effusion",)),
    CodeRule("Thickening", ("Pleural Other",), frozenset({"pleura"})),
    CodeRule("Cicatrix", ("Pleural Other",), frozenset({"pleura", "costophrenic angle"})),
    CodeRule("Fractures, Bone", ("Fracture",)),
    *(CodeRule(h, ("Support Devices",)) for h in _DEVICE_HEADINGS),
)
_BY_HEADING: dict[str, list[CodeRule]] = defaultdict(list)
for _rule in RULES:
    _BY_HEADING[_rule.heading.lower()].append(_rule)

# Every CheXpert observation has codes (No Finding = none of the others but Support Devices coded).
COVERED_OBSERVATIONS: tuple[str, ...] = CHEXPERT_OBSERVATIONS
# Observations whose codes carry lung / pleural locations worth comparing with the labeler's zones.
ZONED_OBSERVATIONS: tuple[str, ...] = ("Lung Lesion", "Lung Opacity", "Edema", "Consolidation", "Pneumonia",
                                       "Atelectasis", "Pneumothorax", "Pleural Effusion", "Pleural Other")


def code_observations(code: str) -> list[tuple[str, list[str]]]:
    """``(observation, zones)`` pairs named by one code; zones empty when the code gives no location."""
    heading, *parts = [p.strip() for p in code.split("/")]
    lowered = [p.lower() for p in parts]
    out = []
    for rule in _BY_HEADING.get(heading.lower(), ()):
        if (rule.requires and not rule.requires & set(lowered)) or rule.excludes & set(lowered):
            continue
        loc = parse_location(" ".join(lowered))
        observations = rule.observations
        # A round lung opacity, whatever its heading (opacity, density, infiltrate, markings...), is a
        # nodule or mass by another name.
        if "Lung Opacity" in observations and "round" in lowered:
            observations = (*observations, "Lung Lesion")
        for obs in observations:
            zones = resolve_zones([loc], default_levels(obs)) if loc.sides or loc.levels else []
            out.append((obs, zones))
    return out


@dataclass
class CodedStudy:
    """Reference labels of one IU report: positive observations and their zones (where coded)."""

    positives: set[str]
    zones: dict[str, set[str]]


def study_truth(codes: list[str]) -> CodedStudy | None:
    """Reference labels from a report's ``mesh`` codes; ``None`` when the report is not indexed."""
    if any(c.strip().lower() == "no indexing" for c in codes):
        return None
    positives: set[str] = set()
    zones: dict[str, set[str]] = defaultdict(set)
    for code in codes:
        for obs, z in code_observations(code):
            positives.add(obs)
            zones[obs] |= set(z)
    if not positives - {"Support Devices"}:
        positives.add("No Finding")
    return CodedStudy(positives, dict(zones))


def split_of(uid: object) -> str:
    """``"tune"`` (7 of 10 SHA-1 buckets of the uid) or ``"heldout"`` (the other 3, ~30 %)."""
    return "tune" if int(hashlib.sha1(str(uid).encode()).hexdigest(), 16) % 10 < 7 else "heldout"


def _f1(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def evaluate_agreement(rows: list[dict], fields: tuple[str, ...] = ("findings", "impression"),
                       strict: bool = True, convention: str = "chexpert") -> dict:
    """Per-observation precision / recall / F1 and zone agreement of the labeler against the codes.

    ``rows`` are IU report records (with ``mesh``). Only a labeler value of 1 counts as positive
    (the coders mostly leave hedged findings uncoded); ``strict=False`` counts -1 as positive too. Reports without text or
    not indexed are skipped. Zones are compared for :data:`ZONED_OBSERVATIONS` on true positives
    whose codes give a location: ``zone_exact`` (same zone set) and ``zone_jaccard`` (mean overlap).
    Returns ``{"reports", "observations": {name: {...}}, "macro_f1", "zone_exact", "zone_jaccard",
    "zone_pairs", "errors": [(uid, observation, "fp"|"fn")...]}``.
    """
    from preprocessing.report_labeler import join_fields, label_report

    counts = {o: [0, 0, 0] for o in COVERED_OBSERVATIONS}
    errors = []
    zone_exact, zone_jaccard = [], []
    n = 0
    for row in rows:
        truth = study_truth(row.get("mesh") or [])
        text = join_fields(row, fields)
        if truth is None or not text:
            continue
        n += 1
        labels = label_report(text, convention=convention)
        for obs in COVERED_OBSERVATIONS:
            value = labels.values.get(obs)
            predicted = value == 1 if strict else value in (1, -1)
            actual = obs in truth.positives
            counts[obs][0] += predicted and actual
            counts[obs][1] += predicted and not actual
            counts[obs][2] += actual and not predicted
            if predicted != actual:
                errors.append((row.get("uid"), obs, "fp" if predicted else "fn"))
            if predicted and actual and obs in ZONED_OBSERVATIONS and truth.zones.get(obs):
                want, got = truth.zones[obs], set(labels.zones[obs]) - {"cardiac", "mediastinum"}
                want = want - {"cardiac", "mediastinum"}
                zone_exact.append(want == got)
                zone_jaccard.append(len(want & got) / len(want | got))
    table = {}
    for obs, (tp, fp, fn) in counts.items():
        p, r, f = _f1(tp, fp, fn)
        table[obs] = {"precision": p, "recall": r, "f1": f, "support": tp + fn, "tp": tp, "fp": fp, "fn": fn}
    return {
        "reports": n,
        "observations": table,
        "macro_f1": sum(t["f1"] for t in table.values()) / len(table),
        "zone_exact": sum(zone_exact) / len(zone_exact) if zone_exact else 0.0,
        "zone_jaccard": sum(zone_jaccard) / len(zone_jaccard) if zone_jaccard else 0.0,
        "zone_pairs": len(zone_exact),
        "errors": errors,
    }
