"""Sentences, clauses and NegEx-style negation / uncertainty for report text.

A mention's value is decided inside its *clause*: the part of its sentence between terminators
("but", "however", "which", "except", "; ", ...). Triggers before the mention (``no``, ``without``,
``possible``...) or after it (``is not seen``, ``cannot be excluded``...) in that clause set the
value; a post-trigger beats pre-triggers, and a negation beats an uncertainty. Pseudo-triggers such as
``no change`` or ``not only`` are removed first so that they negate nothing. A hedge's clause is
wider than a negation's: it crosses "with" ("may represent atelectasis with superimposed pneumonia").
"history of X" is negative (as in CheXpert); mentions in a hypothetical sentence ("If there is concern
for fracture, ...") or in another body part's section of the report ("Left knee: ...") are not about
this chest study (:meth:`Sentences.is_current`).
"""

from __future__ import annotations

import bisect
import re
from pathlib import Path

import yaml

POSITIVE, NEGATIVE, UNCERTAIN = 1, 0, -1

# Patterns are written in lower case and matched on an ASCII-lowered copy of the text (same length,
# so offsets carry over): case-sensitive matching is markedly faster than re.IGNORECASE.
_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")

# A sentence ends at . ! ? (not inside a number like "1.5", not after "vs") or a blank line;
# "apex.There" also splits.
_SENTENCE_END = re.compile(r"(?<!\d)(?<!\b[vV][sS])[.!?]+(?=\s|$|[A-Z])|(?<!\b[vV][sS])[.!?]+(?=\s)|\n\s*\n")

TRIGGERS_FILE = Path(__file__).with_name("phrases") / "context.yaml"
VERSUS_READINGS = ("both", "uncertain")


