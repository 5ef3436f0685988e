"""Multi-label classification metrics: AUROC, AP, F1 at tuned thresholds, bootstrap intervals, ROC plot.

Labels follow the data convention: 1 positive, 0 negative, -1 uncertain, and a mask that is False
where a label is unknown. Uncertain labels are left out of every metric (they are neither a hit nor
a miss), as in CheXpert's evaluation. The scores themselves come from scikit-learn.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import average_precision_score, precision_recall_curve, precision_recall_fscore_support, roc_auc_score
from torchmetrics.functional.classification import binary_auroc, multilabel_auroc, multilabel_average_precision


def valid_mask(labels: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Bool ``[N, D]``: True where a label is known and certain (0 or 1)."""
    return np.asarray(mask, dtype=bool) & np.isin(labels, (0, 1))


def tune_thresholds(probs: np.ndarray, labels: np.ndarray, mask: np.ndarray, default: float = 0.5) -> np.ndarray:
    """Per-observation decision thresholds that maximise F1 on a validation set.

    ``probs``/``labels``/``mask`` are ``[N, D]``; returns float ``[D]``. An observation with no
    positive (or no valid) example keeps ``default``.
    """
    ok = valid_mask(labels, mask)
    thresholds = np.full(probs.shape[1], default, dtype=np.float64)
    for d in range(probs.shape[1]):
        y, p = labels[ok[:, d], d], probs[ok[:, d], d]
        if y.sum() == 0:
            continue
        precision, recall, cut = precision_recall_curve(y, p)
        f1 = 2 * precision[:-1] * recall[:-1] / np.clip(precision[:-1] + recall[:-1], 1e-12, None)
        thresholds[d] = float(cut[int(np.argmax(f1))])
    return thresholds


def _scores(y: np.ndarray, p: np.ndarray, threshold: float | np.ndarray) -> dict[str, float | None]:
    """AUROC, AP, precision, recall, F1 of one flat set of certain labels; None where undefined."""
    two_classes = 0 < y.sum() < len(y)
    pr, rc, f1, _ = precision_recall_fscore_support(y, p >= threshold, average="binary", zero_division=0)
    return {
        "auroc": float(roc_auc_score(y, p)) if two_classes else None,
        "ap": float(average_precision_score(y, p)) if y.sum() > 0 else None,
        "precision": float(pr), "recall": float(rc), "f1": float(f1),
        "n": int(len(y)), "positives": int(y.sum()),
    }


def _macro(per_obs: dict[str, dict], key: str) -> float | None:
    values = [m[key] for m in per_obs.values() if m[key] is not None]
    return float(np.mean(values)) if values else None


def point_metrics(probs: np.ndarray, labels: np.ndarray, mask: np.ndarray, observations: list[str],
                  thresholds: np.ndarray) -> dict:
    """Per-observation, macro and micro metrics without intervals.

    ``macro`` averages each metric over the observations where it is defined; ``micro`` pools every
    valid (study, observation) pair, each judged at its observation's threshold.
    """
    ok = valid_mask(labels, mask)
    per_obs = {name: _scores(labels[ok[:, d], d], probs[ok[:, d], d], thresholds[d])
               for d, name in enumerate(observations) if ok[:, d].any()}
    keys = ("auroc", "ap", "precision", "recall", "f1")
    macro = {k: _macro(per_obs, k) for k in keys}
    # Micro F1 compares each pair with its own threshold, so binarise before pooling.
    flat_t = np.broadcast_to(thresholds, probs.shape)[ok]
    micro = _scores(labels[ok], probs[ok], flat_t) if ok.any() else dict.fromkeys(keys)
    return {"per_observation": per_obs, "macro": macro, "micro": {k: micro[k] for k in keys}}


