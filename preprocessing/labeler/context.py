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

POSITIVE, NEGATIVE, UNCERTAIN = 1, 0, -1

# Patterns are written in lower case and matched on an ASCII-lowered copy of the text (same length,
# so offsets carry over): case-sensitive matching is markedly faster than re.IGNORECASE.
_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")

# A sentence ends at . ! ? (not inside a number like "1.5", not after "vs") or a blank line;
# "apex.There" also splits.
_SENTENCE_END = re.compile(r"(?<!\d)(?<!\b[vV][sS])[.!?]+(?=\s|$|[A-Z])|(?<!\b[vV][sS])[.!?]+(?=\s)|\n\s*\n")

# Words that open a new, separately graded finding ("no effusion and *mild* cardiomegaly").
_NEW_FINDING = (r"(?:mild|mildly|moderate|moderately|severe|small|large|stable|persistent|new|minimal|trace|unchanged"
                r"|increased|increasing|decreased|worsening|improved|improving)")
_TERMINATOR = re.compile(
    # "no definite pleural effusion seen, dense nodule in the left lung": the verb and comma close the
    # negated phrase
    r";|(?:(?<=seen)|(?<=identified)|(?<=noted)|(?<=demonstrated)|(?<=visualized)|(?<=evident)),"
    r"|\b(?:but|however|although|though|whereas|while|which|yet|aside from|apart from|except(?: for)?"
    r"|with the exception of|other than|otherwise|now"
    r"|(?<!if\s)(?<!whether\s)there (?:is|are)|likely represents?"
    rf"|and (?=(?:the|there|a|an|{_NEW_FINDING})\b))\b",
)
# "with" ends a negation ("no pneumothorax with small left effusion": the effusion is there) but not a
# hedge ("may represent atelectasis with superimposed pneumonia": both are hedged), unless it opens a
# separately graded finding or a negation ("possible pneumonia with mild / no effusion").
_WITH = re.compile(rf"\b(?<!consistent\s)(?<!compatible\s)(?<!keeping\s)with\b(\s+(?:no|without|{_NEW_FINDING})\b)?")

_PSEUDO = re.compile(
    r"\b(?:no|without|not)\s+(?:significant\s+|interval\s+|appreciable\s+|substantial\s+|definite\s+)*"
    # "no increase" negates nothing, "no increased density" negates the density
    r"(?:change|increase(?!d)|decrease(?!d)|progression|worsening|improvement|only)\w*"
    r"|\bnot\s+(?:necessarily|significantly\s+changed|changed)"
    # A finding that has only partly gone is still there.
    r"|\b(?:partially|partly|incompletely|nearly|almost|not\s+(?:completely|entirely|fully))\s+(?:completely\s+)?"
    r"(?:resolved|resolving|cleared|clearing|removed)\b|\bpartial\s+(?:resolution|clearing|removal)"
    r"|\bgram[\s-]negative\b|\bage[\s-]+indeterminate\b"
    # "not seen on the prior exam" says the finding is new, not absent
    r"|\bnot\s+(?:\w+\s+)?(?:seen|visible|present|identified|appreciated)\s+(?:on|in)\s+(?:the\s+)?(?:prior|previous|earlier)\b"
    # A hedge made strong says "most likely", which reads as positive ("opacities most suggestive of
    # atelectasis"); an "indeterminate nodule" is a nodule whose nature is not known.
    r"|\b(?:most|strongly|highly)\s+suggestive\s+of\b"
    r"|\bindeterminate(?=\s+(?:[\w.-]+\s+){0,3}?(?:opacit|densit|nodul|mass|lesion|round))",
)

