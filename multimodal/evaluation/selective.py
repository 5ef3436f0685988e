"""Selective prediction: how AUROC and accuracy change when the most uncertain cases are deferred.

For each observation its valid cases are ranked by uncertainty and only the most certain share
(the coverage) is kept; AUROC (scikit-learn) is the macro mean over observations, accuracy pools the
kept (study, observation) pairs judged at their thresholds. The uncertainty is the spread of the
model's samples (ensemble members, TTA passes) when it has them, else the closeness of the
probability to the threshold (the usual softmax-response baseline of Geifman & El-Yaniv 2017).
AURC is the area under the risk (1 - accuracy) against coverage curve; lower is better.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from multimodal.evaluation.classification import valid_mask

COVERAGES = tuple(round(1.0 - 0.1 * k, 1) for k in range(10))  # 1.0, 0.9, ..., 0.1


def risk_coverage(probs: np.ndarray, labels: np.ndarray, mask: np.ndarray, thresholds: np.ndarray,
                  uncertainty: np.ndarray | None = None, uncertainty_method: str | None = None,
                  coverages: tuple[float, ...] = COVERAGES) -> dict:
    """Macro AUROC and accuracy at each coverage; all arrays ``[N, D]``, ``thresholds`` ``[D]``.

    ``uncertainty``: larger = less sure (NaN or None: distance to the threshold is used instead).
    Returns ``{"uncertainty", "coverage", "macro_auroc", "accuracy", "kept", "aurc"}`` (lists
    aligned with ``coverage``; a macro AUROC is None where no observation keeps both classes).
    """
    ok = valid_mask(labels, mask)
    if uncertainty is None or np.isnan(uncertainty).all():
        uncertainty, uncertainty_method = -np.abs(probs - thresholds), "distance to threshold"
    out = {"uncertainty": uncertainty_method, "coverage": list(coverages), "macro_auroc": [], "accuracy": [],
           "kept": []}
    for c in coverages:
        aurocs, correct = [], []
        for d in range(probs.shape[1]):
            rows = np.flatnonzero(ok[:, d])
            keep = rows[np.argsort(uncertainty[rows, d], kind="stable")[: math.ceil(c * len(rows))]]
            y, p = labels[keep, d], probs[keep, d]
            if 0 < y.sum() < len(y):
                aurocs.append(roc_auc_score(y, p))
            correct.extend((p >= thresholds[d]) == (y == 1))
        out["macro_auroc"].append(float(np.mean(aurocs)) if aurocs else None)
        out["accuracy"].append(float(np.mean(correct)) if correct else None)
        out["kept"].append(len(correct))
    risk = [1 - a for a in out["accuracy"] if a is not None]
    cov = [c for c, a in zip(coverages, out["accuracy"]) if a is not None]
    out["aurc"] = float(abs(np.trapezoid(risk, cov)) / (max(cov) - min(cov))) if len(cov) > 1 else None
    return out


def plot_risk_coverage(result: dict, path: str | Path) -> Path:
    """Macro AUROC and accuracy against coverage (PNG); returns the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 4), dpi=110)
    cov = result["coverage"]
    for key in ("macro_auroc", "accuracy"):
        points = [(c, v) for c, v in zip(cov, result[key]) if v is not None]
        if points:
            ax.plot(*zip(*points), marker="o", ms=3, label=key.replace("_", " "))
    ax.set(xlabel="coverage (share of cases kept)", ylabel="score on kept cases", xlim=(1.02, 0),
           title=f"Selective prediction (deferred by {result['uncertainty']})")
    ax.legend(fontsize=7)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path
