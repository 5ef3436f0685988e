"""Location phrases in report text and their mapping onto the zone vocabulary (patient frame).

A location is parsed into *sides* (right / left) and *levels* (upper / middle / lower) plus a few
named places (lingula, right middle lobe, retrocardiac, cardiac, mediastinum); :func:`resolve_zones`
turns that into names from :data:`preprocessing.vocab.ZONES`. The words and phrases are data,
``phrases/zones.yaml`` beside the lexicon; the grammar that strings them together is here. The IU code mapping
(`benchmarks/iu_codes.py`) uses the same resolver, so text and codes agree by construction.

| phrase | zones |
|---|---|
| right / left + upper, apex, apical | ``<side>_upper`` |
| right / left + middle, mid, perihilar, hilar | ``<side>_middle`` |
| right / left + lower, base, basilar, basal, costophrenic | ``<side>_lower`` |
| bilateral, both, bi- (bibasilar, biapical), or a level without a side | both sides |
| lingula, lingular | ``left_middle`` |
| middle lobe without a side | ``right_middle`` (only the right lung has one) |
| retrocardiac | ``left_lower`` + ``cardiac`` |
| a side without a level (``right pleural effusion``) | that side's lower zone for effusions, every level otherwise |
| cardiac, heart | ``cardiac`` |
| mediastinal, mediastinum, paratracheal | ``mediastinum`` |
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

from preprocessing.vocab import ZONES

LEVELS = ("upper", "middle", "lower")
ZONES_FILE = Path(__file__).with_name("phrases") / "zones.yaml"
_DATA = yaml.safe_load(ZONES_FILE.read_text(encoding="utf-8"))

_LEVEL_WORDS: dict[str, str] = {w: level for level, words in _DATA["levels"].items() for w in words}
_SIDE_WORDS: dict[str, str] = {w: side for side, words in _DATA["sides"].items() for w in words}
_BOTH_WORDS = frozenset(_DATA["both_sides"])
_PLACES: tuple[dict, ...] = tuple(_DATA["places"])
_WORD = re.compile(r"[a-z]+")

_LEVEL = "(?:" + "|".join(_DATA["level_phrases"]) + ")"
_SIDE = _DATA["side_phrases"]
_REGION = "(?:" + "|".join(_DATA["regions"]) + ")"
_PLACE = "|".join(_DATA["place_phrases"])
# A level phrase ("left lower lobe", "right upper and middle lobes", "lung bases bilaterally",
# "base of the left lung") or a bare side ("right", "left-sided", "bilaterally"). Longest first.
ZONE_PATTERN = re.compile(
    r"\b(?:"
    rf"(?:{_SIDE}(?:[\s-]+(?:and|&)[\s-]+{_SIDE})?(?:[\s-]+sided)?[\s-]+)?(?:(?:lung|hemithorax|mid)[\s-]+)?"
    rf"{_LEVEL}(?:(?:\s*(?:,|and|/|or|to|&)\s*|[\s-]+){_LEVEL})*"
    rf"(?:[\s-]+{_REGION})?"
    rf"(?:\s+(?:of\s+)?(?:the\s+)?{_SIDE}(?:\s+lungs?|\s+hemithorax)?|\s+bilaterally)?"
    rf"|{_SIDE}[\s-]+(?:lungs?|hemithorax|hemithoraces|sided)"
    r"|right|left|bilateral(?:ly)?"
    rf"|{_PLACE}"
    r")\b",
)


@dataclass(frozen=True)
class Location:
    """A parsed location: sides and levels (``None`` = not stated) plus named zones it adds."""

    sides: frozenset[str] | None
    levels: frozenset[str] | None
    extra: frozenset[str] = frozenset()


@lru_cache(maxsize=4096)
def parse_location(phrase: str) -> Location:
    """Parse a location phrase (from text, or an IU code path joined by spaces) into a Location."""
    words = _WORD.findall(phrase.lower())
    sides: set[str] = set()
    levels: set[str] = set()
    extra: set[str] = set()
    for w in words:
        if w in _SIDE_WORDS:
            sides.add(_SIDE_WORDS[w])
        elif w in _BOTH_WORDS or (w.startswith(_DATA["both_prefix"]) and w in _LEVEL_WORDS):
            sides.update(("right", "left"))
        if w in _LEVEL_WORDS:
            levels.add(_LEVEL_WORDS[w])
        place = next((p for p in _PLACES
                      if w in p.get("words", ()) or ("prefix" in p and w.startswith(p["prefix"]))), None)
        if place is not None:
            sides.update(place.get("sides", ()))
            extra.update(place.get("zones", ()))
    if "middle" in levels and not sides and ("lobe" in words or "lobes" in words):
        sides.add(_DATA["middle_lobe_side"])
    return Location(frozenset(sides) or None, frozenset(levels) or None, frozenset(extra))


def resolve_zones(locations: list[Location], default_levels: tuple[str, ...] = LEVELS) -> list[str]:
    """Zone names (in :data:`ZONES` order) covered by ``locations``.

    A level without a side covers both sides; a side without a level covers ``default_levels``
    (the lower zone for an effusion, every level otherwise). A location with neither adds only its
    named zones.
    """
    found: set[str] = set()
    for loc in locations:
        found |= loc.extra
        if loc.sides is None and loc.levels is None:
            continue
        for side in loc.sides or ("right", "left"):
            for level in loc.levels or default_levels:
                found.add(f"{side}_{level}")
    return [z for z in ZONES if z in found]
