"""Classification figures as matplotlib Figures: ROC and precision-recall curves per observation and
the reliability diagram. ``mmdx evaluate`` saves the ROC, the trainer's experiment tracker logs
ROC and reliability at each validation, and ``mmdx report`` draws all three.

Inputs are ``probs``/``labels``/``mask`` ``[N, D]`` as everywhere in evaluation; uncertain (-1) and
unknown labels are left out. Figures are built on the Agg backend (no display needed); close them
with ``matplotlib.pyplot.close(fig)`` after saving or logging.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score, roc_curve

from multimodal.evaluation.calibration import N_BINS
from multimodal.evaluation.classification import valid_mask

RELIABILITY_BINS = N_BINS  # the ECE's bins (multimodal.evaluation.calibration)


def _axes(title: str, xlabel: str, ylabel: str):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 6), dpi=110)
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title, xlim=(0, 1), ylim=(0, 1.01))
    return fig, ax


def _per_observation(probs: np.ndarray, labels: np.ndarray, mask: np.ndarray, observations: list[str]):
    """(name, labels, probabilities) of each observation that has both classes."""
    ok = valid_mask(labels, mask)
    for d, name in enumerate(observations):
        y, p = labels[ok[:, d], d], probs[ok[:, d], d]
        if 0 < y.sum() < len(y):
            yield name, y, p


def roc_figure(probs: np.ndarray, labels: np.ndarray, mask: np.ndarray, observations: list[str]):
    """One ROC curve per observation, its AUROC in the legend."""
    fig, ax = _axes("ROC per observation (AUROC)", "false positive rate", "true positive rate")
    for name, y, p in _per_observation(probs, labels, mask, observations):
        fpr, tpr, _ = roc_curve(y, p)
        ax.plot(fpr, tpr, lw=1.2, label=f"{name} ({roc_auc_score(y, p):.3f})")
    ax.plot([0, 1], [0, 1], ls="--", c="grey", lw=0.8)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="lower right", fontsize=7)
    fig.tight_layout()
    return fig


def pr_figure(probs: np.ndarray, labels: np.ndarray, mask: np.ndarray, observations: list[str]):
    """One precision-recall curve per observation, its average precision in the legend."""
    fig, ax = _axes("Precision-recall per observation (AP)", "recall", "precision")
    for name, y, p in _per_observation(probs, labels, mask, observations):
        precision, recall, _ = precision_recall_curve(y, p)
        ax.plot(recall, precision, lw=1.2, label=f"{name} ({average_precision_score(y, p):.3f})")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="lower left", fontsize=7)
    fig.tight_layout()
    return fig


def reliability(probs: np.ndarray, truth: np.ndarray, bins: int = RELIABILITY_BINS) -> list[tuple[float, float, int]]:
    """(mean predicted probability, observed frequency, count) per non-empty equal-width bin of [0, 1]."""
    index = np.minimum((np.asarray(probs) * bins).astype(int), bins - 1)
    return [(float(probs[index == b].mean()), float(truth[index == b].mean()), int((index == b).sum()))
            for b in range(bins) if (index == b).any()]


def reliability_figure(probs: np.ndarray | dict[str, np.ndarray], labels: np.ndarray, mask: np.ndarray,
                       bins: int = RELIABILITY_BINS):
    """The reliability diagram of every valid (study, observation) pair pooled. ``probs`` is ``[N, D]``
    or a dict of named ``[N, D]`` arrays drawn as one line each (e.g. uncalibrated vs calibrated), the
    pooled equal-width ECE in the legend; with one curve each bin is annotated with its count."""
    ok = valid_mask(labels, mask)
    truth = labels[ok].astype(float)
    curves = probs if isinstance(probs, dict) else {"model": probs}
    fig, ax = _axes("Reliability (all observations pooled)", "mean predicted probability", "observed frequency")
    ax.plot([0, 1], [0, 1], ls="--", c="grey", lw=0.8)
    for name, values in curves.items():
        points = reliability(np.clip(np.asarray(values)[ok], 0.0, 1.0), truth, bins)
        ece = sum(n * abs(m - f) for m, f, n in points) / max(1, len(truth))
        ax.plot([m for m, _, _ in points], [f for _, f, _ in points], "o-", ms=3, label=f"{name} (ECE {ece:.3f})")
        if len(curves) == 1:
            for m, f, n in points:
                ax.annotate(str(n), (m, f), fontsize=7, xytext=(3, -9), textcoords="offset points")
    ax.legend(loc="upper left", fontsize=7)
    fig.tight_layout()
    return fig


def save_figure(fig, path: str | Path) -> Path:
    """Write ``fig`` as a PNG and close it; returns the path."""
    import matplotlib.pyplot as plt

    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path
