"""Are the probabilities honest? ECE (equal-width and equal-mass bins), Brier score, NLL, reliability diagram.

Per observation over the valid (known, certain) labels, and their macro mean. The equal-width ECE is
torchmetrics' ``binary_calibration_error`` (15 bins, L1: the weighted mean gap between confidence
and accuracy per bin); Brier score and NLL (log loss) are scikit-learn's. torchmetrics has no
equal-mass ("adaptive") ECE, so that one is counted here: the sorted probabilities are cut into
``n_bins`` bins of equal count and the same weighted gap is taken (Nixon et al. 2019).
"""

from __future__ import annotations

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
