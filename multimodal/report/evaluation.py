"""The evaluation page's content, from an ``mmdx evaluate`` folder: ``metrics.json`` for the numbers
with their intervals, ``predictions.npz`` for ROC and precision-recall curves, the reliability
diagram (:mod:`multimodal.evaluation.figures`) and the confusion counts at the model's tuned
thresholds, ``pointing.jsonl`` and ``overlays/`` for the best and worst pointing examples. Missing
files leave their section out.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from multimodal.evaluation.classification import valid_mask
from multimodal.evaluation.figures import pr_figure, reliability_figure, roc_figure, save_figure
from multimodal.inference.results import read_jsonl
from preprocessing.errors import MmdxError

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
    ok, rows = valid_mask(labels, mask), []
    for d, name in enumerate(observations):
        valid = ok[:, d]
        truth, called = labels[valid, d] == 1, probs[valid, d] >= thresholds.get(name, 0.5)
        rows.append({"observation": name, "threshold": thresholds.get(name, 0.5),
                     "tp": int((truth & called).sum()), "fp": int((~truth & called).sum()),
                     "fn": int((truth & ~called).sum()), "tn": int((~truth & ~called).sum())})
    return rows


def _curves(probs: np.ndarray, labels: np.ndarray, mask: np.ndarray, observations: list[str], folder: Path
            ) -> list[tuple[str, str]]:
    """ROC and precision-recall curves and the pooled reliability diagram as PNGs; (title, path) each."""
    figures = [("ROC curves", "roc.png", roc_figure(probs, labels, mask, observations)),
               ("Precision-recall curves", "pr.png", pr_figure(probs, labels, mask, observations)),
               ("Reliability diagram", "reliability.png", reliability_figure(probs, labels, mask))]
    return [(title, f"eval/{save_figure(fig, folder / name).name}") for title, name, fig in figures]


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
