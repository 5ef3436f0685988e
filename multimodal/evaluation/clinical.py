"""Clinical efficacy of generated findings: do they state the same observations as the reference?

Both texts go through the project's report labeler; an observation counts as stated when the labeler
marks it positive (1). Uncertain, negative and unmentioned all count as "not stated", the convention
of the MIMIC-CXR report-generation papers (R2Gen, CMN) with the CheXpert labeler.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import precision_recall_fscore_support

from preprocessing.report_labeler import label_report


def stated(texts: list[str], observations: list[str]) -> np.ndarray:
    """Bool ``[N, D]``: True where the labeler finds observation d positive in text n."""
    out = np.zeros((len(texts), len(observations)), dtype=bool)
    for n, text in enumerate(texts):
        values = label_report(text or "", observations=list(observations)).values
        out[n] = [values.get(name) == 1 for name in observations]
    return out


def clinical_efficacy(references: list[str], candidates: list[str], observations: list[str]) -> dict:
    """Precision, recall and F1 of the observations stated in generated vs reference findings.

    Returns ``{"micro": {precision, recall, f1}, "macro": {...}, "per_observation": {name: {...,
    support}}}``; studies with an empty reference are left out, and ``macro`` averages over the
    observations stated in at least one reference or generation.
    """
    keep = [i for i, r in enumerate(references) if r and r.strip()]
    true = stated([references[i] for i in keep], observations)
    pred = stated([candidates[i] or "" for i in keep], observations)
    p, r, f, _ = precision_recall_fscore_support(true, pred, average="micro", zero_division=0)
    result: dict = {"micro": {"precision": float(p), "recall": float(r), "f1": float(f)}}
    p, r, f, s = precision_recall_fscore_support(true, pred, average=None, zero_division=0)
    result["per_observation"] = {name: {"precision": float(p[d]), "recall": float(r[d]), "f1": float(f[d]),
                                        "support": int(s[d])} for d, name in enumerate(observations)}
    # Macro over the observations that occur in either text; one never stated anywhere says nothing.
    seen = true.any(0) | pred.any(0)
    result["macro"] = {k: float(np.mean(v[seen])) if seen.any() else None
                       for k, v in (("precision", p), ("recall", r), ("f1", f))}
    return result
