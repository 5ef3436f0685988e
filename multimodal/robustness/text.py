"""Text variants for the text-reliance check: what the model does when the indication changes.

Each variant maps the split's texts (and, for the negation, the studies' positive labels) to new
texts, one per study, reproducibly:

* ``empty``: no indication at all;
* ``other_study``: each study gets the next study's indication (irrelevant to its image);
* ``negated``: a sentence denying the study's first positive observation is appended
  ("No pleural effusion."); studies without a positive label keep their text;
* ``typos``: about a third of the words of four letters or more get two neighbouring letters swapped.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

TEXT_VARIANTS = ("empty", "other_study", "negated", "typos")


def _typo(word: str, rng: np.random.Generator) -> str:
    i = int(rng.integers(1, len(word) - 2)) if len(word) > 3 else 0
    return word[:i] + word[i + 1] + word[i] + word[i + 2:]


def with_typos(text: str, rng: np.random.Generator, rate: float = 1 / 3) -> str:
    """``text`` with neighbouring letters swapped inside ``rate`` of its words of >= 4 letters."""
    return " ".join(_typo(w, rng) if len(w) >= 4 and w.isalpha() and rng.random() < rate else w
                    for w in text.split(" "))


def text_variant(name: str, texts: Sequence[str], positives: Sequence[Sequence[str]], seed: int = 0) -> list[str]:
    """The texts of variant ``name`` (one of :data:`TEXT_VARIANTS`); ``positives[i]`` lists study i's
    positive observations in the model's order."""
    rng = np.random.default_rng(seed)
    variants: dict[str, Callable[[], list[str]]] = {
        "empty": lambda: [""] * len(texts),
        "other_study": lambda: [texts[(i + 1) % len(texts)] for i in range(len(texts))],
        "negated": lambda: [f"{t} No {p[0].lower()}.".strip() if p else t for t, p in zip(texts, positives)],
        "typos": lambda: [with_typos(t, rng) for t in texts],
    }
    if name not in variants:
        raise ValueError(f"unknown text variant {name!r}; known: {TEXT_VARIANTS}")
    return variants[name]()