_PRE_NEG = re.compile(
    r"\b(?:no|not|without|negative\s+for|free\s+of|clear\s+of|absence\s+of|absent|resolved|resolution\s+of"
    r"|removed|removal\s+of|clearing\s+of|no\s+longer|none|neither|nor|rather\s+than|instead\s+of"
    # "lungs are clear airspace disease": "clear of" with the "of" dropped
    r"|clear(?=\s+(?:focal\s+)?(?:air[\s-]?space|consolidation|infiltrat|opacit|effusion|pneumothorax)))\b",
)
_PRE_UNC = re.compile(
    r"\b(?:may|maybe|perhaps|might|could|possibl[ey]|possibility|suggest\w*|suspect\w*"
    r"|suspicious|suspicion\s+(?:for|of)|favou?r(?:s|ed|ing)?|concern(?:ing)?\s+(?:for|of)|question(?:able)?|questioned|equivocal|indeterminate"
    r"|differential|cannot\s+(?:be\s+)?(?:exclude|excluded|rule[\s-]+out|ruled\s+out)"
    r"|can\s*not\s+(?:exclude|rule[\s-]+out)|can't\s+(?:exclude|rule[\s-]+out)|not\s+(?:be\s+)?excluded|rule[\s-]+out|r/o"
    r"|presumed|presumably|worrisome|evaluat\w*\s+(?:of|for)|assess\w*\s+(?:of|for)|to\s+(?:(?:completely|entirely|totally|definitely|fully)\s+)?(?:exclude|rule[\s-]+out)"
    r"|correlat\w*\s+(?:clinically\s+)?for|clinical\s+correlation\s+for|(?:appropriate|right)\s+clinical\s+(?:setting|context)"
    r"|(?:determine|assess|evaluate|see)\s+(?:if|whether)|alternatively|unlikely|less\s+likely"
    r"|limited\s+(?:assessment|evaluation)\s+of)\b",
)
# Up to six words between a mention and its post-trigger ("nodule in the right lower lobe is not seen"),
# so that a trigger at the far end of a long clause does not reach back to every mention in it.
_FEW_WORDS = r"\W*(?:[\w-]+\W+){0,6}?"
_POST_NEG = re.compile(
    rf"^{_FEW_WORDS}(?:(?:is|are|was|were|has\s+been|have\s+been)\s+)?(?:not|no\s+longer)\s+(?:be\s+)?"
    r"(?:(?:well|clearly|definitely|convincingly|definitively)[\s-]+)?"
    r"(?:seen|identified|present|visualized|visualised|evident|demonstrated|appreciated|noted|detected"
    r"|apparent|visible)\b(?!\s+(?:previously|before|earlier|on\s+(?:the\s+)?(?:prior|previous)))"
    # "have resolved" ends a list of gone findings, however long ("consolidation, atelectasis and ... have cleared").
    r"|^[^;]*?\b(?:(?:has|have)\s+(?:since\s+)?(?:been\s+)?)(?:resolved|cleared|removed)\b"
    r"|^\s*(?:(?:is|are|was|were)\s+)?(?:resolved|absent|removed|cleared)\b"
    r"|^\s*(?:appears?|is|are|remains?|seems?)\s+(?:\w+\s+)?(?:within\s+(?:the\s+)?(?:normal\s+)?limits|normal)\b",
)
# Words that link an image finding to its interpretation ("opacity, compatible with pneumonia in the
# appropriate clinical setting"): a post-trigger after them qualifies the interpretation, not the finding.
_INTERPRETATION = re.compile(
    r"\b(?:consistent\s+with|compatible\s+with|in\s+keeping\s+with|suggestive\s+of|suggesting|representing"
    r"|concerning\s+for|suspicious\s+for|due\s+to|secondary\s+to|reflecting)\b"
)
_POST_UNC = re.compile(
    r"^[^;]*?\b(?:cannot\s+be|can\s*not\s+be|can't\s+be|not\s+be|is\s+not|are\s+not|not)\s+"
    r"(?:entirely\s+|completely\s+|totally\s+|definitely\s+)?(?:excluded|ruled\s+out|exclude)\b"
    r"|^[^;]*?\b(?:is|are)\s+(?:suspected|questioned|possible|likely|not\s+excluded|favored)\b"
    # "unlikely" / "less likely" hedge (CheXpert: "less likely" is uncertain); what cannot be assessed is
    # not known either way
    rf"|^{_FEW_WORDS}(?:(?:is|are|appears?|seems?)\s+)?(?:felt\s+to\s+be\s+)?(?:very\s+)?(?:unlikely|less\s+likely)\b"
    rf"|^{_FEW_WORDS}(?:(?:cannot|can\s*not|can't)\s+be|(?:is|are)\s+(?:not\s+well|poorly|incompletely|difficult\s+to))\s+"
    r"(?:well\s+|adequately\s+|fully\s+)?(?:assess|assessed|evaluate|evaluated)\b"
    rf"|^{_FEW_WORDS}in\s+the\s+(?:appropriate|right|proper)\s+clinical\s+(?:setting|context)"
    rf"|^{_FEW_WORDS}(?:is|are)\s+(?:also\s+)?(?:in\s+the\s+differential|(?:another|a|also\s+a)\s+(?:consideration|possibility))\b"
    r"|^\s*\?",
)
# "X versus Y" as a hedge (CheXpert's reading; ``Sentences(versus="uncertain")``): before the mention
# ("atelectasis versus *pneumonia*") or within two words after it ("*atelectasis* versus scarring").
_VERSUS_PRE = re.compile(r"\b(?:vs\.?|versus)\b")
_VERSUS_POST = re.compile(r"^\s*(?:[\w-]+\s+){0,2}?(?:vs\.?|versus)\s+(?=\w)")
VERSUS_READINGS = ("both", "uncertain")
# Alternatives, "X or Y", "X and/or Y", "X/Y", read as a hedge on both sides (CheXpert's reading) with
# ``Sentences(alternatives=True)``: "or" at most three words before the mention's head, or at most two
# words after the mention. A negation still wins ("no effusion or pneumothorax").
_ALTERNATIVE_PRE = re.compile(r"(?:\b(?:or|and/or)\s+(?:[\w-]+\s+){0,3}|[a-z]/(?:[\w-]+\s+){0,2})$")
_ALTERNATIVE_POST = re.compile(r"^(?:\s*(?:[\w-]+\s+){0,2}?(?:or|and/or)\s+|/)(?=[a-z])")


