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

from preprocessing.codes import observation_code
from preprocessing.errors import MmdxError
from preprocessing.labeler.context import NEGATIVE, POSITIVE, UNCERTAIN, VERSUS_READINGS, Sentences
from preprocessing.labeler.lexicon import CONCEPTS, NORMAL, PATTERNS, observation_map, outside_lung
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
            "codes": {k: str(observation_code(k)) for k, v in self.values.items() if v is not None},
            "zones": {k: list(v) for k, v in self.zones.items()},
            "evidence": {k: [asdict(m) for m in v] for k, v in self.evidence.items()},
        }


@dataclass
class _Hit:
    concept: str
    start: int
    end: int
    value: int
    sentence: int
    locations: list = field(default_factory=list)


@lru_cache(maxsize=32)
def _setup(observations: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    return observation_map(observations)


def _find_hits(sents: Sentences, concepts: dict[str, tuple[str, ...]]) -> list[_Hit]:
    hits = []
    for pattern in PATTERNS:
        wanted = [c for c in pattern.concepts if c in concepts]
        if not wanted:
            continue
        in_lung = any(CONCEPTS[c].in_lung for c in wanted)
        named_head = "head" in pattern.regex.groupindex
        for m in pattern.regex.finditer(sents.low):
            start, end = m.span()
            if not sents.is_current(start):
                continue
            if in_lung and outside_lung(sents.low, start, end, sents.clause_span(start, end)[1]):
                continue
            # The mention's head: a named group where the pattern gives one, else its last word.
            head = m.start("head") if named_head and m.start("head") >= 0 else sents.low.rfind(" ", start, end) + 1
            if pattern.kind == NORMAL:
                # The pattern may hold its own "no" ("no acute disease"); only context before it counts,
                # and only since the last "and" or comma: "no effusion and heart size is normal" is
                # two statements, while "not normal" / "possibly normal" still qualify the statement.
                clause_left = sents.clause_span(start, end)[0]
                since = max(sents.low.rfind(" and ", clause_left, start), sents.low.rfind(",", clause_left, start)) + 1
                if sents.classify(start, end, start, since) != POSITIVE:
                    continue
                value = NEGATIVE
            else:
                value = sents.classify(start, end, max(head, start))
                if value == POSITIVE and any(CONCEPTS[c].suggests_only for c in wanted):
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
                 versus: str = "both") -> ReportLabels:
    """Label one report's text.

    ``observations`` names a list of :data:`preprocessing.vocab.OBSERVATION_SETS` ("chexpert",
    "nih", "phantom", ...) or gives the names. ``versus``: "both" reads each side of "X versus Y"
    as stated (the IU coders code both), "uncertain" makes both -1 (CheXpert). Returns a
    :class:`ReportLabels` whose evidence offsets index ``text``.
    """
    names = resolve_observations(observations)
    concepts = _setup(names)
    text = text or ""
    sents = Sentences(text, versus=versus)
    hits = _find_hits(sents, concepts)
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


def label_jsonl(input_path: str | Path, out_path: str | Path, fields: list[str] | tuple[str, ...],
                id_field: str | None = None, observations: str | list[str] | tuple[str, ...] = "chexpert",
                versus: str = "both") -> int:
    """Label every line of a JSONL file; write one JSON line per input line; return the line count.

    Each output line holds ``id`` (the input's ``id_field``, else the first of id / uid / study_id
    present), ``line`` (1-based), ``text`` (the joined ``fields``, see :func:`join_fields`) and
    :meth:`ReportLabels.to_dict`. A line that is not a JSON object gives ``{"id": null, "line": n,
    "error": "..."}`` instead, and labelling goes on. ``versus``: see :func:`label_report`. Raises
    :class:`MmdxError` when the input cannot be read or the observation list is unknown.
    """
    input_path, out_path = Path(input_path), Path(out_path)
    try:
        resolve_observations(observations)
    except ValueError as err:
        raise MmdxError(f"--observations: {err}") from err
    if versus not in VERSUS_READINGS:
        raise MmdxError(f"--versus: expected one of {', '.join(VERSUS_READINGS)}, got {versus!r}")
    if not input_path.is_file():
        raise MmdxError(f"{input_path}: input file not found")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with input_path.open(encoding="utf-8", errors="replace") as src, out_path.open("w", encoding="utf-8") as dst:
        for n, line in enumerate(src, start=1):
            try:
                record = json.loads(line)
                if not isinstance(record, dict):
                    raise ValueError(f"expected a JSON object, got {type(record).__name__}")
            except ValueError as err:
                row = {"id": None, "line": n, "error": f"{input_path}:{n}: invalid JSON line: {err}"}
            else:
                text = join_fields(record, fields)
                row = {"id": _record_id(record, id_field), "line": n, "text": text,
                       **label_report(text, observations, versus).to_dict()}
            dst.write(json.dumps(row) + "\n")
    return n
