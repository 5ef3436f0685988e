"""Rule-based radiology report labeler: observations with negation, uncertainty, zones and evidence.

In the tradition of the CheXpert / NegBio labelers, without their parsers: a regex lexicon finds
mentions (:mod:`preprocessing.labeler.lexicon`), NegEx-style triggers inside the mention's clause
decide positive / negative / uncertain (:mod:`preprocessing.labeler.context`), location phrases in
the sentence give zones (:mod:`preprocessing.labeler.zones`), and CheXpert's rules aggregate:

- per observation, any positive mention gives 1, else any uncertain gives -1, else any negative
  (or a normal statement such as "heart size is normal") gives 0, else ``None`` (not mentioned);
- ``No Finding`` is 0 when any other observation except ``Support Devices`` is 1 or -1, else 1
  (``None`` for empty text).

Zones (:data:`preprocessing.vocab.ZONES`) are given for positive and uncertain mentions only: each
location phrase of a sentence goes to the nearest positive/uncertain mention, and a mention that
gets none inherits all of its sentence's locations. Devices get no zones and take no phrases ("right
PICC" names where the line goes in, not a lung zone).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Iterator

from preprocessing.codes import observation_code
from preprocessing.errors import MmdxError
from preprocessing.labeler.context import NEGATIVE, POSITIVE, UNCERTAIN, Sentences
from preprocessing.labeler.lexicon import (
    CONCEPTS, DEFAULT_CONVENTION, LIST_STRUCTURES, NORMAL, NORMAL_LIST, PATTERNS, UNMENTIONS, Convention, Pattern,
    applies, observation_map, outside_lung,
)
from preprocessing.labeler.lexicon import convention as convention_of
from preprocessing.labeler.zones import ZONE_PATTERN, parse_location, resolve_zones
from preprocessing.vocab import ZONES, resolve_observations

NO_FINDING = "No Finding"
SUPPORT_DEVICES = "Support Devices"
ID_FIELDS = ("id", "uid", "study_id")


@dataclass(frozen=True)
class Mention:
    """Evidence for one value: ``text[start:end]`` of the labelled text, its value and sentence index."""

    start: int
    end: int
    text: str
    value: int
    sentence: int


@dataclass
class ReportLabels:
    """Labels of one report.

    ``values``: observation -> 1 / 0 / -1 / None; ``zones``: observation -> zone names (empty when
    not positive/uncertain or no location is stated); ``evidence``: observation -> mentions.
    """

    values: dict[str, int | None]
    zones: dict[str, list[str]]
    evidence: dict[str, list[Mention]] = field(default_factory=dict)

    def to_dict(self) -> dict:
        """JSON-ready dict with ``values``, ``zones``, ``evidence`` (mentions as dicts) and ``codes``
        (observation -> ``SCHEME:VALUE`` of :mod:`preprocessing.codes`, for the observations stated)."""
        return {
            "values": dict(self.values),
            "codes": stated_codes(self.values),
            "zones": {k: list(v) for k, v in self.zones.items()},
            "evidence": {k: [asdict(m) for m in v] for k, v in self.evidence.items()},
        }


def stated_codes(values: dict[str, int | None]) -> dict[str, str]:
    """Observation -> ``SCHEME:VALUE`` (:mod:`preprocessing.codes`) of the observations with a value."""
    return {k: str(observation_code(k)) for k, v in values.items() if v is not None}


@dataclass
class _Hit:
    concept: str
    start: int
    end: int
    value: int
    sentence: int
    locations: list = field(default_factory=list)


@dataclass(frozen=True)
class _Setup:
    concepts: dict[str, tuple[str, ...]]
    patterns: tuple[Pattern, ...]
    unmentions: tuple[Pattern, ...]
    convention: Convention


@lru_cache(maxsize=32)
def _setup(observations: tuple[str, ...], convention_name: str) -> _Setup:
    conv = convention_of(convention_name)
    return _Setup(observation_map(observations, conv), tuple(p for p in PATTERNS if applies(p, conv)),
                  tuple(p for p in UNMENTIONS if applies(p, conv)), conv)


def _list_concepts(low: str, start: int, end: int) -> tuple[str, ...]:
    """Concepts ruled out by the structures a ``normal_list`` statement ``low[start:end]`` names."""
    return tuple(dict.fromkeys(c for words, concepts in LIST_STRUCTURES if words.search(low, start, end) for c in concepts))


def _find_hits(sents: Sentences, setup: _Setup) -> list[_Hit]:
    hits = []
    concepts = setup.concepts
    unmentioned = [(p.concepts, m.span()) for p in setup.unmentions for m in p.regex.finditer(sents.low)]
    for pattern in setup.patterns:
        listed = pattern.kind == NORMAL_LIST
        if not listed and not any(c in concepts for c in pattern.concepts):
            continue
        named_head = "head" in pattern.regex.groupindex
        for m in pattern.regex.finditer(sents.low):
            start, end = m.span()
            if not sents.is_current(start):
                continue
            wanted = [c for c in (_list_concepts(sents.low, start, end) if listed else pattern.concepts) if c in concepts]
            wanted = [c for c in wanted if not any(c in names and s <= start and end <= e for names, (s, e) in unmentioned)]
            if not wanted:
                continue
            in_lung = any(CONCEPTS[c].in_lung for c in wanted)
            if in_lung and outside_lung(sents.low, start, end, sents.clause_span(start, end)[1]):
                continue
            # The mention's head: a named group where the pattern gives one, else its last word.
            head = m.start("head") if named_head and m.start("head") >= 0 else sents.low.rfind(" ", start, end) + 1
            if pattern.kind in (NORMAL, NORMAL_LIST):
                # The pattern may hold its own "no" ("no acute disease"); only context before it counts,
                # and only since the last "and" or comma: "no effusion and heart size is normal" is
                # two statements, while "not normal" / "possibly normal" still qualify the statement.
                clause_left = sents.clause_span(start, end)[0]
                since = max(sents.low.rfind(" and ", clause_left, start), sents.low.rfind(",", clause_left, start)) + 1
                if sents.classify(start, end, start, since) != POSITIVE:
                    continue
                value = NEGATIVE
            else:
                value = sents.classify(start, end, max(head, start),
                                       alternatives=all(CONCEPTS[c].hedged_by_alternatives for c in wanted))
                if value == POSITIVE and any(c in setup.convention.suggests_only for c in wanted):
                    value = UNCERTAIN
            sentence = sents.index(start)
            hits.extend(_Hit(c, start, end, value, sentence) for c in wanted)
    return hits


def _assign_locations(sents: Sentences, hits: list[_Hit]) -> None:
    """Give each location phrase to the nearest positive/uncertain hit of its sentence; a phrase whose
    nearest hit is a device (a concept without zones) is dropped."""
    active = [h for h in hits if h.value != NEGATIVE]
    if not any(CONCEPTS[h.concept].zoned for h in active):
        return
    by_sentence: dict[int, list[_Hit]] = {}
    for h in active:
        by_sentence.setdefault(h.sentence, []).append(h)
    sentence_locations: dict[int, list] = {}
    for m in ZONE_PATTERN.finditer(sents.low):
        i = sents.index(m.start())
        candidates = by_sentence.get(i)
        if not candidates:
            continue
        # Spans inside a mention ("retrocardiac opacity" is one phrase) count as distance 0.
        nearest = min(candidates, key=lambda h: max(h.start - m.end(), m.start() - h.end, 0))
        if not CONCEPTS[nearest.concept].zoned:
            continue  # "right PICC": the side belongs to the device, not to a finding further on
        loc = parse_location(m.group(0))
        sentence_locations.setdefault(i, []).append(loc)
        for h in candidates:
            if (h.start, h.end) == (nearest.start, nearest.end):
                h.locations.append(loc)
    for i, group in by_sentence.items():
        for h in group:
            if not h.locations:
                h.locations = sentence_locations.get(i, [])


def label_report(text: str | None, observations: str | list[str] | tuple[str, ...] = "chexpert",
                 convention: str = DEFAULT_CONVENTION) -> ReportLabels:
    """Label one report's text.

    ``observations`` names a list of :data:`preprocessing.vocab.OBSERVATION_SETS` ("chexpert",
    "nih", "phantom", ...) or gives the names. ``convention``: "chexpert" (CheXpert's reading: "X
    versus Y" and "X or Y" uncertain, its phrase lists) or "iu" (the IU coders'); see
    docs/labeler.md. Returns a :class:`ReportLabels` whose evidence offsets index ``text``.
    """
    names = resolve_observations(observations)
    setup = _setup(names, convention)
    concepts = setup.concepts
    text = text or ""
    sents = Sentences(text, versus=setup.convention.versus, alternatives=setup.convention.alternatives)
    hits = _find_hits(sents, setup)
    _assign_locations(sents, hits)

    values: dict[str, int | None] = {n: None for n in names}
    zone_sets: dict[str, set[str]] = {n: set() for n in names}
    evidence: dict[str, list[Mention]] = {}
    rank = {POSITIVE: 2, UNCERTAIN: 1, NEGATIVE: 0}
    for h in sorted(hits, key=lambda h: h.start):
        for obs in concepts[h.concept]:
            old = values[obs]
            if old is None or rank[h.value] > rank[old]:
                values[obs] = h.value
            evidence.setdefault(obs, []).append(Mention(h.start, h.end, text[h.start:h.end], h.value, h.sentence))
            concept = CONCEPTS[h.concept]
            if h.value != NEGATIVE and concept.zoned:
                zone_sets[obs] |= set(concept.default_zones) | set(resolve_zones(h.locations, concept.default_levels))
    zones = {obs: [z for z in ZONES if z in found] for obs, found in zone_sets.items()}
    if NO_FINDING in values:
        findings = [v for k, v in values.items() if k not in (NO_FINDING, SUPPORT_DEVICES)]
        values[NO_FINDING] = None if not text.strip() else int(not any(v in (POSITIVE, UNCERTAIN) for v in findings))
    return ReportLabels(values, zones, evidence)


def join_fields(record: dict, fields: list[str] | tuple[str, ...]) -> str:
    """The text to label from a JSON record: the non-empty string ``fields`` in order, one blank line
    between them (so each starts a sentence). Evidence offsets index this joined text."""
    parts = [record[f].strip() for f in fields if isinstance(record.get(f), str) and record[f].strip()]
    return "\n\n".join(parts)


def _record_id(record: dict, id_field: str | None):
    if id_field is not None:
        return record.get(id_field)
    return next((record[k] for k in ID_FIELDS if k in record), None)


def read_reports(input_path: str | Path, fields: list[str] | tuple[str, ...],
                 id_field: str | None = None) -> Iterator[dict]:
    """The reports of a JSONL file, one dict per line: ``id`` (the input's ``id_field``, else the first
    of id / uid / study_id present), ``line`` (1-based) and ``text`` (the joined ``fields``, see
    :func:`join_fields`); a line that is not a JSON object gives ``{"id": None, "line": n, "error":
    "..."}`` instead. Raises :class:`MmdxError` when the file does not exist."""
    input_path = Path(input_path)
    if not input_path.is_file():
        raise MmdxError(f"{input_path}: input file not found")
    with input_path.open(encoding="utf-8", errors="replace") as src:
        for n, line in enumerate(src, start=1):
            try:
                record = json.loads(line)
                if not isinstance(record, dict):
                    raise ValueError(f"expected a JSON object, got {type(record).__name__}")
            except ValueError as err:
                yield {"id": None, "line": n, "error": f"{input_path}:{n}: invalid JSON line: {err}"}
            else:
                yield {"id": _record_id(record, id_field), "line": n, "text": join_fields(record, fields)}