def _load_triggers(path: Path) -> dict[str, re.Pattern[str]]:
    """The trigger regexes of ``path``, compiled, by role (see the file's header)."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    macros = data["macros"]
    out = {}
    for role, entry in data["triggers"].items():
        body = "|".join(re.sub(r"\$\{(\w+)\}", lambda m: macros[m.group(1)], alt) for alt in entry["any"])
        flags = 0
        for flag in entry.get("flags", ()):
            flags |= getattr(re, flag)
        out[role] = re.compile(rf"\b(?:{body})\b" if entry.get("words") else body, flags)
    return out


_T = _load_triggers(TRIGGERS_FILE)
_TERMINATOR, _WITH, _PSEUDO = _T["terminator"], _T["with"], _T["pseudo"]
_PRE_NEG, _PRE_UNC, _POST_NEG, _POST_UNC = _T["pre_neg"], _T["pre_unc"], _T["post_neg"], _T["post_unc"]
_INTERPRETATION, _HISTORY = _T["interpretation"], _T["history"]
_VERSUS_PRE, _VERSUS_POST = _T["versus_pre"], _T["versus_post"]
_ALTERNATIVE_PRE, _ALTERNATIVE_POST = _T["alternative_pre"], _T["alternative_post"]
_HYPOTHETICAL, _SECTION = _T["hypothetical"], _T["section"]


class Sentences:
    """Sentence and clause boundaries of one text (character offsets); ``low`` is the text ASCII-lowered.

    ``versus``: how "X versus Y" reads: "both" (each side as stated, as the IU coders code it) or
    "uncertain" (both sides -1, as CheXpert reads it). ``alternatives``: "X or Y" and "X/Y" hedge both
    sides (CheXpert) or read as stated (IU coders).
    """

    def __init__(self, text: str, versus: str = "both", alternatives: bool = False):
        if versus not in VERSUS_READINGS:
            raise ValueError(f"versus: expected one of {VERSUS_READINGS}, got {versus!r}")
        self.versus_hedges = versus == "uncertain"
        self.alternatives = alternatives
        self.low = text.translate(_LOWER)
        ends = [m.end() for m in _SENTENCE_END.finditer(text)]  # the original: "apex.There" needs case
        self.starts = [0] + [e for e in ends if e < len(text)]
        hard = [m.start() for m in _TERMINATOR.finditer(self.low)] + ends
        withs = [(m.start(), m.group(1) is not None) for m in _WITH.finditer(self.low)]
        self.cuts = sorted(set(hard + [s for s, _ in withs]))
        self.hedge_cuts = sorted(set(hard + [s for s, graded in withs if graded]))
        self._pseudo = [m.span() for m in _PSEUDO.finditer(self.low)]
        self._hypothetical = {i for i, pos in enumerate(self.starts) if _HYPOTHETICAL.match(self.low, pos)}
        sections = [m for m in (_SECTION.match(text, pos) for pos in self.starts) if m]
        self._section_starts = [m.start(1) for m in sections]
        self._section_is_chest = [m.group(1).lower() == "chest" for m in sections]

    def index(self, pos: int) -> int:
        """Index of the sentence holding character ``pos``."""
        return bisect.bisect_right(self.starts, pos) - 1

    def sentence_span(self, i: int) -> tuple[int, int]:
        """``(start, end)`` of sentence ``i``."""
        end = self.starts[i + 1] if i + 1 < len(self.starts) else len(self.low)
        return self.starts[i], end

    def clause_span(self, start: int, end: int, hedge: bool = False) -> tuple[int, int]:
        """The clause around the span ``[start, end)``: between the nearest cuts either side.

        ``hedge=True`` gives the (sometimes wider) scope of an uncertainty trigger, which crosses "with".
        """
        cuts = self.hedge_cuts if hedge else self.cuts
        i = bisect.bisect_right(cuts, start)
        left = cuts[i - 1] if i > 0 else 0
        j = bisect.bisect_left(cuts, end)
        right = cuts[j] if j < len(cuts) else len(self.low)
        return left, right

    def is_current(self, start: int) -> bool:
        """False when the mention starting at ``start`` is not about this chest study: in a hypothetical
        sentence ("If there is concern for fracture, consider rib views") or in the section of another
        body part ("Left shoulder: ... comminuted clavicle fracture")."""
        if self.index(start) in self._hypothetical:
            return False
        section = bisect.bisect_right(self._section_starts, start) - 1
        return section < 0 or self._section_is_chest[section]

    def _is_pseudo(self, start: int, end: int) -> bool:
        return any(s <= start and end <= e for s, e in self._pseudo)

    def classify(self, start: int, end: int, head_start: int, left_limit: int = 0, alternatives: bool = True) -> int:
        """Value of the mention ``[start, end)``: POSITIVE, NEGATIVE or UNCERTAIN.

        ``head_start`` is where the mention's last word begins, so that a trigger inside a longer
        mention ("heart is *not* enlarged") counts as preceding it. Pre-triggers before ``left_limit``
        do not count. ``alternatives=False`` keeps "X or Y" from hedging this mention.
        """
        left, right = self.clause_span(start, end)
        left = max(left, left_limit)
        # A condition of the past is no current finding; CheXpert reads "history of X" as negative.
        if _HISTORY.search(self.low, left, head_start):
            return NEGATIVE
        hedge_left, hedge_right = self.clause_span(start, end, hedge=True)
        hedge_left = max(hedge_left, left_limit)
        link = _INTERPRETATION.search(self.low, end, hedge_right)
        after = self.low[end:link.start() if link else hedge_right]
        if _POST_UNC.search(after):
            return UNCERTAIN
        if _POST_NEG.search(self.low[end:link.start() if link and link.start() < right else right]):
            return NEGATIVE
        # Negation beats uncertainty in a clause ("no opacity to suggest pneumonia"), but "cannot
        # exclude" holds a negation word and is uncertain: negations inside it do not count.
        hedges = [_PRE_UNC, _VERSUS_PRE] if self.versus_hedges else [_PRE_UNC]
        uncertain = [m.span() for pattern in hedges for m in pattern.finditer(self.low, hedge_left, head_start)
                     if m.end() <= head_start and not self._is_pseudo(*m.span())]
        for m in _PRE_NEG.finditer(self.low, left, head_start):
            s, e = m.span()
            if e <= head_start and not self._is_pseudo(s, e) and not any(us <= s and e <= ue for us, ue in uncertain):
                return NEGATIVE
        # "versus" after the mention hedges it like a pre-trigger: a negation still wins ("no
        # effusion versus thickening").
        versus_after = self.versus_hedges and _VERSUS_POST.search(after)
        alternative = self.alternatives and alternatives and (_ALTERNATIVE_PRE.search(self.low, hedge_left, head_start)
                                             or _ALTERNATIVE_POST.search(after))
        return UNCERTAIN if uncertain or versus_after or alternative else POSITIVE