# Both matched at sentence starts. A sentence that opens with "if" states no finding ("If there is
# concern for fracture, consider rib views").
_HYPOTHETICAL = re.compile(r"\s*(?:\d+\.\s*)?if\b")
# A section header of another body part ("Left knee:", "2. Pelvis.", or "Pelvis and left hip There is"
# without punctuation but followed by a capital) starts text about that part, up to the next "Chest."
# header; the thoracic spine, ribs and clavicles are seen on the chest radiograph. Matched on the
# original text (the capital matters), ignoring case elsewhere.
_SECTION = re.compile(
    r"\s*(?:\d+\.\s*)?(?:the\s+)?(?:(?:right|left|bilateral)\s+)?"
    r"(chest|pelvis|hips?|knees?|ankles?|shoulders?|elbows?|wrists?|hands?|feet|foot|femurs?|tibias?|humerus|skull|sacrum"
    r"|(?:lumbar|lumbosacral|cervical)\s+spine|abdomen)"
    r"(?:\s+and\s+(?:(?:right|left)\s+)?\w+)?(?:\s*[.:]|\s+(?-i:[A-Z]))",
    re.IGNORECASE,
)
# "history of" followed by the mention within a few words and no punctuation. "Status post" is not
# here: it names procedures, and what they leave (devices, healed fractures) is still seen.
_HISTORY = re.compile(r"\b(?:history\s+of|h/o|hx\s+of)\s+(?:[\w/'-]+\s+){0,5}$")


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

    def classify(self, start: int, end: int, head_start: int, left_limit: int = 0) -> int:
        """Value of the mention ``[start, end)``: POSITIVE, NEGATIVE or UNCERTAIN.

        ``head_start`` is where the mention's last word begins, so that a trigger inside a longer
        mention ("heart is *not* enlarged") counts as preceding it. Pre-triggers before ``left_limit``
        do not count.
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
        alternative = self.alternatives and (_ALTERNATIVE_PRE.search(self.low, hedge_left, head_start)
                                             or _ALTERNATIVE_POST.search(after))
        return UNCERTAIN if uncertain or versus_after or alternative else POSITIVE
