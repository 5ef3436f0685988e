"""The evaluation page's content, from an ``mmdx evaluate`` folder: ``metrics.json`` for the numbers
with their intervals, ``predictions.npz`` for ROC and precision-recall curves, the reliability
diagram and the confusion counts at the model's tuned thresholds, ``pointing.jsonl`` and
``overlays/`` for the best and worst pointing examples. Missing files leave their section out.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from multimodal.inference.results import read_jsonl
from preprocessing.errors import MmdxError

RELIABILITY_BINS = 10
POINTING_EXAMPLES = 4  # best and worst each


def evaluation_context(eval_dir: Path, out: Path) -> dict[str, Any]:
    """Numbers and figure paths (relative to ``out``) for the evaluation template; writes the figures."""
    metrics_path = eval_dir / "metrics.json"
    if not metrics_path.is_file():
        raise MmdxError(f"{metrics_path}: no metrics.json in the --eval folder (write it with mmdx evaluate)")
    metrics = json.loads(metrics_path.read_text())
    classification = metrics.get("classification") or {}
    thresholds = classification.get("thresholds") or {}
    figures_dir = out / "eval"
    figures_dir.mkdir(parents=True, exist_ok=True)
    context: dict[str, Any] = {"summary": metrics.get("summary") or {}, "split": metrics.get("split"),
                               "per_observation": classification.get("per_observation") or {},
                               "thresholds": thresholds, "figures": [], "confusion": [], "pointing": {}}
    predictions = eval_dir / "predictions.npz"
    if predictions.is_file():
        with np.load(predictions) as data:
            probs, labels, mask = data["probs"], data["labels"], data["label_mask"].astype(bool)
            observations = [str(o) for o in data["observations"]]
        context["figures"] = _curves(probs, labels, mask, observations, figures_dir)
        context["confusion"] = confusion_counts(probs, labels, mask, observations, thresholds)
    elif (eval_dir / "roc.png").is_file():
        shutil.copy(eval_dir / "roc.png", figures_dir / "roc.png")
        context["figures"] = [("ROC curves", "eval/roc.png")]
    context["pointing"] = _pointing_examples(eval_dir, figures_dir)
    return context


def confusion_counts(probs: np.ndarray, labels: np.ndarray, mask: np.ndarray, observations: list[str],
                     thresholds: dict[str, float]) -> list[dict[str, Any]]:
    """Per observation: TP, FP, FN, TN at its tuned threshold, over studies with a certain label (0 or 1)."""
    rows = []
    for d, name in enumerate(observations):
        valid = mask[:, d] & (labels[:, d] >= 0)
        truth, called = labels[valid, d] == 1, probs[valid, d] >= thresholds.get(name, 0.5)
        rows.append({"observation": name, "threshold": thresholds.get(name, 0.5),
                     "tp": int((truth & called).sum()), "fp": int((~truth & called).sum()),
                     "fn": int((truth & ~called).sum()), "tn": int((~truth & ~called).sum())})
    return rows


def reliability(probs: np.ndarray, truth: np.ndarray, bins: int = RELIABILITY_BINS) -> list[tuple[float, float, int]]:
    """(mean predicted probability, observed frequency, count) per non-empty equal-width bin."""
    index = np.minimum((probs * bins).astype(int), bins - 1)
    return [(float(probs[index == b].mean()), float(truth[index == b].mean()), int((index == b).sum()))
            for b in range(bins) if (index == b).any()]


def _curves(probs: np.ndarray, labels: np.ndarray, mask: np.ndarray, observations: list[str], folder: Path
            ) -> list[tuple[str, str]]:
    """ROC, precision-recall (one line per observation with both classes) and the pooled reliability diagram."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score, roc_curve

    fig_roc, ax_roc = plt.subplots(figsize=(5, 5))
    fig_pr, ax_pr = plt.subplots(figsize=(5, 5))
    pooled_p, pooled_y = [], []
    for d, name in enumerate(observations):
        valid = mask[:, d] & (labels[:, d] >= 0)
        p, y = probs[valid, d], labels[valid, d] == 1
        pooled_p.append(p), pooled_y.append(y)
        if y.all() or not y.any():
            continue
        fpr, tpr, _ = roc_curve(y, p)
        ax_roc.plot(fpr, tpr, label=f"{name} ({roc_auc_score(y, p):.3f})")
        precision, recall, _ = precision_recall_curve(y, p)
        ax_pr.plot(recall, precision, label=f"{name} ({average_precision_score(y, p):.3f})")
    ax_roc.plot([0, 1], [0, 1], "k:", lw=0.8)
    ax_roc.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC (AUROC)")
    ax_pr.set(xlabel="recall", ylabel="precision", title="Precision-recall (AP)")
    fig_rel, ax_rel = plt.subplots(figsize=(5, 5))
    points = reliability(np.concatenate(pooled_p), np.concatenate(pooled_y).astype(float))
    ax_rel.plot([0, 1], [0, 1], "k:", lw=0.8)
    ax_rel.plot([m for m, _, _ in points], [f for _, f, _ in points], "o-")
    for m, f, n in points:
        ax_rel.annotate(str(n), (m, f), fontsize=7, xytext=(3, -9), textcoords="offset points")
    ax_rel.set(xlabel="mean predicted probability", ylabel="observed frequency",
               title="Reliability (all observations; n per bin)", xlim=(0, 1), ylim=(0, 1))
    figures = []
    for fig, ax, title, name in ((fig_roc, ax_roc, "ROC curves", "roc.png"), (fig_pr, ax_pr, "Precision-recall curves", "pr.png"),
                                 (fig_rel, ax_rel, "Reliability diagram", "reliability.png")):
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, loc="lower right" if name == "roc.png" else "lower left")
        fig.tight_layout()
        fig.savefig(folder / name, dpi=100)
        plt.close(fig)
        figures.append((title, f"eval/{name}"))
    return figures


def _pointing_examples(eval_dir: Path, folder: Path) -> dict[str, list[dict]]:
    """The best and the worst pointing trials whose overlay exists, with the overlay copied beside the report."""
    trials = [t for t in read_jsonl(eval_dir / "pointing.jsonl") if (eval_dir / "overlays" / t["overlay"]).is_file()]
    if not trials:
        return {}
    trials.sort(key=lambda t: t["error_px"])
    best = trials[:min(POINTING_EXAMPLES, (len(trials) + 1) // 2)]  # few trials: best and worst do not overlap
    picked = {"best": best, "worst": trials[len(best):][::-1][:POINTING_EXAMPLES]}
    for group in picked.values():
        for trial in group:
            shutil.copy(eval_dir / "overlays" / trial["overlay"], folder / trial["overlay"])
            trial["image"] = f"eval/{trial['overlay']}"
    return picked
