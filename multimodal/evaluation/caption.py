"""Findings-text metrics the way published IU X-ray / MIMIC-CXR results compute them.

The scorers are those of the COCO caption evaluation code (``pycocoevalcap``, the package R2Gen,
CMN and their successors report with): corpus BLEU-1..4 with the closest-reference brevity penalty,
METEOR 1.5, ROUGE-L (LCS F-measure, beta 1.2) and CIDEr-D (sigma 6, idf over the test set's
references, x10). Text is lower-cased and tokenised by the COCO ``PTBTokenizer`` (Stanford CoreNLP,
punctuation removed) when Java is available; without Java a regular expression that drops the same
punctuation stands in and METEOR (a Java program) is reported as None.
"""

from __future__ import annotations

import re
import shutil

from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.rouge.rouge import Rouge

# PTBTokenizer's PUNCTUATIONS list, so the fallback drops exactly what COCO drops.
_PUNCT = {"''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-", ".", "?", "!", ",", ":", "-", "--",
          "...", ";"}
EMPTY_CANDIDATE = "<empty>"
_TOKEN = re.compile(r"\w+(?:[-']\w+)*|[^\w\s]+")


def java_available() -> bool:
    """True when a ``java`` executable is on PATH (needed by METEOR and the PTB tokenizer)."""
    return shutil.which("java") is not None


def tokenize(texts: list[str]) -> list[str]:
    """COCO-style tokenisation: lower case, PTB tokens, punctuation removed, joined by spaces."""
    if java_available():
        from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

        out = PTBTokenizer().tokenize({i: [{"caption": t}] for i, t in enumerate(texts)})
        return [out[i][0] for i in range(len(texts))]
    return [" ".join(w for w in _TOKEN.findall(t.lower()) if w not in _PUNCT) for t in texts]


def caption_metrics(references: list[str], candidates: list[str], meteor: bool = True,
                    pretokenized: bool = False) -> dict[str, float | None]:
    """Corpus-level BLEU-1..4, METEOR, ROUGE-L and CIDEr of generated findings.

    Args:
        references: one reference findings text per study.
        candidates: the generated findings, aligned with ``references``.
        meteor: compute METEOR (needs Java; None without it).
        pretokenized: the texts are already lower-cased, space-separated tokens.

    Returns:
        ``{"bleu1".."bleu4", "meteor", "rouge_l", "cider"}``, each a float (BLEU/METEOR/ROUGE in
        [0, 1], CIDEr in [0, 10]) or None when it could not be computed. Studies whose reference is
        empty are left out.
    """
    if len(references) != len(candidates):
        raise ValueError(f"{len(references)} references but {len(candidates)} candidates")
    pairs = [(r, c) for r, c in zip(references, candidates) if r and r.strip()]
    keys = ("bleu1", "bleu2", "bleu3", "bleu4", "meteor", "rouge_l", "cider")
    if not pairs:
        return dict.fromkeys(keys)
    refs, cands = [r for r, _ in pairs], [c or "" for _, c in pairs]
    if not pretokenized:
        refs, cands = tokenize(refs), tokenize(cands)
    # The COCO scorers expect {id: [text]}. COCO's ROUGE divides by the candidate length, so an
    # empty generation becomes one token that matches nothing (it scores ~0 everywhere).
    gts = {i: [r] for i, r in enumerate(refs)}
    res = {i: [c if c.strip() else EMPTY_CANDIDATE] for i, c in enumerate(cands)}
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    rouge, _ = Rouge().compute_score(gts, res)
    cider, _ = Cider().compute_score(gts, res)
    scores = {f"bleu{n + 1}": float(b) for n, b in enumerate(bleu)}
    scores.update(rouge_l=float(rouge), cider=float(cider), meteor=None)
    if meteor and java_available():
        from pycocoevalcap.meteor.meteor import Meteor

        scores["meteor"] = float(Meteor().compute_score(gts, res)[0])
    return {k: scores[k] for k in keys}
