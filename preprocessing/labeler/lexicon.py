"""Mention lexicon: concepts, their patterns, the labelling conventions, loaded from data.

The phrases live in ``phrases/lexicon.yaml`` next to this module (packaged with the wheel); this module
compiles them once at import. Kinds of pattern:

- ``finding``: a finding named in the text ("left basilar atelectasis", "the heart is enlarged");
  its value (1 / 0 / -1) comes from the negation and uncertainty context.
- ``normal``: a statement of normality ("heart size is normal", "lungs are clear", "no acute
  cardiopulmonary abnormality") that implies a negative (0) for the concepts it lists, as CheXpert
  labels "heart size is normal" Cardiomegaly 0. A negated or hedged normal statement counts for nothing.
- ``normal_list``: several structures stated normal at once ("heart size, mediastinal contour and
  pulmonary vascularity are within normal limits"); each structure named gives its negatives.

A :class:`Convention` ("chexpert", the default, or "iu") chooses which entries apply and how the
context reads ("X versus Y", "X or Y"); docs/labeler.md states both.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

FINDING, NORMAL, NORMAL_LIST = "finding", "normal", "normal_list"
LEXICON_FILE = Path(__file__).with_name("phrases") / "lexicon.yaml"
_MACRO = re.compile(r"\$\{(\w+)\}")


@dataclass(frozen=True)
class Concept:
    """One thing the text can state; ``targets`` maps a vocabulary's observation names it feeds.

    ``zoned`` is False for things whose side words name no lung zone ("right PICC" is a device
    inserted on the right, not a finding in the right lung): they get no zones and take no location
    phrase from a neighbouring finding. ``in_lung`` is True for findings that are lung findings only
    where they lie in the lung (a density "projecting over the posterior 9th rib" is not one).
    ``hedged_by_alternatives`` is False where "X or Y" names the thing either way ("pacemaker/ICD").
    """

    name: str
    targets: tuple[str, ...]
    default_levels: tuple[str, ...] = ("upper", "middle", "lower")
    default_zones: tuple[str, ...] = ()
    zoned: bool = True
    in_lung: bool = False
    hedged_by_alternatives: bool = True


@dataclass(frozen=True)
class Convention:
    """How a labelling convention reads report text.

    ``versus``: "both" (each side of "X versus Y" as stated) or "uncertain" (both -1).
    ``alternatives``: "X or Y" / "X/Y" hedge both sides. ``targets``: concept -> observations,
    overriding :attr:`Concept.targets`. ``suggests_only``: concepts whose positive mentions name a cause
    that suggests the observation without naming it ("likely infectious etiology"): they count as -1.
    """

    name: str
    versus: str
    alternatives: bool
    targets: dict[str, tuple[str, ...]] = field(default_factory=dict)
    suggests_only: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Pattern:
    """One compiled lexicon entry; ``conventions`` None applies to every convention."""

    concepts: tuple[str, ...]
    kind: str
    regex: re.Pattern[str]
    conventions: frozenset[str] | None = None


def _load(path: Path) -> dict:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    macros: dict[str, str] = {}
    for name, body in data["macros"].items():
        macros[name] = _MACRO.sub(lambda m: macros[m.group(1)], body)
    data["macros"] = macros
    return data


def _expand(body: str, macros: dict[str, str]) -> str:
    return _MACRO.sub(lambda m: macros[m.group(1)], body)


def _concepts_of(spec: str | list[str], groups: dict[str, list[str]]) -> tuple[str, ...]:
    return tuple(groups[spec]) if isinstance(spec, str) else tuple(spec)


def _compile(entry: dict, macros: dict[str, str], groups: dict[str, list[str]], kind: str | None = None) -> Pattern:
    body = "|".join(_expand(alt, macros) for alt in entry["any"])
    conventions = entry.get("conventions")
    return Pattern(_concepts_of(entry.get("concepts", []), groups), kind or entry["kind"],
                   re.compile(rf"\b(?:{body})\b"), frozenset(conventions) if conventions else None)


_DATA = _load(LEXICON_FILE)
_GROUPS: dict[str, list[str]] = _DATA["groups"]

CONCEPTS: dict[str, Concept] = {
    c["name"]: Concept(c["name"], tuple(c["targets"]), tuple(c.get("default_levels", ("upper", "middle", "lower"))),
                       tuple(c.get("default_zones", ())), c.get("zoned", True), c.get("in_lung", False),
                       c.get("hedged_by_alternatives", True))
    for c in _DATA["concepts"]
}
CONVENTIONS: dict[str, Convention] = {
    name: Convention(name, c["versus"], c["alternatives"], {k: tuple(v) for k, v in c["targets"].items()},
                     frozenset(c["suggests_only"]))
    for name, c in _DATA["conventions"].items()
}
DEFAULT_CONVENTION = "chexpert"
PATTERNS: tuple[Pattern, ...] = tuple(_compile(e, _DATA["macros"], _GROUPS) for e in _DATA["patterns"])
UNMENTIONS: tuple[Pattern, ...] = tuple(_compile(e, _DATA["macros"], _GROUPS, "unmention") for e in _DATA["unmention"])
# (structure words, concepts a normal_list statement rules out when it names them)
LIST_STRUCTURES: tuple[tuple[re.Pattern[str], tuple[str, ...]], ...] = tuple(
    (re.compile(rf"\b(?:{s['words']})\b"), _concepts_of(s["concepts"], _GROUPS)) for s in _DATA["list_structures"]
)


def convention(name: str) -> Convention:
    """The named :class:`Convention`; ValueError names the known ones."""
    if name not in CONVENTIONS:
        raise ValueError(f"unknown convention {name!r}; expected one of {', '.join(CONVENTIONS)}")
    return CONVENTIONS[name]


def applies(pattern: Pattern, conv: Convention) -> bool:
    """Whether ``pattern`` is part of convention ``conv``."""
    return pattern.conventions is None or conv.name in pattern.conventions


# Where a density lies outside the lung (the anatomy words are data: ``outside`` in the lexicon file).
_OUTSIDE = _DATA["outside"]
_OUTSIDE_AFTER = re.compile(
    # an adjective mention ("nodular") is placed by its noun's phrase ("nodular densities projecting over")
    r"\W*(?:(?:densit\w+|opacit\w+|lesions?|foci|focus)\s+)?(?:(?:measuring|seen|noted|is|are|on\s+the\s+\w+\s+view)\s+(?:[\w.]+\s+){0,3}?)?"
    r"(?:(?:projecting|projected|overlying|overlies|overlie|over|in|within|along|of|at|involving|superimposed)\s+"
    r"(?:(?:on|over|upon|through|to)\s+)?(?:the\s+)?(?:(?!lungs?\b)[\w-]+\s+){0,5}?"
    r"|(?:[\w-]+\s+){0,8}?(?:consistent\s+with|compatible\s+with|suggestive\s+of|represent(?:s|ing)?|due\s+to|reflects?|from)"
    r"\s+(?:an?\s+|the\s+)?(?:[\w-]+\s+){0,2}?)" + _OUTSIDE)
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


def observation_map(observations: tuple[str, ...], conv: Convention | None = None) -> dict[str, tuple[str, ...]]:
    """Concept name -> the observation names it feeds in ``observations`` under ``conv`` (concepts
    feeding none are left out)."""
    wanted = set(observations)
    overrides = conv.targets if conv is not None else {}
    out = {name: tuple(t for t in overrides.get(name, c.targets) if t in wanted) for name, c in CONCEPTS.items()}
    return {k: v for k, v in out.items() if v}


def default_levels(observation: str) -> tuple[str, ...]:
    """Levels a side-only location of ``observation`` covers (lower for an effusion, else all)."""
    for c in CONCEPTS.values():
        if observation in c.targets:
            return c.default_levels
    return ("upper", "middle", "lower")
