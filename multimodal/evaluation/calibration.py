"""Are the probabilities honest? ECE (equal-width and equal-mass bins), Brier score, NLL, reliability diagram.

Per observation over the valid (known, certain) labels, and their macro mean. The equal-width ECE is
torchmetrics' ``binary_calibration_error`` (15 bins, L1: the weighted mean gap between confidence
and accuracy per bin); Brier score and NLL (log loss) are scikit-learn's. torchmetrics has no
equal-mass ("adaptive") ECE, so that one is counted here: the sorted probabilities are cut into
``n_bins`` bins of equal count and the same weighted gap is taken (Nixon et al. 2019).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import brier_score_loss, log_loss
from torchmetrics.functional.classification import binary_calibration_error

from multimodal.evaluation.classification import valid_mask

N_BINS = 15
METRICS = ("ece", "ece_adaptive", "brier", "nll")


def adaptive_ece(probs: np.ndarray, labels: np.ndarray, n_bins: int = N_BINS) -> float:
    """Equal-mass ECE of one observation: ``sum_b n_b / N * |mean(p_b) - mean(y_b)|`` over bins of equal count."""
    order = np.argsort(probs, kind="stable")
    bins = [b for b in np.array_split(order, min(n_bins, len(order))) if len(b)]
    return float(sum(len(b) * abs(probs[b].mean() - labels[b].mean()) for b in bins) / len(order))


def calibration_metrics(probs: np.ndarray, labels: np.ndarray, mask: np.ndarray, observations: list[str],
                        n_bins: int = N_BINS) -> dict:
    """ECE (equal-width, ``n_bins``), adaptive ECE, Brier score and NLL per observation and macro.

    ``probs``/``labels``/``mask`` are ``[N, D]`` (labels 1 / 0 / -1, mask False where unknown).
    Returns ``{"per_observation": {name: {ece, ece_adaptive, brier, nll, n}}, "macro": {...}, "n_bins"}``;
    observations without a valid label are left out.
    """
    probs, labels = np.asarray(probs, np.float64), np.asarray(labels, np.float64)
    ok = valid_mask(labels, mask)
    per_obs = {}
    for d, name in enumerate(observations):
        if not ok[:, d].any():
            continue
        p, y = np.clip(probs[ok[:, d], d], 0.0, 1.0), labels[ok[:, d], d]
        ece = binary_calibration_error(torch.as_tensor(p), torch.as_tensor(y, dtype=torch.long), n_bins=n_bins,
                                       norm="l1")
        per_obs[name] = {"ece": float(ece), "ece_adaptive": adaptive_ece(p, y, n_bins),
                         "brier": float(brier_score_loss(y, p)), "nll": float(log_loss(y, p, labels=[0, 1])),
                         "n": int(len(y))}
    macro = {k: float(np.mean([m[k] for m in per_obs.values()])) if per_obs else None for k in METRICS}
    return {"per_observation": per_obs, "macro": macro, "n_bins": n_bins}


def plot_reliability(curves: dict[str, np.ndarray], labels: np.ndarray, mask: np.ndarray, path: str | Path,
                     n_bins: int = N_BINS) -> Path:
    """Reliability diagram: observed frequency against mean probability per equal-width bin, all
    observations pooled, one line per entry of ``curves`` (e.g. ``{"uncalibrated": p0, "calibrated": p1}``,
    each ``[N, D]``), ECE in the legend; the diagonal is perfect calibration. Returns the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = valid_mask(labels, mask)
    y = np.asarray(labels)[ok]
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    fig, ax = plt.subplots(figsize=(5, 5), dpi=110)
    ax.plot([0, 1], [0, 1], ls="--", c="grey", lw=0.8)
    for label, probs in curves.items():
        p = np.clip(np.asarray(probs)[ok], 0.0, 1.0)
        which = np.clip(np.digitize(p, edges[1:-1]), 0, n_bins - 1)
        used = [b for b in range(n_bins) if (which == b).any()]
        ece = float(binary_calibration_error(torch.as_tensor(p), torch.as_tensor(y, dtype=torch.long), n_bins=n_bins))
        ax.plot([p[which == b].mean() for b in used], [y[which == b].mean() for b in used], marker="o", ms=3,
                label=f"{label} (pooled ECE {ece:.3f})")
    ax.set(xlabel="mean predicted probability", ylabel="observed frequency", xlim=(0, 1), ylim=(0, 1),
           title=f"Reliability ({n_bins} equal-width bins, all observations)")
    ax.legend(loc="upper left", fontsize=7)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path