def classification_metrics(probs: np.ndarray, labels: np.ndarray, mask: np.ndarray, observations: list[str],
                           thresholds: np.ndarray, n_bootstrap: int = 500, seed: int = 0) -> dict:
    """Classification metrics with bootstrap 95% intervals.

    Args:
        probs: float ``[N, D]`` predicted probabilities.
        labels: ``[N, D]`` 1 / 0 / -1 (uncertain, ignored).
        mask: bool ``[N, D]``, False where unknown.
        observations: the D names.
        thresholds: float ``[D]`` decision thresholds (the model's tuned ones).
        n_bootstrap: resamples of the studies (with replacement); 0 disables the intervals.
        seed: seed of the resampling, so intervals are reproducible.

    Returns:
        ``{"per_observation": {name: {auroc, ap, precision, recall, f1, n, positives, ci: {...}}},
        "macro": {...}, "micro": {...}, "ci": {"macro_auroc": [lo, hi], ...}}``; a metric that is
        undefined (e.g. AUROC with one class present) is None.
    """
    probs, labels, mask = np.asarray(probs, float), np.asarray(labels, float), np.asarray(mask, bool)
    thresholds = np.asarray(thresholds, float)
    result = point_metrics(probs, labels, mask, observations, thresholds)
    if n_bootstrap <= 0:
        return result
    rng = np.random.default_rng(seed)
    ok = valid_mask(labels, mask)
    samples: dict[str, list[float]] = {}
    for _ in range(n_bootstrap):
        idx = rng.integers(0, len(probs), len(probs))
        for key, value in _bootstrap_scores(probs[idx], labels[idx], ok[idx], observations, thresholds).items():
            if value is not None:
                samples.setdefault(key, []).append(value)
    ci = {k: [float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))] for k, v in samples.items()}
    result["ci"] = {k: v for k, v in ci.items() if "/" not in k}
    for name, m in result["per_observation"].items():
        m["ci"] = {k: ci.get(f"{name}/{k}") for k in ("auroc", "ap", "f1")}
    return result


def _bootstrap_scores(probs: np.ndarray, labels: np.ndarray, ok: np.ndarray, observations: list[str],
                      thresholds: np.ndarray) -> dict[str, float | None]:
    """The interval metrics of one resample: per-observation AUROC/AP/F1, their macro means, micro AUROC.

    Hundreds of resamples are needed, so this uses torchmetrics' vectorised multilabel scores (exact,
    like scikit-learn's) and counts F1 directly (``precision_recall_fscore_support``'s binary F1 with
    zero_division=0).
    """
    preds = torch.as_tensor(probs, dtype=torch.float32)
    target = torch.as_tensor(np.where(ok, labels, -1), dtype=torch.long)
    n_labels = len(observations)
    with warnings.catch_warnings():  # labels with one class present warn; they are set to None below
        warnings.simplefilter("ignore")
        auroc = multilabel_auroc(preds, target, num_labels=n_labels, average=None, ignore_index=-1).numpy()
        ap = multilabel_average_precision(preds, target, num_labels=n_labels, average=None, ignore_index=-1).numpy()
    pos, n = (labels * ok == 1).sum(0), ok.sum(0)
    hit = (probs >= thresholds) & ok
    tp = (hit & (labels == 1)).sum(0)
    f1 = np.where(hit.sum(0) + pos > 0, 2 * tp / np.maximum(hit.sum(0) + pos, 1), 0.0)
    out: dict[str, float | None] = {}
    for key, values, defined in (("auroc", auroc, (pos > 0) & (pos < n)), ("ap", ap, pos > 0), ("f1", f1, n > 0)):
        for d, name in enumerate(observations):
            out[f"{name}/{key}"] = float(values[d]) if defined[d] else None
        out[f"macro_{key}"] = float(values[defined].mean()) if defined.any() else None
    y = labels[ok]
    out["micro_auroc"] = (float(binary_auroc(preds[torch.as_tensor(ok)], torch.as_tensor(y, dtype=torch.long)))
                          if 0 < y.sum() < len(y) else None)
    return out


def plot_roc(probs: np.ndarray, labels: np.ndarray, mask: np.ndarray, observations: list[str], path: str | Path) -> Path:
    """Write one ROC curve per observation (with its AUROC in the legend) to a PNG; returns the path."""
    from multimodal.evaluation.figures import roc_figure, save_figure

    return save_figure(roc_figure(probs, labels, mask, observations), path)
